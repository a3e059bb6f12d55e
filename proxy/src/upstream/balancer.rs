//! Backend choice: weighted between backends; within a backend, round robin over its endpoints
//! unless its Policy says least request or consistent hashing, skipping the endpoints that are
//! out (ejected by [`super::outlier`] detection, or failing [`super::health_check`]s).
//!
//! The weighted schedule is computed once per snapshot with the smooth weighted round robin of
//! nginx, so 90/10 gives `a a a a b a a a a a`-like interleaving and exact shares over every
//! cycle, then walked with one atomic counter: no lock and no allocation per request.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use frontdesk_snapshot as snap;
use http::HeaderMap;

use super::backend_state::{BackendState, SlowStart};
use super::hash_ring::{HashRing, hash, hash_parts};
use super::members::{Members, Recipe};
use super::{Endpoint, Upstream};

/// Longest schedule kept; weights are scaled down past it (shares then approximate).
const MAX_SCHEDULE: u64 = 10_000;

/// One backend's endpoints.
pub struct EndpointSet {
    pub name: String,
    /// What its endpoints are made with, kept to make them again when they change.
    pub(super) recipe: Recipe,
    /// Its endpoints as they stand, each with its connection pool: made once per snapshot, and
    /// swapped whole when an endpoint delta changes them ([`Self::replace`]).
    pub(super) members: ArcSwap<Members>,
    next: AtomicUsize,
    /// What the rule's Policy makes the proxy keep about the backend, when it says anything.
    pub state: Option<Arc<BackendState>>,
    /// The reference named no usable backend: its share of requests is answered 500.
    pub invalid: bool,
}

impl EndpointSet {
    /// The endpoints of `backend`. Fails when an endpoint is not a valid `host:port`
    /// authority. A TLS setting whose certificates do not parse leaves it without endpoints.
    /// `connection` sets the endpoints' connect and idle timeouts (the proxy's own otherwise).
    pub fn new(
        backend: &snap::Backend,
        upstream: &Upstream,
        state: Option<Arc<BackendState>>,
        connection: Option<&snap::BackendConnection>,
    ) -> Result<Self, String> {
        let set = EndpointSet {
            name: backend.name.clone(),
            recipe: Recipe::new(backend, upstream, connection),
            members: ArcSwap::from_pointee(Members::default()),
            next: AtomicUsize::new(0),
            state,
            invalid: backend.invalid,
        };
        set.replace(&backend.endpoints, upstream)?;
        // Start at a random endpoint so restarting proxies don't all hit the first pod.
        let n = set.members.load().endpoints.len();
        if n > 0 {
            set.next.store(fastrand::usize(..n), Ordering::Relaxed);
        }
        Ok(set)
    }

    /// The next endpoint round robin, or `None` when there is none.
    pub fn next(&self) -> Option<Arc<Endpoint>> {
        self.pick(None)
    }

    /// The endpoint for a request, or `None` when there is none. `key` is the request's
    /// consistent-hash key ([`Self::hash_key`]); without one, round robin.
    pub fn pick(&self, key: Option<u64>) -> Option<Arc<Endpoint>> {
        // One load of the members and one count on the endpoint chosen: nothing else per pick.
        let members = self.members.load();
        self.pick_in(&members, key).cloned()
    }

