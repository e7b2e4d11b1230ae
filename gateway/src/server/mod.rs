//! The HTTP server of `switchboard serve`: the OpenAI-compatible API,
//! health checks, and (later) platform webhooks. Handlers are plain async
//! functions; state is passed explicitly in [`AppState`].

mod auth;
mod feedback_api;
mod openai_api;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::pipeline::Pipeline;
use crate::store::Store;

pub use auth::ApiKeys;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The request pipeline.
    pub pipeline: Pipeline,
    /// The database, for readiness.
    pub store: Store,
    /// Accepted API keys.
    pub keys: Arc<ApiKeys>,
}

/// The application's routes.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(openai_api::chat_completions))
        .route("/v1/models", get(openai_api::models))
        .route("/v1/feedback", post(feedback_api::post_feedback))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves; requests in flight
/// are finished first.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Prometheus metrics, in the text exposition format.
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let fallbacks = state
        .pipeline
        .guards()
        .redis
        .as_ref()
        .map(|r| r.fallbacks());
    let pipeline = &state.pipeline;
    let metrics = pipeline.metrics();
    metrics.set_gauge(
        "switchboard_queue_depth",
        &[("queue", "recorder"), ("provider", "")],
        pipeline.recorder().queued() as f64,
    );
    let latency = pipeline.recorder().latency();
    metrics.set_timings("switchboard_feedback_ack_seconds", &latency.ack);
    metrics.set_timings("switchboard_spool_sync_seconds", &latency.sync);
    for (provider, depth) in pipeline.router().queue_depths() {
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
        state.pipeline.metrics().render(fallbacks),
    )
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The process can serve: the database answers.
async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
    }
}
