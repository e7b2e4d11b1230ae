//! A stand-in Discord for end-to-end tests and benchmarks, speaking its
//! wire formats: the REST API v10 routes the bot uses (with the documented
//! JSON, including 429 answers with `retry_after`), and a gateway
//! websocket (JSON frames of `op`, `d`, `s` and `t`) that does HELLO,
//! IDENTIFY (or RESUME), READY, heartbeats and then sends the dispatches a
//! test pushes. Everything the bot does is recorded for the test to check.
//! Answers carry every field Discord documents as always present, since
//! the bot's client library reads them into typed models.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

/// The bot's user id in the stand-in.
pub const BOT: &str = "1100000000000000001";
/// The application id.
pub const APP: &str = "1000000000000000001";
/// The pushed "event" that makes the stand-in drop a connection.
const CLOSE: &str = "__close__";
/// The guild of the tests.
pub const GUILD: &str = "1300000000000000001";
/// The channel of the tests.
pub const CHANNEL: &str = "1200000000000000001";
/// The user of the tests.
pub const USER: &str = "1400000000000000001";

/// One REST call the bot made.
#[derive(Debug, Clone)]
pub struct Call {
    /// The HTTP method.
    pub method: &'static str,
    /// The path below `/api/v10` (or `/attachments/NAME`).
    pub path: String,
    /// The JSON body (`null` for none).
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
    /// The status the stand-in answered.
    pub status: u16,
}

#[derive(Default)]
struct Log {
    calls: Vec<Call>,
    messages: BTreeMap<String, Value>,
    next_id: u64,
    /// How many message creations still get a 429.
    rate_limit_creates: u32,
    identify: Vec<Value>,
    /// Close the connection with this code and reason after an IDENTIFY.
    close_identify: Option<(u16, String)>,
    resumes: Vec<Value>,
    files: BTreeMap<String, String>,
    /// Attachments that answer with a redirect to this URL.
    redirects: BTreeMap<String, String>,
    /// Channel and thread objects `GET /channels/{id}` knows.
    channels: BTreeMap<String, Value>,
    /// `@everyone`'s permissions, by guild (default: view and send).
    everyone: BTreeMap<String, u64>,
    /// How many history reads still get a 429.
    rate_limit_lists: u32,
}

/// Where the test's dispatches go once the bot is connected.
type Dispatches = Arc<Mutex<Vec<mpsc::UnboundedSender<(String, Value)>>>>;

#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Log>>,
    dispatch: Dispatches,
}

/// The running stand-in.
pub struct Discord {
    /// `http://127.0.0.1:PORT/api/v10`.
    pub api_base: String,
    shared: Shared,
}

