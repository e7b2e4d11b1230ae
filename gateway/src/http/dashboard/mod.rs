//! The feedback dashboard at `/dashboard`: server-rendered pages (axum and
//! minijinja, charts as inline SVG, no JavaScript) over the inference log,
//! the prompt registry and the admin command layer. Everything but the
//! sign-in page needs a session; every POST also needs the session's CSRF
//! token; promote and rollback go through [`crate::promptops::admin::Admin`], which
//! checks the account's rights and writes the audit log as
//! `dashboard:NAME`.
//!
//! One module per concern: [`accounts`] (argon2, the sign-in throttle),
//! [`session`] (cookies, CSRF), [`figures`] and [`charts`] (what the
//! numbers mean and how they are drawn), and one module per page.

pub mod accounts;
pub mod charts;
mod feedback_review;
pub mod figures;
mod overview;
mod playground;
mod prompts_pages;
pub mod session;
mod signin;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;

use crate::config::DashboardConfig;
use crate::pipeline::Pipeline;
use crate::promptops::admin::{Actor, Admin};
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
        let status = match self {
            DashboardError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => {
                tracing::error!(error = %self, "dashboard page failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response()
    }
}

/// Everything the dashboard's handlers reach. Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    store: Store,
    admin: Admin,
    pipeline: Pipeline,
    config: DashboardConfig,
    throttle: Arc<accounts::Throttle>,
    templates: Arc<Environment<'static>>,
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
    /// The dashboard over a running gateway's parts.
    pub fn new(
        store: Store,
        admin: Admin,
        pipeline: Pipeline,
        config: DashboardConfig,
    ) -> Dashboard {
        Dashboard {
            store,
            admin,
            pipeline,
            config,
            throttle: Arc::default(),
            templates: Arc::new(templates()),
        }
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

    /// Refuses accounts that the admin configuration gives no rights (the
    /// review and playground actions need an editor or admin).
    fn may_edit(&self, session: &session::Session) -> Result<(), session::Refused> {
        if self.admin.rights(&session.actor()) >= crate::promptops::admin::Rights::Editor {
            Ok(())
        } else {
            Err(session::Refused(format!(
                "`dashboard:{}` has no editor or admin rights; add it to `admin.admins` or `admin.editors`",
                session.account
            )))
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
        ] {
            env.get_template(name).unwrap();
        }
    }
}
