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
//! through the same functions as the HTTP endpoints: [`events::accept`],
//! [`commands::run`], [`interactions::dispatch`].
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

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as Frame;

use super::Slack;
use super::{commands, events, interactions};

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
    Open(super::WebError),
    /// `apps.connections.open` answered without a URL.
    #[error("apps.connections.open answered without a `url`")]
    NoUrl,
    /// The websocket failed.
    #[error("the Socket Mode websocket failed: {0} (check the network)")]
    Socket(String),
}

/// How a connection ended without an error.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Slack asked for a new connection, the socket closed, or it fell silent.
    Reconnect,
    /// The process is stopping.
    Stopped,
}

/// Keeps a Socket Mode connection open until `stop` turns true.
pub(crate) async fn run(slack: Slack, app_token: String, mut stop: watch::Receiver<bool>) {
    let opener = slack.inner.web.with_token(&app_token);
    let watchdog = Duration::from_millis(slack.inner.config.socket_watchdog_ms);
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        match connect(&slack, &opener, watchdog, &mut stop).await {
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
async fn connect(
    slack: &Slack,
    opener: &super::Web,
    watchdog: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<(Ended, bool), SocketError> {
    let opened = opener
        .call("apps.connections.open", &json!({}))
        .await
        .map_err(SocketError::Open)?;
    let url = opened["url"].as_str().ok_or(SocketError::NoUrl)?;
    // The URL carries a one-time ticket: it is not logged.
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
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
                        if let Some(ack) = envelope(slack, message, &acks).await {
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
/// later through `acks` (or not at all, so that Slack redelivers).
async fn envelope(
    slack: &Slack,
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
    match message["type"].as_str() {
        Some("events_api") => {
            let retry = message["retry_attempt"].to_string();
            match events::accept(slack, &payload, &retry).await {
                Ok(()) | Err(events::Refused::Malformed) => Some(ack(None)),
                // Not acknowledged: Slack delivers it again.
                Err(events::Refused::Busy) => None,
            }
        }
        Some("slash_commands") => {
            // Slack's fields, as strings, like the HTTP form.
            let form: HashMap<String, String> = payload
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect();
            let slack = slack.clone();
            let acks = acks.clone();
            tokio::spawn(async move {
                let answer = match commands::run(&slack, &form).await {
                    Ok(answer) => Some(answer),
                    Err(message) => {
                        tracing::warn!(message, "malformed slash command over Socket Mode");
                        None
                    }
                };
                let _ = acks.send(ack(answer));
            });
            None
        }
        Some("interactive") => {
            let slack = slack.clone();
            let acks = acks.clone();
            tokio::spawn(async move {
                let answer = interactions::dispatch(&slack, payload).await;
                let _ = acks.send(ack(answer));
            });
            None
        }
        other => {
            tracing::debug!(kind = ?other, "Socket Mode envelope acknowledged and ignored");
            Some(ack(None))
        }
    }
}
