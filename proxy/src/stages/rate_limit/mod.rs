//! Rate limit: runs after authorize, before the cache and the action, for rules whose policy
//! has a `rateLimit` section (other rules skip it).
//!
//! - [`gcra`]: the algorithm (pure).
//! - [`local`]: counters in this proxy's memory, bounded, kept across reloads.
//! - [`redis`]: counters shared by the gateway's proxies, in Redis.
//!
//! Buckets are per Route and per value of the limit's key. Every response of a limited route
//! carries `RateLimit-Policy` and `RateLimit` (IETF httpapi draft, structured fields); a refused
//! request gets 429 problem+json with `Retry-After`.

pub mod gcra;
pub mod local;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;

use frontdesk_snapshot::{self as snap, LimitKey, LimitScope};
use http::{HeaderMap, HeaderName, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::client_ip::TrustedProxies;
use crate::identity::{Identity, lookup};
use crate::metrics::{LimitDecision, LimitLabels, Metrics, RouteId};
use crate::problem::{Problem, ProblemKind};
use local::LocalLimiter;
use redis::{Bucket, RedisStore};

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const NS: u64 = 1_000_000_000;

/// What outlives snapshots: local counters, the Redis connections, the trusted proxy ranges.
pub struct RateLimitShared {
    pub local: local::Registry,
    pub redis: Option<Arc<RedisStore>>,
    pub trusted: TrustedProxies,
    /// Keeps the global buckets of different gateways apart in a shared Redis.
    pub gateway: String,
}

impl Default for RateLimitShared {
    fn default() -> Self {
        RateLimitShared {
            local: local::Registry::new(local::MAX_KEYS),
            redis: None,
            trusted: TrustedProxies::default(),
            gateway: "default".into(),
        }
    }
}

struct LimitRuntime {
    spec: snap::Limit,
    local: Option<Arc<LocalLimiter>>,
    /// `frontdesk:rl:<gateway>:<digest of the limit>:` for Global limits.
    global_prefix: String,
    interval_us: u64,
}

struct Decisions {
    allowed: Counter,
    limited: Counter,
    failed_open: Counter,
    failed_closed: Counter,
}

pub struct RateLimitRuntime {
    limits: Vec<LimitRuntime>,
    /// Indexes of the Global limits.
    globals: Vec<usize>,
    redis: Option<Arc<RedisStore>>,
    allow_on_store_failure: bool,
    trusted: TrustedProxies,
    policy_header: HeaderValue,
    decisions: Decisions,
    redis_duration: Histogram,
    policy: Arc<str>,
    /// When a store failure was last logged (ms on `logged_base`): at most one line a second.
    last_logged: std::sync::atomic::AtomicU64,
    logged_base: Instant,
}

/// What the stage needs to know of the request.
pub struct Request<'a> {
    /// `namespace/route`: buckets are per Route.
    pub route: &'a str,
    pub peer: IpAddr,
    pub headers: &'a HeaderMap,
    pub identity: Option<&'a Identity>,
}

/// Allowed, with the headers for the response.
pub type Headers = Vec<(HeaderName, HeaderValue)>;

