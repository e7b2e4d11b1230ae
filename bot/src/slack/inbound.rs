//! Events coming in: an HTTP request is verified (`verify`, for every
//! endpoint), then on `/slack/events` the `url_verification` handshake is
//! answered and an event callback deduplicated on its `event_id` (Slack
//! retries when an ack is slow or a socket reconnects, and each replica
//! may see a copy) and queued, all before the 200 (or the Socket Mode ack)
//! goes back. Workers then decide whether the event asks for an answer (a
//! mention, a direct message, or a reply in a thread the bot is answering)
//! and turn it into the gateway's [`Request`]: the text without the
//! mention, the thread's history, the asker's name, the attached images.
//! The answer itself is written by [`super::delivery`].

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway::{ChatMessage, Inbound, Input, Origin, PipelineError, Request, Role};
use serde_json::{Value, json};
use slack_morphism::api::SlackApiAssistantThreadsSetStatusRequest;
use slack_morphism::events::{SlackAppMentionEvent, SlackMessageEvent, SlackPushEvent};
use slack_morphism::{SlackFile, SlackHistoryMessage};

use super::delivery::{self, Place};
use super::model::{Callback, Said};
use super::signature;
use super::state::{Identity, Intake, Job, Signing};
use super::web;

/// How long an event id is remembered (Slack retries within minutes).
const DEDUPE_TTL: Duration = Duration::from_secs(60 * 60);

/// Verifies an HTTP request's signature; the error is the response to send.
pub(crate) fn verify(
    signing: &Signing,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), StatusCode> {
    if signing.secret.is_empty() {
        tracing::warn!(
            "refused an HTTP request from Slack: slack.signing_secret_env is not set (Socket Mode apps are reached over the socket only)"
        );
        return Err(StatusCode::UNAUTHORIZED);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    signature::verify(
        signing.secret.as_str(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        (signing.clock)(),
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "refused a request that is not signed by Slack");
        StatusCode::UNAUTHORIZED
    })
}

/// How long a signature is remembered: Slack's signing window (five
/// minutes) and a minute of clock skew.
const REPLAY_TTL: Duration = Duration::from_secs(6 * 60);

