#!/usr/bin/env bash
# Starts the whole local stack in the foreground: Redis (own port and data dir, AOF on),
# WORKERS worker processes, two gateways, nginx on $PORT (9999) with the repo's nginx.conf —
# against the processors at PROCESSOR_DEFAULT_URL / PROCESSOR_FALLBACK_URL.
#
# Supervised: a component that dies (crash, kill -9, OOM) is logged with its exit status
# and started again after a backoff (0.2 s doubling to 5 s; back to 0.2 s once it ran 10 s),
# while the rest keeps serving. Only Ctrl-C / SIGTERM stops the stack: nginx and the
# gateways first, then the workers (they finish their batch), Redis last.
#
# Environment (all optional):
#   PORT (9999), REDIS_PORT (6390), GATEWAY_PORTS ("8081 8082"), RUN_DIR (.run; any
#   directory, also one only the invoking user may enter), PROFILE (release), WORKERS (2);
#   GATEWAY_METRICS_PORTS ("9110 9111"): gateway i serves /metrics on 127.0.0.1:<i-th port>;
#   WORKER_METRICS_PORT_BASE (9100): worker i serves /metrics on 127.0.0.1:<base + i - 1>;
#   METRICS (on): off = no /metrics listener and no metric recording in any process;
#   UPSTREAM: unix (nginx reaches the gateways over Unix sockets in $RUN_DIR) or tcp
#     (127.0.0.1:GATEWAY_PORTS);
#   REDIS_TRANSPORT: unix (gateways and worker use Redis' Unix socket) or tcp;
#   REDIS_AOF (yes), REDIS_APPENDFSYNC (always): persistence. `always` keeps docs/protocol.md §2's
#     promise that a 2xx means durably in Redis (the reply waits for the fsync);
#     `everysec` answers first and a host crash can lose the last second of accepted
#     payments (docs/protocol.md §10). AOF off = nothing survives a Redis restart;
#   REDIS_ACTIVE_EXPIRE_EFFORT (10): how hard Redis reclaims expired keys. Retention
#     (PAYMENT_RETENTION) bounds memory only once expired status hashes are reclaimed;
#     Redis' default (1) lets 10 % or more of them linger (docs/operations.md, "Soak");
#   REDIS_MAXMEMORY (2gb): Redis' memory limit (noeviction). The gateways shed accepts from
#     MEMORY_HIGH_WATER (90 %) of it on; sized with BACKLOG_LIMIT and PAYMENT_RETENTION
#     (docs/operations.md, "Memory sizing");
#   WORKER_NICE (10): the worker yields the CPU to the request path;
#   ADMIN_TOKEN: required by the admin endpoints (purge, re-drive), unless
#   PAYSTREAM_PROFILE=contest: the contest profile runs them without a token, because the
#     reference load test purges without one (it sets PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN);
#   plus every variable of the gateway and worker (docs/operations.md, "Configuration").
#
# Each component's pid is in $RUN_DIR/pids/<name>.pid (redis, worker-<i>, gateway-<i>,
# nginx) while it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

PORT=${PORT:-9999}
REDIS_PORT=${REDIS_PORT:-6390}
read -r -a GW_PORTS <<<"${GATEWAY_PORTS:-8081 8082}"
read -r -a GW_METRICS_PORTS <<<"${GATEWAY_METRICS_PORTS:-9110 9111}"
WORKER_METRICS_PORT_BASE=${WORKER_METRICS_PORT_BASE:-9100}
WORKERS=${WORKERS:-2}
RUN_DIR=${RUN_DIR:-$PWD/.run}
PROFILE=${PROFILE:-release}
UPSTREAM=${UPSTREAM:-unix}
WORKER_NICE=${WORKER_NICE:-10}
export PROCESSOR_DEFAULT_URL=${PROCESSOR_DEFAULT_URL:-http://127.0.0.1:8001}
export PROCESSOR_FALLBACK_URL=${PROCESSOR_FALLBACK_URL:-http://127.0.0.1:8002}
REDIS_TRANSPORT=${REDIS_TRANSPORT:-unix}
# Admin endpoints need a token; running them open is an explicit choice, never a default.
case "${PAYSTREAM_PROFILE:-}" in
  contest) export PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN=true ;;
  "") [ -n "${ADMIN_TOKEN:-}" ] || [ "${PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN:-}" = true ] ||
    die "ADMIN_TOKEN is required (the admin endpoints purge every payment); PAYSTREAM_PROFILE=contest runs them without one, for the reference load test" ;;
  *) die "PAYSTREAM_PROFILE must be 'contest' or unset, not '${PAYSTREAM_PROFILE}'" ;;
esac

