//! `POST /v1/feedback`: feedback on an answer from any client of the HTTP
//! API, typed like the buttons and reactions of the chat adapters. The
//! inference id comes from the `x-switchboard-inference-id` header of the
//! answer. Bad input is refused with a clear error and stores nothing, and
//! so is feedback on an answer given in someone else's direct message.
//!
//! The answer is looked up in the recorder (answers not yet written) and
//! then in the database. If the database cannot be reached, the feedback
//! is still taken, durably, and answered `202 Accepted` with
//! `"checked": false`: it is checked against its answer when it is
//! written, and left out then (with a warning in the log) if the answer is
//! unknown or was someone else's direct message. A click is not lost to a
//! database outage.
//!
//! ```json
//! {"inference_id": "0192…", "kind": "thumbs", "score": 1, "user": "U123"}
//! {"inference_id": "0192…", "kind": "rating", "score": 4}
//! {"inference_id": "0192…", "kind": "tag", "tag": "too-long"}
//! {"inference_id": "0192…", "kind": "comment", "comment": "The link is dead."}
//! ```

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use super::openai_api::api_error;
use crate::store::{Audience, FeedbackRecord, now_ms};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedbackBody {
    inference_id: String,
    kind: String,
    score: Option<f64>,
    tag: Option<String>,
    comment: Option<String>,
    user: Option<String>,
}

/// The longest comment or tag accepted, in characters.
const MAX_TEXT: usize = 4000;

/// Checks a body and turns it into a row; the error says what to fix.
fn validate(body: FeedbackBody) -> Result<FeedbackRecord, String> {
    let inference_id = Uuid::parse_str(&body.inference_id).map_err(|_| {
        format!(
            "`inference_id`: `{}` is not an inference id; use the `x-switchboard-inference-id` header of the answer",
            body.inference_id
        )
    })?;
    let (score, comment) = match body.kind.as_str() {
        "thumbs" => match body.score {
            Some(s) if s == 0.0 || s == 1.0 => (Some(s), body.comment),
            _ => return Err("`score`: thumbs take 1 (up) or 0 (down)".into()),
        },
        "rating" => match body.score {
            Some(s) if (1.0..=5.0).contains(&s) && s.fract() == 0.0 => (Some(s), body.comment),
            _ => return Err("`score`: a rating is a whole number from 1 to 5".into()),
        },
        "tag" => match body.tag {
            Some(t)
                if !t.is_empty()
                    && t.len() <= 64
                    && t.chars()
                        .all(|c| c.is_alphanumeric() || c == '-' || c == '_') =>
            {
                (None, Some(t))
            }
            _ => {
                return Err(
                    "`tag`: give a tag of letters, digits, `-` and `_`, at most 64 long".into(),
                );
            }
        },
        "comment" => match body.comment {
            Some(c) if !c.trim().is_empty() => (None, Some(c)),
            _ => return Err("`comment`: give the comment's text".into()),
        },
        other => {
            return Err(format!(
                "`kind`: `{other}` is not a feedback kind; use thumbs, rating, tag or comment"
            ));
        }
    };
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_TEXT)
    {
        return Err(format!("`comment`: at most {MAX_TEXT} characters"));
    }
    Ok(FeedbackRecord {
        id: Uuid::now_v7(),
        inference_id,
        created_at_ms: now_ms(),
        kind: body.kind,
        score,
        comment,
        user_id: body.user,
        source: "api".into(),
    })
}

/// `POST /v1/feedback`.
pub(crate) async fn post_feedback(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Response {
    let body: FeedbackBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("the body is not valid feedback JSON: {e}"),
            );
        }
    };
    let record = match validate(body) {
        Ok(r) => r,
        Err(message) => {
            return api_error(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
        }
    };
    // An answer not yet written is known to the recorder.
    let id = record.inference_id.to_string();
    let recorder = state.pipeline.recorder();
    let found = match recorder.audience(record.inference_id) {
        Some(audience) => Ok(Some(audience)),
        None => state.store.inference_audience(&id).await,
    };
    let checked = match found {
        Ok(Some(Audience::Anyone)) => true,
        Ok(Some(Audience::Only(owner))) => {
            if record.user_id.as_deref() != Some(owner.as_str()) {
                return api_error(
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    &format!(
                        "inference `{id}` was answered in another person's direct message; only they can leave feedback on it (set `user` to their id if this comes from them)"
                    ),
                );
            }
            true
        }
        Ok(None) => {
            return api_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                &format!("no inference `{id}`; feedback must name an answer Switchboard gave"),
            );
        }
        Err(e) => {
            // Taken all the same, and checked when it is written.
            tracing::warn!(inference = %id, error = %e, "cannot look the answer up; the feedback is kept and checked when the database takes it");
            false
        }
    };
    let feedback_id = record.id;
    recorder.feedback(record).await;
    let status = if checked {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    (
        status,
        axum::Json(json!({"id": feedback_id.to_string(), "inference_id": id, "checked": checked})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, score: Option<f64>) -> FeedbackBody {
        FeedbackBody {
            inference_id: Uuid::now_v7().to_string(),
            kind: kind.into(),
            score,
            tag: None,
            comment: None,
            user: None,
        }
    }

    #[test]
    fn scores_are_checked_per_kind() {
        assert!(validate(body("thumbs", Some(1.0))).is_ok());
        assert!(validate(body("thumbs", Some(0.5))).is_err());
        assert!(validate(body("rating", Some(5.0))).is_ok());
        for bad in [0.0, 6.0, 2.5] {
            let err = validate(body("rating", Some(bad))).unwrap_err();
            assert!(err.contains("1 to 5"), "{err}");
        }
        let err = validate(body("stars", Some(1.0))).unwrap_err();
        assert!(err.contains("not a feedback kind"), "{err}");
        let mut b = body("thumbs", Some(1.0));
        b.inference_id = "nope".into();
        assert!(validate(b).unwrap_err().contains("not an inference id"));
    }
}
