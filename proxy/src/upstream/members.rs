//! A backend's endpoints as they stand ([`Members`]), swapped whole when they change: an
//! endpoint delta from the controller moves a running [`EndpointSet`] to its new endpoints
//! ([`EndpointSet::replace`]) without rebuilding the routes around it. A request loads the
//! members once per pick; what a set's endpoints are made with (`Recipe`: its TLS client,
//! protocol and connection timeouts) stays as its snapshot set it.
//!
//! A change is made in two steps so several sets move together or not at all: every set's
//! new members are prepared first ([`EndpointSet::prepare`], which fails, changing nothing,
//! on an endpoint that is not `host:port`), then stored ([`EndpointSet::store`], which cannot
//! fail). An endpoint a set keeps keeps its `Arc` (its pool and its record with it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use frontdesk_snapshot as snap;
use http::uri::Authority;

use super::backend_state::BackendState;
use super::balancer::EndpointSet;
use super::hash_ring::HashRing;
use super::tls::TlsClient;
use super::{Endpoint, Upstream};

/// A backend's endpoints at one moment, each with its pool and record.
#[derive(Default)]
pub struct Members {
    /// In the order the snapshot names them: round robin's order and the ring's indexes.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Consistent hashing's ring over `endpoints`, when the backend balances that way.
    pub ring: Option<HashRing>,
}

/// What a set's endpoints are made with, fixed for the life of the set.
pub(super) struct Recipe {
    /// The backend's TLS client, when it speaks TLS.
    tls: Option<Arc<TlsClient>>,
    /// `false` when the backend's TLS setting cannot be used: it then has no endpoints.
    usable: bool,
    protocol: snap::BackendProtocol,
    /// The backend's connect and idle timeouts, when its Policy sets them (the proxy's own
    /// otherwise).
    connect: Option<Duration>,
    idle: Option<Duration>,
}

/// New members of one set, made and checked but not serving yet: [`EndpointSet::prepare`]'s,
/// for [`EndpointSet::store`] on the same set.
pub struct Prepared {
    /// Without their records yet: the backend's state gives them when they are stored.
    endpoints: Vec<Endpoint>,
    ring: Option<HashRing>,
}

impl Recipe {
    /// The recipe of `backend`'s endpoints. A TLS setting whose certificates do not parse
    /// leaves the backend without endpoints. `connection` sets the endpoints' connect and idle
    /// timeouts.
    pub(super) fn new(
        backend: &snap::Backend,
        upstream: &Upstream,
        connection: Option<&snap::BackendConnection>,
    ) -> Self {
        // TLS that cannot be set up leaves the backend without endpoints (503), never in
        // plaintext, and the rest of the configuration serving.
        let (tls, usable) = match backend
            .tls
            .as_ref()
            .map(|t| upstream.tls_client(t, backend.protocol))
        {
            None => (None, true),
            Some(Ok(client)) => (Some(client), true),
            Some(Err(e)) => {
                tracing::warn!(backend = %backend.name, error = %e, "a backend's TLS setting cannot be used; it gets no requests");
                (None, false)
            }
        };
        Recipe {
            tls,
            usable,
            protocol: backend.protocol,
            connect: connection
                .and_then(|c| c.connect_timeout_ms)
                .map(Duration::from_millis),
            idle: connection
                .and_then(|c| c.idle_timeout_ms)
                .map(Duration::from_millis),
        }
    }

    /// The endpoints `authorities` name, made as the recipe says, with consistent hashing's
    /// ring over them when `ring`. Fails, making nothing, when one is not a valid `host:port`
    /// authority. Touches nothing shared but the process-wide pools (a pool nothing keeps goes
    /// with the last endpoint holding it).
    pub(super) fn prepare(
        &self,
        authorities: &[String],
        upstream: &Upstream,
        ring: bool,
    ) -> Result<Prepared, String> {
        let mut endpoints = authorities
            .iter()
            .filter(|_| self.usable)
            .map(|e| upstream.endpoint(e, self.tls.as_ref(), self.protocol))
            .collect::<Result<Vec<_>, _>>()?;
        for e in &mut endpoints {
            if let Some(connect) = self.connect {
                e.timeouts.connect = connect;
            }
            if let Some(idle) = self.idle {
                e.timeouts.idle = idle;
            }
        }
        let ring = ring.then(|| HashRing::new(endpoints.iter().map(|e| e.authority.as_str())));
        Ok(Prepared { endpoints, ring })
    }
}

impl Members {
    /// The members `prepared` makes once `state` (the backend's, when it has one) has adopted
    /// them, after `old`. An endpoint of `old` that comes back the same (its pool, timeouts
    /// and record) is kept: the same `Arc`, so nothing about it changes for requests holding it.
    fn after(prepared: Prepared, old: &Members, state: Option<&BackendState>) -> Members {
        let Prepared {
            mut endpoints,
            ring,
        } = prepared;
        // Health checks ask the endpoints as requests reach them, timeouts included.
        if let Some(state) = state {
            state.adopt(&mut endpoints);
        }
        let kept: HashMap<&Authority, &Arc<Endpoint>> =
            old.endpoints.iter().map(|e| (&e.authority, e)).collect();
        let endpoints = endpoints
            .into_iter()
            .map(|e| match kept.get(&e.authority) {
                Some(&was) if same(was, &e) => was.clone(),
                _ => Arc::new(e),
            })
            .collect();
        Members { endpoints, ring }
    }
}

/// Whether `new` is `old` made again: the same pool, timeouts and record.
fn same(old: &Endpoint, new: &Endpoint) -> bool {
    Arc::ptr_eq(&old.pool, &new.pool)
        && old.timeouts == new.timeouts
        && match (&old.health, &new.health) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
}

