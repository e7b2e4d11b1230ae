//! Streaming an answer with Slack's chat streaming methods:
//! `chat.startStream` opens a message in the thread, `chat.appendStream`
//! adds text as the model writes it, `chat.stopStream` finishes it and
//! attaches the 👍 / 👎 buttons and the metadata naming the inference.
//! Slack renders the Markdown itself and grows one message, so there is no
//! `chat.update` budget to share and nothing to split.
//!
//! Not every workspace or token may use these methods. When
//! `chat.startStream` is refused as unavailable (`unknown_method`,
//! `not_allowed_token_type`, `feature_not_enabled`, …) the workspace is
//! remembered and this answer, and every later one there, goes through
//! [`super::delivery`]'s `chat.postMessage` + `chat.update` path instead.

use std::time::{Duration, Instant};

use gateway::{ReplyEvent, ReplyStream};
use slack_morphism::api::{
    SlackApiChatAppendStreamRequest, SlackApiChatStartStreamRequest, SlackApiChatStopStreamRequest,
};
use slack_morphism::{SlackMessageContent, SlackTeamId, SlackUserId};

use super::Slack;
use super::delivery::{answer_metadata, blocks, feedback_block};
use super::web::{self, WebError};

/// Slack's limit on one `markdown_text`.
const MARKDOWN_MAX: usize = 12_000;
/// Text is appended once this much is waiting…
const APPEND_CHARS: usize = 200;
/// …or once the oldest waiting text is this old.
const APPEND_AFTER: Duration = Duration::from_millis(400);

/// The errors that mean "this workspace or token cannot stream".
const UNAVAILABLE: &[&str] = &[
    "unknown_method",
    "not_allowed_token_type",
    "feature_not_enabled",
    "method_deprecated",
    "not_implemented",
    "missing_scope",
];

/// How a streamed answer ended.
pub(crate) enum Streamed {
    /// The answer is in the thread.
    Done,
    /// Nothing was streamed: the caller answers the usual way, with the
    /// text read so far and the event that is still to be handled.
    Fallback {
        text: String,
        pending: Option<Box<ReplyEvent>>,
    },
}

/// Where the answer goes.
pub(crate) struct Place<'a> {
    pub team: &'a str,
    pub channel: &'a str,
    pub thread: &'a str,
    /// The user who asked (Slack wants the recipient in channels).
    pub user: &'a str,
}

/// Streams one answer; `note` (Markdown) ends a finished answer.
pub(crate) async fn deliver(
    slack: &Slack,
    place: &Place<'_>,
    stream: &mut ReplyStream,
    note: Option<&str>,
) -> Streamed {
    let web = &slack.inner.web;
    let mut text = String::new();
    // The stream opens with the first text, so that a failure before any
    // token is reported the usual way.
    let first = loop {
        match stream.next_event().await {
            Some(ReplyEvent::Started { .. }) => {}
            Some(ReplyEvent::Token(t)) => {
                text.push_str(&t);
                if !text.trim().is_empty() {
                    break text.clone();
                }
            }
            other => {
                return Streamed::Fallback {
                    text,
                    pending: other.map(Box::new),
                };
            }
        }
    };
    let start = SlackApiChatStartStreamRequest::new(web::channel(place.channel))
        .with_thread_ts(web::ts(place.thread))
        .with_recipient_team_id(SlackTeamId(place.team.to_string()))
        .with_recipient_user_id(SlackUserId(place.user.to_string()))
        .with_markdown_text(first);
    let ts = match web.start_stream(&start).await {
        Ok(started) => started.ts.0,
        Err(e) => {
            if let WebError::Slack { error, .. } = &e
                && UNAVAILABLE.contains(&error.as_str())
            {
                tracing::info!(team = place.team, error = %e, "Slack chat streaming is not available in this workspace; editing messages instead");
                slack.no_streaming(place.team);
            } else {
                tracing::warn!(error = %e, "cannot start a Slack stream; posting instead");
            }
            return Streamed::Fallback {
                text,
                pending: None,
            };
        }
    };
    slack.remember_answer(place.channel, &ts, stream.inference_id);
    let mut waiting = String::new();
    let mut since = Instant::now();
    let (rest, feedback) = loop {
        match stream.next_event().await {
            Some(ReplyEvent::Started { .. }) => {}
            Some(ReplyEvent::Token(t)) => {
                if waiting.is_empty() {
                    since = Instant::now();
                }
                waiting.push_str(&t);
                if waiting.chars().count() >= APPEND_CHARS || since.elapsed() >= APPEND_AFTER {
                    append(slack, place.channel, &ts, &std::mem::take(&mut waiting)).await;
                }
            }
            Some(ReplyEvent::Done(_)) | None => {
                if let Some(note) = note {
                    waiting.push_str("\n\n");
                    waiting.push_str(note);
                }
                break (waiting, true);
            }
            Some(ReplyEvent::Failed { message, .. }) => {
                waiting.push_str(&format!("\n\n_(the answer was cut short: {message})_"));
                // Feedback is about answers; a failure has none to rate.
                break (waiting, false);
            }
        }
    };
    // The last text goes with the stop, unless it is over the limit.
    let mut pieces = gateway::chunks::split_message(&rest, MARKDOWN_MAX);
    let last = pieces.pop().unwrap_or_default();
    for piece in pieces {
        append(slack, place.channel, &ts, &piece).await;
    }
    let mut content =
        SlackMessageContent::new().with_metadata(answer_metadata(stream.inference_id));
    if !last.is_empty() {
        content = content.with_markdown_text(last);
    }
    if feedback {
        content = content.with_blocks(blocks(vec![feedback_block(stream.inference_id)]));
    }
    let stop =
        SlackApiChatStopStreamRequest::new(web::channel(place.channel), web::ts(&ts), content);
    if let Err(e) = web.stop_stream(&stop).await {
        tracing::warn!(error = %e, "cannot finish the Slack stream");
    }
    Streamed::Done
}

async fn append(slack: &Slack, channel: &str, ts: &str, text: &str) {
    if text.is_empty() {
        return;
    }
    let body = SlackApiChatAppendStreamRequest::new(web::channel(channel), web::ts(ts))
        .with_markdown_text(text.to_string());
    if let Err(e) = slack.inner.web.append_stream(&body).await {
        tracing::warn!(error = %e, "cannot append to the Slack stream");
    }
}
