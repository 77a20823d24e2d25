#!/usr/bin/env bash
# Installs one pinned PyPI package into its own venv under target/ for the
# gateway_overhead bench's peers (setup_litellm.sh, setup_tensorzero.sh).
#
#   venv_install.sh VENV REQUIREMENT DISTRIBUTION
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="$1" requirement="$2" distribution="$3"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "$requirement"
"$venv/bin/python" -c "import importlib.metadata as m; print('$distribution', m.version('$distribution'))"
