//! What HTTP caching (RFC 9111, with RFC 5861's stale extensions) says a *shared* cache may do,
//! as pure functions of the fields and the clock: no storage, no I/O.
//!
//! - [`CacheControl::parse`]: the directives of `Cache-Control` (all its lines), request's and
//!   response's alike; a qualified `no-cache="..."` or `private="..."` counts as unqualified
//!   (which RFC 9111 allows, and which never serves a field it should not).
//! - [`storable`]: whether a response may be stored (§3, §3.5), or why not.
//! - [`Freshness`]: how long a stored response is fresh (§4.2.1) and how old it is (§4.2.3).
//! - [`Freshness::usable`]: whether a stored response may answer a request now, fresh, stale
//!   while revalidating, or only after revalidation (§4, §4.2.4, RFC 5861).
//! - [`vary`]: the request fields a response varies on (§4.1); `Vary: *` is never stored.

use std::time::{Duration, SystemTime};

use http::header::{AGE, AUTHORIZATION, CACHE_CONTROL, DATE, EXPIRES, PRAGMA, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, Method, StatusCode};

/// The largest delta-seconds kept: a larger one counts as this (RFC 9111 §1.2.2).
const DELTA_MAX: u64 = 2_147_483_648;

/// The directives of `Cache-Control`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    /// Stored, but revalidated before every use (response); not answered from the cache
    /// without revalidating (request).
    pub no_cache: bool,
    /// For one user: a shared cache does not store it.
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    /// RFC 5861: served stale this long while one background request refreshes it.
    pub stale_while_revalidate: Option<u64>,
    /// RFC 5861: served stale this long when the backend fails.
    pub stale_if_error: Option<u64>,
    /// Request: a stale answer is acceptable, this much past its freshness (`Some(None)`: any).
    pub max_stale: Option<Option<u64>>,
    /// Request: the answer must stay fresh at least this long.
    pub min_fresh: Option<u64>,
    /// Request: answer from the cache or with 504.
    pub only_if_cached: bool,
}

impl CacheControl {
    /// The directives of every `Cache-Control` line of `headers`. Names are case-insensitive;
    /// the first occurrence of a directive counts; a delta-seconds that is not one counts as 0
    /// (stale: RFC 9111 §4.2.1 treats invalid freshness as stale).
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut cc = CacheControl::default();
        for line in headers.get_all(CACHE_CONTROL) {
            // Directives are ASCII: a line with other bytes is still read, never skipped (a
            // `no-store` in it must count).
            let line = String::from_utf8_lossy(line.as_bytes());
            for directive in split_directives(&line) {
                let (name, value) = match directive.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let seconds = || value.map(delta_seconds);
                match name.to_ascii_lowercase().as_str() {
                    "max-age" => cc.max_age = cc.max_age.or(Some(seconds().unwrap_or(0))),
                    "s-maxage" => cc.s_maxage = cc.s_maxage.or(Some(seconds().unwrap_or(0))),
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "must-revalidate" => cc.must_revalidate = true,
                    "proxy-revalidate" => cc.proxy_revalidate = true,
                    "must-understand" => cc.must_understand = true,
                    "stale-while-revalidate" => {
                        cc.stale_while_revalidate = cc.stale_while_revalidate.or(seconds());
                    }
                    "stale-if-error" => cc.stale_if_error = cc.stale_if_error.or(seconds()),
                    "max-stale" => cc.max_stale = cc.max_stale.or(Some(seconds())),
                    "min-fresh" => cc.min_fresh = cc.min_fresh.or(seconds()),
                    "only-if-cached" => cc.only_if_cached = true,
                    _ => {}
                }
            }
        }
        cc
    }
}

/// Directives separated by commas, commas inside quoted strings (with their `\` escapes)
/// kept.
fn split_directives(line: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    let bytes = line.as_bytes();
    let mut parts = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                parts.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&line[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty())
}

