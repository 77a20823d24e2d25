#!/usr/bin/env bash
# Installs LiteLLM's proxy into target/litellm-venv for the gateway_overhead bench
# (which finds it there by itself; or pass --litellm PATH).
#
# Pinned to 1.106.12: the newest release whose `proxy` extra installs from PyPI
# alone (from 1.108 it needs a `litellm-proxy` package that is not published), and
# older than 1.107.0, the release withdrawn after its supply-chain compromise.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION="${LITELLM_VERSION:-1.106.12}"
python3 -m venv target/litellm-venv
target/litellm-venv/bin/pip install --quiet --upgrade pip
target/litellm-venv/bin/pip install --quiet "litellm[proxy]==${VERSION}"
target/litellm-venv/bin/python -c 'import importlib.metadata as m; print("litellm", m.version("litellm"))'
echo "installed: target/litellm-venv/bin/litellm"
