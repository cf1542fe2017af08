#!/usr/bin/env bash
# The open-loop throughput benchmark: starts two zero-delay simulated processors and the
# full local stack, then steps fixed arrival rates up until p99 passes the limit, against
# (a) one gateway directly and (b) nginx + two gateways. Samples CPU and RSS of every
# stack process. Writes load-tests/results/throughput-{gateway,nginx}.{json,svg}.
#
# Environment: RATES (5000,10000,20000,40000,60000), STEP_SECS (5), P99_LIMIT_MS (5),
# RESULTS (load-tests/results).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup)"
need_packages redis-server:redis-server nginx:nginx-light curl:curl

say "building (release)"
cargo build --release --locked --workspace --bins
BIN=target/release
RUN_DIR=${RUN_DIR:-$PWD/.run}
RESULTS=${RESULTS:-load-tests/results}
mkdir -p "$RUN_DIR"
trap 'cleanup_children' EXIT
trap 'exit 130' INT TERM

PORT=8001 TRANSACTION_FEE=0.05 "$BIN/processor-sim" 2>"$RUN_DIR/sim-default.log" &
CHILDREN+=($!)
PORT=8002 TRANSACTION_FEE=0.15 "$BIN/processor-sim" 2>"$RUN_DIR/sim-fallback.log" &
CHILDREN+=($!)
wait_port 8001 15
wait_port 8002 15
# A backlog limit above what a run can enqueue, so shedding does not cap the measurement.
BACKLOG_LIMIT=${BACKLOG_LIMIT:-5000000} UPSTREAM=tcp ./scripts/up.sh 2>"$RUN_DIR/stack.log" &
CHILDREN+=($!)
wait_http http://127.0.0.1:9999/readyz 120

for target in gateway nginx; do
  case $target in
    gateway) backend=http://127.0.0.1:8081 ;;
    nginx) backend=http://127.0.0.1:9999 ;;
  esac
  say "throughput against $target ($backend)"
  # shellcheck disable=SC2046
  "$BIN/paystream-load" throughput --backend "$backend" \
    --rates "${RATES:-5000,10000,20000,40000,60000}" --step-secs "${STEP_SECS:-5}" \
    --p99-limit-ms "${P99_LIMIT_MS:-5}" $(stack_pids) \
    --out "$RESULTS" --name "throughput-$target"
done