/// A delta-seconds: digits only; past [`DELTA_MAX`] it is [`DELTA_MAX`]; anything else is 0.
fn delta_seconds(v: &str) -> u64 {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    v.parse::<u64>().map_or(DELTA_MAX, |n| n.min(DELTA_MAX))
}

/// Why a response is not stored (said in `Cache-Status` as `detail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStored {
    /// Only GET responses are stored (HEAD is answered from them).
    Method,
    /// Partial, informational, or a status without heuristic freshness and none explicit.
    Status,
    /// `no-store`, in the request or the response.
    NoStore,
    /// `private`: for one user's cache only.
    Private,
    /// The request carried `Authorization` and the response did not say a shared cache may
    /// keep it (`public`, `s-maxage` or `must-revalidate`; RFC 9111 §3.5).
    Authorization,
    /// `Vary: *`: no later request can be known to match.
    VaryAny,
    /// `Set-Cookie`: one client's cookie, never handed to another.
    SetCookie,
    /// No freshness: neither explicit (`max-age`, `s-maxage`, `Expires`) nor a default.
    NoFreshness,
}

impl NotStored {
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::Method => "method",
            NotStored::Status => "status",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::Authorization => "authorization",
            NotStored::VaryAny => "vary-any",
            NotStored::SetCookie => "set-cookie",
            NotStored::NoFreshness => "no-freshness",
        }
    }
}

/// Statuses whose responses a cache may keep without explicit freshness (RFC 9110 §15.1:
/// heuristically cacheable), given a default lifetime.
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The statuses whose caching this cache implements (for `must-understand`): the final ones
/// it stores whole.
fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 302 | 303 | 307 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Who a stored response may be served to, as far as the request's credentials go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Anyone asking the same: the request is authenticated only if it carries
    /// `Authorization`.
    Anyone,
    /// Anyone the gateway authenticates: the request was, whatever carried the credential
    /// (an API key header, a cookie, a client certificate), so it counts as `Authorization`.
    Authenticated,
    /// Only the consumer the request authenticated as (the key holds it): `private` and
    /// credentials do not keep it from being stored.
    OneConsumer,
}

/// Whether the response (`status`, `headers`) to a `method` request with `request` fields
/// may be stored by a shared cache that gives responses without explicit freshness
/// `has_default` a default lifetime, for anyone asking the same.
pub fn storable(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
    has_default: bool,
) -> Result<(), NotStored> {
    storable_for(
        method,
        request,
        status,
        headers,
        has_default,
        Audience::Anyone,
    )
}

/// [`storable`], for `audience`.
pub fn storable_for(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
    has_default: bool,
    audience: Audience,
) -> Result<(), NotStored> {
    if method != Method::GET {
        return Err(NotStored::Method);
    }
    let req = CacheControl::parse(request);
    let resp = CacheControl::parse(headers);
    // Partial content and 304 answer one request's conditions or range, never a later
    // request's; informational answers are not final.
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStored::Status);
    }
    // must-understand: stored only with a status this cache understands, and then no-store
    // is for caches that do not (§5.2.2.3).
    let understood = understood(status);
    if resp.must_understand && !understood {
        return Err(NotStored::Status);
    }
    if req.no_store || (resp.no_store && !(resp.must_understand && understood)) {
        return Err(NotStored::NoStore);
    }
    if resp.private && audience != Audience::OneConsumer {
        return Err(NotStored::Private);
    }
    let authenticated = match audience {
        Audience::Anyone => request.contains_key(AUTHORIZATION),
        Audience::Authenticated => true,
        Audience::OneConsumer => false,
    };
    if authenticated && !(resp.public || resp.s_maxage.is_some() || resp.must_revalidate) {
        return Err(NotStored::Authorization);
    }
    if vary(headers).is_none() {
        return Err(NotStored::VaryAny);
    }
    if headers.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    let explicit =
        resp.max_age.is_some() || resp.s_maxage.is_some() || headers.contains_key(EXPIRES);
    if explicit {
        return Ok(());
    }
    if !heuristically_cacheable(status) && !resp.public {
        return Err(NotStored::Status);
    }
    if has_default {
        Ok(())
    } else {
        Err(NotStored::NoFreshness)
    }
}

