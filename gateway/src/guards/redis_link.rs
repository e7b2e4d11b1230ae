//! The one connection to Redis that the cache, the limiter and event dedupe
//! share when `[redis] url` is set, and the rules for when Redis is down.
//!
//! Redis must never hang a request: every command is bounded by
//! `redis.timeout_ms`, and after a failure Redis is skipped for a short
//! pause (each request during an outage fails over at once instead of
//! waiting out the timeout again). The connection manager reconnects by
//! itself; the first command after the pause is the probe that finds Redis
//! back. Each fallback is counted ([`RedisLink::fallbacks`]) and the first
//! of an outage is logged as a warning.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, ScriptInvocation};

use crate::config::{OnFailure, RedisConfig, redact_url};

/// How long Redis is skipped after a failure before it is tried again.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// Why a Redis command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisError {
    /// The URL could not be used.
    #[error("cannot use `redis.url` = {url}: {message}; write it like redis://127.0.0.1:6379/0")]
    BadUrl {
        /// The URL, password redacted.
        url: String,
        /// The client's message.
        message: String,
    },
    /// No answer in time.
    #[error(
        "Redis at {url} did not answer within {ms} ms; check that it is running and reachable, or raise `redis.timeout_ms`"
    )]
    Timeout {
        /// The URL, password redacted.
        url: String,
        /// The timeout.
        ms: u64,
    },
    /// Redis answered with an error, or the connection failed.
    #[error(
        "Redis at {url} failed: {message}; check that it is running and that `redis.url` is right"
    )]
    Failed {
        /// The URL, password redacted.
        url: String,
        /// The client's message.
        message: String,
    },
    /// Skipped: Redis failed moments ago and is being reconnected.
    #[error("Redis at {url} is unreachable (reconnecting); check that it is running")]
    Down {
        /// The URL, password redacted.
        url: String,
    },
}

/// A shared, self-reconnecting handle to Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    manager: ConnectionManager,
    url: String,
    timeout: Duration,
    on_failure: OnFailure,
    prefix: String,
    epoch: Instant,
    /// Milliseconds since `epoch` until which Redis is skipped.
    skip_until_ms: AtomicI64,
    down: AtomicBool,
    fallbacks: AtomicU64,
}

impl RedisLink {
    /// A link to the Redis that `config` names, or `None` when no URL is set.
    /// Connects lazily: Switchboard starts even while Redis is down.
    pub fn from_config(config: &RedisConfig) -> Result<Option<RedisLink>, RedisError> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        let redacted = redact_url(url);
        let bad = |e: redis::RedisError| RedisError::BadUrl {
            url: redacted.clone(),
            message: e.to_string(),
        };
        let client = redis::Client::open(url.as_str()).map_err(bad)?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let manager =
            ConnectionManager::new_lazy_with_config(client, manager_config).map_err(bad)?;
        Ok(Some(RedisLink {
            inner: Arc::new(Inner {
                manager,
                url: redacted,
                timeout,
                on_failure: config.on_failure,
                prefix: config.key_prefix.clone(),
                epoch: Instant::now(),
                skip_until_ms: AtomicI64::new(0),
                down: AtomicBool::new(false),
                fallbacks: AtomicU64::new(0),
            }),
        }))
    }

    /// `redis.on_failure`.
    pub fn on_failure(&self) -> OnFailure {
        self.inner.on_failure
    }

    /// The key for `name`, under `redis.key_prefix`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.inner.prefix)
    }

    /// How many times a request went on without Redis (fail-open) or was
    /// refused for want of it (fail-closed) since start.
    pub fn fallbacks(&self) -> u64 {
        self.inner.fallbacks.load(Ordering::Relaxed)
    }

    /// Whether the last command failed (Redis is believed down).
    pub fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Relaxed)
    }

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        self.guarded(async {
            let mut conn = self.inner.manager.clone();
            cmd.query_async(&mut conn).await
        })
        .await
    }

    /// Runs a Lua script (EVALSHA, loading it first where Redis lost it).
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        self.guarded(async {
            let mut conn = self.inner.manager.clone();
            invocation.invoke_async(&mut conn).await
        })
        .await
    }

    /// Notes that `what` went on without Redis (or was refused): counts it,
    /// and warns once per outage.
    pub fn fell_back(&self, what: &str, error: &RedisError) {
        self.inner.fallbacks.fetch_add(1, Ordering::Relaxed);
        if !self.inner.down.swap(true, Ordering::Relaxed) {
            match self.inner.on_failure {
                OnFailure::Open => tracing::warn!(
                    %error, what,
                    "Redis is unreachable: limits fall back to this process and the shared cache is skipped until it returns (redis.on_failure = \"open\")"
                ),
                OnFailure::Closed => tracing::warn!(
                    %error, what,
                    "Redis is unreachable: requests whose limits cannot be checked are refused until it returns (redis.on_failure = \"closed\")"
                ),
            }
        }
    }

    fn now_ms(&self) -> i64 {
        self.inner.epoch.elapsed().as_millis() as i64
    }

    async fn guarded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        if self.now_ms() < self.inner.skip_until_ms.load(Ordering::Relaxed) {
            return Err(RedisError::Down {
                url: self.inner.url.clone(),
            });
        }
        let result = match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                Err(RedisError::Failed {
                    url: self.inner.url.clone(),
                    message: e.to_string(),
                })
            }
            // Redis answered: it is up, the command itself was refused.
            Ok(Err(e)) => {
                return Err(RedisError::Failed {
                    url: self.inner.url.clone(),
                    message: e.to_string(),
                });
            }
            Err(_) => Err(RedisError::Timeout {
                url: self.inner.url.clone(),
                ms: self.inner.timeout.as_millis() as u64,
            }),
        };
        match &result {
            Ok(_) => {
                if self.inner.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(url = %self.inner.url, "Redis is reachable again; shared limits and cache are back");
                }
            }
            Err(_) => {
                let until = self.now_ms() + PAUSE_AFTER_FAILURE.as_millis() as i64;
                self.inner.skip_until_ms.store(until, Ordering::Relaxed);
            }
        }
        result
    }
}
