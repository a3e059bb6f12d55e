//! The request path, stage by stage:
//!
//! ```text
//! request id → request target (Host) → normalise path → route match → authenticate + authorize
//!   ([`crate::auth`]) → rate limit ([`crate::ratelimit`]) → [cache: later issue] → action: directResponse | redirect | forward (request transforms → upstream
//!   → response transforms) → access log + metrics (when the response body ends)
//! ```
//!
//! Each stage lives in its own module; this one only sequences them. Every answer the proxy
//! makes itself is a problem+json ([`crate::problem`]), and every response carries the
//! request's `x-request-id`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use std::sync::Mutex;

use http::header::{CONTENT_TYPE, COOKIE, HOST, LOCATION};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::oneshot;

use crate::access_log::{self, AccessLog};
use crate::auth::Denied;
use crate::balancer::Balancer;
use crate::body::{Observed, OnComplete, ProxyBody, full};
use crate::forwarding::{X_REQUEST_ID, add_forwarded, ensure_request_id, remove_hop_by_hop};
use crate::metrics::{LocalReplyLabels, Metrics, RequestLabels, RouteId, RouteLabels};
use crate::problem::{Problem, ProblemKind};
use crate::request_target::{self, Target};
use crate::route_table::RequestView;
use crate::runtime::{ActionRuntime, RuleRuntime, RuntimeHandle};
use crate::transforms::{redirect_location, rewrite_path};
use crate::upstream::{Upstream, UpstreamBody};

/// The label used for requests no rule matched.
const NO_ROUTE: &str = "none";

/// Shared state of the request path.
pub struct Proxy {
    pub runtime: RuntimeHandle,
    pub upstream: Upstream,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    no_route: RouteId,
}

/// What is known about a request when its response completes.
struct Exchange {
    started: Instant,
    started_at: SystemTime,
    request_id: HeaderValue,
    method: http::Method,
    host: String,
    path: String,
    version: Version,
    client: SocketAddr,
    route: RouteId,
    upstream: Option<Authority>,
    bytes_in: Arc<AtomicU64>,
    /// The matched rule's latency histogram.
    duration: Option<Histogram>,
    /// Who the policy authenticated: API key consumer, basic-auth user or JWT subject.
    consumer: Option<Arc<str>>,
    /// An Aggregate's calls.
    calls: Option<Vec<crate::aggregate::CallLog>>,
}

impl Proxy {
    pub fn new(
        runtime: RuntimeHandle,
        upstream: Upstream,
        metrics: Arc<Metrics>,
        access_log: AccessLog,
    ) -> Self {
        Proxy {
            runtime,
            upstream,
            metrics,
            access_log,
            no_route: RouteId(Arc::from(NO_ROUTE)),
        }
    }

    /// Answers one request. Never fails: errors become problem+json responses.
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<ProxyBody> {
        let request_id = ensure_request_id(req.headers_mut());
        let target = request_target::target(&req);
        let mut ex = Exchange {
            started: Instant::now(),
            started_at: SystemTime::now(),
            request_id,
            method: req.method().clone(),
            // Only the access log reads these; skip the copies when it is off.
            host: match (&target, self.access_log.enabled()) {
                (
                    Ok(Target {
                        authority: Some(a), ..
                    }),
                    true,
                ) => a.as_str().to_string(),
                _ => String::new(),
            },
            path: if self.access_log.enabled() {
                req.uri().path().to_string()
            } else {
                String::new()
            },
            version: req.version(),
            client,
            route: self.no_route.clone(),
            upstream: None,
            bytes_in: Arc::new(AtomicU64::new(0)),
            duration: None,
            consumer: None,
            calls: None,
        };
        let answer = match target {
            Ok(target) => self.route(req, target, &mut ex).await,
            Err(reason) => Err(Problem::new(ProblemKind::BadRequest, reason)),
        };
        let resp = answer.unwrap_or_else(|p| {
            self.metrics
                .local_replies
                .get_or_create(&LocalReplyLabels {
                    route: ex.route.clone(),
                    r#type: p.kind.slug(),
                })
                .inc();
            p.into_response(ex.request_id.to_str().unwrap_or_default())
        });
        self.finish(resp, ex)
    }