/// The request fields a response varies on (lower-case names), `None` for `Vary: *` and for
/// a `Vary` that cannot be read (no later request can be known to match either).
pub fn vary(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = Vec::new();
    for line in headers.get_all(VARY) {
        let line = line.to_str().ok()?;
        for name in line.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Some(names)
}

/// The values of `names` in `request`, each field's lines joined by `, ` as bytes (absent:
/// `None`): what a later request must present the same of to be answered by the stored
/// response.
pub fn varied_values(names: &[HeaderName], request: &HeaderMap) -> Vec<Option<Vec<u8>>> {
    names
        .iter()
        .map(|n| {
            let mut joined: Option<Vec<u8>> = None;
            for v in request.get_all(n) {
                let out = joined.get_or_insert_with(Vec::new);
                if !out.is_empty() {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(v.as_bytes());
            }
            joined
        })
        .collect()
}

/// A stored response's clocks: when it was asked for and received, and what its fields said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// How long it is fresh (§4.2.1), capped.
    pub lifetime: Duration,
    /// Its age when received (§4.2.3 `corrected_initial_age`).
    pub initial_age: Duration,
    /// When it was received.
    pub received: SystemTime,
    /// What its `Cache-Control` said.
    pub directives: CacheControl,
}

/// How a stored response may answer a request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usable {
    /// Fresh: answer with it.
    Fresh,
    /// Stale, within `stale-while-revalidate`: answer with it, and refresh it in the
    /// background (once).
    StaleWhileRevalidate,
    /// Stale, and the request accepts it (`max-stale`).
    StaleAccepted,
    /// Revalidate with the backend first (a conditional request when it has validators).
    Revalidate,
}

impl Freshness {
    /// The clocks of a response to a request sent at `requested` and received at `received`
    /// with `headers`; `default` is the lifetime of responses without explicit freshness, and
    /// no lifetime exceeds `cap`.
    pub fn of(
        headers: &HeaderMap,
        requested: SystemTime,
        received: SystemTime,
        default: Duration,
        cap: Duration,
    ) -> Self {
        let directives = CacheControl::parse(headers);
        let dated = http_date_field(headers, DATE);
        let lifetime = if let Some(s) = directives.s_maxage.or(directives.max_age) {
            Duration::from_secs(s)
        } else if headers.contains_key(EXPIRES) {
            // An Expires that is not a date means already expired (§5.3).
            match (http_date_field(headers, EXPIRES), dated.or(Some(received))) {
                (Some(expires), Some(base)) => expires.duration_since(base).unwrap_or_default(),
                _ => Duration::ZERO,
            }
        } else {
            default
        }
        .min(cap);
        let age_value = headers
            .get(AGE)
            .and_then(|v| v.to_str().ok())
            .map_or(0, delta_seconds);
        let apparent_age = dated
            .and_then(|d| received.duration_since(d).ok())
            .unwrap_or_default();
        let response_delay = received.duration_since(requested).unwrap_or_default();
        let corrected_age = Duration::from_secs(age_value) + response_delay;
        Freshness {
            lifetime,
            initial_age: apparent_age.max(corrected_age),
            received,
            directives,
        }
    }

    /// Its age at `now` (§4.2.3 `current_age`), what the `Age` field says.
    pub fn age(&self, now: SystemTime) -> Duration {
        self.initial_age + now.duration_since(self.received).unwrap_or_default()
    }

