//! The sign-in throttle: it refuses, for a growing while, further sign-ins
//! after repeated wrong passwords, and it counts attempts while their
//! passwords are still being checked, so that a burst of parallel attempts
//! cannot all pass before the first failure is recorded.
//!
//! Three counts are kept for each attempt:
//!
//! - the account from this address: 3 free failures, then locks of 5 s,
//!   10 s, 20 s, … up to 15 minutes;
//! - the address, whatever the account: 10 free failures, same locks;
//! - the account from every address: 10 free failures, then locks of at most
//!   a minute, so that failures from one address (or many) can keep the real
//!   owner, signing in from elsewhere, out for a short while only.
//!
//! An attempt first reserves a place in all three ([`Throttle::reserve`]):
//! while a count is not locked, at most as many attempts may be in flight as
//! it has free failures left (one once they are used up). A wrong password
//! turns the reservation into a counted failure, a right one clears the
//! account's counts (not the address's), and an attempt whose password was
//! never checked gives its place back.
//!
//! With `[redis] url` set the counts live in Redis (one Lua script to
//! reserve and one to settle, each atomic), so every replica sees the same
//! ones; a reservation there expires by itself if its replica dies. While
//! Redis cannot be reached the throttle falls back to this process (logged
//! once per outage, through the shared link).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Script;

use crate::guards::redis_link::{RedisError, RedisLink};

/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);
/// How long a reservation in Redis lasts if its replica never settles it.
const RESERVATION_TTL: Duration = Duration::from_secs(60);
/// The wait asked of an attempt refused because others are in flight.
pub const BUSY_WAIT: Duration = Duration::from_secs(1);

/// How one count locks.
#[derive(Debug, Clone, Copy)]
struct Rule {
    /// Failures before the first lock.
    free: u32,
    /// The first lock; each further failure doubles it.
    first: Duration,
    /// The longest lock.
    max: Duration,
    /// Whether a good sign-in clears the count.
    cleared_by_success: bool,
}

/// The account from one address.
const PAIR: Rule = Rule {
    free: 3,
    first: Duration::from_secs(5),
    max: Duration::from_secs(15 * 60),
    cleared_by_success: true,
};
/// One address, any account.
const ADDRESS: Rule = Rule {
    free: 10,
    first: Duration::from_secs(5),
    max: Duration::from_secs(15 * 60),
    cleared_by_success: false,
};
/// One account, any address: locks stay short.
const ACCOUNT: Rule = Rule {
    free: 10,
    first: Duration::from_secs(5),
    max: Duration::from_secs(60),
    cleared_by_success: true,
};

/// Wrong passwords allowed on an account from one address before it locks.
pub const FREE_FAILURES_PER_ACCOUNT: u32 = PAIR.free;
/// Wrong passwords allowed from one address (any account) before it locks.
pub const FREE_FAILURES_PER_ADDRESS: u32 = ADDRESS.free;
/// The first lock.
pub const FIRST_LOCK: Duration = PAIR.first;
/// The longest that an account is locked for everyone.
pub const MAX_ACCOUNT_LOCK: Duration = ACCOUNT.max;

/// What [`Throttle::reserve`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Check the password, then settle the attempt.
    Go(Attempt),
    /// Refused: too many wrong passwords; try again after this long.
    Locked(Duration),
    /// Refused: as many attempts as may run at once are being checked.
    Busy,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Failed,
    Succeeded,
    /// The password was never checked.
    Released,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Failed => "fail",
            Outcome::Succeeded => "ok",
            Outcome::Released => "release",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    count: u32,
    in_flight: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// The sign-in throttle, in this process or shared through Redis.
pub struct Throttle {
    local: Mutex<HashMap<String, Entry>>,
    link: Option<RedisLink>,
    next_id: AtomicU64,
    /// Tells reservations of this process apart in Redis.
    process: String,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("shared", &self.link.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(None)
    }
}

/// A reserved attempt. Settle it with [`Attempt::failed`],
/// [`Attempt::succeeded`] or [`Attempt::release`]; one dropped unsettled
/// (the request was abandoned) counts as a failure.
#[derive(Debug)]
pub struct Attempt {
    throttle: Arc<Throttle>,
    keys: Box<Keys>,
    id: String,
    /// Reserved in Redis (else in this process).
    shared: bool,
    settled: bool,
}

impl Attempt {
    /// The password was wrong (or the name unknown).
    pub async fn failed(mut self) {
        self.settled = true;
        self.throttle.settle(&self, Outcome::Failed).await;
    }

    /// The password was right: the account's counts are cleared.
    pub async fn succeeded(mut self) {
        self.settled = true;
        self.throttle.settle(&self, Outcome::Succeeded).await;
    }

