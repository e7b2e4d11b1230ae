#!/usr/bin/env bash
# Runs every Switchboard test on this machine, starting the real servers the
# tests need and installing what is missing:
#   - a throwaway PostgreSQL on loopback (removed on exit)
#   - a throwaway Redis on loopback (stopped on exit; some tests start their own)
#   - the system packages the build needs (cmake, clang; a C compiler is assumed)
#   - the embedded model, fetched once into a cache that later runs reuse
#   - Chromium, which the dashboard tests drive headless
# Usage: ops/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
. ops/deps.sh
ensure_build_deps

# --- PostgreSQL --------------------------------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ]; then
  log "installing PostgreSQL"
  apt_install postgresql
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
pg_dir=$(mktemp -d /tmp/switchboard-pg.XXXXXX)
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# PostgreSQL refuses to run as root: run it as the `postgres` user then.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$pg_dir"
  pg() { runuser -u postgres -- "$@"; }
else
  pg() { "$@"; }
fi
redis_pid=""
cleanup() {
  pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
log "starting a throwaway PostgreSQL on 127.0.0.1:$pg_port"
pg "$pg_bin/initdb" -D "$pg_dir/data" -U switchboard --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o \
  "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" \
  start >/dev/null
export SWITCHBOARD_TEST_POSTGRES_URL="postgres://switchboard@127.0.0.1:$pg_port/postgres"

# --- Redis ---------------------------------------------------------------------
if ! command -v redis-server >/dev/null; then
  log "installing Redis"
  apt_install redis-server
fi
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "starting a throwaway Redis on 127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --loglevel warning >/dev/null 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
  sleep 0.1
done
export SWITCHBOARD_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"

# --- the embedded model, fetched once ----------------------------------------
export SWITCHBOARD_MODEL_CACHE="${SWITCHBOARD_MODEL_CACHE:-$HOME/.cache/switchboard/models}"

# --- the official OpenAI SDK, for the compatibility test ----------------------
venv="$HOME/.cache/switchboard/venv"
if ! "$venv/bin/python" -c 'import openai' >/dev/null 2>&1; then
  log "installing the OpenAI Python SDK into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "openai==3.51.0"
fi
export SWITCHBOARD_TEST_PYTHON="$venv/bin/python"

# --- a real browser for the dashboard tests -----------------------------------
if ! command -v chromium >/dev/null; then
  log "installing Chromium"
  apt_install chromium
fi
SWITCHBOARD_TEST_CHROMIUM=$(command -v chromium)
export SWITCHBOARD_TEST_CHROMIUM

# --- the tests ---------------------------------------------------------------
log "running the tests"
cargo test --workspace --locked "$@"
