#!/usr/bin/env bash
# Property-based API check: schemathesis (pip) reads /openapi.json from a running
# daemon, generates requests for every operation (valid and invalid ones) and
# fails on any 5xx or any answer the document does not allow (status, content
# type, headers, body schema).
#
#   tests/e2e/schemathesis.sh            # CI short mode: 20 examples per operation
#   ST_MAX_EXAMPLES=200 tests/e2e/schemathesis.sh
#   tests/e2e/schemathesis.sh --phases fuzzing   # extra arguments go to `schemathesis run`
#
# Uses a virtualenv under target/ (nothing outside the checkout changes), the
# debug binary (built with --locked if missing or stale), a mock provider and a
# daemon on free loopback ports with a temporary data dir; both are stopped on
# exit. Exit status: schemathesis's (0 = no failure).
set -euo pipefail
cd "$(dirname "$0")/../.."

max_examples="${ST_MAX_EXAMPLES:-20}"
venv="target/schemathesis-venv"
bin="target/debug/tutorlog"

if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis>=4.32,<5"
fi
cargo build --locked --quiet --bin tutorlog

work="$(mktemp -d)"
pids=()
cleanup() {
  # Stop only what this script started, by process id.
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The mock provider prints "... listening on http://127.0.0.1:PORT" first.
TUTORLOG_LOG=error "$bin" mock-provider --listen 127.0.0.1:0 >"$work/mock.out" 2>"$work/mock.err" &
pids+=("$!")
for _ in $(seq 100); do
  mock_url="$(head -n1 "$work/mock.out" 2>/dev/null | awk '{print $NF}')"
  case "$mock_url" in http://*) break ;; esac
  sleep 0.1
done
case "${mock_url:-}" in
  http://*) ;;
  *) echo "schemathesis.sh: the mock provider did not start" >&2; cat "$work/mock.err" >&2; exit 1 ;;
esac

admin_token="st-admin-$RANDOM$RANDOM"
api_key="sk-st-$RANDOM$RANDOM"
port="$(free_port)"
cat >"$work/tutorlog.toml" <<EOF
[server]
listen = "127.0.0.1:$port"

[gateway]
api_keys = [{ key_env = "ST_GATEWAY_KEY", user_id = "schemathesis" }]
reservations = "strict"
default_max_tokens = 16

[[providers]]
name = "mock"
kind = "mock"
base_url = "$mock_url/v1"
priority = 1
timeout_ms = 3000
models = [{ name = "mock-1", input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }]
EOF

TUTORLOG_LOG=warn TUTORLOG_ADMIN_TOKEN="$admin_token" ST_GATEWAY_KEY="$api_key" \
  "$bin" serve --config "$work/tutorlog.toml" --data-dir "$work/data" \
  >"$work/serve.out" 2>"$work/serve.err" &
pids+=("$!")
base="http://127.0.0.1:$port"
ready=""
for _ in $(seq 300); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$base/readyz" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "schemathesis.sh: the daemon was not ready within 30 s" >&2
  cat "$work/serve.err" >&2
  exit 1
fi

# Each security scheme of the document gets its own credential: the admin
# token for `admin_token`, the gateway key for `api_key`.
cat >"$work/schemathesis.toml" <<EOF
[auth.openapi.admin_token]
bearer = "$admin_token"

[auth.openapi.api_key]
bearer = "$api_key"
EOF

# Every check, except `positive_data_acceptance`: it expects every request the
# document allows to succeed, and some rules cannot be written in OpenAPI (at
# most one of `user` and `provider`; a version that exists; params that fit the
# key's algorithm; `max_tokens` up to the configured limit; a `min_position`
# the log has reached; `5.0` read as an integer). Those answer a documented 400,
# which is no break of the document.
# One worker: CPython 3.11
# before 3.11.8 can fail `ast.parse` in concurrent threads (hypothesis calls it
# to describe filters), which schemathesis reports as a runtime error.
status=0
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --max-examples "$max_examples" \
  --seed 1 \
  --workers 1 \
  --request-timeout 10 \
  --report junit --report-dir target/schemathesis-report \
  "$@" || status=$?

if [ "$status" -ne 0 ]; then
  echo "schemathesis.sh: failures (daemon log follows)" >&2
  tail -n 50 "$work/serve.err" >&2
fi
exit "$status"
