//! The Redis response cache, shared by every replica: one `GET` per
//! lookup, one `SET … PX ttl` per answer, the answer stored as JSON (its
//! chunks, usage and the target that gave it).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{CacheBackend, CachedAnswer};
use crate::guards::redis_link::{RedisError, RedisLink};

/// Answers kept in Redis.
pub struct RedisCache {
    link: RedisLink,
}

impl RedisCache {
    /// A cache on this link.
    pub fn new(link: RedisLink) -> RedisCache {
        RedisCache { link }
    }
}

impl CacheBackend for RedisCache {
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<CachedAnswer>>, RedisError>> {
        Box::pin(async move {
            let raw: Option<Vec<u8>> = self
                .link
                .query(redis::cmd("GET").arg(self.link.key(key)))
                .await?;
            // An entry that does not parse (written by another version) is a miss.
            Ok(raw.and_then(|r| serde_json::from_slice(&r).ok().map(Arc::new)))
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        answer: Arc<CachedAnswer>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), RedisError>> {
        Box::pin(async move {
            let Ok(value) = serde_json::to_vec(&*answer) else {
                return Ok(());
            };
            let ms = ttl.as_millis().max(1) as u64;
            let () = self
                .link
                .query(
                    redis::cmd("SET")
                        .arg(self.link.key(key))
                        .arg(value)
                        .arg("PX")
                        .arg(ms),
                )
                .await?;
            Ok(())
        })
    }
}
