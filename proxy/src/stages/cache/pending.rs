//! A request of a cached rule on its way to the backend, and what becomes of the answer: a
//! stale one served instead when the backend fails (`stale-if-error`), a stored one freshened
//! by a 304 to its validators, a `GET`'s answer stored while it streams to the client, an
//! unsafe method's URI invalidated; and the `Cache-Status` that says which.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{
    CONTENT_LOCATION, DATE, HeaderName, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LOCATION,
};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;

use super::inflight::Leader;
use super::rfc9111::{self, Audience, CacheControl, NotStored, storable_for};
use super::stored::Stored;
use super::{Asked, CACHE_TAG, Cache, CacheShared, header_bytes, now, owned, tags, tee, ttl};
use crate::body::ProxyBody;
use crate::problem::Problem;

/// A request on its way to the backend, and what to do with the answer.
pub struct Pending {
    pub(super) cache: Arc<Cache>,
    /// Empty when the method is not cached.
    pub(super) key: String,
    /// The length of the key's URI part.
    pub(super) uri: usize,
    /// The client's fields as they were at the lookup: what the stored answer's `Vary` reads,
    /// and the conditions its answers are made for.
    pub(super) request: HeaderMap,
    pub(super) method: Method,
    pub(super) requested: SystemTime,
    /// What is stored, when stale: revalidated, or served when the backend fails.
    pub(super) stored: Option<Arc<Stored>>,
    /// The stored answer's validators, to ask the backend with (never the client's fields
    /// until the request really goes: a waiting request's fields stay the client's).
    pub(super) validators: Vec<(HeaderName, HeaderValue)>,
    /// The request asks the backend with the stored answer's validators.
    pub(super) revalidating: bool,
    /// A `GET` whose answer may be stored.
    pub(super) storing: bool,
    /// Who its answer may be served to.
    pub(super) audience: Audience,
    pub(super) leader: Option<Leader>,
    /// `Cache-Status`'s `fwd`.
    pub(super) fwd: &'static str,
    /// An unsafe method's URI prefix, removed when it succeeds.
    pub(super) invalidate: Option<String>,
    /// An unsafe method's origin: its answer's `Location` and `Content-Location` there are
    /// removed too.
    pub(super) origin: Option<super::Origin>,
}

impl Pending {
    /// Keeps `stored` for a stale answer on failure, and asks the backend with its validators
    /// unless the client has conditions of its own (its answer is then the client's).
    pub(super) fn revalidate(&mut self, stored: Arc<Stored>) {
        if !self.request.contains_key(IF_NONE_MATCH)
            && !self.request.contains_key(IF_MODIFIED_SINCE)
        {
            self.validators = stored.validators();
            self.revalidating = !self.validators.is_empty();
        }
        self.stored = Some(stored);
    }

    /// The request goes now: the validators go into its fields.
    pub(super) fn send(&mut self, head: &mut http::request::Parts) {
        for (name, value) in self.validators.drain(..) {
            head.headers.insert(name, value);
        }
    }

    /// What the client gets for the backend's `outcome`, and the `Cache-Status` to say.
    pub fn complete(
        self,
        outcome: Result<Response<ProxyBody>, Problem>,
    ) -> (Result<Response<ProxyBody>, Problem>, HeaderValue) {
        let now = now();
        let failed = match &outcome {
            Ok(resp) => resp.status().is_server_error().then_some(resp.status()),
            Err(p) if !p.kind.is_client_error() => Some(p.kind.status()),
            Err(_) => None,
        };
        if let (Some(code), Some(stored)) = (failed, &self.stored)
            && !CacheControl::parse(&self.request).no_cache
            && stored
                .freshness
                .usable_on_error(now, self.cache.stale_if_error)
        {
            self.cache.shared.metrics.stale.inc();
            // Forwarded, failed, then answered from the store.
            let ttl = ttl(stored, now);
            let s = self.forwarded(
                Some(code),
                None,
                &format!("ttl={ttl}; detail=stale-if-error"),
            );
            return (Ok(stored.answer(&self.method, &self.request, now)), s);
        }
        let revalidated = self.revalidating
            && self.stored.is_some()
            && matches!(&outcome, Ok(r) if r.status() == StatusCode::NOT_MODIFIED);
        if self.fwd != "method" && !revalidated {
            self.cache.shared.metrics.miss.inc();
        }
        let mut resp = match outcome {
            Ok(resp) => resp,
            Err(p) => {
                let s = self.forwarded(Some(p.kind.status()), None, "");
                return (Err(p), s);
            }
        };
        if let Some(prefix) = &self.invalidate
            && (resp.status().is_success() || resp.status().is_redirection())
        {
            self.cache.shared.invalidate(prefix, self.cache.global);
            // RFC 9111 §4.4: the URIs its answer names, when of the same origin.
            if let Some(origin) = &self.origin {
                for name in [LOCATION, CONTENT_LOCATION] {
                    if let Some(target) = resp.headers().get(name)
                        && let Some(other) = self.cache.same_origin_prefix(origin, target)
                    {
                        self.cache.shared.invalidate(&other, self.cache.global);
                    }
                }
            }
        }
        if revalidated && let Some(stored) = self.stored.clone() {
            return self.freshen(stored, resp.headers(), now);
        }
        if !self.storing {
            // The tags are the cache's own, whatever it does with the answer.
            resp.headers_mut().remove(&CACHE_TAG);
            let s = self.forwarded(Some(resp.status()), None, "");
            return (Ok(resp), s);
        }
        self.store(resp, now)
    }

