//! The HTTP server of `switchboard serve`: the OpenAI-compatible API (chat
//! completions, models, embeddings),
//! feedback, metrics and health checks. Handlers are plain async functions;
//! state is passed explicitly in [`AppState`], and each handler takes only
//! the part it uses (axum substates). Every error of these routes is an
//! [`ApiError`].

mod auth;
mod embeddings_api;
mod error;
mod feedback_api;
mod openai_api;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use super::server::ConnectionLimits;
use crate::guards::redis_link::RedisLink;
use crate::pipeline::Pipeline;
use crate::promptops::feedback::FeedbackDoor;
use crate::store::{Recorder, Store};
use crate::telemetry::metrics::Metrics;

pub use auth::{ApiKeys, Caller, LOCAL_CALLER};
pub use error::ApiError;

/// The handles the API's handlers use, given at wiring.
#[derive(Clone)]
pub struct AppState {
    /// The request pipeline.
    pub pipeline: Pipeline,
    /// The database, for readiness.
    pub store: Store,
    /// Accepted API keys.
    pub keys: Arc<ApiKeys>,
    /// Where votes go.
    pub feedback: FeedbackDoor,
    /// The recorder, for its queue and latency figures.
    pub recorder: Recorder,
    /// The series served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The shared Redis, when configured, for its fallback count.
    pub redis: Option<RedisLink>,
    /// The knowledge, for `/v1/embeddings`.
    pub knowledge: crate::knowledge::Knowledge,
}

impl FromRef<AppState> for crate::knowledge::Knowledge {
    fn from_ref(state: &AppState) -> crate::knowledge::Knowledge {
        state.knowledge.clone()
    }
}

impl FromRef<AppState> for FeedbackDoor {
    fn from_ref(state: &AppState) -> FeedbackDoor {
        state.feedback.clone()
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(state: &AppState) -> Store {
        state.store.clone()
    }
}

/// The application's routes.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(openai_api::chat_completions))
        .route("/v1/models", get(openai_api::models))
        .route("/v1/embeddings", post(embeddings_api::embeddings))
        .route("/v1/feedback", post(feedback_api::post_feedback))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .method_not_allowed_fallback(error::wrong_method)
        .layer(axum::middleware::map_response(error::as_api_errors));
    Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(error::unknown_route)
        .with_state(state)
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves;
/// requests in flight are finished first.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    super::server::serve(listener, app(state), limits, shutdown).await
}

/// Prometheus metrics, in the text exposition format.
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let metrics = &state.metrics;
    metrics.set_gauge(
        "switchboard_queue_depth",
        &[("queue", "recorder"), ("provider", "")],
        state.recorder.queued() as f64,
    );
    metrics.set_gauge(
        "switchboard_queue_depth",
        &[("queue", "recorder_memory"), ("provider", "")],
        state.recorder.held_in_memory() as f64,
    );
    let latency = state.recorder.latency();
    metrics.set_timings("switchboard_feedback_ack_seconds", &latency.ack);
    metrics.set_timings("switchboard_spool_sync_seconds", &latency.sync);
    for (target, circuit) in state.pipeline.circuits() {
        metrics.set_gauge(
            "switchboard_circuit_state",
            &[("target", &target)],
            circuit.gauge(),
        );
    }
    for (provider, depth) in state.pipeline.queue_depths() {
        metrics.set_gauge(
            "switchboard_queue_depth",
            &[("queue", "provider"), ("provider", &provider)],
            depth as f64,
        );
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(state.redis.as_ref().map(|r| r.fallbacks())),
    )
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The process can serve: the database answers.
async fn readyz(State(store): State<Store>) -> (StatusCode, String) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
    }
}
