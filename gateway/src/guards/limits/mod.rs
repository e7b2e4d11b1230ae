//! Rate limits and budgets: requests and tokens per minute for each user,
//! channel and workspace and for everything together, and a daily spend
//! budget, as `[limits]` sets them (a workspace may have its own).
//!
//! Rates are GCRA (a token bucket kept as one "theoretical arrival time"
//! per key): a full minute's allowance may be used at once, and it refills
//! evenly. A request's token use is not known before it is answered, so
//! the token limits reserve an estimate when the request is admitted and
//! settle with the real usage after it ([`Limiter::settle`]); the budget is
//! checked on admission and charged with the real cost after.
//!
//! The state lives in this process ([`memory`]) or in Redis ([`redis`]),
//! where one Lua script checks all of a request's rules atomically. The
//! clock is injectable ([`Clock`]) so that "a minute later" and "the next
//! day" can be tested without waiting.

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::config::{LimitSet, LimitsConfig, OnFailure};
use crate::domain::Origin;
use crate::guards::redis_link::{RedisError, RedisLink};

/// Microseconds in a minute, the period of every rate.
const MINUTE_US: f64 = 60_000_000.0;
/// Microseconds in a day, the period of budgets (UTC days).
const DAY_US: i64 = 86_400_000_000;
/// How long a day's spend is kept (past its day, for late settlements).
const SPEND_TTL_MS: i64 = 2 * 86_400_000;

/// What time it is, in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now_us(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
    }
}

/// A clock that moves only when told to (tests, benchmarks).
#[derive(Debug)]
pub struct ManualClock {
    now_us: AtomicI64,
}

impl ManualClock {
    /// A clock showing `now_us`.
    pub fn new(now_us: i64) -> ManualClock {
        ManualClock {
            now_us: AtomicI64::new(now_us),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.now_us
            .fetch_add(by.as_micros() as i64, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now_us: i64) {
        self.now_us.store(now_us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.now_us.load(Ordering::SeqCst)
    }
}

/// Who a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One user.
    User,
    /// One channel.
    Channel,
    /// One workspace or guild.
    Workspace,
    /// Everything together.
    Global,
}

impl Scope {
    fn subject(self) -> &'static str {
        match self {
            Scope::User => "you have",
            Scope::Channel => "this channel has",
            Scope::Workspace => "this workspace has",
            Scope::Global => "everyone together has",
        }
    }

    fn possessive(self) -> &'static str {
        match self {
            Scope::User => "your",
            _ => "its",
        }
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
    /// USD per UTC day.
    Budget,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    /// A limit is reached; `message` says which and when to retry.
    #[error("{message}")]
    Limited {
        /// Who the limit counts.
        scope: Scope,
        /// What it counts.
        kind: LimitKind,
        /// When a retry can pass.
        retry_after: Duration,
        /// The message for the user.
        message: String,
    },
    /// The shared limits could not be checked and `redis.on_failure` is
    /// `closed`.
    #[error(
        "the request was refused because rate limits cannot be checked right now: {0} (redis.on_failure = \"closed\"); try again shortly"
    )]
    Unavailable(RedisError),
}

impl LimitError {
    /// When to retry: the limit's refill time, or a few seconds while Redis
    /// is unreachable.
    pub fn retry_after(&self) -> Duration {
        match self {
            LimitError::Limited { retry_after, .. } => *retry_after,
            LimitError::Unavailable(_) => Duration::from_secs(2),
        }
    }
}

/// One rule of one request, as the backends check it.
#[derive(Debug, Clone)]
pub struct Check {
    /// The key, without the Redis prefix.
    pub key: String,
    /// The arithmetic.
    pub rule: Rule,
}

/// The arithmetic of a rule.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// GCRA: `cost` units, one per `interval_us`, at most a `period_us` ahead.
    Rate {
        /// Microseconds per unit.
        interval_us: f64,
        /// The burst window (a minute).
        period_us: f64,
        /// Units taken.
        cost: f64,
    },
    /// Refuse once the day's spend reaches `limit_micros` micro-USD.
    Budget {
        /// The budget in micro-USD.
        limit_micros: i64,
        /// Microseconds until the next UTC day.
        retry_us: i64,
    },
}

