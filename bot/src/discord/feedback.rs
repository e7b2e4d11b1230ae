//! Feedback from Discord: the 👍 / 👎 buttons under a finished answer
//! (their `custom_id` carries the inference id, see
//! [`super::components`]) and the same emoji as reactions on the bot's
//! messages. Each becomes a `Vote` on the inference, and every vote goes
//! through `submit`: thumbs rows on the inference, where a changed vote
//! replaces the earlier one in the store. Removing the reaction that cast
//! the current vote withdraws it: a thumbs row without a score replaces
//! it, so the answer counts as neither.

use gateway::domain::{FeedbackRecord, now_ms};
use gateway::promptops::feedback::Verdict;
use serde_json::Value;
use uuid::Uuid;

use super::components::{self, inference_of, parse_custom_id};
use super::state::{Feedback, HandleError};

/// One vote on an answer, by a Discord user.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Vote<'a> {
    /// 👍 (`up`) or 👎, from a button or a reaction (`source`).
    Cast {
        /// The inference answered.
        inference: Uuid,
        /// The Discord user id.
        user: &'a str,
        /// 👍 rather than 👎.
        up: bool,
        /// `button` or `reaction`.
        source: &'a str,
    },
    /// A 👍 (`up`) or 👎 reaction taken back: the vote is withdrawn if it
    /// is the one that stands.
    Withdraw {
        /// The inference answered.
        inference: Uuid,
        /// The Discord user id.
        user: &'a str,
        /// The reaction was 👍 rather than 👎.
        up: bool,
    },
}

/// Takes one vote through the gateway's feedback door, which says whether
/// it was kept (a withdrawal that withdraws nothing is `Stored`: there is
/// nothing to refuse). Every vote of the adapter goes through here.
pub(crate) async fn submit(state: &Feedback, vote: Vote<'_>) -> Verdict {
    match vote {
        Vote::Cast {
            inference,
            user,
            up,
            source,
        } => state.door.submit(record(inference, up, user, source)).await,
        Vote::Withdraw {
            inference,
            user,
            up,
        } => {
            // Withdrawn only if this reaction cast the vote that stands:
            // taking back a 👍 leaves a later 👎 (or button click) alone.
            state.recorder.flush().await;
            let current = state
                .store
                .current_vote(&inference.to_string(), &voter(user))
                .await;
            match current {
                Ok(Some(Some(score))) if (score == 1.0) == up => {
                    state.door.submit(withdrawal(inference, user)).await
                }
                Ok(_) => Verdict::Stored,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the vote a removed reaction would withdraw");
                    Verdict::Unchecked
                }
            }
        }
    }
}

/// A 👍 / 👎 reaction added to (or removed from) one of the bot's
/// answers (`MESSAGE_REACTION_ADD` / `_REMOVE`).
pub(crate) async fn on_reaction(
    state: &Feedback,
    data: &Value,
    added: bool,
) -> Result<(), HandleError> {
    let text = |k: &str| data.get(k).and_then(Value::as_str);
    let (Some(user), Some(channel), Some(message), Some(emoji)) = (
        text("user_id"),
        text("channel_id"),
        text("message_id"),
        data.pointer("/emoji/name").and_then(Value::as_str),
    ) else {
        return Ok(());
    };
    let Some(up) = reaction_vote(emoji) else {
        return Ok(());
    };
    let Some(bot_id) = state.known.bot_id() else {
        return Ok(());
    };
    if user == bot_id {
        return Ok(());
    }
    let msg = state.rest.message(channel, message).await?;
    if msg.author.id != bot_id {
        return Ok(());
    }
    // Only the last part of an answer carries the buttons; earlier parts
    // are found by the parts after them in the channel.
    let mut inference = inference_of(&msg.components);
    if inference.is_none() {
        let later = state
            .rest
            .messages_after(channel, message, 5)
            .await
            .unwrap_or_default();
        inference = later
            .iter()
            .rev()
            .filter(|m| m.author.id == bot_id)
            .find_map(|m| inference_of(&m.components));
    }
    let Some(id) = inference else {
        return Ok(());
    };
    let vote = if added {
        Vote::Cast {
            inference: id,
            user,
            up,
            source: "reaction",
        }
    } else {
        Vote::Withdraw {
            inference: id,
            user,
            up,
        }
    };
    if !submit(state, vote).await.taken() {
        tracing::info!(inference = %id, "a feedback reaction was not recorded");
    }
    Ok(())
}

/// A click on a feedback button (an `INTERACTION_CREATE` of type 3).
pub(crate) async fn on_button(state: &Feedback, data: &Value) -> Result<(), HandleError> {
    let Some(components::Click {
        id,
        token,
        custom_id,
        user,
    }) = components::click(data)
    else {
        return Ok(());
    };
    let Some((inference, up)) = parse_custom_id(custom_id) else {
        return Ok(());
    };
    let vote = Vote::Cast {
        inference,
        user,
        up,
        source: "button",
    };
    let verdict = submit(state, vote).await;
    let thanks = match (verdict.taken(), up) {
        (true, true) => "Recorded 👍, thank you.",
        (true, false) => "Recorded 👎, thank you: it helps us improve the answers.",
        (false, _) => verdict.reply(Some(up)),
    };
    state
        .rest
        .interaction_callback(id, token, &components::ephemeral(4, thanks))
        .await?;
    Ok(())
}

/// The vote a reaction emoji means, if any.
pub fn reaction_vote(emoji: &str) -> Option<bool> {
    // Discord sends skin-tone variants as their own emoji.
    let base: String = emoji
        .chars()
        .filter(|c| !('\u{1F3FB}'..='\u{1F3FF}').contains(c))
        .collect();
    match base.as_str() {
        "👍" => Some(true),
        "👎" => Some(false),
        _ => None,
    }
}

/// A thumbs row by `user` (a Discord user id) from `source`.
pub fn record(inference_id: Uuid, up: bool, user: &str, source: &str) -> FeedbackRecord {
    FeedbackRecord {
        id: Uuid::now_v7(),
        inference_id,
        created_at_ms: now_ms(),
        kind: "thumbs".to_string(),
        score: Some(if up { 1.0 } else { 0.0 }),
        comment: None,
        user: Some(voter(user)),
        source: source.to_string(),
    }
}

/// The row that withdraws `user`'s vote (a removed reaction).
pub fn withdrawal(inference_id: Uuid, user: &str) -> FeedbackRecord {
    FeedbackRecord {
        score: None,
        ..record(inference_id, true, user, "reaction")
    }
}

/// How a Discord user is named in feedback rows.
pub fn voter(user: &str) -> gateway::User {
    gateway::User::new("discord", user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbs_reactions_count_with_any_skin_tone() {
        assert_eq!(reaction_vote("👍"), Some(true));
        assert_eq!(reaction_vote("👍🏽"), Some(true));
        assert_eq!(reaction_vote("👎"), Some(false));
        assert_eq!(reaction_vote("🎉"), None);
    }

    #[test]
    fn a_record_is_a_thumbs_row_scored_one_or_zero() {
        let id = Uuid::now_v7();
        let up = record(id, true, "42", "button");
        assert_eq!((up.kind.as_str(), up.score), ("thumbs", Some(1.0)));
        assert_eq!(
            up.user.map(|u| u.to_string()).as_deref(),
            Some("discord:42")
        );
        assert_eq!(record(id, false, "42", "reaction").score, Some(0.0));
    }
}
