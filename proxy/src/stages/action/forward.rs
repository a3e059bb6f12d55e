//! The forward action: pick a backend by weight and one of its endpoints round robin, send the
//! transformed request through [`crate::upstream`], and stream the answer back with its
//! hop-by-hop headers removed. The request body streams too; the rule's timeout starts once it
//! has been sent.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use frontdesk_snapshot as snap;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Input;
use super::mirror::Mirrors;
use crate::body::{BoxError, Observed, OnComplete, ProxyBody};
use crate::exchange::Exchange;
use crate::forwarding::remove_hop_by_hop;
use crate::http1::raw_fields::RawFields;
use crate::metrics::{Metrics, RouteId};
use crate::problem::{Problem, ProblemKind};
use crate::tunnel;
use crate::upstream::backend_state::{BackendSettings, InFlightAt};
use crate::upstream::balancer::{Balancer, EndpointSet};
use crate::upstream::breaker::Holding;
use crate::upstream::response_body::ResponseBody;
use crate::upstream::retry::{
    REPLAY_LIMIT, Replay, RetryBudget, RetryMetrics, RetryPlan, RetryPolicy,
};
use crate::upstream::{Endpoint, TryError, Upstream, UpstreamBody};

pub struct Forward {
    balancer: Balancer,
    /// A backend speaks HTTP/2 (`protocol` other than `http1`).
    speaks_h2: bool,
    /// The rule's retries, when it has any.
    retrying: Option<Retrying>,
    /// Backends that get a copy of some requests (Gateway API RequestMirror).
    mirrors: Mirrors,
}

struct Retrying {
    policy: RetryPolicy,
    /// One per backend, in the balancer's order.
    budgets: Vec<RetryBudget>,
    metrics: RetryMetrics,
}

