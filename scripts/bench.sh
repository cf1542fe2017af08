#!/usr/bin/env bash
# The benchmarks: starts two zero-delay simulated processors and the full local stack,
# then (1) the open-loop throughput benchmark, stepping fixed arrival rates up until p99
# passes the limit, against (a) one gateway directly with the worker paused (the accept
# path alone) and (b) nginx + two gateways with the worker running; (2) the backlog drain
# benchmark: both processors fail while payments queue, default recovers, and the time to
# process the backlog is measured — the issue's scenario (550/s for 10 s, 20 ms) and a
# capacity run (zero delay); and (3) the cost of a durable 2xx: AOF fsync `always`
# against `everysec`, alternating in one run. Samples CPU and RSS of every stack process.
# Writes load-tests/results/{throughput-gateway,throughput-gateway-fsync-*,throughput-nginx,
# drain,drain-capacity}.{json,svg}.
#
# Environment: RATES (5000,10000,20000,40000,60000), STEP_SECS (5), P99_LIMIT_MS (5),
# DRAIN_RATE (550), DRAIN_OUTAGE_SECS (10), DRAIN_RECOVERY_MS (20), CAPACITY_RATE (4000),
# CAPACITY_OUTAGE_SECS (10), FSYNC_RATES (5000,10000,20000),
# RESULTS (load-tests/results). Runs on a fresh RUN_DIR (a new mktemp -d, printed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RESULTS=${RESULTS:-load-tests/results}
# Gateways on TCP, so one can be measured directly; a backlog limit above what a run
# can enqueue, so shedding does not cap the measurement.
start_demo_stack UPSTREAM=tcp BACKLOG_LIMIT="${BACKLOG_LIMIT:-5000000}"

throughput() { # NAME BACKEND [extra flags]
  local name=$1 backend=$2
  shift 2
  say "throughput: $name ($backend)"
  # shellcheck disable=SC2046
  "$BIN/paystream-load" throughput --backend "$backend" \
    --rates "${RATES:-5000,10000,20000,40000,60000}" --step-secs "${STEP_SECS:-5}" \
    --p99-limit-ms "${P99_LIMIT_MS:-5}" $(stack_pids) "$@" \
    --out "$RESULTS" --name "throughput-$name"
}

# (a) One gateway's accept path alone (gateway + Redis): the worker is paused so it does
# not compete for the two cores; it drains the backlog when resumed.
WORKER_PIDS=$(pgrep -f target/release/paystream-worker | tr '\n' ' ')
# shellcheck disable=SC2086
kill -STOP $WORKER_PIDS
throughput gateway http://127.0.0.1:8081 --drain-secs 0
# (a') What a durable 2xx costs: the same accept path with AOF `appendfsync everysec`
# (Redis answers before the write is on disk) and `always` (the answer waits for the
# fsync; concurrent writes share one per event-loop pass), alternating in one run on the
# same Redis (CONFIG SET), two rounds each.
for round in 1 2; do
  for mode in everysec always; do
    redis-cli -p "${REDIS_PORT:-6390}" CONFIG SET appendfsync "$mode" >/dev/null
    RATES=${FSYNC_RATES:-5000,10000,20000} throughput "gateway-fsync-$mode-$round" \
      http://127.0.0.1:8081 --drain-secs 0
  done
done
redis-cli -p "${REDIS_PORT:-6390}" CONFIG SET appendfsync "${REDIS_APPENDFSYNC:-always}" >/dev/null
# shellcheck disable=SC2086
kill -CONT $WORKER_PIDS
# (b) The whole stack: nginx + two gateways, with the worker processing as it goes.
throughput nginx http://127.0.0.1:9999

# The drain runs purge and set the processors themselves, and set both back to healthy with
# no delay when they end (they exit non-zero if they could not).
drain() { # NAME RATE OUTAGE_SECS RECOVERY_MS
  say "backlog drain $1: outage $3 s at $2/s, then default answers in $4 ms"
  "$BIN/paystream-load" drain --backend http://127.0.0.1:9999 \
    --default-url http://127.0.0.1:8001 --fallback-url http://127.0.0.1:8002 \
    --rate "$2" --outage-secs "$3" --recovery-delay-ms "$4" \
    --out "$RESULTS" --name "$1"
}
# The issue's scenario: 10 s of both processors down at 550/s, default back at 20 ms.
drain drain "${DRAIN_RATE:-550}" "${DRAIN_OUTAGE_SECS:-10}" "${DRAIN_RECOVERY_MS:-20}"
# End-to-end capacity: a large backlog drained against zero-delay processors.
drain drain-capacity "${CAPACITY_RATE:-4000}" "${CAPACITY_OUTAGE_SECS:-10}" 0
