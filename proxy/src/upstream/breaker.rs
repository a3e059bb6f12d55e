//! Circuit breaking, per backend of a rule (a Policy's `circuitBreaker`): at most
//! `max_requests` in flight to the backend from this proxy, at most `max_pending_requests`
//! waiting for one of them to finish, and the rest refused at once with 503 `circuit-open`,
//! so a slow backend cannot hold every connection and every client. (The same section's
//! outlier detection is [`super::outlier`].)

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;

use frontdesk_snapshot as snap;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use crate::metrics::{BackendLabels, Metrics};
use crate::problem::{Problem, ProblemKind};

/// One backend's bounds.
pub struct Bounds {
    /// Places taken.
    in_flight: AtomicU32,
    max_requests: u32,
    pending: AtomicU32,
    max_pending: u32,
    /// Wakes a waiting request when a place is given back.
    freed: Notify,
    /// Requests refused by the bounds.
    overflow: Counter,
}

/// A request's place among the backend's requests in flight; given back when dropped.
pub struct InFlight(Arc<Bounds>);

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlight")
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // SeqCst here and where a waiter counts itself and looks: one of the two sees the
        // other, so a place given back never misses a waiter.
        self.0.in_flight.fetch_sub(1, SeqCst);
        if self.0.pending.load(SeqCst) > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// A request counted among those waiting; uncounted when dropped, however the wait ends
/// (a place, the timeout, or the request itself going away).
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

impl Bounds {
    pub fn new(c: &snap::CircuitBreaker, labels: &BackendLabels, metrics: &Metrics) -> Self {
        Bounds {
            in_flight: AtomicU32::new(0),
            max_requests: c.max_requests,
            pending: AtomicU32::new(0),
            max_pending: c.max_pending_requests,
            freed: Notify::new(),
            overflow: metrics.upstream_overflow.get_or_create(labels).clone(),
        }
    }

    fn take(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight
            .fetch_update(SeqCst, SeqCst, |n| (n < self.max_requests).then_some(n + 1))
            .ok()
            .map(|_| InFlight(self.clone()))
    }

    /// A place in flight, if one is free and no request is waiting for one (those are served
    /// first): what [`Bounds::admit`] does at once, without its future.
    pub fn free_place(self: &Arc<Self>) -> Option<InFlight> {
        if self.pending.load(Relaxed) == 0 {
            self.take()
        } else {
            None
        }
    }

    /// A place in flight: at once when there is one, else after waiting at most `wait` among
    /// at most `max_pending` others. Refused: 503 `circuit-open`.
    pub fn admit(
        self: &Arc<Self>,
        wait: Duration,
    ) -> impl Future<Output = Result<InFlight, Problem>> + '_ {
        async move {
            if let Some(place) = self.free_place() {
                return Ok(place);
            }
            let Ok(ahead) = self
                .pending
                .fetch_update(SeqCst, SeqCst, |n| (n < self.max_pending).then_some(n + 1))
            else {
                self.overflow.inc();
                return Err(circuit_open(format!(
                    "the backend has {} requests in flight and {} waiting, its most",
                    self.max_requests, self.max_pending
                )));
            };
            let _waiting = Waiting(&self.pending);
            let waited = tokio::time::timeout(wait, async {
                // Behind others already waiting, it waits its turn (Notify wakes in order)
                // before it looks for a place.
                let mut turn = ahead == 0;
                loop {
                    let freed = self.freed.notified();
                    tokio::pin!(freed);
                    // Registered before looking, so a place given back meanwhile wakes it.
                    freed.as_mut().enable();
                    if turn && let Some(place) = self.take() {
                        return place;
                    }
                    freed.await;
                    turn = true;
                }
            })
            .await;
            waited.map_err(|_| {
                self.overflow.inc();
                circuit_open(format!(
                    "the backend's {} requests in flight did not make room within {}",
                    self.max_requests,
                    humantime::format_duration(wait)
                ))
            })
        }
    }
}

fn circuit_open(detail: String) -> Problem {
    Problem::new(ProblemKind::CircuitOpen, detail)
}

/// A response body that holds what its request took (its place in flight, its endpoint's
/// in-flight count) until it has been read or is dropped.
pub struct Holding<B, H> {
    body: B,
    held: Option<H>,
}

impl<B, H> Holding<B, H> {
    pub fn new(body: B, held: H) -> Self {
        Holding {
            body,
            held: Some(held),
        }
    }
}

impl<B: Body + Unpin, H: Unpin> Body for Holding<B, H> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.held = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(max_requests: u32, max_pending: u32) -> Arc<Bounds> {
        let c = snap::CircuitBreaker {
            max_requests,
            max_pending_requests: max_pending,
            ..Default::default()
        };
        let labels = BackendLabels {
            route: crate::metrics::RouteId("r".into()),
            backend: "b".into(),
        };
        Arc::new(Bounds::new(&c, &labels, &Metrics::new()))
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_bounds_requests_wait_then_are_refused() {
        let b = breaker(2, 1);
        let first = b.admit(Duration::from_secs(1)).await.unwrap();
        let _second = b.admit(Duration::from_secs(1)).await.unwrap();
        // The third waits; a fourth finds the waiting room full.
        let third = b.admit(Duration::from_secs(1));
        tokio::pin!(third);
        assert!(futures::poll!(&mut third).is_pending());
        let p = b.admit(Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(p.kind, ProblemKind::CircuitOpen);
        assert_eq!(p.kind.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            p.detail.contains("2 requests in flight and 1 waiting"),
            "{}",
            p.detail
        );
        drop(first);
        let _third = third.await.unwrap();
        // Waiting ends with the rule's timeout.
        let p = b.admit(Duration::from_millis(300)).await.unwrap_err();
        assert!(p.detail.contains("within 300ms"), "{}", p.detail);
        assert_eq!(b.overflow.get(), 2);
        assert_eq!(b.pending.load(Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_is_no_longer_counted_and_waiters_go_first() {
        let b = breaker(1, 2);
        let first = b.admit(Duration::from_secs(1)).await.unwrap();
        {
            let waiting = b.admit(Duration::from_secs(1));
            tokio::pin!(waiting);
            assert!(futures::poll!(&mut waiting).is_pending());
            assert_eq!(b.pending.load(Relaxed), 1);
        }
        assert_eq!(
            b.pending.load(Relaxed),
            0,
            "a dropped waiter leaks no count"
        );
        // A waiter gets the place given back, not a request arriving after it.
        let waiter = b.admit(Duration::from_secs(1));
        tokio::pin!(waiter);
        assert!(futures::poll!(&mut waiter).is_pending());
        drop(first);
        let late = b.admit(Duration::from_secs(1));
        tokio::pin!(late);
        assert!(futures::poll!(&mut late).is_pending(), "the newcomer waits");
        let _place = waiter.await.unwrap();
    }

    #[tokio::test]
    async fn a_body_gives_its_place_back_at_its_end() {
        use http_body_util::BodyExt;
        let b = breaker(1, 0);
        let place = b.admit(Duration::from_secs(1)).await.unwrap();
        let mut body = Holding::new(http_body_util::Full::new(bytes::Bytes::from("hi")), place);
        assert_eq!(b.in_flight.load(Relaxed), 1);
        assert!(b.admit(Duration::from_secs(1)).await.is_err());
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "hi"
        );
        assert!(body.frame().await.is_none());
        assert_eq!(b.in_flight.load(Relaxed), 0);
    }
}
