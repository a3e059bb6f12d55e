//! Response cache: runs after the rate limit (a cached answer is never served to a client the
//! policy refuses) and before the request transforms and the action, for rules whose Policy
//! has a `cache` section; other rules skip it. Its answers take the respond path like any
//! other, so response header edits, CORS, RateLimit headers and the request id are on hits
//! too, and none of them is stored.
//!
//! - A `GET` (or `HEAD`) whose stored answer is fresh is answered from the store, with `Age`,
//!   or `304` when the request's conditions hold. A stale one is revalidated with the backend
//!   (a conditional request when it has validators; a `304` freshens it in place), or served
//!   while one background request refreshes it (`stale-while-revalidate`), or served when the
//!   backend fails (`stale-if-error`).
//! - A miss goes to the backend, one request per key at a time (the others wait for it and
//!   look again); a `GET`'s answer that a shared cache may keep is stored while it streams to
//!   the client, unless it outgrows the entry limit.
//! - `PUT`, `POST`, `DELETE` and `PATCH` that succeed remove what is stored for their URI.
//! - Every answer says what the cache did in `Cache-Status` (RFC 9211).
//!
//! - [`rfc9111`]: what HTTP caching says, as pure functions over requests' and responses'
//!   fields and the clock.
//! - [`key`]: what two requests must share to be answered by one stored answer.
//! - [`store`]: the memory, bounded by size, purged by key prefix or tag.
//! - [`stored`]: a stored answer, and the answers made from it.
//! - [`shared_tier`]: answers of `Global` sections in Redis too, shared by the proxies.
//! - `shared`: what outlives snapshots ([`CacheShared`]); `scope`: what ends every key.
//! - `pending`: a request on its way to the backend, and what becomes of the answer.
//! - `inflight` coalesces misses; `tee` stores a body while it streams.

pub mod key;
pub mod rfc9111;
pub mod shared_tier;
pub mod store;
pub mod stored;

mod inflight;
mod pending;
mod scope;
mod shared;
mod tee;

pub use pending::Pending;
use scope::config_fingerprint;
pub use scope::rule_scope;
use shared::Asked;
pub use shared::CacheShared;

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use frontdesk_snapshot as snap;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response};
use tokio::sync::OwnedSemaphorePermit;

use self::inflight::{Join, Leader};
use self::key::{KeyRules, QueryKey};
use self::rfc9111::{Audience, Freshness, Usable, varied_values};
use self::shared_tier::SharedTier;
use self::store::Missed;
use self::stored::Stored;
use crate::body::ProxyBody;

/// The longest a request waits for another of its key at the backend before it goes there
/// itself (nginx's `proxy_cache_lock_timeout`): a slow reader leading a key holds the others
/// back no longer.
const COALESCE_WAIT: Duration = Duration::from_secs(5);

/// The longest a background refresh may take, its answer's body included.
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(60);

/// Background refreshes (`stale-while-revalidate`) at once, per proxy; a stale answer served
/// while they are all busy is refreshed by a later request.
pub(super) const MAX_REFRESHES: usize = 64;

/// `Cache-Status`: what the cache did (RFC 9211).
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Names the tags an answer is purged by (`Cache-Tag: a, b`); not sent on to clients.
pub static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// The wall clock as tokio's clock moves it: paused in tests, like every other time the
/// request path reads.
pub fn now() -> SystemTime {
    static BASE: OnceLock<(SystemTime, tokio::time::Instant)> = OnceLock::new();
    let (wall, at) = BASE.get_or_init(|| (SystemTime::now(), tokio::time::Instant::now()));
    *wall + tokio::time::Instant::now().saturating_duration_since(*at)
}

/// A Policy's cache, built once per snapshot.
pub struct Cache {
    key: KeyRules,
    get: bool,
    head: bool,
    per_consumer: bool,
    default_ttl: Duration,
    max_ttl: Duration,
    stale_while_revalidate: Option<Duration>,
    stale_if_error: Option<Duration>,
    max_entry: usize,
    /// Answers are shared through Redis too.
    global: bool,
    /// Ends every key: answers stored under another configuration of the section are not
    /// found (they age out).
    config: String,
    shared: Arc<CacheShared>,
}

