//! API keys for the HTTP API. Keys come from the environment variable that
//! `server.api_keys_env` names (comma-separated). With no keys configured,
//! only clients on the loopback interface are served, so a fresh install
//! is never an open proxy to a paid model.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// The accepted keys.
#[derive(Default)]
pub struct ApiKeys {
    keys: Vec<String>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

impl ApiKeys {
    /// Keys from a comma-separated list; empty entries are skipped.
    pub fn from_list(list: &str) -> ApiKeys {
        ApiKeys {
            keys: list
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn accepts(&self, given: &str) -> bool {
        // Compare every key without stopping early, in constant time per key.
        self.keys.iter().fold(false, |ok, k| {
            ok | constant_time_eq(k.as_bytes(), given.as_bytes())
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: refuses requests without a valid key (or, with no keys
/// configured, from anywhere but loopback).
pub async fn require_key(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if state.keys.is_empty() {
        if peer.ip().is_loopback() {
            return next.run(request).await;
        }
        return ApiError::unauthorized(
            "no API keys are configured (server.api_keys_env), so only clients on this machine are served",
        )
        .into_response();
    }
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(key) if state.keys.accepts(key) => next.run(request).await,
        Some(_) => ApiError::unauthorized("the API key is not valid").into_response(),
        None => ApiError::unauthorized("missing API key: send `Authorization: Bearer <key>`")
            .into_response(),
    }
}
