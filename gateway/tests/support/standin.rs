//! A stand-in for hosted model APIs (OpenAI Chat Completions and Anthropic
//! Messages), speaking their wire formats byte for byte: SSE chunks,
//! `data: [DONE]`, Anthropic's named events, their error bodies and
//! headers. Each request takes the next scripted reply (or the default) and
//! is recorded for assertions.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

/// What the stand-in answers with.
#[derive(Clone, Debug)]
pub enum Reply {
    /// An OpenAI streamed answer in these pieces, with this usage.
    OpenAiStream(Vec<String>, (u64, u64)),
    /// An OpenAI non-streamed answer.
    OpenAiJson(String, (u64, u64)),
    /// An Anthropic streamed answer.
    AnthropicStream(Vec<String>, (u64, u64)),
    /// An Anthropic non-streamed answer.
    AnthropicJson(String, (u64, u64)),
    /// The first pieces of an OpenAI stream, then the connection breaks.
    OpenAiCut(Vec<String>),
    /// An error status with a body and extra headers.
    Status(u16, String, Vec<(&'static str, String)>),
    /// An OpenAI streamed answer whose events come this far apart.
    OpenAiSlow(Vec<String>, Duration),
    /// Never answers.
    Hang,
}

impl Reply {
    /// An answer in the right shape for the path and `stream` flag.
    pub fn text(text: &str) -> Reply {
        Reply::OpenAiStream(split(text), (11, split(text).len() as u64))
    }
}

/// Splits text into word-sized pieces, like a model's tokens.
pub fn split(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c == ' ' && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The path.
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its JSON body.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// The last user message of a chat request (the question).
    pub fn question(&self) -> Value {
        self.body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .cloned()
            .unwrap_or(Value::Null)
    }
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Option<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A running stand-in.
pub struct StandIn {
    /// Base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub url: String,
    shared: Shared,
}

impl StandIn {
    /// Starts a stand-in whose unscripted requests get a plain answer
    /// (in the format the path asks for).
    pub async fn start() -> StandIn {
        let shared = Shared {
            script: Arc::default(),
            default: Arc::default(),
            received: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/v1/messages", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandIn {
            url: format!("http://{addr}/v1"),
            shared,
        }
    }

    /// Queues replies for the next requests, in order.
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) -> &Self {
        self.shared.script.lock().expect("lock").extend(replies);
        self
    }

    /// The reply for requests beyond the script.
    pub fn always(&self, reply: Reply) -> &Self {
        *self.shared.default.lock().expect("lock") = Some(reply);
        self
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }
}

async fn handle(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_string();
    let streaming = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("model")
        .to_string();
    shared.received.lock().expect("lock").push(Received {
        path: path.clone(),
        headers,
        body,
        at: Instant::now(),
    });
    let scripted = shared.script.lock().expect("lock").pop_front();
    let default = shared.default.lock().expect("lock").clone();
    let anthropic = path.ends_with("/messages");
    let reply = scripted.or(default).unwrap_or_else(|| {
        let pieces = split("Hello from the stand-in.");
        match (anthropic, streaming) {
            (false, true) => Reply::OpenAiStream(pieces, (11, 5)),
            (false, false) => Reply::OpenAiJson(pieces.concat(), (11, 5)),
            (true, true) => Reply::AnthropicStream(pieces, (11, 5)),
            (true, false) => Reply::AnthropicJson(pieces.concat(), (11, 5)),
        }
    });
    // A streamed-answer reply for a non-streamed request is given in the
    // request's shape, so one script serves both.
    let reply = match (reply, streaming) {
        (Reply::OpenAiStream(p, u), false) => Reply::OpenAiJson(p.concat(), u),
        (Reply::AnthropicStream(p, u), false) => Reply::AnthropicJson(p.concat(), u),
        (r, _) => r,
    };
    if let Reply::Hang = reply {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    respond(reply, &model)
}

fn respond(reply: Reply, model: &str) -> Response {
    match reply {
        Reply::OpenAiStream(pieces, usage) => {
            sse(openai_events(&pieces, Some(usage), model), false)
        }
        Reply::OpenAiCut(pieces) => sse(openai_events(&pieces, None, model), true),
        Reply::OpenAiSlow(pieces, gap) => {
            let usage = (11, pieces.len() as u64);
            let events = openai_events(&pieces, Some(usage), model);
            let body = stream::iter(events).then(move |e| async move {
                tokio::time::sleep(gap).await;
                Ok::<_, std::io::Error>(Bytes::from(e))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/event-stream; charset=utf-8")
                .body(Body::from_stream(body))
                .expect("response")
        }
        Reply::AnthropicStream(pieces, usage) => {
            sse(anthropic_events(&pieces, usage, model), false)
        }
        Reply::OpenAiJson(text, (input, output)) => json_response(json!({
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
        })),
        Reply::AnthropicJson(text, (input, output)) => json_response(json!({
            "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output}
        })),
        Reply::Status(status, body, headers) => {
            let mut b = Response::builder()
                .status(StatusCode::from_u16(status).expect("status"))
                .header("content-type", "application/json");
            for (k, v) in headers {
                b = b.header(k, v);
            }
            b.body(Body::from(body)).expect("response")
        }
        // Headers never come.
        Reply::Hang => unreachable!("handled before responding"),
    }
}

fn json_response(v: Value) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .expect("response")
}

/// An SSE response from pre-built events; `cut` breaks the connection
/// after them instead of ending cleanly.
fn sse(events: Vec<String>, cut: bool) -> Response {
    let items: Vec<Result<Bytes, std::io::Error>> =
        events.into_iter().map(|e| Ok(Bytes::from(e))).collect();
    // The cut comes a moment later, once what was sent has reached the client.
    let tail = stream::iter(cut.then_some(())).then(|()| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "cut",
        ))
    });
    let body = stream::iter(items).chain(tail);
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream; charset=utf-8")
        .body(Body::from_stream(body))
        .expect("response")
}

/// OpenAI's chunks, exactly as its API sends them with include_usage.
fn openai_events(pieces: &[String], usage: Option<(u64, u64)>, model: &str) -> Vec<String> {
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

/// Anthropic's events, exactly as its Messages API streams them.
fn anthropic_events(pieces: &[String], (input, output): (u64, u64), model: &str) -> Vec<String> {
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

/// OpenAI's error body.
pub fn openai_error(message: &str, kind: &str) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}}).to_string()
}

/// Anthropic's error body.
pub fn anthropic_error(message: &str, kind: &str) -> String {
    json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
}
