#!/usr/bin/env bash
# Benchmark of the embedded model runtime against llama.cpp's own Python bindings.
#
# Both sides load the same GGUF file with the same thread count and context, render the same
# two-message chat (a ~250-token prompt), and generate up to 128 tokens greedily; rounds
# alternate between the two so that machine noise hits both alike. Printed per side (medians):
# prompt tok/s, decode tok/s, time to first token, peak RSS — and our/reference ratios
# against the targets (decode >= 0.95x, TTFT <= 1.05x, memory <= file size + 100 MB).
#
# Environment (all optional):
#   ROUNDS=3            alternating rounds per thread count
#   ITERATIONS=3        measured generations per process (after one warm-up)
#   THREADS="1 2"       thread counts to measure
#   MAX_TOKENS=128      tokens to generate
#   SWITCHBOARD_BENCH_CACHE   where the Python venv lives (default ~/.cache/switchboard/bench)
#   SWITCHBOARD_MODEL_CACHE   models directory (default ~/.cache/switchboard/models)
#   LLAMA_CPP_PYTHON_VERSION  reference version (default 0.3.36)
#   QUIET_WAIT=300      seconds to wait, before each round, for the CPUs to be idle (other
#                       processes skew the figures badly on a two-core machine)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
rounds="${ROUNDS:-3}"
iterations="${ITERATIONS:-3}"
threads_list="${THREADS:-1 2}"
max_tokens="${MAX_TOKENS:-128}"
context=2048
cache="${SWITCHBOARD_BENCH_CACHE:-$HOME/.cache/switchboard/bench}"
models="${SWITCHBOARD_MODEL_CACHE:-$HOME/.cache/switchboard/models}"
ref_version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
model="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
prompt="$here/prompt.txt"
venv="$cache/venv"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT

# (a) The reference: llama-cpp-python in its own venv (the first install compiles llama.cpp,
# about ten minutes on two cores).
if ! "$venv/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$ref_version')" 2>/dev/null; then
  echo "== installing llama-cpp-python $ref_version into $venv (compiles llama.cpp)" >&2
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "llama-cpp-python==$ref_version"
fi

# Ours, optimised as shipped.
echo "== building the benchmark (release)" >&2
cargo build --quiet --release --example bench --manifest-path "$repo/embedded/Cargo.toml"
target_dir="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/embedded/Cargo.toml" | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')}"
ours="$target_dir/release/examples/bench"

if [ ! -f "$model" ]; then
  echo "== fetching the model into $models" >&2
  SWITCHBOARD_MODEL_CACHE="$models" "$ours" --iterations 0 --prompt-file "$prompt" >/dev/null
fi

quiet_wait="${QUIET_WAIT:-300}"
idle_percent() { # share of CPU time idle over the next 5 seconds
  read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ </proc/stat
  sleep 5
  read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ </proc/stat
  local busy=$(((u2 - u1) + (n2 - n1) + (s2 - s1) + (q2 - q1) + (sq2 - sq1) + (st2 - st1)))
  local idle=$(((i2 - i1) + (w2 - w1)))
  echo $((100 * idle / (busy + idle + 1)))
}
wait_for_quiet() {
  local waited=0 idle
  while :; do
    idle="$(idle_percent)"
    [ "$idle" -ge 90 ] && return 0
    waited=$((waited + 5))
    if [ "$waited" -ge "$quiet_wait" ]; then
      echo "   warning: the CPUs are only ${idle}% idle; figures will be noisy" >&2
      return 0
    fi
  done
}

run_ours() {
  "$ours" --model "$model" --prompt-file "$prompt" --threads "$1" --context "$context" \
    --max-tokens "$max_tokens" --iterations "$iterations"
}
run_reference() {
  "$venv/bin/python" "$here/bench_ref.py" --model "$model" --prompt-file "$prompt" \
    --threads "$1" --context "$context" --max-tokens "$max_tokens" --iterations "$iterations"
}

for threads in $threads_list; do
  for round in $(seq 1 "$rounds"); do
    echo "== threads $threads, round $round/$rounds" >&2
    wait_for_quiet
    if [ $((round % 2)) -eq 1 ]; then order="ours reference"; else order="reference ours"; fi
    for side in $order; do
      "run_$side" "$threads" | sed "s/^{/{\"round\":$round,\"run_threads\":$threads,/" >>"$results"
    done
  done
done

python3 - "$results" "$(stat -c %s "$model")" <<'PY'
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
file_mb = int(sys.argv[2]) / 1e6
med = statistics.median
ok_all = True
for threads in sorted({r["run_threads"] for r in rows}):
    def pick(side, key):
        vals = [r[key] for r in rows if r["run_threads"] == threads and r["impl"] == side and key in r]
        return med(vals) if vals else float("nan")
    print(f"\nthreads={threads}  (medians of {sum(1 for r in rows if r['run_threads']==threads and r['impl']=='ours' and 'ttft_s' in r)} runs per side)")
    print(f"{'':12}{'prompt tok':>11}{'gen tok':>9}{'prompt tok/s':>14}{'decode tok/s':>14}{'TTFT s':>9}{'peak RSS MB':>13}")
    for side in ("ours", "reference"):
        print(f"{side:12}{pick(side,'prompt_tokens'):>11.0f}{pick(side,'completion_tokens'):>9.0f}"
              f"{pick(side,'prompt_tps'):>14.1f}{pick(side,'decode_tps'):>14.1f}"
              f"{pick(side,'ttft_s'):>9.3f}{pick(side,'peak_rss_kib')*1024/1e6:>13.1f}")
    decode = pick("ours", "decode_tps") / pick("reference", "decode_tps")
    prompt = pick("ours", "prompt_tps") / pick("reference", "prompt_tps")
    ttft = pick("ours", "ttft_s") / pick("reference", "ttft_s")
    rss = pick("ours", "peak_rss_kib") * 1024 / 1e6
    checks = [
        ("decode ours/ref", f"{decode:.3f}x", decode >= 0.95, ">= 0.95x"),
        ("prompt ours/ref", f"{prompt:.3f}x", True, "(info)"),
        ("TTFT ours/ref", f"{ttft:.3f}x", ttft <= 1.05, "<= 1.05x"),
        ("ours peak RSS", f"{rss:.1f} MB", rss <= file_mb + 100, f"<= {file_mb + 100:.1f} MB"),
    ]
    for name, value, ok, target in checks:
        ok_all &= ok
        print(f"  {name:18}{value:>12}  target {target:12} {'ok' if ok else 'MISSED'}")
sys.exit(0 if ok_all else 1)
PY