/// Refuses a verified slash command or interaction whose signature was
/// accepted before: a captured request replayed within the signing window
/// would otherwise run again as its sender (events are deduplicated by
/// their id instead). Shared across replicas through Redis when configured.
pub(crate) async fn first_delivery(intake: &Intake, headers: &HeaderMap) -> Result<(), StatusCode> {
    let Some(signature) = headers
        .get("x-slack-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(StatusCode::UNAUTHORIZED);
    };
    match intake
        .dedupe
        .first_seen(&format!("slack-signature:{signature}"), REPLAY_TTL)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::warn!("refused a replayed Slack request: its signature was already used");
            Err(StatusCode::UNAUTHORIZED)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot check a Slack request for replay; refused, Slack's user may retry");
            Err(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// Answers a verified POST to `/slack/events`.
pub(crate) async fn http_event(intake: &Intake, headers: &HeaderMap, body: &[u8]) -> Response {
    let Ok(payload) = serde_json::from_slice::<Value>(body) else {
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
    match accept(intake, callback, retry).await {
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
pub(crate) async fn accept(
    intake: &Intake,
    callback: Callback,
    retry: &str,
) -> Result<(), Refused> {
    let event_id = callback.event_id.as_str();
    // Reserve room first: an event marked as seen must not be dropped.
    let Ok(permit) = intake.queue.try_reserve() else {
        tracing::warn!(event_id, "the Slack event queue is full; Slack will retry");
        return Err(Refused::Busy);
    };
    match intake
        .dedupe
        .first_seen(&format!("slack:{event_id}"), DEDUPE_TTL)
        .await
    {
        Ok(true) => {
            permit.send(Job {
                team: callback.team,
                event: callback.event,
                raw: callback.raw,
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

/// Images taken from one message, at most.
const MAX_IMAGES: usize = 4;
/// The largest image sent to a model, in bytes.
const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;

/// An `app_mention`: answered unless the bot (or, unless configured, any
/// bot) sent it.
pub(crate) async fn on_mention(intake: &Intake, team: &str, event: SlackAppMentionEvent) {
    let said = Said::mention(event);
    if is_ignored_sender(intake, &said).await {
        return;
    }
    answer(intake, team, &said, None).await;
}

/// A `message`: answered when it is a direct message, or a reply in a
/// thread the bot has answered in (and not a mention, which arrives as
/// `app_mention` too).
pub(crate) async fn on_message(intake: &Intake, team: &str, event: SlackMessageEvent) {
    let Some(said) = Said::message(event) else {
        return;
    };
    if is_ignored_sender(intake, &said).await {
        return;
    }
    if said.im {
        return answer(intake, team, &said, None).await;
    }
    let Some(thread) = said.thread.as_deref() else {
        return;
    };
    if thread == said.ts {
        return;
    }
    let Ok(me) = intake.people.identity().await.cloned() else {
        return;
    };
    // A mention in the thread arrives as `app_mention` too: answer once.
    if !me.user_id.is_empty() && said.text.contains(&format!("<@{}>", me.user_id)) {
        return;
    }
    let thread_messages = match intake.web.replies(&said.channel, thread).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the thread");
            return;
        }
    };
    if thread_messages.iter().any(|m| is_from(m, &me)) {
        answer(intake, team, &said, Some(thread_messages)).await;
    }
}

/// The bot's own messages always; other bots' unless configured.
async fn is_ignored_sender(intake: &Intake, said: &Said) -> bool {
    let me = match intake.people.identity().await {
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
    (is_bot && !intake.reply_to_bots) || said.user.is_none()
}

/// Answers one message in its thread.
async fn answer(
    intake: &Intake,
    team: &str,
    said: &Said,
    thread_messages: Option<Vec<SlackHistoryMessage>>,
) {
    let Some(user) = said.user.as_deref() else {
        tracing::debug!("Slack message without a user ignored");
        return;
    };
    let (channel, ts) = (said.channel.as_str(), said.ts.as_str());
    let thread_ts = said.thread.as_deref().unwrap_or(ts);
    let me = intake.people.identity().await.cloned().unwrap_or_default();
    let text = strip_mention(&said.text, &me.user_id);
    let web = &intake.web;
    // Only assistant threads have a status (and a context channel).
    let assistant = intake.assistant.context(channel, thread_ts);
    if assistant.is_some() {
        let status = SlackApiAssistantThreadsSetStatusRequest::new(
            web::channel(channel),
            intake.thinking_status.clone(),
            web::ts(thread_ts),
        );
        if let Err(e) = web.set_status(&status).await {
            tracing::debug!(error = %e, "no thinking status shown");
        }
    }
    let messages = match thread_messages {
        Some(m) => m,
        None if thread_ts != ts => {
            intake
                .web
                .replies(channel, thread_ts)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "answering without the thread's history");
                    Vec::new()
                })
        }
        None => Vec::new(),
    };
    let history = history(intake, &messages, ts, &me).await;
    let user_name = intake.people.user(user).await.ok().map(|u| u.name);
    let attachments: Vec<String> = said
        .files
        .iter()
        .filter_map(|f| f.name.as_deref())
        .map(|n| format!("{n} (attached file)"))
        .collect();
    let inbound = Inbound {
        origin: Origin {
            platform: "slack".into(),
            workspace: Some(team.to_string()),
            // In an assistant thread, the channel the user is looking at
            // selects the binding and what retrieval may read.
            channel: Some(
                assistant
                    .clone()
                    .flatten()
                    .unwrap_or_else(|| channel.to_string()),
            ),
            thread: Some(thread_ts.to_string()),
            user: Some(gateway::User::new("slack", user)),
            private: said.im,
            label: None,
        },
        user_name,
        text: text.clone(),
        history,
        attachments,
        // Approve / Deny are posted in the thread for tools that ask first.
        confirms: true,
        ..Inbound::default()
    };
    let request = Request::new(inbound.origin.clone(), Input::Chat(inbound));
    // The limits first: a refused request downloads nothing. Images go
    // to vision-capable aliases; other files are not read.
    let started = intake
        .pipeline
        .start_with_images(request, || images(intake, &said.files))
        .await;
    match started {
        Ok((stream, mut unread)) => {
            unread.extend(stream.images_unread.iter().cloned());
            // The answer says which attachments the model did not see.
            let note = match unread.len() {
                0 => None,
                1 => Some(
                    "_(the attached file was not read: answering from the text only)_".to_string(),
                ),
                n => Some(format!(
                    "_(the {n} attached files were not read: answering from the text only)_"
                )),
            };
            let place = Place {
                team,
                channel,
                thread: thread_ts,
                user,
                assistant: assistant.is_some(),
            };
            delivery::deliver(&intake.delivery, &place, stream, note.as_deref()).await;
            if assistant.is_some() {
                super::assistant::title_after_answer(intake, channel, thread_ts, &text).await;
            }
        }
        Err(e) => {
            let text = match &e {
                PipelineError::Limited { source, .. } => source.to_string(),
                other => format!("Sorry, I could not answer: {other}"),
            };
            delivery::post_notice(&intake.delivery, channel, thread_ts, &text).await;
        }
    }
}

/// The images among a message's files, downloaded with the bot token
/// (at most [`MAX_IMAGES`] of at most [`MAX_IMAGE_BYTES`] each), and the
/// names of the files that will not be read.
async fn images(intake: &Intake, files: &[SlackFile]) -> (Vec<gateway::Image>, Vec<String>) {
    let mut images = Vec::new();
    let mut unread = Vec::new();
    for f in files {
        let name = f.name.clone().unwrap_or_else(|| "file".to_string());
        let mimetype = f.mimetype.as_ref().map(|m| m.0.as_str()).unwrap_or("");
        let url = f.url_private_download.as_ref().or(f.url_private.as_ref());
        let image = match url {
            Some(url) if mimetype.starts_with("image/") && images.len() < MAX_IMAGES => {
                match intake.web.download(url.as_str(), MAX_IMAGE_BYTES).await {
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
    intake: &Intake,
    messages: &[SlackHistoryMessage],
    ts: &str,
    me: &Identity,
) -> Vec<ChatMessage> {
    let before: Vec<&SlackHistoryMessage> = messages
        .iter()
        .filter(|m| ts_before(&m.origin.ts.0, ts))
        .collect();
    let mut out = Vec::new();
    let mut chars = 0;
    for m in before.iter().rev().take(intake.history_messages) {
        let text = m.content.text.as_deref().unwrap_or_default();
        let message = if is_from(m, me) {
            ChatMessage::new(Role::Assistant, text)
        } else {
            let who = match &m.sender.user {
                Some(u) => intake
                    .people
                    .user(&u.0)
                    .await
                    .map_or(u.0.clone(), |u| u.name),
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
        if chars > intake.history_chars {
            break;
        }
        out.push(message);
    }
    out.reverse();
    out
}

/// Whether a thread message was sent by this bot.
pub(crate) fn is_from(m: &SlackHistoryMessage, me: &Identity) -> bool {
    sent_by(
        m.sender.user.as_ref().map(|u| u.0.as_str()),
        m.sender.bot_id.as_ref().map(|b| b.0.as_str()),
        me,
    )
}

/// Whether a sender (user, bot id) is this bot.
fn sent_by(user: Option<&str>, bot_id: Option<&str>, me: &Identity) -> bool {
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
