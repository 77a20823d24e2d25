#!/usr/bin/env bash
# N distinct learners, one complete 5-round training session each, against a
# release daemon with default settings (BENCHMARKS.md, "Scale and soak" and "Learning").
#
#   benches/scale/learners.sh [LEARNERS] [BIN] [OUT]
#   benches/scale/learners.sh 100000                       # the 100 k-learner RSS goal
#   benches/scale/learners.sh 1000000                      # goal (c)
#
# Runs `tutorlog load --mix 1:0:0 --learners N --sessions N` (64 clients), samples
# the daemon's VmRSS/VmHWM every 5 s, stops it (final snapshots and checkpoint),
# then times three restarts from exec to the first 200 from /readyz:
#   1. with the projection snapshots and the index checkpoint (a normal restart);
#   2. snapshots removed: every projection replays the whole log;
#   3. index checkpoint removed (the snapshots of run 2 kept): a full log scan.
# Everything goes to OUT (default target/scale/learners-N); the summary is
# OUT/summary.txt. Needs curl, bc, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/scale/lib.sh

LEARNERS=${1:-100000}
BIN=${2:-target/release/tutorlog}
OUT=${3:-target/scale/learners-$LEARNERS}
CONCURRENCY=${CONCURRENCY:-64}
LISTEN=127.0.0.1:${PORT:-18181}
DATA=$OUT/data

rm -rf "$OUT"
mkdir -p "$OUT"
# As the Learning section: passivate learner actors after 5 s, no nightly batch.
printf '[learning]\nlearner_idle_secs = 5\nbatch_every_secs = 0\n' >"$OUT/tutorlog.toml"
{
    echo "command: $0 $*"
    echo "binary: $BIN ($(git rev-parse --short HEAD), $(stat -c %y "$BIN")); daemon env: ${DAEMON_ENV:-none}"
    machine_info start
    df -T "$OUT" | tail -1
} >"$OUT/summary.txt"

# DAEMON_ENV: extra environment for the daemon, e.g. DAEMON_ENV=MIMALLOC_PURGE_DELAY=10
# shellcheck disable=SC2086
start_daemon "$BIN" "$OUT/tutorlog.toml" "$DATA" "$LISTEN" "$OUT/daemon.log" ${DAEMON_ENV:-}
wait_ready "http://$LISTEN" 60 >/dev/null
(
    while kill -0 "$DAEMON_PID" 2>/dev/null; do
        echo "$(date +%s) $(rss "$DAEMON_PID")"
        sleep 5
    done
) >"$OUT/rss.txt" 2>/dev/null &
SAMPLER=$!

started=$(date +%s.%N)
"$BIN" load --target "http://$LISTEN" --mix 1:0:0 --concurrency "$CONCURRENCY" \
    --learners "$LEARNERS" --sessions "$LEARNERS" --duration 36000 --seed 1 \
    --json "$OUT/load.json" >"$OUT/load.txt" 2>&1
load_seconds=$(echo "$(date +%s.%N) - $started" | bc -l)
read -r rss_end hwm_end < <(rss "$DAEMON_PID")
curl -s "http://$LISTEN/api/v1/training/health" >"$OUT/health.json"
curl -s "http://$LISTEN/metrics" >"$OUT/metrics-end.txt"
events=$(curl -s "http://$LISTEN/api/v1/stats" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["next_position"])')
stop_daemon "$DAEMON_PID"
kill "$SAMPLER" 2>/dev/null || true
stop_first=$STOP_SECONDS
du_log=$(du -sm "$DATA/log" | cut -f1)
du_snap=$(du -sm "$DATA/projections" | cut -f1)
ls -l "$DATA/projections" >"$OUT/snapshots.txt"

restart() {
    restart_to_ready "$BIN" "$OUT/tutorlog.toml" "$DATA" "$LISTEN" "$OUT/daemon-$1.log"
    sleep 2
    read -r rss hwm < <(rss "$DAEMON_PID")
    stop_daemon "$DAEMON_PID"
    printf '%-52s ready %7.2f s   RSS %5d MB  peak %5d MB  stop %5.2f s\n' "$2" \
        "$READY_SECONDS" $((rss / 1024)) $((hwm / 1024)) "$STOP_SECONDS" >>"$OUT/summary.txt"
}

{
    echo "== load: $LEARNERS learners x 1 session, $CONCURRENCY clients: $(printf %.0f "$load_seconds") s"
    python3 - "$OUT/load.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["total"]
print(f"requests {t['requests']} ({t['requests_per_sec']:.0f}/s), ok {t['ok']}, failed {t['failed']}")
for e in r["endpoints"]:
    l = e["latency"]
    print(f"  {e['endpoint']:<32} {e['requests']:>8}  p50 {l['p50_ms']:.1f} ms  p99 {l['p99_ms']:.1f} ms  max {l['max_ms']:.0f} ms")
print("learning:", {k: r["learning"][k] for k in ("sessions_started", "sessions_completed", "sessions_abandoned") if k in r["learning"]})
EOF
    echo "training health: $(cat "$OUT/health.json")"
    echo "log: $events events, ${du_log} MiB; snapshots ${du_snap} MiB"
    echo "daemon RSS at the end of the load: $((rss_end / 1024)) MB, peak (VmHWM) $((hwm_end / 1024)) MB"
    echo "RSS samples (5 s): max $(awk '{if($2>m)m=$2} END{print int(m/1024)}' "$OUT/rss.txt") MB"
    echo "clean stop after the load: $(printf %.2f "$stop_first") s"
} >>"$OUT/summary.txt"

restart 1 "restart, snapshots + index checkpoint"
rm -rf "$DATA/projections"
restart 2 "restart, no snapshots (projections replay the log)"
rm -f "$DATA/log/index.ckpt"
restart 3 "restart, snapshots, no index checkpoint (full scan)"
machine_info end >>"$OUT/summary.txt"
cat "$OUT/summary.txt"
