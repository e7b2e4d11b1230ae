//! The gateway connection: one websocket per shard, speaking Discord's
//! documented protocol (HELLO → IDENTIFY or RESUME → READY → dispatches,
//! with heartbeats), reconnecting and resuming when the connection drops.
//! Dispatches are handed to [`Discord::handle`], each on its own task, so
//! that a slow answer never holds up the heartbeat.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::Discord;
use super::rest::RestError;

/// `GUILDS`: thread create/update events.
const GUILDS: u64 = 1 << 0;
/// `GUILD_MESSAGES`.
const GUILD_MESSAGES: u64 = 1 << 9;
/// `GUILD_MESSAGE_REACTIONS`.
const GUILD_MESSAGE_REACTIONS: u64 = 1 << 10;
/// `DIRECT_MESSAGES`.
const DIRECT_MESSAGES: u64 = 1 << 12;
/// `DIRECT_MESSAGE_REACTIONS`.
const DIRECT_MESSAGE_REACTIONS: u64 = 1 << 13;
/// `MESSAGE_CONTENT` (privileged).
const MESSAGE_CONTENT: u64 = 1 << 15;

/// Why the Discord connection stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// `GET /gateway/bot` failed.
    #[error("cannot find Discord's gateway: {0}")]
    Discover(#[from] RestError),
    /// Discord closed the connection with a code that retrying cannot fix.
    #[error("Discord closed the connection of shard {shard}: {code} {reason}; {fix}")]
    Fatal {
        /// The shard.
        shard: u32,
        /// The close code.
        code: u16,
        /// Discord's reason.
        reason: String,
        /// What to do.
        fix: &'static str,
    },
}

/// The intents the bot asks for.
pub fn intents(message_content: bool) -> u64 {
    let base = GUILDS
        | GUILD_MESSAGES
        | GUILD_MESSAGE_REACTIONS
        | DIRECT_MESSAGES
        | DIRECT_MESSAGE_REACTIONS;
    if message_content {
        base | MESSAGE_CONTENT
    } else {
        base
    }
}

/// What a fatal close code means, and the fix; `None` when reconnecting helps.
fn fatal(code: u16) -> Option<&'static str> {
    match code {
        4004 => Some(
            "the token was refused: put a valid bot token in the variable named by discord.token_env",
        ),
        4010 | 4011 => Some(
            "the shard settings are wrong: check discord.shards (Discord asks for more shards when the bot is in many servers)",
        ),
        4012 => Some("the API version is no longer supported: upgrade Switchboard"),
        4013 => Some("the intents are invalid: upgrade Switchboard"),
        4014 => Some(
            "an intent is not enabled: enable Message Content Intent in the developer portal (Bot → Privileged Gateway Intents), or set discord.message_content = false",
        ),
        _ => None,
    }
}

/// Runs this replica's shards until `stop` turns true (or a shard fails
/// for good). Registers the `/prompt` commands first.
pub async fn run(discord: Discord, stop: watch::Receiver<bool>) -> Result<(), ShardError> {
    let info = discord
        .rest()
        .call(reqwest::Method::GET, "/gateway/bot", None)
        .await?;
    let url = info
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("wss://gateway.discord.gg")
        .to_string();
    if let Err(e) = discord.register_commands().await {
        tracing::warn!(error = %e, "the /prompt commands were not registered");
    }
    let shards = discord.config().shards;
    let mut tasks = tokio::task::JoinSet::new();
    for (n, shard) in (shards.first..=shards.last).enumerate() {
        let (discord, stop, url) = (discord.clone(), stop.clone(), url.clone());
        tasks.spawn(async move {
            // Discord allows one IDENTIFY per five seconds by default.
            tokio::time::sleep(Duration::from_secs(5 * n as u64)).await;
            Shard::new(discord, shard, shards.total, url)
                .run(stop)
                .await
        });
    }
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            result = Err(e);
        }
    }
    result
}

/// How one connection ended.
enum Ended {
    /// Asked to stop.
    Stopped,
    /// Dropped: reconnect (and resume when `resume`).
    Reconnect { resume: bool },
}

struct Shard {
    discord: Discord,
    id: u32,
    total: u32,
    url: String,
    session: Option<String>,
    resume_url: Option<String>,
    seq: Option<u64>,
}

impl Shard {
    fn new(discord: Discord, id: u32, total: u32, url: String) -> Shard {
        Shard {
            discord,
            id,
            total,
            url,
            session: None,
            resume_url: None,
            seq: None,
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), ShardError> {
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            match self.connect(&mut stop).await {
                Ok(Ended::Stopped) => return Ok(()),
                Ok(Ended::Reconnect { resume }) => {
                    failures = 0;
                    if !resume {
                        self.session = None;
                        self.seq = None;
                    }
                }
                Err(ConnError::Fatal(e)) => return Err(e),
                Err(ConnError::Io(message)) => {
                    failures += 1;
                    let wait = Duration::from_secs(1 << failures.min(6));
                    tracing::warn!(shard = self.id, %message, ?wait, "Discord connection lost; reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => return Ok(()),
                    }
                }
            }
        }
    }

