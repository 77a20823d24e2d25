#!/usr/bin/env bash
# Installs TensorZero's gateway (the `tensorzero` package from PyPI, whose wheel
# holds the Rust gateway) into target/tensorzero-venv for the gateway_overhead
# bench, which finds it there by itself (or pass --tensorzero PYTHON).
#
# Pinned so that a rerun measures the same peer; TENSORZERO_VERSION overrides.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION="${TENSORZERO_VERSION:-2026.6.0}"
python3 -m venv target/tensorzero-venv
target/tensorzero-venv/bin/pip install --quiet --upgrade pip
target/tensorzero-venv/bin/pip install --quiet "tensorzero==${VERSION}"
target/tensorzero-venv/bin/python -c 'import importlib.metadata as m; print("tensorzero", m.version("tensorzero"))'
echo "installed: target/tensorzero-venv/bin/python"
