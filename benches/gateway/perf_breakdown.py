#!/usr/bin/env python3
"""Where a tutorlog daemon's CPU goes, from `perf script` output.

    perf script -i fast.data -F comm,tid,ip,sym > fast.txt
    benches/gateway/perf_breakdown.py fast.txt [--leaves N]

Each sample is charged to one *component*: the task or thread it ran for (the
outermost frame that names one: a projection runner, the HTTP connection, the
gateway call, an actor, the log writer...), and separately to a *leaf kind*
(kernel, allocator, memcpy, ...). Prints both tables, their cross-table, and the
hottest leaf symbols. Used for BENCHMARKS.md, "Gateway".
"""

import re
import sys
from collections import Counter, defaultdict

# (component, pattern searched from the root of the stack down); first match wins
# in this order, so more specific entries come first.
COMPONENTS = [
    ("log writer thread", r"tutorlog_store::embedded::writer::Writer::run|embedded::writer::"),
    ("log zero-fill thread", r"segment::zero_fill|filler"),
    ("projection snapshots", r"runner_task::.*snapshot|write_snapshot"),
    ("subscription reads (spawn_blocking)", r"read_all_sync|read_stream_sync|LogSubscription"),
    ("projection runners (decode + fold)", r"tutorlog_projections::"),
    ("budget actor", r"Pipelined<tutorlog_actors::providers::budget|budget::Budget"),
    ("circuit actor", r"Pipelined<tutorlog_actors::providers::circuit|circuit::Circuit"),
    ("pipeline actors (other)", r"tutorlog_actors::pipeline::"),
    ("ractor runtime", r"ractor::"),
    ("request recording (append task)", r"Gateway::record|EmbeddedStore as tutorlog_store::EventStore>::append"),
    ("provider call (reqwest/hyper client)", r"reqwest::|hyper_util::client|hyper::client|OpenAi as tutorlog::gateway::adapters::Adapter"),
    ("gateway call (plan, route, settle)", r"tutorlog::gateway::service::"),
    ("HTTP handler (JSON in/out)", r"tutorlog::http::gateway::chat_completions|ApiJson"),
    ("HTTP server (hyper/axum)", r"hyper::proto|hyper::server|axum::|tower::|hyper_util::server|hyper_util::service"),
    ("metrics", r"metrics::|metrics_util|metrics_exporter"),
    ("tokio scheduler / timers / I/O driver", r"tokio::runtime::"),
]

LEAVES = [
    ("kernel: scheduling", r"^(finish_task_switch|__schedule|schedule|_raw_spin_unlock_irq|futex|try_to_wake_up|__futex|ttwu|select_task_rq|dequeue|enqueue)"),
    ("kernel: page zeroing / faults", r"^(clear_page|do_anonymous_page|handle_mm_fault|__handle_mm_fault|do_fault)"),
    ("kernel: other", None),  # filled by the [k] marker
    ("allocator (mimalloc)", r"^(_?mi_|mi_)"),
    ("memcpy/memmove/memset", r"^__mem(move|cpy|set|cmp)"),
    ("BLAKE3 / CRC32C", r"blake3|crc32c"),
    ("event decode (bincode/serde)", r"bincode|Event::decode|decode_record|codec::"),
    ("JSON (serde_json)", r"serde_json"),
]


def parse(path):
    samples = []
    with open(path, errors="replace") as handle:
        header, frames = None, []
        for line in handle:
            if not line.strip():
                if header is not None:
                    samples.append((header, frames))
                header, frames = None, []
                continue
            if not line.startswith("\t") and not line.startswith("        "):
                header = line.split()
                frames = []
            else:
                parts = line.strip().split(None, 1)
                symbol = parts[1] if len(parts) > 1 else "?"
                # Kernel frames: addresses in the top half (perf prints no marker).
                if parts and parts[0].startswith("ffffffff"):
                    symbol = "[k] " + symbol
                frames.append(symbol)
        if header is not None:
            samples.append((header, frames))
    return samples


def component(header, frames):
    comm = header[0] if header else "?"
    if comm.startswith("tutorlog-log-wr"):
        return "log writer thread"
    if comm.startswith("tutorlog-log-fi"):
        return "log zero-fill thread"
    root_first = list(reversed(frames))
    for name, pattern in COMPONENTS:
        regex = re.compile(pattern)
        if any(regex.search(f) for f in root_first):
            return name
    if any("[unknown]" in f for f in frames[:1]) or not frames:
        return "unknown"
    return "other"


def leaf_kind(frames):
    if not frames:
        return "unknown"
    leaf = frames[0]
    kernel = leaf.startswith("[k] ")
    symbol = re.sub(r"\s*\(.*\)$", "", leaf.removeprefix("[k] "))
    for name, pattern in LEAVES:
        if pattern and name.startswith("kernel") != kernel:
            continue
        if pattern and re.search(pattern, symbol):
            return name
    return "kernel: other" if kernel else "user code (other)"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    leaves_shown = 25
    if "--leaves" in sys.argv:
        leaves_shown = int(sys.argv[sys.argv.index("--leaves") + 1])
    samples = parse(sys.argv[1])
    total = len(samples)
    by_component, by_leaf, cross, symbols = Counter(), Counter(), defaultdict(Counter), Counter()
    for header, frames in samples:
        c, l = component(header, frames), leaf_kind(frames)
        by_component[c] += 1
        by_leaf[l] += 1
        cross[c][l] += 1
        if frames:
            symbols[re.sub(r"\+0x[0-9a-f]+$", "", frames[0])[:110]] += 1
    print(f"{total} samples")
    print("\n== by component (task or thread the sample ran for) ==")
    for name, count in by_component.most_common():
        top = ", ".join(f"{k} {v * 100 / count:.0f}%" for k, v in cross[name].most_common(3))
        print(f"{count * 100 / total:6.1f}%  {name:<40} ({top})")
    print("\n== by leaf kind ==")
    for name, count in by_leaf.most_common():
        print(f"{count * 100 / total:6.1f}%  {name}")
    print(f"\n== hottest leaf symbols (top {leaves_shown}) ==")
    for name, count in symbols.most_common(leaves_shown):
        print(f"{count * 100 / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
