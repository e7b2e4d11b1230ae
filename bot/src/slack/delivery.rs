//! Writing an answer into a Slack thread as it streams.
//!
//! First with Slack's chat streaming methods: `chat.startStream` opens a
//! message in the thread, `chat.appendStream` adds text as the model
//! writes it, `chat.stopStream` finishes it and attaches the 👍 / 👎
//! buttons and the metadata naming the inference. Slack renders the
//! Markdown itself and grows one message, so there is no `chat.update`
//! budget to share and nothing to split.
//!
//! Not every workspace or token may use these methods. When
//! `chat.startStream` is refused as unavailable (`unknown_method`,
//! `not_allowed_token_type`, `feature_not_enabled`, …) the workspace is
//! remembered and this answer, and every later one there, goes through
//! posted and edited messages instead: the first text is posted with
//! `chat.postMessage`, later text edits it with `chat.update`. Edits are
//! throttled by one [`Budget`](super::state::Budget) per workspace, so all
//! answers streaming in a workspace together stay inside `chat.update`'s
//! Tier 3 limit. The finished answer is converted to mrkdwn, split into
//! messages under Slack's section limit (a cut code block is closed and
//! reopened), and its last message carries the 👍 / 👎 buttons with the
//! inference id.

use std::time::{Duration, Instant};

use gateway::{ReplyEvent, ReplyStream};
use slack_morphism::api::{
    SlackApiAssistantThreadsSetStatusRequest, SlackApiChatAppendStreamRequest,
    SlackApiChatPostMessageRequest, SlackApiChatStartStreamRequest, SlackApiChatStopStreamRequest,
    SlackApiChatUpdateRequest,
};
use slack_morphism::{SlackMessageContent, SlackTeamId, SlackUserId};
use uuid::Uuid;

use super::blocks::{self, SECTION_MAX, answer_metadata, feedback_block};
use super::format::{self, escape, to_mrkdwn};
use super::state::Delivery;
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

/// Where an answer goes.
pub(crate) struct Place<'a> {
    /// The workspace.
    pub team: &'a str,
    /// The channel.
    pub channel: &'a str,
    /// The thread (the `ts` of its first message).
    pub thread: &'a str,
    /// The user who asked (Slack wants the recipient in channels).
    pub user: &'a str,
    /// An assistant thread: the only kind with a status line.
    pub assistant: bool,
}

/// Streams one answer into its thread; `note` (in Markdown) ends the
/// finished answer.
pub(crate) async fn deliver(
    state: &Delivery,
    place: &Place<'_>,
    mut stream: ReplyStream,
    note: Option<&str>,
) {
    let id = stream.inference_id;
    let mut text = String::new();
    let mut pending = None;
    if state.streams_in(place.team) {
        match stream_answer(state, place, &mut stream, note).await {
            Streamed::Done => return,
            Streamed::Fallback {
                text: t,
                pending: p,
            } => {
                text = t;
                pending = p.map(|p| *p);
            }
        }
    }
    let mut sent = Sent {
        messages: Vec::new(),
        buttons: false,
    };
    let target = Target { state, place, id };
    loop {
        let event = match pending.take() {
            Some(event) => Some(event),
            None => stream.next_event().await,
        };
        match event {
            Some(ReplyEvent::Started { .. } | ReplyEvent::ToolCall(_)) => {}
            Some(ReplyEvent::UsingTool(name)) => {
                using(state, place, &name).await;
                // Before any text, the thread shows a line saying so; the
                // answer's text replaces it.
                if text.trim().is_empty()
                    && (sent.messages.is_empty() || state.budget.try_take(place.team))
                    && !target
                        .render(&mut sent, &format!("_using *{name}*…_"), false, false)
                        .await
                {
                    return;
                }
            }
            Some(ReplyEvent::Approval(request)) => ask_approval(state, place, &request).await,
            Some(ReplyEvent::Token(t)) => {
                text.push_str(&t);
                if text.trim().is_empty() {
                    continue;
                }
                if (sent.messages.is_empty() || state.budget.try_take(place.team))
                    && !target.render(&mut sent, &text, false, false).await
                {
                    return;
                }
            }
            Some(ReplyEvent::Done(summary)) => {
                if text.trim().is_empty() {
                    text = "_(the model gave an empty answer)_".into();
                }
                if let Some(sources) = crate::citations::footer(&summary.citations) {
                    text.push_str("\n\n");
                    text.push_str(&sources);
                }
                if let Some(note) = note {
                    text.push_str("\n\n");
                    text.push_str(note);
                }
                target.render(&mut sent, &text, true, true).await;
                return;
            }
            None => {
                if text.trim().is_empty() {
                    text = "_(the model gave an empty answer)_".into();
                }
                if let Some(note) = note {
                    text.push_str("\n\n");
                    text.push_str(note);
                }
                target.render(&mut sent, &text, true, true).await;
                return;
            }
            Some(ReplyEvent::Failed {
                message, partial, ..
            }) => {
                if partial && !text.trim().is_empty() {
                    text.push_str(&format!("\n\n_(the answer was cut short: {message})_"));
                } else {
                    text = format!("Sorry, I could not answer: {message}");
                }
                // Feedback is about answers; a failure has none to rate.
                target.render(&mut sent, &text, true, false).await;
                return;
            }
        }
    }
}