/// A change after the real usage is known.
#[derive(Debug, Clone)]
pub enum Change {
    /// Move a rate key's arrival time (negative gives back).
    Rate {
        /// The key.
        key: String,
        /// Microseconds to add.
        delta_us: f64,
    },
    /// Add to a day's spend.
    Spend {
        /// The key.
        key: String,
        /// Micro-USD.
        micros: i64,
        /// How long to keep the day's total.
        ttl_ms: i64,
    },
}

/// `None` when admitted, else (index of the rule that refused, retry after µs).
pub type Verdict = Option<(usize, i64)>;

/// Where limits are kept: this process or Redis.
pub trait LimitBackend: Send + Sync {
    /// Checks every rule; takes from all of them only if all pass.
    fn check<'a>(
        &'a self,
        now_us: i64,
        checks: &'a [Check],
    ) -> BoxFuture<'a, Result<Verdict, RedisError>>;
    /// Applies changes after a request.
    fn settle<'a>(
        &'a self,
        now_us: i64,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<(), RedisError>>;
}

/// What a rule means, for messages.
#[derive(Debug, Clone, Copy)]
struct Label {
    scope: Scope,
    kind: LimitKind,
    limit: f64,
}

/// An admitted request's reservations, settled when it ends.
#[derive(Debug, Default)]
pub struct Admission {
    /// Whether Redis admitted it (settle there) or this process did.
    shared: bool,
    /// Rate keys holding a token reservation: (key, µs per token, tokens reserved).
    tokens: Vec<(String, f64, f64)>,
    /// Budget keys of the day: charged with the real cost.
    budgets: Vec<String>,
}

/// The limiter: the configured rules, a backend, a clock.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    config: LimitsConfig,
    memory: memory::MemoryLimits,
    shared: Option<(redis::RedisLimits, RedisLink)>,
    clock: Arc<dyn Clock>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(LimitsConfig::default(), None, Arc::new(SystemClock))
    }
}

impl Limiter {
    /// A limiter for these rules, in Redis when `link` is given.
    pub fn new(config: LimitsConfig, link: Option<RedisLink>, clock: Arc<dyn Clock>) -> Limiter {
        Limiter {
            inner: Arc::new(Inner {
                config,
                memory: memory::MemoryLimits::default(),
                shared: link.map(|l| (redis::RedisLimits::new(l.clone()), l)),
                clock,
            }),
        }
    }

    /// The clock the limiter reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Output tokens assumed for a request without `max_tokens`.
    pub fn estimate_output_tokens(&self) -> u32 {
        self.inner.config.estimate_output_tokens
    }

