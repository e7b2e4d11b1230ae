//! The in-process limiter: the default, and the fallback while Redis is
//! down with `redis.on_failure = "open"`. The same arithmetic as the Redis
//! script, on a map behind one mutex (a check takes well under a
//! microsecond, so the lock is never held for long).

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;

use super::{Change, Check, LimitBackend, Rule, Verdict};
use crate::guards::redis_link::RedisError;

/// Entries are swept of expired ones after this many writes.
const SWEEP_EVERY: u64 = 4096;

/// Limits kept in this process.
#[derive(Default)]
pub struct MemoryLimits {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// key → (value, expires at µs): a theoretical arrival time for rate
    /// keys, micro-USD spent for budget keys.
    slots: HashMap<String, (f64, i64)>,
    writes: u64,
}

impl State {
    fn get(&self, key: &str, now: i64) -> f64 {
        match self.slots.get(key) {
            Some((v, expires)) if *expires > now => *v,
            _ => 0.0,
        }
    }

    fn set(&mut self, key: &str, value: f64, expires: i64, now: i64) {
        self.slots.insert(key.to_string(), (value, expires));
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.slots.retain(|_, (_, e)| *e > now);
        }
    }
}

impl MemoryLimits {
    /// Checks every rule and, only if all pass, takes from every one.
    pub fn check_now(&self, now: i64, checks: &[Check]) -> Verdict {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut new = Vec::with_capacity(checks.len());
        for (i, check) in checks.iter().enumerate() {
            match check.rule {
                Rule::Rate {
                    interval_us,
                    period_us,
                    cost,
                } => {
                    let tat = state.get(&check.key, now).max(now as f64);
                    let next = tat + cost * interval_us;
                    if next - now as f64 > period_us {
                        return Some((i, (next - now as f64 - period_us).ceil() as i64));
                    }
                    new.push((i, next));
                }
                Rule::Budget {
                    limit_micros,
                    retry_us,
                } => {
                    if state.get(&check.key, now) >= limit_micros as f64 {
                        return Some((i, retry_us));
                    }
                }
            }
        }
        for (i, next) in new {
            let expires = next.ceil() as i64 + 1_000_000;
            state.set(&checks[i].key, next, expires, now);
        }
        None
    }

    /// Gives back or takes more, after the real usage is known.
    pub fn settle_now(&self, now: i64, changes: &[Change]) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for change in changes {
            match change {
                Change::Rate { key, delta_us } => {
                    let tat = state.get(key, now).max(now as f64) + delta_us;
                    if tat <= now as f64 {
                        state.slots.remove(key);
                    } else {
                        state.set(key, tat, tat.ceil() as i64 + 1_000_000, now);
                    }
                }
                Change::Spend {
                    key,
                    micros,
                    ttl_ms,
                } => {
                    let spent = state.get(key, now) + *micros as f64;
                    state.set(key, spent, now + ttl_ms * 1000, now);
                }
            }
        }
    }
}

impl LimitBackend for MemoryLimits {
    fn check<'a>(
        &'a self,
        now_us: i64,
        checks: &'a [Check],
    ) -> BoxFuture<'a, Result<Verdict, RedisError>> {
        Box::pin(async move { Ok(self.check_now(now_us, checks)) })
    }

    fn settle<'a>(
        &'a self,
        now_us: i64,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<(), RedisError>> {
        Box::pin(async move {
            self.settle_now(now_us, changes);
            Ok(())
        })
    }
}