/// Says in an assistant thread's status that a tool is running for the
/// answer (other threads have no status).
async fn using(state: &Delivery, place: &Place<'_>, tool: &str) {
    if !place.assistant {
        return;
    }
    let status = SlackApiAssistantThreadsSetStatusRequest::new(
        web::channel(place.channel),
        format!("is using {tool}…"),
        web::ts(place.thread),
    );
    if let Err(e) = state.web.set_status(&status).await {
        tracing::debug!(error = %e, "no tool status shown");
    }
}

/// Posts a tool's request to run in the thread, with Approve / Deny.
async fn ask_approval(
    state: &Delivery,
    place: &Place<'_>,
    request: &gateway::domain::ApprovalRequest,
) {
    let body = SlackApiChatPostMessageRequest::new(
        web::channel(place.channel),
        SlackMessageContent::new()
            .with_text(format!(
                "{} asks to run: approve or deny",
                escape(&request.tool)
            ))
            .with_blocks(blocks::blocks(blocks::approval(request))),
    )
    .with_thread_ts(web::ts(place.thread))
    .with_unfurl_links(false)
    .with_unfurl_media(false);
    if let Err(e) = state.web.post_message(&body).await {
        // Unanswered, it times out as denied.
        tracing::warn!(error = %e, "cannot ask for a tool's approval in the Slack thread");
    }
}

/// Posts a short notice in the thread (a refusal or an error).
pub(crate) async fn post_notice(state: &Delivery, channel: &str, thread: &str, text: &str) {
    let body = SlackApiChatPostMessageRequest::new(
        web::channel(channel),
        SlackMessageContent::new().with_text(escape(text)),
    )
    .with_thread_ts(web::ts(thread))
    .with_unfurl_links(false)
    .with_unfurl_media(false);
    if let Err(e) = state.web.post_message(&body).await {
        tracing::warn!(error = %e, "cannot post in the Slack thread");
    }
}

/// How a streamed answer ended.
enum Streamed {
    /// The answer is in the thread.
    Done,
    /// Nothing was streamed: the caller answers the usual way, with the
    /// text read so far and the event that is still to be handled.
    Fallback {
        text: String,
        pending: Option<Box<ReplyEvent>>,
    },
}