impl Forward {
    pub fn build(
        backends: &[snap::Backend],
        retries: Option<&snap::Retries>,
        mirrors: &[snap::Mirror],
        settings: &BackendSettings,
        route: &RouteId,
        metrics: &Metrics,
        upstream: &Upstream,
    ) -> Result<Self, String> {
        let retrying = retries.map(|r| {
            let policy = RetryPolicy::new(r);
            Retrying {
                budgets: backends
                    .iter()
                    .map(|_| RetryBudget::new(policy.budget_percent, policy.budget_min_per_second))
                    .collect(),
                policy,
                metrics: RetryMetrics::new(route, metrics),
            }
        });
        Ok(Forward {
            balancer: Balancer::new(
                backends
                    .iter()
                    .map(|b| {
                        let state = upstream.backend_state(route, &b.name, settings, metrics);
                        Ok((
                            EndpointSet::new(b, upstream, state, settings.connection.as_ref())?,
                            b.weight,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            retrying,
            speaks_h2: backends
                .iter()
                .any(|b| b.protocol != snap::BackendProtocol::Http1),
            mirrors: Mirrors::build(mirrors, settings, upstream)?,
        })
    }

    pub fn speaks_h2(&self) -> bool {
        self.speaks_h2
    }

    /// Each backend's endpoint set, then each mirror's (what an endpoint delta changes in
    /// place).
    pub fn endpoint_sets<'a>(&'a self, f: &mut impl FnMut(&'a EndpointSet)) {
        for set in &self.balancer.backends {
            f(set);
        }
        self.mirrors.endpoint_sets(f);
    }

    /// Whether picking a backend reads the request's fields (consistent hashing on a header
    /// or cookie).
    pub fn reads_fields(&self) -> bool {
        // A mirrored request's copy is made from its fields.
        !self.mirrors.is_empty()
            || self
                .balancer
                .backends
                .iter()
                .any(EndpointSet::hashes_fields)
    }

    /// Sends the (already transformed) request to a backend.
    pub fn run<B>(
        &self,
        req: Request<B>,
        input: &Input<'_>,
        ex: &mut Exchange,
    ) -> impl Future<Output = Result<Response<ProxyBody>, Problem>>
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        async move {
            if !self.mirrors.is_empty() {
                self.mirrors.send(&req, input.timeout);
            }
            let (index, backend) = self.balancer.pick().ok_or_else(|| {
                Problem::new(
                    ProblemKind::NoEndpoints,
                    "every backend of this route has weight 0",
                )
            })?;
            // What the request holds while it is in flight: its place among the backend's
            // requests (when it has bounds) and its endpoint's count (least request).
            let mut held = None;
            let endpoint = match &backend.state {
                None => backend.next(),
                Some(state) => {
                    let place = match &state.bounds {
                        // The wait for one, rare, is boxed: most requests find a place free.
                        Some(bounds) => Some(match bounds.free_place() {
                            Some(place) => place,
                            None => Box::pin(bounds.admit(input.timeout)).await?,
                        }),
                        None => None,
                    };
                    let endpoint = backend.pick(backend.hash_key(req.headers(), ex.client.ip()));
                    let counted = endpoint
                        .as_ref()
                        .filter(|_| state.algorithm == snap::LoadBalancer::LeastRequest)
                        .and_then(|e| e.health.as_ref())
                        .map(InFlightAt::new);
                    held = Some((place, counted));
                    endpoint
                }
            };
            let endpoint = endpoint.ok_or_else(|| {
                tracing::debug!(backend = %backend.name, "no ready endpoint");
                if backend.invalid {
                    Problem::new(
                        ProblemKind::InvalidBackend,
                        "this share of the route's requests goes to a backend reference that is not valid",
                    )
                } else {
                    Problem::new(
                        ProblemKind::NoEndpoints,
                        "the backend has no ready endpoint",
                    )
                }
            })?;
            ex.upstream(&endpoint.authority);
            let mut req = req;
            // A WebSocket ask always has its fields in the map.
            let relayed = req.extensions().get::<RawFields>().is_some();
            let upgrading = !relayed && req.extensions().get::<tunnel::Asked>().is_some();
            if upgrading {
                tunnel::ask_backend(req.headers_mut());
            }
            // An HTTP/1.0 client without Host, on a route without hosts: HTTP/1.1 backends need
            // one. (Fields kept as sent hold the Host line of a client that addressed a host.)
            if input.host.is_none() || !relayed {
                req.headers_mut()
                    .entry(http::header::HOST)
                    .or_insert_with(|| endpoint.host.clone());
            }
            let resp = match &self.retrying {
                None => {
                    let (req, body_sent) = upstream_body(req, ex.bytes_in());
                    let (head, body) = req.into_parts();
                    let sent = Instant::now();
                    let resp = input
                        .upstream
                        .send(
                            &endpoint,
                            &head,
                            body,
                            input.timeout,
                            body_sent,
                            input.answer_fields,
                        )
                        .await;
                    if backend.state.is_some() {
                        record(backend, &endpoint, &resp);
                    }
                    let resp = resp.map_err(|e| e.problem(&endpoint.authority))?;
                    input
                        .upstream_duration
                        .observe(sent.elapsed().as_secs_f64());
                    resp
                }
                // Not boxed: its common case (a bodiless request on a warm connection) is as
                // small as the single send; the rest of the retries' machinery boxes itself.
                Some(retrying) => {
                    retrying
                        .send(req, index, backend, &endpoint, input, ex)
                        .await?
                }
            };
            let (mut head, body) = resp.into_parts();
            let switched = head.status == StatusCode::SWITCHING_PROTOCOLS;
            if switched && !(upgrading && tunnel::switched_to_websocket(&head.headers)) {
                // Its connection goes with the answer, closed.
                tracing::debug!(endpoint = %endpoint.authority, "a backend switched protocols unasked");
                return Err(Problem::new(
                    ProblemKind::UpstreamUnavailable,
                    "the backend switched to a protocol the request did not ask for",
                ));
            }
            remove_hop_by_hop(&mut head.headers);
            if switched {
                tunnel::accept_switch(&mut head.headers);
            }
            let body = match held {
                None | Some((None, None)) => body.map_err(Into::into).boxed(),
                // Let go when the body has been read (or dropped).
                Some(held) => Holding::new(body, held).map_err(Into::into).boxed(),
            };
            Ok(Response::from_parts(head, body))
        }
    }
}

impl Retrying {
    /// Sends the request to `endpoint` of `backend` (the balancer's `index`-th), and again as
    /// the rule's retries allow.
    fn send<'a, B>(
        &'a self,
        req: Request<B>,
        index: usize,
        backend: &'a EndpointSet,
        endpoint: &'a Endpoint,
        input: &'a Input<'_>,
        ex: &'a mut Exchange,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Problem>> + 'a
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        async move {
            let (head, body) = req.into_parts();
            // Kept for another try only when one could send it: a method that is not
            // idempotent is tried again only when it never left, body and all.
            let resend = self.policy.resends(&head.method);
            let replay = if body.is_end_stream() {
                Replay::Streaming(UpstreamBody::Empty, None)
            } else {
                // Boxed: only requests with a body carry the future that reads it.
                let declared = crate::http1::declared_length(&head);
                Box::pin(replayable(body, declared, resend, ex.bytes_in())).await?
            };
            let sent = Instant::now();
            let plan = RetryPlan {
                policy: &self.policy,
                budget: &self.budgets[index],
                metrics: &self.metrics,
                timeout: input.timeout,
                fields: input.answer_fields,
            };
            let tried = input
                .upstream
                .send_retrying(backend, endpoint, &head, replay, plan)
                .await;
            ex.upstream(&tried.endpoint.authority);
            ex.tries(tried.tries);
            let resp = tried.outcome?;
            input
                .upstream_duration
                .observe(sent.elapsed().as_secs_f64());
            Ok(resp)
        }
    }
}

/// Tells the backend's outlier detection how a single send went: a 5xx answer or a failed
/// exchange counts against the endpoint, a request body the client failed to send does not.
fn record(
    backend: &EndpointSet,
    endpoint: &Endpoint,
    resp: &Result<Response<ResponseBody>, TryError>,
) {
    match resp {
        Ok(resp) => backend.record(endpoint, !resp.status().is_server_error()),
        Err(e) if e.failure().is_none() => {}
        Err(_) => backend.record(endpoint, false),
    }
}

/// The client's body, in a form a retry can send again where it can be: read whole when a
/// retry could send it (`resend`) and its `declared` length is at most [`REPLAY_LIMIT`], else
/// streamed.
async fn replayable<B>(
    body: B,
    declared: Result<Option<u64>, &'static str>,
    resend: bool,
    bytes_in: Option<Arc<AtomicU64>>,
) -> Result<Replay, Problem>
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let small = matches!(declared, Ok(Some(n)) if n <= REPLAY_LIMIT);
    if body.is_end_stream() || !resend || !small {
        let (req, sent) = upstream_body(Request::new(body), bytes_in);
        return Ok(Replay::Streaming(req.into_body(), sent));
    }
    let read = http_body_util::Limited::new(body, REPLAY_LIMIT as usize)
        .collect()
        .await
        .map_err(|e| {
            Problem::new(
                crate::client_body::problem_kind(&e),
                "the request body could not be read",
            )
        })?
        .to_bytes();
    if let Some(counter) = bytes_in {
        counter.fetch_add(read.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(Replay::Buffered(read))
}

/// The client's body for the backend, counted for the access log when it is on, with a signal
/// that fires when it has been sent in full (`None` when there is no body).
fn upstream_body<B>(
    req: Request<B>,
    bytes_in: Option<Arc<AtomicU64>>,
) -> (Request<UpstreamBody>, Option<oneshot::Receiver<()>>)
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let (head, body) = req.into_parts();
    if body.is_end_stream() {
        return (Request::from_parts(head, UpstreamBody::Empty), None);
    }
    let (tx, rx) = oneshot::channel();
    let hook: Box<dyn OnComplete> = Box::new(BodySent(Mutex::new(Some(tx))));
    let body = Observed::new(body, bytes_in, Some(hook));
    (
        Request::from_parts(head, UpstreamBody::from_body(body)),
        Some(rx),
    )
}

/// Fires once when the request body has been sent (or dropped).
struct BodySent(Mutex<Option<oneshot::Sender<()>>>);

impl OnComplete for BodySent {
    fn complete(&self, _bytes: u64, _finished: bool) {
        if let Some(tx) = self.0.lock().take() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    #[tokio::test]
    async fn an_empty_body_is_sent_as_nothing_and_a_body_signals_when_sent() {
        let (req, sent) = upstream_body(Request::new(Full::new(Bytes::new())), None);
        assert!(sent.is_none());
        assert!(matches!(req.body(), UpstreamBody::Empty));

        let counter = Arc::new(AtomicU64::new(0));
        let (req, sent) = upstream_body(
            Request::new(Full::new(Bytes::from("hello"))),
            Some(counter.clone()),
        );
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello");
        sent.unwrap().await.unwrap();
        assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn no_endpoint_or_no_weight_is_a_503_problem_an_invalid_backend_a_500() {
        let upstream = Upstream::new(Default::default());
        let none = snap::Backend {
            tls: None,
            protocol: Default::default(),
            invalid: false,
            name: "orders".into(),
            endpoints: vec![],
            weight: 1,
        };
        let metrics = crate::metrics::Metrics::new();
        let route = RouteId("ns/r/0".into());
        let build = |backends: &[snap::Backend]| {
            Forward::build(
                backends,
                None,
                &[],
                &Default::default(),
                &route,
                &metrics,
                &upstream,
            )
            .unwrap()
        };
        let f = build(std::slice::from_ref(&none));
        let histogram = crate::metrics::Metrics::new().redis_duration.clone();
        let input = Input {
            matched: Default::default(),
            host: None,
            port: None,
            timeout: std::time::Duration::from_secs(1),
            upstream: &upstream,
            upstream_duration: &histogram,
            answer_fields: crate::upstream::AnswerFields::Map,
        };
        let mut ex = crate::exchange::tests::exchange();
        let req = Request::new(Full::new(Bytes::new()));
        let p = f.run(req, &input, &mut ex).await.unwrap_err();
        assert_eq!(p.kind, ProblemKind::NoEndpoints);
        let zero = snap::Backend {
            weight: 0,
            ..none.clone()
        };
        let f = build(&[zero]);
        let req = Request::new(Full::new(Bytes::new()));
        let p = f.run(req, &input, &mut ex).await.unwrap_err();
        assert_eq!(p.kind, ProblemKind::NoEndpoints);
        // A Gateway API reference that is not valid: its share is answered 500.
        let invalid = snap::Backend {
            invalid: true,
            ..none
        };
        let f = build(&[invalid]);
        let req = Request::new(Full::new(Bytes::new()));
        let p = f.run(req, &input, &mut ex).await.unwrap_err();
        assert_eq!(p.kind, ProblemKind::InvalidBackend);
        assert_eq!(p.kind.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
