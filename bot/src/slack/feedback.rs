//! Feedback from Slack: the 👍 / 👎 buttons under an answer
//! (`block_actions` on `/slack/interactions`), a 👍 / 👎 reaction on the
//! bot's message (`reaction_added`), and the optional comment modal that
//! a 👎 opens (`views.open`, then `view_submission`). Each becomes a
//! feedback row on the answer's inference; a changed vote by the same
//! user replaces the earlier one.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gateway::store::{FeedbackRecord, now_ms};
use serde_json::{Value, json};
use slack_morphism::blocks::SlackBlockId;
use slack_morphism::blocks::{SlackStatefulView, SlackView};
use slack_morphism::events::{
    SlackInteractionBlockActionsEvent, SlackInteractionEvent, SlackInteractionViewSubmissionEvent,
    SlackReactionAddedEvent,
};
use slack_morphism::{SlackActionId, SlackReactionsItem};
use uuid::Uuid;

use super::Slack;
use super::delivery::{METADATA_TYPE, THUMBS_DOWN, THUMBS_UP};

/// `callback_id` of the comment modal.
pub const COMMENT_VIEW: &str = "switchboard_feedback_comment";

/// The `payload` field of a form-encoded Slack request, as JSON.
pub(crate) fn form_payload(body: &[u8]) -> Option<Value> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .and_then(|(_, v)| serde_json::from_str(&v).ok())
}

