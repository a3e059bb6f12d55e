//! Backend choice: weighted between backends, round robin over each backend's endpoints,
//! skipping the endpoints outlier detection ejected ([`super::outlier`]).
//!
//! The weighted schedule is computed once per snapshot with the smooth weighted round robin of
//! nginx, so 90/10 gives `a a a a b a a a a a`-like interleaving and exact shares over every
//! cycle, then walked with one atomic counter: no lock and no allocation per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::breaker::Breaker;
use super::outlier::Outliers;
use super::{Endpoint, Upstream};

/// Longest schedule kept; weights are scaled down past it (shares then approximate).
const MAX_SCHEDULE: u64 = 10_000;

/// One backend's endpoints.
pub struct EndpointSet {
    pub name: String,
    /// Parsed once per snapshot, each with its connection pool.
    pub endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    /// The backend's circuit breaker, when the rule's policy has one.
    pub breaker: Option<Arc<Breaker>>,
}

impl EndpointSet {
    /// Fails when an endpoint is not a valid `host:port` authority.
    pub fn new(
        name: String,
        endpoints: &[String],
        upstream: &Upstream,
        breaker: Option<Arc<Breaker>>,
    ) -> Result<Self, String> {
        let mut endpoints = endpoints
            .iter()
            .map(|e| upstream.endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(outliers) = breaker.as_ref().and_then(|b| b.outliers.as_ref()) {
            let authorities: Vec<_> = endpoints.iter().map(|e| e.authority.clone()).collect();
            for (e, health) in endpoints.iter_mut().zip(outliers.health(&authorities)) {
                e.health = Some(health);
            }
        }
        // Start at a random endpoint so restarting proxies don't all hit the first pod.
        let start = if endpoints.is_empty() {
            0
        } else {
            fastrand::usize(..endpoints.len())
        };
        Ok(EndpointSet {
            name,
            endpoints,
            next: AtomicUsize::new(start),
            breaker,
        })
    }

    /// The next endpoint, or `None` when there is none.
    pub fn next(&self) -> Option<&Endpoint> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        Some(self.first_in(i))
    }

    fn outliers(&self) -> Option<&Outliers> {
        self.breaker.as_ref()?.outliers.as_ref()
    }

    /// The endpoint at `i`, or the first after it that is not ejected. With every endpoint
    /// ejected, the one at `i`: traffic spreads over all of them as if none were.
    fn first_in(&self, i: usize) -> &Endpoint {
        let at = &self.endpoints[i];
        let Some(outliers) = self.outliers().filter(|o| o.any_ejected()) else {
            return at;
        };
        let n = self.endpoints.len();
        (0..n)
            .map(|k| &self.endpoints[(i + k) % n])
            .find(|e| {
                e.health
                    .as_ref()
                    .is_none_or(|h| !outliers.is_out(h, &e.authority))
            })
            .unwrap_or(at)
    }

    /// Notes how a request to `endpoint`, one of this set's, went (`ok`: an answer below
    /// 500) for outlier detection, when the backend has it.
    pub fn record(&self, endpoint: &Endpoint, ok: bool) {
        if let (Some(outliers), Some(health)) = (self.outliers(), &endpoint.health) {
            outliers.record(health, &endpoint.authority, ok, self.endpoints.len());
        }
    }
}

impl EndpointSet {
    /// The endpoint after `previous` in the set's order (a retry's: another one when there is
    /// another). The round robin of first tries is left where it is, so retries do not make
    /// the next requests start at a failing endpoint.
    pub fn next_after(&self, previous: &http::uri::Authority) -> Option<&Endpoint> {
        let at = self
            .endpoints
            .iter()
            .position(|e| e.authority == *previous)?;
        Some(self.first_in((at + 1) % self.endpoints.len()))
    }
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

    #[test]
    fn endpoints_rotate() {
        let up = Upstream::new(Default::default());
        let e = EndpointSet::new("b".into(), &["a:1".into(), "b:1".into()], &up, None).unwrap();
        let picks: Vec<_> = (0..4)
            .map(|_| e.next().unwrap().authority.to_string())
            .collect();
        assert_ne!(picks[0], picks[1]);
        assert_eq!(picks[0], picks[2]);
        assert!(
            EndpointSet::new("e".into(), &[], &up, None)
                .unwrap()
                .next()
                .is_none()
        );
        assert!(EndpointSet::new("bad".into(), &["a b:1".into()], &up, None).is_err());
    }

    #[test]
    fn snapshots_naming_the_same_endpoint_share_its_pool() {
        let up = Upstream::new(Default::default());
        let a = EndpointSet::new("a".into(), &["10.0.0.1:80".into()], &up, None).unwrap();
        let b = EndpointSet::new("b".into(), &["10.0.0.1:80".into()], &up, None).unwrap();
        assert!(std::sync::Arc::ptr_eq(
            &a.next().unwrap().pool,
            &b.next().unwrap().pool
        ));
    }
}
