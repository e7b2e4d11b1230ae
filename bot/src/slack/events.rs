//! `/slack/events`: the Events API. A request is verified, the
//! `url_verification` handshake answered, and an event callback
//! deduplicated on its `event_id` (Slack retries when an ack is slow or a
//! socket reconnects, and each replica may see a copy) and queued, all
//! before the 200 (or the Socket Mode ack) goes back.
//! Workers then decide whether the event asks for an answer: a mention, a
//! direct message, or a reply in a thread the bot is answering.

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gateway::{ChatMessage, Inbound, Input, Origin, PipelineError, Request, Role};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::{Shared, Slack};

/// How long an event id is remembered (Slack retries within minutes).
const DEDUPE_TTL: Duration = Duration::from_secs(60 * 60);

/// One queued event callback.
pub(crate) struct Job {
    /// The workspace (`team_id`).
    pub team: String,
    /// The inner `event` object.
    pub event: Value,
}

/// Handles a POST to `/slack/events`.
pub async fn handle(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = slack.verify(&headers, &body) {
        return status.into_response();
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON\n").into_response();
    };
    match payload["type"].as_str() {
        Some("url_verification") => {
            Json(json!({ "challenge": payload["challenge"] })).into_response()
        }
        Some("event_callback") => {
            let retry = headers
                .get("x-slack-retry-num")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            match accept(&slack, &payload, retry).await {
                Ok(()) => StatusCode::OK.into_response(),
                Err(Refused::Malformed) => (
                    StatusCode::BAD_REQUEST,
                    "an event_callback needs `event_id` and an `event` object\n",
                )
                    .into_response(),
                Err(Refused::Busy) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
        // Other envelopes (app_rate_limited, …) need no action.
        _ => StatusCode::OK.into_response(),
    }
}

/// Why an event callback was not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No `event_id` or no `event`: Slack should not send it again.
    Malformed,
    /// The queue is full or dedupe is unavailable: Slack should retry.
    Busy,
}

/// Takes one event callback, from either transport: deduplicated on its
/// `event_id` and queued for a worker. `retry` is Slack's retry number,
/// for the log.
pub(crate) async fn accept(slack: &Slack, payload: &Value, retry: &str) -> Result<(), Refused> {
    let (Some(event_id), true) = (payload["event_id"].as_str(), payload["event"].is_object())
    else {
        return Err(Refused::Malformed);
    };
    // Reserve room first: an event marked as seen must not be dropped.
    let Ok(permit) = slack.inner.queue.try_reserve() else {
        tracing::warn!(event_id, "the Slack event queue is full; Slack will retry");
        return Err(Refused::Busy);
    };
    let dedupe = &slack.inner.pipeline.guards().dedupe;
    match dedupe
        .first_seen(&format!("slack:{event_id}"), DEDUPE_TTL)
        .await
    {
        Ok(true) => {
            permit.send(Job {
                team: payload["team_id"].as_str().unwrap_or_default().to_string(),
                event: payload["event"].clone(),
            });
            Ok(())
        }
        Ok(false) => {
            tracing::debug!(event_id, retry, "duplicate Slack event ignored");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot dedupe a Slack event; Slack will retry");
            Err(Refused::Busy)
        }
    }
}

/// Takes queued events and handles each on its own task, at most as many
/// at once as `limit` allows.
pub(crate) async fn work(shared: Weak<Shared>, mut rx: mpsc::Receiver<Job>, limit: Arc<Semaphore>) {
    while let Some(job) = rx.recv().await {
        let Some(inner) = shared.upgrade() else { break };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let slack = Slack { inner };
        tokio::spawn(async move {
            slack.on_event(job).await;
            drop(permit);
        });
    }
}

/// Images taken from one message, at most.
const MAX_IMAGES: usize = 4;
/// The largest image sent to a model, in bytes.
const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;

impl Slack {
    async fn on_event(&self, job: Job) {
        let event = &job.event;
        match event["type"].as_str() {
            Some("app_mention") => {
                if self.is_ignored_sender(event).await {
                    return;
                }
                self.answer(&job.team, event, None).await;
            }
            Some("message") => self.on_message(&job.team, event).await,
            Some("reaction_added") => super::interactions::reaction(self, event).await,
            other => tracing::debug!(kind = ?other, "Slack event not handled"),
        }
    }

    async fn on_message(&self, team: &str, event: &Value) {
        // Edits, deletions, joins and the like are not questions.
        if let Some(subtype) = event["subtype"].as_str()
            && !matches!(subtype, "file_share" | "thread_broadcast" | "bot_message")
        {
            return;
        }
        if self.is_ignored_sender(event).await {
            return;
        }
        if event["channel_type"].as_str() == Some("im") {
            return self.answer(team, event, None).await;
        }
        let (Some(thread), Some(ts)) = (event["thread_ts"].as_str(), event["ts"].as_str()) else {
            return;
        };
        if thread == ts {
            return;
        }
        let Ok(me) = self.identity().await.cloned() else {
            return;
        };
        // A mention in the thread arrives as `app_mention` too: answer once.
        if !me.user_id.is_empty()
            && event["text"]
                .as_str()
                .is_some_and(|t| t.contains(&format!("<@{}>", me.user_id)))
        {
            return;
        }
        let channel = event["channel"].as_str().unwrap_or_default();
        let thread_messages = match self.thread(channel, thread).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the thread");
                return;
            }
        };
        if thread_messages.iter().any(|m| is_from(m, &me)) {
            self.answer(team, event, Some(thread_messages)).await;
        }
    }

    /// The bot's own messages always; other bots' unless configured.
    async fn is_ignored_sender(&self, event: &Value) -> bool {
        let me = match self.identity().await {
            Ok(me) => me.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot learn the bot's own id (auth.test)");
                return true;
            }
        };
        if is_from(event, &me) {
            return true;
        }
        let is_bot = event["bot_id"].is_string() || event["subtype"] == "bot_message";
        (is_bot && !self.inner.config.reply_to_bots) || event["user"].as_str().is_none()
    }

    /// The messages of a thread, oldest first.
    pub(crate) async fn thread(
        &self,
        channel: &str,
        ts: &str,
    ) -> Result<Vec<Value>, super::WebError> {
        let v = self
            .inner
            .web
            .get(
                "conversations.replies",
                &[
                    ("channel", channel),
                    ("ts", ts),
                    ("limit", "200"),
                    ("include_all_metadata", "true"),
                ],
            )
            .await?;
        Ok(v["messages"].as_array().cloned().unwrap_or_default())
    }

    /// Answers one message in its thread.
    async fn answer(&self, team: &str, event: &Value, thread_messages: Option<Vec<Value>>) {
        let (Some(channel), Some(ts), Some(user)) = (
            event["channel"].as_str(),
            event["ts"].as_str(),
            event["user"].as_str(),
        ) else {
            tracing::debug!("Slack message without channel, ts or user ignored");
            return;
        };
        let thread = event["thread_ts"].as_str().unwrap_or(ts);
        let me = self.identity().await.cloned().unwrap_or_default();
        let text = strip_mention(event["text"].as_str().unwrap_or_default(), &me.user_id);
        let web = &self.inner.web;
        let status = json!({
            "channel_id": channel,
            "thread_ts": thread,
            "status": self.inner.config.thinking_status,
        });
        if let Err(e) = web.call("assistant.threads.setStatus", &status).await {
            // Only assistant threads have a status; elsewhere this is normal.
            tracing::debug!(error = %e, "no thinking status shown");
        }
        let messages = match thread_messages {
            Some(m) => m,
            None if thread != ts => self.thread(channel, thread).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "answering without the thread's history");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let history = self.history(&messages, ts, &me).await;
        let user_name = self.user(user).await.ok().map(|u| u.name);
        let files: Vec<&Value> = event["files"].as_array().into_iter().flatten().collect();
        let attachments: Vec<String> = files
            .iter()
            .filter_map(|f| f["name"].as_str())
            .map(|n| format!("{n} (attached file)"))
            .collect();
        // Images go to vision-capable aliases; other files are not read.
        let (images, mut unread) = self.images(&files).await;
        let inbound = Inbound {
            origin: Origin {
                platform: "slack".into(),
                workspace: Some(team.to_string()),
                channel: Some(channel.to_string()),
                thread: Some(thread.to_string()),
                user: Some(user.to_string()),
                private: event["channel_type"].as_str() == Some("im"),
            },
            user_name,
            text,
            history,
            attachments,
            images,
            ..Inbound::default()
        };
        let request = Request::new(inbound.origin.clone(), Input::Chat(inbound));
        match self.inner.pipeline.start(request).await {
            Ok(stream) => {
                unread.extend(stream.images_unread.iter().cloned());
                // The answer says which attachments the model did not see.
                let note = match unread.len() {
                    0 => None,
                    1 => Some(
                        "_(the attached file was not read: answering from the text only)_"
                            .to_string(),
                    ),
                    n => Some(format!(
                        "_(the {n} attached files were not read: answering from the text only)_"
                    )),
                };
                super::reply::deliver(self, team, channel, thread, user, stream, note.as_deref())
                    .await
            }
            Err(e) => {
                let text = match &e {
                    PipelineError::Limited { source, .. } => source.to_string(),
                    other => format!("Sorry, I could not answer: {other}"),
                };
                super::reply::post_notice(self, channel, thread, &text).await;
            }
        }
    }

    /// The images among a message's files, downloaded with the bot token
    /// (at most [`MAX_IMAGES`] of at most [`MAX_IMAGE_BYTES`] each), and the
    /// names of the files that will not be read.
    async fn images(&self, files: &[&Value]) -> (Vec<gateway::Image>, Vec<String>) {
        let mut images = Vec::new();
        let mut unread = Vec::new();
        for f in files {
            let name = f["name"].as_str().unwrap_or("file").to_string();
            let mimetype = f["mimetype"].as_str().unwrap_or("");
            let size = f["size"].as_u64().unwrap_or(0);
            let url = f["url_private_download"]
                .as_str()
                .or_else(|| f["url_private"].as_str());
            let image = match url {
                Some(url)
                    if mimetype.starts_with("image/")
                        && images.len() < MAX_IMAGES
                        && size <= MAX_IMAGE_BYTES as u64 =>
                {
                    match self.inner.web.download(url, MAX_IMAGE_BYTES).await {
                        Ok(bytes) => gateway::Image::from_bytes(mimetype, &name, &bytes),
                        Err(e) => {
                            tracing::info!(file = %name, error = %e, "an attached image was not fetched");
                            None
                        }
                    }
                }
                _ => None,
            };
            match image {
                Some(image) => images.push(image),
                None => unread.push(name),
            }
        }
        (images, unread)
    }

    /// The thread before message `ts`: who said what, newest kept first
    /// when the configured limits cut it.
    async fn history(
        &self,
        messages: &[Value],
        ts: &str,
        me: &super::Identity,
    ) -> Vec<ChatMessage> {
        let config = &self.inner.config;
        let before: Vec<&Value> = messages
            .iter()
            .filter(|m| m["ts"].as_str().is_some_and(|t| ts_before(t, ts)))
            .collect();
        let mut out = Vec::new();
        let mut chars = 0;
        for m in before.iter().rev().take(config.history_messages) {
            let text = m["text"].as_str().unwrap_or_default();
            let message = if is_from(m, me) {
                ChatMessage::new(Role::Assistant, text)
            } else {
                let who = match m["user"].as_str() {
                    Some(u) => self.user(u).await.map_or(u.to_string(), |u| u.name),
                    None => m["username"].as_str().unwrap_or("someone").to_string(),
                };
                ChatMessage::new(
                    Role::User,
                    format!("{who}: {}", strip_mention(text, &me.user_id)),
                )
            };
            chars += message.content.chars().count();
            if chars > config.history_chars {
                break;
            }
            out.push(message);
        }
        out.reverse();
        out
    }
}

