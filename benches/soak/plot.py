#!/usr/bin/env python3
"""Plots a soak run (benches/soak/run.sh) over time: daemon RSS, open file
descriptors, p99 latency per endpoint (per 10 s load window) and projection lag.

    python3 -m venv target/soak-venv && target/soak-venv/bin/pip install matplotlib
    target/soak-venv/bin/python benches/soak/plot.py target/soak benches/soak/soak.png \
        [--loadavg FILE] [--span START_UNIX:END_UNIX:LABEL ...]

--loadavg: "unix_time load1" lines (the machine is shared: its load is drawn so a
bump in latency can be read against it). --span: a shaded interval, e.g. another
heavy job that ran during the soak.
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


def loadavg(path):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                out.append((int(parts[0]), float(parts[1])))
    return out


def main():
    directory, output = sys.argv[1], sys.argv[2]
    extra = sys.argv[3:]
    load_file, spans = None, []
    while extra:
        flag, value, extra = extra[0], extra[1], extra[2:]
        if flag == "--loadavg":
            load_file = value
        elif flag == "--span":
            begin, end, label = value.split(":", 2)
            spans.append((int(begin), int(end), label))
        else:
            sys.exit(f"unknown flag {flag}")
    rows = samples(os.path.join(directory, "samples.txt"))
    wins = windows(directory)
    start = rows[0][0]
    minutes = [(r[0] - start) / 60 for r in rows]
    panels = 5 if load_file else 4
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.4 * panels + 0.5), sharex=True)
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
    axes[3].set_ylabel("max projection lag\n(events, at each sample)")
    axes[3].set_ylim(bottom=0)
    if load_file:
        loads = loadavg(load_file)
        axes[4].plot([(t - start) / 60 for t, _ in loads], [v for _, v in loads], color="tab:gray")
        axes[4].set_ylabel("machine load avg (1 min)\n2 cores, shared")
        axes[4].set_ylim(bottom=0)
    for begin, end, label in spans:
        for i, ax in enumerate(axes):
            ax.axvspan((begin - start) / 60, (end - start) / 60, color="orange", alpha=0.15,
                       label=label if i == 0 else None)
    if spans:
        axes[0].legend(fontsize=7, loc="lower right")
    axes[-1].set_xlabel("minutes")
    total = sum(w[2]["requests"] for w in wins)
    errors = sum(w[2]["server_errors"] for w in wins)
    fig.suptitle(
        f"soak: {len(wins)} windows, {total} requests ({errors} 5xx), log at {max(r[3] for r in rows):,} events",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(output, dpi=80)
    print(f"wrote {output}: {os.path.getsize(output)} bytes")


if __name__ == "__main__":
    main()