impl Discord {
    /// Starts the REST server and the gateway.
    pub async fn start() -> Discord {
        let ws = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let ws_url = format!("ws://{}", ws.local_addr().expect("addr"));
        let shared = Shared {
            log: Arc::new(Mutex::new(Log {
                next_id: 1900000000000000000,
                ..Log::default()
            })),
            dispatch: Arc::default(),
        };
        let url = ws_url.clone();
        let gateway_url = ws_url.clone();
        let app = axum::Router::new()
            .route(
                "/api/v10/gateway",
                get(move || {
                    let url = gateway_url.clone();
                    async move { Json(json!({ "url": url })) }
                }),
            )
            .route(
                "/api/v10/gateway/bot",
                get(move || {
                    let url = url.clone();
                    async move {
                        Json(json!({ "url": url, "shards": 1,
                            "session_start_limit": { "total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1 } }))
                    }
                }),
            )
            .route("/api/v10/applications/{app}/commands", put(commands))
            .route("/api/v10/channels/{channel}/messages", post(create).get(list))
            .route(
                "/api/v10/channels/{channel}/messages/{id}",
                patch(edit).get(fetch),
            )
            .route("/api/v10/channels/{channel}/typing", post(typing))
            .route("/api/v10/channels/{channel}", get(channel_object))
            .route(
                "/api/v10/channels/{channel}/threads/archived/public",
                get(archived_threads),
            )
            .route("/api/v10/guilds/{guild}/roles", get(roles))
            .route(
                "/api/v10/users/@me",
                get(|| async {
                    Json(json!({ "id": BOT, "username": "switchboard", "bot": true,
                        "discriminator": "0", "avatar": null, "global_name": null }))
                }),
            )
            .route("/api/v10/guilds/{guild}/threads/active", get(active_threads))
            .route("/attachments/{name}", get(file))
            .route("/api/v10/interactions/{id}/{token}/callback", post(callback))
            .route("/api/v10/webhooks/{app}/{token}", post(followup))
            .route(
                "/api/v10/webhooks/{app}/{token}/messages/@original",
                patch(original),
            )
            .with_state(shared.clone());
        let rest = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let api_base = format!("http://{}/api/v10", rest.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(rest, app).await;
        });
        let gw = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = ws.accept().await {
                let gw = gw.clone();
                let url = ws_url.clone();
                tokio::spawn(async move { gateway_session(stream, gw, url).await });
            }
        });
        Discord { api_base, shared }
    }

    /// Serves `text` as an attachment on the stand-in CDN; returns its URL.
    pub fn seed_file(&self, name: &str, text: &str) -> String {
        self.shared
            .log
            .lock()
            .expect("lock")
            .files
            .insert(name.to_string(), text.to_string());
        format!(
            "{}/attachments/{name}",
            self.api_base.trim_end_matches("/api/v10")
        )
    }

    /// Makes the stand-in CDN answer `/attachments/NAME` with a redirect to
    /// `to`; returns the attachment's URL.
    pub fn seed_redirect(&self, name: &str, to: &str) -> String {
        self.shared
            .log
            .lock()
            .expect("lock")
            .redirects
            .insert(name.to_string(), to.to_string());
        format!(
            "{}/attachments/{name}",
            self.api_base.trim_end_matches("/api/v10")
        )
    }

    /// Sends a dispatch (`t`, `d`) over every open gateway connection, once
    /// the bot is connected.
    pub async fn dispatch(&self, event: &str, data: Value) {
        for _ in 0..200 {
            let sent = {
                let mut sessions = self.shared.dispatch.lock().expect("lock");
                sessions.retain(|tx| !tx.is_closed());
                for tx in sessions.iter() {
                    let _ = tx.send((event.to_string(), data.clone()));
                }
                !sessions.is_empty()
            };
            if sent {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the bot never connected to the gateway");
    }

    /// Drops every gateway connection with a resumable close code.
    pub async fn disconnect(&self) {
        self.dispatch(CLOSE, Value::Null).await;
    }

    /// The RESUME payloads the bot sent.
    pub fn resumes(&self) -> Vec<Value> {
        self.shared.log.lock().expect("lock").resumes.clone()
    }

    /// How many gateway connections are open (past READY).
    pub fn sessions(&self) -> usize {
        let mut sessions = self.shared.dispatch.lock().expect("lock");
        sessions.retain(|tx| !tx.is_closed());
        sessions.len()
    }

    /// A text channel of the test guild that `GET /channels/{id}` knows;
    /// `private`: `@everyone` may not view it (an overwrite denies it).
    pub fn seed_channel(&self, id: &str, name: &str, private: bool) {
        let overwrites = if private {
            json!([{ "id": GUILD, "type": 0, "allow": "0", "deny": "1024" }])
        } else {
            json!([])
        };
        self.shared.log.lock().expect("lock").channels.insert(
            id.to_string(),
            json!({ "id": id, "type": 0, "guild_id": GUILD, "name": name, "position": 0,
                    "permission_overwrites": overwrites, "nsfw": false, "parent_id": null }),
        );
    }

    /// A public thread (type 11) under `parent`, started from the message
    /// of the same id when there is one; `archived` lists it among the
    /// archived threads instead of the active ones.
    pub fn seed_thread(&self, id: &str, parent: &str, name: &str, archived: bool) {
        self.shared.log.lock().expect("lock").channels.insert(
            id.to_string(),
            json!({ "id": id, "type": 11, "guild_id": GUILD, "name": name, "parent_id": parent,
                    "owner_id": USER, "message_count": 0, "member_count": 1,
                    "thread_metadata": { "archived": archived, "auto_archive_duration": 1440,
                        "archive_timestamp": "2026-11-28T08:00:00.000000+00:00", "locked": false } }),
        );
    }

    /// Removes a message, as a deletion does.
    pub fn remove(&self, id: &str) {
        self.shared.log.lock().expect("lock").messages.remove(id);
    }

    /// The next `n` history reads (`GET /channels/{id}/messages`) are
    /// answered 429.
    pub fn rate_limit_next_lists(&self, n: u32) {
        self.shared.log.lock().expect("lock").rate_limit_lists = n;
    }

    /// The next `n` message creations are answered 429.
    pub fn rate_limit_next_creates(&self, n: u32) {
        self.shared.log.lock().expect("lock").rate_limit_creates = n;
    }

    /// Every REST call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.log.lock().expect("lock").calls.clone()
    }

    /// Every IDENTIFY payload, in order.
    pub fn identifies(&self) -> Vec<Value> {
        self.shared.log.lock().expect("lock").identify.clone()
    }

    /// Answers every IDENTIFY by closing the connection with `code`.
    pub fn close_identify_with(&self, code: u16, reason: &str) {
        self.shared.log.lock().expect("lock").close_identify = Some((code, reason.to_string()));
    }

    /// The first IDENTIFY payload a bot sent.
    pub fn identify(&self) -> Option<Value> {
        self.shared
            .log
            .lock()
            .expect("lock")
            .identify
            .first()
            .cloned()
    }

    /// A message as the channel shows it now.
    pub fn message(&self, id: &str) -> Option<Value> {
        self.shared
            .log
            .lock()
            .expect("lock")
            .messages
            .get(id)
            .cloned()
    }

    /// Stores a user's message, so that `GET` finds it (reply chains).
    pub fn seed(&self, message: Value) {
        let id = message["id"]
            .as_str()
            .expect("a message with a string `id`")
            .to_string();
        self.shared
            .log
            .lock()
            .expect("lock")
            .messages
            .insert(id, message);
    }

    /// The bot's messages in creation order.
    pub fn bot_messages(&self) -> Vec<Value> {
        let log = self.shared.log.lock().expect("lock");
        log.messages
            .values()
            .filter(|m| m["author"]["id"] == BOT)
            .cloned()
            .collect()
    }

    /// Waits until `check` holds, for up to 30 seconds.
    pub async fn until(&self, what: &str, check: impl Fn(&Discord) -> bool) {
        for _ in 0..600 {
            if check(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}; calls: {:#?}", self.calls());
    }
}

fn record(s: &Shared, method: &'static str, path: String, body: Value, status: u16) {
    s.log.lock().expect("lock").calls.push(Call {
        method,
        path,
        body,
        at: Instant::now(),
        status,
    });
}

async fn commands(
    State(s): State<Shared>,
    Path(app): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    record(
        &s,
        "PUT",
        format!("/applications/{app}/commands"),
        body.clone(),
        200,
    );
    // Discord answers with the commands as registered: ids, version, type.
    let registered = body
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let mut c = c.clone();
            c["id"] = json!((1600000000000000000u64 + i as u64).to_string());
            c["application_id"] = json!(app);
            c["version"] = json!("1650000000000000001");
            if c.get("type").is_none() {
                c["type"] = json!(1);
            }
            // Message and user commands come back with an empty description.
            if c.get("description").is_none() {
                c["description"] = json!("");
            }
            c
        })
        .collect();
    Json(Value::Array(registered))
}

async fn create(
    State(s): State<Shared>,
    Path(channel): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let path = format!("/channels/{channel}/messages");
    {
        let mut log = s.log.lock().expect("lock");
        if log.rate_limit_creates > 0 {
            log.rate_limit_creates -= 1;
            drop(log);
            record(&s, "POST", path, body, 429);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1"), ("x-ratelimit-scope", "user")],
                Json(json!({ "message": "You are being rate limited.", "retry_after": 0.4, "global": false })),
            )
                .into_response();
        }
    }
    let message = {
        let mut log = s.log.lock().expect("lock");
        log.next_id += 1;
        let id = log.next_id.to_string();
        let message = bot_message(&id, &channel, &body);
        log.messages.insert(id, message.clone());
        message
    };
    record(&s, "POST", path, body, 200);
    Json(message).into_response()
}

async fn edit(
    State(s): State<Shared>,
    Path((channel, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let updated = {
        let mut log = s.log.lock().expect("lock");
        let Some(m) = log.messages.get_mut(&id) else {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({ "message": "Unknown Message", "code": 10008 })),
            )
                .into_response();
        };
        if let Some(c) = body.get("content") {
            m["content"] = c.clone();
        }
        if let Some(c) = body.get("components") {
            m["components"] = c.clone();
        }
        m["edited_timestamp"] = json!("2026-11-28T08:00:01.000000+00:00");
        m.clone()
    };
    record(
        &s,
        "PATCH",
        format!("/channels/{channel}/messages/{id}"),
        body,
        200,
    );
    Json(updated).into_response()
}

async fn fetch(State(s): State<Shared>, Path((channel, id)): Path<(String, String)>) -> Response {
    record(
        &s,
        "GET",
        format!("/channels/{channel}/messages/{id}"),
        Value::Null,
        200,
    );
    match s.log.lock().expect("lock").messages.get(&id) {
        Some(m) => Json(m.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Unknown Message", "code": 10008 })),
        )
            .into_response(),
    }
}

/// `GET /channels/{id}/messages`: newest first, `before`, `after` and
/// `limit` (default 50, at most 100) as Discord pages them.
async fn list(
    State(s): State<Shared>,
    Path(channel): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let path = format!("/channels/{channel}/messages");
    {
        let mut log = s.log.lock().expect("lock");
        if log.rate_limit_lists > 0 {
            log.rate_limit_lists -= 1;
            drop(log);
            record(&s, "GET", path, json!(query), 429);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1"), ("x-ratelimit-scope", "user")],
                Json(json!({ "message": "You are being rate limited.", "retry_after": 0.4, "global": false })),
            )
                .into_response();
        }
    }
    record(&s, "GET", path, json!(query), 200);
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 100);
    let before = query.get("before").and_then(|b| b.parse::<u64>().ok());
    let after = query.get("after").and_then(|b| b.parse::<u64>().ok());
    let log = s.log.lock().expect("lock");
    let mut msgs: Vec<&Value> = log
        .messages
        .values()
        .filter(|m| m["channel_id"] == channel.as_str())
        .filter(|m| {
            before.is_none_or(|b| {
                m["id"]
                    .as_str()
                    .and_then(|id| id.parse::<u64>().ok())
                    .is_some_and(|id| id < b)
            })
        })
        .collect();
    let id_of = |m: &Value| m["id"].as_str().and_then(|id| id.parse::<u64>().ok());
    if let Some(a) = after {
        // The `limit` messages right after `after`, newest first.
        msgs.retain(|m| id_of(m).is_some_and(|id| id > a));
        msgs.sort_by_key(|m| id_of(m));
        msgs.truncate(limit);
        msgs.reverse();
    } else {
        msgs.sort_by_key(|m| std::cmp::Reverse(id_of(m)));
        msgs.truncate(limit);
    }
    Json(Value::Array(msgs.into_iter().cloned().collect())).into_response()
}

