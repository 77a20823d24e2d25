#!/usr/bin/env bash
# Soak: mixed load against one release daemon for a long time, with flaky mock
# providers, sampling every ~10 s what must stay flat (BENCHMARKS.md, "Scale and soak").
#
#   benches/soak/run.sh [MINUTES] [OUT]          # default 30 minutes, target/soak; 1 to check the script
#   target/soak-venv/bin/python benches/soak/plot.py OUT benches/soak/soak.png --loadavg OUT/loadavg.txt
#
# Daemon: default settings, two mock providers: `mock-a` answers HTTP 500 to 5 % of
# calls; `mock-b` takes 10-30 ms and answers 429 to 3 %. Load: back-to-back 10 s
# windows of `tutorlog load --rate R --mix 6:2:2` (open loop: training,
# challenges, gateway chat, 30 % streamed), one JSON report per window. Sampler:
# every 10 s, the daemon's VmRSS, open file descriptors (/proc/PID/fd), the log
# position and every projection's lag (`tutorlog_projection_lag_events` from
# /metrics). At the end: the daemon's WARN/ERROR lines by message, and a clean stop.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/scale/lib.sh

MINUTES=${1:-30}
OUT=${2:-target/soak}
BIN=${BIN:-target/release/tutorlog}
RATE=${RATE:-400}
LISTEN=127.0.0.1:${PORT:-18183}
MOCK_A=127.0.0.1:18191
MOCK_B=127.0.0.1:18192

rm -rf "$OUT"
mkdir -p "$OUT/windows"
# A private copy: a rebuild of target/release during the run must not swap the
# binary the load windows start.
cp "$BIN" "$OUT/tutorlog"
BIN_SOURCE=$BIN
BIN=$OUT/tutorlog
cat >"$OUT/tutorlog.toml" <<EOF
[gateway]
api_keys = [{ key = "sk-local-dev", user_id = "dev" }]

[[providers]]
name = "mock-a"
kind = "mock"
base_url = "http://$MOCK_A/v1"
priority = 1
timeout_ms = 5000
monthly_budget_usd = 1000000.0
models = [{ name = "mock", input_usd_per_mtok = 0.5, output_usd_per_mtok = 1.5 }]

[[providers]]
name = "mock-b"
kind = "mock"
base_url = "http://$MOCK_B/v1"
priority = 2
timeout_ms = 5000
monthly_budget_usd = 1000000.0
models = [{ name = "mock", input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0 }]
EOF
{
    echo "command: $0 $*  (RATE=$RATE)"
    echo "binary: $BIN_SOURCE ($(git rev-parse --short HEAD)$(git diff --quiet || echo ' + uncommitted changes'), built $(stat -c %y "$BIN_SOURCE"))"
    machine_info start
    df -T "$OUT" | tail -1
} >"$OUT/summary.txt"

"$BIN" mock-provider --listen "$MOCK_A" --error-rate 0.05 --fault http500 --seed 1 \
    >"$OUT/mock-a.log" 2>&1 &
MOCK_A_PID=$!
"$BIN" mock-provider --listen "$MOCK_B" --latency-ms 10 --jitter-ms 20 --error-rate 0.03 \
    --fault http429 --seed 2 >"$OUT/mock-b.log" 2>&1 &
MOCK_B_PID=$!
trap 'kill $MOCK_A_PID $MOCK_B_PID 2>/dev/null || true' EXIT
sleep 0.5

start_daemon "$BIN" "$OUT/tutorlog.toml" "$OUT/data" "$LISTEN" "$OUT/daemon.log"
wait_ready "http://$LISTEN" 60 >/dev/null
PID=$DAEMON_PID

