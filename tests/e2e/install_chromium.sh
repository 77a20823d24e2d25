#!/usr/bin/env bash
# Installs Debian's `chromium` for tests/dashboard_e2e.rs when it is missing and
# this machine can (root, apt-get). Quiet, and it always exits 0: whether a
# missing browser skips the test or fails it is the test's call
# (TUTORLOG_E2E_REQUIRE_CHROMIUM=1 makes it a failure). Called by .ci/run.
set -u

if command -v chromium >/dev/null 2>&1; then
  echo "chromium: already installed ($(chromium --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium: not installed, and not root (run: apt-get install chromium)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not installed, and no apt-get on this machine"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
install() { apt-get install -y -q chromium >>"$log" 2>&1; }
# A fresh machine may have no package lists yet: update only when needed.
if install || { apt-get update -q >>"$log" 2>&1 && install; }; then
  echo "chromium: installed with apt-get ($(chromium --version 2>/dev/null || echo 'version unknown'))"
else
  echo "chromium: apt-get install chromium failed; its last lines:"
  tail -n 5 "$log"
fi
rm -f "$log"
exit 0
