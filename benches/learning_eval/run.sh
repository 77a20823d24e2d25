#!/usr/bin/env bash
# Offline evaluation of the mastery algorithms on real learner data (issue 4, item 6).
# Downloads irtorch from PyPI into benches/learning_eval/data/ (gitignored), converts
# its Swedish SAT and national mathematics answers to mastery CSVs, then runs
# `tutorlog algo predict` (v1 BKT, v2 Elo/IRT) and `tutorlog algo evaluate` on each.
#
# Usage: benches/learning_eval/run.sh [TUTORLOG_BINARY]   (from the repository root)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-target/debug/tutorlog}"
data="$here/data"
mkdir -p "$data"
wheel="$(ls "$data"/irtorch-*.whl 2>/dev/null | head -1 || true)"
if [[ -z "$wheel" ]]; then
  pip download irtorch --no-deps -d "$data"
  wheel="$(ls "$data"/irtorch-*.whl | head -1)"
fi
python3 "$here/convert_irtorch.py" "$wheel" "$data"
for set in swesat22b_quant swesat22b_verb mathematics_1 mathematics_2; do
  for version in 1 2; do
    echo "== $set, mastery v$version"
    "$bin" algo predict --algo mastery --version "$version" \
      --input "$data/$set.csv" --output "$data/$set.pred.v$version.csv"
    "$bin" algo evaluate --input "$data/$set.pred.v$version.csv"
  done
done
