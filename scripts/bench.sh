#!/usr/bin/env bash
# The benchmarks, by section (SECTIONS, a space-separated list; all by default, in this order).
# Each section runs on its own fresh stack in RUN_DIR/<section> (RUN_DIR: a
# new mktemp -d, printed, or an empty directory you name), stopped when the section ends:
#
#   ref      The reference scenario (docs/protocol.md §5, `paystream-load rinha` as demo.sh runs it)
#            against a static nginx on STATIC_PORT (9998) — `return 202` to POST /payments, a
#            fixed zero summary to GET /payments-summary — and against the stack (as demo.sh
#            starts it, AOF `appendfsync` REDIS_APPENDFSYNC), alternating, REF_ROUNDS (2)
#            times, so the stack's p50/p99 read against what the load balancer alone gives.
#            Writes ref-{static,stack}-<mode>-<r> (.json, .svg; <mode>: REDIS_APPENDFSYNC).
#            With REF_ACCEPT=1 also ref-accept-<mode>-<r>: the stack with its workers paused,
#            the accept path alone (its lag is every payment; the backlog drains after it).
#   gateway  (a) Open-loop rates stepped up until p99 passes P99_LIMIT_MS against one gateway
#            directly, the workers paused (the accept path alone); (a') the same at
#            FSYNC_RATES with AOF `appendfsync everysec` and `always`, alternating, two rounds
#            (CONFIG SET on the same Redis). Writes throughput-gateway{,-fsync-*}.
#   nginx    (b) The same stepping through nginx + two gateways, the workers running.
#            Writes throughput-nginx.
#   closed   Closed loop through :9999: CLOSED_CONNECTIONS (64) connections, each sending its
#            next payment (unique ids) as soon as the last is answered, for CLOSED_SECS (10)
#            s, the workers running, against the static nginx and the stack alternating,
#            CLOSED_ROUNDS (2) times. The stack's runs then drain and fail unless what both
#            processors stored equals what the backend processed, and covers every 2xx
#            (exactly once). Writes closed-{static,stack}-<r>.
#   drain    Backlog drain: both processors fail while payments queue, default recovers; the
#            required scenario (DRAIN_RATE for DRAIN_OUTAGE_SECS, default back at
#            DRAIN_RECOVERY_MS) and a capacity run (zero delay). Writes drain, drain-capacity.
#
# Example: SECTIONS=ref ./scripts/bench.sh (the stack's fixed ports: one stack at a time).
# Environment: also RATES (5000,10000,20000,40000,60000), STEP_SECS (5), P99_LIMIT_MS (5),
# CAPACITY_RATE (4000), CAPACITY_OUTAGE_SECS (10), MAX_REQUESTS/DURATION_SECS/STAGE_SECS
# (the reference run's, as demo.sh), REDIS_APPENDFSYNC (always), RESULTS
# (load-tests/results), SKIP_BUILD (0). CPU and RSS of every stack process are
# sampled; every report records the load average at its start and end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ALL_SECTIONS="ref closed gateway nginx drain"
SECTIONS=${SECTIONS:-$ALL_SECTIONS}
for s in $SECTIONS; do
  [[ " $ALL_SECTIONS " == *" $s "* ]] || die "unknown section '$s' in SECTIONS (one of: $ALL_SECTIONS)"
done
has_section() { [[ " $SECTIONS " == *" $1 "* ]]; }

RESULTS=${RESULTS:-load-tests/results}
BACKLOG_LIMIT=${BACKLOG_LIMIT:-5000000}
STATIC_PORT=${STATIC_PORT:-9998}
export REDIS_APPENDFSYNC=${REDIS_APPENDFSYNC:-always}

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup)"
need_packages redis-server:redis-server nginx:nginx-light curl:curl
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "building (release)"
  cargo build --release --locked --workspace --bins
fi
export SKIP_BUILD=1
BIN=target/release
if [ -n "${RUN_DIR:-}" ]; then
  [ -z "$(ls -A "$RUN_DIR" 2>/dev/null)" ] ||
    die "RUN_DIR=$RUN_DIR is not empty: a run needs a fresh one (unset RUN_DIR to get a new mktemp -d)"
  mkdir -p "$RUN_DIR"
  BASE_RUN_DIR=$(cd "$RUN_DIR" && pwd)
else
  BASE_RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/paystream-bench.XXXXXX")
fi
say "run dir: $BASE_RUN_DIR (one subdirectory per section); load average: $(cut -d' ' -f1-3 /proc/loadavg)"

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

# The stack's workers (pids from up.sh's pid files), to pause and resume them.
worker_pids() { cat "$RUN_DIR"/pids/worker-*.pid | tr '\n' ' '; }

