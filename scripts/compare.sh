#!/usr/bin/env bash
# Before/after in one run: `scripts/compare.sh REV` builds the gateway and worker of git
# revision REV, then alternates that build and the current one, ROUNDS
# times each, on a fresh RUN_DIR per run: the whole stack (nginx, two gateways, Redis,
# worker, two zero-delay simulated processors) under the same fixed-rate load through
# nginx, and an end-to-end capacity drain. Reports CPU microseconds per payment for each
# component (less noisy on a shared VM than latency or throughput), p50/p99 and processed
# payments per second (SKIP_BUILD=1 in start_demo_stack: both builds are made first).
# Writes $RESULTS/cost-<variant>-<round>.{json,svg} and
# $RESULTS/capacity-<variant>-<round>.{json,svg}.
#
# Variants (VARIANTS, `before after after-nometrics` by default): before (REV), after (the
# working tree's build), after-nometrics (the same with METRICS=off), begun (the same with
# FIRST_ATTEMPT_MS=0: every attempt through `begin`). Without `before`, REV may be `-`.
# Environment: RATE (4000), STEP_SECS (10), ROUNDS (2), CAPACITY_RATE (4000),
# CAPACITY_OUTAGE_SECS (5), REDIS_APPENDFSYNC (everysec for both, so that only the code
# differs), RESULTS (load-tests/results).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

REV=${1:?usage: scripts/compare.sh REV (the git revision to compare the working tree with)}
RESULTS=${RESULTS:-load-tests/results}
export REDIS_APPENDFSYNC=${REDIS_APPENDFSYNC:-everysec}
BASE_DIR=$PWD/target/baseline
mkdir -p "$BASE_DIR" "$RESULTS"

if [[ " ${VARIANTS:-before} " == *" before "* ]] &&
  { [ ! -x "$BASE_DIR/paystream-worker" ] || [ "$(cat "$BASE_DIR/rev" 2>/dev/null)" != "$REV" ]; }; then
  say "building $REV (gateway, worker) into $BASE_DIR"
  src=$(mktemp -d)
  target=$PWD/target/baseline-build
  git worktree add --detach "$src" "$REV" >&2
  (cd "$src" && CARGO_TARGET_DIR=$target cargo build --release --locked \
    -p paystream-gateway -p paystream-worker >&2)
  cp "$target/release/paystream-gateway" "$target/release/paystream-worker" "$BASE_DIR/"
  echo "$REV" >"$BASE_DIR/rev"
  git worktree remove --force "$src"
fi

# The current build, copied aside so that nothing rebuilt meanwhile changes what runs.
say "building the current revision (release)"
cargo build --release --locked --workspace --bins
mkdir -p target/current
cp target/release/paystream-gateway target/release/paystream-worker target/current/
export SKIP_BUILD=1

one_run() { # VARIANT ROUND
  local variant=$1 round=$2 profile=current extra=()
  case $variant in
    before) profile=baseline ;;
    after-nometrics) extra=(METRICS=off) ;;
    begun) extra=(FIRST_ATTEMPT_MS=0) ;;
  esac
  (
    RUN_DIR=$(mktemp -d)
    export RUN_DIR
    say "$variant, round $round (RUN_DIR $RUN_DIR)"
    start_demo_stack UPSTREAM=tcp PROFILE="$profile" BACKLOG_LIMIT=5000000 "${extra[@]}"
    # shellcheck disable=SC2046
    "$BIN/paystream-load" throughput --backend http://127.0.0.1:9999 \
      --rates "${RATE:-4000}" --step-secs "${STEP_SECS:-10}" --p99-limit-ms 1000 \
      --drain-secs 15 $(stack_pids) --out "$RESULTS" --name "cost-$variant-$round"
    "$BIN/paystream-load" drain --backend http://127.0.0.1:9999 \
      --default-url http://127.0.0.1:8001 --fallback-url http://127.0.0.1:8002 \
      --rate "${CAPACITY_RATE:-4000}" --outage-secs "${CAPACITY_OUTAGE_SECS:-5}" \
      --recovery-delay-ms 0 --out "$RESULTS" --name "capacity-$variant-$round"
  )
}

for round in $(seq 1 "${ROUNDS:-2}"); do
  for variant in ${VARIANTS:-before after after-nometrics}; do
    one_run "$variant" "$round"
  done
done
say "results in $RESULTS/cost-*.json and $RESULTS/capacity-*.json"