    /// The password was not checked (the server was busy, or failed).
    pub async fn release(mut self) {
        self.settled = true;
        self.throttle.settle(&self, Outcome::Released).await;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if !self.shared {
            self.throttle
                .settle_here(&self.keys, Outcome::Failed, true, Instant::now());
            return;
        }
        let orphan = Attempt {
            throttle: self.throttle.clone(),
            keys: self.keys.clone(),
            id: std::mem::take(&mut self.id),
            shared: true,
            settled: true,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    orphan.throttle.settle(&orphan, Outcome::Failed).await;
                });
            }
            // No runtime to reach Redis from: count the failure here; the
            // reservation in Redis expires by itself.
            Err(_) => {
                orphan
                    .throttle
                    .settle_here(&orphan.keys, Outcome::Failed, false, Instant::now());
            }
        }
    }
}

/// KEYS: a hash (count, until) and a sorted set of reservations per count.
/// ARGV: now (ms since the epoch), the attempt's id, its reservation's
/// deadline, then each count's free failures. Returns `{0, 0}` (reserved),
/// `{1, wait ms}` (locked) or `{2, 0}` (too many in flight).
const RESERVE: &str = r#"
local now = tonumber(ARGV[1])
local locked = 0
local busy = false
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local v = redis.call('HMGET', h, 'count', 'until')
  local count = tonumber(v[1] or '0')
  local untl = tonumber(v[2] or '0')
  if untl > now then
    if untl - now > locked then locked = untl - now end
  else
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    local allowed = tonumber(ARGV[3 + i]) - count
    if allowed < 1 then allowed = 1 end
    if redis.call('ZCARD', z) >= allowed then busy = true end
  end
end
if locked > 0 then return {1, string.format('%.0f', locked)} end
if busy then return {2, '0'} end
for i = 1, #KEYS / 2 do
  redis.call('ZADD', KEYS[2 * i], ARGV[3], ARGV[2])
  redis.call('PEXPIRE', KEYS[2 * i], math.max(1, tonumber(ARGV[3]) - now))
end
return {0, '0'}
"#;

/// KEYS: as for RESERVE. ARGV: now, the attempt's id, the outcome (`fail`,
/// `ok`, `release`), how long failures are remembered (ms), then four per
/// count: free failures, first lock (ms), longest lock (ms), and whether a
/// good sign-in clears it (`1`/`0`).
const SETTLE: &str = r#"
local now = tonumber(ARGV[1])
local outcome = ARGV[3]
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 4 + (i - 1) * 4
  redis.call('ZREM', z, ARGV[2])
  if outcome == 'fail' then
    local count = redis.call('HINCRBY', h, 'count', 1)
    local free = tonumber(ARGV[a + 1])
    if count >= free then
      local d = count - free
      if d > 20 then d = 20 end
      local lock = tonumber(ARGV[a + 2]) * (2 ^ d)
      local max = tonumber(ARGV[a + 3])
      if lock > max then lock = max end
      redis.call('HSET', h, 'until', string.format('%.0f', now + lock))
    end
    redis.call('PEXPIRE', h, ARGV[4])
  elseif outcome == 'ok' and ARGV[a + 4] == '1' then
    redis.call('DEL', h)
  end
end
return 0
"#;

static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));
static SETTLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE));

fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lock_for(rule: Rule, count: u32) -> Option<Duration> {
    (count >= rule.free).then(|| {
        let doublings = (count - rule.free).min(20);
        (rule.first * (1u32 << doublings)).min(rule.max)
    })
}

impl Throttle {
    /// A throttle shared through Redis when `link` is given, else kept in
    /// this process.
    pub fn new(link: Option<RedisLink>) -> Throttle {
        let mut bytes = [0u8; 8];
        let process = match getrandom::fill(&mut bytes) {
            Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            Err(_) => format!("{}-{}", std::process::id(), epoch_ms()),
        };
        Throttle {
            local: Mutex::default(),
            link,
            next_id: AtomicU64::new(0),
            process,
        }
    }

    /// Reserves an attempt to sign in to `account` from `address`, or says
    /// why not.
    pub async fn reserve(self: &Arc<Self>, account: &str, address: &str) -> Admission {
        let keys = keys(account, address);
        if let Some(link) = &self.link {
            let id = format!(
                "{}:{}",
                self.process,
                self.next_id.fetch_add(1, Ordering::Relaxed)
            );
            match self.reserve_shared(link, &keys, &id).await {
                Ok((0, _)) => {
                    return Admission::Go(Attempt {
                        throttle: self.clone(),
                        keys: Box::new(keys),
                        id,
                        shared: true,
                        settled: false,
                    });
                }
                Ok((1, wait_ms)) => {
                    return Admission::Locked(Duration::from_millis(wait_ms.max(1) as u64));
                }
                Ok(_) => return Admission::Busy,
                Err(e) => link.fell_back("dashboard sign-in throttle", &e),
            }
        }
        self.reserve_here(keys)
    }

