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
use slack_morphism::api::SlackApiAssistantThreadsSetStatusRequest;
use slack_morphism::events::{
    SlackAppMentionEvent, SlackEventCallbackBody, SlackMessageEvent, SlackMessageEventType,
    SlackPushEvent, SlackPushEventCallback,
};
use slack_morphism::{SlackFile, SlackHistoryMessage};
use tokio::sync::{Semaphore, mpsc};

use super::web;
use super::{Shared, Slack};

/// How long an event id is remembered (Slack retries within minutes).
const DEDUPE_TTL: Duration = Duration::from_secs(60 * 60);

/// One queued event callback.
pub(crate) struct Job {
    /// The workspace (`team_id`).
    pub team: String,
    /// The inner event, as slack-morphism reads it.
    pub event: SlackEventCallbackBody,
}

/// One event callback: its id, workspace and event.
pub(crate) struct Callback {
    event_id: String,
    team: String,
    event: SlackEventCallbackBody,
}

impl Callback {
    /// Reads an `event_callback` payload (the HTTP body, or a Socket Mode
    /// envelope's `payload`). slack-morphism's [`SlackPushEventCallback`]
    /// wants every documented field; a callback that lacks one it does not
    /// need here (`api_app_id`, `event_time`) is still taken when it has
    /// an `event_id` and an `event` object. An event whose type or shape
    /// slack-morphism does not model is `SlackEventCallbackBody::Unknown`.
    pub(crate) fn read(payload: &Value) -> Option<Callback> {
        if let Ok(cb) = serde_json::from_value::<SlackPushEventCallback>(payload.clone()) {
            return Some(Callback::from(cb));
        }
        let event_id = payload["event_id"].as_str()?;
        let event = payload.get("event").filter(|e| e.is_object())?;
        Some(Callback {
            event_id: event_id.to_string(),
            team: payload["team_id"].as_str().unwrap_or_default().to_string(),
            event: serde_json::from_value(event.clone())
                .unwrap_or_else(|_| SlackEventCallbackBody::Unknown(event.clone())),
        })
    }
}

impl From<SlackPushEventCallback> for Callback {
    fn from(cb: SlackPushEventCallback) -> Callback {
        Callback {
            event_id: cb.event_id.0,
            team: cb.team_id.0,
            event: cb.event,
        }
    }
}

/// Handles a POST to `/slack/events`.
pub async fn handle(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = slack.verify(&headers, &body) {
        return status.into_response();
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON\n").into_response();
    };
    if let Ok(SlackPushEvent::UrlVerification(check)) =
        serde_json::from_value::<SlackPushEvent>(payload.clone())
    {
        return Json(json!({ "challenge": check.challenge })).into_response();
    }
    if payload["type"] != "event_callback" {
        // Other envelopes (app_rate_limited, …) need no action.
        return StatusCode::OK.into_response();
    }
    let Some(callback) = Callback::read(&payload) else {
        return (
            StatusCode::BAD_REQUEST,
            "an event_callback needs `event_id` and an `event` object\n",
        )
            .into_response();
    };
    let retry = headers
        .get("x-slack-retry-num")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    match accept(&slack, callback, retry).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(Refused::Busy) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Why an event callback was not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is full or dedupe is unavailable: Slack should retry.
    Busy,
}