# pause PID... — stops the workers for a measurement of the accept path alone; they are
# resumed however the section ends (`kill -CONT` them when done), because a paused worker
# cannot stop: a failed step would leave up.sh waiting on it until it is killed, and its
# Redis running (holding the port).
pause() {
  # shellcheck disable=SC2064
  trap "kill -CONT $* 2>/dev/null || true; cleanup_children" EXIT
  kill -STOP "$@"
}

# rinha NAME [flags] — the reference scenario exactly as demo.sh runs it.
rinha() {
  local name=$1
  shift
  say "reference run $name"
  "$BIN/paystream-load" rinha --max-requests "${MAX_REQUESTS:-550}" \
    --duration-secs "${DURATION_SECS:-60}" --stage-secs "${STAGE_SECS:-10}" \
    "$@" --out "$RESULTS" --name "$name"
}

# start_static_nginx — nginx on STATIC_PORT answering without any backend, with its own
# config, pid and logs in $RUN_DIR/static-nginx, stopped with the section. Sets STATIC_PIDS
# (master and workers). Same process and connection settings as the repo's nginx.conf.
start_static_nginx() {
  local dir=$RUN_DIR/static-nginx
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
$(nginx_user_directive)
worker_processes 1;
worker_rlimit_nofile 65535;
pid $(nginx_quote "$dir/nginx.pid");
error_log $(nginx_quote "$dir/error.log") warn;

events {
    worker_connections 8192;
    use epoll;
    multi_accept on;
}

http {
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_max_body_size 8k;
    client_body_temp_path $(nginx_quote "$dir/tmp/body");
    proxy_temp_path $(nginx_quote "$dir/tmp/proxy");
    fastcgi_temp_path $(nginx_quote "$dir/tmp/fastcgi");
    uwsgi_temp_path $(nginx_quote "$dir/tmp/uwsgi");
    scgi_temp_path $(nginx_quote "$dir/tmp/scgi");
    default_type application/json;

    server {
        listen $STATIC_PORT reuseport backlog=4096;
        # What the stack answers a new payment, without anything behind it.
        location = /payments { return 202; }
        # Valid and cheap, so the checker and the final summaries run; nothing is stored.
        location = /payments-summary {
            return 200 '{"default":{"totalRequests":0,"totalAmount":0},"fallback":{"totalRequests":0,"totalAmount":0}}';
        }
        location = /purge-payments { return 200; }
        location / { return 404; }
    }
}
EOF
  say "static nginx on :$STATIC_PORT ($dir)"
  "$(nginx_bin)" -p "$dir" -c "$dir/nginx.conf" -g "daemon off;" 2>>"$dir/error.log" &
  CHILDREN+=($!)
  wait_http "http://127.0.0.1:$STATIC_PORT/payments-summary" 15
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -d '{"correlationId":"00000000-0000-4000-8000-000000000000","amount":19.90}' \
    "http://127.0.0.1:$STATIC_PORT/payments")
  [ "$code" = 202 ] || die "the static nginx answered $code to POST /payments, not 202"
  STATIC_PIDS=$(cat "$dir/nginx.pid")
  local child
  for child in $(pgrep -P "$STATIC_PIDS"); do STATIC_PIDS+=",$child"; done
}

# wait_stream_empty SECS — until every entry of the stack's stream is processed (recorded
# entries are deleted), so a run that left a backlog does not spill into the next one.
wait_stream_empty() {
  local n i
  for ((i = 0; i < $1 * 10; i++)); do
    n=$(redis-cli -p "${REDIS_PORT:-6390}" XLEN "{${PAYSTREAM_KEY_PREFIX:-ps}}:stream")
    [ "$n" = 0 ] && return 0
    sleep 0.1
  done
  die "the stream still held $n entries after $1 s"
}

section_ref() {
  start_demo_stack
  start_static_nginx
  local round
  for round in $(seq 1 "${REF_ROUNDS:-2}"); do
    # Alternate which goes first, so neither always follows the other.
    local order="static stack"
    [ $((round % 2)) = 0 ] && order="stack static"
    # REF_ACCEPT=1: a third run per round, last (its backlog is drained before the next
    # round), on the same stack with the workers paused: what the accept path alone — nginx,
    # gateways, Redis' accepts and fsyncs — costs per payment and adds to the p99. (A worker
    # paused inside its blocking XREADGROUP still gets up to WORKER_BATCH_SIZE entries
    # delivered: a small Redis cost inside the measurement; after the resume, entries idle
    # past WORKER_CLAIM_IDLE_MS may be taken over by the other worker, which is safe.)
    [ "${REF_ACCEPT:-0}" = 1 ] && order+=" accept"
    for target in $order; do
      if [ "$target" = static ]; then
        rinha "ref-static-$REDIS_APPENDFSYNC-$round" --backend "http://127.0.0.1:$STATIC_PORT" \
          --pid "nginx-static=$STATIC_PIDS"
      elif [ "$target" = accept ]; then
        local workers
        workers=$(worker_pids)
        # shellcheck disable=SC2086
        pause $workers
        # shellcheck disable=SC2046
        rinha "ref-accept-$REDIS_APPENDFSYNC-$round" $(stack_pids) $(stack_redis)
        # shellcheck disable=SC2086
        kill -CONT $workers
        wait_stream_empty 120
      else
        # shellcheck disable=SC2046
        rinha "ref-stack-$REDIS_APPENDFSYNC-$round" $(stack_pids) $(stack_redis)
      fi
    done
  done
}

