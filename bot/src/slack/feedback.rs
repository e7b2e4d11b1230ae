//! Feedback from Slack: the 👍 / 👎 buttons under an answer
//! (`block_actions` on `/slack/interactions`), a 👍 / 👎 reaction on the
//! bot's message (`reaction_added`), and the optional comment modal that
//! a 👎 opens (`views.open`, then `view_submission`). Each becomes a
//! `Vote` on the answer's inference, and every vote goes through
//! `submit`; a changed vote by the same user replaces the earlier one.

use gateway::domain::{FeedbackRecord, User, now_ms};
use gateway::promptops::feedback::Verdict;
use slack_morphism::SlackReactionsItem;
use slack_morphism::events::{
    SlackInteractionBlockActionsEvent, SlackInteractionViewSubmissionEvent, SlackReactionAddedEvent,
};
use uuid::Uuid;

use super::blocks::{
    METADATA_TYPE, THUMBS_DOWN, THUMBS_UP, comment_view, input_value, modal_field, thanks,
};
use super::state::Feedback;

/// One vote on an answer, by a Slack user.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Vote<'a> {
    /// 👍 (`up`) or 👎, from a button or a reaction (`source`).
    Thumbs {
        /// The inference answered.
        inference: Uuid,
        /// The Slack user (`U…`).
        user: &'a str,
        /// 👍 rather than 👎.
        up: bool,
        /// `button` or `reaction`.
        source: &'a str,
    },
    /// A comment typed into the modal a 👎 opens.
    Comment {
        /// The inference answered.
        inference: Uuid,
        /// The Slack user (`U…`).
        user: &'a str,
        /// What they wrote.
        text: &'a str,
    },
}

/// Takes one vote through the gateway's feedback door, which says whether
/// it was kept. Every vote of the adapter goes through here.
pub(crate) async fn submit(state: &Feedback, vote: Vote<'_>) -> Verdict {
    state.door.submit(record(&vote)).await
}

/// The feedback row a vote is stored as.
fn record(vote: &Vote<'_>) -> FeedbackRecord {
    let (inference, user, kind, score, comment, source) = match *vote {
        Vote::Thumbs {
            inference,
            user,
            up,
            source,
        } => (
            inference,
            user,
            "thumbs",
            Some(if up { 1.0 } else { 0.0 }),
            None,
            source,
        ),
        Vote::Comment {
            inference,
            user,
            text,
        } => (
            inference,
            user,
            "comment",
            None,
            Some(text.to_string()),
            "modal",
        ),
    };
    FeedbackRecord {
        id: Uuid::now_v7(),
        inference_id: inference,
        created_at_ms: now_ms(),
        kind: kind.into(),
        score,
        comment,
        user: Some(User::new("slack", user)),
        source: source.into(),
    }
}

/// A click on the feedback buttons (`block_actions`): the vote, the
/// comment modal for a 👎, and an ephemeral thanks.
pub(crate) async fn on_actions(state: &Feedback, payload: &SlackInteractionBlockActionsEvent) {
    let user = payload
        .user
        .as_ref()
        .map(|u| u.id.0.as_str())
        .unwrap_or_default();
    for action in payload.actions.iter().flatten() {
        let up = match action.action_id.0.as_str() {
            THUMBS_UP => true,
            THUMBS_DOWN => false,
            _ => continue,
        };
        let Some(id) = action
            .value
            .as_deref()
            .and_then(|v| Uuid::parse_str(v).ok())
        else {
            tracing::debug!("feedback button without an inference id ignored");
            continue;
        };
        let vote = Vote::Thumbs {
            inference: id,
            user,
            up,
            source: "button",
        };
        let verdict = submit(state, vote).await;
        if !up
            && verdict.taken()
            && let Err(e) = state
                .web
                .open_view(&payload.trigger_id.0, comment_view(id))
                .await
        {
            tracing::warn!(error = %e, "cannot open the feedback comment modal");
        }
        if let Some(url) = payload.response_url.as_ref().map(|u| u.0.as_str())
            && let Err(e) = state
                .web
                .respond(url, &thanks(verdict.reply(Some(up))))
                .await
        {
            tracing::debug!(error = %e, "cannot answer the feedback click");
        }
    }
}

