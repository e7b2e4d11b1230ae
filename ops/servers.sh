# Sourced by ops/test.sh and the benchmarks: throwaway PostgreSQL and Redis
# servers on loopback, installed from Debian's packages where missing, and
# removed by `stop_servers` (call it from an EXIT trap).
#   start_postgres [postgres -c options...]  sets pg_url
#   start_redis                              sets redis_url
# Needs ops/deps.sh sourced first (apt_install).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pg_bin="" pg_dir="" redis_pid=""
start_postgres() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$pg_bin" ]; then
    printf '==> installing PostgreSQL\n' >&2
    apt_install postgresql
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  pg_dir=$(mktemp -d /tmp/switchboard-pg.XXXXXX)
  local port options="" o
  port=$(free_port)
  for o in "$@"; do options="$options -c $o"; done
  # PostgreSQL refuses to run as root: run it as the `postgres` user then.
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$pg_dir"
  fi
  printf '==> starting a throwaway PostgreSQL on 127.0.0.1:%s\n' "$port" >&2
  as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U switchboard --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o \
    "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=200$options" \
    start >/dev/null
  pg_url="postgres://switchboard@127.0.0.1:$port/postgres"
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_redis() {
  if ! command -v redis-server >/dev/null; then
    printf '==> installing Redis\n' >&2
    apt_install redis-server
  fi
  local port
  port=$(free_port)
  printf '==> starting a throwaway Redis on 127.0.0.1:%s\n' "$port" >&2
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --loglevel warning >/dev/null 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  redis_url="redis://127.0.0.1:$port"
}

stop_servers() {
  if [ -n "$pg_dir" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi
}