    /// [`Self::pick`] among `members`.
    fn pick_in<'m>(&self, members: &'m Members, key: Option<u64>) -> Option<&'m Arc<Endpoint>> {
        let endpoints = &members.endpoints;
        if endpoints.is_empty() {
            return None;
        }
        if let Some(state) = &self.state {
            match (&state.algorithm, &members.ring, key) {
                (snap::LoadBalancer::LeastRequest, _, _) => {
                    return Some(self.least_request(endpoints));
                }
                (_, Some(ring), Some(key)) => return Some(owner(endpoints, ring, key, state)),
                _ => {}
            }
        }
        let n = endpoints.len();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let at = &endpoints[i];
        let Some(state) = &self.state else {
            return Some(at);
        };
        let warming = state.slow_start.as_ref().filter(|s| s.any_warming());
        if warming.is_none() && !state.any_out() {
            return Some(at);
        }
        // Each endpoint that is out, or warming up and passing this turn, is skipped by taking
        // the next turn, not by sending its turn to its neighbour: the others keep even shares.
        let takes = |e: &Arc<Endpoint>| !state.is_out(e) && warming.is_none_or(|s| admits(s, e));
        if takes(at) {
            return Some(at);
        }
        for _ in 1..n {
            let e = &endpoints[self.next.fetch_add(1, Ordering::Relaxed) % n];
            if takes(e) {
                return Some(e);
            }
        }
        // Every endpoint passed: the first that is in (with every endpoint out, `at`).
        Some(self.first_in(endpoints, i))
    }

    /// Whether [`Self::hash_key`] reads the request's fields (hashing on a header or cookie).
    pub fn hashes_fields(&self) -> bool {
        self.state.as_ref().is_some_and(|s| {
            matches!(
                &s.algorithm,
                snap::LoadBalancer::ConsistentHash {
                    on: snap::HashOn::Header { .. } | snap::HashOn::Cookie { .. }
                }
            )
        })
    }

    /// The request's consistent-hash key, when the backend balances by one and the request
    /// has it.
    pub fn hash_key(&self, headers: &HeaderMap, client: IpAddr) -> Option<u64> {
        // A backend balancing this way always has its ring (see `Members`): no need to load
        // the members to know.
        let snap::LoadBalancer::ConsistentHash { on } = &self.state.as_ref()?.algorithm else {
            return None;
        };
        match on {
            snap::HashOn::ClientIp => Some(match client {
                IpAddr::V4(ip) => hash(&ip.octets()),
                IpAddr::V6(ip) => hash(&ip.octets()),
            }),
            snap::HashOn::Header { name } => {
                let values = headers.get_all(name.as_str());
                values.iter().next()?;
                Some(hash_parts(values.iter().map(|v| v.as_bytes()), b","))
            }
            snap::HashOn::Cookie { name } => {
                crate::stages::authenticate::credentials::cookie(headers, name)
                    .map(|v| hash(v.as_bytes()))
            }
        }
    }

    /// Of two endpoints picked at random, the one with fewer requests in flight.
    fn least_request<'m>(&self, endpoints: &'m [Arc<Endpoint>]) -> &'m Arc<Endpoint> {
        let n = endpoints.len();
        if n == 1 {
            return self.first_in(endpoints, 0);
        }
        let a = fastrand::usize(..n);
        let mut b = fastrand::usize(..n - 1);
        if b >= a {
            b += 1;
        }
        let (a, b) = (self.first_in(endpoints, a), self.first_in(endpoints, b));
        let load = |e: &Arc<Endpoint>| {
            e.health
                .as_ref()
                .map_or(0, |h| h.in_flight.load(Ordering::Relaxed))
        };
        let (fewer, other) = if load(b) < load(a) { (b, a) } else { (a, b) };
        // A warming endpoint wins only its share of the times it would; when both of the pair
        // pass, an established endpoint takes the request.
        match self.state.as_ref().and_then(|s| s.slow_start.as_ref()) {
            Some(s) if s.any_warming() && !admits(s, fewer) => {
                if admits(s, other) {
                    other
                } else {
                    self.established(endpoints, s).unwrap_or(fewer)
                }
            }
            _ => fewer,
        }
    }

    /// An endpoint past its warm-up (and in), from a random place, if there is one.
    fn established<'m>(
        &self,
        endpoints: &'m [Arc<Endpoint>],
        s: &SlowStart,
    ) -> Option<&'m Arc<Endpoint>> {
        let n = endpoints.len();
        let start = fastrand::usize(..n);
        let state = self.state.as_ref()?;
        (0..n)
            .map(|k| &endpoints[(start + k) % n])
            .find(|e| !state.is_out(e) && e.health.as_ref().is_none_or(|h| s.share(h) >= 1.0))
    }

    /// The endpoint at `i`, or the first after it that is in. With every endpoint out, the one
    /// at `i`: traffic spreads over all of them as if none were (panic mode).
    fn first_in<'m>(&self, endpoints: &'m [Arc<Endpoint>], i: usize) -> &'m Arc<Endpoint> {
        let at = &endpoints[i];
        let Some(state) = self.state.as_ref().filter(|s| s.any_out()) else {
            return at;
        };
        let n = endpoints.len();
        (0..n)
            .map(|k| &endpoints[(i + k) % n])
            .find(|e| !state.is_out(e))
            .unwrap_or(at)
    }

    /// Notes how a request to `endpoint`, one of this set's, went (`ok`: an answer below
    /// 500) for outlier detection, when the backend has it.
    pub fn record(&self, endpoint: &Endpoint, ok: bool) {
        if let Some(state) = &self.state {
            state.record(endpoint, ok, self.members.load().endpoints.len());
        }
    }

    /// The endpoint after `previous` in the set's order (a retry's: another one when there is
    /// another); `None` when the set no longer has `previous`. The round robin of first tries
    /// is left where it is, so retries do not make the next requests start at a failing
    /// endpoint.
    pub fn next_after(&self, previous: &http::uri::Authority) -> Option<Arc<Endpoint>> {
        let members = self.members.load();
        let endpoints = &members.endpoints;
        let at = endpoints.iter().position(|e| e.authority == *previous)?;
        Some(self.first_in(endpoints, (at + 1) % endpoints.len()).clone())
    }
}

