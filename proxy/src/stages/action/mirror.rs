//! Request mirroring (Gateway API `RequestMirror`): part of a forward. Before the request is
//! sent to its backend, a copy of its head goes to each mirror whose share it falls in, in the
//! background; the mirror's answer is read to the end and dropped, its failures never reach
//! the client.
//!
//! By default a rule mirrors nothing. A request with a body is not mirrored: its body streams
//! to the backend once and is not buffered for a copy. A mirror that is slow or down costs at
//! most [`MAX_IN_FLIGHT`] copies in flight per mirror, each bounded by the rule's timeout;
//! copies beyond that are dropped, so a mirror never holds up or starves the main traffic.

use std::sync::Arc;
use std::time::Duration;

use frontdesk_snapshot as snap;
use http::Request;
use http_body::Body;
use tokio::sync::Semaphore;

use crate::upstream::Upstream;
use crate::upstream::backend_state::BackendSettings;
use crate::upstream::balancer::EndpointSet;

/// Copies in flight to one mirror, beyond which copies are dropped.
pub const MAX_IN_FLIGHT: usize = 128;

/// A rule's mirrors (usually none).
#[derive(Default)]
pub struct Mirrors(Vec<Mirroring>);

struct Mirroring {
    backend: EndpointSet,
    /// In millionths of the requests.
    share_ppm: u32,
    in_flight: Arc<Semaphore>,
}

impl Mirrors {
    pub fn build(
        mirrors: &[snap::Mirror],
        settings: &BackendSettings,
        upstream: &Upstream,
    ) -> Result<Self, String> {
        let connection = settings.connection.as_ref();
        (mirrors.iter())
            .map(|m| {
                Ok(Mirroring {
                    backend: EndpointSet::new(&m.backend, upstream, None, connection)?,
                    share_ppm: m.share_ppm,
                    in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
                })
            })
            .collect::<Result<_, String>>()
            .map(Mirrors)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each mirror's endpoint set (what an endpoint delta changes in place).
    pub fn endpoint_sets<'a>(&'a self, f: &mut impl FnMut(&'a EndpointSet)) {
        for m in &self.0 {
            f(&m.backend);
        }
    }

    /// Sends a copy of the (already transformed) request's head to each mirror whose share it
    /// falls in, each copy within `timeout`. Returns how many copies were sent.
    pub fn send<B: Body>(&self, req: &Request<B>, timeout: Duration) -> usize {
        if !req.body().is_end_stream() {
            tracing::debug!("a request with a body is not mirrored");
            return 0;
        }
        let mut sent = 0;
        for m in &self.0 {
            if m.share_ppm < 1_000_000 && fastrand::u32(..1_000_000) >= m.share_ppm {
                continue;
            }
            let Ok(permit) = m.in_flight.clone().try_acquire_owned() else {
                tracing::debug!(mirror = %m.backend.name, "too many mirrored requests in flight; this copy is dropped");
                continue;
            };
            let Some(endpoint) = m.backend.next() else {
                continue;
            };
            let (mut head, ()) = Request::new(()).into_parts();
            head.method = req.method().clone();
            head.uri = req.uri().clone();
            head.version = req.version();
            head.headers = req.headers().clone();
            head.headers
                .entry(http::header::HOST)
                .or_insert_with(|| endpoint.host.clone());
            crate::upstream::mirror(endpoint, head, timeout, permit);
            sent += 1;
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::Full;

    use super::*;

    fn mirrors(share_ppm: u32) -> Mirrors {
        // Nothing listens on port 9 of this address: copies fail in the background.
        let backend = snap::Backend {
            tls: None,
            protocol: Default::default(),
            invalid: false,
            name: "mirror".into(),
            endpoints: vec!["127.0.0.1:9".into()],
            weight: 1,
        };
        let m = [snap::Mirror { backend, share_ppm }];
        Mirrors::build(&m, &Default::default(), &Upstream::new(Default::default())).unwrap()
    }

    #[tokio::test]
    async fn bodiless_requests_are_copied_by_share_and_bodies_never() {
        let all = mirrors(1_000_000);
        let get = Request::new(Full::new(Bytes::new()));
        assert_eq!(all.send(&get, Duration::from_secs(1)), 1);
        let post = Request::new(Full::new(Bytes::from_static(b"{}")));
        assert_eq!(all.send(&post, Duration::from_secs(1)), 0);
        let none = mirrors(0);
        let sent: usize = (0..1000)
            .map(|_| none.send(&get, Duration::from_secs(1)))
            .sum();
        assert_eq!(sent, 0);
        // A fresh mirror each time: copies still in flight do not count against the share.
        let sent: usize = (0..1000)
            .map(|_| mirrors(500_000).send(&get, Duration::from_secs(1)))
            .sum();
        assert!((350..650).contains(&sent), "{sent} of 1000 copied at 50%");
    }

    /// A mirror that does not answer holds at most MAX_IN_FLIGHT copies; the rest are dropped.
    #[tokio::test(start_paused = true)]
    async fn copies_in_flight_are_bounded() {
        let m = mirrors(1_000_000);
        // Taken as if that many copies were waiting on a mirror that never answers.
        let held = m.0[0]
            .in_flight
            .clone()
            .acquire_many_owned(MAX_IN_FLIGHT as u32)
            .await;
        let get = Request::new(Full::new(Bytes::new()));
        assert_eq!(m.send(&get, Duration::from_secs(1)), 0);
        drop(held);
        assert_eq!(m.send(&get, Duration::from_secs(1)), 1);
    }
}