    async fn reserve_shared(
        &self,
        link: &RedisLink,
        keys: &Keys,
        id: &str,
    ) -> Result<(i64, i64), RedisError> {
        let now = epoch_ms();
        let mut invocation = RESERVE_SCRIPT.prepare_invoke();
        for (key, _) in keys {
            invocation
                .key(link.key(key))
                .key(link.key(&format!("{key}:inflight")));
        }
        invocation
            .arg(now)
            .arg(id)
            .arg(now + RESERVATION_TTL.as_millis() as i64);
        for (_, rule) in keys {
            invocation.arg(rule.free);
        }
        let (code, wait): (i64, i64) = link.script(&invocation).await?;
        Ok((code, wait))
    }

    fn reserve_here(self: &Arc<Self>, keys: Keys) -> Admission {
        let now = Instant::now();
        let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, e| e.in_flight > 0 || now.duration_since(e.last) < FORGET_AFTER);
        let mut locked = Duration::ZERO;
        let mut busy = false;
        for (key, rule) in &keys {
            let Some(e) = map.get(key) else { continue };
            match e.locked_until {
                Some(until) if until > now => locked = locked.max(until - now),
                _ => busy |= e.in_flight >= rule.free.saturating_sub(e.count).max(1),
            }
        }
        if locked > Duration::ZERO {
            return Admission::Locked(locked);
        }
        if busy {
            return Admission::Busy;
        }
        for (key, _) in &keys {
            let e = map.entry(key.clone()).or_insert(Entry {
                count: 0,
                in_flight: 0,
                last: now,
                locked_until: None,
            });
            e.in_flight += 1;
            e.last = now;
        }
        drop(map);
        Admission::Go(Attempt {
            throttle: self.clone(),
            keys: Box::new(keys),
            id: String::new(),
            shared: false,
            settled: false,
        })
    }

    async fn settle(&self, attempt: &Attempt, outcome: Outcome) {
        if attempt.shared
            && let Some(link) = &self.link
        {
            match self.settle_shared(link, attempt, outcome).await {
                Ok(()) => return,
                Err(e) => {
                    link.fell_back("dashboard sign-in throttle", &e);
                    // The reservation in Redis expires by itself; the
                    // failure is counted here meanwhile.
                    self.settle_here(&attempt.keys, outcome, false, Instant::now());
                    return;
                }
            }
        }
        self.settle_here(&attempt.keys, outcome, true, Instant::now());
    }

    async fn settle_shared(
        &self,
        link: &RedisLink,
        attempt: &Attempt,
        outcome: Outcome,
    ) -> Result<(), RedisError> {
        let mut invocation = SETTLE_SCRIPT.prepare_invoke();
        for (key, _) in attempt.keys.iter() {
            invocation
                .key(link.key(key))
                .key(link.key(&format!("{key}:inflight")));
        }
        invocation
            .arg(epoch_ms())
            .arg(&attempt.id)
            .arg(outcome.word())
            .arg(FORGET_AFTER.as_millis() as u64);
        for (_, rule) in attempt.keys.iter() {
            invocation
                .arg(rule.free)
                .arg(rule.first.as_millis() as u64)
                .arg(rule.max.as_millis() as u64)
                .arg(if rule.cleared_by_success { 1 } else { 0 });
        }
        let _: i64 = link.script(&invocation).await?;
        Ok(())
    }

    /// Settles an attempt in this process; `reserved` says whether it holds
    /// a place here.
    fn settle_here(&self, keys: &Keys, outcome: Outcome, reserved: bool, now: Instant) {
        let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
        for (key, rule) in keys {
            let e = map.entry(key.clone()).or_insert(Entry {
                count: 0,
                in_flight: 0,
                last: now,
                locked_until: None,
            });
            if reserved {
                e.in_flight = e.in_flight.saturating_sub(1);
            }
            match outcome {
                Outcome::Failed => {
                    e.count += 1;
                    e.last = now;
                    if let Some(lock) = lock_for(*rule, e.count) {
                        e.locked_until = Some(now + lock);
                    }
                }
                Outcome::Succeeded if rule.cleared_by_success => {
                    e.count = 0;
                    e.locked_until = None;
                }
                Outcome::Succeeded | Outcome::Released => {}
            }
        }
    }

    /// How long `account` from `address` must still wait, if it is locked
    /// in this process (for tests and status output).
    pub fn wait_here(&self, account: &str, address: &str) -> Option<Duration> {
        let now = Instant::now();
        let map = self.local.lock().unwrap_or_else(|e| e.into_inner());
        keys(account, address)
            .iter()
            .filter_map(|(k, _)| map.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }
}

/// The three counts of an attempt, with their rules.
type Keys = [(String, Rule); 3];

