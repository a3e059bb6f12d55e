//! The aggregate action: one request, many backend calls, one JSON answer.
//!
//! - [`target`]: a call's path and query, with placeholder values percent-encoded (pure).
//! - [`shape`]: select / extract and the merge (pure).
//! - this module: the calls themselves. Calls whose dependencies are done run concurrently;
//!   a failed required call, or the deadline passing while one is still running, ends the
//!   answer at once (502, or 504 for a timeout) and the calls still running are dropped, which
//!   closes their connections: the backends see the cancellation. A failed optional call is
//!   `null` in the answer, listed in `_errors` and in the `frontdesk-aggregate-errors` header.
//!
//! Calls go through the same machinery as Routes' forwards ([`crate::upstream`]): each
//! backend's endpoints are balanced as the Aggregate's Policy says (round robin by default),
//! over the same per-endpoint connection pools, with the Policy's circuit breaker, outlier
//! detection and health checks, and a call's retries.

pub mod shape;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use frontdesk_snapshot as snap;
use futures::stream::{FuturesUnordered, StreamExt};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Limited};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::access_log::CallLog;
use crate::body::{ProxyBody, full};
use crate::forwarding::X_REQUEST_ID;
use crate::metrics::{CallLabels, CallOutcome, Metrics, RouteId};
use crate::problem::{Problem, ProblemKind};
use crate::upstream::balancer::EndpointSet;
use crate::upstream::retry::{Replay, RetryBudget, RetryMetrics, RetryPlan, RetryPolicy};
use crate::upstream::{AnswerFields, Upstream, UpstreamBody};

/// The header naming the optional calls that failed.
pub const ERRORS_HEADER: HeaderName = HeaderName::from_static("frontdesk-aggregate-errors");

struct CallRuntime {
    spec: snap::Call,
    endpoints: EndpointSet,
    deps: Vec<usize>,
    timeout: Duration,
    ok: Counter,
    failed: Counter,
    duration: Histogram,
    /// The call's retries, when it has any.
    retrying: Option<CallRetries>,
}

struct CallRetries {
    policy: RetryPolicy,
    budget: RetryBudget,
    metrics: RetryMetrics,
}

/// The client's request, as the calls see it: its headers (forwarded ones, a consistent-hash
/// key), its id and the client's address.
pub struct Asking<'a> {
    pub headers: &'a HeaderMap,
    pub request_id: &'a HeaderValue,
    pub client: std::net::IpAddr,
}

pub struct AggregateRuntime {
    calls: Vec<CallRuntime>,
    forward: Vec<HeaderName>,
    max_bytes: usize,
    flat: bool,
}

enum Failure {
    Timeout(String),
    Other(String),
}

impl Failure {
    fn reason(&self) -> &str {
        match self {
            Failure::Timeout(r) | Failure::Other(r) => r,
        }
    }
}

struct Done {
    index: usize,
    result: Result<Value, Failure>,
    status: Option<u16>,
    elapsed: Duration,
}