    /// A backend's 304 to the stored answer's validators: the stored answer, its fields and
    /// clocks updated, stored again (unless its new fields forbid it) and sent.
    fn freshen(
        self,
        stored: Arc<Stored>,
        not_modified: &HeaderMap,
        now: SystemTime,
    ) -> (Result<Response<ProxyBody>, Problem>, HeaderValue) {
        let mut update = owned(not_modified);
        let new_tags = update.contains_key(&CACHE_TAG).then(|| tags(&update));
        update.remove(&CACHE_TAG);
        // Its clocks start now when the 304 has no Date of its own.
        if !update.contains_key(DATE) {
            update.insert(
                DATE,
                HeaderValue::from_str(&httpdate::fmt_http_date(now)).expect("a date"),
            );
        }
        let headers = stored.freshened_headers(&update);
        let fresh = Stored {
            status: stored.status,
            freshness: self.cache.freshness(&headers, self.requested, now),
            headers,
            body: stored.body.clone(),
            tags: new_tags.unwrap_or_else(|| stored.tags.clone()),
        };
        self.cache.shared.metrics.revalidated.inc();
        let answer = fresh.answer(&self.method, &self.request, now);
        // Kept again when its fields and the request allow. When its new fields forbid it
        // (a cookie, `private`, `Vary: *`...), the client gets it and the stored variant goes;
        // when only the request does (`no-store`), it stays as it was.
        let verdict = self.verdict(fresh.status, &fresh.headers);
        let stored_ok = match verdict {
            Ok(()) => {
                let vary = rfc9111::vary(&fresh.headers).unwrap_or_default();
                let size = fresh.body.len() + header_bytes(&fresh.headers);
                let asked = Asked {
                    requested: self.requested,
                    shared_uri: self.shared_uri(),
                };
                self.cache
                    .shared
                    .keep(&self.key, asked, vary, &self.request, fresh, size)
            }
            Err(why) => {
                self.forget_if_the_answer_forbids(StatusCode::NOT_MODIFIED, why);
                let s = self.forwarded(
                    Some(StatusCode::NOT_MODIFIED),
                    None,
                    &format!("detail={}", why.as_str()),
                );
                return (Ok(answer), s);
            }
        };
        let s = self.forwarded(
            Some(StatusCode::NOT_MODIFIED),
            stored_ok.then_some("stored"),
            "",
        );
        (Ok(answer), s)
    }

    /// Whether an answer with `status` and `headers` may be stored for this request.
    fn verdict(&self, status: StatusCode, headers: &HeaderMap) -> Result<(), NotStored> {
        storable_for(
            &Method::GET,
            &self.request,
            status,
            headers,
            !self.cache.default_ttl.is_zero(),
            self.audience,
        )
    }

    /// A stored answer being revalidated whose new answer (`status`) may not be kept, `why`:
    /// when that answer is a whole one (2xx but 206, or the 304 that freshened it) whose own
    /// fields forbid keeping it (`no-store`, `private`, a cookie, `Vary: *`, credentials it
    /// does not allow sharing), the stored variant goes too. Never for what the request
    /// caused or said (its conditions' 304, 412, a 416, a failure, its own `no-store`): a
    /// client cannot remove what others are served.
    fn forget_if_the_answer_forbids(&self, status: StatusCode, why: NotStored) {
        let whole = (status.is_success() && status != StatusCode::PARTIAL_CONTENT)
            || (status == StatusCode::NOT_MODIFIED && self.revalidating);
        let the_answers_fields = match why {
            NotStored::NoStore => !CacheControl::parse(&self.request).no_store,
            NotStored::Private | NotStored::SetCookie | NotStored::VaryAny => true,
            NotStored::Authorization => self.audience == Audience::Authenticated,
            NotStored::Method | NotStored::Status | NotStored::NoFreshness => false,
        };
        if self.stored.is_some() && whole && the_answers_fields {
            self.cache
                .shared
                .forget(&self.key, &self.request, self.cache.global);
        }
    }