    /// Route match, then the rule's action.
    async fn route(
        &self,
        mut req: Request<Incoming>,
        target: Target,
        ex: &mut Exchange,
    ) -> Result<Response<ProxyBody>, Problem> {
        let path = frontdesk_snapshot::path::normalize(req.uri().path())
            .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))?
            .into_owned();
        let runtime = self.runtime.load();
        let view = RequestView {
            host: &target.host,
            path: &path,
            query: req.uri().query(),
            method: req.method(),
            headers: req.headers(),
        };
        let Some(matched) = runtime.table.lookup(&view) else {
            let what = format!("no route matches {} {}{path}", req.method(), target.host);
            return Err(Problem::new(ProblemKind::NoRoute, what));
        };
        let rule = matched.target;
        ex.route = RouteId(rule.id.clone());
        ex.duration = Some(rule.request_duration.clone());
        // Own the few captured segments so the request can be taken apart below.
        let owned: Vec<(&str, String)> = matched
            .captures
            .iter()
            .map(|(n, v)| (*n, v.to_string()))
            .collect();
        let m = Match {
            captures: owned.iter().map(|(n, v)| (*n, v.as_str())).collect(),
            prefix: matched.prefix,
            path: &path,
        };
        let mut limit_headers = Vec::new();
        if let Some(policy) = &rule.policy {
            let (mut parts, body) = req.into_parts();
            // Before the policy sets headers: `Connection: x-user-id` must not remove them.
            remove_hop_by_hop(&mut parts.headers);
            let asked = crate::auth::Request {
                method: &parts.method,
                uri: &parts.uri,
                path: &path,
                host: &target.host,
                request_id: &ex.request_id,
            };
            let identity = match policy.check(asked, &mut parts.headers).await {
                Ok(identity) => identity,
                Err(Denied::Problem(p)) => return Err(p),
                Err(Denied::Response(mut resp)) => {
                    rule.response_headers.apply(resp.headers_mut());
                    return Ok(resp);
                }
            };
            if let Some(limits) = &policy.rate_limit {
                let asked = crate::ratelimit::Request {
                    route: rule.route(),
                    peer: ex.client.ip(),
                    headers: &parts.headers,
                    identity: identity.as_ref(),
                };
                limit_headers = limits.check(asked).await?;
            }
            ex.consumer = identity.and_then(|i| i.consumer);
            req = Request::from_parts(parts, body);
        }
        let mut resp = self.act(req, rule, &m, target, ex).await?;
        for (name, value) in limit_headers {
            resp.headers_mut().append(name, value);
        }
        Ok(resp)
    }

    /// The rule's action: a fixed response, a redirect, or a backend.
    async fn act(
        &self,
        req: Request<Incoming>,
        rule: &RuleRuntime,
        m: &Match<'_>,
        target: Target,
        ex: &mut Exchange,
    ) -> Result<Response<ProxyBody>, Problem> {
        match &rule.action {
            ActionRuntime::Direct {
                status,
                body,
                content_type,
            } => {
                let mut resp = Response::new(full(body.clone()));
                *resp.status_mut() = *status;
                if let Some(ct) = content_type {
                    resp.headers_mut().insert(CONTENT_TYPE, ct.clone());
                }
                rule.response_headers.apply(resp.headers_mut());
                Ok(resp)
            }
            ActionRuntime::Redirect { redirect, status } => {
                let host = target.authority.as_ref().map(|_| target.host.as_str());
                let location = redirect_location(
                    redirect,
                    host,
                    target.port,
                    m.path,
                    req.uri().query(),
                    &m.captures,
                    m.prefix,
                );
                let location = HeaderValue::from_str(&location).map_err(|_| {
                    Problem::new(
                        ProblemKind::BadRequest,
                        "the redirect location is not a valid header value",
                    )
                })?;
                let mut resp = Response::new(full(bytes::Bytes::new()));
                *resp.status_mut() = *status;
                resp.headers_mut().insert(LOCATION, location);
                rule.response_headers.apply(resp.headers_mut());
                Ok(resp)
            }
            ActionRuntime::Forward(balancer) => {
                self.forward(req, rule, balancer, m, target, ex).await
            }
            ActionRuntime::Aggregate(aggregate) => {
                let mut log = Vec::new();
                let answer = aggregate
                    .answer(
                        &self.upstream,
                        &m.captures,
                        req.headers(),
                        &ex.request_id,
                        rule.timeout,
                        &mut log,
                    )
                    .await;
                ex.calls = Some(log);
                let mut resp = answer?;
                rule.response_headers.apply(resp.headers_mut());
                Ok(resp)
            }
        }
    }

    /// Request transforms → balance → upstream → response transforms.
    async fn forward(
        &self,
        req: Request<Incoming>,
        rule: &RuleRuntime,
        balancer: &Balancer,
        m: &Match<'_>,
        target: Target,
        ex: &mut Exchange,
    ) -> Result<Response<ProxyBody>, Problem> {
        let backend = balancer.pick().ok_or_else(|| {
            Problem::new(
                ProblemKind::NoEndpoints,
                "every backend of this route has weight 0",
            )
        })?;
        let endpoint = backend.next().ok_or_else(|| {
            Problem::new(
                ProblemKind::NoEndpoints,
                format!("backend {} has no ready endpoint", backend.name),
            )
        })?;
        ex.upstream = Some(endpoint.clone());
        let (upstream_req, body_sent) = upstream_request(req, rule, m, target, endpoint, ex)?;
        let sent = Instant::now();
        let mut resp = self
            .upstream
            .send(upstream_req, rule.timeout, body_sent)
            .await?;
        rule.upstream_duration.observe(sent.elapsed().as_secs_f64());
        remove_hop_by_hop(resp.headers_mut());
        rule.response_headers.apply(resp.headers_mut());
        Ok(resp.map(|b| b.map_err(Into::into).boxed()))
    }

    /// Adds the request id and hooks metrics and the access log to the end of the body.
    fn finish(self: Arc<Self>, resp: Response<ProxyBody>, ex: Exchange) -> Response<ProxyBody> {
        let (mut parts, body) = resp.into_parts();
        parts
            .headers
            .insert(X_REQUEST_ID.clone(), ex.request_id.clone());
        let hook = Completion {
            proxy: self,
            status: parts.status.as_u16(),
            ex,
        };
        let body = Observed::new(body, None, Some(Box::new(hook))).boxed();
        Response::from_parts(parts, body)
    }
}