    /// The rules for a request from `origin` estimated at `tokens` tokens.
    fn rules(&self, origin: &Origin, tokens: u64, now_us: i64) -> Vec<(Check, Label)> {
        let config = &self.inner.config;
        let ws = origin.workspace.as_deref();
        let own = ws.and_then(|w| config.workspaces.get(w));
        let place = format!("{}:{}", origin.platform, ws.unwrap_or("-"));
        let mut scopes: Vec<(Scope, String, LimitSet)> = Vec::with_capacity(4);
        if let Some(user) = &origin.user {
            let set = own.map_or(config.user, |o| o.user.or(&config.user));
            scopes.push((Scope::User, format!("u:{place}:{user}"), set));
        }
        if let Some(channel) = &origin.channel {
            let set = own.map_or(config.channel, |o| o.channel.or(&config.channel));
            scopes.push((Scope::Channel, format!("c:{place}:{channel}"), set));
        }
        if ws.is_some() {
            let set = own.map_or(config.workspace, |o| o.workspace.or(&config.workspace));
            scopes.push((Scope::Workspace, format!("w:{place}"), set));
        }
        scopes.push((Scope::Global, "g".to_string(), config.global));

        let day = now_us.div_euclid(DAY_US);
        let retry_us = (day + 1) * DAY_US - now_us;
        let mut rules = Vec::new();
        for (scope, id, set) in scopes {
            if let Some(rpm) = set.requests_per_minute {
                rules.push((
                    Check {
                        key: format!("rl:{id}:rpm"),
                        rule: Rule::Rate {
                            interval_us: MINUTE_US / rpm as f64,
                            period_us: MINUTE_US,
                            cost: 1.0,
                        },
                    },
                    Label {
                        scope,
                        kind: LimitKind::Requests,
                        limit: rpm as f64,
                    },
                ));
            }
            if let Some(tpm) = set.tokens_per_minute {
                // A request bigger than a whole minute's allowance waits
                // for a full bucket rather than never passing.
                let cost = (tokens as f64).min(tpm as f64);
                rules.push((
                    Check {
                        key: format!("rl:{id}:tpm"),
                        rule: Rule::Rate {
                            interval_us: MINUTE_US / tpm as f64,
                            period_us: MINUTE_US,
                            cost,
                        },
                    },
                    Label {
                        scope,
                        kind: LimitKind::Tokens,
                        limit: tpm as f64,
                    },
                ));
            }
            if let Some(usd) = set.daily_budget_usd {
                rules.push((
                    Check {
                        key: format!("budget:{id}:{day}"),
                        rule: Rule::Budget {
                            limit_micros: (usd * 1e6).round() as i64,
                            retry_us,
                        },
                    },
                    Label {
                        scope,
                        kind: LimitKind::Budget,
                        limit: usd,
                    },
                ));
            }
        }
        rules
    }

    /// Admits a request from `origin` that is estimated to use `tokens`
    /// tokens, or says which limit refuses it and when to retry.
    pub async fn admit(&self, origin: &Origin, tokens: u64) -> Result<Admission, LimitError> {
        let now = self.inner.clock.now_us();
        let rules = self.rules(origin, tokens, now);
        if rules.is_empty() {
            return Ok(Admission::default());
        }
        let checks: Vec<Check> = rules.iter().map(|(c, _)| c.clone()).collect();
        let (verdict, shared) = match &self.inner.shared {
            None => (self.inner.memory.check_now(now, &checks), false),
            Some((backend, link)) => match backend.check(now, &checks).await {
                Ok(v) => (v, true),
                Err(e) => {
                    link.fell_back("rate limits", &e);
                    match link.on_failure() {
                        OnFailure::Closed => return Err(LimitError::Unavailable(e)),
                        OnFailure::Open => (self.inner.memory.check_now(now, &checks), false),
                    }
                }
            },
        };
        if let Some((index, retry_us)) = verdict {
            let label = rules[index].1;
            let retry_after = Duration::from_micros(retry_us.max(0) as u64);
            return Err(LimitError::Limited {
                scope: label.scope,
                kind: label.kind,
                retry_after,
                message: refusal(label, retry_after),
            });
        }
        let mut admission = Admission {
            shared,
            ..Admission::default()
        };
        for (check, _) in rules {
            match check.rule {
                Rule::Rate {
                    interval_us, cost, ..
                } if check.key.ends_with(":tpm") => {
                    admission.tokens.push((check.key, interval_us, cost));
                }
                Rule::Budget { .. } => admission.budgets.push(check.key),
                Rule::Rate { .. } => {}
            }
        }
        Ok(admission)
    }

    /// Settles an admitted request with what it really used: the token
    /// reservation is corrected and the cost charged to the day's budgets.
    pub async fn settle(&self, admission: Admission, tokens_used: u64, cost_usd: f64) {
        let mut changes = Vec::new();
        for (key, interval_us, reserved) in admission.tokens {
            let delta = tokens_used as f64 - reserved;
            if delta != 0.0 {
                changes.push(Change::Rate {
                    key,
                    delta_us: delta * interval_us,
                });
            }
        }
        let micros = (cost_usd * 1e6).round() as i64;
        if micros > 0 {
            for key in admission.budgets {
                changes.push(Change::Spend {
                    key,
                    micros,
                    ttl_ms: SPEND_TTL_MS,
                });
            }
        }
        if changes.is_empty() {
            return;
        }
        let now = self.inner.clock.now_us();
        match &self.inner.shared {
            Some((backend, link)) if admission.shared => {
                if let Err(e) = backend.settle(now, &changes).await {
                    link.fell_back("settling rate limits", &e);
                    self.inner.memory.settle_now(now, &changes);
                }
            }
            _ => self.inner.memory.settle_now(now, &changes),
        }
    }

