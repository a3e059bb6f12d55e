//! The published snapshots: one versioned snapshot per gateway, watched by its subscribers.
//!
//! Each compile result is turned into one snapshot per gateway; a gateway's version goes up
//! only when its content changed (no-op updates are dropped), so proxies are only bothered
//! with real changes. Gateways that proxies subscribe to but no Route names get an empty
//! snapshot, so their proxies still start and report ready.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use frontdesk_crds::Output;
use frontdesk_snapshot::Snapshot;
use frontdesk_wire::ToProxy;
use tokio::sync::watch;

/// A published version, encoded once for every subscriber.
#[derive(Clone, Debug)]
pub struct Published {
    pub snapshot: Arc<Snapshot>,
    pub encoded: Bytes,
}

impl Published {
    fn new(snapshot: Snapshot) -> Self {
        let encoded = frontdesk_wire::encode(&ToProxy::Snapshot {
            snapshot: snapshot.clone(),
        });
        Published {
            snapshot: Arc::new(snapshot),
            encoded,
        }
    }
}

/// (kind, namespace, name)
pub type ObjectId = (String, String, String);
/// An object and (the generation carried, the version since which it is carried).
pub type CarriedEntry = (ObjectId, (i64, u64));

#[derive(Default)]
struct Inner {
    /// Shared, not copied: the status loop reads it every second.
    output: Option<Arc<Output>>,
    /// Compile results published so far.
    publishes: u64,
    gateways: HashMap<String, watch::Sender<Published>>,
    /// Per gateway and object: the generation in the snapshot, and the first version that
    /// carried it. `Programmed` asks whether proxies acknowledged that version.
    carried: HashMap<String, HashMap<ObjectId, (i64, u64)>>,
}

/// Shared between the configuration source and the push server.
#[derive(Clone, Default)]
pub struct SnapshotStore {
    inner: Arc<Mutex<Inner>>,
}

impl SnapshotStore {
    /// Publishes a compile result; returns the gateways whose version changed.
    pub fn publish(&self, output: Output) -> Vec<(String, u64)> {
        let mut inner = self.inner.lock().expect("snapshot store lock");
        let mut names: Vec<String> = output.snapshots.keys().cloned().collect();
        names.extend(inner.gateways.keys().cloned());
        names.sort();
        names.dedup();
        let mut changed = Vec::new();
        for name in names {
            let next = output.snapshot(&name);
            let tx = inner
                .gateways
                .entry(name.clone())
                .or_insert_with(|| watch::channel(Published::new(Snapshot::default())).0);
            let published = tx.send_if_modified(|current| {
                if current.snapshot.version > 0 && current.snapshot.same_content(&next) {
                    return false;
                }
                let version = current.snapshot.version + 1;
                *current = Published::new(Snapshot { version, ..next });
                true
            });
            if published {
                let snapshot = tx.borrow().snapshot.clone();
                let carried = inner.carried.entry(name.clone()).or_default();
                let mut next = HashMap::new();
                for src in &snapshot.sources {
                    let key = (src.kind.clone(), src.namespace.clone(), src.name.clone());
                    let since = match carried.get(&key) {
                        Some((generation, since)) if *generation == src.generation => *since,
                        _ => snapshot.version,
                    };
                    next.insert(key, (src.generation, since));
                }
                *carried = next;
                changed.push((name, snapshot.version));
            }
        }
        inner.output = Some(Arc::new(output));
        inner.publishes += 1;
        changed
    }

    /// How many compile results were published so far.
    pub fn publishes(&self) -> u64 {
        self.inner.lock().expect("snapshot store lock").publishes
    }

    /// Whether a first compile result was published.
    pub fn ready(&self) -> bool {
        self.inner
            .lock()
            .expect("snapshot store lock")
            .output
            .is_some()
    }

