//! What the proxy keeps about one backend of one rule when the rule's Policy says how to treat
//! it ([`BackendSettings`]): its bounds ([`Bounds`]), outlier detection ([`Outliers`]), health
//! checks ([`HealthChecks`]) and how an endpoint is chosen, with a record per endpoint
//! ([`EndpointHealth`]) that all of them read and write.
//!
//! A [`BackendState`] lives in [`super::Upstream`]'s registry for as long as a snapshot has its
//! rule, backend and settings, so a configuration change (an EndpointSlice update, another
//! Route edited) neither forgets the requests in flight nor brings an ejected or unhealthy
//! endpoint back early. A backend without such settings has none, and costs nothing per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

use frontdesk_snapshot as snap;
use http::uri::Authority;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::Endpoint;
use super::breaker::Bounds;
use super::health_check::HealthChecks;
use super::outlier::Outliers;
use crate::metrics::{BackendLabels, Metrics, RouteId};

/// How a rule's Policy treats each of its backends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendSettings {
    pub circuit_breaker: Option<snap::CircuitBreaker>,
    pub health_check: Option<snap::HealthCheck>,
    pub load_balancer: snap::LoadBalancer,
    /// Connect and idle timeouts (they need no state).
    pub connection: Option<snap::BackendConnection>,
    /// New endpoints' growing share.
    pub slow_start: Option<snap::SlowStart>,
}

impl BackendSettings {
    pub fn from_policy(p: &snap::Policy) -> Self {
        BackendSettings {
            circuit_breaker: p.circuit_breaker.clone(),
            health_check: p.health_check.clone(),
            load_balancer: p.load_balancer.clone().unwrap_or_default(),
            connection: p.backend_connection.clone(),
            slow_start: p.slow_start.clone(),
        }
    }

    /// Round robin and nothing else: no state to keep.
    pub fn is_plain(&self) -> bool {
        self.circuit_breaker.is_none()
            && self.health_check.is_none()
            && self.slow_start.is_none()
            && self.load_balancer == snap::LoadBalancer::RoundRobin
    }
}

/// One endpoint's record, kept across snapshots for as long as its backend has it.
#[derive(Debug, Default)]
pub struct EndpointHealth {
    /// Outlier detection: failures in a row.
    pub(super) failures: AtomicU32,
    /// Outlier detection: out until this many milliseconds after [`Outliers`]' epoch; 0: in.
    pub(super) until: AtomicU64,
    /// Outlier detection: when its last ejection ended (or ends).
    pub(super) last_until: AtomicU64,
    /// Outlier detection: ejections in a row (each soon after the previous one ended).
    pub(super) times: AtomicU32,
    /// Health checks: out of the balancer.
    pub(super) unhealthy: AtomicBool,
    /// Health checks: checks in a row that disagree with `unhealthy` (only the checker writes).
    pub(super) against: AtomicU32,
    /// Least request: requests in flight from this proxy.
    pub(super) in_flight: AtomicU32,
    /// The endpoint left the backend: what still arrives for it (answers to requests of an
    /// earlier snapshot, a check round under way) is not counted.
    pub(super) retired: AtomicBool,
    /// Slow start: when it joined, in milliseconds since its backend's state began, plus one;
    /// 0: established (there when the state began).
    pub(super) joined: AtomicU64,
}

/// One backend's state (see the module's documentation).
pub struct BackendState {
    pub bounds: Option<Arc<Bounds>>,
    pub outliers: Option<Outliers>,
    pub checks: Option<HealthChecks>,
    pub algorithm: snap::LoadBalancer,
    records: Mutex<HashMap<Authority, Arc<EndpointHealth>>>,
    /// The endpoints health checks ask: the latest snapshot's.
    pub(super) checked: Mutex<Vec<Endpoint>>,
    pub slow_start: Option<SlowStart>,
}

/// Slow start's clock: new endpoints' share grows linearly from `min` to 1 over `window`.
pub struct SlowStart {
    window_ms: u64,
    min: f64,
    began: Instant,
    /// When the last endpoint joined, as [`EndpointHealth::joined`] counts; 0: none yet.
    last_join: AtomicU64,
    /// Whether the backend's endpoints have been adopted once (those are established).
    adopted: AtomicBool,
}