/// Takes one event callback, from either transport: deduplicated on its
/// `event_id` and queued for a worker. `retry` is Slack's retry number,
/// for the log.
pub(crate) async fn accept(slack: &Slack, callback: Callback, retry: &str) -> Result<(), Refused> {
    let event_id = callback.event_id.as_str();
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
                team: callback.team,
                event: callback.event,
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

/// One message as the adapter reads it, from an `app_mention` or a
/// `message` event.
pub(crate) struct Said {
    channel: String,
    ts: String,
    thread: Option<String>,
    user: Option<String>,
    bot_id: Option<String>,
    bot_message: bool,
    text: String,
    im: bool,
    files: Vec<SlackFile>,
}

impl Said {
    fn mention(e: SlackAppMentionEvent) -> Said {
        let content = e.content;
        Said {
            channel: e.channel.0,
            ts: e.origin.ts.0,
            thread: e.origin.thread_ts.map(|t| t.0),
            user: Some(e.user.0),
            bot_id: None,
            bot_message: false,
            text: content.text.unwrap_or_default(),
            im: false,
            files: content.files.unwrap_or_default(),
        }
    }

    /// `None` for edits, deletions, joins and the like: not questions.
    fn message(e: SlackMessageEvent) -> Option<Said> {
        let bot_message = match &e.subtype {
            None => false,
            Some(SlackMessageEventType::BotMessage) => true,
            Some(SlackMessageEventType::FileShare | SlackMessageEventType::ThreadBroadcast) => {
                false
            }
            Some(_) => return None,
        };
        let content = e
            .content
            .unwrap_or_else(slack_morphism::SlackMessageContent::new);
        Some(Said {
            channel: e.origin.channel?.0,
            ts: e.origin.ts.0,
            thread: e.origin.thread_ts.map(|t| t.0),
            user: e.sender.user.map(|u| u.0),
            bot_id: e.sender.bot_id.map(|b| b.0),
            bot_message,
            text: content.text.unwrap_or_default(),
            im: e.origin.channel_type.is_some_and(|t| t.0 == "im"),
            files: content.files.unwrap_or_default(),
        })
    }
}

impl Slack {
    async fn on_event(&self, job: Job) {
        match job.event {
            SlackEventCallbackBody::AppMention(e) => {
                let said = Said::mention(e);
                if self.is_ignored_sender(&said).await {
                    return;
                }
                self.answer(&job.team, &said, None).await;
            }
            SlackEventCallbackBody::Message(e) => {
                if let Some(said) = Said::message(e) {
                    self.on_message(&job.team, &said).await;
                }
            }
            SlackEventCallbackBody::ReactionAdded(e) => super::feedback::reaction(self, &e).await,
            SlackEventCallbackBody::Unknown(v) => {
                tracing::debug!(kind = ?v["type"].as_str(), "Slack event not handled")
            }
            _ => tracing::debug!("Slack event not handled"),
        }
    }

    async fn on_message(&self, team: &str, said: &Said) {
        if self.is_ignored_sender(said).await {
            return;
        }
        if said.im {
            return self.answer(team, said, None).await;
        }
        let Some(thread) = said.thread.as_deref() else {
            return;
        };
        if thread == said.ts {
            return;
        }
        let Ok(me) = self.identity().await.cloned() else {
            return;
        };
        // A mention in the thread arrives as `app_mention` too: answer once.
        if !me.user_id.is_empty() && said.text.contains(&format!("<@{}>", me.user_id)) {
            return;
        }
        let thread_messages = match self.thread(&said.channel, thread).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the thread");
                return;
            }
        };
        if thread_messages.iter().any(|m| is_from(m, &me)) {
            self.answer(team, said, Some(thread_messages)).await;
        }
    }

    /// The bot's own messages always; other bots' unless configured.
    async fn is_ignored_sender(&self, said: &Said) -> bool {
        let me = match self.identity().await {
            Ok(me) => me.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot learn the bot's own id (auth.test)");
                return true;
            }
        };
        if sent_by(said.user.as_deref(), said.bot_id.as_deref(), &me) {
            return true;
        }
        let is_bot = said.bot_id.is_some() || said.bot_message;
        (is_bot && !self.inner.config.reply_to_bots) || said.user.is_none()
    }

    /// The messages of a thread, oldest first.
    pub(crate) async fn thread(
        &self,
        channel: &str,
        ts: &str,
    ) -> Result<Vec<SlackHistoryMessage>, super::WebError> {
        self.inner.web.replies(channel, ts).await
    }

    /// Answers one message in its thread.
    async fn answer(
        &self,
        team: &str,
        said: &Said,
        thread_messages: Option<Vec<SlackHistoryMessage>>,
    ) {
        let Some(user) = said.user.as_deref() else {
            tracing::debug!("Slack message without a user ignored");
            return;
        };
        let (channel, ts) = (said.channel.as_str(), said.ts.as_str());
        let thread = said.thread.as_deref().unwrap_or(ts);
        let me = self.identity().await.cloned().unwrap_or_default();
        let text = strip_mention(&said.text, &me.user_id);
        let web = &self.inner.web;
        let status = SlackApiAssistantThreadsSetStatusRequest::new(
            web::channel(channel),
            self.inner.config.thinking_status.clone(),
            web::ts(thread),
        );
        if let Err(e) = web.set_status(&status).await {
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
        let attachments: Vec<String> = said
            .files
            .iter()
            .filter_map(|f| f.name.as_deref())
            .map(|n| format!("{n} (attached file)"))
            .collect();
        // Images go to vision-capable aliases; other files are not read.
        let (images, mut unread) = self.images(&said.files).await;
        let inbound = Inbound {
            origin: Origin {
                platform: "slack".into(),
                workspace: Some(team.to_string()),
                channel: Some(channel.to_string()),
                thread: Some(thread.to_string()),
                user: Some(user.to_string()),
                private: said.im,
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
                super::delivery::deliver(self, team, channel, thread, user, stream, note.as_deref())
                    .await
            }
            Err(e) => {
                let text = match &e {
                    PipelineError::Limited { source, .. } => source.to_string(),
                    other => format!("Sorry, I could not answer: {other}"),
                };
                super::delivery::post_notice(self, channel, thread, &text).await;
            }
        }
    }

    /// The images among a message's files, downloaded with the bot token
    /// (at most [`MAX_IMAGES`] of at most [`MAX_IMAGE_BYTES`] each), and the
    /// names of the files that will not be read.
    async fn images(&self, files: &[SlackFile]) -> (Vec<gateway::Image>, Vec<String>) {
        let mut images = Vec::new();
        let mut unread = Vec::new();
        for f in files {
            let name = f.name.clone().unwrap_or_else(|| "file".to_string());
            let mimetype = f.mimetype.as_ref().map(|m| m.0.as_str()).unwrap_or("");
            let url = f.url_private_download.as_ref().or(f.url_private.as_ref());
            let image = match url {
                Some(url) if mimetype.starts_with("image/") && images.len() < MAX_IMAGES => {
                    match self.inner.web.download(url.as_str(), MAX_IMAGE_BYTES).await {
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
        messages: &[SlackHistoryMessage],
        ts: &str,
        me: &super::Identity,
    ) -> Vec<ChatMessage> {
        let config = &self.inner.config;
        let before: Vec<&SlackHistoryMessage> = messages
            .iter()
            .filter(|m| ts_before(&m.origin.ts.0, ts))
            .collect();
        let mut out = Vec::new();
        let mut chars = 0;
        for m in before.iter().rev().take(config.history_messages) {
            let text = m.content.text.as_deref().unwrap_or_default();
            let message = if is_from(m, me) {
                ChatMessage::new(Role::Assistant, text)
            } else {
                let who = match &m.sender.user {
                    Some(u) => self.user(&u.0).await.map_or(u.0.clone(), |u| u.name),
                    None => m
                        .sender
                        .username
                        .clone()
                        .unwrap_or_else(|| "someone".to_string()),
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

/// Whether a thread message was sent by this bot.
pub(crate) fn is_from(m: &SlackHistoryMessage, me: &super::Identity) -> bool {
    sent_by(
        m.sender.user.as_ref().map(|u| u.0.as_str()),
        m.sender.bot_id.as_ref().map(|b| b.0.as_str()),
        me,
    )
}

/// Whether a sender (user, bot id) is this bot.
fn sent_by(user: Option<&str>, bot_id: Option<&str>, me: &super::Identity) -> bool {
    (!me.user_id.is_empty() && user == Some(me.user_id.as_str()))
        || (!me.bot_id.is_empty() && bot_id == Some(me.bot_id.as_str()))
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
