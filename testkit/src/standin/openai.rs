//! OpenAI's Chat Completions wire format, as the [`StandIn`](super::StandIn)
//! speaks it on `/v1/chat/completions`: the `chat.completion` JSON body,
//! the `chat.completion.chunk` SSE events with `include_usage` and the
//! closing `data: [DONE]`, and OpenAI's error body, each byte for byte as
//! the API sends them.

use serde_json::{Value, json};

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
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({
                "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
                "object": "chat.completion.chunk",
                "created": 1741569952,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_06737a9306",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
                "usage": null
            })
        )
    };
    let mut out = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    out.extend(
        pieces
            .iter()
            .map(|p| chunk(json!({"content": p}), Value::Null)),
    );
    if let Some((input, output)) = usage {
        out.push(chunk(json!({}), json!("stop")));
        out.push(format!(
            "data: {}\n\n",
            json!({
                "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
                "object": "chat.completion.chunk",
                "created": 1741569952,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_06737a9306",
                "choices": [],
                "usage": {
                    "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
                }
            })
        ));
        out.push("data: [DONE]\n\n".to_string());
    }
    out
}

/// OpenAI's error body.
pub fn openai_error(message: &str, kind: &str) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}}).to_string()
}
