#!/usr/bin/env bash
# Runs every Switchboard test on this machine, starting the real servers the
# tests need and installing what is missing:
#   - a throwaway PostgreSQL on loopback (removed on exit)
#   - a throwaway Redis on loopback (stopped on exit; some tests start their own)
#   - the system packages the build needs (cmake, clang; a C compiler is assumed)
#   - the embedded model, fetched once into a cache that later runs reuse
#   - Chromium, which the dashboard tests drive headless
#   - the OpenAI Python SDK and the reference MCP time server (PyPI), in a venv
#   - pdftotext (poppler-utils), which retrieval reads PDF files with
# Usage: ops/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
. ops/deps.sh
ensure_build_deps

. ops/servers.sh
trap stop_servers EXIT
# Durability is not under test here: PostgreSQL skips fsync.
start_postgres fsync=off synchronous_commit=off
export SWITCHBOARD_TEST_POSTGRES_URL="$pg_url"
start_redis
export SWITCHBOARD_TEST_REDIS_URL="$redis_url"

# --- the embedded model, fetched once ----------------------------------------
export SWITCHBOARD_MODEL_CACHE="${SWITCHBOARD_MODEL_CACHE:-$HOME/.cache/switchboard/models}"

# --- the official OpenAI SDK, for the compatibility test, and MCP servers -----
# The reference time server (stdio) and the MCP Python SDK it brings, which
# the tool tests also serve a Streamable HTTP server with.
venv="$HOME/.cache/switchboard/venv"
if ! "$venv/bin/python" -c 'import openai, mcp' >/dev/null 2>&1 || [ ! -x "$venv/bin/mcp-server-time" ]; then
  log "installing the OpenAI Python SDK and the MCP time server into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "openai==3.51.0" "mcp-server-time==2026.10.19"
fi
export SWITCHBOARD_TEST_PYTHON="$venv/bin/python"

# --- a real browser for the dashboard tests -----------------------------------
if ! command -v chromium >/dev/null; then
  log "installing Chromium"
  apt_install chromium
fi
SWITCHBOARD_TEST_CHROMIUM=$(command -v chromium)
export SWITCHBOARD_TEST_CHROMIUM

# --- pdftotext, which reads PDF files for retrieval ----------------------------
if ! command -v pdftotext >/dev/null; then
  log "installing poppler-utils (pdftotext)"
  apt_install poppler-utils
fi
export SWITCHBOARD_TEST_REQUIRE_PDFTOTEXT=1

# --- the tests ---------------------------------------------------------------
log "running the tests"
cargo test --workspace --locked "$@"
