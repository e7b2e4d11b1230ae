//! Anthropic's Messages wire format, as the [`StandIn`](super::StandIn)
//! speaks it on `/v1/messages`: the `message` JSON body, the named SSE
//! events of a streamed message (`message_start`, `content_block_delta`,
//! `ping`, `message_stop`, …), and Anthropic's error body, each byte for
//! byte as the API sends them.

use serde_json::{Value, json};

use super::ScriptedCall;

/// A non-streamed answer: the `message` object.
pub(super) fn message(text: &str, (input, output): (u64, u64), model: &str) -> Value {
    json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": output}
    })
}

/// Anthropic's events, exactly as its Messages API streams them.
pub(super) fn events(pieces: &[String], (input, output): (u64, u64), model: &str) -> Vec<String> {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut out = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": model, "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    out.extend(pieces.iter().map(|p| {
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
        )
    }));
    out.push(ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    out.push(ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": output}}),
    ));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    out
}

/// Anthropic's error body.
pub fn anthropic_error(message: &str, kind: &str) -> String {
    json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
}

/// A streamed answer that uses tools, as the Messages API streams one:
/// any text in block 0, then each call as a `tool_use` block (its
/// `content_block_start` with id, name and an empty input, then
/// `input_json_delta` pieces), and stop reason `tool_use`.
pub(super) fn tool_use_events(
    text: &str,
    calls: &[ScriptedCall],
    (input, output): (u64, u64),
    model: &str,
) -> Vec<String> {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut out = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant", "model": model, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 2}, "content": [], "stop_reason": null}}),
    )];
    let mut block = 0;
    if !text.is_empty() {
        out.push(ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
        out.push(ev("ping", json!({"type": "ping"})));
        out.extend(super::split(text).iter().map(|p| {
            ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}))
        }));
        out.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        block = 1;
    }
    for call in calls {
        out.push(ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": block, "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}),
        ));
        out.push(ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": block, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ));
        out.extend(call.pieces.iter().map(|piece| {
            ev("content_block_delta", json!({"type": "content_block_delta", "index": block, "delta": {"type": "input_json_delta", "partial_json": piece}}))
        }));
        out.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": block}),
        ));
        block += 1;
    }
    out.push(ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": output}}),
    ));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    out
}

/// A non-streamed answer that uses tools.
pub(super) fn tool_use_message(
    text: &str,
    calls: &[ScriptedCall],
    usage: (u64, u64),
    model: &str,
) -> Value {
    let mut v = message(text, usage, model);
    let mut content: Vec<Value> = if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "text", "text": text})]
    };
    content.extend(calls.iter().map(|c| {
        let input: Value = serde_json::from_str(&c.arguments()).unwrap_or_else(|_| json!({}));
        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input})
    }));
    v["content"] = Value::Array(content);
    v["stop_reason"] = json!("tool_use");
    v
}