/// `GET /channels/{id}`.
async fn channel_object(State(s): State<Shared>, Path(channel): Path<String>) -> Response {
    record(&s, "GET", format!("/channels/{channel}"), Value::Null, 200);
    match s.log.lock().expect("lock").channels.get(&channel) {
        Some(c) => Json(c.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Unknown Channel", "code": 10003 })),
        )
            .into_response(),
    }
}

/// `GET /guilds/{id}/roles`: `@everyone` (its id is the guild's).
async fn roles(State(s): State<Shared>, Path(guild): Path<String>) -> Json<Value> {
    record(
        &s,
        "GET",
        format!("/guilds/{guild}/roles"),
        Value::Null,
        200,
    );
    let log = s.log.lock().expect("lock");
    // VIEW_CHANNEL, SEND_MESSAGES, READ_MESSAGE_HISTORY.
    let perms = log
        .everyone
        .get(&guild)
        .copied()
        .unwrap_or(1024 | 2048 | 65536);
    Json(
        json!([{ "id": guild, "name": "@everyone", "permissions": perms.to_string(),
        "position": 0, "color": 0, "hoist": false, "managed": false, "mentionable": false, "flags": 0 }]),
    )
}

/// `GET /guilds/{id}/threads/active`.
async fn active_threads(State(s): State<Shared>, Path(guild): Path<String>) -> Json<Value> {
    record(
        &s,
        "GET",
        format!("/guilds/{guild}/threads/active"),
        Value::Null,
        200,
    );
    let log = s.log.lock().expect("lock");
    let threads: Vec<Value> = log
        .channels
        .values()
        .filter(|c| c["guild_id"] == guild.as_str() && c["type"] == 11)
        .filter(|c| c["thread_metadata"]["archived"] == false)
        .cloned()
        .collect();
    Json(json!({ "threads": threads, "members": [] }))
}

