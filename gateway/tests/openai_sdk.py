"""Drives a running Switchboard with the official OpenAI Python SDK.

Usage: python openai_sdk.py BASE_URL. Exits non-zero (with the failing
assertion) when the SDK cannot use Switchboard as it uses OpenAI.
"""
import json
import sys

import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
messages = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
]

# Non-streaming, with the options SDK users commonly pass.
raw = client.chat.completions.with_raw_response.create(
    model="default", messages=messages, temperature=0.2, max_completion_tokens=32,
    stop=["\n\n"], seed=7, user="sdk-user",
)
completion = raw.parse()
assert raw.headers.get("x-switchboard-inference-id"), "inference id header"
assert completion.choices[0].message.content == "Hello from the stand-in.", completion
assert completion.choices[0].finish_reason == "stop", completion
assert completion.usage.prompt_tokens == 11 and completion.usage.completion_tokens == 5, completion.usage

# Streaming with usage.
stream = client.chat.completions.create(
    model="default", messages=messages, stream=True, stream_options={"include_usage": True},
)
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
assert text == "Hello from the stand-in.", text
assert finish == "stop", finish
assert usage is not None and usage.completion_tokens == 5, usage

# Models, and errors the SDK turns into its own exceptions.
ids = [m.id for m in client.models.list()]
assert "default" in ids and "prompt:assistant" in ids, ids
try:
    client.chat.completions.create(model="nope", messages=messages)
    raise AssertionError("an unknown model must fail")
except openai.NotFoundError as e:
    assert "unknown model `nope`" in str(e), e
try:
    client.chat.completions.create(model="default", messages=[])
    raise AssertionError("empty messages must fail")
except openai.BadRequestError as e:
    assert "messages" in str(e), e

# Embeddings: the SDK asks for base64 unless told; both decode to the same
# unit vectors, and paraphrases are nearer than unrelated texts.
texts = ["How often do we retry a failed call?", "What is the retry policy for failed requests?", "Lunch is at noon."]
got = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
assert [d.index for d in got.data] == [0, 1, 2], got
vectors = [d.embedding for d in got.data]
assert all(len(v) == 384 for v in vectors), [len(v) for v in vectors]
floats = client.embeddings.create(model="embedded", input=texts[0], encoding_format="float")
assert max(abs(a - b) for a, b in zip(floats.data[0].embedding, vectors[0])) < 1e-6
dot = lambda a, b: sum(x * y for x, y in zip(a, b))
assert abs(dot(vectors[0], vectors[0]) - 1.0) < 1e-4
assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2]) + 0.2, (dot(vectors[0], vectors[1]), dot(vectors[0], vectors[2]))
assert got.usage.prompt_tokens > 10, got.usage
try:
    client.embeddings.create(model="text-embedding-3-small", input="x")
    raise AssertionError("an unknown embedding model must fail")
except openai.NotFoundError as e:
    assert "all-MiniLM-L6-v2" in str(e), e

# Client-defined tools: the SDK's tool-call round trip, plain and streamed
# (the stand-in's model calls `get_time`; the gateway runs nothing).
tools = [{
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current time in a time zone.",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
    },
}]
question = [{"role": "user", "content": "What time is it in Tokyo?"}]
first = client.chat.completions.create(model="default", messages=question, tools=tools, tool_choice="auto")
call = first.choices[0].message.tool_calls[0]
assert first.choices[0].finish_reason == "tool_calls", first
assert call.type == "function" and call.function.name == "get_time", call
assert call.id == "call_tokyo", call
assert json.loads(call.function.arguments) == {"timezone": "Asia/Tokyo"}, call.function.arguments

stream = client.chat.completions.create(model="default", messages=question, tools=tools, stream=True)
calls, finish = {}, None
for chunk in stream:
    for choice in chunk.choices:
        finish = choice.finish_reason or finish
        for piece in choice.delta.tool_calls or []:
            got = calls.setdefault(piece.index, {"id": None, "name": "", "arguments": ""})
            if piece.id:
                got["id"] = piece.id
            if piece.function and piece.function.name:
                got["name"] += piece.function.name
            if piece.function and piece.function.arguments:
                got["arguments"] += piece.function.arguments
assert finish == "tool_calls", finish
assert calls == {0: {"id": "call_tokyo", "name": "get_time", "arguments": '{"timezone":"Asia/Tokyo"}'}}, calls

answer = client.chat.completions.create(
    model="default",
    tools=tools,
    messages=question + [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"datetime": "2026-12-04T09:00:00+09:00"}'},
    ],
)
assert answer.choices[0].message.content == "It is 9 in the morning in Tokyo.", answer

print("ok")