/// Where a request is for, besides its method, URI and fields.
pub struct At<'a> {
    /// Asked over TLS, the proxy's or a trusted proxy's in front (`X-Forwarded-Proto`).
    pub tls: bool,
    pub host: &'a str,
    pub port: Option<u16>,
    /// The canonical path.
    pub path: &'a str,
    pub consumer: Option<&'a str>,
    /// The rule's Policy authenticates requests (whatever carries the credential).
    pub authenticated: bool,
    /// The matched rule's [`rule_scope`]: two rules never share answers.
    pub rule: &'a str,
}

/// Where an unsafe method's request was for: what a `Location` or `Content-Location` of the
/// same origin in its answer is resolved against, to invalidate that URI too.
pub(crate) struct Origin {
    tls: bool,
    host: String,
    port: Option<u16>,
}

impl Cache {
    /// The URI part of the keys of `target` (a `Location` or `Content-Location` value) when it
    /// is of `origin`: a path, or an absolute URL naming the same host and port.
    fn same_origin_prefix(&self, origin: &Origin, target: &HeaderValue) -> Option<String> {
        let target = target.to_str().ok()?;
        // `//host/path` names another authority, not a path of this one.
        if target.starts_with("//") {
            return None;
        }
        let uri: http::Uri = target.parse().ok()?;
        if let Some(authority) = uri.authority() {
            let scheme = if origin.tls { "https" } else { "http" };
            if uri.scheme_str() != Some(scheme)
                || !authority.host().eq_ignore_ascii_case(&origin.host)
                || authority.port_u16() != origin.port
            {
                return None;
            }
        } else if !uri.path().starts_with('/') {
            return None;
        }
        let path = frontdesk_snapshot::path::normalize(uri.path()).ok()?;
        let none = HeaderMap::new();
        Some(self.key.uri_prefix(&key::Request {
            method: &Method::GET,
            scheme: if origin.tls { "https" } else { "http" },
            host: &origin.host,
            port: origin.port,
            path: &path,
            query: uri.query(),
            headers: &none,
        }))
    }
}

/// A key, and who its answers may be served to.
#[derive(Clone)]
struct Key {
    key: String,
    /// The length of its URI part (what an unsafe method's invalidation removes).
    uri: usize,
    audience: Audience,
}

impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        &self.key
    }
}

/// What the stage decided.
pub enum Lookup {
    /// Answered from the store, with the `Cache-Status` to say.
    Answer(Response<ProxyBody>, HeaderValue),
    /// Answered stale from the store: send this request again in the background, with the
    /// [`Refresh`] in its extensions, to refresh it (`stale-while-revalidate`), holding the
    /// permit until it is done.
    AnswerAndRefresh(
        Response<ProxyBody>,
        HeaderValue,
        Refresh,
        OwnedSemaphorePermit,
    ),
    /// Go on to the backend (with the validators `Pending::send` put in its fields); [`Pending::complete`]
    /// with its answer.
    Forward(Box<Pending>),
    /// The request said `only-if-cached`, and nothing stored may answer it: 504.
    NotCached(HeaderValue),
}

/// A background refresh of a stale answer: the request that carries it goes to the backend
/// whatever is stored, as the only request of its key.
#[derive(Clone)]
pub struct Refresh(Arc<parking_lot::Mutex<Option<Refreshing>>>);

/// What a refresh holds until its request takes it: the lead of its key, and what it
/// revalidates.
type Refreshing = (Leader, Arc<Stored>);