/// The three counts of an attempt. Names that no account can have share one
/// key, so made-up names do not grow the table.
fn keys(account: &str, address: &str) -> Keys {
    let account = if super::accounts::valid_name(account) {
        account.to_lowercase()
    } else {
        "*".to_string()
    };
    [
        (format!("signin:pair:{account}|{address}"), PAIR),
        (format!("signin:address:{address}"), ADDRESS),
        (format!("signin:account:{account}"), ACCOUNT),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(a: Admission) -> Attempt {
        match a {
            Admission::Go(a) => a,
            other => panic!("refused: {other:?}"),
        }
    }

    #[tokio::test]
    async fn repeated_failures_lock_the_account_from_that_address_for_longer_each_time() {
        let t = Arc::new(Throttle::default());
        for _ in 0..FREE_FAILURES_PER_ACCOUNT - 1 {
            go(t.reserve("alice", "10.0.0.1").await).failed().await;
            assert_eq!(t.wait_here("alice", "10.0.0.1"), None);
        }
        go(t.reserve("alice", "10.0.0.1").await).failed().await;
        let Admission::Locked(first) = t.reserve("Alice", "10.0.0.1").await else {
            panic!("locked after the free attempts");
        };
        assert!(first <= FIRST_LOCK && first > FIRST_LOCK / 2, "{first:?}");
        // The same account from another address, and another account from
        // this one, are not locked.
        go(t.reserve("alice", "10.0.0.2").await).release().await;
        go(t.reserve("bob", "10.0.0.1").await).release().await;
        // A further failure (after the lock) locks for twice as long.
        t.settle_here(
            &keys("alice", "10.0.0.1"),
            Outcome::Failed,
            false,
            Instant::now(),
        );
        let second = t.wait_here("alice", "10.0.0.1").unwrap();
        assert!(second > FIRST_LOCK, "{second:?}");
        assert!(valid("alice.b-2_x") && !valid("a b") && !valid(""));
    }

    fn valid(name: &str) -> bool {
        super::super::accounts::valid_name(name)
    }

    #[tokio::test]
    async fn attempts_in_flight_count_so_a_burst_cannot_pass_together() {
        let t = Arc::new(Throttle::default());
        // A hundred attempts at once on one account from one address: only
        // as many as it has free failures get through.
        let mut admitted = Vec::new();
        let mut busy = 0;
        for _ in 0..100 {
            match t.reserve("alice", "10.0.0.1").await {
                Admission::Go(a) => admitted.push(a),
                Admission::Busy => busy += 1,
                Admission::Locked(_) => panic!("nothing failed yet"),
            }
        }
        assert_eq!(admitted.len(), FREE_FAILURES_PER_ACCOUNT as usize);
        assert_eq!(busy, 100 - FREE_FAILURES_PER_ACCOUNT as usize);
        for a in admitted {
            a.failed().await;
        }
        assert!(matches!(
            t.reserve("alice", "10.0.0.1").await,
            Admission::Locked(_)
        ));
        // Many accounts from one address: the address's free failures bound
        // them.
        let mut admitted = Vec::new();
        for i in 0..100 {
            if let Admission::Go(a) = t.reserve(&format!("user{i}"), "10.0.0.9").await {
                admitted.push(a);
            }
        }
        assert_eq!(admitted.len(), FREE_FAILURES_PER_ADDRESS as usize);
        // An abandoned attempt counts as a failure; a released one does not.
        let mut it = admitted.into_iter();
        drop(it.next());
        for a in it {
            a.release().await;
        }
        let map = t.local.lock().unwrap();
        let e = map.get("signin:address:10.0.0.9").unwrap();
        assert_eq!((e.count, e.in_flight), (1, 0));
    }

    #[tokio::test]
    async fn a_flood_from_one_address_keeps_the_owner_out_for_a_short_while_at_most() {
        let t = Arc::new(Throttle::default());
        // Failures on alice from many addresses lock alice everywhere, but
        // never for longer than a minute.
        for i in 0..30 {
            let address = format!("10.1.0.{i}");
            for _ in 0..3 {
                if let Admission::Go(a) = t.reserve("alice", &address).await {
                    a.failed().await;
                }
            }
        }
        let wait = t.wait_here("alice", "192.168.0.1").expect("locked for all");
        assert!(wait <= MAX_ACCOUNT_LOCK, "{wait:?}");
        // A good sign-in clears the account's counts but not the address's.
        t.settle_here(
            &keys("bob", "10.2.0.1"),
            Outcome::Failed,
            false,
            Instant::now(),
        );
        let a = go(t.reserve("bob", "10.2.0.1").await);
        a.succeeded().await;
        let map = t.local.lock().unwrap();
        assert_eq!(map["signin:account:bob"].count, 0);
        assert_eq!(map["signin:pair:bob|10.2.0.1"].count, 0);
        assert_eq!(map["signin:address:10.2.0.1"].count, 1);
    }
}
