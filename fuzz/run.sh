#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `fuzz/run.sh [SECONDS_PER_TARGET]`
# (default 60). Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); uses a
# nightly toolchain when rustup has one, else RUSTC_BOOTSTRAP=1 on stable.
# A crash stops the run with its input in fuzz/artifacts/<target>/: turn it into a
# regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
  exit 2
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q nightly; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
for target in record_decoder envelope_decoder config_parser; do
  mkdir -p "corpus/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  echo "== $target (${seconds}s)"
  cargo "${toolchain[@]}" fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>&1 | grep -E 'stat::|Done|ERROR|panicked|SUMMARY' || true
  if ls "artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "crash found in $target: $(ls artifacts/$target/crash-*)" >&2
    exit 1
  fi
done
echo "no crash"
