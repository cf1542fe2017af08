#!/usr/bin/env bash
# The demo: builds everything, installs what is missing (redis-server, nginx, curl via
# apt-get when root), starts two simulated processors on :8001/:8002 and the full stack on
# :9999 (scripts/up.sh), runs the reference load test (docs/protocol.md §5) and prints its
# score, then prints our summary next to the processors' own. Stops everything it started.
# Runs on a fresh RUN_DIR (a new mktemp -d, printed) so no earlier backlog distorts it.
#
# Environment: MAX_REQUESTS (550), DURATION_SECS (60), STAGE_SECS (10), RESULTS
# (load-tests/results), NAME (demo).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

start_demo_stack

NAME=${NAME:-demo}
RESULTS=${RESULTS:-load-tests/results}
say "reference load test (${DURATION_SECS:-60} s); results in $RESULTS/$NAME.{json,svg}"
# shellcheck disable=SC2046
"$BIN/paystream-load" rinha \
  --max-requests "${MAX_REQUESTS:-550}" \
  --duration-secs "${DURATION_SECS:-60}" \
  --stage-secs "${STAGE_SECS:-10}" \
  $(stack_pids) $(stack_redis) \
  --out "$RESULTS" --name "$NAME"

say "peak memory of the stack's processes during the run"
peak_rss

say "our summary next to the processors' own (all payments)"
printf '%-10s %s\n' "paystream" "$(curl -fsS http://127.0.0.1:9999/payments-summary)"
printf '%-10s %s\n' "default" "$(curl -fsS -H 'X-Rinha-Token: 123' http://127.0.0.1:8001/admin/payments-summary)"
printf '%-10s %s\n' "fallback" "$(curl -fsS -H 'X-Rinha-Token: 123' http://127.0.0.1:8002/admin/payments-summary)"
