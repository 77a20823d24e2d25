#!/usr/bin/env bash
# Installs TensorZero's gateway (the `tensorzero` package from PyPI, whose wheel
# holds the Rust gateway) into target/tensorzero-venv for the gateway_overhead
# bench, which finds it there by itself (or pass --tensorzero PYTHON).
#
# Pinned so that a rerun measures the same peer; TENSORZERO_VERSION overrides.
set -euo pipefail
here="$(dirname "$0")"
"$here/venv_install.sh" target/tensorzero-venv "tensorzero==${TENSORZERO_VERSION:-2026.6.0}" tensorzero
echo "installed: target/tensorzero-venv/bin/python"
