//! `[routing]`: how often one target is retried, and how long to back off, before a request
//! falls back to the alias's next target.

use serde::Deserialize;

/// `[routing]`: retries and backoff for every target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Retries of one target before falling back to the next.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The first backoff; it doubles each retry, with jitter.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_ms: u64,
    /// The longest backoff.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// The longest `Retry-After` honoured; a longer one falls back at once.
    #[serde(default = "default_retry_after_max")]
    pub retry_after_max_ms: u64,
    /// Consecutive failures (server errors, broken connections, timeouts)
    /// after which a target is skipped for `breaker_cooldown_ms`; 0 turns
    /// the circuit breaker off. Counted per replica.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open circuit skips its target before one probe.
    #[serde(default = "default_breaker_cooldown")]
    pub breaker_cooldown_ms: u64,
}

fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown() -> u64 {
    30_000
}

fn default_retries() -> u32 {
    2
}
fn default_backoff_initial() -> u64 {
    200
}
fn default_backoff_max() -> u64 {
    5_000
}
fn default_retry_after_max() -> u64 {
    20_000
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            retries: default_retries(),
            backoff_initial_ms: default_backoff_initial(),
            backoff_max_ms: default_backoff_max(),
            retry_after_max_ms: default_retry_after_max(),
            breaker_failures: default_breaker_failures(),
            breaker_cooldown_ms: default_breaker_cooldown(),
        }
    }
}