impl SlowStart {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether an endpoint may still be warming up: when not, the balancer looks no further
    /// (and, once the last one has warmed up, not even at the clock).
    pub fn any_warming(&self) -> bool {
        let last = self.last_join.load(Relaxed);
        if last == 0 {
            return false;
        }
        if self.now_ms() < last - 1 + self.window_ms {
            return true;
        }
        // Every endpoint has warmed up: forget it, unless another joined meanwhile.
        let _ = self.last_join.compare_exchange(last, 0, Relaxed, Relaxed);
        false
    }

    /// The share of an established endpoint's requests `h`'s endpoint gets now (1: all).
    pub fn share(&self, h: &EndpointHealth) -> f64 {
        let joined = h.joined.load(Relaxed);
        if joined == 0 {
            return 1.0;
        }
        let since = self.now_ms().saturating_sub(joined - 1);
        if since >= self.window_ms {
            return 1.0;
        }
        self.min + (1.0 - self.min) * since as f64 / self.window_ms as f64
    }
}

impl BackendState {
    /// The state of `backend` of the rule `route` under `settings`. Health checks start at
    /// once in the background when a Tokio runtime is around.
    pub fn new(
        route: &RouteId,
        backend: &str,
        settings: &BackendSettings,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let labels = BackendLabels {
            route: route.clone(),
            backend: backend.to_string(),
        };
        let name = format!("{}: {backend}", route.0);
        let cb = settings.circuit_breaker.as_ref();
        let state = Arc::new(BackendState {
            bounds: cb.map(|c| Arc::new(Bounds::new(c, &labels, metrics))),
            outliers: cb.and_then(|c| Outliers::new(c, name.clone(), &labels, metrics)),
            checks: settings
                .health_check
                .as_ref()
                .map(|h| HealthChecks::new(h, name, &labels, metrics)),
            algorithm: settings.load_balancer.clone(),
            records: Mutex::new(HashMap::new()),
            checked: Mutex::new(Vec::new()),
            slow_start: settings.slow_start.as_ref().map(|s| SlowStart {
                window_ms: s.window_ms,
                min: f64::from(s.min_weight_percent.min(100)) / 100.0,
                began: Instant::now(),
                last_join: AtomicU64::new(0),
                adopted: AtomicBool::new(false),
            }),
        });
        if let Some(checks) = &state.checks
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(super::health_check::check_forever(
                Arc::downgrade(&state),
                checks.interval(),
            ));
        }
        state
    }

    /// Gives each of `endpoints` (the backend's, as a snapshot names them) its record: the
    /// running one for endpoints the backend had before. Records of endpoints it no longer has
    /// are dropped, their ejections and unhealthiness with them. Called when a snapshot is built.
    pub fn adopt(&self, endpoints: &mut [Endpoint]) {
        let mut records = self.records.lock();
        // Endpoints joining after the first adoption start slow, when the backend says so.
        // The first endpoints a backend has are established; so are those of a backend that
        // had none until now (nothing to protect them from).
        let joining = self
            .slow_start
            .as_ref()
            .filter(|s| !endpoints.is_empty() && s.adopted.swap(true, Relaxed))
            .map(|s| s.now_ms() + 1);
        for e in endpoints.iter_mut() {
            let record = records.entry(e.authority.clone()).or_insert_with(|| {
                let h = EndpointHealth::default();
                if let (Some(at), Some(s)) = (joining, &self.slow_start) {
                    h.joined.store(at, Relaxed);
                    s.last_join.store(at, Relaxed);
                }
                Arc::new(h)
            });
            e.health = Some(record.clone());
        }
        records.retain(|a, h| {
            let keep = endpoints.iter().any(|e| e.authority == *a);
            if !keep {
                h.retired.store(true, SeqCst);
                if let Some(o) = &self.outliers {
                    o.end_ejection(h, a);
                }
                if let Some(c) = &self.checks {
                    c.forget(h);
                }
            }
            keep
        });
        *self.checked.lock() = endpoints.to_vec();
    }

    /// Whether an endpoint may be out: when not, the balancer looks no further.
    #[inline]
    pub fn any_out(&self) -> bool {
        self.outliers.as_ref().is_some_and(Outliers::any_ejected)
            || self
                .checks
                .as_ref()
                .is_some_and(HealthChecks::any_unhealthy)
    }

    /// Whether `e` is out of the balancer now (ejected or unhealthy).
    pub fn is_out(&self, e: &Endpoint) -> bool {
        let Some(h) = &e.health else { return false };
        h.unhealthy.load(Relaxed)
            || self
                .outliers
                .as_ref()
                .is_some_and(|o| o.is_out(h, &e.authority))
    }

    /// Notes how a request to `e` went (`ok`: an answer below 500), for outlier detection.
    pub fn record(&self, e: &Endpoint, ok: bool, endpoints: usize) {
        if let (Some(o), Some(h)) = (&self.outliers, &e.health) {
            o.record(h, &e.authority, ok, endpoints);
        }
    }
}

