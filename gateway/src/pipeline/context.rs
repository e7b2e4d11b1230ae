//! Stage 3, context: what a prompt knows besides the question — the context
//! variables (who asks, where, today's date) and the conversation so far,
//! trimmed oldest first to the model's context window.

use std::collections::BTreeMap;

use super::Pipeline;
use crate::domain::{ChatMessage, Request, now_ms};

/// A conservative token estimate for trimming: about three characters a
/// token (English prose runs nearer four), plus a few tokens of framing per
/// message.
pub(super) fn estimated_tokens(messages: &[ChatMessage]) -> u64 {
    messages
        .iter()
        .map(|m| estimated_text_tokens(&m.content) + 4)
        .sum()
}

/// The same estimate for a piece of text alone (retrieved documents, which
/// share the context window with the history).
pub(super) fn estimated_text_tokens(text: &str) -> u64 {
    text.chars().count().div_ceil(3) as u64
}

/// Tokens kept free for the answer when the request does not say.
pub(super) const ANSWER_RESERVE: u32 = 512;

impl Pipeline {
    /// The context variables of [`prompts::CONTEXT_VARIABLES`], plus the
    /// caller's values for declared variables (which cannot override them).
    pub(super) fn context(
        &self,
        request: &Request,
        user_name: Option<String>,
        channel_name: Option<String>,
        workspace_name: Option<String>,
        attachments: &[String],
    ) -> BTreeMap<String, String> {
        let origin = &request.origin;
        let mut v = request.variables.clone();
        let (today, now) = utc_now();
        let mut set = |k: &str, value: String| {
            v.insert(k.to_string(), value);
        };
        set("platform", origin.platform.clone());
        set(
            "user_name",
            user_name.unwrap_or_else(|| "the user".to_string()),
        );
        set("user_id", origin.user_id().to_string());
        set("channel_name", channel_name.unwrap_or_default());
        set("channel_id", origin.channel.clone().unwrap_or_default());
        set("workspace_name", workspace_name.unwrap_or_default());
        set("workspace_id", origin.workspace.clone().unwrap_or_default());
        set("attachments", attachments.join("\n"));
        set("today", today);
        set("now", now);
        v
    }
}

/// Today's date and the time to the minute, in UTC: (`2026-11-28`,
/// `2026-11-28 14:05 UTC`). To the minute, so the rendered prompt (and a
/// cache key made from it) stays the same within a minute.
pub(super) fn utc_now() -> (String, String) {
    let t = crate::domain::Utc::from_ms(now_ms());
    let today = t.date();
    let now = format!("{today} {:02}:{:02} UTC", t.hour, t.minute);
    (today, now)
}
