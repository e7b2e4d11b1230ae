//! `[cache]` and `[models.ALIAS.cache]`: the response cache's size and default policy, and
//! one alias's overrides of it.

use serde::Deserialize;

use super::ConfigError;

/// `[cache]`: the response cache's size and default policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Cache answers at all (per alias: `[models.X.cache] enabled`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long an answer is kept, in seconds.
    #[serde(default = "default_cache_ttl")]
    pub ttl_secs: u64,
    /// Also cache answers sampled with temperature > 0 (or unset, which
    /// providers treat as 1). Off: such answers are meant to vary.
    #[serde(default)]
    pub allow_sampling: bool,
    /// The in-process cache's size in bytes (answers, chunks and keys).
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
}

fn default_true() -> bool {
    true
}
fn default_cache_ttl() -> u64 {
    3600
}
fn default_cache_bytes() -> u64 {
    64 * 1024 * 1024
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            ttl_secs: default_cache_ttl(),
            allow_sampling: false,
            max_bytes: default_cache_bytes(),
        }
    }
}

/// `[models.ALIAS.cache]`: overrides of `[cache]` for one alias.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasCacheConfig {
    /// Cache this alias's answers.
    pub enabled: Option<bool>,
    /// How long an answer is kept, in seconds.
    pub ttl_secs: Option<u64>,
    /// Also cache sampled answers (temperature > 0 or unset).
    pub allow_sampling: Option<bool>,
}

impl CacheConfig {
    /// Rules of `[cache]`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.max_bytes < 1024 {
            return Err(ConfigError::key(
                "cache.max_bytes",
                Some(self.max_bytes.to_string()),
                "must be at least 1024; set `cache.enabled = false` to turn the cache off",
            ));
        }
        Ok(())
    }
}
