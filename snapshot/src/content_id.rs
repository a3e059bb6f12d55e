//! A snapshot's content id: the version the controller publishes it under.
//!
//! Every controller replica compiles the same objects into the same snapshot (the compiler
//! orders everything it emits), so a digest of the content names it the same way on every
//! replica, in every proxy's `/status`, log line and ACK, and across controller restarts.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::{Route, Snapshot};

/// Ids keep to 53 bits: exact as a JSON number read into a double (jq, JavaScript) and as a
/// Prometheus gauge's value.
const ID_BITS: u32 = 53;

/// What the last id computed with it digested, by part: the next version of a gateway (an
/// endpoint change, say) shares every route it did not change, and those are not encoded
/// again.
#[derive(Debug, Default)]
pub struct ContentDigests {
    /// The routes in order, each with its digest; the `Arc` held keeps a route's address from
    /// being reused by another.
    routes: Vec<(Arc<Route>, [u8; 32])>,
    /// Everything but the routes.
    rest: Option<[u8; 32]>,
}

/// Which parts of a snapshot may differ from the last one digested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Anything.
    Anything,
    /// Its routes only (an endpoint change): the rest's digest is reused.
    RoutesOnly,
}

impl Snapshot {
    /// The snapshot's content id: the first 53 bits of a SHA-256 over its JSON encoding without
    /// its version (each route digested on its own, then the rest), secrets included (a
    /// rotated key is a new configuration), never 0 (0 is "not published", and the NACK of a
    /// proxy that cannot read deltas).
    pub fn content_id(&self) -> u64 {
        self.content_id_with(&mut ContentDigests::default(), Changed::Anything)
    }

