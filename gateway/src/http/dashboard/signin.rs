//! The sign-in and sign-out pages. A wrong name and a wrong password get
//! the same answer, after the same argon2 work; repeated failures lock the
//! account (and the client address) for a growing while.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::session::{
    LOGIN_COOKIE, SESSION_COOKIE, Session, cookie, parse_form, random_token, refused, same_secret,
    set_cookie, token_hash,
};
use super::{Dashboard, DashboardError, accounts};
use crate::domain::now_ms;

/// Largest sign-in form accepted.
const MAX_FORM: usize = 16 * 1024;

/// The sign-in form, with a fresh double-submit token.
pub async fn form(State(d): State<Dashboard>) -> Result<Response, DashboardError> {
    login_page(&d, StatusCode::OK, None, "")
}

fn login_page(
    d: &Dashboard,
    status: StatusCode,
    error: Option<String>,
    name: &str,
) -> Result<Response, DashboardError> {
    let token = random_token()?;
    let mut page = d.render(
        "login.html",
        context! { title => "Sign in", csrf => &token, error => error, name => name },
    )?;
    *page.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&set_cookie(
        LOGIN_COOKIE,
        &token,
        3600,
        d.config.secure_cookies,
    )) {
        page.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(page)
}

/// Checks the name and password and starts a session.
pub async fn submit(
    State(d): State<Dashboard>,
    request: Request,
) -> Result<Response, DashboardError> {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    let headers: HeaderMap = request.headers().clone();
    // Behind a TLS-terminating proxy the cookie is marked Secure even when
    // `secure_cookies` was forgotten (that only ever restricts it).
    let secure = d.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
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
    if let Some(wait) = d.throttle.wait(name, &address) {
        let secs = wait.as_secs_f64().ceil() as u64;
        tracing::warn!(account = name, %address, "sign-in refused: too many wrong passwords");
        return login_page(
            &d,
            StatusCode::TOO_MANY_REQUESTS,
            Some(format!(
                "Too many wrong passwords. Try again in {secs} second{}.",
                if secs == 1 { "" } else { "s" }
            )),
            name,
        );
    }
    if !accounts::valid_name(name) || !accounts::check_sign_in(&d.store, name, password).await? {
        d.throttle.failed(name, &address);
        tracing::warn!(account = name, %address, "sign-in refused: wrong name or password");
        return login_page(
            &d,
            StatusCode::UNAUTHORIZED,
            Some("Wrong name or password.".into()),
            name,
        );
    }
    d.throttle.succeeded(name, &address);
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
    tracing::info!(account = name, "signed in to the dashboard");
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
    if let Ok(v) =
        HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", 0, d.config.secure_cookies))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}
