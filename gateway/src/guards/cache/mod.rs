//! The response cache: the same question to the same model with the same
//! parameters is not paid for twice.
//!
//! An answer is found by exact match on a SHA-256 of the alias's targets,
//! the parameters in force, the rendered messages and whether it streams.
//! Streamed answers keep their chunks, so a hit replays as a stream of the
//! same pieces, not one lump. Only complete answers are stored: errors and
//! broken-off streams never are.
//!
//! Whether an answer is cached is a policy: `[cache]` for all aliases,
//! `[models.X.cache]` for one, a prompt's own override
//! ([`CachePolicy`], set by the resolve stage), and per request
//! ([`CacheControl`], from HTTP headers). Sampled answers (temperature > 0,
//! or unset, which providers treat as 1) are not cached unless allowed.
//!
//! Backends: in this process ([`memory`], the default) or Redis ([`redis`])
//! when `[redis] url` is set. While Redis is unreachable the cache is
//! skipped (a miss, nothing stored), whatever `redis.on_failure` says: the
//! cache only ever saves work, it never refuses it.

pub mod memory;
pub mod redis;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::domain::{CacheControl, ChatMessage, Params, Usage};
use crate::guards::redis_link::{RedisError, RedisLink};

/// Whether and how long answers are cached, for an alias or a prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CachePolicy {
    /// Cache at all.
    pub enabled: bool,
    /// How long an answer is kept.
    pub ttl: Duration,
    /// Also cache sampled answers (temperature > 0 or unset).
    pub allow_sampling: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            enabled: true,
            ttl: Duration::from_secs(3600),
            allow_sampling: false,
        }
    }
}

/// A complete answer as cached: its chunks in order, usage, and who gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// The text in the pieces it arrived in (one piece when not streamed).
    pub chunks: Vec<String>,
    /// Token counts of the original answer.
    pub usage: Option<Usage>,
    /// Why it ended.
    pub finish_reason: Option<String>,
    /// The provider that answered.
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// What the original answer cost, when priced.
    pub cost_usd: Option<f64>,
}

impl CachedAnswer {
    /// Approximate bytes held, for the in-process cache's bound.
    pub fn weight(&self) -> usize {
        let text: usize = self.chunks.iter().map(|c| c.len() + 24).sum();
        text + self.provider.len() + self.model.len() + 128
    }

    /// `provider/model`.
    pub fn target(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

/// Where answers are kept: this process or Redis.
pub trait CacheBackend: Send + Sync {
    /// The answer under `key`, if any.
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<CachedAnswer>>, RedisError>>;
    /// Keeps `answer` under `key` for `ttl`.
    fn put<'a>(
        &'a self,
        key: &'a str,
        answer: Arc<CachedAnswer>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), RedisError>>;
}

/// What the cache will do for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// The entry's key.
    pub key: String,
    /// Look for an answer first.
    pub read: bool,
    /// Store the answer for this long (`None`: don't).
    pub store_for: Option<Duration>,
}

/// The response cache: policies and a backend.
pub struct ResponseCache {
    default: CachePolicy,
    aliases: HashMap<String, CachePolicy>,
    backend: Box<dyn CacheBackend>,
    link: Option<RedisLink>,
}

impl Default for ResponseCache {
    fn default() -> Self {
        ResponseCache {
            default: CachePolicy::default(),
            aliases: HashMap::new(),
            backend: Box::new(memory::MemoryCache::new(64 * 1024 * 1024)),
            link: None,
        }
    }
}

impl ResponseCache {
    /// The cache `config` describes, in Redis when `link` is given.
    pub fn from_config(config: &Config, link: Option<RedisLink>) -> ResponseCache {
        let default = CachePolicy {
            enabled: config.cache.enabled,
            ttl: Duration::from_secs(config.cache.ttl_secs),
            allow_sampling: config.cache.allow_sampling,
        };
        let aliases = config
            .models
            .iter()
            .map(|(name, alias)| {
                let c = &alias.cache;
                let policy = CachePolicy {
                    enabled: c.enabled.unwrap_or(default.enabled),
                    ttl: c.ttl_secs.map_or(default.ttl, Duration::from_secs),
                    allow_sampling: c.allow_sampling.unwrap_or(default.allow_sampling),
                };
                (name.clone(), policy)
            })
            .collect();
        let backend: Box<dyn CacheBackend> = match &link {
            Some(l) => Box::new(redis::RedisCache::new(l.clone())),
            None => Box::new(memory::MemoryCache::new(config.cache.max_bytes)),
        };
        ResponseCache {
            default,
            aliases,
            backend,
            link,
        }
    }

    /// The policy of `alias`.
    pub fn policy(&self, alias: &str) -> CachePolicy {
        self.aliases.get(alias).copied().unwrap_or(self.default)
    }

