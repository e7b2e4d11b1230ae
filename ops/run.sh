#!/usr/bin/env bash
# Builds Switchboard (installing the build's system packages where missing)
# and runs it. With no arguments it opens the terminal chat on the embedded
# defaults: no configuration, no key, no server.
# Usage: ops/run.sh [chat | serve | models pull | …]
set -euo pipefail
cd "$(dirname "$0")/.."
. ops/deps.sh
ensure_build_deps
[ $# -gt 0 ] || set -- chat
exec cargo run --release --locked -q -p switchboard -- "$@"
