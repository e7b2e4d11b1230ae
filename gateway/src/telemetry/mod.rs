//! What the gateway tells operators about itself: the Prometheus series
//! served at `/metrics` ([`metrics`]) and the tracing spans of each request,
//! named after the OpenTelemetry GenAI conventions ([`spans`]). Both read
//! only the ground floor's records, so every layer above may report.

pub mod metrics;
pub(crate) mod spans;