/// The comment modal submitted: a comment on the answer, unless empty.
pub(crate) async fn on_comment(state: &Feedback, payload: &SlackInteractionViewSubmissionEvent) {
    let view = &payload.view;
    let Some(id) =
        modal_field(view, |m| m.private_metadata.as_deref()).and_then(|v| Uuid::parse_str(v).ok())
    else {
        return;
    };
    let comment = input_value(view, "comment", "comment")
        .map(str::trim)
        .unwrap_or_default();
    if comment.is_empty() {
        return;
    }
    let vote = Vote::Comment {
        inference: id,
        user: payload.user.id.0.as_str(),
        text: comment,
    };
    if !submit(state, vote).await.taken() {
        tracing::info!(inference = %id, "a feedback comment was not recorded");
    }
}

/// Handles `reaction_added`: 👍 / 👎 on one of the bot's answers.
pub(crate) async fn on_reaction(state: &Feedback, event: &SlackReactionAddedEvent) {
    let reaction = event.reaction.0.as_str();
    let up = match reaction.split("::").next().unwrap_or(reaction) {
        "+1" | "thumbsup" => true,
        "-1" | "thumbsdown" => false,
        _ => return,
    };
    let Ok(me) = state.people.identity().await.cloned() else {
        return;
    };
    let SlackReactionsItem::Message(item) = &event.item else {
        return;
    };
    let user = event.user.0.as_str();
    let (Some(channel), ts) = (item.origin.channel.as_ref(), item.origin.ts.0.as_str()) else {
        return;
    };
    let channel = channel.0.as_str();
    if event.item_user.as_ref().map(|u| u.0.as_str()) != Some(me.user_id.as_str()) {
        return;
    }
    let id = match state.answers.of(channel, ts) {
        Some(id) => Some(id),
        // Another replica sent it: the message's metadata names the inference.
        None => match state.web.replies(channel, ts).await {
            Ok(messages) => messages
                .iter()
                .find(|m| m.origin.ts.0 == ts)
                .and_then(|m| m.content.metadata.as_ref())
                .filter(|m| m.event_type == METADATA_TYPE)
                .and_then(|m| m.event_payload.as_ref()?.get("inference_id"))
                .and_then(|v| Uuid::parse_str(v).ok()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the message that was reacted to");
                None
            }
        },
    };
    if let Some(id) = id {
        let vote = Vote::Thumbs {
            inference: id,
            user,
            up,
            source: "reaction",
        };
        let verdict = submit(state, vote).await;
        // A reaction has no reply of its own: a refused one is told in
        // private, where it was made.
        if !verdict.taken() {
            let tell = serde_json::json!({
                "channel": channel,
                "user": user,
                "text": verdict.reply(Some(up)),
            });
            if let Err(e) = state
                .web
                .post::<_, serde_json::Value>("chat.postEphemeral", &tell)
                .await
            {
                tracing::debug!(error = %e, "cannot tell the user their reaction was not recorded");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_are_stored_as_the_rows_they_always_were() {
        let id = Uuid::now_v7();
        let up = record(&Vote::Thumbs {
            inference: id,
            user: "U1",
            up: true,
            source: "button",
        });
        assert_eq!(
            (up.kind.as_str(), up.score, up.source.as_str()),
            ("thumbs", Some(1.0), "button")
        );
        assert_eq!(up.user.map(|u| u.to_string()).as_deref(), Some("slack:U1"));
        assert_eq!(up.inference_id, id);
        let down = record(&Vote::Thumbs {
            inference: id,
            user: "U1",
            up: false,
            source: "reaction",
        });
        assert_eq!((down.score, down.source.as_str()), (Some(0.0), "reaction"));
        let comment = record(&Vote::Comment {
            inference: id,
            user: "U2",
            text: "too long",
        });
        assert_eq!(
            (
                comment.kind.as_str(),
                comment.score,
                comment.source.as_str()
            ),
            ("comment", None, "modal")
        );
        assert_eq!(comment.comment.as_deref(), Some("too long"));
        assert_eq!(
            comment.user.map(|u| u.to_string()).as_deref(),
            Some("slack:U2")
        );
    }
}
