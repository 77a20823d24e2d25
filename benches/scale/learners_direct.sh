#!/usr/bin/env bash
# Goal (c) with a direct writer: N learners with one complete session each,
# written through the store from a template recorded from the real daemon, then
# the real `tutorlog serve` replays it, restarts from snapshots, and takes live
# traffic on top (BENCHMARKS.md, "Scale and soak").
#
#   benches/scale/learners_direct.sh [LEARNERS] [OUT]      # default 1000000
#   BUILD_ONLY=1 benches/scale/learners_direct.sh          # only build the log
#
# Why not `tutorlog load --sessions 1000000` (benches/scale/learners.sh): on the
# shared 2-core machine the daemon serves ~2,500 requests/s, so the 6 M requests
# of a million sessions take 40+ minutes; the direct writer builds the same events
# (the template is 2,000 such sessions from `tutorlog load --mix 1:0:0`, copied
# with new learner names and fresh ids) in a few minutes. What it does not
# reproduce is a million learner actors spawned and passivated in one process:
# learners.sh at 100,000 measures that churn.
#
# 1. template + build: 2,000 learners x 1 session, copied to N learners;
# 2. first start, no snapshots: every projection replays the log (time to replay);
# 3. clean restart from snapshots + index checkpoint (restart-to-ready);
# 4. live: 60 s of `tutorlog load` (new learners) on top of the N-learner daemon,
#    RSS sampled every 2 s (snapshots of the N-learner models happen meanwhile);
# 5. clean stop and restart again.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/scale/lib.sh

LEARNERS=${1:-1000000}
OUT=${2:-target/scale/direct-$LEARNERS}
BIN=${BIN:-target/release/tutorlog}
BUILDER=${BUILDER:-target/release/examples/scale_log}
LISTEN=127.0.0.1:${PORT:-18184}
TEMPLATE_LEARNERS=2000

mkdir -p "$OUT"
printf '[learning]\nlearner_idle_secs = 5\nbatch_every_secs = 0\n' >"$OUT/tutorlog.toml"
{
    echo "command: $0 $*"
    echo "binary: $BIN ($(git rev-parse --short HEAD), $(stat -c %y "$BIN"))"
    machine_info start
    df -T "$OUT" | tail -1
} >"$OUT/summary.txt"

if [ ! -d "$OUT/template/log" ]; then
    start_daemon "$BIN" "$OUT/tutorlog.toml" "$OUT/template" "$LISTEN" "$OUT/template.log"
    wait_ready "http://$LISTEN" 60 >/dev/null
    "$BIN" load --target "http://$LISTEN" --mix 1:0:0 --concurrency 32 \
        --learners $TEMPLATE_LEARNERS --sessions $TEMPLATE_LEARNERS --duration 3600 --seed 3 \
        >"$OUT/template-load.txt" 2>&1
    stop_daemon "$DAEMON_PID"
fi
# build.txt is written only when the build finished: a log left by an
# interrupted build is not mistaken for a complete one.
if [ ! -f "$OUT/build.txt" ]; then
    rm -rf "$OUT/data"
    "$BUILDER" build --template "$OUT/template" --out "$OUT/data" \
        --copies $((LEARNERS / TEMPLATE_LEARNERS)) >"$OUT/build.txt.part" 2>"$OUT/build.log"
    mv "$OUT/build.txt.part" "$OUT/build.txt"
fi
cat "$OUT/build.txt" >>"$OUT/summary.txt"
# BUILD_ONLY=1: stop here (build the log ahead of a later measuring run).
[ -z "${BUILD_ONLY:-}" ] || exit 0
echo "log on disk: $(du -sm "$OUT/data/log" | cut -f1) MiB" >>"$OUT/summary.txt"

serve() {
    restart_to_ready "$BIN" "$OUT/tutorlog.toml" "$OUT/data" "$LISTEN" "$OUT/daemon-$1.log"
    sleep 2
    read -r rss hwm < <(rss "$DAEMON_PID")
    printf '%-50s ready %7.2f s   RSS %5d MB  peak %5d MB\n' "$2" "$READY_SECONDS" \
        $((rss / 1024)) $((hwm / 1024)) >>"$OUT/summary.txt"
    grep -h "log index built" "$OUT/daemon-$1.log" | tail -1 | sed 's/^.*INFO //' >>"$OUT/summary.txt"
}
stop() {
    stop_daemon "$DAEMON_PID"
    printf '  clean stop %.2f s\n' "$STOP_SECONDS" >>"$OUT/summary.txt"
}

rm -rf "$OUT/data/projections"
serve a "first start, no snapshots (replay)"
curl -s "http://$LISTEN/api/v1/training/health" >>"$OUT/summary.txt"
echo >>"$OUT/summary.txt"
stop
du -sm "$OUT/data/projections" >>"$OUT/summary.txt"
ls -l "$OUT/data/projections" >>"$OUT/summary.txt"
serve b "clean restart: snapshots + index checkpoint"
(
    while kill -0 "$DAEMON_PID" 2>/dev/null; do
        echo "$(date +%s) $(rss "$DAEMON_PID")"
        sleep 2
    done
) >"$OUT/rss-live.txt" 2>/dev/null &
SAMPLER=$!
"$BIN" load --target "http://$LISTEN" --mix 1:0:0 --concurrency 64 --learners 20000 \
    --duration 60 --seed 11 --json "$OUT/live.json" >"$OUT/live.txt" 2>&1
read -r rss hwm < <(rss "$DAEMON_PID")
{
    echo "live: 60 s of load on top: $(grep -E '^total' "$OUT/live.txt")"
    grep -E 'POST /api/v1/training/(start|round) ' "$OUT/live.txt"
    grep -A3 'error samples' "$OUT/live.txt" | head -4
    echo "  RSS after the live load $((rss / 1024)) MB, peak (VmHWM since the restart) $((hwm / 1024)) MB"
} >>"$OUT/summary.txt"
stop
kill "$SAMPLER" 2>/dev/null || true
serve c "clean restart after the live load"
stop
machine_info end >>"$OUT/summary.txt"
cat "$OUT/summary.txt"
