//! The request path, stage by stage:
//!
//! ```text
//! request id → normalise path → route match → [auth, rate limit, cache: later issues]
//!   → action: directResponse | redirect | forward (request transforms → upstream
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

use http::header::{CONTENT_TYPE, HOST, LOCATION};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use prometheus_client::metrics::histogram::Histogram;

use crate::access_log::{self, AccessLog};
use crate::body::{Observed, OnComplete, ProxyBody, full};
use crate::forwarding::{X_REQUEST_ID, add_forwarded, ensure_request_id, remove_hop_by_hop};
use crate::metrics::{Metrics, RequestLabels, RouteId, RouteLabels};
use crate::path_normalize::normalize;
use crate::problem::{Problem, ProblemKind};
use crate::route_table::RequestView;
use crate::runtime::{ActionRuntime, RuleRuntime, RuntimeHandle};
use crate::transforms::{redirect_location, rewrite_path};
use crate::upstream::Upstream;

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
    upstream: Option<String>,
    bytes_in: Arc<AtomicU64>,
    /// The matched rule's latency histogram.
    duration: Option<Histogram>,
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
        let host_header = request_host(&req);
        let mut ex = Exchange {
            started: Instant::now(),
            started_at: SystemTime::now(),
            request_id,
            method: req.method().clone(),
            host: host_header.clone().unwrap_or_default(),
            path: req.uri().path().to_string(),
            version: req.version(),
            client,
            route: self.no_route.clone(),
            upstream: None,
            bytes_in: Arc::new(AtomicU64::new(0)),
            duration: None,
        };
        let resp = match self.route(req, host_header, &mut ex).await {
            Ok(resp) => resp,
            Err(problem) => problem.into_response(ex.request_id.to_str().unwrap_or_default()),
        };
        self.finish(resp, ex)
    }

    async fn route(
        &self,
        req: Request<Incoming>,
        host_header: Option<String>,
        ex: &mut Exchange,
    ) -> Result<Response<ProxyBody>, Problem> {
        let (host, port) = split_host_port(host_header.as_deref().unwrap_or(""));
        let path = normalize(req.uri().path())
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::BadRequest,
                    "the request target must be an absolute path",
                )
            })?
            .into_owned();
        let runtime = self.runtime.load();
        let view = RequestView {
            host: &host,
            path: &path,
            query: req.uri().query(),
            method: req.method(),
            headers: req.headers(),
        };
        let Some(matched) = runtime.table.lookup(&view) else {
            return Err(Problem::new(
                ProblemKind::NoRoute,
                format!("no route matches {} {host}{path}", req.method()),
            ));
        };
        let rule = matched.target;
        ex.route = RouteId(rule.id.clone());
        ex.duration = Some(rule.request_duration.clone());
        // Own the few captured segments so the request can be taken apart below.
        let captures: Vec<(&str, String)> = matched
            .captures
            .iter()
            .map(|(n, v)| (*n, v.to_string()))
            .collect();
        let captures: Vec<(&str, &str)> = captures.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let prefix = matched.prefix;
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
                let location = redirect_location(
                    redirect,
                    &host,
                    port,
                    &path,
                    req.uri().query(),
                    &captures,
                    prefix,
                );
                let mut resp = Response::new(full(bytes::Bytes::new()));
                *resp.status_mut() = *status;
                let location = HeaderValue::from_str(&location).map_err(|_| {
                    Problem::new(
                        ProblemKind::BadRequest,
                        "the redirect location is not a valid header",
                    )
                })?;
                resp.headers_mut().insert(LOCATION, location);
                rule.response_headers.apply(resp.headers_mut());
                Ok(resp)
            }
            ActionRuntime::Forward(balancer) => {
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
                ex.upstream = Some(endpoint.to_string());
                let upstream_req = self.upstream_request(
                    req,
                    rule,
                    &captures,
                    prefix,
                    &path,
                    host_header,
                    endpoint,
                    ex,
                )?;
                let sent = Instant::now();
                let mut resp = self.upstream.send(upstream_req, rule.timeout).await?;
                self.metrics
                    .upstream_duration
                    .get_or_create(&RouteLabels {
                        route: ex.route.clone(),
                    })
                    .observe(sent.elapsed().as_secs_f64());
                remove_hop_by_hop(resp.headers_mut());
                rule.response_headers.apply(resp.headers_mut());
                Ok(resp.map(|b| b.map_err(Into::into).boxed()))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn upstream_request(
        &self,
        req: Request<Incoming>,
        rule: &RuleRuntime,
        captures: &[(&str, &str)],
        prefix: Option<&str>,
        path: &str,
        host_header: Option<String>,
        endpoint: &str,
        ex: &Exchange,
    ) -> Result<Request<crate::upstream::UpstreamBody>, Problem> {
        let (mut parts, body) = req.into_parts();
        let new_path = match &rule.rewrite_path {
            Some(rw) => rewrite_path(rw, path, captures, prefix),
            None => path.to_string(),
        };
        let path_and_query = match parts.uri.query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        let bad = |what: &str| {
            Problem::new(
                ProblemKind::BadRequest,
                format!("invalid {what} after rewriting"),
            )
        };
        parts.uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(Authority::try_from(endpoint).map_err(|_| bad("backend address"))?)
            .path_and_query(PathAndQuery::try_from(path_and_query).map_err(|_| bad("path"))?)
            .build()
            .map_err(|_| bad("URI"))?;
        parts.version = Version::HTTP_11;

        let headers = &mut parts.headers;
        remove_hop_by_hop(headers);
        add_forwarded(headers, ex.client.ip(), "http", host_header.as_deref());
        rule.request_headers.apply(headers);
        match (&rule.rewrite_host, host_header) {
            (Some(h), _) => {
                headers.insert(HOST, h.clone());
            }
            (None, Some(h)) => {
                // HTTP/2 clients send :authority instead of Host; HTTP/1.1 backends need Host.
                if let Ok(v) = HeaderValue::from_str(&h) {
                    headers.insert(HOST, v);
                }
            }
            (None, None) => {}
        }
        let body = Observed::new(body, Some(ex.bytes_in.clone()), None);
        Ok(Request::from_parts(parts, body))
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
        m.request_duration
            .get_or_create(&RouteLabels {
                route: ex.route.clone(),
            })
            .observe(elapsed.as_secs_f64());
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
            upstream: ex.upstream.clone(),
            bytes_in: ex.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            client: ex.client.ip().to_string(),
            incomplete: !finished && bytes_out > 0,
        };
        if !log.log(entry) {
            m.access_log_dropped.inc();
        }
    }
}

/// The host the client asked for: the Host header, or the authority of an absolute or HTTP/2
/// request target.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
}

/// `Example.COM:8080` → (`example.com`, Some(8080)); IPv6 literals keep their brackets.
fn split_host_port(h: &str) -> (String, Option<u16>) {
    let (host, port) = match h.rfind(':') {
        Some(i) if !h[i..].contains(']') => (&h[..i], h[i + 1..].parse().ok()),
        _ => (h, None),
    };
    let host = host.trim_end_matches('.');
    (host.to_ascii_lowercase(), port)
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn hosts_lose_port_and_case() {
        assert_eq!(
            split_host_port("Example.COM:8080"),
            ("example.com".into(), Some(8080))
        );
        assert_eq!(
            split_host_port("example.com."),
            ("example.com".into(), None)
        );
        assert_eq!(split_host_port("[::1]:80"), ("[::1]".into(), Some(80)));
        assert_eq!(split_host_port("[::1]"), ("[::1]".into(), None));
    }
}
