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
    /// The most characters a streamed message may hold, when limited.
    stream_max_chars: Option<usize>,
    /// Channels `conversations.info` and `conversations.history` know.
    channels: HashMap<String, Channel>,
}

/// A channel's info and its top-level messages, oldest first. Replies live
/// in `threads`, under their parent's ts, parent first.
struct Channel {
    info: Value,
    top: Vec<Value>,
    /// Whether the bot is in it (else its history is `not_in_channel`).
    member: bool,
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

    /// A channel: `conversations.info` shows it (public or private), and
    /// `conversations.history` reads its messages; `member`: the bot is in
    /// it, else reading it answers `not_in_channel`.
    pub fn channel(&self, id: &str, name: &str, private: bool, member: bool) {
        self.lock().channels.insert(
            id.into(),
            Channel {
                info: json!({"id": id, "name": name, "created": 1_690_000_000,
                    "is_channel": true, "is_group": false, "is_im": false, "is_mpim": false,
                    "is_private": private, "is_archived": false, "is_member": member}),
                top: Vec::new(),
                member,
            },
        );
    }

    /// A message posted in `channel` by `user` at `ts`: a reply when
    /// `thread` names its parent (whose `reply_count` grows), else a
    /// top-level message.
    pub fn say(&self, channel: &str, user: &str, ts: &str, thread: Option<&str>, text: &str) {
        let mut s = self.lock();
        let mut message = json!({"type": "message", "user": user, "ts": ts, "text": text});
        let s = &mut *s;
        let Some(c) = s.channels.get_mut(channel) else {
            panic!("no channel {channel}: call FakeSlack::channel first");
        };
        match thread {
            Some(parent) => {
                message["thread_ts"] = json!(parent);
                let root = c
                    .top
                    .iter_mut()
                    .find(|m| m["ts"] == parent)
                    .expect("the parent is a top-level message");
                let count = root["reply_count"].as_u64().unwrap_or(0) + 1;
                root["reply_count"] = json!(count);
                root["thread_ts"] = json!(parent);
                let root = root.clone();
                let thread = s.threads.entry(parent.to_string()).or_default();
                if thread.is_empty() {
                    thread.push(root);
                } else {
                    thread[0] = root;
                }
                thread.push(message);
            }
            None => c.top.push(message),
        }
    }

    /// Edits a message's text wherever it is.
    pub fn edit(&self, channel: &str, ts: &str, text: &str) {
        let mut s = self.lock();
        let s = &mut *s;
        for m in s
            .channels
            .get_mut(channel)
            .into_iter()
            .flat_map(|c| c.top.iter_mut())
            .chain(s.threads.values_mut().flatten())
        {
            if m["ts"] == ts {
                m["text"] = json!(text);
                m["edited"] = json!({"user": m["user"], "ts": "1800000000.000000"});
            }
        }
    }

    /// Deletes a message as Slack does: a reply goes; a parent with
    /// replies becomes a tombstone; a parent without goes with its thread.
    pub fn delete(&self, channel: &str, ts: &str) {
        let mut s = self.lock();
        let s = &mut *s;
        for thread in s.threads.values_mut() {
            thread.retain(|m| m["ts"] != ts || m["thread_ts"] == ts);
        }
        if let Some(c) = s.channels.get_mut(channel) {
            let has_replies = s.threads.get(ts).is_some_and(|t| t.len() > 1);
            if has_replies {
                for m in c
                    .top
                    .iter_mut()
                    .chain(s.threads.get_mut(ts).into_iter().flatten())
                {
                    if m["ts"] == ts {
                        *m = json!({"type": "message", "subtype": "tombstone", "ts": ts,
                            "thread_ts": ts, "user": "USLACKBOT", "text": "This message was deleted.",
                            "reply_count": m["reply_count"]});
                    }
                }
            } else {
                c.top.retain(|m| m["ts"] != ts);
                s.threads.remove(ts);
            }
        }
    }

    /// The chat streaming methods work, as in a workspace that has them.
    pub fn enable_streaming(&self) {
        self.lock().streaming = true;
    }

    /// Ends every open stream, as Slack does a few minutes after one
    /// started: appending to or stopping one then answers
    /// `message_not_in_streaming_state`.
    pub fn close_open_streams(&self) {
        self.lock().open_streams.clear();
    }

