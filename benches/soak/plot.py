#!/usr/bin/env python3
"""Plots a soak run (benches/soak/run.sh) over time: daemon RSS, open file
descriptors, p99 latency per endpoint (per 10 s load window) and projection lag.

    python3 -m venv target/soak-venv && target/soak-venv/bin/pip install matplotlib
    target/soak-venv/bin/python benches/soak/plot.py target/soak benches/soak/soak.png
"""

import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def samples(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) < 5:
                continue
            rows.append(
                (int(parts[0]), int(parts[1]) / 1024, int(parts[2]), int(float(parts[3])), float(parts[4]))
            )
    return rows


def windows(directory):
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "windows", "*.json"))):
        with open(path) as f:
            try:
                report = json.load(f)
            except json.JSONDecodeError:
                continue
        p99 = {e["endpoint"]: e["latency"]["p99_ms"] for e in report["endpoints"] if e["requests"] > 0}
        out.append((os.path.getmtime(path), p99, report["total"]))
    return out


def main():
    directory, output = sys.argv[1], sys.argv[2]
    rows = samples(os.path.join(directory, "samples.txt"))
    wins = windows(directory)
    start = rows[0][0]
    minutes = [(r[0] - start) / 60 for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    axes[0].plot(minutes, [r[1] for r in rows], color="tab:blue")
    axes[0].set_ylabel("RSS (MB)")
    axes[0].set_ylim(bottom=0)
    axes[1].plot(minutes, [r[2] for r in rows], color="tab:green")
    axes[1].set_ylabel("open fds")
    axes[1].set_ylim(bottom=0)
    endpoints = sorted({name for _, p99, _ in wins for name in p99})
    for name in endpoints:
        xs = [(t - start) / 60 for t, p99, _ in wins if name in p99]
        ys = [p99[name] for _, p99, _ in wins if name in p99]
        axes[2].plot(xs, ys, label=name, linewidth=1)
    axes[2].set_ylabel("p99 per 10 s window (ms)")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=6, loc="upper left", ncol=2)
    axes[3].plot(minutes, [r[4] for r in rows], color="tab:red")
    axes[3].set_ylabel("max projection lag (events)")
    axes[3].set_xlabel("minutes")
    axes[3].set_ylim(bottom=0)
    total = sum(w[2]["requests"] for w in wins)
    errors = sum(w[2]["server_errors"] for w in wins)
    fig.suptitle(
        f"soak: {len(wins)} windows, {total} requests ({errors} 5xx), log at {rows[-1][3]:,} events",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(output, dpi=80)
    print(f"wrote {output}: {os.path.getsize(output)} bytes")


if __name__ == "__main__":
    main()