/// Streams one answer with the chat streaming methods; `note` (Markdown)
/// ends a finished answer.
async fn stream_answer(
    state: &Delivery,
    place: &Place<'_>,
    stream: &mut ReplyStream,
    note: Option<&str>,
) -> Streamed {
    let web = &state.web;
    let mut text = String::new();
    // The stream opens with the first text, so that a failure before any
    // token is reported the usual way.
    let first = loop {
        match stream.next_event().await {
            Some(ReplyEvent::Started { .. } | ReplyEvent::ToolCall(_)) => {}
            Some(ReplyEvent::UsingTool(name)) => using(state, place, &name).await,
            Some(ReplyEvent::Approval(request)) => ask_approval(state, place, &request).await,
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
    // Model text goes out with its mention syntax broken (no pings); a
    // trailing `<` waits for what follows it.
    let mut waiting = first;
    let mut first = format::sendable(&mut waiting);
    if first.is_empty() {
        first = std::mem::take(&mut waiting);
    }
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
                state.no_streaming(place.team);
            } else {
                tracing::warn!(error = %e, "cannot start a Slack stream; posting instead");
            }
            return Streamed::Fallback {
                text,
                pending: None,
            };
        }
    };
    state
        .answers
        .remember(place.channel, &ts, stream.inference_id);
    let mut writer = Streaming {
        state,
        place,
        ts,
        id: stream.inference_id,
    };
    let mut since = Instant::now();
    let (rest, feedback) = loop {
        match stream.next_event().await {
            Some(ReplyEvent::Started { .. } | ReplyEvent::ToolCall(_)) => {}
            Some(ReplyEvent::UsingTool(name)) => using(state, place, &name).await,
            Some(ReplyEvent::Approval(request)) => ask_approval(state, place, &request).await,
            Some(ReplyEvent::Token(t)) => {
                if waiting.is_empty() {
                    since = Instant::now();
                }
                waiting.push_str(&t);
                if waiting.chars().count() >= APPEND_CHARS || since.elapsed() >= APPEND_AFTER {
                    writer.append(&format::sendable(&mut waiting)).await;
                }
            }
            Some(ReplyEvent::Done(summary)) => {
                if let Some(sources) = crate::citations::footer(&summary.citations) {
                    waiting.push_str("\n\n");
                    waiting.push_str(&sources);
                }
                if let Some(note) = note {
                    waiting.push_str("\n\n");
                    waiting.push_str(note);
                }
                break (waiting, true);
            }
            None => {
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
    let rest = format::defuse_mentions(&rest);
    let mut pieces = crate::chunks::split_message(&rest, MARKDOWN_MAX);
    let last = pieces.pop().unwrap_or_default();
    for piece in pieces {
        writer.append(&piece).await;
    }
    writer.stop(last, feedback).await;
    Streamed::Done
}

/// Slack errors after which a streamed answer goes on in a new message:
/// the stream was closed (Slack ends one after a few minutes) or the
/// message is as long as Slack lets it be.
const CONTINUE_IN_NEW_MESSAGE: &[&str] = &["message_not_in_streaming_state", "msg_too_long"];

fn continues(e: &WebError) -> bool {
    matches!(e, WebError::Slack { error, .. } if CONTINUE_IN_NEW_MESSAGE.contains(&error.as_str()))
}

/// A streamed answer being written: the message its text goes to now.
struct Streaming<'a> {
    state: &'a Delivery,
    place: &'a Place<'a>,
    /// The streamed message; empty once no stream could be started again
    /// (the rest is posted as plain messages).
    ts: String,
    id: Uuid,
}

impl Streaming<'_> {
    /// Appends `text`; when Slack closed the stream or the message is full,
    /// the text starts a new streamed message in the thread instead of
    /// being lost.
    async fn append(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.ts.is_empty() {
            self.post(text, false).await;
            return;
        }
        let body = SlackApiChatAppendStreamRequest::new(
            web::channel(self.place.channel),
            web::ts(&self.ts),
        )
        .with_markdown_text(text.to_string());
        match self.state.web.append_stream(&body).await {
            Ok(()) => {}
            Err(e) if continues(&e) => {
                tracing::info!(error = %e, "the Slack stream ended; the answer goes on in a new message");
                self.close_quietly().await;
                self.restart(text).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot append to the Slack stream"),
        }
    }

    /// Ends the answer with `last` and, when `feedback`, the buttons; a
    /// closed or full stream gets them in a message of their own.
    async fn stop(self, last: String, feedback: bool) {
        if self.ts.is_empty() {
            self.post(&last, feedback).await;
            return;
        }
        let mut content = SlackMessageContent::new().with_metadata(answer_metadata(self.id));
        if !last.is_empty() {
            content = content.with_markdown_text(last.clone());
        }
        if feedback {
            content = content.with_blocks(blocks::blocks(vec![feedback_block(self.id)]));
        }
        let stop = SlackApiChatStopStreamRequest::new(
            web::channel(self.place.channel),
            web::ts(&self.ts),
            content,
        );
        match self.state.web.stop_stream(&stop).await {
            Ok(()) => {}
            Err(e) if continues(&e) => {
                tracing::info!(error = %e, "the Slack stream ended; the answer's end goes in a new message");
                self.close_quietly().await;
                self.post(&last, feedback).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot finish the Slack stream"),
        }
    }

    /// Stops the current stream as it stands (it may be closed already).
    async fn close_quietly(&self) {
        let stop = SlackApiChatStopStreamRequest::new(
            web::channel(self.place.channel),
            web::ts(&self.ts),
            SlackMessageContent::new().with_metadata(answer_metadata(self.id)),
        );
        if let Err(e) = self.state.web.stop_stream(&stop).await {
            tracing::debug!(error = %e, "the ended Slack stream could not be stopped");
        }
    }

    /// Starts a new streamed message in the thread with `text`; where that
    /// fails, posts it, and the rest of the answer is posted too.
    async fn restart(&mut self, text: &str) {
        let place = self.place;
        let start = SlackApiChatStartStreamRequest::new(web::channel(place.channel))
            .with_thread_ts(web::ts(place.thread))
            .with_recipient_team_id(SlackTeamId(place.team.to_string()))
            .with_recipient_user_id(SlackUserId(place.user.to_string()))
            .with_markdown_text(text.to_string());
        match self.state.web.start_stream(&start).await {
            Ok(started) => {
                self.ts = started.ts.0;
                self.state
                    .answers
                    .remember(place.channel, &self.ts, self.id);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start another Slack stream; posting the rest");
                self.ts.clear();
                self.post(text, false).await;
            }
        }
    }

    /// Posts `markdown` as messages of their own in the thread (split at
    /// Slack's section limit; the buttons on the last when `feedback`).
    async fn post(&self, markdown: &str, feedback: bool) {
        let text = to_mrkdwn(markdown);
        let mut pieces = crate::chunks::split_message(&text, SECTION_MAX);
        if pieces.is_empty() {
            if !feedback {
                return;
            }
            pieces.push(String::new());
        }
        let n = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            let buttons = feedback && i + 1 == n;
            let body = SlackApiChatPostMessageRequest::new(
                web::channel(self.place.channel),
                SlackMessageContent::new()
                    .with_text(piece.clone())
                    .with_blocks(blocks::answer(&piece, buttons, self.id))
                    .with_metadata(answer_metadata(self.id)),
            )
            .with_thread_ts(web::ts(self.place.thread))
            .with_unfurl_links(false)
            .with_unfurl_media(false);
            match self.state.web.post_message(&body).await {
                Ok(posted) => {
                    self.state
                        .answers
                        .remember(self.place.channel, &posted.ts.0, self.id)
                }
                Err(e) => tracing::warn!(error = %e, "cannot post the rest of the answer in Slack"),
            }
        }
    }
}

/// The messages of one answer sent so far: `(ts, text)`.
struct Sent {
    messages: Vec<(String, String)>,
    buttons: bool,
}

/// One answer written through posted and edited messages.
struct Target<'a> {
    state: &'a Delivery,
    place: &'a Place<'a>,
    id: Uuid,
}

