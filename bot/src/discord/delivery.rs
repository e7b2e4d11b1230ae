//! Rendering a streamed answer in Discord: a typing indicator until the
//! first text, then the answer as it grows, written by editing messages no
//! more often than the configured interval per channel (Discord limits
//! edits, and many answers may share a channel), split at 2,000 characters,
//! and 👍 / 👎 buttons on the last message once the answer is complete.

use std::time::Duration;

use gateway::{ReplyEvent, ReplyStream};
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use super::components::{self, MAX_CHARS};
use super::rest::{Rest, RestError};
use super::state::Delivery;

/// How often the typing indicator is renewed (it lasts ten seconds).
const TYPING_EVERY: Duration = Duration::from_secs(8);

/// Where an answer goes.
pub struct Target<'a> {
    /// The channel (or thread) to write in.
    pub channel: &'a str,
    /// The message answered (the first part replies to it).
    pub reply_to: Option<&'a str>,
    /// A line the complete answer ends with (what was not read).
    pub note: Option<&'a str>,
}

/// What was shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The message ids, in order.
    pub messages: Vec<String>,
    /// The inference answered, when the answer completed.
    pub inference_id: Option<Uuid>,
    /// The whole text shown.
    pub text: String,
}

/// The messages of one answer as they stand in the channel.
struct Shown<'a> {
    rest: &'a Rest,
    target: &'a Target<'a>,
    /// (message id, content shown).
    parts: Vec<(String, String)>,
}

impl Shown<'_> {
    /// Makes the channel show `chunks`, with `components` on the last one.
    async fn show(
        &mut self,
        chunks: &[String],
        components: Option<&Value>,
    ) -> Result<(), RestError> {
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let mut body = components::message(chunk);
            if let (true, Some(c)) = (last, components) {
                body["components"] = c.clone();
            }
            match self.parts.get_mut(i) {
                Some((id, shown)) => {
                    if shown != chunk || (last && components.is_some()) {
                        self.rest
                            .edit_message(self.target.channel, id, &body)
                            .await?;
                        *shown = chunk.clone();
                    }
                }
                None => {
                    if i == 0
                        && let Some(reply_to) = self.target.reply_to
                    {
                        components::reply_to(&mut body, reply_to);
                    }
                    let id = self.rest.create_message(self.target.channel, &body).await?;
                    self.parts.push((id, chunk.clone()));
                }
            }
        }
        Ok(())
    }
}

/// Streams `reply` into the channel: typing, throttled edits, split parts,
/// and the feedback buttons at the end. A failure after some text keeps
/// the text and says what went wrong.
pub(crate) async fn render(
    state: &Delivery,
    target: &Target<'_>,
    mut reply: ReplyStream,
) -> Result<Rendered, RestError> {
    let (rest, throttle) = (&state.rest, &state.throttle);
    let mut shown = Shown {
        rest,
        target,
        parts: Vec::new(),
    };
    let mut text = String::new();
    let mut dirty = false;
    let mut due: Option<Instant> = None;
    if let Err(e) = rest.typing(target.channel).await {
        tracing::debug!(error = %e, "typing indicator not shown");
    }
    let mut typing_at = Instant::now() + TYPING_EVERY;
    let finish = loop {
        let wake = if dirty {
            due.unwrap_or_else(Instant::now)
        } else {
            typing_at
        };
        tokio::select! {
            event = reply.next_event() => match event {
                Some(ReplyEvent::Token(t)) => {
                    text.push_str(&t);
                    dirty = !text.trim().is_empty();
                }
                Some(ReplyEvent::Started { .. } | ReplyEvent::ToolCall(_)) => {}
                // A tool that asks first: Approve / Deny in the channel
                // (unanswered, it times out as denied).
                Some(ReplyEvent::Approval(request)) => {
                    if let Err(e) = rest.create_message(target.channel, &components::approval(&request)).await {
                        tracing::warn!(error = %e, "cannot ask for a tool's approval in the Discord channel");
                    }
                }
                // Before any text, a short line says a tool is running;
                // the answer's text replaces it.
                Some(ReplyEvent::UsingTool(name)) => {
                    if text.trim().is_empty() && throttle.try_take(target.channel).is_ok() {
                        shown.show(&chunks(&format!("-# using `{name}`…"), true), None).await?;
                    }
                }
                Some(ReplyEvent::Done(summary)) => break Ok((summary.inference_id, crate::citations::footer(&summary.citations))),
                Some(ReplyEvent::Failed { message, summary, .. }) => {
                    break Err((message, summary.inference_id));
                }
                None => break Err(("the answer stopped before it was complete".to_string(), reply.inference_id)),
            },
            _ = tokio::time::sleep_until(wake) => {
                if dirty {
                    match throttle.try_take(target.channel) {
                        Ok(()) => {
                            shown.show(&chunks(&text, true), None).await?;
                            dirty = false;
                            due = None;
                        }
                        Err(at) => due = Some(at),
                    }
                } else if shown.parts.is_empty() {
                    let _ = rest.typing(target.channel).await;
                    typing_at = Instant::now() + TYPING_EVERY;
                } else {
                    typing_at = Instant::now() + Duration::from_secs(3600);
                }
            }
        }
    };
    throttle.take(target.channel).await;
    let inference_id = match finish {
        Ok((id, sources)) => {
            let mut final_text = if text.trim().is_empty() {
                "(no answer)".to_string()
            } else {
                text.clone()
            };
            if let Some(sources) = sources {
                final_text.push_str("\n\n");
                final_text.push_str(&sources);
            }
            if let Some(note) = target.note {
                final_text.push_str("\n\n");
                final_text.push_str(note);
            }
            shown
                .show(&chunks(&final_text, false), Some(&components::buttons(id)))
                .await?;
            text = final_text;
            Some(id)
        }
        Err((message, _)) => {
            if !text.trim().is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&format!("⚠️ {message}"));
            shown.show(&chunks(&text, false), None).await?;
            None
        }
    };
    Ok(Rendered {
        messages: shown.parts.into_iter().map(|(id, _)| id).collect(),
        inference_id,
        text,
    })
}

/// The parts to show for `text`; `growing` marks an unfinished answer with
/// a cursor.
fn chunks(text: &str, growing: bool) -> Vec<String> {
    let shown = if growing {
        format!("{text} ▌")
    } else {
        text.to_string()
    };
    crate::chunks::split_message(&shown, MAX_CHARS)
}

/// Posts a short notice (a refusal, an error) in reply to a message.
pub(crate) async fn notice(
    state: &Delivery,
    target: &Target<'_>,
    text: &str,
) -> Result<(), RestError> {
    let mut body = components::message(text);
    if let Some(reply_to) = target.reply_to {
        components::reply_to(&mut body, reply_to);
    }
    state
        .rest
        .create_message(target.channel, &body)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_answers_split_within_discords_limit_with_code_fences_balanced() {
        let mut text = String::from("Here is the code:\n```rust\n");
        for i in 0..300 {
            text.push_str(&format!("let value_{i} = {i} * 2; // doubling\n"));
        }
        text.push_str("```\nDone.");
        let parts = chunks(&text, false);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(
                p.chars().count() <= MAX_CHARS,
                "{} chars",
                p.chars().count()
            );
            assert_eq!(
                p.matches("```").count() % 2,
                0,
                "unbalanced fences in a part"
            );
        }
        assert!(parts.last().is_some_and(|p| p.ends_with("Done.")));
    }
}