impl RateLimitRuntime {
    pub fn build(
        policy: &str,
        cfg: &snap::RateLimit,
        shared: &RateLimitShared,
        metrics: &Metrics,
    ) -> Result<Self, String> {
        let limits: Vec<LimitRuntime> = cfg
            .limits
            .iter()
            .map(|l| {
                let digest = Sha256::digest(serde_json::to_vec(l).unwrap_or_default());
                LimitRuntime {
                    local: (l.scope == LimitScope::Local).then(|| shared.local.get(l)),
                    global_prefix: format!(
                        "frontdesk:rl:{}:{}:",
                        shared.gateway,
                        hex(&digest[..8])
                    ),
                    interval_us: (l.period_ms.saturating_mul(1000) / l.requests.max(1)).max(1),
                    spec: l.clone(),
                }
            })
            .collect();
        if limits.iter().any(|l| l.spec.scope == LimitScope::Global) && shared.redis.is_none() {
            tracing::error!(%policy, "a Global rate limit needs --redis-url; its onStoreFailure applies to every request");
        }
        let policy_header = limits
            .iter()
            .map(|l| {
                format!(
                    "\"{}\";q={};w={}",
                    l.spec.name,
                    l.spec.requests,
                    l.spec.period_ms.div_ceil(1000).max(1)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let key: Arc<str> = Arc::from(policy);
        let counter = |decision| {
            metrics
                .limit_decisions
                .get_or_create(&LimitLabels {
                    policy: RouteId(key.clone()),
                    decision,
                })
                .clone()
        };
        let globals = (0..limits.len())
            .filter(|i| limits[*i].spec.scope == LimitScope::Global)
            .collect();
        Ok(RateLimitRuntime {
            globals,
            decisions: Decisions {
                allowed: counter(LimitDecision::allowed),
                limited: counter(LimitDecision::limited),
                failed_open: counter(LimitDecision::store_failed_open),
                failed_closed: counter(LimitDecision::store_failed_closed),
            },
            limits,
            redis: shared.redis.clone(),
            allow_on_store_failure: cfg.on_store_failure == snap::FailureMode::Allow,
            trusted: shared.trusted.clone(),
            policy_header: HeaderValue::from_str(&policy_header).map_err(|e| e.to_string())?,
            redis_duration: metrics.redis_duration.clone(),
            policy: key,
            last_logged: std::sync::atomic::AtomicU64::new(0),
            logged_base: Instant::now(),
        })
    }

    /// Decides for one request: `Ok` with the RateLimit headers, or the 429 / 503 problem.
    pub async fn check(&self, req: Request<'_>) -> Result<Headers, Problem> {
        let keys: Vec<Vec<u8>> = self
            .limits
            .iter()
            .map(|l| bucket_key(&l.spec.key, &req, &self.trusted))
            .collect();
        // (remaining, reset in ns) per limit, as far as known.
        let mut state: Vec<(u64, u64)> = vec![(0, 0); self.limits.len()];
        let mut taken: Vec<(&LocalLimiter, u64)> = Vec::new();
        let mut refused: Option<u64> = None;
        for (i, l) in self.limits.iter().enumerate() {
            let Some(local) = &l.local else { continue };
            let (bucket, o) = local.acquire(local.bucket(&keys[i]), local.now());
            state[i] = (o.remaining, o.reset);
            if o.allowed {
                taken.push((local, bucket));
            } else {
                refused = Some(o.retry_after);
                break;
            }
        }
        let globals = &self.globals;
        if refused.is_none() && !globals.is_empty() {
            match self.decide_globally(globals, &keys).await {
                Ok(outcome) => {
                    for (j, &i) in globals.iter().enumerate() {
                        let (remaining, reset_us) = outcome.limits[j];
                        state[i] = (remaining, reset_us.saturating_mul(1000));
                    }
                    if !outcome.allowed {
                        refused = Some(outcome.retry_after_us.saturating_mul(1000));
                    }
                }
                Err(why) if self.allow_on_store_failure => {
                    self.decisions.failed_open.inc();
                    if self.log_now() {
                        tracing::warn!(policy = %self.policy, %why, "global rate limit undecided; onStoreFailure Allow lets requests through (logged at most once a second; see frontdesk_ratelimit_decisions_total)");
                    }
                    return Ok(self.headers(&state, globals));
                }
                Err(why) => {
                    self.decisions.failed_closed.inc();
                    if self.log_now() {
                        tracing::warn!(policy = %self.policy, %why, "global rate limit undecided; onStoreFailure Deny refuses requests (logged at most once a second; see frontdesk_ratelimit_decisions_total)");
                    }
                    refund(&taken);
                    return Err(Problem::new(
                        ProblemKind::RateLimitUnavailable,
                        "the rate limit cannot be checked right now",
                    ));
                }
            }
        }
        let headers = self.headers(&state, &[]);
        match refused {
            None => {
                self.decisions.allowed.inc();
                Ok(headers)
            }
            Some(wait) => {
                refund(&taken);
                self.decisions.limited.inc();
                let secs = wait.div_ceil(NS).max(1);
                let mut p = Problem::new(
                    ProblemKind::RateLimited,
                    format!("too many requests; retry in {secs} s"),
                );
                p.headers.extend(headers);
                p.headers
                    .push((http::header::RETRY_AFTER, HeaderValue::from(secs)));
                Err(p)
            }
        }
    }

    /// True at most once a second: store failures come with every request while Redis is down.
    fn log_now(&self) -> bool {
        use std::sync::atomic::Ordering;
        let now = u64::try_from(self.logged_base.elapsed().as_millis()).unwrap_or(u64::MAX) + 1000;
        let last = self.last_logged.load(Ordering::Relaxed);
        now.saturating_sub(last) >= 1000
            && self
                .last_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    async fn decide_globally(
        &self,
        globals: &[usize],
        keys: &[Vec<u8>],
    ) -> Result<redis::GlobalOutcome, String> {
        let store = self.redis.as_ref().ok_or("no --redis-url")?;
        let names: Vec<String> = globals
            .iter()
            .map(|&i| {
                format!(
                    "{}{}",
                    self.limits[i].global_prefix,
                    hex(&Sha256::digest(&keys[i])[..16])
                )
            })
            .collect();
        let buckets: Vec<Bucket<'_>> = globals
            .iter()
            .zip(&names)
            .map(|(&i, key)| Bucket {
                key,
                interval_us: self.limits[i].interval_us,
                burst: self.limits[i].spec.burst,
            })
            .collect();
        let started = Instant::now();
        let result = store.decide(&buckets).await;
        self.redis_duration.observe(started.elapsed().as_secs_f64());
        result
    }

    /// RateLimit-Policy and RateLimit; limits listed in `unknown` (undecided) are left out of
    /// RateLimit.
    fn headers(&self, state: &[(u64, u64)], unknown: &[usize]) -> Headers {
        use std::fmt::Write;
        let mut now = String::with_capacity(32 * self.limits.len());
        for (i, l) in self.limits.iter().enumerate() {
            if unknown.contains(&i) {
                continue;
            }
            if !now.is_empty() {
                now.push_str(", ");
            }
            let (remaining, reset) = state[i];
            let _ = write!(
                now,
                "\"{}\";r={remaining};t={}",
                l.spec.name,
                reset.div_ceil(NS)
            );
        }
        let mut h = vec![(RATELIMIT_POLICY, self.policy_header.clone())];
        if let Ok(v) = HeaderValue::from_str(&now)
            && !now.is_empty()
        {
            h.push((RATELIMIT, v));
        }
        h
    }
}

fn refund(taken: &[(&LocalLimiter, u64)]) {
    for (limiter, bucket) in taken {
        limiter.refund(*bucket);
    }
}

/// The bucket identity of a request for one limit: the route, then the key's value. Requests
/// without a value get the route's "missing" bucket.
fn bucket_key(key: &LimitKey, req: &Request<'_>, trusted: &TrustedProxies) -> Vec<u8> {
    let mut out = req.route.as_bytes().to_vec();
    out.push(0);
    let value: Option<Vec<u8>> = match key {
        LimitKey::Route => Some(Vec::new()),
        LimitKey::ClientIp => Some(match trusted.client(req.peer, req.headers) {
            IpAddr::V4(ip) => ip.octets().to_vec(),
            IpAddr::V6(ip) => ip.octets().to_vec(),
        }),
        LimitKey::Consumer => req
            .identity
            .and_then(|i| i.consumer.as_deref())
            .map(|c| c.as_bytes().to_vec()),
        LimitKey::Header { name } => req
            .headers
            .get(name.as_str())
            .map(|v| v.as_bytes().to_vec()),
        LimitKey::Claim { name } => req
            .identity
            .and_then(|i| i.claims.as_deref())
            .and_then(|c| lookup(c, name))
            .map(|v| match v {
                serde_json::Value::String(s) => s.as_bytes().to_vec(),
                other => other.to_string().into_bytes(),
            }),
    };
    match value {
        Some(v) => {
            out.push(b'v');
            out.extend(v);
        }
        None => out.push(b'-'),
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