/// The key's owner on the ring, or the next owner that is in (the owner itself when every
/// endpoint is out).
fn owner<'m>(
    endpoints: &'m [Arc<Endpoint>],
    ring: &HashRing,
    key: u64,
    state: &BackendState,
) -> &'m Arc<Endpoint> {
    let mut owners = ring.owners(key).map(|i| &endpoints[i]);
    let first = owners.next().expect("a ring has a point per endpoint");
    if !state.any_out() || !state.is_out(first) {
        return first;
    }
    if endpoints.iter().all(|e| state.is_out(e)) {
        return first;
    }
    owners.find(|e| !state.is_out(e)).unwrap_or(first)
}

/// Whether `e`, maybe warming up, takes a turn it is offered: always when established, else
/// with the probability of its share.
fn admits(s: &SlowStart, e: &Endpoint) -> bool {
    e.health.as_ref().is_none_or(|h| {
        let share = s.share(h);
        share >= 1.0 || fastrand::f64() < share
    })
}

/// Weighted choice among backends.
pub struct Balancer {
    pub backends: Vec<EndpointSet>,
    schedule: Vec<u32>,
    next: AtomicUsize,
}

impl Balancer {
    pub fn new(backends: Vec<(EndpointSet, u32)>) -> Self {
        let weights: Vec<u64> = backends.iter().map(|(_, w)| u64::from(*w)).collect();
        let schedule = smooth_schedule(&weights);
        let start = if schedule.is_empty() {
            0
        } else {
            fastrand::usize(..schedule.len())
        };
        Balancer {
            backends: backends.into_iter().map(|(b, _)| b).collect(),
            schedule,
            next: AtomicUsize::new(start),
        }
    }

