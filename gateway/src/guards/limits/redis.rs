//! The Redis limiter: one Lua script per check, run atomically by Redis,
//! so that any number of replicas share one limit exactly. The script
//! checks every rule of a request and takes from all of them only if all
//! pass; a second script settles reservations after the call. Both are
//! sent by hash (EVALSHA) and reloaded by the client where Redis lost them
//! (after a restart).

use std::sync::LazyLock;

use futures_util::future::BoxFuture;
use redis::Script;

use super::{Change, Check, LimitBackend, Rule, Verdict};
use crate::guards::redis_link::{RedisError, RedisLink};

/// KEYS: one per rule. ARGV: now (µs), then four per rule:
/// `r, interval_us, period_us, cost` (GCRA) or `b, limit_micros, retry_us, -`
/// (budget). Returns `{0, 0}` when admitted, else `{rule index (1-based),
/// retry after µs}`. Times are whole microseconds in doubles (exact below 2^53).
const CHECK: &str = r#"
local now = tonumber(ARGV[1])
local new = {}
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 4
  if ARGV[a + 1] == 'r' then
    local interval = tonumber(ARGV[a + 2])
    local period = tonumber(ARGV[a + 3])
    local cost = tonumber(ARGV[a + 4])
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    local nt = tat + cost * interval
    if nt - now > period then
      return {i, string.format('%.0f', math.ceil(nt - now - period))}
    end
    new[i] = nt
  else
    local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
    if spent >= tonumber(ARGV[a + 2]) then
      return {i, ARGV[a + 3]}
    end
  end
end
for i = 1, #KEYS do
  if new[i] then
    local ttl = math.ceil((new[i] - now) / 1000) + 1000
    redis.call('SET', KEYS[i], string.format('%.0f', new[i]), 'PX', ttl)
  end
end
return {0, '0'}
"#;

/// KEYS: one per change. ARGV: now (µs), then three per change:
/// `r, delta_us, -` (move a rate key's arrival time) or
/// `b, micros, ttl_ms` (add spend to a budget key).
const SETTLE: &str = r#"
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 3
  if ARGV[a + 1] == 'r' then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    local nt = tat + tonumber(ARGV[a + 2])
    if nt <= now then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], string.format('%.0f', nt), 'PX', math.ceil((nt - now) / 1000) + 1000)
    end
  else
    redis.call('INCRBY', KEYS[i], ARGV[a + 2])
    redis.call('PEXPIRE', KEYS[i], ARGV[a + 3])
  end
end
return 0
"#;

static CHECK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CHECK));
static SETTLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE));

/// Limits kept in Redis, shared by every replica.
pub struct RedisLimits {
    link: RedisLink,
}

impl RedisLimits {
    /// Limits on this link.
    pub fn new(link: RedisLink) -> RedisLimits {
        RedisLimits { link }
    }
}

impl LimitBackend for RedisLimits {
    fn check<'a>(
        &'a self,
        now_us: i64,
        checks: &'a [Check],
    ) -> BoxFuture<'a, Result<Verdict, RedisError>> {
        Box::pin(async move {
            let mut invocation = CHECK_SCRIPT.prepare_invoke();
            invocation.arg(now_us);
            for check in checks {
                invocation.key(self.link.key(&check.key));
                match check.rule {
                    Rule::Rate {
                        interval_us,
                        period_us,
                        cost,
                    } => invocation
                        .arg("r")
                        .arg(interval_us)
                        .arg(period_us)
                        .arg(cost),
                    Rule::Budget {
                        limit_micros,
                        retry_us,
                    } => invocation.arg("b").arg(limit_micros).arg(retry_us).arg(0),
                };
            }
            let (index, retry): (usize, i64) = self.link.script(&invocation).await?;
            Ok((index > 0).then(|| (index - 1, retry)))
        })
    }

    fn settle<'a>(
        &'a self,
        now_us: i64,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<(), RedisError>> {
        Box::pin(async move {
            let mut invocation = SETTLE_SCRIPT.prepare_invoke();
            invocation.arg(now_us);
            for change in changes {
                match change {
                    Change::Rate { key, delta_us } => {
                        invocation.key(self.link.key(key));
                        invocation.arg("r").arg(delta_us.round()).arg(0)
                    }
                    Change::Spend {
                        key,
                        micros,
                        ttl_ms,
                    } => {
                        invocation.key(self.link.key(key));
                        invocation.arg("b").arg(*micros).arg(*ttl_ms)
                    }
                };
            }
            let _: i64 = self.link.script(&invocation).await?;
            Ok(())
        })
    }
}
