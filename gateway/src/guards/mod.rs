//! What guards a generation: the limiter on the way in (the pipeline's
//! admit stage), the response cache before asking a model (its cache
//! stage), and the event dedupe store the adapters use. They share one
//! Redis link when `[redis] url` is set, and live in this process
//! otherwise. One folder per guard, one file per backend; they know the
//! ground floor and the configuration, not the pipeline.

pub mod cache;
pub mod dedupe;
pub mod limits;
pub mod redis_link;

use std::sync::Arc;

use crate::config::Config;
use cache::ResponseCache;
use dedupe::EventDedupe;
use limits::{Clock, Limiter, SystemClock};
use redis_link::{RedisError, RedisLink};

/// The cache, the limiter and event dedupe.
pub struct Guards {
    /// The response cache.
    pub cache: ResponseCache,
    /// Rate limits and budgets.
    pub limits: Limiter,
    /// Which platform events were handled.
    pub dedupe: Arc<EventDedupe>,
    /// The shared Redis, when configured.
    pub redis: Option<RedisLink>,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            cache: ResponseCache::default(),
            limits: Limiter::default(),
            dedupe: Arc::new(EventDedupe::new(None)),
            redis: None,
        }
    }
}

impl Guards {
    /// The guards `config` describes, on the system clock.
    pub fn from_config(config: &Config) -> Result<Guards, RedisError> {
        Guards::with_clock(config, Arc::new(SystemClock))
    }

    /// The guards `config` describes; limits read `clock`.
    pub fn with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<Guards, RedisError> {
        let link = RedisLink::from_config(&config.redis)?;
        Ok(Guards {
            cache: ResponseCache::from_config(config, link.clone()),
            limits: Limiter::new(config.limits.clone(), link.clone(), clock),
            dedupe: Arc::new(EventDedupe::new(link.clone())),
            redis: link,
        })
    }
}