    /// How it may answer a request with `request` fields at `now`.
    pub fn usable(&self, request: &HeaderMap, now: SystemTime) -> Usable {
        let req = CacheControl::parse(request);
        let pragma_no_cache = !request.contains_key(CACHE_CONTROL)
            && request.get_all(PRAGMA).iter().any(|v| {
                v.as_bytes()
                    .split(|b| *b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"no-cache"))
            });
        if req.no_cache || pragma_no_cache || self.directives.no_cache {
            return Usable::Revalidate;
        }
        let age = self.age(now);
        let too_old = req.max_age.is_some_and(|m| age > Duration::from_secs(m));
        let left = self.lifetime.saturating_sub(age);
        let fresh_enough = req.min_fresh.is_none_or(|m| left >= Duration::from_secs(m));
        if age < self.lifetime {
            // Fresh, unless the request wants it younger or fresher for longer.
            return if !too_old && fresh_enough {
                Usable::Fresh
            } else {
                Usable::Revalidate
            };
        }
        // Stale: never served without revalidation when it says so (s-maxage implies
        // proxy-revalidate, §5.2.2.10).
        let d = &self.directives;
        if d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some() {
            return Usable::Revalidate;
        }
        let stale_for = age.saturating_sub(self.lifetime);
        if let Some(allowed) = req.max_stale
            && !too_old
            && allowed.is_none_or(|s| stale_for <= Duration::from_secs(s))
        {
            return Usable::StaleAccepted;
        }
        if !too_old
            && d.stale_while_revalidate
                .is_some_and(|s| stale_for <= Duration::from_secs(s))
        {
            return Usable::StaleWhileRevalidate;
        }
        Usable::Revalidate
    }

    /// Whether, the backend having failed at `now`, it may answer stale (RFC 5861
    /// `stale-if-error`, from the response or `default`), unless it must be revalidated.
    pub fn usable_on_error(&self, now: SystemTime, default: Option<Duration>) -> bool {
        let d = &self.directives;
        if d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some() || d.no_cache {
            return false;
        }
        let window = d.stale_if_error.map(Duration::from_secs).or(default);
        let stale_for = self.age(now).saturating_sub(self.lifetime);
        window.is_some_and(|w| stale_for <= w)
    }
}

/// An HTTP date field of `headers`.
fn http_date_field(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    headers.get(name).and_then(http_date)
}