[[ "$WORKERS" =~ ^[1-9][0-9]?$ ]] || die "WORKERS must be between 1 and 99, not '$WORKERS'"
[ "${#GW_METRICS_PORTS[@]}" -ge "${#GW_PORTS[@]}" ] ||
  die "GATEWAY_METRICS_PORTS needs one port per gateway (${#GW_PORTS[@]})"
command -v redis-server >/dev/null || die "redis-server is missing: run ./scripts/demo.sh as root (it installs it) or apt-get install redis-server"
[ -x "$(nginx_bin)" ] || die "nginx is missing: run ./scripts/demo.sh as root (it installs it) or apt-get install nginx-light"

BIN=${BIN_DIR:-target/$PROFILE}
if [ ! -x "$BIN/paystream-gateway" ] || [ ! -x "$BIN/paystream-worker" ]; then
  say "building ($PROFILE)"
  if [ "$PROFILE" = release ]; then cargo build --release --locked -p paystream-gateway -p paystream-worker
  else cargo build --locked -p paystream-gateway -p paystream-worker; fi
fi
BIN=$(cd "$BIN" && pwd)

mkdir -p "$RUN_DIR/redis" "$RUN_DIR/nginx/logs" "$RUN_DIR/nginx/tmp" "$RUN_DIR/pids"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
if [ "$REDIS_TRANSPORT" = unix ]; then
  # A URL: '%', spaces, '#' and '?' in the path are percent-encoded (redis-rs decodes them).
  sock=$RUN_DIR/redis.sock
  sock=${sock//%/%25}; sock=${sock// /%20}; sock=${sock//#/%23}; sock=${sock//\?/%3F}
  export REDIS_URL=redis+unix://$sock
else
  export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
fi
# For the benchmarks' Redis statistics (scripts/lib.sh: stack_redis).
printf '%s\n' "$REDIS_URL" >"$RUN_DIR/redis.url"
PIDS=$RUN_DIR/pids
rm -f "$PIDS"/*.pid "$RUN_DIR/stopping"

# supervise NAME COMMAND... — runs COMMAND in the background, again and again: each exit
# is logged with its status and followed by a backoff, until the stack stops. The running
# command's pid is in $PIDS/NAME.pid.
supervise() {
  local name=$1
  shift
  (
    pid=
    # SIGTERM from stop_stack: pass it on, wait for the component's own graceful stop.
    trap 'if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi; rm -f "$PIDS/$name.pid"; exit 0' TERM
    delay_ms=200 restarts=0
    while :; do
      started=$SECONDS
      "$@" &
      pid=$!
      echo "$pid" >"$PIDS/$name.pid"
      status=0
      wait "$pid" || status=$?
      [ -e "$RUN_DIR/stopping" ] && exit 0
      if [ $((SECONDS - started)) -ge 10 ]; then delay_ms=200; fi
      restarts=$((restarts + 1))
      if [ "$status" -gt 128 ]; then how="killed by signal $((status - 128))"; else how="exit status $status"; fi
      say "$name (pid $pid) died: $how; restart #$restarts in $((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))s"
      pid=
      sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
      [ -e "$RUN_DIR/stopping" ] && exit 0
      delay_ms=$((delay_ms * 2 > 5000 ? 5000 : delay_ms * 2))
    done
  ) &
  SUPERVISORS+=("$name:$!")
}

SUPERVISORS=()
# stop_stack — the front first (no new payments), then the workers (they finish their
# batch through record and ack), Redis last; whatever outlives its deadline is killed.
stop_stack() {
  touch "$RUN_DIR/stopping"
  local group entry name pid
  for group in nginx gateway worker redis; do
    local waiting=()
    for entry in "${SUPERVISORS[@]}"; do
      name=${entry%%:*}
      pid=${entry#*:}
      case $name in "$group"*) kill -TERM "$pid" 2>/dev/null || true; waiting+=("$name:$pid") ;; esac
    done
    for entry in "${waiting[@]}"; do
      name=${entry%%:*}
      pid=${entry#*:}
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        say "$name did not stop within 15 s: killing it"
        [ -f "$PIDS/$name.pid" ] && kill -KILL "$(cat "$PIDS/$name.pid")" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
  done
  rm -f "$PIDS"/*.pid
}
trap 'say "stopping"; stop_stack; exit 0' INT TERM
trap 'stop_stack' EXIT

say "run dir: $RUN_DIR"
say "redis on :$REDIS_PORT (data in $RUN_DIR/redis)"
supervise redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN_DIR/redis" \
  --appendonly "${REDIS_AOF:-yes}" --appendfsync "${REDIS_APPENDFSYNC:-always}" --save "" --maxmemory-policy noeviction \
  --maxmemory "${REDIS_MAXMEMORY:-2gb}" \
  --active-expire-effort "${REDIS_ACTIVE_EXPIRE_EFFORT:-10}" \
  --unixsocket "$RUN_DIR/redis.sock" --unixsocketperm 700 \
  --protected-mode no --daemonize no --logfile "$RUN_DIR/redis/redis.log"
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# What this stack starts with: a backlog left by an earlier run is drained now, and shows
# in every measurement made before it is gone.
TAG="{${PAYSTREAM_KEY_PREFIX:-ps}}"
backlog=$(redis-cli -p "$REDIS_PORT" XLEN "$TAG:stream" 2>/dev/null || echo "?")
pending=$(redis-cli -p "$REDIS_PORT" XPENDING "$TAG:stream" workers 2>/dev/null | head -n 1)
[[ "$pending" =~ ^[0-9]+$ ]] || pending=0
dead=$(redis-cli -p "$REDIS_PORT" XLEN "$TAG:dead" 2>/dev/null || echo "?")
say "starting with $backlog stream entries ($pending pending: delivered, not yet acknowledged) and $dead dead letters in $RUN_DIR/redis"

for ((w = 1; w <= WORKERS; w++)); do
  metrics=127.0.0.1:$((WORKER_METRICS_PORT_BASE + w - 1))
  [ "${METRICS:-on}" = off ] && metrics=off
  say "worker $w (metrics on $metrics, nice $WORKER_NICE)"
  # The worker's work can wait a millisecond; the request path cannot: on a small box the
  # gateways, nginx and Redis get the CPU first.
  WORKER_METRICS_ADDR=$metrics supervise "worker-$w" nice -n "$WORKER_NICE" "$BIN/paystream-worker"
done

UPSTREAMS=()
i=0
for p in "${GW_PORTS[@]}"; do
  i=$((i + 1))
  metrics=127.0.0.1:${GW_METRICS_PORTS[$((i - 1))]}
  [ "${METRICS:-on}" = off ] && metrics=off
  if [ "$UPSTREAM" = unix ]; then
    listen=unix:$RUN_DIR/gateway-$i.sock
    UPSTREAMS+=("$listen")
  else
    listen=127.0.0.1:$p
    UPSTREAMS+=("$listen")
  fi
  say "gateway $i on $listen (metrics on $metrics)"
  GATEWAY_LISTEN=$listen GATEWAY_METRICS_ADDR=$metrics supervise "gateway-$i" "$BIN/paystream-gateway"
done

# The repo's nginx.conf, with local upstreams, port and writable paths. Started as root,
# nginx would run its workers as `nobody`, who cannot reach sockets under a 0700 RUN_DIR:
# they run as the invoking user instead.
NGINX_USER=$(nginx_user_directive)
# RUN_DIR may hold spaces or sed/nginx metacharacters: every path goes into nginx.conf as a
# quoted string (nginx_quote), and into sed's replacement escaped.
sed_repl() { printf '%s' "$1" | sed -e 's/[\\&#]/\\&/g'; }
temp_paths=
for t in client_body proxy fastcgi uwsgi scgi; do
  name=$t; [ "$t" = client_body ] && name=body
  temp_paths+="\n    ${t}_temp_path $(sed_repl "$(nginx_quote "$RUN_DIR/nginx/tmp/$name")");"
done
up1=$(sed_repl "$(nginx_quote "${UPSTREAMS[0]}")")
up2=$(sed_repl "$(nginx_quote "${UPSTREAMS[1]:-${UPSTREAMS[0]}}")")
sed -e "s#server gateway-1:8080;#server $up1;#" \
    -e "s#server gateway-2:8080;#server $up2;#" \
    -e "s/listen 9999 /listen $PORT /" \
    -e "s#^worker_processes#$NGINX_USER\nworker_processes#" \
    -e "s#^http {#http {$temp_paths#" \
    nginx.conf >"$RUN_DIR/nginx/nginx.conf"
for u in "${UPSTREAMS[@]}"; do
  case $u in
    unix:*) for _ in $(seq 1 300); do [ -S "${u#unix:}" ] && break; sleep 0.1; done
            [ -S "${u#unix:}" ] || die "gateway socket ${u#unix:} did not appear" ;;
    *) wait_http "http://$u/healthz" 30 ;;
  esac
done
say "nginx on :$PORT"
supervise nginx "$(nginx_bin)" -p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" \
  -g "daemon off; pid $(nginx_quote "$RUN_DIR/nginx/nginx.pid"); error_log stderr warn;"
wait_http "http://127.0.0.1:$PORT/readyz" 30
say "stack up: http://127.0.0.1:$PORT  (Ctrl-C stops it)"
# Components come and go under their supervisors; the stack stops only on a signal.
while :; do sleep 0.5; done