# Sampler: time rss_kb fds position lag_max lag_per_projection...
(
    echo "time rss_kb fds position lag_max lags"
    while kill -0 "$PID" 2>/dev/null; do
        now=$(date +%s)
        read -r rss_kb _ < <(rss "$PID")
        fds=$(ls "/proc/$PID/fd" | wc -l)
        metrics=$(curl -s -m 5 "http://$LISTEN/metrics" || true)
        lags=$(echo "$metrics" | awk -F'[{}" ]+' '/^tutorlog_projection_lag_events\{/{printf "%s=%s,", $3, $NF}')
        lag_max=$(echo "$metrics" | awk '/^tutorlog_projection_lag_events\{/{if($NF>m)m=$NF} END{print m+0}')
        position=$(echo "$metrics" | awk '/^tutorlog_projection_position\{projection="stream_stats"\}/{print $NF}')
        echo "$now $rss_kb $fds ${position:-0} $lag_max ${lags:-none}"
        # The machine is shared: its load goes next to the figures (plot.py --loadavg).
        echo "$now $(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/loadavg.txt"
        sleep 10
    done
) >"$OUT/samples.txt" 2>/dev/null &
SAMPLER=$!

end=$(($(date +%s) + MINUTES * 60))
window=0
while [ "$(date +%s)" -lt "$end" ]; do
    window=$((window + 1))
    "$BIN" load --target "http://$LISTEN" --rate "$RATE" --mix 6:2:2 --learners 4000 \
        --duration 10 --seed 5 --json "$OUT/windows/$(printf %04d $window).json" \
        >"$OUT/windows/$(printf %04d $window).txt" 2>&1 || echo "window $window failed" >>"$OUT/summary.txt"
done

read -r rss_end hwm_end < <(rss "$PID")
fds_end=$(ls "/proc/$PID/fd" | wc -l)
stop_daemon "$PID"
kill "$SAMPLER" 2>/dev/null || true
stop_seconds=$STOP_SECONDS
# The same data, freshly loaded (snapshots + index checkpoint): the memory the
# views and the index need. RSS at the end of the load far above it is memory
# the load left behind, not live data.
restart_to_ready "$BIN" "$OUT/tutorlog.toml" "$OUT/data" "$LISTEN" "$OUT/daemon-restart.log"
sleep 3
read -r rss_restart _ < <(rss "$DAEMON_PID")
stop_daemon "$DAEMON_PID"
{
    echo "windows: $window of 10 s at $RATE req/s"
    echo "end: RSS $((rss_end / 1024)) MB, peak $((hwm_end / 1024)) MB, $fds_end fds; clean stop in $(printf %.2f "$stop_seconds") s"
    echo "restart on the same data: ready in $(printf %.2f "$READY_SECONDS") s, RSS $((rss_restart / 1024)) MB"
    echo "== daemon WARN/ERROR lines, by message (count, level, target: message)"
    # `|| true`: no such line at all is the good outcome, not a failure.
    { grep -E ' (WARN|ERROR) ' "$OUT/daemon.log" || true; } |
        sed -E 's/^[^ ]+ +(WARN|ERROR) ([^:]+): ([^=]*[^ =]+( [a-z_]+=)?).*$/\1 \2: \3/' |
        sort | uniq -c | sort -rn | head -40
    # What the load or the mocks caused on purpose: the mocks' injected faults
    # (HTTP 500 / 429) and what follows from them (failover, breaker). Anything
    # else is an error no user caused, and the soak fails on it.
    unexpected=$({ grep -E ' (WARN|ERROR) ' "$OUT/daemon.log" || true; } |
        { grep -vE 'injected fault|HTTP (429|500)|RateLimited|rate limit|breaker|provider (mock-a|mock-b)' || true; } | wc -l)
    echo "daemon WARN/ERROR lines not caused by the load or the injected faults: $unexpected"
    machine_info end
} >>"$OUT/summary.txt"
cat "$OUT/summary.txt"
failed_windows=$(grep -c '^window .* failed' "$OUT/summary.txt" || true)
[ "$unexpected" -eq 0 ] && [ "$failed_windows" -eq 0 ]
