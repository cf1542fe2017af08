#!/usr/bin/env bash
# Installs what the tests need (redis-server) and runs every check and test of the
# workspace: rustfmt, clippy (-D warnings) and the test suites (nextest when present).
# SKIP_LINT=1 skips rustfmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup)"
need_packages redis-server:redis-server

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