    /// The backend for the next request, with its index in `backends`.
    pub fn pick(&self) -> Option<(usize, &EndpointSet)> {
        if self.schedule.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.schedule.len();
        let b = self.schedule[i] as usize;
        self.backends.get(b).map(|set| (b, set))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One cycle of smooth weighted round robin over `weights` (reduced by their gcd).
pub fn smooth_schedule(weights: &[u64]) -> Vec<u32> {
    let g = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd);
    if g == 0 {
        return Vec::new();
    }
    let mut w: Vec<u64> = weights.iter().map(|x| x / g).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_SCHEDULE {
        // Keep every non-zero weight at least 1.
        w = w
            .iter()
            .map(|x| {
                if *x == 0 {
                    0
                } else {
                    (x * MAX_SCHEDULE / total).max(1)
                }
            })
            .collect();
    }
    let total: i64 = w.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, weight) in w.iter().enumerate() {
            current[i] += *weight as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_give_exact_shares_interleaved() {
        let s = smooth_schedule(&[90, 10]);
        assert_eq!(s.len(), 10);
        assert_eq!(s.iter().filter(|b| **b == 1).count(), 1);
        let s = smooth_schedule(&[5, 1, 1]);
        assert_eq!(s, vec![0, 0, 1, 0, 2, 0, 0]);
        assert!(smooth_schedule(&[0, 0]).is_empty());
        assert_eq!(smooth_schedule(&[0, 3]), vec![1]);
    }

    #[test]
    fn huge_weights_are_scaled_down() {
        let s = smooth_schedule(&[1_000_000, 999_999, 1]);
        assert!(s.len() as u64 <= MAX_SCHEDULE + 3);
        assert!(s.contains(&2), "a tiny non-zero weight still gets requests");
    }

    fn backend(name: &str, endpoints: &[&str]) -> snap::Backend {
        snap::Backend {
            tls: None,
            protocol: Default::default(),
            invalid: false,
            name: name.into(),
            weight: 1,
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn endpoints_rotate() {
        let up = Upstream::new(Default::default());
        let e = EndpointSet::new(&backend("b", &["a:1", "b:1"]), &up, None, None).unwrap();
        let picks: Vec<_> = (0..4)
            .map(|_| e.next().unwrap().authority.to_string())
            .collect();
        assert_ne!(picks[0], picks[1]);
        assert_eq!(picks[0], picks[2]);
        assert!(
            EndpointSet::new(&backend("e", &[]), &up, None, None)
                .unwrap()
                .next()
                .is_none()
        );
        assert!(EndpointSet::new(&backend("bad", &["a b:1"]), &up, None, None).is_err());
    }

    #[test]
    fn snapshots_naming_the_same_endpoint_share_its_pool() {
        let up = Upstream::new(Default::default());
        let a = EndpointSet::new(&backend("a", &["10.0.0.1:80"]), &up, None, None).unwrap();
        let b = EndpointSet::new(&backend("b", &["10.0.0.1:80"]), &up, None, None).unwrap();
        assert!(std::sync::Arc::ptr_eq(
            &a.next().unwrap().pool,
            &b.next().unwrap().pool
        ));
    }

    /// A pod that joins gets a growing share over the slow-start window, under round robin
    /// and least request; the endpoints there from the start are established at once.
    #[tokio::test(start_paused = true)]
    async fn a_new_endpoint_warms_up_over_the_slow_start_window() {
        for algorithm in [
            snap::LoadBalancer::RoundRobin,
            snap::LoadBalancer::LeastRequest,
        ] {
            let settings = crate::upstream::backend_state::BackendSettings {
                load_balancer: algorithm.clone(),
                slow_start: Some(snap::SlowStart {
                    window_ms: 10_000,
                    min_weight_percent: 10,
                }),
                ..Default::default()
            };
            let up = Upstream::new(Default::default());
            let state = BackendState::for_tests(&settings);
            let first = EndpointSet::new(
                &backend("b", &["10.0.0.1:80", "10.0.0.2:80"]),
                &up,
                Some(state.clone()),
                None,
            )
            .unwrap();
            // Established: even shares from the start.
            let share = |set: &EndpointSet, who: &str| {
                (0..20_000)
                    .filter(|_| set.pick(None).unwrap().authority.as_str() == who)
                    .count() as f64
                    / 20_000.0
            };
            let s = share(&first, "10.0.0.2:80");
            assert!((0.45..0.55).contains(&s), "{algorithm:?}: {s}");
            // A third pod joins: about 10% of an established one's share at first, half-way
            // through the window about 55%, and all of it after.
            let joined = EndpointSet::new(
                &backend("b", &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]),
                &up,
                Some(state.clone()),
                None,
            )
            .unwrap();
            let s = share(&joined, "10.0.0.3:80");
            assert!((0.02..0.08).contains(&s), "{algorithm:?} at first: {s}");
            tokio::time::advance(std::time::Duration::from_secs(5)).await;
            let s = share(&joined, "10.0.0.3:80");
            assert!((0.17..0.30).contains(&s), "{algorithm:?} half-way: {s}");
            tokio::time::advance(std::time::Duration::from_secs(5)).await;
            let s = share(&joined, "10.0.0.3:80");
            assert!((0.30..0.37).contains(&s), "{algorithm:?} after: {s}");
        }
    }
}
