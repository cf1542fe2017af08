#!/usr/bin/env bash
# The open-loop throughput benchmark: starts two zero-delay simulated processors and the
# full local stack, then steps fixed arrival rates up until p99 passes the limit, against
# (a) one gateway directly and (b) nginx + two gateways. Samples CPU and RSS of every
# stack process. Then the backlog drain benchmark through nginx: both processors fail while
# payments queue, the default recovers, and the time to process the backlog is measured (the
# processors are left healthy with no delay). Writes
# load-tests/results/throughput-{gateway,nginx}.{json,svg} and drain.{json,svg}.
#
# Environment: RATES (5000,10000,20000,40000,60000), STEP_SECS (5), P99_LIMIT_MS (5),
# DRAIN_RATE (550), DRAIN_OUTAGE_SECS (10), DRAIN_RECOVERY_MS (20),
# RESULTS (load-tests/results).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RESULTS=${RESULTS:-load-tests/results}
# Gateways on TCP, so one can be measured directly; a backlog limit above what a run
# can enqueue, so shedding does not cap the measurement.
start_demo_stack UPSTREAM=tcp BACKLOG_LIMIT="${BACKLOG_LIMIT:-5000000}"

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

# The drain run purges and sets the processors itself, and sets both back to healthy with no
# delay when it ends (it exits non-zero if it could not).
say "backlog drain through nginx (outage ${DRAIN_OUTAGE_SECS:-10} s at ${DRAIN_RATE:-550}/s)"
"$BIN/paystream-load" drain --backend http://127.0.0.1:9999 \
  --default-url http://127.0.0.1:8001 --fallback-url http://127.0.0.1:8002 \
  --rate "${DRAIN_RATE:-550}" --outage-secs "${DRAIN_OUTAGE_SECS:-10}" \
  --recovery-delay-ms "${DRAIN_RECOVERY_MS:-20}" \
  --out "$RESULTS" --name drain