impl AggregateRuntime {
    pub fn build(
        rule_id: &Arc<str>,
        a: &snap::Aggregate,
        settings: &crate::upstream::backend_state::BackendSettings,
        metrics: &Metrics,
        upstream: &Upstream,
    ) -> Result<Self, String> {
        let calls = a
            .calls
            .iter()
            .map(|c| {
                // One statement each: a Family's read guard must be gone before the next
                // get_or_create, which may need its write lock.
                let counter = |outcome| {
                    let labels = CallLabels {
                        aggregate: RouteId(rule_id.clone()),
                        call: RouteId(Arc::from(c.name.as_str())),
                        outcome,
                    };
                    metrics.aggregate_calls.get_or_create(&labels).clone()
                };
                let ok = counter(CallOutcome::ok);
                let failed = counter(CallOutcome::failed);
                let duration = metrics
                    .aggregate_call_duration
                    .get_or_create(&crate::metrics::AggregateCallLabels {
                        aggregate: RouteId(rule_id.clone()),
                        call: RouteId(Arc::from(c.name.as_str())),
                    })
                    .clone();
                Ok(CallRuntime {
                    endpoints: EndpointSet::new(
                        &c.backend,
                        upstream,
                        upstream.backend_state(
                            &RouteId(Arc::from(format!("{rule_id}/{}", c.name))),
                            &c.backend.name,
                            settings,
                            metrics,
                        ),
                        settings.connection.as_ref(),
                    )?,
                    deps: c
                        .depends_on
                        .iter()
                        .map(|d| {
                            a.calls
                                .iter()
                                .position(|x| &x.name == d)
                                .ok_or(format!("unknown call {d}"))
                        })
                        .collect::<Result<_, String>>()?,
                    timeout: Duration::from_millis(c.timeout_ms),
                    ok,
                    failed,
                    duration,
                    retrying: c.retries.as_ref().map(|r| {
                        let policy = RetryPolicy::new(r);
                        CallRetries {
                            budget: RetryBudget::new(
                                policy.budget_percent,
                                policy.budget_min_per_second,
                            ),
                            policy,
                            metrics: RetryMetrics::new(
                                &RouteId(Arc::from(format!("{rule_id}/{}", c.name))),
                                metrics,
                            ),
                        }
                    }),
                    spec: c.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(AggregateRuntime {
            calls,
            forward: a
                .forward_headers
                .iter()
                .map(|h| HeaderName::from_bytes(h.as_bytes()).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
            max_bytes: usize::try_from(a.max_call_bytes).unwrap_or(usize::MAX),
            flat: a.merge == snap::Merge::Flat,
        })
    }

    /// Each call's endpoint set (what an endpoint delta changes in place).
    pub fn endpoint_sets<'a>(&'a self, f: &mut impl FnMut(&'a EndpointSet)) {
        for c in &self.calls {
            f(&c.endpoints);
        }
    }

    /// Runs the calls and builds the answer. `log` receives every call's outcome.
    // Calls, their start flags and their results are parallel vectors indexed by call.
    #[allow(clippy::needless_range_loop)]
    pub async fn answer(
        &self,
        upstream: &Upstream,
        captures: &[(&str, &str)],
        request: Asking<'_>,
        deadline: Duration,
        log: &mut Vec<CallLog>,
    ) -> Result<Response<ProxyBody>, Problem> {
        let Asking {
            headers,
            request_id,
            client,
        } = request;
        let deadline = Instant::now() + deadline;
        let n = self.calls.len();
        let mut results: Vec<Option<Result<Value, String>>> = vec![None; n];
        let mut started = vec![false; n];
        let mut running = FuturesUnordered::new();
        loop {
            // Start every call whose dependencies are done, again until nothing changes: a
            // call failing here (its dependency failed) can unblock a call declared before it.
            let mut progressed = true;
            while progressed {
                progressed = false;
                for i in 0..n {
                    if started[i] || self.calls[i].deps.iter().any(|d| results[*d].is_none()) {
                        continue;
                    }
                    started[i] = true;
                    progressed = true;
                    let c = &self.calls[i];
                    if let Some(d) = c.deps.iter().find(|d| matches!(results[**d], Some(Err(_)))) {
                        let why = format!("dependency {} failed", self.calls[*d].spec.name);
                        self.record(
                            i,
                            Err(Failure::Other(why)),
                            None,
                            Duration::ZERO,
                            &mut results,
                            log,
                        )?;
                        continue;
                    }
                    let target = target::render(&c.spec.target, captures, |call| {
                        let j = self.calls.iter().position(|x| x.spec.name == call)?;
                        results[j].as_ref()?.as_ref().ok()
                    });
                    match target {
                        Ok(t) => {
                            running.push(self.call(upstream, i, t, headers, request_id, client))
                        }
                        Err(why) => self.record(
                            i,
                            Err(Failure::Other(why)),
                            None,
                            Duration::ZERO,
                            &mut results,
                            log,
                        )?,
                    }
                }
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some(done) = running.next() => {
                    self.record(done.index, done.result, done.status, done.elapsed, &mut results, log)?;
                }
                () = tokio::time::sleep_until(deadline) => {
                    // The deadline: required calls still running fail the answer; optional ones
                    // are reported. Dropping `running` cancels them all.
                    let pending: Vec<usize> = (0..n).filter(|i| started[*i] && results[*i].is_none()).collect();
                    for i in pending {
                        let why = Failure::Timeout("the aggregate's deadline passed".into());
                        self.record(i, Err(why), None, Duration::ZERO, &mut results, log)?;
                    }
                    for i in (0..n).filter(|i| !started[*i]) {
                        let why = Failure::Timeout("not started before the deadline".into());
                        self.record(i, Err(why), None, Duration::ZERO, &mut results, log)?;
                    }
                    break;
                }
            }
        }
        let never: Vec<usize> = (0..n).filter(|i| results[*i].is_none()).collect();
        for i in never {
            let why = Failure::Other("never started: a dependency did not finish".into());
            self.record(i, Err(why), None, Duration::ZERO, &mut results, log)?;
        }
        Ok(self.build_answer(results))
    }

    /// Records a call's end; a failed required call ends the whole answer.
    fn record(
        &self,
        i: usize,
        result: Result<Value, Failure>,
        status: Option<u16>,
        elapsed: Duration,
        results: &mut [Option<Result<Value, String>>],
        log: &mut Vec<CallLog>,
    ) -> Result<(), Problem> {
        let c = &self.calls[i];
        log.push(CallLog {
            call: c.spec.name.clone(),
            status,
            ms: (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            error: result.as_ref().err().map(|f| f.reason().to_string()),
        });
        match result {
            Ok(v) => {
                c.ok.inc();
                results[i] = Some(Ok(v));
                Ok(())
            }
            Err(f) => {
                c.failed.inc();
                if c.spec.required {
                    let (kind, why) = match &f {
                        Failure::Timeout(r) => (ProblemKind::UpstreamTimeout, r),
                        Failure::Other(r) => (ProblemKind::UpstreamUnavailable, r),
                    };
                    return Err(Problem::new(
                        kind,
                        format!("required call {} failed: {why}", c.spec.name),
                    ));
                }
                results[i] = Some(Err(f.reason().to_string()));
                Ok(())
            }
        }
    }

    fn build_answer(&self, results: Vec<Option<Result<Value, String>>>) -> Response<ProxyBody> {
        let mut errors = Vec::new();
        let mut failed = Vec::new();
        let parts = self
            .calls
            .iter()
            .zip(results)
            .map(|(c, r)| {
                let value = match r {
                    Some(Ok(v)) => Some(v),
                    Some(Err(why)) => {
                        errors.push(json!({"call": c.spec.name, "error": why}));
                        failed.push(c.spec.name.as_str());
                        None
                    }
                    None => None,
                };
                shape::Part {
                    key: c.spec.key.clone(),
                    value,
                }
            })
            .collect();
        let (mut body, collisions) = shape::merge(parts, self.flat);
        for c in collisions {
            errors.push(json!({"error": c}));
        }
        if !errors.is_empty() {
            body.insert("_errors".into(), Value::Array(errors));
        }
        let mut resp = Response::new(full(Bytes::from(Value::Object(body).to_string())));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if !failed.is_empty()
            && let Ok(v) = HeaderValue::from_str(&failed.join(", "))
        {
            resp.headers_mut().insert(ERRORS_HEADER, v);
        }
        resp
    }

    /// One call: balance, send, check, parse, shape.
    async fn call(
        &self,
        upstream: &Upstream,
        index: usize,
        target: String,
        headers: &HeaderMap,
        request_id: &HeaderValue,
        client: std::net::IpAddr,
    ) -> Done {
        let c = &self.calls[index];
        let started = Instant::now();
        let mut status = None;
        let result = async {
            // Held until the call's answer has been read.
            let _place = match c.endpoints.state.as_ref().and_then(|s| s.bounds.as_ref()) {
                Some(bounds) => Some(
                    bounds
                        .admit(c.timeout)
                        .await
                        .map_err(|p| Failure::Other(p.detail))?,
                ),
                None => None,
            };
            // Balanced as the backend's Policy says: a consistent-hash key from the client's
            // request, least request counting the call while its answer is read.
            let endpoint = c.endpoints.pick(c.endpoints.hash_key(headers, client));
            let _counted = endpoint
                .as_ref()
                .filter(|_| {
                    c.endpoints
                        .state
                        .as_ref()
                        .is_some_and(|s| s.algorithm == snap::LoadBalancer::LeastRequest)
                })
                .and_then(|e| e.health.as_ref())
                .map(crate::upstream::backend_state::InFlightAt::new);
            let endpoint = endpoint.ok_or_else(|| {
                Failure::Other(format!(
                    "backend {} has no ready endpoint",
                    c.endpoints.name
                ))
            })?;
            let uri = Uri::try_from(target)
                .map_err(|_| Failure::Other("the call's URL is not valid".into()))?;
            let mut req = Request::get(uri);
            let h = req
                .headers_mut()
                .expect("a new request builder has headers");
            for name in &self.forward {
                for v in headers.get_all(name) {
                    h.append(name.clone(), v.clone());
                }
            }
            h.insert(X_REQUEST_ID.clone(), request_id.clone());
            h.insert(HOST, endpoint.host.clone());
            h.insert(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            );
            let (head, _) = req
                .body(())
                .map_err(|e| Failure::Other(e.to_string()))?
                .into_parts();
            let exchange = async {
                let resp = match &c.retrying {
                    None => {
                        let resp = upstream
                            .send(
                                &endpoint,
                                &head,
                                UpstreamBody::Empty,
                                c.timeout,
                                None,
                                AnswerFields::Map,
                            )
                            .await
                            .map_err(|e| e.problem(&endpoint.authority));
                        c.endpoints.record(
                            &endpoint,
                            resp.as_ref().is_ok_and(|r| !r.status().is_server_error()),
                        );
                        resp
                    }
                    // Each try's outcome reaches outlier detection there; only calls whose first
                    // try failed carry the retries' (boxed) future.
                    Some(r) => {
                        let plan = RetryPlan {
                            policy: &r.policy,
                            budget: &r.budget,
                            metrics: &r.metrics,
                            timeout: c.timeout,
                            fields: AnswerFields::Map,
                        };
                        let body = Replay::Streaming(UpstreamBody::Empty, None);
                        upstream
                            .send_retrying(&c.endpoints, &endpoint, &head, body, plan)
                            .await
                            .outcome
                    }
                };
                let resp = resp.map_err(|p| match p.kind {
                    ProblemKind::UpstreamTimeout => {
                        Failure::Timeout(format!("no answer within {:?}", c.timeout))
                    }
                    _ => Failure::Other(format!("cannot reach the backend: {}", p.detail)),
                })?;
                status = Some(resp.status().as_u16());
                if !resp.status().is_success() {
                    return Err(Failure::Other(format!("status {}", resp.status().as_u16())));
                }
                let json_type = resp
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(|t| {
                        t.split(';')
                            .next()
                            .unwrap_or_default()
                            .trim()
                            .to_ascii_lowercase()
                    })
                    .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
                if !json_type {
                    return Err(Failure::Other(
                        "the answer is not JSON (content-type)".into(),
                    ));
                }
                let body = Limited::new(resp.into_body(), self.max_bytes)
                    .collect()
                    .await
                    .map_err(|e| {
                        if e.is::<http_body_util::LengthLimitError>() {
                            Failure::Other(format!(
                                "the answer is larger than {} bytes",
                                self.max_bytes
                            ))
                        } else {
                            Failure::Other(format!("reading the answer: {e}"))
                        }
                    })?
                    .to_bytes();
                serde_json::from_slice::<Value>(&body)
                    .map_err(|e| Failure::Other(format!("the answer is not valid JSON: {e}")))
            };
            tokio::time::timeout(c.timeout, exchange)
                .await
                .map_err(|_| Failure::Timeout(format!("no answer within {:?}", c.timeout)))?
        }
        .await
        .map(|v| shape::shape(v, &c.spec.select, c.spec.extract.as_deref()));
        let elapsed = started.elapsed();
        c.duration.observe(elapsed.as_secs_f64());
        Done {
            index,
            result,
            status,
            elapsed,
        }
    }
}
