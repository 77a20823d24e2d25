#!/usr/bin/env bash
# Installs LiteLLM's proxy into target/litellm-venv for the gateway_overhead bench
# (which finds it there by itself; or pass --litellm PATH).
#
# Pinned to 1.106.12: the newest release whose `proxy` extra installs from PyPI
# alone (from 1.108 it needs a `litellm-proxy` package that is not published), and
# older than 1.107.0, the release withdrawn after its supply-chain compromise.
set -euo pipefail
here="$(dirname "$0")"
"$here/venv_install.sh" target/litellm-venv "litellm[proxy]==${LITELLM_VERSION:-1.106.12}" litellm
echo "installed: target/litellm-venv/bin/litellm"