    /// A streamed message may hold at most `chars` characters: an append
    /// or stop that would make it longer answers `msg_too_long`.
    pub fn limit_streamed_chars(&self, chars: usize) {
        self.lock().stream_max_chars = Some(chars);
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

    /// The texts of the bot's messages in thread `thread_ts`, in order.
    pub fn bot_texts(&self, thread_ts: &str) -> Vec<String> {
        let s = self.lock();
        s.threads
            .get(thread_ts)
            .into_iter()
            .flatten()
            .filter(|m| m["user"] == BOT_USER)
            .filter_map(|m| m["text"].as_str().map(str::to_string))
            .collect()
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
            let channel = args["channel"].as_str().unwrap_or_default();
            let lone = || {
                s.channels
                    .get(channel)
                    .and_then(|c| c.top.iter().find(|m| m["ts"] == ts))
                    .map(|m| vec![m.clone()])
            };
            let thread = s
                .threads
                .get(ts)
                .cloned()
                .or_else(|| {
                    s.threads
                        .values()
                        .find(|m| m.iter().any(|m| m["ts"] == ts))
                        .cloned()
                })
                .or_else(lone);
            match (s.channels.get(channel), thread) {
                (Some(c), _) if !c.member => json!({"ok": false, "error": "not_in_channel"}),
                (_, Some(messages)) => {
                    // Paged as Slack pages it: the parent opens every page.
                    let per_page = limit_of(&args, 1000).saturating_sub(1).max(1);
                    let replies = &messages[1.min(messages.len())..];
                    let from = offset_of(&args).min(replies.len());
                    let end = (from + per_page).min(replies.len());
                    let mut page = vec![messages[0].clone()];
                    page.extend_from_slice(&replies[from..end]);
                    let more = end < replies.len();
                    json!({"ok": true, "messages": page, "has_more": more,
                        "response_metadata": {"next_cursor": if more { format!("page:{end}") } else { String::new() }}})
                }
                (_, None) => json!({"ok": false, "error": "thread_not_found"}),
            }
        }
        "conversations.history" => {
            match s.channels.get(args["channel"].as_str().unwrap_or_default()) {
                None => json!({"ok": false, "error": "channel_not_found"}),
                Some(c) if !c.member => json!({"ok": false, "error": "not_in_channel"}),
                Some(c) => {
                    let newest_first: Vec<Value> = c.top.iter().rev().cloned().collect();
                    let limit = limit_of(&args, 100);
                    let from = offset_of(&args).min(newest_first.len());
                    let end = (from + limit).min(newest_first.len());
                    let more = end < newest_first.len();
                    json!({"ok": true, "messages": newest_first[from..end], "has_more": more,
                    "response_metadata": {"next_cursor": if more { format!("page:{end}") } else { String::new() }}})
                }
            }
        }
        "conversations.info" => {
            match s.channels.get(args["channel"].as_str().unwrap_or_default()) {
                Some(c) => json!({"ok": true, "channel": c.info}),
                None => json!({"ok": false, "error": "channel_not_found"}),
            }
        }
        "chat.getPermalink" => {
            let channel = args["channel"].as_str().unwrap_or_default();
            let ts = args["message_ts"]
                .as_str()
                .unwrap_or_default()
                .replace('.', "");
            json!({"ok": true, "channel": channel,
                "permalink": format!("https://example.slack.com/archives/{channel}/p{ts}")})
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
            let add_len = args["markdown_text"]
                .as_str()
                .map_or(0, |t| t.chars().count());
            let len_now = s
                .threads
                .values()
                .flatten()
                .find(|m| m["ts"] == ts)
                .map_or(0, |m| {
                    m["text"].as_str().unwrap_or_default().chars().count()
                });
            if !s.open_streams.contains(&ts) {
                json!({"ok": false, "error": "message_not_in_streaming_state"})
            } else if !stopping && args["markdown_text"].as_str().is_none() {
                json!({"ok": false, "error": "invalid_arguments"})
            } else if s
                .stream_max_chars
                .is_some_and(|max| len_now + add_len > max)
            {
                json!({"ok": false, "error": "msg_too_long"})
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
        "assistant.threads.setStatus"
        | "assistant.threads.setSuggestedPrompts"
        | "assistant.threads.setTitle" => {
            if args["channel_id"].as_str().is_none() || args["thread_ts"].as_str().is_none() {
                json!({"ok": false, "error": "invalid_arguments"})
            } else {
                json!({"ok": true})
            }
        }
        "views.open" => json!({"ok": true, "view": {"id": "VMHU10V25"}}),
        "chat.postEphemeral" => json!({"ok": true, "message_ts": "1502210682.580145"}),
        _ => json!({"ok": false, "error": "unknown_method"}),
    };
    axum::Json(answer).into_response()
}

/// A request's `limit` (Slack's default when absent).
fn limit_of(args: &Value, default: usize) -> usize {
    args["limit"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .or_else(|| args["limit"].as_u64().map(|l| l as usize))
        .unwrap_or(default)
        .max(1)
}

/// Where a `cursor` (`page:N`, as this stand-in hands them out) starts.
fn offset_of(args: &Value) -> usize {
    args["cursor"]
        .as_str()
        .and_then(|c| c.strip_prefix("page:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
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