    /// [`Self::content_id`], reusing the digests of what is shared with the snapshot `digests`
    /// was last used for (routes at the same place, and with [`Changed::RoutesOnly`] the rest),
    /// and keeping this one's.
    pub fn content_id_with(&self, digests: &mut ContentDigests, changed: Changed) -> u64 {
        // Destructured so that a new field cannot be left out of the id by mistake.
        let Snapshot {
            gateway,
            version: _,
            routes,
            sources,
            policies,
            exclusive_hosts,
            listeners,
            listeners_declared,
        } = self;
        let mut digest = Sha256::new();
        crate::secret::revealed(|| {
            // Updated in place: a fresh list per version would be a large allocation each
            // time, and on a machine with transparent huge pages every fresh page of it costs
            // a 2 MiB zeroing fault.
            digests.routes.truncate(routes.len());
            for (i, route) in routes.iter().enumerate() {
                let route_digest = match digests.routes.get_mut(i) {
                    Some((r, d)) if Arc::ptr_eq(r, route) => *d,
                    kept => {
                        let mut d = Sha256::new();
                        serde_json::to_writer(&mut d, route).expect("a route always encodes");
                        let d: [u8; 32] = d.finalize().into();
                        match kept {
                            Some(entry) => *entry = (route.clone(), d),
                            None => digests.routes.push((route.clone(), d)),
                        }
                        d
                    }
                };
                digest.update(route_digest);
            }
            let rest = match (changed, digests.rest) {
                (Changed::RoutesOnly, Some(rest)) => rest,
                _ => {
                    let rest = (
                        gateway,
                        sources,
                        policies,
                        exclusive_hosts,
                        listeners,
                        listeners_declared,
                    );
                    let mut d = Sha256::new();
                    serde_json::to_writer(&mut d, &rest).expect("a snapshot always encodes");
                    d.finalize().into()
                }
            };
            digest.update(rest);
            digests.rest = Some(rest);
        });
        let hash = digest.finalize();
        let first = u64::from_be_bytes(hash[..8].try_into().expect("8 of 32 bytes"));
        (first >> (64 - ID_BITS)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{ApiKey, ApiKeys, Authentication, Policy, Route, Secret, SourceRef};

    fn snapshot() -> Snapshot {
        let route: Route = serde_json::from_value(serde_json::json!({
            "namespace": "ns", "name": "r", "hosts": ["example.com"], "rules": []
        }))
        .unwrap();
        Snapshot {
            gateway: "public".into(),
            routes: vec![Arc::new(route)],
            ..Snapshot::default()
        }
    }

    fn with_api_key(digest: &str) -> Snapshot {
        let api_keys = ApiKeys {
            from: vec![],
            keys: vec![ApiKey {
                sha256: Secret::new(digest),
                consumer: "c".into(),
            }],
        };
        let policy = Policy {
            authentication: Some(Authentication {
                api_keys: Some(api_keys),
                ..Authentication::default()
            }),
            ..Policy::default()
        };
        let mut s = snapshot();
        s.policies.insert("p".into(), policy);
        s
    }

    #[test]
    fn the_id_names_the_content_not_the_version() {
        let a = snapshot();
        let id = a.content_id();
        assert!(id > 0 && id < 1 << ID_BITS, "{id}");
        let renumbered = Snapshot {
            version: 17,
            ..a.clone()
        };
        assert_eq!(renumbered.content_id(), id, "the version is not content");

        let mut other = a.clone();
        Arc::make_mut(&mut other.sources).push(SourceRef {
            kind: "Route".into(),
            namespace: "ns".into(),
            name: "r".into(),
            generation: 2,
        });
        assert_ne!(other.content_id(), id, "a new generation is a new version");
        let mut other = a.clone();
        other.gateway = "mobile".into();
        assert_ne!(
            other.content_id(),
            id,
            "another gateway's snapshot is another version"
        );
    }

    #[test]
    fn secrets_count_even_where_they_are_redacted() {
        let (a, b) = (with_api_key("aa"), with_api_key("bb"));
        assert_ne!(
            a.content_id(),
            b.content_id(),
            "a rotated key is a new version"
        );
        let inside = crate::secret::redacted(|| (a.content_id(), b.content_id()));
        assert_eq!(inside, (a.content_id(), b.content_id()));
        assert!(
            crate::secret::redacted(crate::secret::redacting),
            "redacting restored"
        );
    }

    #[test]
    fn reused_digests_give_the_id_computed_from_scratch() {
        let mut digests = ContentDigests::default();
        let a = with_api_key("aa");
        assert_eq!(
            a.content_id_with(&mut digests, Changed::Anything),
            a.content_id()
        );
        // The next version shares the route and adds one: the shared one is not encoded again
        // and the id is the one a replica without the digests computes.
        let mut b = a.clone();
        let mut route = (*b.routes[0]).clone();
        route.name = "s".into();
        b.routes.push(Arc::new(route));
        assert_eq!(
            b.content_id_with(&mut digests, Changed::RoutesOnly),
            b.content_id()
        );
        assert_ne!(b.content_id(), a.content_id());
        assert_eq!(
            digests.routes.len(),
            2,
            "the digests of the routes of the last one"
        );
        // Routes in another order are another encoding, hence another id.
        let mut c = b.clone();
        c.routes.reverse();
        assert_eq!(
            c.content_id_with(&mut digests, Changed::RoutesOnly),
            c.content_id()
        );
        assert_ne!(c.content_id(), b.content_id());
        // Fewer routes, the first one shared: the list of digests is cut to the routes left.
        let mut shorter = c.clone();
        shorter.routes.truncate(1);
        assert_eq!(
            shorter.content_id_with(&mut digests, Changed::RoutesOnly),
            shorter.content_id()
        );
        assert_eq!(digests.routes.len(), 1);
        assert_eq!(
            c.content_id_with(&mut digests, Changed::RoutesOnly),
            c.content_id(),
            "and grows back"
        );
        // Anything else changed: the rest is digested again.
        let d = with_api_key("dd");
        assert_eq!(
            d.content_id_with(&mut digests, Changed::Anything),
            d.content_id()
        );
    }
}
