//! A stand-in for the Slack Web API on loopback, speaking its wire format:
//! `POST /api/METHOD` with a bearer token and JSON, form-encoded or query
//! arguments, answered with Slack's `{"ok": …}` JSON. It answers the
//! methods the adapter calls the way Slack documents them, keeps the
//! threads it is told about (including the bot's own posts, so that later
//! reads see them), and records every call for assertions. It can be told
//! to answer a method with `429` and `Retry-After` a number of times.
//!
//! It also plays Socket Mode: `apps.connections.open` (with the app-level
//! token) hands out the URL of a websocket on loopback that greets with
//! `hello`, sends the envelopes a test gives it, and records the acks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};

/// The bot user that `auth.test` reports.
pub const BOT_USER: &str = "U0LAN0Z89";
/// The bot id that `auth.test` reports.
pub const BOT_ID: &str = "B0LAN0Z89";
/// The bot token that the Web API methods take.
pub const TOKEN: &str = "xoxb-test-token";
/// The app-level token that `apps.connections.open` takes.
pub const APP_TOKEN: &str = "xapp-1-A123ABC456-test";

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The Web API method (`chat.postMessage`), or `response_url:ID`.
    pub method: String,
    /// The arguments as one object, however they were sent: a JSON body,
    /// a form-encoded body, or the query string.
    pub args: Value,
    /// When it arrived.
    pub at: Instant,
}

/// A method's arguments, read the ways Slack's Web API takes them: a JSON
/// body (`application/json`), a form-encoded body
/// (`application/x-www-form-urlencoded`, where structured arguments such
/// as `blocks` are JSON-encoded strings), or the query string.
fn arguments(headers: &HeaderMap, query: &HashMap<String, String>, body: &[u8]) -> Value {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut args = serde_json::Map::new();
    for (k, v) in query {
        args.insert(k.clone(), json!(v));
    }
    if content_type.starts_with("application/json") {
        if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) {
            args.extend(body);
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in form_urlencoded::parse(body) {
            let structured = matches!(
                k.as_ref(),
                "blocks" | "attachments" | "metadata" | "view" | "chunks"
            );
            let value = match serde_json::from_str::<Value>(&v) {
                Ok(parsed) if structured => parsed,
                _ => json!(v),
            };
            args.insert(k.into_owned(), value);
        }
    }
    Value::Object(args)
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    users: HashMap<String, Value>,
    /// Thread parent ts → messages, oldest first.
    threads: HashMap<String, Vec<Value>>,
    limited: HashMap<String, u32>,
    next_ts: u64,
    /// Socket Mode: connections opened so far.
    connections: usize,
    /// Socket Mode: what the app sent on the socket (its acks).
    acks: Vec<Value>,
    /// Socket Mode: the newest connection's outbox.
    socket: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// The address of the websocket server.
    socket_addr: String,
    /// Files served at `/files/NAME`, and the Authorization headers seen.
    files: HashMap<String, Vec<u8>>,
    file_auth: Vec<String>,
    /// Whether the chat streaming methods work; else they answer `stream_refusal`.
    streaming: bool,
    stream_refusal: Option<String>,
    /// Streams not yet stopped (ts).
    open_streams: Vec<String>,
}

/// A running Slack stand-in.
#[derive(Clone)]
pub struct FakeSlack {
    /// The Web API base, `http://127.0.0.1:PORT/api`.
    pub url: String,
    /// The server's root, `http://127.0.0.1:PORT` (files, `response_url`s).
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeSlack {
    /// Starts the Web API server and the Socket Mode websocket.
    pub async fn start() -> FakeSlack {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let app = axum::Router::new()
            .route("/api/{method}", any(api))
            .route("/respond/{id}", post(respond))
            .route("/files/{name}", axum::routing::get(file))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let sockets = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Socket Mode stand-in");
        inner.lock().expect("lock").socket_addr = sockets
            .local_addr()
            .expect("Socket Mode address")
            .to_string();
        tokio::spawn(serve_sockets(sockets, inner.clone()));
        FakeSlack {
            url: format!("http://{addr}/api"),
            base: format!("http://{addr}"),
            inner,
        }
    }

    /// Serves `bytes` as a shared file; returns its `url_private`.
    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        self.inner
            .lock()
            .expect("lock")
            .files
            .insert(name.to_string(), bytes.to_vec());
        format!("{}/files/{name}", self.base)
    }