/// `GET /channels/{id}/threads/archived/public`: one page holds them all.
async fn archived_threads(State(s): State<Shared>, Path(channel): Path<String>) -> Json<Value> {
    record(
        &s,
        "GET",
        format!("/channels/{channel}/threads/archived/public"),
        Value::Null,
        200,
    );
    let log = s.log.lock().expect("lock");
    let threads: Vec<Value> = log
        .channels
        .values()
        .filter(|c| c["parent_id"] == channel.as_str() && c["type"] == 11)
        .filter(|c| c["thread_metadata"]["archived"] == true)
        .cloned()
        .collect();
    Json(json!({ "threads": threads, "members": [], "has_more": false }))
}

async fn file(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let authorized = headers.contains_key("authorization");
    record(
        &s,
        "GET",
        format!("/attachments/{name}"),
        json!({ "authorization": authorized }),
        200,
    );
    let log = s.log.lock().expect("lock");
    if let Some(to) = log.redirects.get(&name) {
        return (
            StatusCode::FOUND,
            [(axum::http::header::LOCATION, to.clone())],
        )
            .into_response();
    }
    match log.files.get(&name) {
        Some(text) => text.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn typing(State(s): State<Shared>, Path(channel): Path<String>) -> StatusCode {
    record(
        &s,
        "POST",
        format!("/channels/{channel}/typing"),
        Value::Null,
        204,
    );
    StatusCode::NO_CONTENT
}

async fn callback(
    State(s): State<Shared>,
    Path((id, token)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> StatusCode {
    record(
        &s,
        "POST",
        format!("/interactions/{id}/{token}/callback"),
        body,
        204,
    );
    StatusCode::NO_CONTENT
}

async fn original(
    State(s): State<Shared>,
    Path((app, token)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    record(
        &s,
        "PATCH",
        format!("/webhooks/{app}/{token}/messages/@original"),
        body.clone(),
        200,
    );
    Json(bot_message("1910000000000000001", CHANNEL, &body))
}

/// `POST /webhooks/{app}/{token}`: a follow-up message to an interaction.
async fn followup(
    State(s): State<Shared>,
    Path((app, token)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    record(
        &s,
        "POST",
        format!("/webhooks/{app}/{token}"),
        body.clone(),
        200,
    );
    Json(bot_message("1910000000000000002", CHANNEL, &body))
}

/// A message by the bot, as Discord answers a create or an edit.
fn bot_message(id: &str, channel: &str, body: &Value) -> Value {
    json!({
        "id": id, "type": if body.get("message_reference").is_some() { 19 } else { 0 },
        "channel_id": channel,
        "author": { "id": BOT, "username": "switchboard", "bot": true, "discriminator": "0", "avatar": null },
        "content": body.get("content").cloned().unwrap_or(json!("")),
        "components": body.get("components").cloned().unwrap_or(json!([])),
        "message_reference": body.get("message_reference").map(|r| json!({
            "type": 0, "message_id": r["message_id"], "channel_id": channel, "guild_id": GUILD })),
        "flags": body.get("flags").cloned().unwrap_or(json!(0)),
        "mentions": [], "mention_roles": [], "mention_everyone": false,
        "attachments": [], "embeds": [], "tts": false, "pinned": false,
        "timestamp": "2026-11-28T08:00:00.000000+00:00", "edited_timestamp": null
    })
}

/// One gateway connection: HELLO, wait for IDENTIFY, READY, then heartbeat
/// ACKs and the test's dispatches.
async fn gateway_session(stream: tokio::net::TcpStream, s: Shared, url: String) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let send = |v: Value| Frame::Text(v.to_string().into());
    if ws
        .send(send(
            json!({ "op": 10, "d": { "heartbeat_interval": 45000 }, "s": null, "t": null }),
        ))
        .await
        .is_err()
    {
        return;
    }
    // IDENTIFY, or RESUME after a dropped connection.
    let first = loop {
        match ws.next().await {
            Some(Ok(Frame::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["op"] == 2 || v["op"] == 6 {
                    break v;
                }
            }
            Some(Ok(_)) => continue,
            _ => return,
        }
    };
    let mut seq;
    let hello_back = if first["op"] == 6 {
        seq = first["d"]["seq"].as_u64().unwrap_or(0) + 1;
        s.log.lock().expect("lock").resumes.push(first);
        json!({ "op": 0, "s": seq, "t": "RESUMED", "d": {} })
    } else {
        seq = 1;
        let close = {
            let mut log = s.log.lock().expect("lock");
            log.identify.push(first);
            log.close_identify.clone()
        };
        if let Some((code, reason)) = close {
            let _ = ws
                .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                }))
                .await;
            return;
        }
        json!({ "op": 0, "s": seq, "t": "READY", "d": {
            "v": 10, "user": { "id": BOT, "username": "switchboard", "bot": true, "discriminator": "0", "avatar": null },
            "guilds": [{ "id": GUILD, "unavailable": true }], "session_id": "stand-in-session",
            "resume_gateway_url": url, "application": { "id": APP, "flags": 0 } } })
    };
    if ws.send(send(hello_back)).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    s.dispatch.lock().expect("lock").push(tx);
    loop {
        tokio::select! {
            d = rx.recv() => {
                let Some((t, d)) = d else { return };
                if t == CLOSE {
                    // Code 4000 ("unknown error"): the client may resume.
                    let _ = ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                        code: 4000.into(),
                        reason: "stand-in reconnect".into(),
                    })).await;
                    return;
                }
                seq += 1;
                if ws.send(send(json!({ "op": 0, "s": seq, "t": t, "d": d }))).await.is_err() {
                    return;
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Frame::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["op"] == 1 && ws.send(send(json!({ "op": 11 }))).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
}

/// A `MESSAGE_CREATE` from the test user in the test channel.
pub fn user_message(id: &str, content: &str, mentions_bot: bool) -> Value {
    json!({
        "id": id, "type": 0, "channel_id": CHANNEL, "guild_id": GUILD,
        "author": { "id": USER, "username": "ada", "global_name": "Ada L", "discriminator": "0", "avatar": null },
        "member": { "roles": [], "nick": null, "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false },
        "content": content, "timestamp": "2026-11-28T08:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false,
        "mentions": if mentions_bot { json!([{ "id": BOT, "username": "switchboard", "bot": true, "discriminator": "0", "avatar": null }]) } else { json!([]) },
        "mention_roles": [], "attachments": [], "embeds": [], "pinned": false
    })
}

/// An `INTERACTION_CREATE` from the test user; `kind` 2 command, 3 button,
/// 4 autocomplete, 5 submitted form.
pub fn interaction(id: &str, kind: u8, permissions: &str, data: Value) -> Value {
    json!({
        "id": id, "application_id": APP, "type": kind, "token": format!("token-{id}"), "version": 1,
        "guild_id": GUILD, "channel_id": CHANNEL, "app_permissions": "0", "locale": "en-US",
        "entitlements": [], "authorizing_integration_owners": { "0": GUILD }, "context": 0,
        "attachment_size_limit": 10485760,
        "member": { "user": { "id": USER, "username": "ada", "global_name": "Ada L", "discriminator": "0", "avatar": null },
                    "roles": [], "permissions": permissions, "flags": 0, "joined_at": "2026-01-01T00:00:00.000000+00:00",
                    "deaf": false, "mute": false },
        "data": data
    })
}
