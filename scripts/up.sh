#!/usr/bin/env bash
# Starts the whole local stack in the foreground: Redis (own port and data dir, AOF on),
# one worker, two gateways, nginx on $PORT (9999) with the repo's nginx.conf — against the
# processors at PROCESSOR_DEFAULT_URL / PROCESSOR_FALLBACK_URL. Ctrl-C / SIGTERM stops all.
#
# Environment (all optional):
#   PORT (9999), REDIS_PORT (6390), GATEWAY_PORTS ("8081 8082"), RUN_DIR (.run),
#   PROFILE (release), WORKER_METRICS_ADDR (127.0.0.1:9100);
#   UPSTREAM: unix (nginx reaches the gateways over Unix sockets in $RUN_DIR) or tcp
#     (127.0.0.1:GATEWAY_PORTS);
#   REDIS_TRANSPORT: unix (gateways and worker use Redis' Unix socket) or tcp;
#   REDIS_AOF (yes), REDIS_APPENDFSYNC (always): persistence. `always` keeps SPEC §2's
#     promise that a 2xx means durably in Redis (the reply waits for the fsync);
#     `everysec` answers first and a host crash can lose the last second of accepted
#     payments (README, "Durability"). AOF off = nothing survives a Redis restart;
#   WORKER_NICE (10): the worker yields the CPU to the request path;
#   plus every variable of the gateway and worker (README, "Configuration").
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

PORT=${PORT:-9999}
REDIS_PORT=${REDIS_PORT:-6390}
read -r -a GW_PORTS <<<"${GATEWAY_PORTS:-8081 8082}"
RUN_DIR=${RUN_DIR:-$PWD/.run}
PROFILE=${PROFILE:-release}
UPSTREAM=${UPSTREAM:-unix}
WORKER_NICE=${WORKER_NICE:-10}
export PROCESSOR_DEFAULT_URL=${PROCESSOR_DEFAULT_URL:-http://127.0.0.1:8001}
export PROCESSOR_FALLBACK_URL=${PROCESSOR_FALLBACK_URL:-http://127.0.0.1:8002}
export WORKER_METRICS_ADDR=${WORKER_METRICS_ADDR:-127.0.0.1:9100}
REDIS_TRANSPORT=${REDIS_TRANSPORT:-unix}
if [ "$REDIS_TRANSPORT" = unix ]; then
  export REDIS_URL=redis+unix://$RUN_DIR/redis.sock
else
  export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
fi
# Local stack: the load tests purge without a token unless ADMIN_TOKEN is set.
export PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN=${PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN:-true}

command -v redis-server >/dev/null || die "redis-server is missing: run ./scripts/demo.sh as root (it installs it) or apt-get install redis-server"
[ -x "$(nginx_bin)" ] || die "nginx is missing: run ./scripts/demo.sh as root (it installs it) or apt-get install nginx-light"

BIN=target/$PROFILE
if [ ! -x "$BIN/paystream-gateway" ] || [ ! -x "$BIN/paystream-worker" ]; then
  say "building ($PROFILE)"
  if [ "$PROFILE" = release ]; then cargo build --release --locked -p paystream-gateway -p paystream-worker
  else cargo build --locked -p paystream-gateway -p paystream-worker; fi
fi

mkdir -p "$RUN_DIR/redis" "$RUN_DIR/nginx/logs" "$RUN_DIR/nginx/tmp"
trap 'say "stopping"; cleanup_children; exit 0' INT TERM
trap 'cleanup_children' EXIT

say "redis on :$REDIS_PORT (data in $RUN_DIR/redis)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN_DIR/redis" \
  --appendonly "${REDIS_AOF:-yes}" --appendfsync "${REDIS_APPENDFSYNC:-always}" --save "" --maxmemory-policy noeviction \
  --unixsocket "$RUN_DIR/redis.sock" --unixsocketperm 700 \
  --protected-mode no --daemonize no --logfile "$RUN_DIR/redis/redis.log" &
CHILDREN+=($!)
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

say "worker (metrics on $WORKER_METRICS_ADDR, nice $WORKER_NICE)"
# The worker's work can wait a millisecond; the request path cannot: on a small box the
# gateways, nginx and Redis get the CPU first.
nice -n "$WORKER_NICE" "$BIN/paystream-worker" &
CHILDREN+=($!)

UPSTREAMS=()
i=0
for p in "${GW_PORTS[@]}"; do
  i=$((i + 1))
  if [ "$UPSTREAM" = unix ]; then
    sock=$RUN_DIR/gateway-$i.sock
    say "gateway $i on unix:$sock"
    GATEWAY_LISTEN=unix:$sock "$BIN/paystream-gateway" &
    UPSTREAMS+=("unix:$sock")
  else
    say "gateway $i on :$p"
    GATEWAY_LISTEN=127.0.0.1:$p "$BIN/paystream-gateway" &
    UPSTREAMS+=("127.0.0.1:$p")
  fi
  CHILDREN+=($!)
done

# The repo's nginx.conf, with local upstreams, port and writable paths.
sed -e "s#server gateway-1:8080;#server ${UPSTREAMS[0]};#" \
    -e "s#server gateway-2:8080;#server ${UPSTREAMS[1]:-${UPSTREAMS[0]}};#" \
    -e "s/listen 9999 /listen $PORT /" \
    -e "s#^http {#http {\n    client_body_temp_path $RUN_DIR/nginx/tmp/body;\n    proxy_temp_path $RUN_DIR/nginx/tmp/proxy;\n    fastcgi_temp_path $RUN_DIR/nginx/tmp/fastcgi;\n    uwsgi_temp_path $RUN_DIR/nginx/tmp/uwsgi;\n    scgi_temp_path $RUN_DIR/nginx/tmp/scgi;#" \
    nginx.conf >"$RUN_DIR/nginx/nginx.conf"
for u in "${UPSTREAMS[@]}"; do
  case $u in
    unix:*) for _ in $(seq 1 300); do [ -S "${u#unix:}" ] && break; sleep 0.1; done
            [ -S "${u#unix:}" ] || die "gateway socket ${u#unix:} did not appear" ;;
    *) wait_http "http://$u/healthz" 30 ;;
  esac
done
say "nginx on :$PORT"
"$(nginx_bin)" -p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" \
  -g "daemon off; pid $RUN_DIR/nginx/nginx.pid; error_log stderr warn;" &
CHILDREN+=($!)
wait_http "http://127.0.0.1:$PORT/readyz" 30
say "stack up: http://127.0.0.1:$PORT  (Ctrl-C stops it)"
# Stay up while every component is; if one exits, stop the rest.
wait -n || true
say "a component exited; stopping the stack"
exit 1
