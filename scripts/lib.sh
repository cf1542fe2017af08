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
