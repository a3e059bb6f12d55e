//! The forward action: pick a backend by weight and one of its endpoints round robin, send the
//! transformed request through [`crate::upstream`], and stream the answer back with its
//! hop-by-hop headers removed. The request body streams too; the rule's timeout starts once it
//! has been sent.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use frontdesk_snapshot as snap;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Input;
use crate::body::{BoxError, Observed, OnComplete, ProxyBody};
use crate::exchange::Exchange;
use crate::forwarding::remove_hop_by_hop;
use crate::problem::{Problem, ProblemKind};
use crate::upstream::balancer::{Balancer, EndpointSet};
use crate::upstream::{Upstream, UpstreamBody};

pub struct Forward {
    balancer: Balancer,
}

impl Forward {
    pub fn build(backends: &[snap::Backend], upstream: &Upstream) -> Result<Self, String> {
        Ok(Forward {
            balancer: Balancer::new(
                backends
                    .iter()
                    .map(|b| {
                        Ok((
                            EndpointSet::new(b.name.clone(), &b.endpoints, upstream)?,
                            b.weight,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            ),
        })
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
            let backend = self.balancer.pick().ok_or_else(|| {
                Problem::new(
                    ProblemKind::NoEndpoints,
                    "every backend of this route has weight 0",
                )
            })?;
            let endpoint = backend.next().ok_or_else(|| {
                tracing::debug!(backend = %backend.name, "no ready endpoint");
                Problem::new(
                    ProblemKind::NoEndpoints,
                    "the backend has no ready endpoint",
                )
            })?;
            ex.upstream(&endpoint.authority);
            let mut req = req;
            // An HTTP/1.0 client without Host, on a route without hosts: HTTP/1.1 backends need one.
            req.headers_mut()
                .entry(http::header::HOST)
                .or_insert_with(|| endpoint.host.clone());
            let (req, body_sent) = upstream_body(req, ex.bytes_in());
            let sent = Instant::now();
            let resp = input
                .upstream
                .send(endpoint, req, input.timeout, body_sent, input.answer_fields)
                .await?;
            input
                .upstream_duration
                .observe(sent.elapsed().as_secs_f64());
            let (mut head, body) = resp.into_parts();
            remove_hop_by_hop(&mut head.headers);
            Ok(Response::from_parts(head, body.map_err(Into::into).boxed()))
        }
    }
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
    async fn no_endpoint_or_no_weight_is_a_503_problem_without_a_connection() {
        let upstream = Upstream::new(Default::default());
        let none = snap::Backend {
            name: "orders".into(),
            endpoints: vec![],
            weight: 1,
        };
        let f = Forward::build(std::slice::from_ref(&none), &upstream).unwrap();
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
        let zero = snap::Backend { weight: 0, ..none };
        let f = Forward::build(&[zero], &upstream).unwrap();
        let req = Request::new(Full::new(Bytes::new()));
        let p = f.run(req, &input, &mut ex).await.unwrap_err();
        assert_eq!(p.kind, ProblemKind::NoEndpoints);
    }
}
