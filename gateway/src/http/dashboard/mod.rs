//! The feedback dashboard at `/dashboard`: server-rendered pages (axum and
//! minijinja, charts as inline SVG, no JavaScript) over the inference log,
//! the prompt registry and the admin command layer. Everything but the
//! sign-in page needs a session, and every page an account with editor or
//! admin rights (others get a 403 page naming the key that grants them);
//! every POST also needs the session's CSRF token; promote and rollback go
//! through [`crate::promptops::admin::Admin`], which checks the account's
//! rights and writes the audit log as `dashboard:NAME`. What went wrong on
//! the server is logged with a short reference and only the reference is
//! shown.
//!
//! One module per concern: [`accounts`] (argon2 and how many checks run at
//! once), [`throttle`] (wrong passwords), [`session`] (cookies, CSRF,
//! rights), [`figures`] and [`charts`] (what the numbers mean and how they
//! are drawn), and one module per page.

pub mod accounts;
pub mod charts;
mod feedback_review;
pub mod figures;
mod overview;
mod playground;
mod prompts_pages;
pub mod session;
mod signin;
pub mod throttle;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;

use crate::config::DashboardConfig;
use crate::pipeline::Pipeline;
use crate::promptops::admin::{Actor, Admin, AdminError, Rights};
use crate::registry::RegistryError;
use crate::store::{Store, StoreError};

/// Why a dashboard page could not be served.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A template failed (a bug: templates are built in).
    #[error("cannot render the dashboard page `{page}`: {source}")]
    Template {
        /// The template.
        page: String,
        /// minijinja's error.
        source: minijinja::Error,
    },
    /// The operating system gave no random bytes.
    #[error("cannot make a session token: the operating system's random source failed: {0}")]
    Random(String),
    /// Something asked for does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            DashboardError::NotFound(what) => (StatusCode::NOT_FOUND, what),
            other => (
                StatusCode::INTERNAL_SERVER_ERROR,
                went_wrong(&other, "dashboard page failed"),
            ),
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{text}\n"),
        )
            .into_response()
    }
}

/// Logs `error` under a fresh short reference and returns what the browser
/// is shown instead: the reference, never the error (which can hold SQL,
/// table names or file paths).
pub fn went_wrong(error: &dyn std::fmt::Display, what: &str) -> String {
    let mut bytes = [0u8; 4];
    let reference: String = match getrandom::fill(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => format!("{:08x}", crate::domain::now_ms() as u32),
    };
    tracing::error!(reference = %reference, error = %error, "{what}");
    format!(
        "Something went wrong (ref {reference}). The server's log has the details under this reference."
    )
}

/// What the browser is shown of an admin command's failure: the message
/// when it is about the command, a reference when the database failed.
fn admin_error_text(e: &AdminError) -> String {
    match e {
        AdminError::Registry(RegistryError::Store(_)) => went_wrong(e, "dashboard command failed"),
        other => other.to_string(),
    }
}

/// Everything the dashboard's handlers reach. Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    store: Store,
    admin: Admin,
    pipeline: Pipeline,
    config: DashboardConfig,
    throttle: Arc<throttle::Throttle>,
    checks: Arc<accounts::PasswordChecks>,
    templates: Arc<Environment<'static>>,
    /// Whether the warning about `secure_cookies = false` and a client
    /// that is not on loopback was logged.
    warned_insecure: Arc<std::sync::atomic::AtomicBool>,
}

/// The audited identity of a dashboard account.
pub fn actor(account: &str) -> Actor {
    Actor {
        id: format!("dashboard:{account}"),
        name: account.to_string(),
        roles: Vec::new(),
        // Dashboard accounts are made by whoever runs `switchboard admin
        // add` against the database, like the CLI: they act as admins
        // (unless `admin.platform_admins` is turned off, when they need
        // `dashboard:NAME` in `admin.admins`).
        platform_admin: true,
        workspace: None,
    }
}

impl Dashboard {
    /// The dashboard over a running gateway's parts. The sign-in throttle
    /// is shared through the pipeline's Redis when `[redis]` is set.
    pub fn new(
        store: Store,
        admin: Admin,
        pipeline: Pipeline,
        config: DashboardConfig,
    ) -> Dashboard {
        let link = pipeline.guards().redis.clone();
        if !config.secure_cookies {
            tracing::warn!(
                "dashboard.secure_cookies = false: sign-in cookies lose `Secure` for clients on this machine (loopback) only; everyone else still gets `Secure` cookies"
            );
        }
        Dashboard {
            store,
            admin,
            pipeline,
            config,
            throttle: Arc::new(throttle::Throttle::new(link)),
            checks: Arc::new(accounts::PasswordChecks::new(
                accounts::default_parallel_checks(),
            )),
            templates: Arc::new(templates()),
            warned_insecure: Arc::default(),
        }
    }

    /// How many sign-in passwords this process has checked.
    pub fn passwords_checked(&self) -> u64 {
        self.checks.checked()
    }