impl Cache {
    pub fn build(spec: &snap::Cache, shared: &Arc<CacheShared>) -> Result<Self, String> {
        spec.check()
            .map_err(|(f, why)| format!("cache.{f}: {why}"))?;
        if spec.global && shared.tier.is_none() {
            tracing::error!("a Global cache needs --redis-url; each proxy caches on its own");
        }
        let vary_headers = spec
            .vary_headers
            .iter()
            .map(|h| HeaderName::from_bytes(h.as_bytes()).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let query = match &spec.query {
            snap::CacheQuery::All => QueryKey::All,
            snap::CacheQuery::Ignore(names) => QueryKey::Ignore(names.clone()),
            snap::CacheQuery::Only(names) => QueryKey::Only(names.clone()),
        };
        Ok(Cache {
            key: KeyRules {
                query,
                vary_headers,
            },
            get: spec.methods.iter().any(|m| m == "GET"),
            head: spec.methods.iter().any(|m| m == "HEAD"),
            per_consumer: spec.per_consumer,
            default_ttl: Duration::from_millis(spec.ttl_ms),
            max_ttl: Duration::from_millis(spec.max_ttl_ms),
            stale_while_revalidate: spec.stale_while_revalidate_ms.map(Duration::from_millis),
            stale_if_error: spec.stale_if_error_ms.map(Duration::from_millis),
            max_entry: usize::try_from(spec.max_entry_bytes)
                .unwrap_or(usize::MAX)
                .min(shared.store.max_entry()),
            global: spec.global,
            config: config_fingerprint(spec),
            shared: shared.clone(),
        })
    }

    /// The stage: answers `head`'s request from the store, or says how it goes on (with the
    /// stored answer's validators added to `head` when it revalidates). Waits for a request
    /// of the same key at the backend, at most `wait` (and `COALESCE_WAIT`).
    pub async fn lookup(
        self: &Arc<Self>,
        head: &mut http::request::Parts,
        at: &At<'_>,
        wait: Duration,
    ) -> Lookup {
        let method = head.method.clone();
        let cached = (method == Method::GET && self.get) || (method == Method::HEAD && self.head);
        if !cached {
            let mut p = self.pending(head, None, "method", None);
            if is_unsafe(&method) {
                p.invalidate = Some(self.key.uri_prefix(&self.key_request(head, at)));
                p.origin = Some(Origin {
                    tls: at.tls,
                    host: at.host.to_string(),
                    port: at.port,
                });
            }
            return self.forward(p, head);
        }
        // Per consumer, but nobody to keep it for (an external check or a token without a
        // subject named none): the cache stays out of it.
        if self.per_consumer && at.authenticated && at.consumer.is_none() {
            return self.forward(self.pending(head, None, "bypass", None), head);
        }
        let key = self.key_of(head, at);
        if let Some(refresh) = head.extensions.remove::<Refresh>()
            && let Some((leader, stored)) = refresh.0.lock().take()
        {
            let mut p = self.pending(head, Some(key), "stale", None);
            p.leader = Some(leader);
            p.revalidate(stored);
            return self.forward(p, head);
        }
        let only_if_cached = rfc9111::CacheControl::parse(&head.headers).only_if_cached;
        let wait = wait.min(COALESCE_WAIT);
        let mut collapsed = false;
        let mut asked_shared = false;
        loop {
            let now = now();
            let mut p = match self.shared.store.lookup(&key, &head.headers) {
                Ok(stored) => match stored.freshness.usable(&head.headers, now) {
                    Usable::Fresh => {
                        self.shared.metrics.hit.inc();
                        let s = hit_status(&stored, now, collapsed, None);
                        return Lookup::Answer(stored.answer(&method, &head.headers, now), s);
                    }
                    Usable::StaleAccepted => {
                        self.shared.metrics.stale.inc();
                        let s = hit_status(&stored, now, collapsed, Some("max-stale"));
                        return Lookup::Answer(stored.answer(&method, &head.headers, now), s);
                    }
                    Usable::StaleWhileRevalidate => {
                        self.shared.metrics.stale.inc();
                        let s = hit_status(&stored, now, collapsed, Some("stale-while-revalidate"));
                        let answer = stored.answer(&method, &head.headers, now);
                        // One refresh per key at a time, by a GET (what is stored is a
                        // GET's), while the proxy has room for one.
                        if method != Method::GET {
                            return Lookup::Answer(answer, s);
                        }
                        let Ok(permit) = self.shared.refreshes.clone().try_acquire_owned() else {
                            return Lookup::Answer(answer, s);
                        };
                        return match self.shared.inflight.join(&key) {
                            Join::Lead(leader) => {
                                let refresh = Refresh(Arc::new(parking_lot::Mutex::new(Some((
                                    leader, stored,
                                )))));
                                Lookup::AnswerAndRefresh(answer, s, refresh, permit)
                            }
                            // Being refreshed already.
                            Join::Wait(_) => Lookup::Answer(answer, s),
                        };
                    }
                    Usable::Revalidate => {
                        // Fresh, but the request wants it checked (`no-cache`, `max-age=0`,
                        // `min-fresh`), or stale.
                        let fwd = if stored.freshness.age(now) < stored.freshness.lifetime
                            || rfc9111::CacheControl::parse(&head.headers).no_cache
                        {
                            "request"
                        } else {
                            "stale"
                        };
                        let mut p = self.pending(head, Some(key.clone()), fwd, None);
                        p.revalidate(stored);
                        p
                    }
                },
                Err(missed) => self.pending(
                    head,
                    Some(key.clone()),
                    match missed {
                        Missed::Key => "uri-miss",
                        Missed::Variant => "vary-miss",
                    },
                    None,
                ),
            };
            if only_if_cached {
                // The shared tier is a cache too.
                if p.stored.is_none()
                    && self
                        .ask_shared_tier_once(&mut asked_shared, &key, head)
                        .await
                {
                    continue;
                }
                return Lookup::NotCached(HeaderValue::from_static(
                    "frontdesk; fwd=miss; detail=only-if-cached",
                ));
            }
            // A HEAD's answer is never stored: nothing to wait for, nobody to make wait.
            if !p.storing || collapsed {
                return self.forward(p, head);
            }
            match self.shared.inflight.join(&key) {
                Join::Lead(leader) => {
                    // The leader asks the shared tier, once: what it has goes to memory, and
                    // the request (and those waiting for it) look again.
                    if p.stored.is_none()
                        && self
                            .ask_shared_tier_once(&mut asked_shared, &key, head)
                            .await
                    {
                        drop(leader);
                        continue;
                    }
                    p.leader = Some(leader);
                    return self.forward(p, head);
                }
                Join::Wait(rx) => {
                    self.shared.metrics.coalesced.inc();
                    collapsed = true;
                    if tokio::time::timeout(wait, inflight::wait(rx))
                        .await
                        .is_err()
                    {
                        return self.forward(p, head);
                    }
                    // Look again: the leader's answer may be stored (and may vary).
                }
            }
        }
    }

    /// `p` goes to the backend now.
    fn forward(&self, mut p: Pending, head: &mut http::request::Parts) -> Lookup {
        p.send(head);
        Lookup::Forward(Box::new(p))
    }

    /// For a `Global` section whose tier was not asked yet for this request (`asked`): asks
    /// it, once, and copies its answer to memory; whether it did.
    async fn ask_shared_tier_once(
        &self,
        asked: &mut bool,
        key: &str,
        head: &http::request::Parts,
    ) -> bool {
        let Some(tier) = self.shared.tier.as_ref().filter(|_| self.global && !*asked) else {
            return false;
        };
        *asked = true;
        self.load_from_shared_tier(tier, key, &head.headers).await
    }

    /// Copies the shared tier's answer for `key` to memory when it is for `request`; whether
    /// it did.
    async fn load_from_shared_tier(
        &self,
        tier: &SharedTier,
        key: &str,
        request: &HeaderMap,
    ) -> bool {
        match tier.get(key, now()).await {
            // Larger than this section stores: not what it would have written.
            Ok(Some(entry)) if entry.stored.body.len() > self.max_entry => {
                self.shared.metrics.shared_error.inc();
                false
            }
            Ok(Some(mut entry)) if varied_values(&entry.vary, request) == entry.values => {
                self.shared.metrics.shared_hit.inc();
                self.default_windows(&mut entry.stored.freshness);
                let size = entry.stored.body.len() + header_bytes(&entry.stored.headers);
                self.shared
                    .insert(key, entry.vary, request, entry.stored, size)
            }
            Ok(_) => false,
            Err(e) => {
                self.shared.metrics.shared_error.inc();
                tracing::debug!(error = %e, "the cache's shared tier could not be read");
                false
            }
        }
    }

    fn key_request<'h>(&self, head: &'h http::request::Parts, at: &At<'h>) -> key::Request<'h> {
        key::Request {
            method: &head.method,
            scheme: if at.tls { "https" } else { "http" },
            host: at.host,
            port: at.port,
            path: at.path,
            query: head.uri.query(),
            headers: &head.headers,
        }
    }

    fn key_of(&self, head: &http::request::Parts, at: &At<'_>) -> Key {
        let consumer = at.consumer.filter(|_| self.per_consumer);
        let (mut key, uri) = self.key.key_and_uri(&self.key_request(head, at), consumer);
        key.push(key::SEP);
        key.push_str(at.rule);
        key.push(key::SEP);
        key.push_str(&self.config);
        Key {
            key,
            uri,
            audience: if consumer.is_some() {
                Audience::OneConsumer
            } else if at.authenticated {
                Audience::Authenticated
            } else {
                Audience::Anyone
            },
        }
    }

    /// The clocks of an answer with `headers` asked for at `requested`, received at
    /// `received`: the Policy's lifetime when it says none, and its stale window when it sets
    /// none of its own.
    fn freshness(
        &self,
        headers: &HeaderMap,
        requested: SystemTime,
        received: SystemTime,
    ) -> Freshness {
        let mut f = Freshness::of(headers, requested, received, self.default_ttl, self.max_ttl);
        self.default_windows(&mut f);
        f
    }

    /// The Policy's stale windows, when the answer sets none of its own.
    fn default_windows(&self, f: &mut Freshness) {
        if f.directives.stale_while_revalidate.is_none() {
            f.directives.stale_while_revalidate = self.stale_while_revalidate.map(|d| d.as_secs());
        }
        if f.directives.stale_if_error.is_none() {
            f.directives.stale_if_error = self.stale_if_error.map(|d| d.as_secs());
        }
    }

    /// A request going on to the backend; `key` when its method is cached.
    fn pending(
        self: &Arc<Self>,
        head: &http::request::Parts,
        key: Option<Key>,
        fwd: &'static str,
        invalidate: Option<String>,
    ) -> Pending {
        let storing = head.method == Method::GET && key.is_some();
        let cached = key.is_some();
        let Key { key, uri, audience } = key.unwrap_or(Key {
            key: String::new(),
            uri: 0,
            audience: Audience::Anyone,
        });
        Pending {
            cache: self.clone(),
            audience,
            key,
            uri,
            // A HEAD's too: a 304 to its revalidation freshens what GETs are answered from.
            request: if cached {
                head.headers.clone()
            } else {
                HeaderMap::new()
            },
            method: head.method.clone(),
            requested: now(),
            stored: None,
            validators: Vec::new(),
            revalidating: false,
            storing,
            leader: None,
            fwd,
            invalidate,
            origin: None,
        }
    }
}

/// Methods that change what they address (RFC 9110 §9.2.1: not safe).
fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// `Cache-Status` for an answer from the store.
fn hit_status(
    stored: &Stored,
    now: SystemTime,
    collapsed: bool,
    detail: Option<&str>,
) -> HeaderValue {
    let mut s = format!("frontdesk; hit; ttl={}", ttl(stored, now));
    if collapsed {
        s.push_str("; collapsed");
    }
    if let Some(detail) = detail {
        let _ = write!(s, "; detail={detail}");
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("frontdesk; hit"))
}

/// How much longer it is fresh, in seconds (negative: stale for that long).
fn ttl(stored: &Stored, now: SystemTime) -> i64 {
    stored.freshness.lifetime.as_secs() as i64 - stored.freshness.age(now).as_secs() as i64
}

/// The tags of `Cache-Tag` (comma-separated).
fn tags(headers: &HeaderMap) -> Vec<Box<str>> {
    headers
        .get_all(&CACHE_TAG)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Box::from)
        .collect()
}

/// `headers` copied into memory of their own (a message's fields share the buffer it was
/// read into).
fn owned(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let value = HeaderValue::from_bytes(value.as_bytes()).expect("a field value stays one");
        out.append(name.clone(), value);
    }
    out
}

/// What fields cost in the store.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 32)
        .sum()
}
