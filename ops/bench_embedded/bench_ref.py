"""Reference side of the embedded-model benchmark: the same measurements as
`embedded/examples/bench.rs`, taken with llama.cpp's Python bindings (llama-cpp-python)
on the same model file, prompt and thread count. Prints one JSON line per measurement."""

import argparse
import json
import sys
import time

from llama_cpp import Llama

SYSTEM = "You are a helpful assistant."


def peak_rss_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--prompt-file", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--context", type=int, default=2048)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--iterations", type=int, default=3)
    a = p.parse_args()

    with open(a.prompt_file) as f:
        prompt = f.read().strip()

    started = time.perf_counter()
    llm = Llama(
        model_path=a.model,
        n_ctx=a.context,
        n_threads=a.threads,
        n_threads_batch=a.threads,
        verbose=False,
    )
    load_s = time.perf_counter() - started
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": prompt},
    ]

    def generate(max_tokens):
        # No prompt-prefix reuse between runs: every run pays for its whole prompt, as ours does.
        llm.reset()
        first = None
        prompt_tokens = None
        finish = None
        started = time.perf_counter()
        for chunk in llm.create_chat_completion(
            messages=messages, max_tokens=max_tokens, temperature=0.0, stream=True
        ):
            choice = chunk["choices"][0]
            if choice["delta"].get("content") and first is None:
                first = time.perf_counter() - started
                # The prompt is evaluated and the first token sampled, not yet evaluated.
                prompt_tokens = llm.n_tokens
            finish = choice.get("finish_reason") or finish
        total = time.perf_counter() - started
        # Every generated token is evaluated except the last one sampled; an end token is
        # sampled but not counted.
        completion = llm.n_tokens - prompt_tokens + (1 if finish == "length" else 0)
        return first, total, prompt_tokens, completion

    generate(8)  # warm-up, as on our side
    for i in range(a.iterations):
        ttft, total, prompt_tokens, completion = generate(a.max_tokens)
        print(
            json.dumps(
                {
                    "impl": "reference",
                    "iteration": i,
                    "threads": a.threads,
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion,
                    "ttft_s": round(ttft, 4),
                    "prompt_tps": round(prompt_tokens / ttft, 1),
                    "decode_tps": round(max(completion - 1, 0) / max(total - ttft, 1e-9), 1),
                    "load_s": round(load_s, 3),
                }
            ),
            flush=True,
        )
    print(json.dumps({"impl": "reference", "peak_rss_kib": peak_rss_kib()}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