/// What the route match found, for the action.
struct Match<'a> {
    captures: Vec<(&'a str, &'a str)>,
    prefix: Option<&'a str>,
    /// The normalised request path.
    path: &'a str,
}

/// The request for the backend: rewritten URI, forwarding headers, header edits, Host. Also
/// returns a signal that fires when the client's body has been sent in full (`None` when there
/// is no body), from which the rule's timeout runs.
fn upstream_request(
    req: Request<Incoming>,
    rule: &RuleRuntime,
    m: &Match<'_>,
    target: Target,
    endpoint: &Authority,
    ex: &Exchange,
) -> Result<(Request<UpstreamBody>, Option<oneshot::Receiver<()>>), Problem> {
    let (mut parts, body) = req.into_parts();
    let unchanged = rule.rewrite_path.is_none() && m.path == parts.uri.path();
    let path_and_query = match parts.uri.path_and_query() {
        // The common case: forward the client's target as parsed, no copy or re-parse.
        Some(pq) if unchanged => pq.clone(),
        _ => {
            let new_path = match &rule.rewrite_path {
                Some(rw) => rewrite_path(rw, m.path, &m.captures, m.prefix),
                None => m.path.to_string(),
            };
            let path_and_query = match parts.uri.query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path,
            };
            PathAndQuery::try_from(path_and_query).map_err(|_| {
                Problem::new(
                    ProblemKind::BadRequest,
                    "the rewritten path is not a valid request target",
                )
            })?
        }
    };
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(endpoint.clone());
    uri.path_and_query = Some(path_and_query);
    parts.uri = Uri::from_parts(uri)
        .map_err(|_| Problem::new(ProblemKind::Internal, "invalid upstream URI"))?;

    let headers = &mut parts.headers;
    if parts.version == Version::HTTP_2 {
        join_cookies(headers);
    }
    parts.version = Version::HTTP_11;
    remove_hop_by_hop(headers);
    add_forwarded(
        headers,
        ex.client.ip(),
        "http",
        target.authority.as_ref().map(Authority::as_str),
    );
    rule.request_headers.apply(headers);
    match (&rule.rewrite_host, &target.authority) {
        (Some(h), _) => {
            headers.insert(HOST, h.clone());
        }
        // HTTP/2 clients send :authority instead of Host; HTTP/1.1 backends need Host.
        (None, Some(a)) => {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                headers.insert(HOST, v);
            }
        }
        (None, None) => {}
    }
    let (hook, sent): (Option<Box<dyn OnComplete>>, _) = if http_body::Body::is_end_stream(&body) {
        (None, None)
    } else {
        let (tx, rx) = oneshot::channel();
        (Some(Box::new(BodySent(Mutex::new(Some(tx))))), Some(rx))
    };
    let body = Observed::new(body, Some(ex.bytes_in.clone()), hook);
    Ok((Request::from_parts(parts, body), sent))
}

