//! API keys for the HTTP API. Keys come from the environment variable that
//! `server.api_keys_env` names (comma-separated). With no keys configured,
//! only clients on the loopback interface are served, so a fresh install
//! is never an open proxy to a paid model. A same-host reverse proxy would
//! make every outside client look like loopback, so a keyless request that
//! carries a proxy's forwarding header is refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Whether the refusal of a proxied keyless request was logged yet.
    proxied_logged: AtomicBool,
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
            proxied_logged: AtomicBool::new(false),
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

/// The headers a reverse proxy adds to say whom it forwards for.
const FORWARDING_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// Middleware: refuses requests without a valid key (or, with no keys
/// configured, from anywhere but loopback, and from loopback when a proxy
/// forwarded them).
pub async fn require_key(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if state.keys.is_empty() {
        let proxied = FORWARDING_HEADERS
            .iter()
            .find(|h| request.headers().contains_key(**h));
        if let Some(header) = proxied {
            if !state.keys.proxied_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    header,
                    "a keyless request came through a proxy and was refused; set server.api_keys_env to serve clients behind a proxy"
                );
            }
            return ApiError::unauthorized(format!(
                "no API keys are configured (server.api_keys_env), so only clients on this machine are served, and this request came through a proxy (it carries `{header}`)"
            ))
            .into_response();
        }
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
