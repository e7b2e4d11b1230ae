//! Rendering an answer into a Slack thread as it streams, where Slack's
//! chat streaming methods are not available ([`super::stream`] is tried
//! first): the first text
//! is posted with `chat.postMessage`, later text edits it with
//! `chat.update`. Edits are throttled by one [`Budget`] per workspace, so
//! all answers streaming in a workspace together stay inside
//! `chat.update`'s Tier 3 limit. The finished answer is converted to
//! mrkdwn, split into messages under Slack's section limit (a cut code
//! block is closed and reopened), and its last message carries the
//! 👍 / 👎 buttons with the inference id.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gateway::{ReplyEvent, ReplyStream};
use serde_json::{Value, json};
use slack_morphism::api::{SlackApiChatPostMessageRequest, SlackApiChatUpdateRequest};
use slack_morphism::blocks::SlackBlock;
use slack_morphism::{SlackMessageContent, SlackMessageMetadata};
use uuid::Uuid;

use super::Slack;
use super::format::{escape, to_mrkdwn};
use super::web;

/// The most characters in one message's section (Slack allows 3,000).
pub const SECTION_MAX: usize = 3_000;
/// `action_id` of the 👍 button.
pub const THUMBS_UP: &str = "switchboard_thumbs_up";
/// `action_id` of the 👎 button.
pub const THUMBS_DOWN: &str = "switchboard_thumbs_down";
/// The metadata event type that marks the bot's answers.
pub const METADATA_TYPE: &str = "switchboard_answer";

