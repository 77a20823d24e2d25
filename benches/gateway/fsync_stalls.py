#!/usr/bin/env python3
"""The filesystem's own fsync tail, with nothing of tutorlog running.

    benches/gateway/fsync_stalls.py DIR SECONDS

256-byte pwrite + fdatasync cycles on a preallocated, synced 64 MiB file in DIR
(the log's pattern, as the bench's raw slices), for SECONDS. Prints the cycle
count, the CPU per cycle (user + system, from getrusage), p50/p99/max, and every
cycle slower than 5 ms with its wall-clock second: on ext4 these come in bursts
at the journal's commit interval (5 s by default), when it writes back other
files' dirty data. Used for BENCHMARKS.md, "Gateway" ("The strict tail").
"""

import os
import resource
import sys
import time


def main() -> None:
    directory, seconds = sys.argv[1], float(sys.argv[2])
    path = os.path.join(directory, "fsync-stalls.bin")
    size = 64 << 20
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"\0" * size, 0)
        os.fsync(fd)
        record = b"x" * 256
        latencies, slow = [], []
        offset = 0
        before = resource.getrusage(resource.RUSAGE_SELF)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            os.pwrite(fd, record, offset)
            os.fdatasync(fd)
            taken = time.perf_counter() - start
            latencies.append(taken)
            if taken > 0.005:
                slow.append((time.strftime("%H:%M:%S"), round(taken * 1000, 1)))
            offset = (offset + 4096) % (size - 4096)
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        os.close(fd)
        os.unlink(path)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    latencies.sort()
    n = len(latencies)
    print(
        f"{n} cycles; cpu/cycle {cpu / n * 1000:.3f} ms; "
        f"p50 {latencies[n // 2] * 1000:.3f} ms, p99 {latencies[int(n * 0.99)] * 1000:.3f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms"
    )
    print("slower than 5 ms:", slow)


if __name__ == "__main__":
    main()
