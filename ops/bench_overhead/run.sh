#!/usr/bin/env bash
# What `switchboard serve` adds to a chat completion, at constant arrival
# rates, on SQLite or PostgreSQL: the harness in harness/ (oha open-loop with
# latency correction in its own process, against an nginx stand-in with zero
# service time, the same load sent straight to the stand-in interleaved) run
# against the release binary, with every inference recorded with its
# messages. Prints the harness's table (overhead p50 / p99, CPU ms per
# request, peak RSS) and the gateway's RSS after ten idle seconds.
#
# Usage: ops/bench_overhead/run.sh [sqlite|postgres] [RATE...]
#   RATE defaults to 100 500 1000 2000 5000.
# Environment:
#   BINARY    the switchboard binary [target/release/switchboard, built if missing]
#   DURATION  measured seconds per run [15]     WARMUP  warm-up seconds [3]
#   STREAM=1  clients ask for a stream (SSE) instead of a plain answer
#   PERF=1    also record a CPU profile of the gateway (perf record -g) at
#             the last rate, and print its top entries
#   OUT       where the harness keeps its results [/tmp/switchboard-bench/DATE-BACKEND]
#   OHA       the oha binary (`cargo install oha --locked`) [PATH, /tmp/peers/oha/bin/oha]
# Needs nginx (Debian nginx-light), curl and python3; PostgreSQL is started
# throwaway (ops/servers.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
backend=${1:-sqlite}
[ $# -gt 0 ] && shift
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(100 500 1000 2000 5000)
case $backend in sqlite|postgres) ;; *) echo "backend must be sqlite or postgres, not $backend" >&2; exit 2;; esac

. "$root/ops/deps.sh"
. "$root/ops/servers.sh"
command -v nginx >/dev/null || apt_install nginx-light
binary=${BINARY:-$root/target/release/switchboard}
if [ ! -x "$binary" ]; then
  (cd "$root" && cargo build --release --locked -p switchboard --bin switchboard)
fi

work=$(mktemp -d /tmp/switchboard-bench.XXXXXX)
gateway_pid=""
finish() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null || true
  stop_servers
  rm -rf "$work"
}
trap finish EXIT

database="sqlite://$work/switchboard.db"
if [ "$backend" = postgres ]; then
  start_postgres
  database=$pg_url
fi
port=$(free_port)
# The stand-in answers a plain request at /v1 and a stream at /sse/v1. The
# gateway always streams from its provider (so every answer has a true TTFT
# and TPOT), so its provider is the stream location either way.
cat > "$work/switchboard.toml" <<TOML
data_dir = "$work"
[server]
listen = "127.0.0.1:$port"
api_keys_env = "BENCH_API_KEYS"
[database]
url = "$database"
[providers.standin]
kind = "openai"
base_url = "http://127.0.0.1:18080/sse/v1"
[models.gpt-4o-mini]
targets = ["standin/gpt-4o-mini"]
TOML
api_key=sk-bench-5f0c2a9e4b7d41c38e6a1f2b9d0c7e354a8b6f1d2c3e4f5a
BENCH_API_KEYS="bench:$api_key" RUST_LOG=warn "$binary" --config "$work/switchboard.toml" serve \
  > "$work/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 200); do
  curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$work/gateway.log" >&2; exit 1; }
  sleep 0.1
done

direct=http://127.0.0.1:18080/v1/chat/completions
[ "${STREAM:-0}" = 1 ] && direct=http://127.0.0.1:18080/sse/v1/chat/completions
out=${OUT:-/tmp/switchboard-bench/$(date +%Y%m%d-%H%M%S)-$backend}
echo "switchboard $(git -C "$root" rev-parse --short HEAD) on $backend" >&2
API_KEY=$api_key DIRECT_URL=$direct GATEWAY_MODEL=gpt-4o-mini GATEWAY_PIDS=$gateway_pid \
  LABEL="switchboard-$backend" DURATION=${DURATION:-15} WARMUP=${WARMUP:-3} OUT="$out" \
  "$here/harness/run-load.sh" "http://127.0.0.1:$port/v1/chat/completions" "${rates[@]}"
sleep 10
echo "gateway RSS after 10 s idle: $(( $(awk '/VmRSS/ {print $2}' "/proc/$gateway_pid/status") / 1024 )) MiB"
rows=$(curl -s -H "authorization: Bearer $api_key" "http://127.0.0.1:$port/metrics" | awk '/^switchboard_requests_total/ {n += $2} END {print n+0}')
echo "requests counted by the gateway: $rows"

if [ "${PERF:-0}" = 1 ]; then
  command -v perf >/dev/null || apt_install linux-perf
  # Profile the last rate on its own, after the table's runs.
  last=${rates[-1]}
  oha=${OHA:-$(command -v oha || echo /tmp/peers/oha/bin/oha)}
  echo "profiling the gateway at $last req/s for ${DURATION:-15} s" >&2
  perf record -F 999 -g -p "$gateway_pid" -o "$work/perf.data" -- sleep "${DURATION:-15}" >/dev/null 2>&1 &
  perf_pid=$!
  "$oha" --no-tui -q "$last" -z "${DURATION:-15}s" -c 400 --latency-correction -w -m POST \
    -T application/json -H "authorization: Bearer $api_key" -D "$out/body-gateway.json" \
    --output-format quiet "http://127.0.0.1:$port/v1/chat/completions" >/dev/null 2>&1 || true
  wait "$perf_pid" || true
  kept=${PERF_OUT:-/tmp}/switchboard-$backend.perf.data
  mkdir -p "$(dirname "$kept")"; cp "$work/perf.data" "$kept"
  echo "profile kept in $kept" >&2
  # `head` closes the pipe early: that is not a failure of the run.
  { perf report -i "$kept" --no-children --sort symbol -g none --stdio 2>/dev/null \
    | grep -v '^#' | grep '%' | head -40 | cut -c1-160; } || true
fi
