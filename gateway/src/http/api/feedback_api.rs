//! `POST /v1/feedback`: feedback on an answer from any client of the HTTP
//! API, typed like the buttons and reactions of the chat adapters. The
//! inference id comes from the `x-switchboard-inference-id` header of the
//! answer. Bad input is refused with a clear error and stores nothing, and
//! so is feedback on an answer given in someone else's direct message.
//!
//! The vote goes through the feedback door ([`FeedbackDoor`]): `201
//! Created` when it was checked against its answer; `202 Accepted` with
//! `"checked": false` when it was taken unchecked (the database cannot be
//! reached, or another replica answered a moment ago and has not written
//! the answer yet): it is checked when it is written, and left out then
//! (with a warning in the log) if the answer is unknown or was someone
//! else's direct message. A click is not lost to a database outage or a
//! load balancer. `403` for someone else's direct message, `404` with code
//! `inference_not_found` for an id no answer has.
//!
//! The API's voter is the caller's key (`http:<key name>`, or
//! `http:local` for keyless callers on this machine), never a Slack or
//! Discord user and never whoever the body's `user` names: that field is
//! accepted for compatibility and carries no authority.
//!
//! ```json
//! {"inference_id": "0192…", "kind": "thumbs", "score": 1, "user": "U123"}
//! {"inference_id": "0192…", "kind": "rating", "score": 4}
//! {"inference_id": "0192…", "kind": "tag", "tag": "too-long"}
//! {"inference_id": "0192…", "kind": "comment", "comment": "The link is dead."}
//! ```

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use axum::extract::rejection::BytesRejection;

use super::auth::Caller;
use super::error::ApiError;
use crate::domain::{FeedbackRecord, User, now_ms};
use crate::promptops::feedback::{FeedbackDoor, Verdict};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedbackBody {
    inference_id: String,
    kind: String,
    score: Option<f64>,
    tag: Option<String>,
    comment: Option<String>,
    /// Accepted for compatibility; the voter is the caller's key.
    #[expect(
        dead_code,
        reason = "read only so that clients sending it are not refused"
    )]
    user: Option<String>,
}

/// The longest comment or tag accepted, in characters.
const MAX_TEXT: usize = 4000;

/// Checks a body and turns it into `voter`'s row; the error says what to
/// fix. The body's own `user` names no one: the voter is the caller's key.
fn validate(body: FeedbackBody, voter: User) -> Result<FeedbackRecord, String> {
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
        user: Some(voter),
        source: "api".into(),
    })
}

/// `POST /v1/feedback`.
pub(crate) async fn post_feedback(
    State(door): State<FeedbackDoor>,
    Extension(caller): Extension<Caller>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: FeedbackBody = serde_json::from_slice(&body?)
        .map_err(|e| ApiError::invalid(format!("the body is not valid feedback JSON: {e}")))?;
    let record = validate(body, User::new("http", caller.0)).map_err(ApiError::invalid)?;
    let (feedback_id, id) = (record.id, record.inference_id.to_string());
    let status = match door.submit(record).await {
        Verdict::Stored => StatusCode::CREATED,
        Verdict::Unchecked => StatusCode::ACCEPTED,
        Verdict::Refused => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                format!(
                    "inference `{id}` was answered in another person's direct message; only they can leave feedback on it"
                ),
            ));
        }
        Verdict::Unknown => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("no inference `{id}`; feedback must name an answer Switchboard gave (the `x-switchboard-inference-id` header of the answer)"),
            )
            .code("inference_not_found")
            .param("inference_id"));
        }
    };
    Ok((
        status,
        axum::Json(json!({"id": feedback_id.to_string(), "inference_id": id, "checked": status == StatusCode::CREATED})),
    )
        .into_response())
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

    fn validate_as(body: FeedbackBody) -> Result<FeedbackRecord, String> {
        validate(body, User::new("http", "key1"))
    }

    #[test]
    fn scores_are_checked_per_kind() {
        assert!(validate_as(body("thumbs", Some(1.0))).is_ok());
        assert!(validate_as(body("thumbs", Some(0.5))).is_err());
        assert!(validate_as(body("rating", Some(5.0))).is_ok());
        for bad in [0.0, 6.0, 2.5] {
            let err = validate_as(body("rating", Some(bad))).unwrap_err();
            assert!(err.contains("1 to 5"), "{err}");
        }
        let err = validate_as(body("stars", Some(1.0))).unwrap_err();
        assert!(err.contains("not a feedback kind"), "{err}");
        let mut b = body("thumbs", Some(1.0));
        b.inference_id = "nope".into();
        assert!(validate_as(b).unwrap_err().contains("not an inference id"));
    }
}
