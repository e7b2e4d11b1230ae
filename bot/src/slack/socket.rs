//! Socket Mode: Slack delivers events, slash commands and interactions
//! over a websocket the app opens, so no public HTTPS endpoint is needed
//! (a machine behind a firewall, a laptop).
//!
//! `apps.connections.open`, called with the app-level token (`xapp-…`),
//! gives a one-time `wss://` URL. Slack says `hello`, then sends
//! envelopes `{envelope_id, type, payload, accepts_response_payload,
//! retry_attempt, retry_reason}`; each is acknowledged by sending back
//! `{"envelope_id": …}` (with a `payload` where Slack takes one: a slash
//! command's answer, a modal's `response_action`). The payload then goes
//! to the same functions as the HTTP endpoints' (`Handler`, which the
//! adapter implements when it starts the connection).
//!
//! There is no request signature here: the socket is authenticated by the
//! app-level token, so `slack.signing_secret_env` is not needed.
//!
//! Connections end: Slack asks for a new one with a `disconnect` message
//! (`refresh_requested` every few hours, `warning` shortly before,
//! `link_disabled` when Socket Mode is turned off), the network fails, or
//! a socket dies silently. The loop here opens a fresh URL each time,
//! waits with a growing backoff after failures, and drops a connection on
//! which nothing (not even Slack's pings) arrived for
//! `slack.socket_watchdog_ms`. Slack redelivers unacknowledged envelopes
//! after a reconnect; the `event_id` dedupe makes them harmless.
//!
//! The payloads are slack-morphism's models (`SlackPushEventCallback`,
//! `SlackCommandEvent`, `SlackInteractionEvent`) and `apps.connections.open`
//! goes through its client. The envelope around them (`envelope_id`,
//! `type`, `payload`) is read here: slack-morphism 2.31 does not export its
//! Socket Mode envelope models (its `models::socket_mode` is private, and
//! the public name `socket_mode` is its listener). The connection
//! loop is ours rather than its `SlackClientSocketModeListener`: that
//! listener notices a dead socket only by its own pings going unanswered
//! (whole seconds, several intervals), so a socket on which Slack falls
//! silent while still answering pings is never dropped, and its reconnect
//! waits are whole seconds; neither gives `socket_watchdog_ms`'s "nothing
//! arrived for this long" or stops with the server's shutdown signal.

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use slack_morphism::events::{SlackCommandEvent, SlackInteractionEvent};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as Frame;

use super::inbound::Refused;
use super::model::Callback;
use super::web::{Web, WebError};

/// The first wait after a failed connection; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between attempts to connect.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why one connection ended.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// `apps.connections.open` failed.
    #[error(
        "cannot open a Socket Mode connection: {0} (check slack.app_token_env: an app-level token `xapp-…` with the connections:write scope, and that Socket Mode is on in the app's settings)"
    )]
    Open(WebError),
    /// The websocket failed.
    #[error("the Socket Mode websocket failed: {0} (check the network)")]
    Socket(String),
}

/// Where the envelopes' payloads go: the same handling as the HTTP
/// endpoints'.
pub(crate) trait Handler: Clone + Send + Sync + 'static {
    /// An event callback: taken (acknowledged), or refused so that Slack
    /// delivers it again. `retry` is for the log.
    fn event(
        &self,
        callback: Callback,
        retry: &str,
    ) -> impl Future<Output = Result<(), Refused>> + Send;
    /// A slash command: the answer to send back.
    fn command(&self, command: &SlackCommandEvent) -> impl Future<Output = Value> + Send;
    /// An interaction: a body to answer with, or `None` for an empty ack.
    fn interaction(
        &self,
        interaction: SlackInteractionEvent,
    ) -> impl Future<Output = Option<Value>> + Send;
}

/// How a connection ended without an error.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Slack asked for a new connection, the socket closed, or it fell silent.
    Reconnect,
    /// The process is stopping.
    Stopped,
}

