//! The sign-in and sign-out pages. A wrong name and a wrong password get
//! the same answer, after the same argon2 work; repeated failures lock the
//! account from that address, the address, and (briefly) the account
//! everywhere ([`super::throttle`]). Only a few passwords are checked at
//! once: an attempt that finds no free check is answered `429` at once.
//! Logs name the client's address, never a name typed into a failed
//! sign-in.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::session::{
    LOGIN_COOKIE, SESSION_COOKIE, Session, cookie, parse_form, random_token, refused, same_secret,
    set_cookie, token_hash,
};
use super::throttle::{Admission, BUSY_WAIT};
use super::{Dashboard, DashboardError, accounts};
use crate::domain::now_ms;

/// Largest sign-in form accepted.
const MAX_FORM: usize = 16 * 1024;

/// The client's address, as the connection reports it.
fn peer(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The client's address, when the server recorded it.
pub struct Peer(Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The sign-in form, with a fresh double-submit token.
pub async fn form(
    State(d): State<Dashboard>,
    request: Request,
) -> Result<Response, DashboardError> {
    let secure = d.secure_cookies(peer(&request), request.headers());
    login_page(&d, StatusCode::OK, None, "", secure)
}

fn login_page(
    d: &Dashboard,
    status: StatusCode,
    error: Option<String>,
    name: &str,
    secure: bool,
) -> Result<Response, DashboardError> {
    let token = random_token()?;
    let mut page = d.render(
        "login.html",
        context! { title => "Sign in", csrf => &token, error => error, name => name },
    )?;
    *page.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&set_cookie(LOGIN_COOKIE, &token, 3600, secure)) {
        page.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(page)
}

/// A `429` sign-in page saying how long to wait, with `Retry-After`.
fn too_many(
    d: &Dashboard,
    wait: Duration,
    why: &str,
    name: &str,
    secure: bool,
) -> Result<Response, DashboardError> {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut page = login_page(
        d,
        StatusCode::TOO_MANY_REQUESTS,
        Some(format!(
            "{why} Try again in {secs} second{}.",
            if secs == 1 { "" } else { "s" }
        )),
        name,
        secure,
    )?;
    page.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    Ok(page)
}

/// Checks the name and password and starts a session.
pub async fn submit(
    State(d): State<Dashboard>,
    request: Request,
) -> Result<Response, DashboardError> {
    let client = peer(&request);
    let address = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    let headers: HeaderMap = request.headers().clone();
    let secure = d.secure_cookies(client, &headers);
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM).await else {
        return Ok(refused("the sign-in form is too large"));
    };
    let form = parse_form(&body);
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let given = form.get("csrf").map(String::as_str).unwrap_or_default();
    if expected.is_empty() || !same_secret(&expected, given) {
        return Ok(refused(
            "the sign-in form has expired or did not come from this site; reload /dashboard/login and try again",
        ));
    }
    let name = form.get("name").map(|n| n.trim()).unwrap_or_default();
    let password = form.get("password").map(String::as_str).unwrap_or_default();
    let attempt = match d.throttle.reserve(name, &address).await {
        Admission::Go(attempt) => attempt,
        Admission::Locked(wait) => {
            tracing::warn!(%address, "sign-in refused: too many wrong passwords");
            return too_many(&d, wait, "Too many wrong passwords.", name, secure);
        }
        Admission::Busy => {
            tracing::warn!(%address, "sign-in refused: too many attempts at once");
            return too_many(
                &d,
                BUSY_WAIT,
                "Too many sign-in attempts at once.",
                name,
                secure,
            );
        }
    };
    let right = if accounts::valid_name(name) {
        let Some(slot) = d.checks.try_slot() else {
            attempt.release().await;
            tracing::warn!(%address, "sign-in refused: every password check is busy");
            return too_many(
                &d,
                BUSY_WAIT,
                "The server is busy checking other sign-ins.",
                name,
                secure,
            );
        };
        match d.checks.check(slot, &d.store, name, password).await {
            Ok(right) => right,
            Err(e) => {
                attempt.release().await;
                return Err(e.into());
            }
        }
    } else {
        false
    };
    if !right {
        attempt.failed().await;
        tracing::warn!(%address, "sign-in failed: wrong name or password");
        return login_page(
            &d,
            StatusCode::UNAUTHORIZED,
            Some("Wrong name or password.".into()),
            name,
            secure,
        );
    }
    attempt.succeeded().await;
    let token = random_token()?;
    let csrf = random_token()?;
    let now = now_ms();
    let ttl_secs = d.config.session_hours * 3600;
    d.store
        .insert_session(
            &token_hash(&token),
            name,
            &csrf,
            now,
            now + ttl_secs as i64 * 1000,
        )
        .await?;
    // Sweep sessions that have expired meanwhile.
    d.store.delete_session("", now).await?;
    tracing::info!(account = name, %address, "signed in to the dashboard");
    let mut response = Redirect::to("/dashboard").into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    for value in [
        set_cookie(SESSION_COOKIE, &token, ttl_secs, secure),
        set_cookie(LOGIN_COOKIE, "", 0, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// Ends the session.
pub async fn logout(
    State(d): State<Dashboard>,
    Peer(client): Peer,
    headers: HeaderMap,
    session: Session,
    body: axum::body::Bytes,
) -> Result<Response, DashboardError> {
    if let Err(refusal) = session.verified_form(&body) {
        return Ok(refusal.into_response());
    }
    d.store
        .delete_session(&session.token_hash, now_ms())
        .await?;
    let mut response = Redirect::to("/dashboard/login").into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    let secure = d.secure_cookies(client, &headers);
    if let Ok(v) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", 0, secure)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}
