//! The published snapshots: one versioned snapshot per gateway, watched by its subscribers.
//!
//! Each compile result is turned into one snapshot per gateway; a gateway gets a new version
//! only when its content changed (no-op updates are dropped), so proxies are only bothered
//! with real changes. A version is the snapshot's [`Snapshot::content_id`], the same on every
//! replica; this replica orders its versions by their publish number ([`Published::seq`]),
//! which is what "a proxy acknowledged this version or a later one" compares. Gateways that
//! proxies subscribe to but no Route names get an empty snapshot, so their proxies still start
//! and report ready.
//!
//! When only the endpoints behind Service backends changed, [`SnapshotStore::publish_endpoints`]
//! moves the published snapshots without a compile, and each new version carries its
//! [`Delta`] from the one before: subscribers that have that one get the delta, the others the
//! whole snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use frontdesk_crds::Output;
use frontdesk_snapshot::{Changed, ContentDigests, Snapshot};
use frontdesk_wire::ToProxy;
use tokio::sync::watch;

/// A published version, encoded once for every subscriber, when the first one needs it.
#[derive(Clone, Debug)]
pub struct Published {
    pub snapshot: Arc<Snapshot>,
    /// How many versions of the gateway this replica published up to this one: 1, 2, ...
    /// (0: nothing yet). Local to the replica, unlike the version.
    pub seq: u64,
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
    /// Publish number `seq` of `snapshot`, whose version becomes its content id (`digests`:
    /// those of the gateway's version published last, which differs in `changed`).
    fn new(
        mut snapshot: Snapshot,
        seq: u64,
        digests: &mut ContentDigests,
        changed: Changed,
    ) -> Self {
        snapshot.version = snapshot.content_id_with(digests, changed);
        Published {
            snapshot: Arc::new(snapshot),
            seq,
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

/// An object's generation in a gateway's published snapshot, and since when it is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried {
    pub generation: i64,
    /// The publish number ([`Published::seq`]) of the first version that carried it.
    pub since_seq: u64,
    /// That version.
    pub since_version: u64,
}

/// A gateway's current version: the version (content id), this replica's publish number for
/// it, and its encoded size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayVersion {
    pub gateway: String,
    pub version: u64,
    pub seq: u64,
    pub bytes: usize,
}

#[derive(Default)]
struct Inner {
    /// Shared, not copied: the status loop reads it every second.
    output: Option<Arc<Output>>,
    /// Compile results published so far.
    publishes: u64,
    gateways: HashMap<String, watch::Sender<Published>>,
    /// Per gateway: the digests of its published routes, for the next version's id.
    digests: HashMap<String, ContentDigests>,
    /// Per gateway and object: the generation in the snapshot, and the first version that
    /// carried it. `Programmed` asks whether proxies acknowledged that version.
    carried: HashMap<String, HashMap<ObjectId, Carried>>,
}

/// Shared between the configuration source and the push server.
#[derive(Clone, Default)]
pub struct SnapshotStore {
    inner: Arc<Mutex<Inner>>,
}

impl SnapshotStore {
    /// Publishes a compile result; returns the gateways whose version changed.
    pub fn publish(&self, output: Output) -> Vec<(String, u64)> {
        let mut guard = self.inner.lock().expect("snapshot store lock");
        let inner = &mut *guard;
        let mut names: Vec<String> = output.snapshots.keys().cloned().collect();
        names.extend(inner.gateways.keys().cloned());
        names.sort();
        names.dedup();
        let mut changed = Vec::new();
        for name in names {
            let next = output.snapshot(&name);
            let digests = inner.digests.entry(name.clone()).or_default();
            let tx = inner.gateways.entry(name.clone()).or_insert_with(|| {
                watch::channel(Published::new(
                    Snapshot::default(),
                    0,
                    digests,
                    Changed::Anything,
                ))
                .0
            });
            let published = tx.send_if_modified(|current| {
                if current.seq > 0 && current.snapshot.same_content(&next) {
                    return false;
                }
                *current = Published::new(next, current.seq + 1, digests, Changed::Anything);
                true
            });
            if published {
                let (snapshot, seq) = {
                    let p = tx.borrow();
                    (p.snapshot.clone(), p.seq)
                };
                let carried = inner.carried.entry(name.clone()).or_default();
                let mut next = HashMap::new();
                for src in snapshot.sources.iter() {
                    let key = (src.kind.clone(), src.namespace.clone(), src.name.clone());
                    let since = match carried.get(&key) {
                        Some(c) if c.generation == src.generation => *c,
                        _ => Carried {
                            generation: src.generation,
                            since_seq: seq,
                            since_version: snapshot.version,
                        },
                    };
                    next.insert(key, since);
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
        let mut guard = self.inner.lock().expect("snapshot store lock");
        let inner = &mut *guard;
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
            match current.snapshot.with_endpoints(0, &changes) {
                Ok(snapshot) => next.push((name.clone(), current, snapshot, changes)),
                // Addresses a proxy would refuse: the compile says so in the statuses.
                Err(e) => {
                    tracing::warn!(gateway = %name, error = %e, "endpoint changes cannot be published alone");
                    return Err(NeedsCompile::Unservable(e));
                }
            }
        }
        let mut changed = Vec::new();
        for (name, current, snapshot, changes) in next {
            let digests = inner.digests.entry(name.clone()).or_default();
            // Only endpoints moved: the routes that did not change, and everything but the
            // routes, keep their digests.
            let published = Published::new(snapshot, current.seq + 1, digests, Changed::RoutesOnly);
            let (base, version) = (current.snapshot.version, published.snapshot.version);
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
                ..published
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
        let mut guard = self.inner.lock().expect("snapshot store lock");
        let inner = &mut *guard;
        let output = inner.output.as_ref()?;
        if let Some(tx) = inner.gateways.get(gateway) {
            return Some(tx.subscribe());
        }
        let digests = inner.digests.entry(gateway.to_string()).or_default();
        let (tx, rx) = watch::channel(Published::new(
            output.snapshot(gateway),
            1,
            digests,
            Changed::Anything,
        ));
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

    /// Every gateway's carried objects.
    pub fn carried_all(&self) -> Vec<(String, Vec<(ObjectId, Carried)>)> {
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

    /// Every gateway's current version, by gateway name.
    pub fn versions(&self) -> Vec<GatewayVersion> {
        let inner = self.inner.lock().expect("snapshot store lock");
        let mut out: Vec<_> = inner
            .gateways
            .iter()
            .map(|(g, tx)| {
                let p = tx.borrow();
                GatewayVersion {
                    gateway: g.clone(),
                    version: p.snapshot.version,
                    seq: p.seq,
                    bytes: p.encoded().len(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.gateway.cmp(&b.gateway));
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
        let a = store.publish(output("/a"));
        let rx = store.subscribe("public").unwrap();
        let first = rx.borrow().snapshot.version;
        assert_eq!(a, vec![("public".to_string(), first)]);
        assert_eq!(first, output("/a").snapshot("public").content_id());
        assert_eq!(rx.borrow().seq, 1);
        assert!(
            store.publish(output("/a")).is_empty(),
            "same content: no new version"
        );
        let b = store.publish(output("/b"));
        assert!(rx.has_changed().unwrap());
        let second = rx.borrow().clone();
        assert_eq!(b, vec![("public".to_string(), second.snapshot.version)]);
        assert_ne!(second.snapshot.version, first);
        assert_eq!((second.seq, second.snapshot.rule_count()), (2, 1));
    }

    #[test]
    fn replicas_with_different_histories_publish_the_same_version_for_the_same_content() {
        let (one, other) = (SnapshotStore::default(), SnapshotStore::default());
        for path in ["/a", "/b", "/c", "/d"] {
            one.publish(output(path));
        }
        other.publish(output("/d"));
        let (one, other) = (one.versions(), other.versions());
        assert_eq!(one[0].version, other[0].version);
        assert_eq!(
            (one[0].seq, other[0].seq),
            (4, 1),
            "publish numbers stay local"
        );
    }

    #[test]
    fn objects_are_carried_since_the_version_that_brought_their_generation() {
        let store = SnapshotStore::default();
        let since = |store: &SnapshotStore| {
            let all = store.carried_all();
            let (_, objects) = all.iter().find(|(g, _)| g == "public").unwrap();
            let key = ("Route".to_string(), "default".to_string(), "r".to_string());
            let c = objects.iter().find(|(k, _)| *k == key).unwrap().1;
            (c.generation, c.since_seq, c.since_version)
        };
        let version = |path: &str, generation: i64| {
            output_at(path, generation).snapshot("public").content_id()
        };
        store.publish(output_at("/a", 1));
        assert_eq!(since(&store), (1, 1, version("/a", 1)));
        store.publish(output_at("/b", 1)); // new content, same generation: still since the first
        assert_eq!(since(&store), (1, 1, version("/a", 1)));
        store.publish(output_at("/c", 2)); // a new generation is carried from this version on
        assert_eq!(since(&store), (2, 3, version("/c", 2)));
    }

    #[test]
    fn unnamed_gateways_get_an_empty_snapshot() {
        let store = SnapshotStore::default();
        store.publish(output("/a"));
        let rx = store.subscribe("mobile").unwrap();
        let (s, seq) = (rx.borrow().snapshot.clone(), rx.borrow().seq);
        assert_eq!((s.gateway.as_str(), seq, s.routes.len()), ("mobile", 1, 0));
        assert_eq!(s.version, s.content_id());
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
        let first = rx.borrow().snapshot.version;
        assert_eq!(store.publish_endpoints(web(&["10.0.0.1:8080"])), Ok(vec![]));
        let moved = store.publish_endpoints(web(&["10.0.0.1:8080", "10.0.0.2:8080"]));
        let published = rx.borrow().clone();
        let second = published.snapshot.version;
        assert_eq!(moved, Ok(vec![("public".to_string(), second)]));
        assert_eq!(published.seq, 2);
        // What a replica compiling the moved slice publishes: the same version.
        let compiled = service_output(&["10.0.0.1", "10.0.0.2"]).snapshot("public");
        assert_eq!(second, compiled.content_id());
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
        let delta = published
            .delta
            .as_ref()
            .expect("a delta from the first version");
        assert_eq!(delta.base, first);
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
        assert_eq!((gateway.as_str(), base, version), ("public", first, second));
        assert_eq!(changes[0].backend, "service/default/web:80");
        // The whole snapshot is still there for whoever does not have version 1.
        let whole: ToProxy = serde_json::from_slice(&published.encoded()).unwrap();
        assert!(matches!(whole, ToProxy::Snapshot { snapshot } if snapshot.version == second));
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
        let moved = store.publish_endpoints(web(&["10.0.0.1:8080"])).unwrap();
        assert_eq!(moved[0].1, store.versions()[0].version);
        assert!(matches!(
            store.publish_endpoints(web(&["not an address"])),
            Err(NeedsCompile::Unservable(_))
        ));
        assert_eq!(store.versions()[0].seq, 2, "nothing published for it");

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
