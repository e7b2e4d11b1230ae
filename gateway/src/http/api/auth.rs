//! API keys for the HTTP API, and who the caller is. Keys come from the
//! environment variable that `server.api_keys_env` names (comma-separated
//! `name:secret` entries; a bare secret is named `key1`, `key2`, … by its
//! place in the list). The key a request carries is its caller
//! ([`Caller`]): per-user limits, A/B assignment and feedback authority go
//! by it, never by the client's own `user` field. With no keys configured,
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

/// Who called the HTTP API: the name of the key the request carried, or
/// `local` for a keyless caller on this machine. Put in the request's
/// extensions by [`require_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// The name keyless loopback callers share.
pub const LOCAL_CALLER: &str = "local";

/// The accepted keys, each with its name.
#[derive(Default)]
pub struct ApiKeys {
    keys: Vec<(String, String)>,
    /// Whether the refusal of a proxied keyless request was logged yet.
    proxied_logged: AtomicBool,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

impl ApiKeys {
    /// Keys from a comma-separated list of `name:secret` entries (a bare
    /// secret is named `key<N>`, its place in the list from 1); empty
    /// entries are skipped. A name is letters, digits, `-`, `_` and `.`.
    pub fn from_list(list: &str) -> ApiKeys {
        let keys = list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
            .map(|(i, entry)| match entry.split_once(':') {
                Some((name, secret)) if is_key_name(name) && !secret.is_empty() => {
                    (name.to_string(), secret.to_string())
                }
                _ => (format!("key{}", i + 1), entry.to_string()),
            })
            .collect();
        ApiKeys {
            keys,
            proxied_logged: AtomicBool::new(false),
        }
    }

    /// The keys' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.keys.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name of the key `given` is, if it is one.
    fn caller(&self, given: &str) -> Option<&str> {
        // Compare every key without stopping early, in constant time per key.
        self.keys.iter().fold(None, |found, (name, secret)| {
            let hit = constant_time_eq(secret.as_bytes(), given.as_bytes());
            found.or(hit.then_some(name.as_str()))
        })
    }
}

fn is_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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
/// forwarded them), and tells the handlers who the [`Caller`] is.
pub async fn require_key(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
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
            request
                .extensions_mut()
                .insert(Caller(LOCAL_CALLER.to_string()));
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
    let sent_a_key = given.is_some();
    let caller = given
        .and_then(|key| state.keys.caller(key))
        .map(str::to_string);
    match caller {
        Some(name) => {
            request.extensions_mut().insert(Caller(name));
            next.run(request).await
        }
        None if sent_a_key => ApiError::unauthorized("the API key is not valid").into_response(),
        None => ApiError::unauthorized("missing API key: send `Authorization: Bearer <key>`")
            .into_response(),
    }
}
