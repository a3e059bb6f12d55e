//! Global counters in Redis: the same GCRA as [`super::gcra`], run by one Lua script per
//! decision (EVALSHA, one round trip; every limit of the request at once, atomically), on the
//! Redis server's clock so proxies on machines with different clocks agree.
//!
//! The connections are the proxy's ([`crate::redis_client`]); a failure is the caller's to
//! handle (the policy's `onStoreFailure`).

use std::sync::Arc;

use crate::redis_client::Redis;

/// The decision: every limit must allow. Times in microseconds.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local state = {}
local retry = 0
for i = 1, n do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now < allow_at and allow_at - now > retry then retry = allow_at - now end
  state[i] = {tat, new_tat, interval, burst}
end
local out = {retry == 0 and 1 or 0, retry}
for i = 1, n do
  local tat, new_tat, interval, burst = state[i][1], state[i][2], state[i][3], state[i][4]
  if retry == 0 then
    redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
    out[#out + 1] = math.floor((now + burst * interval - new_tat) / interval)
    out[#out + 1] = new_tat - now
  else
    local left = math.floor((now + burst * interval - tat) / interval)
    if left < 0 or now < new_tat - burst * interval then left = 0 end
    out[#out + 1] = left
    out[#out + 1] = tat - now
  end
end
return out
"#;

pub struct RedisStore {
    redis: Arc<Redis>,
    script: redis::Script,
}

/// One limit's part of a global decision.
pub struct Bucket<'a> {
    pub key: &'a str,
    pub interval_us: u64,
    pub burst: u64,
}

/// What Redis decided: allowed, the wait when not, and each limit's (remaining, reset) with
/// times in microseconds.
pub struct GlobalOutcome {
    pub allowed: bool,
    pub retry_after_us: u64,
    pub limits: Vec<(u64, u64)>,
}

impl RedisStore {
    pub fn new(redis: Arc<Redis>) -> Self {
        RedisStore {
            redis,
            script: redis::Script::new(SCRIPT),
        }
    }

    /// One decision for all of `buckets`, in one round trip.
    pub async fn decide(&self, buckets: &[Bucket<'_>]) -> Result<GlobalOutcome, String> {
        let mut conn = self.redis.connection();
        let mut call = self.script.prepare_invoke();
        for b in buckets {
            call.key(b.key).arg(b.interval_us).arg(b.burst);
        }
        let reply: Vec<i64> = self.redis.within(call.invoke_async(&mut conn)).await?;
        if reply.len() != 2 + 2 * buckets.len() {
            return Err(format!(
                "unexpected reply from the rate limit script: {reply:?}"
            ));
        }
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(GlobalOutcome {
            allowed: reply[0] == 1,
            retry_after_us: u(reply[1]),
            limits: reply[2..].chunks(2).map(|c| (u(c[0]), u(c[1]))).collect(),
        })
    }
}