impl EndpointSet {
    /// The set's endpoints as they stand, to look at (requests pick with [`Self::pick`]).
    pub fn members(&self) -> Arc<Members> {
        self.members.load_full()
    }

    /// The members `endpoints` (`host:port` authorities) would make, without storing them:
    /// made as the set's snapshot says (TLS, protocol, timeouts). Fails, changing nothing,
    /// when an endpoint is not a valid authority.
    pub fn prepare(&self, endpoints: &[String], upstream: &Upstream) -> Result<Prepared, String> {
        let ring = self
            .state
            .as_ref()
            .is_some_and(|s| matches!(s.algorithm, snap::LoadBalancer::ConsistentHash { .. }));
        self.recipe.prepare(endpoints, upstream, ring)
    }

    /// Serves `prepared` (of [`Self::prepare`] on this set): picks from now on choose among its
    /// endpoints, each given its record by the backend's state (the running one for an
    /// endpoint the backend had; those it no longer has are dropped). The round robin goes on
    /// where it was.
    pub fn store(&self, prepared: Prepared) {
        let old = self.members.load_full();
        let next = Members::after(prepared, &old, self.state.as_deref());
        self.members.store(Arc::new(next));
    }

    /// Moves the set to `endpoints`: [`Self::prepare`] then [`Self::store`]. Fails, changing
    /// nothing, when an endpoint is not a valid `host:port` authority.
    pub fn replace(&self, endpoints: &[String], upstream: &Upstream) -> Result<(), String> {
        let prepared = self.prepare(endpoints, upstream)?;
        self.store(prepared);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(endpoints: &[&str]) -> snap::Backend {
        snap::Backend {
            tls: None,
            protocol: Default::default(),
            invalid: false,
            name: "b".into(),
            weight: 1,
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn strings(endpoints: &[&str]) -> Vec<String> {
        endpoints.iter().map(|e| e.to_string()).collect()
    }

    fn authorities(set: &EndpointSet) -> Vec<String> {
        set.members()
            .endpoints
            .iter()
            .map(|e| e.authority.to_string())
            .collect()
    }

    #[test]
    fn a_replaced_set_picks_its_new_endpoints_and_keeps_the_ones_it_had() {
        let up = Upstream::new(Default::default());
        let set =
            EndpointSet::new(&backend(&["10.0.0.1:80", "10.0.0.2:80"]), &up, None, None).unwrap();
        let kept = set.members().endpoints[1].clone();
        set.replace(&strings(&["10.0.0.2:80", "10.0.0.3:80"]), &up)
            .unwrap();
        assert_eq!(authorities(&set), ["10.0.0.2:80", "10.0.0.3:80"]);
        // The endpoint that stayed is the same one, pool and all.
        assert!(Arc::ptr_eq(&set.members().endpoints[0], &kept));
        // Round robin over the new endpoints, each in turn.
        let picks: Vec<String> = (0..4)
            .map(|_| set.next().unwrap().authority.to_string())
            .collect();
        assert_ne!(picks[0], picks[1]);
        assert_eq!(picks[0], picks[2]);
        assert_eq!(picks[1], picks[3]);
        assert!(picks.iter().any(|p| p == "10.0.0.3:80"), "{picks:?}");
        assert!(picks.iter().all(|p| p != "10.0.0.1:80"), "{picks:?}");
        // Retries move on within the new endpoints.
        let after = set.next_after(&"10.0.0.2:80".parse().unwrap()).unwrap();
        assert_eq!(after.authority.as_str(), "10.0.0.3:80");
        assert!(set.next_after(&"10.0.0.1:80".parse().unwrap()).is_none());
    }

    #[test]
    fn a_bad_endpoint_changes_nothing() {
        let up = Upstream::new(Default::default());
        let set = EndpointSet::new(&backend(&["10.0.0.1:80"]), &up, None, None).unwrap();
        let before = set.members();
        let e = set
            .replace(&strings(&["10.0.0.2:80", "not an authority"]), &up)
            .unwrap_err();
        assert!(e.contains("not an authority"), "{e}");
        assert!(Arc::ptr_eq(&set.members(), &before));
        assert_eq!(authorities(&set), ["10.0.0.1:80"]);
        // Emptied, then filled again.
        set.replace(&[], &up).unwrap();
        assert!(set.next().is_none());
        set.replace(&strings(&["10.0.0.4:80"]), &up).unwrap();
        assert_eq!(set.next().unwrap().authority.as_str(), "10.0.0.4:80");
    }

    /// With a backend state (here consistent hashing on the client's address): kept endpoints
    /// keep their records and their `Arc`, the ring follows the new endpoints.
    #[test]
    fn a_stateful_set_keeps_records_and_rebuilds_its_ring() {
        let settings = crate::upstream::backend_state::BackendSettings {
            load_balancer: snap::LoadBalancer::ConsistentHash {
                on: snap::HashOn::ClientIp,
            },
            ..Default::default()
        };
        let up = Upstream::new(Default::default());
        let state = BackendState::for_tests(&settings);
        let set = EndpointSet::new(
            &backend(&["10.0.0.1:80", "10.0.0.2:80"]),
            &up,
            Some(state),
            None,
        )
        .unwrap();
        let kept = set.members().endpoints[0].clone();
        set.replace(&strings(&["10.0.0.1:80", "10.0.0.3:80"]), &up)
            .unwrap();
        let members = set.members();
        assert!(Arc::ptr_eq(&members.endpoints[0], &kept));
        assert!(members.endpoints.iter().all(|e| e.health.is_some()));
        assert!(members.ring.is_some());
        let client: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let key = set.hash_key(&http::HeaderMap::new(), client);
        for _ in 0..10 {
            let e = set.pick(key).unwrap();
            assert_ne!(e.authority.as_str(), "10.0.0.2:80");
        }
    }
}
