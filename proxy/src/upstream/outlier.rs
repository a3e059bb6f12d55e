//! Passive outlier detection: an endpoint that fails `consecutive_failures` requests in a row
//! (5xx answers, connections refused or broken before an answer, timeouts) leaves its
//! backend's balancer for a while, and comes back by itself when the while is over.
//!
//! The n-th ejection of an endpoint that keeps failing soon after it returns lasts n times the
//! base ejection time, up to a maximum; no more than a share of the backend's endpoints is out
//! at once. Ejections and returns are log lines and metrics.
//!
//! Per request it costs one atomic load when nothing is ejected (the balancer's check) and an
//! atomic load per answer (the failure count is reset only when it is not zero already); the
//! clock is read only while an endpoint is out or after a failure.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use frontdesk_snapshot as snap;
use http::uri::Authority;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

use super::backend_state::EndpointHealth;
use crate::metrics::{BackendLabels, Metrics};

/// The ejection counters of one backend of one rule.
struct OutlierMetrics {
    ejections: Counter,
    ejected: Gauge,
}

/// One backend's outlier detection.
pub struct Outliers {
    consecutive: u32,
    base_ms: u64,
    max_ms: u64,
    max_percent: u32,
    epoch: Instant,
    /// Endpoints out now (or whose time is up and nobody picked them since).
    ejected: AtomicU32,
    metrics: OutlierMetrics,
    /// For log lines: the rule and the backend.
    name: String,
}

impl Outliers {
    /// `None` when the circuit breaker does not eject (`consecutive_failures: 0`).
    pub fn new(
        c: &snap::CircuitBreaker,
        name: String,
        labels: &BackendLabels,
        metrics: &Metrics,
    ) -> Option<Self> {
        // One statement each: a Family's read guard must be gone before the next get_or_create.
        let ejections = metrics.upstream_ejections.get_or_create(labels).clone();
        let ejected = metrics
            .upstream_ejected_endpoints
            .get_or_create(labels)
            .clone();
        (c.consecutive_failures > 0).then(|| Outliers {
            consecutive: c.consecutive_failures,
            base_ms: c.ejection_time_ms.max(1),
            max_ms: c.max_ejection_time_ms.max(c.ejection_time_ms).max(1),
            max_percent: c.max_ejection_percent,
            epoch: Instant::now(),
            ejected: AtomicU32::new(0),
            metrics: OutlierMetrics { ejections, ejected },
            name,
        })
    }

