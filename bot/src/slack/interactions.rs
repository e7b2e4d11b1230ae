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
use uuid::Uuid;

use super::Slack;
use super::reply::{METADATA_TYPE, THUMBS_DOWN, THUMBS_UP};

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
/// (which, for a `view_submission`, closes the modal).
pub(crate) async fn dispatch(slack: &Slack, payload: Value) -> Option<Value> {
    match payload["type"].as_str() {
        Some("block_actions") => {
            let slack = slack.clone();
            tokio::spawn(async move { slack.on_actions(&payload).await });
            None
        }
        Some("view_submission") if payload["view"]["callback_id"] == super::edit::EDIT_VIEW => {
            Some(super::edit::submit(slack, &payload).await)
        }
        Some("view_submission") if payload["view"]["callback_id"] == COMMENT_VIEW => {
            slack.on_comment(&payload).await;
            None
        }
        _ => None,
    }
}

impl Slack {
    async fn on_actions(&self, payload: &Value) {
        let user = payload["user"]["id"].as_str().unwrap_or_default();
        for action in payload["actions"].as_array().into_iter().flatten() {
            let score = match action["action_id"].as_str() {
                Some(THUMBS_UP) => 1.0,
                Some(THUMBS_DOWN) => 0.0,
                _ => continue,
            };
            let Some(id) = action["value"]
                .as_str()
                .and_then(|v| Uuid::parse_str(v).ok())
            else {
                tracing::debug!("feedback button without an inference id ignored");
                continue;
            };
            self.thumbs(id, user, score, "button").await;
            if score == 0.0
                && let Some(trigger) = payload["trigger_id"].as_str()
            {
                let view = comment_view(id);
                let body = json!({ "trigger_id": trigger, "view": view });
                if let Err(e) = self.inner.web.call("views.open", &body).await {
                    tracing::warn!(error = %e, "cannot open the feedback comment modal");
                }
            }
            if let Some(url) = payload["response_url"].as_str() {
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

    async fn on_comment(&self, payload: &Value) {
        let view = &payload["view"];
        let Some(id) = view["private_metadata"]
            .as_str()
            .and_then(|v| Uuid::parse_str(v).ok())
        else {
            return;
        };
        let comment = view["state"]["values"]["comment"]["comment"]["value"]
            .as_str()
            .map(str::trim)
            .unwrap_or_default();
        if comment.is_empty() {
            return;
        }
        let user = payload["user"]["id"].as_str().unwrap_or_default();
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
pub(crate) async fn reaction(slack: &Slack, event: &Value) {
    let score = match event["reaction"]
        .as_str()
        .map(|r| r.split("::").next().unwrap_or(r))
    {
        Some("+1" | "thumbsup") => 1.0,
        Some("-1" | "thumbsdown") => 0.0,
        _ => return,
    };
    let Ok(me) = slack.identity().await.cloned() else {
        return;
    };
    let item = &event["item"];
    let (Some(user), Some(channel), Some(ts)) = (
        event["user"].as_str(),
        item["channel"].as_str(),
        item["ts"].as_str(),
    ) else {
        return;
    };
    if item["type"] != "message" || event["item_user"].as_str() != Some(&me.user_id) {
        return;
    }
    let id = match slack.answer_of(channel, ts) {
        Some(id) => Some(id),
        // Another replica sent it: the message's metadata names the inference.
        None => match slack.thread(channel, ts).await {
            Ok(messages) => messages
                .iter()
                .find(|m| m["ts"].as_str() == Some(ts))
                .filter(|m| m["metadata"]["event_type"] == METADATA_TYPE)
                .and_then(|m| m["metadata"]["event_payload"]["inference_id"].as_str())
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
