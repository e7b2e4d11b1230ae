//! A stand-in for hosted model APIs on loopback: one server that answers
//! OpenAI Chat Completions on `/v1/chat/completions` ([`openai`]) and
//! Anthropic Messages on `/v1/messages` ([`anthropic`]), speaking their
//! wire formats byte for byte: SSE chunks, `data: [DONE]`, Anthropic's
//! named events, their error bodies and headers. Each request takes the
//! next scripted reply (or the default) and is recorded for assertions.
//! This file holds the script and the server; each wire format has its own.

pub mod anthropic;
pub mod openai;

pub use anthropic::anthropic_error;
pub use openai::openai_error;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use futures_util::{StreamExt, stream};
use serde_json::Value;

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
    /// An answer that calls tools (after this text, if any), in the
    /// format the path asks for (OpenAI `tool_calls`, Anthropic `tool_use`
    /// blocks), streamed or not as the request asks; each call's
    /// arguments are streamed in these pieces.
    ToolCalls(String, Vec<ScriptedCall>, (u64, u64)),
    /// Never answers.
    Hang,
}

/// A tool call the stand-in's model makes.
#[derive(Clone, Debug)]
pub struct ScriptedCall {
    /// The call's id (`call_…` or `toolu_…`).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments' JSON text, in the pieces it streams in.
    pub pieces: Vec<String>,
}

impl ScriptedCall {
    /// A call of `name` with these arguments, streamed in pieces of about
    /// eight characters, as models stream them.
    pub fn new(id: &str, name: &str, arguments: &str) -> ScriptedCall {
        let chars: Vec<char> = arguments.chars().collect();
        ScriptedCall {
            id: id.to_string(),
            name: name.to_string(),
            pieces: chars.chunks(8).map(|c| c.iter().collect()).collect(),
        }
    }

    /// The whole arguments.
    pub fn arguments(&self) -> String {
        self.pieces.concat()
    }
}

impl Reply {
    /// An answer that calls one tool.
    pub fn tool_call(id: &str, name: &str, arguments: &str) -> Reply {
        Reply::ToolCalls(
            String::new(),
            vec![ScriptedCall::new(id, name, arguments)],
            (40, 12),
        )
    }

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
    // A reply is given in the request's shape (streamed or not), as the
    // real APIs do, so one script serves both.
    let reply = match (reply, streaming) {
        (Reply::OpenAiStream(p, u), false) => Reply::OpenAiJson(p.concat(), u),
        (Reply::AnthropicStream(p, u), false) => Reply::AnthropicJson(p.concat(), u),
        (Reply::OpenAiJson(t, u), true) => Reply::OpenAiStream(split(&t), u),
        (Reply::AnthropicJson(t, u), true) => Reply::AnthropicStream(split(&t), u),
        (r, _) => r,
    };
    if let Reply::Hang = reply {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    respond(reply, &model, anthropic, streaming)
}

fn respond(reply: Reply, model: &str, anthropic: bool, streaming: bool) -> Response {
    match reply {
        Reply::ToolCalls(text, calls, usage) => match (anthropic, streaming) {
            (false, true) => sse(openai::tool_call_events(&text, &calls, usage, model), false),
            (false, false) => {
                json_response(openai::tool_call_completion(&text, &calls, usage, model))
            }
            (true, true) => sse(
                anthropic::tool_use_events(&text, &calls, usage, model),
                false,
            ),
            (true, false) => {
                json_response(anthropic::tool_use_message(&text, &calls, usage, model))
            }
        },
        Reply::OpenAiStream(pieces, usage) => {
            sse(openai::events(&pieces, Some(usage), model), false)
        }
        Reply::OpenAiCut(pieces) => sse(openai::events(&pieces, None, model), true),
        Reply::OpenAiSlow(pieces, gap) => {
            let usage = (11, pieces.len() as u64);
            let events = openai::events(&pieces, Some(usage), model);
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
            sse(anthropic::events(&pieces, usage, model), false)
        }
        Reply::OpenAiJson(text, usage) => json_response(openai::completion(&text, usage, model)),
        Reply::AnthropicJson(text, usage) => json_response(anthropic::message(&text, usage, model)),
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
