#!/usr/bin/env bash
# The soak (a benchmark, not CI): builds everything, starts two simulated processors and the
# full local stack (scripts/up.sh: Redis with AOF, two workers, two gateways, nginx) with a
# retention short enough to pass within the run, then `paystream-load soak`: open-loop
# payments through nginx :9999 at RATE for DURATION_SECS while docs/protocol.md §5's six processor
# conditions cycle every 10 s; the checker every 10 s on the recent window and on one
# OLD_CHECK_AGE_SECS back (compacted detail); every SAMPLE_SECS the RSS and CPU of every
# stack process (re-read from up.sh's pid files, so a restarted one is followed) and of the
# simulators, Redis' memory, keys, stream, pending and dead letters. Then the backlog drains
# against healthy processors and the totals are compared with what each processor stored.
# Verdict: memory flat (least-squares slope) over the part after PAYMENT_RETENTION and
# SUMMARY_DETAIL_HORIZON passed, no inconsistency, no 5xx, drained, exactly once. Writes
# $RESULTS/$NAME.{json,svg}; exits non-zero when the verdict fails.
#
# Environment: DURATION_SECS (1800), RATE (2000), REDIS_APPENDFSYNC (always, as up.sh),
# WORKERS (2, as up.sh), RETENTION_SECS (900: PAYMENT_RETENTION; the worker refuses less
# than its in-flight bounds allow, 870 s with the defaults), HORIZON_SECS (60:
# SUMMARY_DETAIL_HORIZON), RETENTION_INTERVAL_SECS (10), SAMPLE_SECS (5),
# OLD_CHECK_AGE_SECS (120), DRAIN_TIMEOUT_SECS (120), RESULTS (docs/results), NAME (soak).
# Runs on a fresh RUN_DIR (a new mktemp -d, printed). Uses the stack's fixed ports: one
# stack at a time per machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RETENTION_SECS=${RETENTION_SECS:-900}
HORIZON_SECS=${HORIZON_SECS:-60}
RESULTS=${RESULTS:-docs/results}
NAME=${NAME:-soak}
start_demo_stack REDIS_APPENDFSYNC="${REDIS_APPENDFSYNC:-always}" \
  PAYMENT_RETENTION="${RETENTION_SECS}s" SUMMARY_DETAIL_HORIZON="${HORIZON_SECS}s" \
  RETENTION_INTERVAL="${RETENTION_INTERVAL_SECS:-10}s"

say "soak: ${RATE:-2000}/s for ${DURATION_SECS:-1800} s (appendfsync ${REDIS_APPENDFSYNC:-always}, retention ${RETENTION_SECS} s); results in $RESULTS/$NAME.{json,svg}"
"$BIN/paystream-load" soak \
  --rate "${RATE:-2000}" \
  --duration-secs "${DURATION_SECS:-1800}" \
  --sample-secs "${SAMPLE_SECS:-5}" \
  --old-check-age-secs "${OLD_CHECK_AGE_SECS:-120}" \
  --drain-timeout-secs "${DRAIN_TIMEOUT_SECS:-120}" \
  --redis-url "redis://127.0.0.1:${REDIS_PORT:-6390}" \
  --payment-retention-secs "$RETENTION_SECS" \
  --detail-horizon-secs "$HORIZON_SECS" \
  --pid-dir "$RUN_DIR/pids" \
  --pid "simulators=$SIM_PIDS" \
  --out "$RESULTS" --name "$NAME"