/// A field value that is an HTTP date (RFC 9110 §5.6.7), in any of its three forms.
pub fn http_date(value: &http::HeaderValue) -> Option<SystemTime> {
    value
        .to_str()
        .ok()
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    fn http_date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    #[test]
    fn directives_from_every_line_case_and_quotes_and_bad_values() {
        let cc = CacheControl::parse(&fields(&[
            (
                "cache-control",
                "Public, MAX-AGE=60, no-cache=\"set-cookie, x-a\"",
            ),
            (
                "cache-control",
                "max-age=5, s-maxage=\"30\", stale-while-revalidate=10",
            ),
            (
                "cache-control",
                "stale-if-error=abc, max-stale, min-fresh=99999999999999",
            ),
        ]));
        assert!(cc.public && cc.no_cache);
        assert_eq!(cc.max_age, Some(60), "the first occurrence counts");
        assert_eq!(cc.s_maxage, Some(30));
        assert_eq!(cc.stale_while_revalidate, Some(10));
        assert_eq!(cc.stale_if_error, Some(0), "not a number: stale");
        assert_eq!(cc.max_stale, Some(None));
        assert_eq!(cc.min_fresh, Some(DELTA_MAX));
    }

    #[test]
    fn what_a_shared_cache_may_store() {
        let get = Method::GET;
        let none = HeaderMap::new();
        let ok = StatusCode::OK;
        let store = |req: &HeaderMap, status, resp: &[(&str, &str)], default| {
            storable(&get, req, status, &fields(resp), default)
        };
        assert_eq!(
            store(&none, ok, &[("cache-control", "max-age=60")], false),
            Ok(())
        );
        assert_eq!(
            store(&none, ok, &[("expires", &http_date(60))], false),
            Ok(())
        );
        assert_eq!(
            store(&none, ok, &[], true),
            Ok(()),
            "the Policy's default ttl"
        );
        assert_eq!(store(&none, ok, &[], false), Err(NotStored::NoFreshness));
        assert_eq!(
            store(&none, StatusCode::INTERNAL_SERVER_ERROR, &[], true),
            Err(NotStored::Status),
            "500 has no heuristic freshness"
        );
        assert_eq!(
            store(
                &none,
                StatusCode::PARTIAL_CONTENT,
                &[("cache-control", "max-age=9")],
                true
            ),
            Err(NotStored::Status)
        );
        assert_eq!(
            store(
                &none,
                ok,
                &[("cache-control", "max-age=60, no-store")],
                true
            ),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            store(&fields(&[("cache-control", "no-store")]), ok, &[], true),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            store(
                &none,
                ok,
                &[("cache-control", "no-store, must-understand, max-age=5")],
                true
            ),
            Ok(()),
            "must-understand with a status the cache understands"
        );
        assert_eq!(
            store(
                &none,
                ok,
                &[("cache-control", "private=\"x-user\", max-age=60")],
                true
            ),
            Err(NotStored::Private)
        );
        assert_eq!(
            store(&none, ok, &[("vary", "accept, *")], true),
            Err(NotStored::VaryAny)
        );
        assert_eq!(
            store(&none, ok, &[("set-cookie", "session=1")], true),
            Err(NotStored::SetCookie)
        );
        assert_eq!(
            storable(
                &Method::POST,
                &none,
                ok,
                &fields(&[("cache-control", "max-age=60")]),
                true
            ),
            Err(NotStored::Method)
        );
        // Authorization: only when the response says a shared cache may keep it.
        let authorized = fields(&[("authorization", "Bearer x")]);
        assert_eq!(
            store(&authorized, ok, &[("cache-control", "max-age=60")], true),
            Err(NotStored::Authorization)
        );
        for allowed in [
            "public, max-age=60",
            "s-maxage=60",
            "must-revalidate, max-age=60",
        ] {
            assert_eq!(
                store(&authorized, ok, &[("cache-control", allowed)], true),
                Ok(()),
                "{allowed}"
            );
        }
    }

    #[test]
    fn lifetime_from_s_maxage_max_age_expires_or_the_default_capped() {
        let life = |resp: &[(&str, &str)]| {
            Freshness::of(
                &fields(resp),
                at(0),
                at(0),
                Duration::from_secs(30),
                Duration::from_secs(3600),
            )
            .lifetime
            .as_secs()
        };
        assert_eq!(life(&[("cache-control", "max-age=60, s-maxage=120")]), 120);
        assert_eq!(life(&[("cache-control", "max-age=60")]), 60);
        assert_eq!(life(&[("cache-control", "max-age=86400")]), 3600, "capped");
        assert_eq!(
            life(&[("date", &http_date(0)), ("expires", &http_date(90))]),
            90
        );
        assert_eq!(
            life(&[("expires", "0")]),
            0,
            "an invalid Expires is expired"
        );
        assert_eq!(life(&[]), 30, "the default");
    }

    #[test]
    fn age_counts_the_age_field_the_date_and_the_time_in_transit_and_stored() {
        // Sent at 10, received at 12, dated 0 by the backend, Age 5 from a cache before it.
        let f = Freshness::of(
            &fields(&[("date", &http_date(0)), ("age", "5")]),
            at(10),
            at(12),
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        // apparent age 12, corrected age 5 + 2 = 7: the larger.
        assert_eq!(f.initial_age, Duration::from_secs(12));
        assert_eq!(f.age(at(20)), Duration::from_secs(20));
    }

    #[test]
    fn fresh_stale_while_revalidate_max_stale_and_revalidation() {
        let stored = |cc: &str| {
            Freshness::of(
                &fields(&[("cache-control", cc)]),
                at(0),
                at(0),
                Duration::ZERO,
                Duration::from_secs(3600),
            )
        };
        let none = HeaderMap::new();
        let f = stored("max-age=60, stale-while-revalidate=30");
        assert_eq!(f.usable(&none, at(59)), Usable::Fresh);
        assert_eq!(f.usable(&none, at(60)), Usable::StaleWhileRevalidate);
        assert_eq!(f.usable(&none, at(90)), Usable::StaleWhileRevalidate);
        assert_eq!(f.usable(&none, at(91)), Usable::Revalidate);
        // The request's own limits.
        assert_eq!(
            f.usable(&fields(&[("cache-control", "max-age=10")]), at(20)),
            Usable::Revalidate
        );
        assert_eq!(
            f.usable(&fields(&[("cache-control", "min-fresh=50")]), at(20)),
            Usable::Revalidate
        );
        assert_eq!(
            f.usable(&fields(&[("cache-control", "no-cache")]), at(1)),
            Usable::Revalidate
        );
        assert_eq!(
            f.usable(&fields(&[("pragma", "no-cache")]), at(1)),
            Usable::Revalidate
        );
        assert_eq!(
            f.usable(&fields(&[("cache-control", "max-stale=100")]), at(150)),
            Usable::StaleAccepted
        );
        // Stored with no-cache: always revalidated; must-revalidate and s-maxage: never stale.
        assert_eq!(
            stored("max-age=60, no-cache").usable(&none, at(1)),
            Usable::Revalidate
        );
        for strict in [
            "max-age=60, must-revalidate, stale-while-revalidate=30",
            "s-maxage=60, stale-while-revalidate=30",
        ] {
            assert_eq!(
                stored(strict).usable(&none, at(61)),
                Usable::Revalidate,
                "{strict}"
            );
            assert_eq!(
                stored(strict).usable(&fields(&[("cache-control", "max-stale")]), at(61)),
                Usable::Revalidate
            );
        }
    }

    #[test]
    fn stale_if_error_from_the_response_or_the_default_within_its_window() {
        let f = Freshness::of(
            &fields(&[("cache-control", "max-age=60, stale-if-error=120")]),
            at(0),
            at(0),
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        assert!(f.usable_on_error(at(180), None));
        assert!(!f.usable_on_error(at(181), None));
        let plain = Freshness::of(
            &fields(&[("cache-control", "max-age=60")]),
            at(0),
            at(0),
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        assert!(!plain.usable_on_error(at(61), None));
        assert!(plain.usable_on_error(at(61), Some(Duration::from_secs(300))));
        let strict = Freshness::of(
            &fields(&[(
                "cache-control",
                "max-age=60, must-revalidate, stale-if-error=999",
            )]),
            at(0),
            at(0),
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        assert!(!strict.usable_on_error(at(61), None));
    }

    #[test]
    fn vary_names_and_the_values_a_request_must_match() {
        let names = vary(&fields(&[
            ("vary", "Accept-Encoding, accept-language"),
            ("vary", "accept-encoding"),
        ]))
        .unwrap();
        assert_eq!(names, ["accept-encoding", "accept-language"]);
        let values = varied_values(
            &names,
            &fields(&[("accept-encoding", "gzip"), ("accept-encoding", "br")]),
        );
        assert_eq!(values, [Some(b"gzip, br".to_vec()), None]);
        assert_eq!(vary(&fields(&[("vary", "*")])), None);
        assert_eq!(
            vary(&fields(&[("vary", "accept, bad name")])),
            None,
            "unreadable: as *"
        );
    }

    #[test]
    fn must_understand_304_pragma_expires_before_date_and_huge_numbers() {
        let none = HeaderMap::new();
        let store = |status: u16, cc: &str| {
            storable(
                &Method::GET,
                &none,
                StatusCode::from_u16(status).unwrap(),
                &fields(&[("cache-control", cc)]),
                true,
            )
        };
        assert_eq!(store(304, "max-age=60"), Err(NotStored::Status));
        assert_eq!(
            store(500, "must-understand, max-age=60"),
            Err(NotStored::Status),
            "must-understand with a status this cache does not implement"
        );
        assert_eq!(store(200, "must-understand, max-age=60"), Ok(()));
        // A no-store on an escaped-quote line is still seen.
        assert_eq!(
            store(200, "x=\"a\\\"b, c\", no-store, max-age=60"),
            Err(NotStored::NoStore)
        );
        let cc = CacheControl::parse(&fields(&[(
            "cache-control",
            "max-age=99999999999999999999999",
        )]));
        assert_eq!(
            cc.max_age,
            Some(DELTA_MAX),
            "too large for u64: the maximum"
        );
        // Expires before Date: already expired.
        let f = Freshness::of(
            &fields(&[("date", &http_date(100)), ("expires", &http_date(50))]),
            at(100),
            at(100),
            Duration::from_secs(30),
            Duration::from_secs(3600),
        );
        assert_eq!(f.lifetime, Duration::ZERO);
        // Pragma counts only without Cache-Control, as one of its tokens.
        let fresh = Freshness::of(
            &fields(&[("cache-control", "max-age=60")]),
            at(0),
            at(0),
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        assert_eq!(
            fresh.usable(&fields(&[("pragma", "x, no-cache")]), at(1)),
            Usable::Revalidate
        );
        assert_eq!(
            fresh.usable(
                &fields(&[("pragma", "no-cache"), ("cache-control", "max-stale")]),
                at(1)
            ),
            Usable::Fresh
        );
        // proxy-revalidate: never stale, even if the request would take it.
        let strict = Freshness::of(
            &fields(&[("cache-control", "max-age=60, proxy-revalidate")]),
            at(0),
            at(0),
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        assert_eq!(
            strict.usable(&fields(&[("cache-control", "max-stale")]), at(61)),
            Usable::Revalidate
        );
        assert!(!strict.usable_on_error(at(61), Some(Duration::from_secs(60))));
    }

    #[test]
    fn an_audience_decides_what_credentials_and_private_keep_from_the_store() {
        let get = Method::GET;
        let ok = StatusCode::OK;
        let none = HeaderMap::new();
        let check = |resp: &[(&str, &str)], audience| {
            storable_for(&get, &none, ok, &fields(resp), true, audience)
        };
        let plain = [("cache-control", "max-age=60")];
        // Authenticated by the gateway (an API key, a cookie): as if it carried Authorization.
        assert_eq!(check(&plain, Audience::Anyone), Ok(()));
        assert_eq!(
            check(&plain, Audience::Authenticated),
            Err(NotStored::Authorization)
        );
        assert_eq!(
            check(
                &[("cache-control", "public, max-age=60")],
                Audience::Authenticated
            ),
            Ok(())
        );
        // One consumer's: private and credentials allowed, nothing else is.
        let private = [("cache-control", "private, max-age=60")];
        assert_eq!(check(&private, Audience::OneConsumer), Ok(()));
        assert_eq!(
            check(&private, Audience::Authenticated),
            Err(NotStored::Private)
        );
        assert_eq!(
            check(
                &[
                    ("cache-control", "private, max-age=60"),
                    ("set-cookie", "s=1")
                ],
                Audience::OneConsumer
            ),
            Err(NotStored::SetCookie)
        );
        assert_eq!(
            check(&[("vary", "*")], Audience::OneConsumer),
            Err(NotStored::VaryAny)
        );
        assert_eq!(
            storable_for(
                &get,
                &none,
                StatusCode::INTERNAL_SERVER_ERROR,
                &none,
                true,
                Audience::OneConsumer
            ),
            Err(NotStored::Status)
        );
    }
}