    /// Whether cookies set for a client at `peer` (with these request
    /// headers) are marked `Secure`: always, unless `secure_cookies =
    /// false` and the client is on loopback and no TLS proxy forwarded it.
    fn secure_cookies(
        &self,
        peer: Option<std::net::IpAddr>,
        headers: &axum::http::HeaderMap,
    ) -> bool {
        let forwarded_https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        if self.config.secure_cookies || forwarded_https {
            return true;
        }
        if peer.is_some_and(|ip| ip.is_loopback()) {
            return false;
        }
        if !self
            .warned_insecure
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                client = ?peer,
                "dashboard.secure_cookies = false applies to loopback clients only: this client gets `Secure` cookies, which browsers keep over HTTPS only; serve the dashboard over HTTPS"
            );
        }
        true
    }

    /// The routes, all under `/dashboard`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/dashboard", get(overview::page))
            .route("/dashboard/", get(overview::page))
            .route("/dashboard/login", get(signin::form).post(signin::submit))
            .route("/dashboard/logout", post(signin::logout))
            .route("/dashboard/prompts", get(prompts_pages::list))
            .route("/dashboard/prompts/{name}", get(prompts_pages::show))
            .route("/dashboard/prompts/{name}/diff", get(prompts_pages::diff))
            .route(
                "/dashboard/prompts/{name}/promote",
                post(prompts_pages::promote),
            )
            .route(
                "/dashboard/prompts/{name}/rollback",
                post(prompts_pages::rollback),
            )
            .route("/dashboard/evals/{id}", get(prompts_pages::eval_report))
            .route("/dashboard/feedback", get(feedback_review::list))
            .route(
                "/dashboard/feedback/{id}/reviewed",
                post(feedback_review::mark_reviewed),
            )
            .route(
                "/dashboard/feedback/{id}/dataset",
                post(feedback_review::add_to_dataset),
            )
            .route(
                "/dashboard/playground",
                get(playground::form).post(playground::run),
            )
            .with_state(self)
    }

    /// Refuses accounts that the admin configuration gives no rights (every
    /// page and action needs an editor or admin).
    fn may_edit(&self, session: &session::Session) -> Result<(), session::Refused> {
        if self.may_read(session) {
            Ok(())
        } else {
            Err(session::Refused(format!(
                "`dashboard:{}` has no editor or admin rights; add it to `admin.editors` or `admin.admins`",
                session.account
            )))
        }
    }

    /// Whether the account may see the pages (editor or admin rights).
    fn may_read(&self, session: &session::Session) -> bool {
        self.admin.rights(&session.actor()) >= Rights::Editor
    }

    /// The 403 page for a signed-in account without rights, naming the
    /// configuration keys that grant them.
    fn no_rights_page(&self, session: &session::Session) -> Response {
        let page = self.render(
            "forbidden.html",
            minijinja::context! {
                title => "No access",
                me => &session.account,
                csrf => &session.csrf,
                actor => format!("dashboard:{}", session.account),
            },
        );
        match page {
            Ok(mut page) => {
                *page.status_mut() = StatusCode::FORBIDDEN;
                page
            }
            Err(e) => e.into_response(),
        }
    }

    /// Renders a page template with `ctx`.
    fn render(&self, page: &str, ctx: minijinja::Value) -> Result<Response, DashboardError> {
        let html = self
            .templates
            .get_template(page)
            .and_then(|t| t.render(ctx))
            .map_err(|source| DashboardError::Template {
                page: page.to_string(),
                source,
            })?;
        Ok((
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "same-origin"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
                ),
            ],
            Html(html),
        )
            .into_response())
    }
}

/// The built-in templates. HTML autoescaping is on for `.html` (the
/// default): user text goes in only as values, never as template source.
fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("prompts.html", include_str!("templates/prompts.html")),
        ("prompt.html", include_str!("templates/prompt.html")),
        ("diff.html", include_str!("templates/diff.html")),
        ("eval.html", include_str!("templates/eval.html")),
        ("feedback.html", include_str!("templates/feedback.html")),
        ("playground.html", include_str!("templates/playground.html")),
        ("forbidden.html", include_str!("templates/forbidden.html")),
    ] {
        if let Err(e) = env.add_template(name, source) {
            // Built-in templates are checked by the tests; a broken one is
            // reported when its page is asked for.
            tracing::error!(template = name, error = %e, "dashboard template does not parse");
        }
    }
    env
}

/// Any serializable value, for a template context.
fn v<T: serde::Serialize>(x: T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(x))
}

/// A time as people read it.
fn when(ms: i64) -> String {
    crate::domain::Utc::from_ms(ms).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let env = super::templates();
        for name in [
            "base.html",
            "login.html",
            "overview.html",
            "prompts.html",
            "prompt.html",
            "diff.html",
            "eval.html",
            "feedback.html",
            "playground.html",
            "forbidden.html",
        ] {
            env.get_template(name).unwrap();
        }
    }

    #[tokio::test]
    async fn server_failures_show_a_reference_not_the_error() {
        use axum::response::IntoResponse;
        let e = super::DashboardError::Store(crate::store::StoreError::Encode(
            "SELECT secret FROM sessions WHERE token_hash = 'x'".into(),
        ));
        let response = e.into_response();
        assert_eq!(response.status(), 500);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("Something went wrong (ref "), "{text}");
        assert!(
            !text.contains("SELECT") && !text.contains("sessions"),
            "{text}"
        );
    }
}
