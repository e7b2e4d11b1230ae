//! Sessions, rights and CSRF: a random token in an `HttpOnly`,
//! `SameSite=Strict`, `Secure` cookie (`Secure` is dropped only for
//! loopback clients with `secure_cookies = false`) names a session row that
//! holds only the token's SHA-256; each session has its own CSRF token that
//! every form carries and every POST must echo, compared in constant time.
//! A [`Reader`] is a session whose account has editor or admin rights, which
//! every page asks for. The sign-in form, which comes before any session,
//! uses a double-submit cookie instead.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use super::{Dashboard, DashboardError};
use crate::domain::now_ms;

/// The session cookie.
pub const SESSION_COOKIE: &str = "switchboard_session";
/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "switchboard_login";
/// Where the cookies apply.
const COOKIE_PATH: &str = "/dashboard";

/// 32 random bytes from the operating system, as hex.
pub fn random_token() -> Result<String, DashboardError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| DashboardError::Random(e.to_string()))?;
    Ok(hex(&bytes))
}

/// SHA-256 of a token, as hex: what the store keeps.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time that depends only on their lengths.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of a cookie in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value; `max_age` 0 removes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path={COOKIE_PATH}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A signed-in account, read from the session cookie.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account name.
    pub account: String,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
    /// The hash of the cookie's token.
    pub token_hash: String,
}

impl Session {
    /// The id the admin layer audits this account as.
    pub fn actor(&self) -> crate::promptops::admin::Actor {
        super::actor(&self.account)
    }

    /// Parses a POST body and checks its CSRF token; a missing or wrong
    /// token refuses the request before anything changes.
    pub fn verified_form(&self, body: &[u8]) -> Result<HashMap<String, String>, Refused> {
        let form = parse_form(body);
        match form.get("csrf") {
            Some(token) if same_secret(token, &self.csrf) => Ok(form),
            _ => Err(Refused(
                "this form has expired or did not come from the dashboard (CSRF token missing or wrong); reload the page and try again".into(),
            )),
        }
    }
}

/// `application/x-www-form-urlencoded` fields (the last of a repeated name).
pub fn parse_form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// A request refused before anything changed, with the reason (403).
#[derive(Debug, Clone)]
pub struct Refused(pub String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("refused: {}\n", self.0),
        )
            .into_response()
    }
}

/// A 403 page.
pub fn refused(why: &str) -> Response {
    Refused(why.to_string()).into_response()
}

impl FromRequestParts<Dashboard> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Dashboard,
    ) -> Result<Self, Self::Rejection> {
        let found = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(token) => {
                let hash = token_hash(&token);
                state
                    .store
                    .session(&hash, now_ms())
                    .await
                    .map_err(|e| DashboardError::from(e).into_response())?
                    .map(|(account, csrf)| Session {
                        account,
                        csrf,
                        token_hash: hash,
                    })
            }
            None => None,
        };
        match found {
            Some(session) => Ok(session),
            None if parts.method == Method::GET || parts.method == Method::HEAD => {
                Err(Redirect::to("/dashboard/login").into_response())
            }
            None => Err(refused(
                "not signed in (no valid session); sign in at /dashboard/login",
            )),
        }
    }
}

/// A signed-in account with at least editor rights: what every page needs.
/// An account without rights gets a 403 page that names the configuration
/// keys granting them.
#[derive(Debug, Clone)]
pub struct Reader(pub Session);

impl FromRequestParts<Dashboard> for Reader {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Dashboard,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        if state.may_read(&session) {
            Ok(Reader(session))
        } else {
            Err(state.no_rights_page(&session))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_secrets() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; switchboard_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "ab"));
        let c = set_cookie(SESSION_COOKIE, "t", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("; Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "t", 60, false).contains("Secure"));
        let a = random_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token().unwrap());
        assert_ne!(token_hash(&a), a);
    }
}