section_gateway() {
  # Gateways on TCP, so one can be measured directly; a backlog limit above what a run can
  # enqueue, so shedding does not cap the measurement.
  start_demo_stack UPSTREAM=tcp BACKLOG_LIMIT="$BACKLOG_LIMIT"
  # (a) One gateway's accept path alone (gateway + Redis): the workers are paused so they do
  # not compete for the two cores.
  local workers
  workers=$(worker_pids)
  # shellcheck disable=SC2086
  pause $workers
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
  redis-cli -p "${REDIS_PORT:-6390}" CONFIG SET appendfsync "$REDIS_APPENDFSYNC" >/dev/null
  # shellcheck disable=SC2086
  kill -CONT $workers
}

section_closed() {
  start_demo_stack BACKLOG_LIMIT="$BACKLOG_LIMIT"
  start_static_nginx
  local round target order
  for round in $(seq 1 "${CLOSED_ROUNDS:-2}"); do
    order="static stack"
    [ $((round % 2)) = 0 ] && order="stack static"
    for target in $order; do
      say "closed loop: $target, round $round"
      if [ "$target" = static ]; then
        "$BIN/paystream-load" throughput --backend "http://127.0.0.1:$STATIC_PORT" --no-purge \
          --rates 0 --step-secs "${CLOSED_SECS:-10}" --p99-limit-ms 60000 \
          --connections "${CLOSED_CONNECTIONS:-64}" --drain-secs 0 \
          --pid "nginx-static=$STATIC_PIDS" --out "$RESULTS" --name "closed-static-$round"
      else
        # shellcheck disable=SC2046
        "$BIN/paystream-load" throughput --backend http://127.0.0.1:9999 \
          --rates 0 --step-secs "${CLOSED_SECS:-10}" --p99-limit-ms 60000 \
          --connections "${CLOSED_CONNECTIONS:-64}" --drain-secs 120 $(stack_pids) \
          --processors http://127.0.0.1:8001,http://127.0.0.1:8002 \
          --out "$RESULTS" --name "closed-stack-$round"
        wait_stream_empty 60
      fi
    done
  done
}

section_nginx() {
  # TCP upstreams as in the gateway section, so both tables compare like with like.
  start_demo_stack UPSTREAM=tcp BACKLOG_LIMIT="$BACKLOG_LIMIT"
  throughput nginx http://127.0.0.1:9999
}

# The drain runs purge and set the processors themselves, and set both back to healthy with
# no delay when they end (they exit non-zero if they could not).
drain() { # NAME RATE OUTAGE_SECS RECOVERY_MS
  say "backlog drain $1: outage $3 s at $2/s, then default answers in $4 ms"
  "$BIN/paystream-load" drain --backend http://127.0.0.1:9999 \
    --default-url http://127.0.0.1:8001 --fallback-url http://127.0.0.1:8002 \
    --rate "$2" --outage-secs "$3" --recovery-delay-ms "$4" \
    --out "$RESULTS" --name "$1"
}

section_drain() {
  start_demo_stack UPSTREAM=tcp BACKLOG_LIMIT="$BACKLOG_LIMIT"
  # The required scenario: 10 s of both processors down at 550/s, default back at 20 ms.
  drain drain "${DRAIN_RATE:-550}" "${DRAIN_OUTAGE_SECS:-10}" "${DRAIN_RECOVERY_MS:-20}"
  # End-to-end capacity: a large backlog drained against zero-delay processors.
  drain drain-capacity "${CAPACITY_RATE:-4000}" "${CAPACITY_OUTAGE_SECS:-10}" 0
}

for section in $ALL_SECTIONS; do
  has_section "$section" || continue
  (
    RUN_DIR=$BASE_RUN_DIR/$section
    mkdir -p "$RUN_DIR"
    export RUN_DIR
    trap 'cleanup_children' EXIT
    trap 'exit 130' INT TERM
    say "section $section (run dir $RUN_DIR; load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "section_$section"
  )
done
say "results in $RESULTS"
