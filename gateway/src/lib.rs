//! Switchboard's gateway: everything between a normalized chat message and
//! a recorded, streamed answer. Adapters (Slack, Discord, the console, the
//! HTTP API) build a [`domain::Request`] and render the
//! [`domain::ReplyStream`] they get back.

// The floors, from the ground up (see ARCHITECTURE.md): each module imports
// only those listed before it.
pub mod app;
pub mod config;
pub mod domain;
pub mod guards;
pub mod http;
pub mod knowledge;
pub mod pipeline;
pub mod promptops;
pub mod providers;
pub mod registry;
pub mod store;
pub mod telemetry;
pub mod tools;

pub use app::{Gateway, StartError};
pub use config::Config;
pub use domain::{
    ChatMessage, Image, Inbound, Input, Origin, Params, ReplyEvent, ReplyStream, Request, Role,
    Summary, Usage, User,
};
pub use pipeline::{Pipeline, PipelineError, PipelineOptions};
pub use providers::install_crypto;
