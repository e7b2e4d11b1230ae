//! Event dedupe: platforms deliver an event more than once (Slack retries
//! when an ack is slow; Discord replays after a resume), and several
//! replicas may each receive a copy. An adapter asks
//! [`EventDedupe::first_seen`] with the platform's event id and handles the
//! event only on `true`, so that exactly one reply goes out.
//!
//! Ids are kept for a TTL, in this process or in Redis (`SET NX PX`, one
//! atomic command, so replicas agree). While Redis is unreachable,
//! `redis.on_failure = "open"` falls back to this process (a duplicate
//! delivered to two replicas may then be answered twice) and `"closed"`
//! returns an error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::OnFailure;
use crate::guards::redis_link::{RedisError, RedisLink};

/// Why an event could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum DedupeError {
    /// Redis is unreachable and `redis.on_failure` is `closed`.
    #[error(
        "cannot tell whether event `{event}` was already handled: {source} (redis.on_failure = \"closed\")"
    )]
    Unavailable {
        /// The event id.
        event: String,
        /// The Redis error.
        source: RedisError,
    },
}

/// Which platform events were already handled.
pub struct EventDedupe {
    local: Mutex<Local>,
    link: Option<RedisLink>,
}

#[derive(Default)]
struct Local {
    seen: HashMap<String, Instant>,
    writes: u64,
}

impl EventDedupe {
    /// A dedupe store in Redis when `link` is given, else in this process.
    pub fn new(link: Option<RedisLink>) -> EventDedupe {
        EventDedupe {
            local: Mutex::default(),
            link,
        }
    }

    /// Records `event_id` (namespace it by platform: `slack:Ev0123`) and
    /// says whether this is its first sighting within `ttl`.
    pub async fn first_seen(&self, event_id: &str, ttl: Duration) -> Result<bool, DedupeError> {
        let Some(link) = &self.link else {
            return Ok(self.first_seen_here(event_id, ttl));
        };
        let key = link.key(&format!("event:{event_id}"));
        let ms = ttl.as_millis().max(1) as u64;
        let set: Result<Option<String>, RedisError> = link
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms),
            )
            .await;
        match set {
            Ok(reply) => Ok(reply.is_some()),
            Err(source) => {
                link.fell_back("event dedupe", &source);
                match link.on_failure() {
                    OnFailure::Open => Ok(self.first_seen_here(event_id, ttl)),
                    OnFailure::Closed => Err(DedupeError::Unavailable {
                        event: event_id.to_string(),
                        source,
                    }),
                }
            }
        }
    }

    fn first_seen_here(&self, event_id: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local.writes += 1;
        if local.writes.is_multiple_of(1024) {
            local.seen.retain(|_, until| *until > now);
        }
        match local.seen.get(event_id) {
            Some(until) if *until > now => false,
            _ => {
                local.seen.insert(event_id.to_string(), now + ttl);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_is_first_seen_once_until_its_ttl_ends() {
        let dedupe = EventDedupe::new(None);
        let ttl = Duration::from_millis(50);
        assert!(dedupe.first_seen("slack:Ev1", ttl).await.unwrap());
        assert!(!dedupe.first_seen("slack:Ev1", ttl).await.unwrap());
        assert!(dedupe.first_seen("slack:Ev2", ttl).await.unwrap());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(dedupe.first_seen("slack:Ev1", ttl).await.unwrap());
    }
}
