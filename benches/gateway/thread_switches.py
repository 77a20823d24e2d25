#!/usr/bin/env python3
"""Per-thread CPU, run-queue delay and context switches of one gateway_overhead
target during one load point, grouped by thread name.

    mkdir -p target/tmp && cargo bench --bench gateway_overhead -- --targets direct,fast --loads r1000 \
        --rounds 1 --seconds 12 --no-litellm --no-tensorzero > target/tmp/bench.txt &
    benches/gateway/thread_switches.py target/tmp/bench.txt "tutorlog fast" r1000

It waits for the target's "on ADDR, pid N" line in the bench's output, reads
/proc/N/task/*/{comm,schedstat,status}, waits for the "== LOAD" header (the bench
prints it once that load's slices are done), and reads them again. With one
target besides `direct`, the difference is that target's slice (plus its warm-up
and the idle wait after it). Columns: threads of that name, CPU ms, ms spent
runnable but waiting for a CPU (the guest scheduler's run-queue delay), times
scheduled in, voluntary switches (it blocked) and involuntary ones (it was
preempted).
"""

import os
import re
import sys
import time


def snapshot(pid):
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            name = open(f"{base}/comm").read().strip()
            cpu, delay, runs = map(int, open(f"{base}/schedstat").read().split())
            status = open(f"{base}/status").read()
        except OSError:
            continue  # the thread ended between the listing and the reads
        voluntary = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        involuntary = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        threads[tid] = (name, cpu, delay, runs, voluntary, involuntary)
    return threads


def wait_for(path, pattern, deadline_s):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        try:
            match = re.search(pattern, open(path).read(), re.M)
        except FileNotFoundError:
            match = None
        if match:
            return match
        time.sleep(0.05)
    sys.exit(f"{pattern!r} did not appear in {path} within {deadline_s} s")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    log, label, load = sys.argv[1:]
    pid = int(wait_for(log, rf"^{re.escape(label)}\s+on \S+, pid (\d+)", 600).group(1))
    before = snapshot(pid)
    wait_for(log, rf"^== {re.escape(load)}:", 3600)
    after = snapshot(pid)
    groups = {}
    for tid, now in after.items():
        was = before.get(tid, (now[0], 0, 0, 0, 0, 0))
        # tokio numbers nothing, but the blocking pool's threads share one name.
        row = groups.setdefault(now[0], [0, 0, 0, 0, 0, 0])
        row[0] += 1
        for i in range(1, 6):
            row[i] += now[i] - was[i]
    print(f"{'thread':<20}{'n':>3}{'cpu ms':>9}{'rq ms':>9}{'runs':>8}{'vol':>8}{'invol':>7}")
    for name, row in sorted(groups.items(), key=lambda kv: -kv[1][3]):
        print(f"{name:<20}{row[0]:>3}{row[1] / 1e6:>9.1f}{row[2] / 1e6:>9.1f}"
              f"{row[3]:>8}{row[4]:>8}{row[5]:>7}")


if __name__ == "__main__":
    main()
