#!/usr/bin/env bash
# Does the embedded model's repetition penalty lower answer quality? Runs
# `switchboard eval` on a small fixed set (repetition/questions.jsonl: each
# line a question and the words a right answer contains) with the default
# penalty (candidate) against none (baseline), greedy, the embedded model
# judging pairwise, and prints per arm: answers with an expected word, answers
# that loop (a run of 4 words three times or more), and the judge's win rate.
# Usage: ops/bench_embedded/repetition.sh [PENALTY]   (default 1.1)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
penalty=${1:-1.1}
binary=${BINARY:-$root/target/release/switchboard}
[ -x "$binary" ] || (cd "$root" && cargo build --release --locked -p switchboard --bin switchboard)
work=$(mktemp -d /tmp/switchboard-repetition.XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
models=${SWITCHBOARD_MODEL_CACHE:-$HOME/.cache/switchboard/models}
cat > "$work/switchboard.toml" <<TOML
data_dir = "$work"
[providers.on]
kind = "local"
models_dir = "$models"
repeat_penalty = $penalty
[providers.off]
kind = "local"
models_dir = "$models"
repeat_penalty = 1.0
[models.on]
targets = ["on/smollm2-135m-instruct"]
params = { temperature = 0.0, max_tokens = 160 }
[models.off]
targets = ["off/smollm2-135m-instruct"]
params = { temperature = 0.0, max_tokens = 160 }
[models.default]
targets = ["off/smollm2-135m-instruct"]
params = { temperature = 0.0 }
TOML
"$binary" --config "$work/switchboard.toml" eval assistant --candidate production \
  --baseline production --candidate-model on --baseline-model off --judge default \
  --dataset "$here/repetition/questions.jsonl" --concurrency 1 --min-win-rate 0 \
  --report "$work/report" >/dev/null
python3 - "$work/report/report.json" "$here/repetition/questions.jsonl" "$penalty" <<'PY'
import json, re, sys
from collections import Counter
report = json.load(open(sys.argv[1]))
expect = {}
for line in open(sys.argv[2]):
    d = json.loads(line); expect[d["id"]] = d["expect"]
def loops(text):
    w = [x for x in re.sub(r"[^\w\s]", " ", text.lower()).split()]
    c = Counter(tuple(w[i:i+4]) for i in range(len(w) - 3))
    return bool(c) and max(c.values()) >= 3
def text(outcome):
    return outcome["text"]
arms = {"candidate": f"penalty {sys.argv[3]}", "baseline": "no penalty"}
print(f"| arm | right answers (expected word) | looping answers | of |")
print("|---|---|---|---|")
for arm, name in arms.items():
    rows = report["rows"]
    right = sum(any(e in text(r[arm]).lower() for e in expect.get(r["id"], [])) for r in rows)
    loop = sum(loops(text(r[arm])) for r in rows)
    print(f"| {name} | {right} | {loop} | {len(rows)} |")
print(f"judge (the embedded model, both orders): candidate wins {report['wins']}, "
      f"losses {report['losses']}, ties {report['ties']}")
PY
