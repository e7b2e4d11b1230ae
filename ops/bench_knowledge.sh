#!/usr/bin/env bash
# Retrieval benchmark: installs the PostgreSQL 15 manual (Debian's
# postgresql-doc-15) and poppler-utils where missing, then runs
# bench_knowledge in release mode: ingest speed, recall@5 / MRR on the
# labelled questions of ops/knowledge_eval/, search latency and memory at
# 10,000 and 100,000 chunks. Usage: ops/bench_knowledge.sh [PAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
. ops/deps.sh
ensure_build_deps
if [ ! -d /usr/share/doc/postgresql-doc-15/html ]; then
  printf '==> installing postgresql-doc-15\n' >&2
  apt_install postgresql-doc-15
fi
export SWITCHBOARD_MODEL_CACHE="${SWITCHBOARD_MODEL_CACHE:-$HOME/.cache/switchboard/models}"
cargo run --release --locked -p switchboard-ops --bin bench_knowledge -- "$@"