    /// Subscribes to a gateway; `None` until the first compile result is published.
    pub fn subscribe(&self, gateway: &str) -> Option<watch::Receiver<Published>> {
        let mut inner = self.inner.lock().expect("snapshot store lock");
        let output = inner.output.as_ref()?;
        if let Some(tx) = inner.gateways.get(gateway) {
            return Some(tx.subscribe());
        }
        let snapshot = Snapshot {
            version: 1,
            ..output.snapshot(gateway)
        };
        let (tx, rx) = watch::channel(Published::new(snapshot));
        inner.gateways.insert(gateway.to_string(), tx);
        Some(rx)
    }

    /// The latest compile result (statuses for /status and status writing).
    pub fn output(&self) -> Option<Arc<Output>> {
        self.inner
            .lock()
            .expect("snapshot store lock")
            .output
            .clone()
    }

    /// Every gateway's carried objects: `(kind, namespace, name) -> (generation, since version)`.
    pub fn carried_all(&self) -> Vec<(String, Vec<CarriedEntry>)> {
        let inner = self.inner.lock().expect("snapshot store lock");
        inner
            .carried
            .iter()
            .map(|(gateway, objects)| {
                (
                    gateway.clone(),
                    objects.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                )
            })
            .collect()
    }

    /// Current version and size in bytes of every gateway's snapshot.
    pub fn versions(&self) -> Vec<(String, u64, usize)> {
        let inner = self.inner.lock().expect("snapshot store lock");
        let mut out: Vec<_> = inner
            .gateways
            .iter()
            .map(|(g, tx)| {
                let p = tx.borrow();
                (g.clone(), p.snapshot.version, p.encoded.len())
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontdesk_crds::manifests::{parse_file, resources};

    fn output(path: &str) -> Output {
        output_at(path, 0)
    }

    fn output_at(path: &str, generation: i64) -> Output {
        let yaml = format!(
            "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: r, generation: {generation}}}\nspec:\n  gateways: [public]\n  \
             rules:\n    - matches: [{{path: {{value: {path}}}}}]\n      backends: [{{url: 'http://127.0.0.1:1'}}]\n"
        );
        let parsed = parse_file("r.yaml", &yaml);
        frontdesk_crds::compile(&resources(parsed.objects.iter().map(|(o, _)| o)))
    }

    #[test]
    fn versions_move_only_on_real_changes() {
        let store = SnapshotStore::default();
        assert!(
            store.subscribe("public").is_none(),
            "nothing before the first compile"
        );
        assert_eq!(store.publish(output("/a")), vec![("public".to_string(), 1)]);
        let rx = store.subscribe("public").unwrap();
        assert_eq!(rx.borrow().snapshot.version, 1);
        assert!(
            store.publish(output("/a")).is_empty(),
            "same content: no new version"
        );
        assert_eq!(store.publish(output("/b")), vec![("public".to_string(), 2)]);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow().snapshot.rule_count(), 1);
    }

    #[test]
    fn objects_are_carried_since_the_version_that_brought_their_generation() {
        let store = SnapshotStore::default();
        let since = |store: &SnapshotStore| {
            let all = store.carried_all();
            let (_, objects) = all.iter().find(|(g, _)| g == "public").unwrap();
            let key = ("Route".to_string(), "default".to_string(), "r".to_string());
            objects
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .unwrap()
        };
        store.publish(output_at("/a", 1));
        assert_eq!(since(&store), (1, 1));
        store.publish(output_at("/b", 1)); // new content, same generation: still since version 1
        assert_eq!(since(&store), (1, 1));
        store.publish(output_at("/c", 2)); // a new generation is carried from this version on
        assert_eq!(since(&store), (2, 3));
    }

    #[test]
    fn unnamed_gateways_get_an_empty_snapshot() {
        let store = SnapshotStore::default();
        store.publish(output("/a"));
        let rx = store.subscribe("mobile").unwrap();
        let s = rx.borrow().snapshot.clone();
        assert_eq!(
            (s.gateway.as_str(), s.version, s.routes.len()),
            ("mobile", 1, 0)
        );
    }
}