/// A request's hold on its endpoint's in-flight count (least request), let go when dropped.
pub struct InFlightAt(Arc<EndpointHealth>);

impl InFlightAt {
    pub fn new(h: &Arc<EndpointHealth>) -> Self {
        h.in_flight.fetch_add(1, Relaxed);
        InFlightAt(h.clone())
    }
}

impl Drop for InFlightAt {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
impl BackendState {
    /// The state of backend `b` of route `r` with `settings`, counting into metrics of its own.
    pub(crate) fn for_tests(settings: &BackendSettings) -> Arc<Self> {
        BackendState::new(&RouteId("r".into()), "b", settings, &Metrics::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Upstream;

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_leaving_takes_its_ejection_and_what_still_arrives_for_it_is_not_counted() {
        let settings = BackendSettings {
            circuit_breaker: Some(snap::CircuitBreaker {
                consecutive_failures: 1,
                max_ejection_percent: 100,
                ..Default::default()
            }),
            ..Default::default()
        };
        let state = BackendState::for_tests(&settings);
        let up = Upstream::new(Default::default());
        let mut endpoints: Vec<Endpoint> = ["10.0.0.1:80", "10.0.0.2:80"]
            .iter()
            .map(|e| up.endpoint(e, None, Default::default()).unwrap())
            .collect();
        state.adopt(&mut endpoints);
        state.record(&endpoints[0], false, 2);
        assert!(state.any_out() && state.is_out(&endpoints[0]));
        // The next configuration has only the second endpoint.
        let mut next = vec![endpoints[1].clone()];
        state.adopt(&mut next);
        assert!(!state.any_out(), "the ejection left with the endpoint");
        // An answer of a request the first configuration sent there arrives now.
        state.record(&endpoints[0], false, 2);
        assert!(!state.any_out());
        // The one that stayed keeps its record.
        assert!(Arc::ptr_eq(
            endpoints[1].health.as_ref().unwrap(),
            next[0].health.as_ref().unwrap()
        ));
    }

    /// The first endpoints a backend has are established, even when it had none before; a
    /// different slow start is a different state.
    #[tokio::test(start_paused = true)]
    async fn the_first_endpoints_are_established_and_slow_start_settings_key_the_state() {
        let settings = BackendSettings {
            slow_start: Some(snap::SlowStart {
                window_ms: 10_000,
                min_weight_percent: 10,
            }),
            ..Default::default()
        };
        let metrics = Metrics::new();
        let up = Upstream::new(Default::default());
        let route = RouteId("r".into());
        let state = up.backend_state(&route, "b", &settings, &metrics).unwrap();
        let slow = state.slow_start.as_ref().unwrap();
        state.adopt(&mut []);
        let mut first = vec![
            up.endpoint("10.0.0.1:80", None, Default::default())
                .unwrap(),
        ];
        state.adopt(&mut first);
        assert!(
            !slow.any_warming(),
            "the first endpoints of a backend that had none"
        );
        let mut more = vec![
            first[0].clone(),
            up.endpoint("10.0.0.2:80", None, Default::default())
                .unwrap(),
        ];
        state.adopt(&mut more);
        assert!(slow.any_warming());
        assert!(slow.share(more[1].health.as_ref().unwrap()) < 0.2);
        assert_eq!(slow.share(more[0].health.as_ref().unwrap()), 1.0);
        tokio::time::advance(std::time::Duration::from_secs(11)).await;
        assert!(!slow.any_warming());

        let longer = BackendSettings {
            slow_start: Some(snap::SlowStart {
                window_ms: 60_000,
                min_weight_percent: 10,
            }),
            ..Default::default()
        };
        let other = up.backend_state(&route, "b", &longer, &metrics).unwrap();
        assert!(!Arc::ptr_eq(&state, &other));
        assert!(Arc::ptr_eq(
            &state,
            &up.backend_state(&route, "b", &settings, &metrics).unwrap()
        ));
    }
}
