//! Switchboard's gateway: everything between a normalized chat message and
//! a recorded, streamed answer. Adapters (Slack, Discord, the console, the
//! HTTP API) build a [`pipeline::Request`] and render the
//! [`reply::ReplyStream`] they get back.

pub mod admin;
pub mod app;
pub mod cache;
pub mod chunks;
pub mod config;
pub mod dashboard;
pub mod dedupe;
pub mod eval;
pub mod export;
pub mod guards;
pub mod implicit;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod providers;
pub mod redis_link;
pub mod registry;
pub mod reply;
pub mod router;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod types;

pub use app::{Gateway, StartError};
pub use config::Config;
pub use pipeline::{Input, Pipeline, PipelineError, PipelineOptions, Request};
pub use reply::{ReplyEvent, ReplyStream, Summary};
pub use types::{ChatMessage, Image, Inbound, Origin, Params, Role, Usage};

/// Installs ring as the process's TLS crypto provider (once; later calls
/// do nothing). Every HTTP client in Switchboard uses it.
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another provider was installed first; that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
