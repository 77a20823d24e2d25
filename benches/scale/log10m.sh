#!/usr/bin/env bash
# Goal (d): a 10,000,000-event log; replay rate and restart-to-ready of the real
# `tutorlog serve` (BENCHMARKS.md, "Scale and soak").
#
#   benches/scale/log10m.sh [EVENTS] [OUT]     # OPEN_REPEAT=1: one timing of each open, not 3
#
# 1. template: a release daemon with the mock provider under `tutorlog load` (mix
#    6:2:2: training, challenges, gateway chat) for 60 s; its log is the template;
# 2. build: `scale_log build` replicates the template through the store until the
#    log holds EVENTS events (learner, request, budget, circuit, router streams);
# 3. open: `scale_log open` times a full scan and the opens from the checkpoint;
# 4. serve: exec to the first 200 from /readyz, with the mock provider configured
#    (so the budget and circuit actors load their streams as in production):
#    a. first start: no snapshots, every projection replays the log (replay rate);
#    b. clean restart: snapshots + index checkpoint (target <= 3 s);
#    c. snapshots, no index checkpoint (full scan);
#    d. after kill -9: the periodic checkpoint and snapshots only.
# Output in OUT (default target/scale/log-EVENTS); summary in OUT/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/scale/lib.sh

EVENTS=${1:-10000000}
OUT=${2:-target/scale/log-$EVENTS}
BIN=${BIN:-target/release/tutorlog}
BUILDER=${BUILDER:-target/release/examples/scale_log}
MOCK=127.0.0.1:${MOCK_PORT:-18190}
LISTEN=127.0.0.1:${PORT:-18182}

mkdir -p "$OUT"
cat >"$OUT/tutorlog.toml" <<EOF
[learning]
learner_idle_secs = 5
batch_every_secs = 0

[gateway]
api_keys = [{ key = "sk-local-dev", user_id = "dev" }]

[[providers]]
name = "mock"
kind = "mock"
base_url = "http://$MOCK/v1"
monthly_budget_usd = 1000000.0
models = [{ name = "mock", input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }]
EOF
{
    echo "command: $0 $*"
    echo "binary: $BIN ($(git rev-parse --short HEAD), $(stat -c %y "$BIN"))"
    machine_info start
    df -T "$OUT" | tail -1
} >"$OUT/summary.txt"

"$BIN" mock-provider --listen "$MOCK" >"$OUT/mock.log" 2>&1 &
MOCK_PID=$!
trap 'kill $MOCK_PID 2>/dev/null || true' EXIT
sleep 0.5

if [ ! -d "$OUT/template/log" ]; then
    start_daemon "$BIN" "$OUT/tutorlog.toml" "$OUT/template" "$LISTEN" "$OUT/template.log"
    wait_ready "http://$LISTEN" 60 >/dev/null
    "$BIN" load --target "http://$LISTEN" --mix 6:2:2 --learners 4000 --concurrency 32 \
        --duration 60 --seed 7 >"$OUT/template-load.txt" 2>&1
    stop_daemon "$DAEMON_PID"
fi
echo "template: $(grep -m1 'highest log position' "$OUT/template-load.txt" || true)" >>"$OUT/summary.txt"

if [ ! -d "$OUT/data/log" ]; then
    "$BUILDER" build --template "$OUT/template" --out "$OUT/data" --events "$EVENTS" \
        >>"$OUT/summary.txt" 2>"$OUT/build.log"
fi
echo "log on disk: $(du -sm "$OUT/data/log" | cut -f1) MiB" >>"$OUT/summary.txt"
"$BUILDER" open --dir "$OUT/data" --repeat "${OPEN_REPEAT:-3}" >>"$OUT/summary.txt" 2>"$OUT/open.log"

serve() {
    restart_to_ready "$BIN" "$OUT/tutorlog.toml" "$OUT/data" "$LISTEN" "$OUT/daemon-$1.log"
    sleep 1
    read -r rss hwm < <(rss "$DAEMON_PID")
    if [ "${3:-stop}" = kill ]; then
        # Some traffic first, so the restart has a tail past the last checkpoint
        # and snapshots to recover.
        "$BIN" load --target "http://$LISTEN" --mix 6:2:2 --learners 4000 --concurrency 32 \
            --duration 20 --seed 8 >"$OUT/kill-load.txt" 2>&1
        kill -KILL "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null || true
        STOP_SECONDS=0
    else
        stop_daemon "$DAEMON_PID"
    fi
    printf '%-58s ready %7.2f s   RSS %5d MB  peak %5d MB  stop %5.2f s\n' "$2" \
        "$READY_SECONDS" $((rss / 1024)) $((hwm / 1024)) "$STOP_SECONDS" >>"$OUT/summary.txt"
    grep -h "log index built" "$OUT/daemon-$1.log" | tail -1 | sed 's/^.*INFO //' >>"$OUT/summary.txt"
}

rm -rf "$OUT/data/projections"
serve a "a. first start: no snapshots (replay of every event)"
serve b "b. clean restart: snapshots + index checkpoint"
serve b2 "b. clean restart again"
rm -f "$OUT/data/log/index.ckpt"
serve c "c. snapshots, no index checkpoint (full scan)"
serve d1 "d. start, 20 s of load, then kill -9" kill
serve d "d. restart after kill -9 (periodic checkpoint/snapshots)"
du -sm "$OUT/data/projections" >>"$OUT/summary.txt"
ls -l "$OUT/data/projections" >>"$OUT/summary.txt"
machine_info end >>"$OUT/summary.txt"
cat "$OUT/summary.txt"
