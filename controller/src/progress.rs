//! Progress across controller replicas: the numbers behind `Programmed`.
//!
//! Proxies connect to any replica, and each replica knows only the proxies connected to it, so
//! no single replica knows how far all proxies got. Each replica therefore summarises its own
//! proxies as "per gateway: proxies connected; per object: the generation carried and how many
//! of my proxies acknowledged a version carrying it" ([`ReplicaProgress::local`]) and shares
//! it (a ConfigMap per replica in cluster mode); the leader adds up the fresh summaries
//! ([`combine`]). Generations, not versions, are what all replicas agree on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::acks::AckTracker;
use crate::store::SnapshotStore;

/// One replica's view of its own proxies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaProgress {
    /// Unix seconds when written; old summaries (a replica that died) are ignored.
    pub updated: i64,
    pub gateways: BTreeMap<String, GatewaySummary>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySummary {
    pub connected: usize,
    /// Per object (`Kind/namespace/name`): the generation carried, proxies that serve it, and
    /// the version since which it is carried.
    pub objects: BTreeMap<String, ObjectSummary>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSummary {
    pub generation: i64,
    pub acked: usize,
    pub since_version: u64,
}

pub fn object_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

impl ReplicaProgress {
    /// This replica's summary.
    pub fn local(store: &SnapshotStore, acks: &AckTracker, now: i64) -> Self {
        let mut gateways: BTreeMap<String, GatewaySummary> = BTreeMap::new();
        for (gateway, objects) in store.carried_all() {
            let summary = gateways.entry(gateway.clone()).or_default();
            summary.connected = acks.programmed(&gateway, u64::MAX).1;
            for ((kind, namespace, name), carried) in objects {
                let (acked, _) = acks.programmed(&gateway, carried.since_seq);
                summary.objects.insert(
                    object_key(&kind, &namespace, &name),
                    ObjectSummary {
                        generation: carried.generation,
                        acked,
                        since_version: carried.since_version,
                    },
                );
            }
        }
        ReplicaProgress {
            updated: now,
            gateways,
        }
    }

    /// Equal but for the time it was written: nothing new to share.
    pub fn same(&self, other: &ReplicaProgress) -> bool {
        self.gateways == other.gateways
    }
}

/// How far the proxies of one gateway, over all replicas, got with one object's generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayProgress {
    pub gateway: String,
    /// Proxies serving a snapshot that carries this generation, and proxies connected.
    pub acked: usize,
    pub connected: usize,
}

/// Adds up the replicas' summaries for one object at `generation`; `fresh_after` drops
/// summaries of replicas that stopped writing. No version comes out: replicas publish the same
/// versions (content ids) only once they compiled the same objects.
pub fn combine(
    summaries: &[impl std::borrow::Borrow<ReplicaProgress>],
    key: &str,
    generation: i64,
    fresh_after: i64,
) -> Vec<GatewayProgress> {
    let mut out: BTreeMap<&str, GatewayProgress> = BTreeMap::new();
    let summaries = summaries.iter().map(|s| s.borrow());
    for summary in summaries.filter(|s| s.updated >= fresh_after) {
        for (gateway, g) in &summary.gateways {
            let Some(object) = g.objects.get(key) else {
                continue;
            };
            let entry = out.entry(gateway).or_insert_with(|| GatewayProgress {
                gateway: gateway.clone(),
                acked: 0,
                connected: 0,
            });
            entry.connected += g.connected;
            // A replica still carrying an older generation has proxies that do not serve this one.
            if object.generation == generation {
                entry.acked += object.acked;
            }
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(
        updated: i64,
        connected: usize,
        generation: i64,
        acked: usize,
        since: u64,
    ) -> ReplicaProgress {
        let mut objects = BTreeMap::new();
        objects.insert(
            "Route/shop/orders".to_string(),
            ObjectSummary {
                generation,
                acked,
                since_version: since,
            },
        );
        let mut gateways = BTreeMap::new();
        gateways.insert("public".to_string(), GatewaySummary { connected, objects });
        ReplicaProgress { updated, gateways }
    }

    #[test]
    fn replicas_add_up_and_only_the_current_generation_counts() {
        let a = replica(100, 2, 5, 2, 17);
        let b = replica(100, 1, 5, 0, 3);
        let lagging = replica(100, 3, 4, 3, 9);
        let p = combine(&[a, b, lagging], "Route/shop/orders", 5, 90);
        assert_eq!(
            p,
            vec![GatewayProgress {
                gateway: "public".into(),
                acked: 2,
                connected: 6,
            }]
        );
    }

    #[test]
    fn summaries_of_replicas_that_stopped_writing_are_ignored() {
        let a = replica(100, 2, 5, 2, 17);
        let dead = replica(10, 5, 5, 0, 1);
        let p = combine(&[a.clone(), dead], "Route/shop/orders", 5, 70);
        assert_eq!((p[0].acked, p[0].connected), (2, 2));
        assert!(combine(std::slice::from_ref(&a), "Route/shop/other", 1, 0).is_empty());
    }

    #[test]
    fn the_local_summary_counts_acks_of_versions_carrying_each_object() {
        use frontdesk_crds::manifests::{parse_file, resources};
        let yaml = "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: r, namespace: shop, generation: 3}\n\
                    spec:\n  gateways: [public]\n  rules: [{backends: [{url: 'http://127.0.0.1:1'}]}]\n";
        let parsed = parse_file("r.yaml", yaml);
        let store = SnapshotStore::default();
        store.publish(frontdesk_crds::compile(&resources(
            parsed.objects.iter().map(|(o, _)| o),
        )));
        let acks = AckTracker::default();
        acks.connected("public", "p1");
        acks.connected("public", "p2");
        let version = store.versions()[0].version;
        acks.ack("public", "p1", version, 1);
        let local = ReplicaProgress::local(&store, &acks, 50);
        let g = &local.gateways["public"];
        assert_eq!(g.connected, 2);
        assert_eq!(
            g.objects["Route/shop/r"],
            ObjectSummary {
                generation: 3,
                acked: 1,
                since_version: version
            }
        );
    }
}