/// Keeps a Socket Mode connection open until `stop` turns true, opening
/// each with `opener` (the Web API client with the app-level token) and
/// handing the payloads to `handler`; a connection on which nothing
/// arrived for `watchdog` is opened again.
pub(crate) async fn run<H: Handler>(
    handler: H,
    opener: Web,
    watchdog: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        match connect(&handler, &opener, watchdog, &mut stop).await {
            Ok((Ended::Stopped, _)) => return,
            Ok((Ended::Reconnect, greeted)) => {
                if greeted {
                    backoff = FIRST_BACKOFF;
                    continue;
                }
                tracing::warn!(
                    "the Socket Mode connection closed before Slack's hello; reconnecting"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, wait_ms = backoff.as_millis() as u64, "Slack Socket Mode: reconnecting")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection, from `apps.connections.open` to its end; the flag
/// says whether Slack's `hello` arrived (the connection worked).
async fn connect<H: Handler>(
    handler: &H,
    opener: &Web,
    watchdog: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<(Ended, bool), SocketError> {
    // The URL carries a one-time ticket: it is not logged.
    let url = opener.connections_open().await.map_err(SocketError::Open)?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| SocketError::Socket(e.to_string()))?;
    tracing::debug!("Slack Socket Mode connected");
    // Acks from tasks that answer slowly (slash commands) come back here.
    let (acks, mut pending) = mpsc::unbounded_channel::<Value>();
    let mut greeted = false;
    // Only what arrives feeds the watchdog (not the acks sent).
    let mut deadline = tokio::time::Instant::now() + watchdog;
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                return Ok((Ended::Stopped, greeted));
            }
            Some(ack) = pending.recv() => {
                ws.send(Frame::text(ack.to_string()))
                    .await
                    .map_err(|e| SocketError::Socket(e.to_string()))?;
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(
                    silent_ms = watchdog.as_millis() as u64,
                    "nothing arrived on the Slack socket (not even a ping); reconnecting"
                );
                return Ok((Ended::Reconnect, greeted));
            }
            frame = ws.next() => {
                deadline = tokio::time::Instant::now() + watchdog;
                let frame = match frame {
                    None => return Ok((Ended::Reconnect, greeted)),
                    Some(Err(e)) => return Err(SocketError::Socket(e.to_string())),
                    Some(Ok(frame)) => frame,
                };
                let text = match frame {
                    Frame::Text(t) => t,
                    Frame::Close(_) => return Ok((Ended::Reconnect, greeted)),
                    // Pings are answered by the library; any frame feeds the watchdog.
                    _ => continue,
                };
                let Ok(message) = serde_json::from_str::<Value>(&text) else {
                    tracing::warn!("an undecodable Socket Mode message was ignored");
                    continue;
                };
                // `hello` and `disconnect` are read by their type alone:
                // their other fields (debug_info, …) vary and are not needed.
                match message["type"].as_str() {
                    Some("hello") => {
                        greeted = true;
                        tracing::info!("Slack: connected over Socket Mode");
                    }
                    Some("disconnect") => {
                        let reason = message["reason"].as_str().unwrap_or("unknown");
                        if reason == "link_disabled" {
                            tracing::warn!("Slack disabled Socket Mode for this app; turn it on again in the app's settings (Socket Mode)");
                        } else {
                            tracing::info!(reason, "Slack asked for a new Socket Mode connection");
                        }
                        let _ = ws.close(None).await;
                        return Ok((Ended::Reconnect, greeted));
                    }
                    _ => {
                        if let Some(ack) = envelope(handler, message, &acks).await {
                            ws.send(Frame::text(ack.to_string()))
                                .await
                                .map_err(|e| SocketError::Socket(e.to_string()))?;
                        }
                    }
                }
            }
        }
    }
}

/// Handles one envelope: the ack to send now, or `None` when it is sent
/// later through `acks` (or not at all, so that Slack redelivers). A
/// payload slack-morphism's models do not take is still acknowledged (an
/// `events_api` one is read leniently, as on the HTTP endpoint).
async fn envelope<H: Handler>(
    handler: &H,
    message: Value,
    acks: &mpsc::UnboundedSender<Value>,
) -> Option<Value> {
    let Some(envelope_id) = message["envelope_id"].as_str().map(str::to_string) else {
        tracing::debug!(kind = ?message["type"].as_str(), "Socket Mode message without envelope_id ignored");
        return None;
    };
    let ack = move |payload: Option<Value>| match payload {
        Some(p) => json!({ "envelope_id": envelope_id, "payload": p }),
        None => json!({ "envelope_id": envelope_id }),
    };
    let mut message = message;
    let payload = message["payload"].take();
    let callback = match message["type"].as_str() {
        Some("events_api") => Callback::read(&payload),
        Some("slash_commands") => match serde_json::from_value::<SlackCommandEvent>(payload) {
            Ok(command) => {
                let handler = handler.clone();
                let acks = acks.clone();
                tokio::spawn(async move {
                    let answer = handler.command(&command).await;
                    let _ = acks.send(ack(Some(answer)));
                });
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "malformed slash command over Socket Mode");
                None
            }
        },
        Some("interactive") => match serde_json::from_value::<SlackInteractionEvent>(payload) {
            Ok(interaction) => {
                let handler = handler.clone();
                let acks = acks.clone();
                tokio::spawn(async move {
                    let answer = handler.interaction(interaction).await;
                    let _ = acks.send(ack(answer));
                });
                return None;
            }
            Err(e) => {
                tracing::debug!(error = %e, "Slack interaction not handled");
                None
            }
        },
        other => {
            tracing::debug!(kind = ?other, "Socket Mode envelope acknowledged and ignored");
            None
        }
    };
    match callback {
        Some(callback) => match handler.event(callback, "socket").await {
            Ok(()) => Some(ack(None)),
            // Not acknowledged: Slack delivers it again.
            Err(Refused::Busy) => None,
        },
        None => Some(ack(None)),
    }
}