/// A shared `chat.update` budget: one edit per `interval` per workspace.
pub struct Budget {
    interval: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl Budget {
    /// One edit per `interval` in each workspace.
    pub fn new(interval: Duration) -> Budget {
        Budget {
            interval,
            next: Mutex::default(),
        }
    }

    /// Takes a slot now if one is free (for edits that may be skipped).
    pub fn try_take(&self, team: &str) -> bool {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.entry(team.to_string()).or_insert(now);
        if *slot <= now {
            *slot = now + self.interval;
            true
        } else {
            false
        }
    }

    /// Reserves the next slot and says how long to wait for it (for
    /// edits that must happen).
    pub fn reserve(&self, team: &str) -> Duration {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.entry(team.to_string()).or_insert(now);
        let at = (*slot).max(now);
        *slot = at + self.interval;
        at - now
    }
}

/// The messages of one answer sent so far: `(ts, text)`.
struct Sent {
    messages: Vec<(String, String)>,
    buttons: bool,
}

/// Streams one answer into the thread `thread` of `channel`, asked by
/// `user`; `note` (in Markdown) ends the finished answer.
pub(crate) async fn deliver(
    slack: &Slack,
    team: &str,
    channel: &str,
    thread: &str,
    user: &str,
    mut stream: ReplyStream,
    note: Option<&str>,
) {
    let id = stream.inference_id;
    let mut text = String::new();
    let mut pending = None;
    if slack.streams_in(team) {
        let place = super::stream::Place {
            team,
            channel,
            thread,
            user,
        };
        match super::stream::deliver(slack, &place, &mut stream, note).await {
            super::stream::Streamed::Done => return,
            super::stream::Streamed::Fallback {
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
    let target = Target {
        slack,
        team,
        channel,
        thread,
        id,
    };
    loop {
        let event = match pending.take() {
            Some(event) => Some(event),
            None => stream.next_event().await,
        };
        match event {
            Some(ReplyEvent::Started { .. }) => {}
            Some(ReplyEvent::Token(t)) => {
                text.push_str(&t);
                if text.trim().is_empty() {
                    continue;
                }
                if (sent.messages.is_empty() || slack.inner.budget.try_take(team))
                    && !target.render(&mut sent, &text, false, false).await
                {
                    return;
                }
            }
            Some(ReplyEvent::Done(_)) | None => {
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

/// Posts a short notice in the thread (a refusal or an error).
pub(crate) async fn post_notice(slack: &Slack, channel: &str, thread: &str, text: &str) {
    let body = SlackApiChatPostMessageRequest::new(
        web::channel(channel),
        SlackMessageContent::new().with_text(escape(text)),
    )
    .with_thread_ts(web::ts(thread));
    if let Err(e) = slack.inner.web.post_message(&body).await {
        tracing::warn!(error = %e, "cannot post in the Slack thread");
    }
}

struct Target<'a> {
    slack: &'a Slack,
    team: &'a str,
    channel: &'a str,
    thread: &'a str,
    id: Uuid,
}

impl Target<'_> {
    /// Brings the thread up to date with `markdown`; false if Slack
    /// refused a message (the answer cannot be shown).
    async fn render(&self, sent: &mut Sent, markdown: &str, last: bool, feedback: bool) -> bool {
        let chunks = gateway::chunks::split_message(&to_mrkdwn(markdown), SECTION_MAX);
        let web = &self.slack.inner.web;
        let n = chunks.len();
        for (i, chunk) in chunks.iter().enumerate() {
            let buttons = last && feedback && i + 1 == n;
            let blocks = self.blocks(chunk, buttons);
            if let Some((ts, old)) = sent.messages.get(i) {
                // While streaming only the newest message is edited; the
                // final pass corrects every message whose text moved.
                let newest = i + 1 == sent.messages.len();
                let changed = old != chunk || (buttons && !sent.buttons);
                if !changed || (!last && !newest) {
                    continue;
                }
                if last {
                    let wait = self.slack.inner.budget.reserve(self.team);
                    tokio::time::sleep(wait).await;
                }
                let body = SlackApiChatUpdateRequest::new(
                    web::channel(self.channel),
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
                    web::channel(self.channel),
                    SlackMessageContent::new()
                        .with_text(chunk.clone())
                        .with_blocks(blocks)
                        .with_metadata(answer_metadata(self.id)),
                )
                .with_thread_ts(web::ts(self.thread))
                .with_unfurl_links(false);
                match web.post_message(&body).await {
                    Ok(posted) => {
                        let ts = posted.ts.0;
                        self.slack.remember_answer(self.channel, &ts, self.id);
                        sent.messages.push((ts, chunk.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, channel = self.channel, "cannot post the answer in Slack");
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

    fn blocks(&self, text: &str, buttons: bool) -> Vec<SlackBlock> {
        let mut all = vec![json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": text },
        })];
        if buttons {
            all.push(feedback_block(self.id));
        }
        blocks(all)
    }
}

/// Block Kit JSON as slack-morphism's blocks; a block its model does not
/// take is kept as it is (`SlackBlock::Unknown`), so nothing is lost.
pub(crate) fn blocks(json: Vec<Value>) -> Vec<SlackBlock> {
    json.into_iter()
        .map(|b| serde_json::from_value(b.clone()).unwrap_or(SlackBlock::Unknown(b)))
        .collect()
}

/// The metadata that marks a message as the answer of inference `id`.
pub(crate) fn answer_metadata(id: Uuid) -> SlackMessageMetadata {
    SlackMessageMetadata::new(METADATA_TYPE.to_string()).with_event_payload(
        [("inference_id".to_string(), id.to_string())]
            .into_iter()
            .collect(),
    )
}

/// The 👍 / 👎 buttons under an answer, carrying its inference id.
pub(crate) fn feedback_block(id: Uuid) -> Value {
    let id = id.to_string();
    json!({
        "type": "actions",
        "block_id": "switchboard_feedback",
        "elements": [
            {
                "type": "button",
                "action_id": THUMBS_UP,
                "text": { "type": "plain_text", "text": "👍", "emoji": true },
                "value": id,
            },
            {
                "type": "button",
                "action_id": THUMBS_DOWN,
                "text": { "type": "plain_text", "text": "👎", "emoji": true },
                "value": id,
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_within_a_workspace_only() {
        let budget = Budget::new(Duration::from_secs(60));
        assert!(budget.try_take("T1"));
        assert!(
            !budget.try_take("T1"),
            "a second edit in the same workspace waits"
        );
        assert!(
            budget.try_take("T2"),
            "another workspace has its own budget"
        );
        let wait = budget.reserve("T1");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        let later = budget.reserve("T1");
        assert!(later > wait + Duration::from_secs(50), "{later:?}");
    }
}