impl Target<'_> {
    /// Brings the thread up to date with `markdown`; false if Slack
    /// refused a message (the answer cannot be shown).
    async fn render(&self, sent: &mut Sent, markdown: &str, last: bool, feedback: bool) -> bool {
        let chunks = crate::chunks::split_message(&to_mrkdwn(markdown), SECTION_MAX);
        let web = &self.state.web;
        let (channel, team) = (self.place.channel, self.place.team);
        let n = chunks.len();
        for (i, chunk) in chunks.iter().enumerate() {
            let buttons = last && feedback && i + 1 == n;
            let blocks = blocks::answer(chunk, buttons, self.id);
            if let Some((ts, old)) = sent.messages.get(i) {
                // While streaming only the newest message is edited; the
                // final pass corrects every message whose text moved.
                let newest = i + 1 == sent.messages.len();
                let changed = old != chunk || (buttons && !sent.buttons);
                if !changed || (!last && !newest) {
                    continue;
                }
                if last {
                    let wait = self.state.budget.reserve(team);
                    tokio::time::sleep(wait).await;
                }
                let body = SlackApiChatUpdateRequest::new(
                    web::channel(channel),
                    SlackMessageContent::new()
                        .with_text(chunk.clone())
                        .with_blocks(blocks),
                    web::ts(ts),
                );
                if let Err(e) = web.update(&body).await {
                    tracing::warn!(error = %e, "cannot update the answer in Slack");
                    continue;
                }
                let ts = ts.clone();
                sent.messages[i] = (ts, chunk.clone());
            } else {
                let body = SlackApiChatPostMessageRequest::new(
                    web::channel(channel),
                    SlackMessageContent::new()
                        .with_text(chunk.clone())
                        .with_blocks(blocks)
                        .with_metadata(answer_metadata(self.id)),
                )
                .with_thread_ts(web::ts(self.place.thread))
                .with_unfurl_links(false)
                .with_unfurl_media(false);
                match web.post_message(&body).await {
                    Ok(posted) => {
                        let ts = posted.ts.0;
                        self.state.answers.remember(channel, &ts, self.id);
                        sent.messages.push((ts, chunk.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, channel, "cannot post the answer in Slack");
                        return false;
                    }
                }
            }
            if buttons {
                sent.buttons = true;
            }
        }
        true
    }
}