    async fn connect(&mut self, stop: &mut watch::Receiver<bool>) -> Result<Ended, ConnError> {
        let base = match (&self.session, &self.resume_url) {
            (Some(_), Some(u)) => u.clone(),
            _ => self.url.clone(),
        };
        let url = format!("{}/?v=10&encoding=json", base.trim_end_matches('/'));
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| ConnError::Io(format!("cannot connect to {base}: {e}")))?;
        // HELLO first.
        let hello = next_payload(&mut ws).await?;
        if hello.get("op").and_then(Value::as_u64) != Some(10) {
            return Err(ConnError::Io("the gateway did not start with HELLO".into()));
        }
        let interval = hello
            .pointer("/d/heartbeat_interval")
            .and_then(Value::as_u64)
            .unwrap_or(41_250);
        let interval = Duration::from_millis(interval.max(100));
        let token = &self.discord.config().token;
        let hello_reply = match (&self.session, self.seq) {
            (Some(session), Some(seq)) => {
                json!({ "op": 6, "d": { "token": token, "session_id": session, "seq": seq } })
            }
            _ => json!({ "op": 2, "d": {
                "token": token,
                "intents": intents(self.discord.config().message_content),
                "properties": { "os": std::env::consts::OS, "browser": "switchboard", "device": "switchboard" },
                "shard": [self.id, self.total],
            } }),
        };
        send(&mut ws, &hello_reply).await?;
        // The first heartbeat is jittered, as Discord asks.
        let first = interval.mul_f64(fastrand::f64());
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + first, interval);
        let mut acked = true;
        loop {
            tokio::select! {
                _ = stop.changed() => {
                    let _ = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "shutting down".into() })).await;
                    return Ok(Ended::Stopped);
                }
                _ = beat.tick() => {
                    if !acked {
                        // A zombie connection: drop it and resume.
                        return Ok(Ended::Reconnect { resume: true });
                    }
                    acked = false;
                    send(&mut ws, &json!({ "op": 1, "d": self.seq })).await?;
                }
                frame = ws.next() => {
                    let payload = match frame {
                        Some(Ok(Frame::Text(t))) => match serde_json::from_str::<Value>(&t) {
                            Ok(v) => v,
                            Err(e) => { tracing::warn!(error = %e, "undecodable gateway payload"); continue; }
                        },
                        Some(Ok(Frame::Close(close))) => {
                            let (code, reason) = close.map(|c| (u16::from(c.code), c.reason.to_string())).unwrap_or((1000, String::new()));
                            if let Some(fix) = fatal(code) {
                                return Err(ConnError::Fatal(ShardError::Fatal { shard: self.id, code, reason, fix }));
                            }
                            return Err(ConnError::Io(format!("closed by Discord: {code} {reason}")));
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(ConnError::Io(e.to_string())),
                        None => return Err(ConnError::Io("the connection ended".into())),
                    };
                    match payload.get("op").and_then(Value::as_u64) {
                        Some(0) => {
                            if let Some(s) = payload.get("s").and_then(Value::as_u64) {
                                self.seq = Some(s);
                            }
                            let event = payload.get("t").and_then(Value::as_str).unwrap_or("").to_string();
                            let data = payload.get("d").cloned().unwrap_or(Value::Null);
                            if event == "READY" {
                                self.session = data.get("session_id").and_then(Value::as_str).map(str::to_string);
                                self.resume_url = data.get("resume_gateway_url").and_then(Value::as_str).map(str::to_string);
                                tracing::info!(shard = self.id, "connected to Discord");
                            }
                            // State events are applied before any later message is
                            // handled (the bot's id, the threads it knows).
                            if matches!(event.as_str(), "READY" | "GUILD_CREATE" | "THREAD_CREATE" | "THREAD_UPDATE") {
                                if let Err(e) = self.discord.handle(&event, data).await {
                                    tracing::warn!(%event, error = %e, "Discord event not handled");
                                }
                                continue;
                            }
                            let discord = self.discord.clone();
                            tokio::spawn(async move {
                                if let Err(e) = discord.handle(&event, data).await {
                                    tracing::warn!(%event, error = %e, "Discord event not handled");
                                }
                            });
                        }
                        Some(1) => send(&mut ws, &json!({ "op": 1, "d": self.seq })).await?,
                        Some(7) => return Ok(Ended::Reconnect { resume: true }),
                        Some(9) => {
                            let resumable = payload.get("d").and_then(Value::as_bool).unwrap_or(false);
                            tokio::time::sleep(Duration::from_millis(1000 + fastrand::u64(0..4000))).await;
                            return Ok(Ended::Reconnect { resume: resumable });
                        }
                        Some(11) => acked = true,
                        _ => {}
                    }
                }
            }
        }
    }
}

enum ConnError {
    Fatal(ShardError),
    Io(String),
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, payload: &Value) -> Result<(), ConnError> {
    ws.send(Frame::Text(payload.to_string().into()))
        .await
        .map_err(|e| ConnError::Io(e.to_string()))
}

async fn next_payload(ws: &mut Ws) -> Result<Value, ConnError> {
    loop {
        match ws.next().await {
            Some(Ok(Frame::Text(t))) => {
                return serde_json::from_str(&t).map_err(|e| ConnError::Io(e.to_string()));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ConnError::Io(e.to_string())),
            None => return Err(ConnError::Io("the connection ended before HELLO".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_content_is_asked_for_only_when_configured() {
        assert_eq!(intents(false) & MESSAGE_CONTENT, 0);
        assert_ne!(intents(true) & MESSAGE_CONTENT, 0);
        assert_ne!(intents(false) & GUILD_MESSAGES, 0);
        assert_ne!(intents(false) & DIRECT_MESSAGES, 0);
    }

    #[test]
    fn a_refused_token_stops_with_the_fix() {
        assert!(fatal(4004).is_some_and(|f| f.contains("token_env")));
        assert!(fatal(4014).is_some_and(|f| f.contains("message_content")));
        assert_eq!(fatal(4000), None);
    }
}