    /// Decides what the cache does for a request: `None` when it is not
    /// used at all. `prompt` is a prompt's own policy, which wins over the
    /// alias's; `params` are the parameters in force (alias defaults included).
    pub fn plan(
        &self,
        alias: &str,
        prompt: Option<&CachePolicy>,
        control: &CacheControl,
        request: KeyParts<'_>,
    ) -> Option<Lookup> {
        let policy = prompt.copied().unwrap_or_else(|| self.policy(alias));
        if !policy.enabled || !(control.read || control.write) {
            return None;
        }
        let sampled = request.params.temperature.is_none_or(|t| t > 0.0);
        if sampled && !policy.allow_sampling && control.ttl.is_none() {
            return None;
        }
        let ttl = control.ttl.unwrap_or(policy.ttl);
        Some(Lookup {
            key: key(request),
            read: control.read,
            store_for: (control.write && !ttl.is_zero()).then_some(ttl),
        })
    }

    /// The cached answer for `lookup`, if any. Redis failures are misses.
    pub async fn get(&self, lookup: &Lookup) -> Option<Arc<CachedAnswer>> {
        if !lookup.read {
            return None;
        }
        match self.backend.get(&lookup.key).await {
            Ok(hit) => hit,
            Err(e) => {
                if let Some(link) = &self.link {
                    link.fell_back("response cache lookup", &e);
                }
                None
            }
        }
    }

    /// Stores a complete answer, if the lookup says so.
    pub async fn put(&self, lookup: &Lookup, answer: CachedAnswer) {
        let Some(ttl) = lookup.store_for else {
            return;
        };
        if let Err(e) = self.backend.put(&lookup.key, Arc::new(answer), ttl).await
            && let Some(link) = &self.link
        {
            link.fell_back("response cache store", &e);
        }
    }
}

/// What a cached answer is found by.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    /// The alias's targets, `provider/model`, in order.
    pub targets: &'a [String],
    /// The parameters in force.
    pub params: &'a Params,
    /// The rendered messages.
    pub messages: &'a [ChatMessage],
    /// Streamed (chunks) or whole.
    pub stream: bool,
}

/// The cache key: `cache:` and the hex SHA-256 of the parts.
pub fn key(parts: KeyParts<'_>) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        v: u32,
        targets: &'a [String],
        params: &'a Params,
        messages: &'a [ChatMessage],
        stream: bool,
    }
    let canonical = Canonical {
        v: 1,
        targets: parts.targets,
        params: parts.params,
        messages: parts.messages,
        stream: parts.stream,
    };
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let mut out = String::with_capacity(6 + 64);
    out.push_str("cache:");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    #[test]
    fn headers_bypass_refuse_storage_and_set_a_ttl() {
        let c = CacheControl::from_headers(Some("no-cache"), None).unwrap();
        assert!(!c.read && c.write);
        let c = CacheControl::from_headers(Some("No-Store"), None).unwrap();
        assert!(!c.read && !c.write);
        let c = CacheControl::from_headers(Some("max-age=60"), Some("5")).unwrap();
        assert_eq!(c.ttl, Some(Duration::from_secs(5)));
        assert!(CacheControl::from_headers(None, Some("soon")).is_err());
    }

    #[test]
    fn sampled_answers_are_cached_only_when_allowed() {
        let cache = ResponseCache::default();
        let targets = ["p/m".to_string()];
        let messages = [ChatMessage::new(Role::User, "hi")];
        let unset = Params::default();
        let parts = |params| KeyParts {
            targets: &targets,
            params,
            messages: &messages,
            stream: false,
        };
        let greedy = Params {
            temperature: Some(0.0),
            ..Params::default()
        };
        let warm = Params {
            temperature: Some(0.7),
            ..Params::default()
        };
        let control = CacheControl::default();
        assert!(cache.plan("a", None, &control, parts(&greedy)).is_some());
        assert!(cache.plan("a", None, &control, parts(&warm)).is_none());
        assert!(cache.plan("a", None, &control, parts(&unset)).is_none());
        let allowed = CachePolicy {
            allow_sampling: true,
            ..CachePolicy::default()
        };
        assert!(
            cache
                .plan("a", Some(&allowed), &control, parts(&warm))
                .is_some()
        );
        let asked = CacheControl {
            ttl: Some(Duration::from_secs(9)),
            ..CacheControl::default()
        };
        let plan = cache.plan("a", None, &asked, parts(&warm)).unwrap();
        assert_eq!(plan.store_for, Some(Duration::from_secs(9)));
        // Different messages, different key.
        let other = [ChatMessage::new(Role::User, "hello")];
        assert_ne!(
            key(parts(&greedy)),
            key(KeyParts {
                messages: &other,
                ..parts(&greedy)
            })
        );
    }
}
