# Shared helpers of the scale benchmark scripts (sourced, not run).

# machine_info LABEL: one block of what the machine looked like (it is shared).
machine_info() {
    echo "== machine ($1): $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "memory: $(grep MemTotal /proc/meminfo | awk '{printf "%.1f GiB", $2/1048576}')"
    echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "cpu pressure: $(head -1 /proc/pressure/cpu)"
}

# rss PID: "VmRSS_kB VmHWM_kB" of a process.
rss() {
    awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END{print r, h}' "/proc/$1/status"
}

# wait_ready URL TIMEOUT_S: polls URL/readyz every 10 ms until it answers 200;
# prints the seconds since the call (or fails after TIMEOUT_S).
wait_ready() {
    local url=$1 timeout=$2 start now code
    start=$(date +%s.%N)
    while true; do
        code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$url/readyz" || true)
        now=$(date +%s.%N)
        if [ "$code" = 200 ]; then
            echo "$now - $start" | bc -l
            return 0
        fi
        if (($(echo "$now - $start > $timeout" | bc -l))); then
            echo "not ready after ${timeout}s (last status $code)" >&2
            return 1
        fi
        sleep 0.01
    done
}

# start_daemon BIN CONFIG DATA_DIR LISTEN LOG [ENV...]: starts `serve` in the
# background; sets DAEMON_PID.
start_daemon() {
    local bin=$1 config=$2 data=$3 listen=$4 log=$5
    shift 5
    env "$@" "$bin" serve --config "$config" --data-dir "$data" --listen "$listen" >>"$log" 2>&1 &
    DAEMON_PID=$!
}

# stop_daemon PID: SIGTERM, waits; sets STOP_SECONDS (how long the clean shutdown
# took: final snapshots, the log's last sync and index checkpoint).
stop_daemon() {
    local start
    start=$(date +%s.%N)
    kill -TERM "$1"
    while kill -0 "$1" 2>/dev/null; do sleep 0.02; done
    STOP_SECONDS=$(echo "$(date +%s.%N) - $start" | bc -l)
}

# restart_to_ready BIN CONFIG DATA_DIR LISTEN LOG [ENV...]: exec of `serve` to the
# first 200 from /readyz; sets DAEMON_PID and READY_SECONDS.
restart_to_ready() {
    local start
    start=$(date +%s.%N)
    start_daemon "$@"
    wait_ready "http://$4" 1800 >/dev/null || return 1
    READY_SECONDS=$(echo "$(date +%s.%N) - $start" | bc -l)
}
