//! The published snapshots: one versioned snapshot per gateway, watched by its subscribers.
//!
//! Each compile result is turned into one snapshot per gateway; a gateway's version goes up
//! only when its content changed (no-op updates are dropped), so proxies are only bothered
//! with real changes. Gateways that proxies subscribe to but no Route names get an empty
//! snapshot, so their proxies still start and report ready.
//!
//! When only the endpoints behind Service backends changed, [`SnapshotStore::publish_endpoints`]
//! moves the published snapshots without a compile, and each new version carries its
//! [`Delta`] from the one before: subscribers that have that one get the delta, the others the
//! whole snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use frontdesk_crds::Output;
use frontdesk_snapshot::Snapshot;
use frontdesk_wire::ToProxy;
use tokio::sync::watch;

/// A published version, encoded once for every subscriber, when the first one needs it.
#[derive(Clone, Debug)]
pub struct Published {
    pub snapshot: Arc<Snapshot>,
    encoded: Arc<OnceLock<Bytes>>,
    /// This version as changes to the one before, when only endpoints changed.
    pub delta: Option<Delta>,
}

/// A version as the endpoint changes from version `base` ([`ToProxy::Endpoints`]), encoded.
#[derive(Clone, Debug)]
pub struct Delta {
    pub base: u64,
    pub encoded: Bytes,
}

impl Published {
    fn new(snapshot: Snapshot) -> Self {
        Published {
            snapshot: Arc::new(snapshot),
            encoded: Arc::default(),
            delta: None,
        }
    }

    /// The whole snapshot as a stream message.
    pub fn encoded(&self) -> Bytes {
        self.encoded
            .get_or_init(|| {
                frontdesk_wire::encode(&ToProxy::Snapshot {
                    snapshot: (*self.snapshot).clone(),
                })
            })
            .clone()
    }
}

/// Why endpoint changes were not published alone.
#[derive(Debug, PartialEq, Eq)]
pub enum NeedsCompile {
    /// Nothing compiled yet.
    NothingPublished,
    /// A backend the compiler held back (its TLS cannot be set up, say) shares its name with
    /// one it did not, whose endpoints moved: the change cannot be given to one and not the
    /// other by name.
    HeldBack(String),
    /// An address a proxy would refuse (the compile reports it).
    Unservable(String),
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

