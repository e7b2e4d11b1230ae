//! `POST /v1/embeddings`, in OpenAI's shape: Switchboard's own embedding
//! model (the one retrieval uses, `[knowledge] embeddings`) for any OpenAI
//! client. `input` is a string or a list of strings (token arrays are
//! refused); `encoding_format` is `float` or `base64` (little-endian f32,
//! which the official SDKs ask for by default). `model` must name the
//! configured model, or be `embedded`/`default` for it. The texts' tokens
//! count against the caller's rate limits like a chat request's, checked
//! before anything is embedded.

use axum::Extension;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::domain::{Origin, User};

/// The most texts in one request, as OpenAI allows.
const MAX_INPUTS: usize = 2048;
/// The most characters in one text.
const MAX_CHARS: usize = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    input: Value,
    model: String,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "read only so that clients sending it are not refused"
    )]
    user: Option<String>,
}

/// `POST /v1/embeddings`.
pub(crate) async fn embeddings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let knowledge = &state.knowledge;
    let body: Body = serde_json::from_slice(&body?).map_err(|e| {
        ApiError::invalid(format!(
            "the request body is not an embeddings request: {e}"
        ))
    })?;
    let texts: Vec<String> = match body.input {
        Value::String(s) => vec![s],
        Value::Array(items) if !items.is_empty() => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(
                    ApiError::invalid("`input`: give strings; token arrays are not accepted")
                        .param("input"),
                ),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(
                ApiError::invalid("`input`: give a string or a non-empty list of strings")
                    .param("input"),
            );
        }
    };
    if texts.len() > MAX_INPUTS {
        return Err(
            ApiError::invalid(format!("`input`: at most {MAX_INPUTS} texts")).param("input"),
        );
    }
    if texts.iter().any(|t| t.chars().count() > MAX_CHARS) {
        return Err(ApiError::invalid(format!(
            "`input`: a text is at most {MAX_CHARS} characters"
        ))
        .param("input"));
    }
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "`encoding_format`: `{other}` is not float or base64"
            ))
            .param("encoding_format"));
        }
    };
    let embedder = knowledge.embedder().await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            e.to_string(),
        )
    })?;
    let name = embedder.name();
    if body.model != name && body.model != "embedded" && body.model != "default" {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "model `{}` is not served here; the embedding model is `{name}`",
                body.model
            ),
        )
        .code("model_not_found")
        .param("model"));
    }
    let tokens: usize = texts.iter().map(|t| embedder.count_tokens(t)).sum();
    // The caller's limits first: a refused request embeds nothing.
    let limits = &state.pipeline.guards().limits;
    let origin = Origin {
        platform: "http".into(),
        user: Some(User::new("http", caller.0)),
        ..Origin::default()
    };
    let admission = match limits.admit(&origin, tokens as u64).await {
        Ok(a) => a,
        Err(e) => return Ok(ApiError::limited(&e)),
    };
    let embedded = embedder.embed(texts).await;
    limits
        .settle(
            admission,
            if embedded.is_ok() { tokens as u64 } else { 0 },
            0.0,
        )
        .await;
    let vectors =
        embedded.map_err(|e| ApiError::new(axum::http::StatusCode::BAD_GATEWAY, "api_error", e))?;
    if let Some(d) = body.dimensions
        && vectors.first().is_some_and(|v| v.len() != d)
    {
        return Err(ApiError::invalid(format!(
            "`dimensions`: `{name}` gives {} dimensions, not {d}",
            vectors[0].len()
        ))
        .param("dimensions"));
    }
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(axum::Json(json!({
        "object": "list",
        "data": data,
        "model": name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}
