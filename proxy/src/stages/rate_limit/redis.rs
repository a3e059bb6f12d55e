//! Global counters in Redis: the same GCRA as [`super::gcra`], run by one Lua script per
//! decision (EVALSHA, one round trip; every limit of the request at once, atomically), on the
//! Redis server's clock so proxies on machines with different clocks agree.
//!
//! Connections are multiplexed `ConnectionManager`s, created lazily (a proxy starts while Redis
//! is down) that reconnect by themselves; requests are spread over a few of them. Every call
//! has a deadline; a failure is the caller's to handle (the policy's `onStoreFailure`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    script: redis::Script,
    timeout: Duration,
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
    /// Connections are opened on first use; must be called inside a Tokio runtime. A
    /// `rediss://` URL speaks TLS, verified against `ca` (PEM; `--redis-ca-file`) or, without
    /// it, the system's trusted roots.
    pub fn new(
        url: &str,
        timeout: Duration,
        connections: usize,
        ca: Option<Vec<u8>>,
    ) -> Result<Self, String> {
        if let Some(ca) = &ca {
            use rustls_pki_types::{CertificateDer, pem::PemObject};
            let certs = CertificateDer::pem_slice_iter(ca)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--redis-ca-file: not PEM: {e}"))?;
            if certs.is_empty() {
                return Err("--redis-ca-file holds no PEM certificate".into());
            }
        }
        let client = match ca {
            Some(ca) if url.starts_with("rediss://") => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                },
            ),
            Some(_) => return Err("--redis-ca-file needs a rediss:// --redis-url".into()),
            None => redis::Client::open(url),
        }
        .map_err(|e| format!("--redis-url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let connections = (0..connections.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("redis: {e}"))?;
        Ok(RedisStore {
            connections,
            next: AtomicUsize::new(0),
            script: redis::Script::new(SCRIPT),
            timeout,
        })
    }

    /// One decision for all of `buckets`, in one round trip.
    pub async fn decide(&self, buckets: &[Bucket<'_>]) -> Result<GlobalOutcome, String> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let mut conn = self.connections[i].clone();
        let mut call = self.script.prepare_invoke();
        for b in buckets {
            call.key(b.key).arg(b.interval_us).arg(b.burst);
        }
        let reply: Vec<i64> = tokio::time::timeout(self.timeout, call.invoke_async(&mut conn))
            .await
            .map_err(|_| format!("no answer from Redis within {:?}", self.timeout))?
            .map_err(|e| format!("Redis: {e}"))?;
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