/// Whether a message or event was sent by this bot.
fn is_from(m: &Value, me: &super::Identity) -> bool {
    (!me.user_id.is_empty() && m["user"].as_str() == Some(&me.user_id))
        || (!me.bot_id.is_empty() && m["bot_id"].as_str() == Some(&me.bot_id))
}

/// Whether Slack timestamp `a` is earlier than `b`.
fn ts_before(a: &str, b: &str) -> bool {
    let key = |t: &str| {
        let (s, f) = t.split_once('.').unwrap_or((t, ""));
        (s.parse::<u64>().unwrap_or(0), f.parse::<u64>().unwrap_or(0))
    };
    key(a) < key(b)
}

/// The text without the bot's `<@U…>` mention.
fn strip_mention(text: &str, bot_user: &str) -> String {
    if bot_user.is_empty() {
        return text.trim().to_string();
    }
    let mention = format!("<@{bot_user}>");
    text.replace(&format!(" {mention}"), "")
        .replace(&mention, "")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_stripped_and_timestamps_compared_as_numbers() {
        assert_eq!(
            strip_mention("<@UBOT> what is\n`up`?", "UBOT"),
            "what is\n`up`?"
        );
        assert_eq!(strip_mention("hi <@UOTHER>", "UBOT"), "hi <@UOTHER>");
        assert_eq!(strip_mention("hi <@UBOT> there", "UBOT"), "hi there");
        assert!(ts_before("1700000000.000200", "1700000000.001000"));
        assert!(!ts_before("1700000001.000000", "1700000000.999999"));
    }
}