    /// Moves every gateway whose Service backends' endpoints differ from what `now` says
    /// (`None`: not a Service port's backend, or no such port) to its next version, with those
    /// endpoints and nothing else changed, and the delta from the version before. Returns the
    /// gateways whose version moved, or, changing nothing, why a compile is needed instead.
    pub fn publish_endpoints(
        &self,
        mut now: impl FnMut(&str) -> Option<Vec<String>>,
    ) -> Result<Vec<(String, u64)>, NeedsCompile> {
        let inner = self.inner.lock().expect("snapshot store lock");
        let Some(output) = &inner.output else {
            return Err(NeedsCompile::NothingPublished);
        };
        let held = &output.held_back;
        let mut names: Vec<&String> = inner.gateways.keys().collect();
        names.sort();
        let mut next = Vec::new();
        for name in names {
            let current = inner.gateways[name].borrow().clone();
            // A held-back backend's name is left alone; when another backend of the name
            // (not held back) has endpoints that moved, they are a compile's to publish.
            let mixed = (!held.is_empty()).then(|| {
                current.snapshot.backends().find_map(|b| {
                    let moved = held.contains(&b.name)
                        && !b.invalid
                        && !b.endpoints.is_empty()
                        && now(&b.name).is_some_and(|e| e != b.endpoints);
                    moved.then(|| b.name.clone())
                })
            });
            if let Some(name) = mixed.flatten() {
                return Err(NeedsCompile::HeldBack(name));
            }
            let changes = current
                .snapshot
                .endpoint_changes(|name| if held.contains(name) { None } else { now(name) });
            if changes.is_empty() {
                continue;
            }
            let version = current.snapshot.version + 1;
            match current.snapshot.with_endpoints(version, &changes) {
                Ok(snapshot) => {
                    next.push((name.clone(), current.snapshot.version, snapshot, changes))
                }
                // Addresses a proxy would refuse: the compile says so in the statuses.
                Err(e) => {
                    tracing::warn!(gateway = %name, error = %e, "endpoint changes cannot be published alone");
                    return Err(NeedsCompile::Unservable(e));
                }
            }
        }
        let mut changed = Vec::new();
        for (name, base, snapshot, changes) in next {
            let version = snapshot.version;
            let delta = frontdesk_wire::encode(&ToProxy::Endpoints {
                gateway: name.clone(),
                base,
                version,
                changes,
            });
            inner.gateways[&name].send_replace(Published {
                delta: Some(Delta {
                    base,
                    encoded: delta,
                }),
                ..Published::new(snapshot)
            });
            changed.push((name, version));
        }
        Ok(changed)
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

    /// The snapshot published now for `gateway`: the latest compile result's, with the
    /// endpoint changes published since.
    pub fn published(&self, gateway: &str) -> Option<Arc<Snapshot>> {
        let inner = self.inner.lock().expect("snapshot store lock");
        Some(inner.gateways.get(gateway)?.borrow().snapshot.clone())
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
                (g.clone(), p.snapshot.version, p.encoded().len())
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

    /// A Route to Service `web` port 80 on gateway `public`, with the slice's `addresses`.
    fn service_output(addresses: &[&str]) -> Output {
        service_output_with(addresses, &[PLAIN])
    }

    /// A rule to Service `web`, and one to it over TLS whose CA cannot be found (held back).
    const PLAIN: &str = "backends: [{service: web, port: 80}]";
    const HELD_BACK: &str = "backends: [{service: web, port: 80, tls: {hostname: web, \
                             caCertificateRefs: [{name: missing}]}}]";

    /// [`service_output`] with `rules` (a rule's fields but its matches) instead.
    fn service_output_with(addresses: &[&str], rules: &[&str]) -> Output {
        let rules: String = rules
            .iter()
            .enumerate()
            .map(|(i, r)| format!("    - matches: [{{path: {{value: /r{i}}}}}]\n      {r}\n"))
            .collect();
        let endpoints: Vec<String> = addresses
            .iter()
            .map(|a| format!("{{addresses: [\"{a}\"]}}"))
            .collect();
        let yaml = format!(
            "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: r}}\nspec:\n  gateways: [public]\n  \
             rules:\n{rules}---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec:\n  ports: [{{port: 80}}]\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  namespace: default\n  \
             labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{{port: 8080}}]\n\
             endpoints: [{}]\n",
            endpoints.join(", ")
        );
        let parsed = parse_file("r.yaml", &yaml);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        frontdesk_crds::compile(&resources(parsed.objects.iter().map(|(o, _)| o)))
    }

    /// How many endpoints each backend of gateway `public` has now.
    fn endpoint_counts(store: &SnapshotStore) -> Vec<usize> {
        let published = store.published("public").unwrap();
        published.backends().map(|b| b.endpoints.len()).collect()
    }

    fn web(endpoints: &[&str]) -> impl FnMut(&str) -> Option<Vec<String>> {
        let endpoints: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
        move |name| (name == "service/default/web:80").then(|| endpoints.clone())
    }

    #[test]
    fn endpoint_changes_move_the_version_with_a_delta_from_the_one_before() {
        let store = SnapshotStore::default();
        assert_eq!(
            store.publish_endpoints(web(&["10.0.0.2:8080"])),
            Err(NeedsCompile::NothingPublished)
        );
        store.publish(service_output(&["10.0.0.1"]));
        let rx = store.subscribe("public").unwrap();
        assert_eq!(store.publish_endpoints(web(&["10.0.0.1:8080"])), Ok(vec![]));
        let moved = store.publish_endpoints(web(&["10.0.0.1:8080", "10.0.0.2:8080"]));
        assert_eq!(moved, Ok(vec![("public".to_string(), 2)]));
        let published = rx.borrow().clone();
        let endpoints: Vec<&Vec<String>> = published
            .snapshot
            .backends()
            .map(|b| &b.endpoints)
            .collect();
        assert_eq!(
            endpoints,
            [&vec![
                "10.0.0.1:8080".to_string(),
                "10.0.0.2:8080".to_string()
            ]]
        );
        let delta = published.delta.as_ref().expect("a delta from version 1");
        assert_eq!(delta.base, 1);
        let message: ToProxy = serde_json::from_slice(&delta.encoded).unwrap();
        let ToProxy::Endpoints {
            gateway,
            base,
            version,
            changes,
        } = message
        else {
            panic!("not a delta: {message:?}");
        };
        assert_eq!((gateway.as_str(), base, version), ("public", 1, 2));
        assert_eq!(changes[0].backend, "service/default/web:80");
        // The whole snapshot is still there for whoever does not have version 1.
        let whole: ToProxy = serde_json::from_slice(&published.encoded()).unwrap();
        assert!(matches!(whole, ToProxy::Snapshot { snapshot } if snapshot.version == 2));
        // A compile that finds the same endpoints publishes nothing new.
        assert!(
            store
                .publish(service_output(&["10.0.0.1", "10.0.0.2"]))
                .is_empty()
        );
    }

    #[test]
    fn held_back_backends_and_bad_addresses_go_to_a_compile() {
        let store = SnapshotStore::default();
        // A Service without endpoints gets its first ones, no compile needed.
        store.publish(service_output(&[]));
        assert_eq!(
            store.publish_endpoints(web(&["10.0.0.1:8080"])),
            Ok(vec![("public".to_string(), 2)])
        );
        assert!(matches!(
            store.publish_endpoints(web(&["not an address"])),
            Err(NeedsCompile::Unservable(_))
        ));
        assert_eq!(store.versions()[0].1, 2, "nothing published for it");

        // A backend of the name held back (its CA cannot be found), another not.
        let held = service_output_with(&["10.0.0.1"], &[PLAIN, HELD_BACK]);
        assert_eq!(
            held.held_back.iter().collect::<Vec<_>>(),
            ["service/default/web:80"]
        );
        store.publish(held);
        assert_eq!(endpoint_counts(&store), [1, 0]);
        assert_eq!(
            store.publish_endpoints(web(&["10.0.0.2:8080"])),
            Err(NeedsCompile::HeldBack("service/default/web:80".into()))
        );
        // Nothing moved for the backend that is not held back: nothing to do, and the one held
        // back stays without endpoints.
        assert_eq!(store.publish_endpoints(web(&["10.0.0.1:8080"])), Ok(vec![]));
        // Held back alone: left to compiles, the fast path goes on for everything else.
        store.publish(service_output_with(&["10.0.0.1"], &[HELD_BACK]));
        assert_eq!(store.publish_endpoints(web(&["10.0.0.2:8080"])), Ok(vec![]));
        assert_eq!(endpoint_counts(&store), [0]);
    }
}
