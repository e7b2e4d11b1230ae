//! `[redis]`: where replicas share the response cache, the limits and event dedupe, and what
//! to do while it cannot be reached.

use serde::Deserialize;

use super::{ConfigError, redact_url};

/// `[redis]`: where replicas share the cache, limits and event dedupe.
/// Without `url`, all three live in this process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:pass@]host:port[/db]`. Give a password through
    /// `SWITCHBOARD__REDIS__URL` rather than the file.
    pub url: Option<String>,
    /// What to do while Redis cannot be reached: `open` (in-process limits,
    /// no shared cache) or `closed` (refuse requests whose limits cannot be
    /// checked).
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Longest wait for one Redis command before it counts as a failure.
    #[serde(default = "default_redis_timeout")]
    pub timeout_ms: u64,
    /// Longest wait for a connection to Redis.
    #[serde(default = "default_redis_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Prefix of every key Switchboard writes, so several deployments can
    /// share one Redis.
    #[serde(default = "default_redis_prefix")]
    pub key_prefix: String,
}

fn default_redis_timeout() -> u64 {
    100
}
fn default_redis_connect_timeout() -> u64 {
    250
}
fn default_redis_prefix() -> String {
    "switchboard:".to_string()
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            on_failure: OnFailure::default(),
            timeout_ms: default_redis_timeout(),
            connect_timeout_ms: default_redis_connect_timeout(),
            key_prefix: default_redis_prefix(),
        }
    }
}

/// What Switchboard does while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Keep answering: limits fall back to this process, the cache is
    /// skipped; a warning is logged and the fallback counter grows.
    #[default]
    Open,
    /// Refuse requests whose limits cannot be checked, with a clear error.
    Closed,
}

impl RedisConfig {
    /// Rules of `[redis]`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url
            && !url.starts_with("redis://")
        {
            return Err(ConfigError::key(
                "redis.url",
                Some(redact_url(url)),
                "must start with redis://, e.g. redis://127.0.0.1:6379/0",
            ));
        }
        if self.timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err(ConfigError::key(
                "redis",
                None,
                "`timeout_ms` and `connect_timeout_ms` must be greater than zero",
            ));
        }
        Ok(())
    }
}