    fn now_ms(&self) -> u64 {
        // At least 1: 0 means "in".
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    /// Whether any endpoint may be out: when not, the balancer looks no further.
    #[inline]
    pub fn any_ejected(&self) -> bool {
        self.ejected.load(Relaxed) > 0
    }

    /// Whether the endpoint is out now; one whose time is up comes back here.
    pub fn is_out(&self, h: &EndpointHealth, endpoint: &Authority) -> bool {
        let until = h.until.load(Relaxed);
        if until == 0 {
            return false;
        }
        if self.now_ms() < until {
            return true;
        }
        self.end_ejection(h, endpoint);
        false
    }

    /// Ends the endpoint's ejection, if it has one: it starts counting failures afresh.
    pub(super) fn end_ejection(&self, h: &EndpointHealth, endpoint: &Authority) {
        let until = h.until.load(SeqCst);
        if until != 0 && h.until.compare_exchange(until, 0, SeqCst, SeqCst).is_ok() {
            h.failures.store(0, Relaxed);
            self.ejected.fetch_sub(1, Relaxed);
            self.metrics.ejected.dec();
            tracing::info!(backend = %self.name, %endpoint, "an ejected endpoint is back in the balancer");
        }
    }

    /// Notes how a request to the endpoint went (`ok`: answered below 500), ejecting it when
    /// it failed too often in a row and the backend (`endpoints` of them) can spare it.
    pub fn record(&self, h: &EndpointHealth, endpoint: &Authority, ok: bool, endpoints: usize) {
        if ok {
            if h.failures.load(Relaxed) != 0 {
                h.failures.store(0, Relaxed);
            }
            return;
        }
        // Out already (answers of requests sent before it was ejected, or of traffic while
        // every endpoint is out), or no longer the backend's: nothing to count.
        if self.is_out(h, endpoint) || h.retired.load(SeqCst) {
            return;
        }
        if h.failures.fetch_add(1, Relaxed) + 1 < self.consecutive {
            return;
        }
        let most = (endpoints as u64 * u64::from(self.max_percent) / 100).max(1) as u32;
        if self
            .ejected
            .fetch_update(Relaxed, Relaxed, |n| (n < most).then_some(n + 1))
            .is_err()
        {
            tracing::debug!(backend = %self.name, %endpoint, "an endpoint failing in a row stays in: the most the backend may have ejected are");
            return;
        }
        let now = self.now_ms();
        // Ejected again soon after the last ejection ended: out longer.
        let times = if now > h.last_until.load(Relaxed).saturating_add(self.base_ms) {
            1
        } else {
            h.times.load(Relaxed).saturating_add(1)
        };
        let out_for = self
            .base_ms
            .saturating_mul(u64::from(times))
            .min(self.max_ms);
        if h.until
            .compare_exchange(0, now.saturating_add(out_for), SeqCst, SeqCst)
            .is_err()
        {
            // Another worker ejected it meanwhile.
            self.ejected.fetch_sub(1, Relaxed);
            return;
        }
        if h.retired.load(SeqCst) {
            // It left the backend meanwhile: not counted, and back in as it was retired.
            if h.until
                .compare_exchange(now.saturating_add(out_for), 0, SeqCst, SeqCst)
                .is_ok()
            {
                self.ejected.fetch_sub(1, Relaxed);
            }
            return;
        }
        h.times.store(times, Relaxed);
        h.last_until.store(now.saturating_add(out_for), Relaxed);
        h.failures.store(0, Relaxed);
        self.metrics.ejections.inc();
        self.metrics.ejected.inc();
        tracing::warn!(
            backend = %self.name,
            %endpoint,
            failures = self.consecutive,
            out_for = %humantime::format_duration(Duration::from_millis(out_for)),
            "an endpoint failing in a row is ejected from the balancer"
        );
    }
}

impl Drop for Outliers {
    /// The gauge outlives this state (the next settings of the backend count on it): what this
    /// one added goes.
    fn drop(&mut self) {
        self.metrics
            .ejected
            .dec_by(i64::from(self.ejected.load(Relaxed)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outliers(consecutive: u32, max_percent: u32) -> Outliers {
        let c = snap::CircuitBreaker {
            consecutive_failures: consecutive,
            ejection_time_ms: 1_000,
            max_ejection_time_ms: 2_500,
            max_ejection_percent: max_percent,
            ..Default::default()
        };
        let labels = BackendLabels {
            route: crate::metrics::RouteId("r".into()),
            backend: "b".into(),
        };
        Outliers::new(&c, "r/b".into(), &labels, &Metrics::new()).unwrap()
    }

    fn records(n: usize) -> Vec<EndpointHealth> {
        (0..n).map(|_| EndpointHealth::default()).collect()
    }

    fn authorities(n: usize) -> Vec<Authority> {
        (0..n)
            .map(|i| format!("10.0.0.{i}:80").parse().unwrap())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn failures_in_a_row_eject_for_a_growing_time_and_successes_forgive() {
        let o = outliers(3, 100);
        let a = authorities(2);
        let h = records(a.len());
        let fail = |n| (0..n).for_each(|_| o.record(&h[0], &a[0], false, 2));
        fail(2);
        o.record(&h[0], &a[0], true, 2);
        fail(2);
        assert!(
            !o.any_ejected(),
            "a success in between starts the count again"
        );
        fail(1);
        assert!(o.any_ejected() && o.is_out(&h[0], &a[0]));
        assert_eq!(o.metrics.ejections.get(), 1);
        tokio::time::advance(Duration::from_millis(1_001)).await;
        assert!(!o.is_out(&h[0], &a[0]) && !o.any_ejected());
        // Failing again right after it returned: out twice as long, then capped at 2.5 s.
        fail(3);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert!(o.is_out(&h[0], &a[0]));
        tokio::time::advance(Duration::from_millis(501)).await;
        assert!(!o.is_out(&h[0], &a[0]));
        fail(3);
        tokio::time::advance(Duration::from_millis(2_499)).await;
        assert!(o.is_out(&h[0], &a[0]));
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!o.is_out(&h[0], &a[0]));
        // Long after: a first ejection again.
        tokio::time::advance(Duration::from_secs(60)).await;
        fail(3);
        tokio::time::advance(Duration::from_millis(1_001)).await;
        assert!(!o.is_out(&h[0], &a[0]));
        assert_eq!(o.metrics.ejected.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_share_is_out_and_at_least_one_may_be() {
        let o = outliers(1, 50);
        let a = authorities(4);
        let h = records(a.len());
        for i in 0..4 {
            o.record(&h[i], &a[i], false, 4);
        }
        let out = (0..4).filter(|i| o.is_out(&h[*i], &a[*i])).count();
        assert_eq!(out, 2);
        let one = outliers(1, 10);
        let h = records(2);
        one.record(&h[0], &a[0], false, 2);
        one.record(&h[1], &a[1], false, 2);
        assert!(one.is_out(&h[0], &a[0]) && !one.is_out(&h[1], &a[1]));
    }
}
