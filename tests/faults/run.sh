#!/usr/bin/env bash
# Runs the four fault-injection suites (see tests/faults/README.md), one after
# the other, and prints how long each took.
#
#   tests/faults/run.sh          short mode (what CI runs; ~1.5 min on 2 cores)
#   tests/faults/run.sh --long   long mode (100 crash cycles etc.; ~1 h 15 min)
#
# Environment: TUTORLOG_FAULTS_SEED=N repeats a run; TUTORLOG_FAULTS_CYCLES=N
# overrides every suite's count; TUTORLOG_FAULTS_REQUIRE_MOUNT=1 turns "cannot
# mount a tmpfs" from a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

long=0
for arg in "$@"; do
  case "$arg" in
    --long) long=1 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

# The same profile as a plain `cargo test` (CI), so the build is shared with it
# rather than redone under other settings.
export CARGO_TERM_COLOR=never
if [ "$long" = 1 ]; then
  export TUTORLOG_FAULTS_LONG=1
fi

suites=(faults_crash faults_disk_full faults_corruption faults_provider)
echo "== building the fault suites"
cargo test --locked --no-run $(printf -- '--test %s ' "${suites[@]}")

failed=()
summary=()
for suite in "${suites[@]}"; do
  echo "== $suite ($([ "$long" = 1 ] && echo long || echo short) mode)"
  started=$(date +%s)
  if cargo test --locked --test "$suite" -- --nocapture --test-threads=1; then
    result=ok
  else
    result=FAILED
    failed+=("$suite")
  fi
  summary+=("$suite: $result in $(( $(date +%s) - started )) s")
done

echo "== fault suites"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