    /// A `GET`'s answer from the backend: stored while it streams when it may be.
    fn store(
        mut self,
        resp: Response<ProxyBody>,
        now: SystemTime,
    ) -> (Result<Response<ProxyBody>, Problem>, HeaderValue) {
        let (mut parts, body) = resp.into_parts();
        let tags = tags(&parts.headers);
        parts.headers.remove(&CACHE_TAG);
        let verdict = self.verdict(parts.status, &parts.headers);
        if let Err(why) = verdict {
            self.forget_if_the_answer_forbids(parts.status, why);
        }
        let declared = crate::http1::content_length(&parts.headers).ok().flatten();
        let verdict = verdict
            .map_err(NotStored::as_str)
            .and_then(|()| match declared {
                Some(n) if n > self.cache.max_entry as u64 => Err("too-large"),
                _ => Ok(()),
            });
        if let Err(why) = verdict {
            let s = self.forwarded(Some(parts.status), None, &format!("detail={why}"));
            return (Ok(Response::from_parts(parts, body)), s);
        }
        // Copies: the answer's fields share the connection's read buffer, which a stored
        // answer must not keep.
        let mut headers = owned(&parts.headers);
        crate::forwarding::remove_hop_by_hop(&mut headers);
        let freshness = self.cache.freshness(&headers, self.requested, now);
        headers.remove(http::header::AGE);
        let s = self.forwarded(Some(parts.status), Some("stored"), "");
        let keep = Keep {
            shared: self.cache.shared.clone(),
            shared_uri: self.shared_uri().map(str::len),
            requested: self.requested,
            key: std::mem::take(&mut self.key),
            vary: rfc9111::vary(&headers).unwrap_or_default(),
            request: std::mem::take(&mut self.request),
            status: parts.status,
            header_bytes: header_bytes(&headers),
            headers,
            freshness,
            tags,
            _leader: self.leader.take(),
        };
        let body = tee::Storing::new(body, self.cache.max_entry, Box::new(keep)).boxed();
        (Ok(Response::from_parts(parts, body)), s)
    }

    /// The URI part of the key, when its answers go to the shared tier too.
    fn shared_uri(&self) -> Option<&str> {
        (self.cache.global && self.cache.shared.tier.is_some()).then(|| &self.key[..self.uri])
    }

    /// `Cache-Status` for an answer from the backend; `more` ends it (`detail=...`).
    fn forwarded(&self, code: Option<StatusCode>, stored: Option<&str>, more: &str) -> HeaderValue {
        let mut s = String::with_capacity(64);
        let _ = write!(s, "frontdesk; fwd={}", self.fwd);
        if let Some(code) = code {
            let _ = write!(s, "; fwd-status={}", code.as_u16());
        }
        if let Some(stored) = stored {
            let _ = write!(s, "; {stored}");
        }
        if !more.is_empty() {
            let _ = write!(s, "; {more}");
        }
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("frontdesk"))
    }
}

/// Stores an answer whose body has ended whole.
struct Keep {
    shared: Arc<CacheShared>,
    key: String,
    /// The length of the key's URI part, when the answer goes to the shared tier too.
    shared_uri: Option<usize>,
    requested: SystemTime,
    vary: Vec<HeaderName>,
    request: HeaderMap,
    status: StatusCode,
    headers: HeaderMap,
    header_bytes: usize,
    freshness: rfc9111::Freshness,
    tags: Vec<Box<str>>,
    /// Released (waking the requests waiting for this key) once stored.
    _leader: Option<Leader>,
}

impl tee::Keep for Keep {
    fn keep(self: Box<Self>, body: bytes::Bytes) {
        let size = body.len() + self.header_bytes;
        let stored = Stored {
            status: self.status,
            headers: self.headers,
            body,
            freshness: self.freshness,
            tags: self.tags,
        };
        let asked = Asked {
            requested: self.requested,
            shared_uri: self.shared_uri.map(|n| &self.key[..n]),
        };
        self.shared
            .keep(&self.key, asked, self.vary, &self.request, stored, size);
    }
}