    /// The Authorization headers file downloads carried.
    pub fn file_auth(&self) -> Vec<String> {
        self.inner.lock().expect("lock").file_auth.clone()
    }

    /// A user that `users.info` knows.
    pub fn user(&self, id: &str, name: &str, admin: bool) {
        self.lock().users.insert(
            id.into(),
            json!({"id": id, "name": name, "real_name": name, "is_admin": admin, "is_owner": false,
                   "profile": {"display_name": name}}),
        );
    }

    /// A user of another organization, as `users.info` shows someone met
    /// through a shared (Slack Connect) channel: their home `team_id`, and
    /// `is_stranger`. `admin`: they administer their own workspace.
    pub fn stranger(&self, id: &str, name: &str, team: &str, admin: bool) {
        self.lock().users.insert(
            id.into(),
            json!({"id": id, "team_id": team, "name": name, "real_name": name, "is_admin": admin,
                   "is_owner": admin, "is_stranger": true, "profile": {"display_name": name}}),
        );
    }

    /// Messages of a thread, as `conversations.replies` returns them.
    pub fn thread(&self, parent: &str, messages: Vec<Value>) {
        self.lock().threads.insert(parent.into(), messages);
    }

    /// The chat streaming methods work, as in a workspace that has them.
    pub fn enable_streaming(&self) {
        self.lock().streaming = true;
    }

    /// The chat streaming methods answer `error` (the default is
    /// `unknown_method`, as where they do not exist).
    pub fn refuse_streaming(&self, error: &str) {
        let mut s = self.lock();
        s.streaming = false;
        s.stream_refusal = Some(error.into());
    }

    /// A message's text as the thread now shows it.
    pub fn message_text(&self, ts: &str) -> Option<String> {
        let s = self.lock();
        s.threads
            .values()
            .flatten()
            .find(|m| m["ts"] == ts)
            .and_then(|m| m["text"].as_str().map(str::to_string))
    }

