# Shared by the scripts: install what is missing, wait for ports, clean up children.
# shellcheck shell=bash

say() { printf '\033[1m[paystream]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# need_packages CMD:PACKAGE ... — installs the Debian package of every missing command
# (apt-get, when root), or stops with a message naming what to install.
need_packages() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    die "missing ${missing[*]}: install with 'sudo apt-get install ${missing[*]}' (or run this script as root)"
  fi
}

nginx_bin() { command -v nginx 2>/dev/null || echo /usr/sbin/nginx; }

# wait_http URL [SECONDS] — until URL answers 2xx.
wait_http() {
  local url=$1 limit=${2:-30} i
  for ((i = 0; i < limit * 10; i++)); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$url did not answer within ${limit}s"
}

# wait_port PORT [SECONDS] — until something accepts TCP connections on 127.0.0.1:PORT.
wait_port() {
  local port=$1 limit=${2:-30} i
  for ((i = 0; i < limit * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "nothing listens on :$port after ${limit}s"
}

# Kill every background job of this shell (and their children) on exit.
CHILDREN=()
cleanup_children() {
  local pid
  for pid in "${CHILDREN[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${CHILDREN[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# stack_redis — "--redis-url URL" for the stack's Redis in $RUN_DIR (written by up.sh), so a
# reference run reports Redis' commands per payment; nothing before up.sh wrote it.
stack_redis() {
  [ -f "$RUN_DIR/redis.url" ] && printf -- '--redis-url %s' "$(cat "$RUN_DIR/redis.url")"
  return 0
}

# stack_pids — "--pid name=pid[,pid]" flags for the processes of the stack in $RUN_DIR, from
# up.sh's pid files (nginx with its workers): never another run's or another user's process
# with a similar command line.
stack_pids() {
  local group pids f pid child
  for group in gateway worker redis nginx; do
    pids=
    for f in "$RUN_DIR/pids/$group"*.pid; do
      [ -f "$f" ] || continue
      pid=$(cat "$f")
      pids+="$pid,"
      if [ "$group" = nginx ]; then
        for child in $(pgrep -P "$pid"); do pids+="$child,"; done
      fi
    done
    [ -n "$pids" ] && printf -- '--pid %s=%s ' "$group" "${pids%,}"
  done
  return 0
}

# nginx_user_directive — as root, nginx runs its workers as `nobody`, who cannot reach
# anything under a 0700 RUN_DIR: the directive that runs them as the invoking user instead
# (nothing when not root).
nginx_user_directive() {
  [ "$(id -u)" = 0 ] && echo "user $(id -un) $(id -gn);"
  return 0
}

# nginx_quote STRING — STRING as a quoted nginx.conf string (a path under a RUN_DIR may hold
# spaces or nginx metacharacters).
nginx_quote() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }

# peak_rss — one line per stack process: name, pid, peak RSS (VmHWM) in MB.
peak_rss() {
  local flag name pid
  for flag in $(stack_pids); do
    [ "$flag" = --pid ] && continue
    name=${flag%%=*}
    for pid in $(echo "${flag#*=}" | tr , ' '); do
      awk -v n="$name" -v p="$pid" '/VmHWM/ { printf "  %-8s pid %-7s peak RSS %6.1f MB\n", n, p, $2 / 1024 }' "/proc/$pid/status" 2>/dev/null
    done
  done
}

# start_demo_stack [UP_ENV...] — the common start of demo.sh, bench.sh and soak.sh: build
# the release binaries, start two simulated processors on :8001 (5 %) and :8002 (15 %)
# (their pids in SIM_PIDS, comma-separated) and the full stack (up.sh, with UP_ENV
# assignments) on :9999 in a fresh RUN_DIR (a new mktemp -d unless RUN_DIR names an empty
# directory); everything stops on exit.
start_demo_stack() {
  command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup)"
  need_packages redis-server:redis-server nginx:nginx-light curl:curl
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    say "building (release)"
    cargo build --release --locked --workspace --bins
  fi
  BIN=target/release
  # A fresh Redis for every run: a backlog left by an earlier run would be drained during
  # this one and distort what it measures. mktemp -d makes a 0700 directory, which up.sh
  # handles (nginx's workers run as the invoking user).
  if [ -n "${RUN_DIR:-}" ]; then
    [ -z "$(ls -A "$RUN_DIR" 2>/dev/null)" ] ||
      die "RUN_DIR=$RUN_DIR is not empty: a run needs a fresh one (unset RUN_DIR to get a new mktemp -d)"
    mkdir -p "$RUN_DIR"
  else
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/paystream-run.XXXXXX")
  fi
  export RUN_DIR
  say "fresh run dir: $RUN_DIR (Redis data, stack.log, simulator logs)"
  trap 'cleanup_children' EXIT
  trap 'exit 130' INT TERM
  say "simulated processors on :8001 (default, 5 %) and :8002 (fallback, 15 %)"
  PORT=8001 TRANSACTION_FEE=0.05 "$BIN/processor-sim" 2>"$RUN_DIR/sim-default.log" &
  CHILDREN+=($!)
  SIM_PIDS=$!
  PORT=8002 TRANSACTION_FEE=0.15 "$BIN/processor-sim" 2>"$RUN_DIR/sim-fallback.log" &
  CHILDREN+=($!)
  SIM_PIDS="$SIM_PIDS,$!"
  wait_port 8001 15
  wait_port 8002 15
  # The contest profile: the load tests purge between runs without an admin token.
  env PAYSTREAM_PROFILE=contest "$@" ./scripts/up.sh 2>"$RUN_DIR/stack.log" &
  CHILDREN+=($!)
  wait_http http://127.0.0.1:9999/readyz 120
}
