//! OpenAI's Chat Completions wire format, as the [`StandIn`](super::StandIn)
//! speaks it on `/v1/chat/completions`: the `chat.completion` JSON body,
//! the `chat.completion.chunk` SSE events with `include_usage` and the
//! closing `data: [DONE]`, and OpenAI's error body, each byte for byte as
//! the API sends them.

use serde_json::{Value, json};

use super::ScriptedCall;

/// A non-streamed answer: the `chat.completion` object.
pub(super) fn completion(text: &str, (input, output): (u64, u64), model: &str) -> Value {
    json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306"
    })
}

/// OpenAI's chunks, exactly as its API sends them with include_usage.
pub(super) fn events(pieces: &[String], usage: Option<(u64, u64)>, model: &str) -> Vec<String> {
    let mut out = vec![chunk(
        model,
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    out.extend(
        pieces
            .iter()
            .map(|p| chunk(model, json!({"content": p}), Value::Null)),
    );
    if let Some(usage) = usage {
        out.push(chunk(model, json!({}), json!("stop")));
        out.push(usage_chunk(model, usage));
        out.push("data: [DONE]\n\n".to_string());
    }
    out
}

/// The chunk with the usage that ends a stream asked with include_usage.
fn usage_chunk(model: &str, (input, output): (u64, u64)) -> String {
    envelope(
        model,
        json!([]),
        json!({
            "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        }),
    )
}

/// OpenAI's error body.
pub fn openai_error(message: &str, kind: &str) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}}).to_string()
}

/// The chunk envelope every streamed event repeats.
fn chunk(model: &str, delta: Value, finish: Value) -> String {
    envelope(
        model,
        json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        Value::Null,
    )
}

/// One `chat.completion.chunk` event with these choices and usage.
fn envelope(model: &str, choices: Value, usage: Value) -> String {
    format!(
        "data: {}\n\n",
        json!({
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion.chunk",
            "created": 1741569952,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_06737a9306",
            "choices": choices,
            "usage": usage
        })
    )
}

/// A streamed answer that calls tools, as OpenAI streams one: any text
/// first, then for each call a chunk with its index, id, type and name and
/// empty arguments, then chunks of its arguments alone; finish reason
/// `tool_calls`; the usage chunk; `[DONE]`.
pub(super) fn tool_call_events(
    text: &str,
    calls: &[ScriptedCall],
    usage: (u64, u64),
    model: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    if text.is_empty() {
        // The first chunk of a tool-calling answer carries the role, a null
        // content and the first call's head.
        if let Some(first) = calls.first() {
            out.push(chunk(
                model,
                json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": first.id, "type": "function", "function": {"name": first.name, "arguments": ""}}], "refusal": null}),
                Value::Null,
            ));
        }
    } else {
        out.push(chunk(
            model,
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
        ));
        out.extend(
            super::split(text)
                .iter()
                .map(|p| chunk(model, json!({"content": p}), Value::Null)),
        );
    }
    for (i, call) in calls.iter().enumerate() {
        if i > 0 || !text.is_empty() {
            out.push(chunk(
                model,
                json!({"tool_calls": [{"index": i, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}]}),
                Value::Null,
            ));
        }
        out.extend(call.pieces.iter().map(|piece| {
            chunk(
                model,
                json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                Value::Null,
            )
        }));
    }
    out.push(chunk(model, json!({}), json!("tool_calls")));
    out.push(usage_chunk(model, usage));
    out.push("data: [DONE]\n\n".to_string());
    out
}

/// A non-streamed answer that calls tools.
pub(super) fn tool_call_completion(
    text: &str,
    calls: &[ScriptedCall],
    usage: (u64, u64),
    model: &str,
) -> Value {
    let mut v = completion(text, usage, model);
    v["choices"][0]["message"]["content"] = if text.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    v["choices"][0]["message"]["tool_calls"] = calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments()}}))
        .collect();
    v["choices"][0]["finish_reason"] = json!("tool_calls");
    v
}