    /// Checks one raw rule set on the backend in use (benchmarks).
    pub async fn check_raw(&self, checks: &[Check]) -> Result<Verdict, RedisError> {
        let now = self.inner.clock.now_us();
        match &self.inner.shared {
            Some((backend, _)) => backend.check(now, checks).await,
            None => Ok(self.inner.memory.check_now(now, checks)),
        }
    }
}

/// A request's token estimate: its text at about four characters a token,
/// plus the most it may generate.
pub fn estimate_tokens(chars: usize, max_tokens: Option<u32>, default_output: u32) -> u64 {
    chars.div_ceil(4) as u64 + u64::from(max_tokens.unwrap_or(default_output))
}

/// The message a refused user sees.
fn refusal(label: Label, retry_after: Duration) -> String {
    let wait = human(retry_after);
    match label.kind {
        LimitKind::Requests | LimitKind::Tokens => format!(
            "Rate limit reached: {} used {} {} {} per minute. Try again in {wait}.",
            label.scope.subject(),
            label.scope.possessive(),
            label.limit,
            if label.kind == LimitKind::Requests {
                "requests"
            } else {
                "tokens"
            },
        ),
        LimitKind::Budget => format!(
            "Daily budget reached: {} spent {} USD {:.2} for today (UTC). Try again in {wait}, after midnight UTC.",
            label.scope.subject(),
            label.scope.possessive(),
            label.limit,
        ),
    }
}

/// `3 s`, `4 min 10 s`, `7 h 12 min`.
fn human(d: Duration) -> String {
    let s = d.as_secs_f64().ceil().max(1.0) as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            platform: "slack".into(),
            workspace: Some("T1".into()),
            channel: Some("C1".into()),
            user: Some(crate::domain::User::new("slack", "U1")),
            ..Origin::default()
        }
    }

    #[tokio::test]
    async fn a_minutes_allowance_passes_at_once_then_refills_evenly() {
        let clock = Arc::new(ManualClock::new(1_000_000_000_000));
        let mut config = LimitsConfig::default();
        config.user.requests_per_minute = Some(6);
        let limiter = Limiter::new(config, None, clock.clone());
        for _ in 0..6 {
            limiter.admit(&origin(), 1).await.expect("within the limit");
        }
        let refused = limiter
            .admit(&origin(), 1)
            .await
            .expect_err("over the limit");
        assert_eq!(refused.retry_after(), Duration::from_secs(10));
        assert_eq!(
            refused.to_string(),
            "Rate limit reached: you have used your 6 requests per minute. Try again in 10 s."
        );
        clock.advance(Duration::from_secs(10));
        limiter.admit(&origin(), 1).await.expect("one refilled");
        assert!(limiter.admit(&origin(), 1).await.is_err());
    }

    #[tokio::test]
    async fn token_reservations_are_settled_with_real_usage() {
        let clock = Arc::new(ManualClock::new(1_000_000_000_000));
        let mut config = LimitsConfig::default();
        config.channel.tokens_per_minute = Some(1000);
        let limiter = Limiter::new(config, None, clock.clone());
        // Reserve 600 of 1000: a second 600 does not fit...
        let first = limiter.admit(&origin(), 600).await.expect("fits");
        assert!(limiter.admit(&origin(), 600).await.is_err());
        // ...until the first settles at 100 tokens really used.
        limiter.settle(first, 100, 0.0).await;
        limiter
            .admit(&origin(), 600)
            .await
            .expect("fits after settling");
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(human(Duration::from_millis(200)), "1 s");
        assert_eq!(human(Duration::from_secs(250)), "4 min 10 s");
        assert_eq!(human(Duration::from_secs(7 * 3600 + 12 * 60)), "7 h 12 min");
    }
}
