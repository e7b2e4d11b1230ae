//! Pieces the benchmarks share: a stand-in OpenAI endpoint that answers at
//! once (so that what is measured is Switchboard, not a model), and
//! percentiles of sorted samples.

use axum::routing::post;
use serde_json::json;

/// Starts an OpenAI-compatible `/v1/chat/completions` on loopback that
/// answers every request at once with `answer` and this usage (prompt,
/// completion tokens). Returns its base URL, without `/v1`.
pub async fn instant_openai(answer: &str, usage: (u64, u64)) -> anyhow::Result<String> {
    let body = json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}
    })
    .to_string();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// The `p`th percentile (0–100) of sorted samples; NaN when there are none.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