/// Handles a POST to `/slack/interactions`.
pub async fn handle(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = slack.verify(&headers, &body) {
        return status.into_response();
    }
    let Some(payload) = form_payload(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected a form field `payload` holding JSON\n",
        )
            .into_response();
    };
    match dispatch(&slack, payload).await {
        Some(answer) => axum::Json(answer).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

/// Handles one interaction payload, from either transport; `Some` is a
/// body to answer with (a modal's `response_action`), `None` an empty ack
/// (which, for a `view_submission`, closes the modal). The payload is read
/// into slack-morphism's [`SlackInteractionEvent`]; one it does not model
/// (another kind, or fields the model does not take) is acknowledged and
/// ignored.
pub(crate) async fn dispatch(slack: &Slack, payload: Value) -> Option<Value> {
    match serde_json::from_value::<SlackInteractionEvent>(payload) {
        Ok(event) => dispatch_event(slack, event).await,
        Err(e) => {
            tracing::debug!(error = %e, "Slack interaction not handled");
            None
        }
    }
}

/// [`dispatch`] for a payload already read.
pub(crate) async fn dispatch_event(slack: &Slack, event: SlackInteractionEvent) -> Option<Value> {
    match event {
        SlackInteractionEvent::BlockActions(actions) => {
            let slack = slack.clone();
            tokio::spawn(async move { slack.on_actions(&actions).await });
            None
        }
        SlackInteractionEvent::ViewSubmission(submitted) => {
            match modal_field(&submitted.view, |m| {
                m.callback_id.as_ref().map(|c| c.0.as_str())
            }) {
                Some(super::edit::EDIT_VIEW) => Some(super::edit::submit(slack, &submitted).await),
                Some(COMMENT_VIEW) => {
                    slack.on_comment(&submitted).await;
                    None
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// A field of a submitted modal.
pub(crate) fn modal_field<'v>(
    view: &'v SlackStatefulView,
    field: impl Fn(&'v slack_morphism::blocks::SlackModalView) -> Option<&'v str>,
) -> Option<&'v str> {
    match &view.view {
        SlackView::Modal(modal) => field(modal),
        _ => None,
    }
}

/// The value typed into input `block`/`action` of a submitted view.
pub(crate) fn input_value<'v>(
    view: &'v SlackStatefulView,
    block: &str,
    action: &str,
) -> Option<&'v str> {
    view.state_params
        .state
        .as_ref()?
        .values
        .get(&SlackBlockId(block.to_string()))?
        .get(&SlackActionId(action.to_string()))?
        .value
        .as_deref()
}

impl Slack {
    async fn on_actions(&self, payload: &SlackInteractionBlockActionsEvent) {
        let user = payload
            .user
            .as_ref()
            .map(|u| u.id.0.as_str())
            .unwrap_or_default();
        for action in payload.actions.iter().flatten() {
            let score = match action.action_id.0.as_str() {
                THUMBS_UP => 1.0,
                THUMBS_DOWN => 0.0,
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
            self.thumbs(id, user, score, "button").await;
            if score == 0.0
                && let Err(e) = self
                    .inner
                    .web
                    .open_view(&payload.trigger_id.0, comment_view(id))
                    .await
            {
                tracing::warn!(error = %e, "cannot open the feedback comment modal");
            }
            if let Some(url) = payload.response_url.as_ref().map(|u| u.0.as_str()) {
                let thanks = json!({
                    "response_type": "ephemeral",
                    "replace_original": false,
                    "text": if score == 1.0 { "Thanks! Recorded 👍" } else { "Thanks! Recorded 👎" },
                });
                if let Err(e) = self.inner.web.respond(url, &thanks).await {
                    tracing::debug!(error = %e, "cannot thank for the feedback");
                }
            }
        }
    }

    async fn on_comment(&self, payload: &SlackInteractionViewSubmissionEvent) {
        let view = &payload.view;
        let Some(id) = modal_field(view, |m| m.private_metadata.as_deref())
            .and_then(|v| Uuid::parse_str(v).ok())
        else {
            return;
        };
        let comment = input_value(view, "comment", "comment")
            .map(str::trim)
            .unwrap_or_default();
        if comment.is_empty() {
            return;
        }
        let user = payload.user.id.0.as_str();
        self.inner
            .pipeline
            .recorder()
            .feedback(FeedbackRecord {
                id: Uuid::now_v7(),
                inference_id: id,
                created_at_ms: now_ms(),
                kind: "comment".into(),
                score: None,
                comment: Some(comment.to_string()),
                user_id: Some(format!("slack:{user}")),
                source: "modal".into(),
            })
            .await;
    }

    async fn thumbs(&self, id: Uuid, user: &str, score: f64, source: &str) {
        self.inner
            .pipeline
            .recorder()
            .feedback(FeedbackRecord {
                id: Uuid::now_v7(),
                inference_id: id,
                created_at_ms: now_ms(),
                kind: "thumbs".into(),
                score: Some(score),
                comment: None,
                user_id: Some(format!("slack:{user}")),
                source: source.into(),
            })
            .await;
    }
}

/// Handles `reaction_added`: 👍 / 👎 on one of the bot's answers.
pub(crate) async fn reaction(slack: &Slack, event: &SlackReactionAddedEvent) {
    let reaction = event.reaction.0.as_str();
    let score = match reaction.split("::").next().unwrap_or(reaction) {
        "+1" | "thumbsup" => 1.0,
        "-1" | "thumbsdown" => 0.0,
        _ => return,
    };
    let Ok(me) = slack.identity().await.cloned() else {
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
    let id = match slack.answer_of(channel, ts) {
        Some(id) => Some(id),
        // Another replica sent it: the message's metadata names the inference.
        None => match slack.thread(channel, ts).await {
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
        slack.thumbs(id, user, score, "reaction").await;
    }
}

/// The modal a 👎 opens: an optional comment on the answer.
fn comment_view(id: Uuid) -> Value {
    json!({
        "type": "modal",
        "callback_id": COMMENT_VIEW,
        "private_metadata": id.to_string(),
        "title": { "type": "plain_text", "text": "Feedback" },
        "submit": { "type": "plain_text", "text": "Send" },
        "close": { "type": "plain_text", "text": "Skip" },
        "blocks": [{
            "type": "input",
            "block_id": "comment",
            "optional": true,
            "label": { "type": "plain_text", "text": "What was wrong with the answer?" },
            "element": {
                "type": "plain_text_input",
                "action_id": "comment",
                "multiline": true,
                "max_length": 2000,
            },
        }],
    })
}
