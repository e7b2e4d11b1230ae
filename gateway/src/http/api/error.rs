//! The API's one error type. Every error a route of the OpenAI-compatible
//! API answers with — the pipeline's refusals, a provider's failure, bad
//! input, and axum's own rejections (a body over the limit, an unknown
//! route, a wrong method) — is an [`ApiError`], sent as the JSON that the
//! OpenAI SDKs parse:
//!
//! ```json
//! {"error": {"message": "…", "type": "invalid_request_error", "param": null, "code": "model_not_found"}}
//! ```

use axum::extract::rejection::BytesRejection;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error's `type` (`invalid_request_error`, `rate_limit_error`, …).
    pub kind: &'static str,
    /// The error's `code`, when it has one (`model_not_found`, …).
    pub code: Option<&'static str>,
    /// The request field at fault, when one is.
    pub param: Option<&'static str>,
    /// What went wrong and what to do, for a person.
    pub message: String,
}

impl ApiError {
    /// An error of this status and type, without a code.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            code: None,
            param: None,
            message: message.into(),
        }
    }

    /// `400 invalid_request_error`: the request itself is wrong.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// `500 api_error`: Switchboard failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "api_error", message)
    }

    /// `401 authentication_error`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }

    /// A refusal by the rate limits: `429 rate_limit_error` (or `503` when
    /// the limits could not be checked), with `Retry-After` in whole seconds.
    pub fn limited(error: &crate::guards::limits::LimitError) -> Response {
        use crate::guards::limits::LimitError;
        let mut response = match error {
            LimitError::Limited { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                error.to_string(),
            )
            .code("rate_limit_exceeded"),
            LimitError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                error.to_string(),
            ),
        }
        .into_response();
        let secs = error.retry_after().as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }

    /// The same error with this `code`.
    pub fn code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// The same error naming the request field at fault.
    pub fn param(mut self, param: &'static str) -> ApiError {
        self.param = Some(param);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<BytesRejection> for ApiError {
    /// A body that could not be read: over the size limit (413), or cut off.
    fn from(rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than the server accepts; send a shorter conversation \
             or fewer images"
                .to_string()
        } else {
            format!("cannot read the request body: {}", rejection.body_text())
        };
        ApiError::new(status, "invalid_request_error", message)
    }
}

/// The answer for a URL that no route serves.
pub(crate) async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!(
            "unknown request URL: {method} {}; the API serves POST /v1/chat/completions, \
             GET /v1/models and POST /v1/feedback",
            uri.path()
        ),
    )
    .code("unknown_url")
}

/// The answer for a route asked with a method it does not take.
pub(crate) async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!(
            "{method} is not allowed on {}; see the API reference for the method",
            uri.path()
        ),
    )
    .code("method_not_allowed")
}

/// Middleware over the API's routes: an error that something other than a
/// handler answered in plain text (an extractor's rejection) is turned
/// into an [`ApiError`] with the same status and text, so that no error
/// leaves the API in another shape.
pub(crate) async fn as_api_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let kind = match status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        s if s.is_server_error() => "api_error",
        _ => "invalid_request_error",
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_string()
    } else {
        text
    };
    ApiError::new(status, kind, message).into_response()
}