/// HTTP/2 clients may split Cookie into several fields; HTTP/1.1 allows one (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut http::HeaderMap) {
    if headers.get_all(COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(COOKIE, v);
    }
}

/// Fires once when the request body has been sent (or dropped).
struct BodySent(Mutex<Option<oneshot::Sender<()>>>);

impl OnComplete for BodySent {
    fn complete(&self, _bytes: u64, _finished: bool) {
        if let Some(tx) = self.0.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
}

struct Completion {
    proxy: Arc<Proxy>,
    status: u16,
    ex: Exchange,
}

impl OnComplete for Completion {
    fn complete(&self, bytes_out: u64, finished: bool) {
        let ex = &self.ex;
        let elapsed = ex.started.elapsed();
        let m = &self.proxy.metrics;
        m.requests
            .get_or_create(&RequestLabels {
                route: ex.route.clone(),
                status: self.status,
            })
            .inc();
        match &ex.duration {
            Some(histogram) => histogram.observe(elapsed.as_secs_f64()),
            None => m
                .request_duration
                .get_or_create(&RouteLabels {
                    route: ex.route.clone(),
                })
                .observe(elapsed.as_secs_f64()),
        }
        let log = &self.proxy.access_log;
        if !log.enabled() {
            return;
        }
        let entry = access_log::Entry {
            time: humantime::format_rfc3339_millis(ex.started_at).to_string(),
            request_id: ex.request_id.to_str().unwrap_or_default().to_string(),
            route: ex.route.0.to_string(),
            method: ex.method.to_string(),
            host: ex.host.clone(),
            path: ex.path.clone(),
            protocol: match ex.version {
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            status: self.status,
            duration_ms: (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            upstream: ex.upstream.as_ref().map(ToString::to_string),
            bytes_in: ex.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            client: ex.client.ip().to_string(),
            consumer: ex.consumer.as_deref().map(str::to_string),
            calls: ex.calls.clone(),
            incomplete: !finished && bytes_out > 0,
        };
        if !log.log(entry) {
            m.access_log_dropped.inc();
        }
    }
}
