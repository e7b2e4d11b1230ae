//! The gateway's HTTP surfaces: the OpenAI-compatible API with feedback,
//! metrics and health checks ([`api`]), and the web dashboard
//! ([`dashboard`]), served by one connection loop with timeouts and a cap on
//! connections ([`server`]). Handlers are plain async functions over explicit
//! state.

pub mod api;
pub mod dashboard;
pub mod server;
