//! The in-process response cache: moka, bounded in bytes (each entry
//! weighs its key, text and chunk bookkeeping), each entry with its own TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use moka::Expiry;
use moka::sync::Cache;

use super::{CacheBackend, CachedAnswer};
use crate::guards::redis_link::RedisError;

#[derive(Clone)]
struct Entry {
    answer: Arc<CachedAnswer>,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Answers kept in this process.
pub struct MemoryCache {
    entries: Cache<String, Entry>,
}

impl MemoryCache {
    /// A cache holding at most `max_bytes` of answers.
    pub fn new(max_bytes: u64) -> MemoryCache {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| {
                let bytes = key.len() + entry.answer.weight();
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        MemoryCache { entries }
    }

    /// The answer under `key`, if fresh.
    pub fn get_now(&self, key: &str) -> Option<Arc<CachedAnswer>> {
        self.entries.get(key).map(|e| e.answer)
    }

    /// Keeps `answer` under `key` for `ttl`.
    pub fn put_now(&self, key: &str, answer: Arc<CachedAnswer>, ttl: Duration) {
        self.entries.insert(key.to_string(), Entry { answer, ttl });
    }
}

impl CacheBackend for MemoryCache {
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<CachedAnswer>>, RedisError>> {
        Box::pin(async move { Ok(self.get_now(key)) })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        answer: Arc<CachedAnswer>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), RedisError>> {
        Box::pin(async move {
            self.put_now(key, answer, ttl);
            Ok(())
        })
    }
}