    /// The next `times` calls of `method` get 429 with `Retry-After: 1`.
    pub fn rate_limit(&self, method: &str, times: u32) {
        self.lock().limited.insert(method.into(), times);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls of one method so far.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Waits until `done` holds for the calls so far (10 s at most).
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let start = Instant::now();
        loop {
            let calls = self.calls();
            if done(&calls) {
                return calls;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!(
                    "timed out waiting for {what}; calls: {:#?}",
                    summary(&calls)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Socket Mode: how many connections the app opened.
    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    /// Socket Mode: the acks the app sent.
    pub fn acks(&self) -> Vec<Value> {
        self.lock().acks.clone()
    }

    /// Socket Mode: sends a message on the newest connection.
    pub fn send(&self, message: &Value) {
        let s = self.lock();
        let outbox = s.socket.as_ref().expect("a Socket Mode connection");
        outbox
            .send(message.to_string())
            .expect("the Socket Mode connection is open");
    }

    /// Socket Mode: waits until `done` holds for the acks (10 s at most).
    pub async fn wait_for_ack(&self, what: &str, done: impl Fn(&[Value]) -> bool) {
        let start = Instant::now();
        while !done(&self.acks()) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}; acks: {:?}",
                self.acks()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Socket Mode: waits until at least `n` connections were opened.
    pub async fn wait_for_connections(&self, n: usize) {
        let start = Instant::now();
        while self.connections() < n || self.lock().socket.is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for Socket Mode connection {n}; {} so far",
                self.connections()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("lock")
    }
}

/// The calls as `method args` lines, for assertion messages.
pub fn summary(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| format!("{} {}", c.method, c.args))
        .collect()
}

async fn respond(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let args = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.lock().expect("lock").calls.push(Call {
        method: format!("response_url:{id}"),
        args,
        at: Instant::now(),
    });
    StatusCode::OK.into_response()
}

async fn api(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let args = arguments(&headers, &query, &body);
    let mut s = inner.lock().expect("lock");
    s.calls.push(Call {
        method: method.clone(),
        args: args.clone(),
        at: Instant::now(),
    });
    if let Some(n) = s.limited.get_mut(&method)
        && *n > 0
    {
        *n -= 1;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if method == "apps.connections.open" {
        // Only the app-level token opens connections.
        if auth != Some(&format!("Bearer {APP_TOKEN}")) {
            return axum::Json(json!({"ok": false, "error": "not_allowed_token_type"}))
                .into_response();
        }
        s.next_ts += 1;
        let url = format!("ws://{}/link/?ticket=ticket-{}", s.socket_addr, s.next_ts);
        return axum::Json(json!({"ok": true, "url": url})).into_response();
    }
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return axum::Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    let s = &mut *s;
    let answer = match method.as_str() {
        "auth.test" => json!({"ok": true, "url": "https://example.slack.com/", "team": "Example",
            "user": "switchboard", "team_id": "T123ABC456", "user_id": BOT_USER, "bot_id": BOT_ID}),
        "chat.postMessage" => {
            s.next_ts += 1;
            let ts = format!("1700000000.{:06}", s.next_ts);
            let channel = args["channel"].as_str().unwrap_or_default().to_string();
            let message = json!({"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": ts,
                "text": args["text"], "thread_ts": args["thread_ts"], "metadata": args["metadata"]});
            if let Some(parent) = args["thread_ts"].as_str() {
                s.threads
                    .entry(parent.to_string())
                    .or_default()
                    .push(message.clone());
            }
            json!({"ok": true, "channel": channel, "ts": ts, "message": message})
        }
        "chat.update" => {
            for messages in s.threads.values_mut() {
                for m in messages.iter_mut() {
                    if m["ts"] == args["ts"] {
                        m["text"] = args["text"].clone();
                    }
                }
            }
            json!({"ok": true, "channel": args["channel"], "ts": args["ts"], "text": args["text"],
                "message": {"text": args["text"], "user": BOT_USER, "bot_id": BOT_ID,
                            "blocks": args["blocks"]}})
        }
        "conversations.replies" => {
            let ts = args["ts"].as_str().unwrap_or_default();
            let thread = s.threads.get(ts).cloned().or_else(|| {
                s.threads
                    .values()
                    .find(|m| m.iter().any(|m| m["ts"] == ts))
                    .cloned()
            });
            match thread {
                Some(messages) => json!({"ok": true, "messages": messages, "has_more": false}),
                None => json!({"ok": false, "error": "thread_not_found"}),
            }
        }
        "users.info" => match s.users.get(args["user"].as_str().unwrap_or_default()) {
            Some(u) => json!({"ok": true, "user": u}),
            None => json!({"ok": false, "error": "user_not_found"}),
        },
        "chat.startStream" | "chat.appendStream" | "chat.stopStream" if !s.streaming => {
            let error = s.stream_refusal.clone().unwrap_or("unknown_method".into());
            json!({"ok": false, "error": error})
        }
        "chat.startStream" => {
            let channel = args["channel"].as_str().unwrap_or_default().to_string();
            let in_channel = !channel.starts_with('D');
            if args["thread_ts"].as_str().is_none() {
                json!({"ok": false, "error": "invalid_arguments"})
            } else if in_channel && args["recipient_user_id"].as_str().is_none() {
                json!({"ok": false, "error": "missing_recipient_user_id"})
            } else if in_channel && args["recipient_team_id"].as_str().is_none() {
                json!({"ok": false, "error": "missing_recipient_team_id"})
            } else {
                s.next_ts += 1;
                let ts = format!("1700000000.{:06}", s.next_ts);
                let message = json!({"type": "message", "user": BOT_USER, "bot_id": BOT_ID,
                    "ts": ts, "thread_ts": args["thread_ts"],
                    "text": args["markdown_text"].as_str().unwrap_or_default()});
                s.threads
                    .entry(args["thread_ts"].as_str().unwrap_or_default().to_string())
                    .or_default()
                    .push(message);
                s.open_streams.push(ts.clone());
                json!({"ok": true, "channel": channel, "ts": ts})
            }
        }
        "chat.appendStream" | "chat.stopStream" => {
            let ts = args["ts"].as_str().unwrap_or_default().to_string();
            let stopping = method == "chat.stopStream";
            if !s.open_streams.contains(&ts) {
                json!({"ok": false, "error": "message_not_in_streaming_state"})
            } else if !stopping && args["markdown_text"].as_str().is_none() {
                json!({"ok": false, "error": "invalid_arguments"})
            } else {
                let add = args["markdown_text"].as_str().unwrap_or_default();
                let mut shown = Value::Null;
                for m in s.threads.values_mut().flatten() {
                    if m["ts"] == ts {
                        let text = format!("{}{add}", m["text"].as_str().unwrap_or_default());
                        m["text"] = json!(text);
                        if stopping {
                            m["blocks"] = args["blocks"].clone();
                            m["metadata"] = args["metadata"].clone();
                        }
                        shown = m.clone();
                    }
                }
                if stopping {
                    s.open_streams.retain(|t| *t != ts);
                    json!({"ok": true, "channel": args["channel"], "ts": ts, "message": shown})
                } else {
                    json!({"ok": true, "channel": args["channel"], "ts": ts})
                }
            }
        }
        "assistant.threads.setStatus" => json!({"ok": true}),
        "views.open" => json!({"ok": true, "view": {"id": "VMHU10V25"}}),
        "chat.postEphemeral" => json!({"ok": true, "message_ts": "1502210682.580145"}),
        _ => json!({"ok": false, "error": "unknown_method"}),
    };
    axum::Json(answer).into_response()
}

/// The Socket Mode websocket: `hello` first, then whatever the test sends;
/// everything the app sends is recorded. A newer connection replaces the
/// older (which then closes), as after Slack's `disconnect`.
async fn serve_sockets(listener: tokio::net::TcpListener, inner: Arc<Mutex<Inner>>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    while let Ok((stream, _)) = listener.accept().await {
        let inner = inner.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            {
                let mut s = inner.lock().expect("lock");
                s.connections += 1;
                s.socket = Some(tx);
            }
            let hello = json!({"type": "hello", "num_connections": 1,
                "debug_info": {"host": "applink-7fc4fdbb6d-x5qjc", "build_number": 10,
                               "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A123ABC456"}});
            if ws.send(Message::text(hello.to_string())).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(text) => {
                            if ws.send(Message::text(text)).await.is_err() {
                                return;
                            }
                        }
                        None => {
                            let _ = ws.close(None).await;
                            return;
                        }
                    },
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(t))) => {
                            let v = serde_json::from_str(&t).unwrap_or(Value::Null);
                            inner.lock().expect("lock").acks.push(v);
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => {}
                    },
                }
            }
        });
    }
}

/// A shared file's bytes; Slack wants the bot token for `url_private`.
async fn file(
    axum::extract::State(inner): axum::extract::State<Arc<Mutex<Inner>>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut inner = inner.lock().expect("lock");
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    inner.file_auth.push(auth);
    match inner.files.get(&name) {
        Some(bytes) => bytes.clone().into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}
