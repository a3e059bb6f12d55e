//! Which objects a status pass looks at: those whose inputs moved since the last pass, so that
//! a pass costs what changed, not what exists.
//!
//! An object's status is made of its computed status (the compile output), its proxies'
//! progress (the replicas' summaries) and the status it has now (the watch cache). A pass
//! looks at an object when one of them moved: a new output whose status for it differs, a
//! summary whose entry for it (or whose gateway's connected count) differs, or a new version
//! of it in the cache (anyone's edit or status write, or its deletion). The writers add the
//! objects they still have something pending for (a write not yet seen back, an Event not
//! sent). A full pass looks at every object: on becoming leader, and every
//! [`super::status_writer::FULL_PASS_EVERY`] as a safety net.
//!
//! Finding what moved is cheap: outputs are compared once per publish, a summary once per
//! rewrite of its ConfigMap, and cache objects by address (the reflector replaces an object's
//! `Arc` on every event), without reading or copying them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use frontdesk_crds::{ObjectStatus, Output};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::core::DynamicObject;
use kube::runtime::reflector::Store;

use crate::progress::{GatewaySummary, ObjectSummary, ReplicaProgress};

/// `(kind, namespace, name)`; a cluster-scoped object's namespace is "".
pub(crate) type Key = (String, String, String);

/// The objects a pass looks at.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    /// Every object: no change set is trusted.
    pub all: bool,
    pub keys: HashSet<Key>,
}

impl Scope {
    pub(crate) fn everything() -> Self {
        Scope {
            all: true,
            keys: HashSet::new(),
        }
    }

    pub(crate) fn contains(&self, key: &Key) -> bool {
        self.all || self.keys.contains(key)
    }

    pub(crate) fn add(&mut self, kind: &str, namespace: &str, name: &str) {
        if !self.all {
            self.keys
                .insert((kind.to_string(), namespace.to_string(), name.to_string()));
        }
    }
}

/// The watch caches' objects as the last walk saw them.
#[derive(Default)]
pub(crate) struct SeenObjects {
    /// The key of each object by its address; `by_key` holds the object, so no other object
    /// can take the address while it is here.
    by_address: HashMap<usize, Key>,
    by_key: HashMap<Key, Arc<DynamicObject>>,
}

impl SeenObjects {
    /// Walks `stores` (per kind), adding to `scope` the objects added, replaced or removed
    /// since the last walk.
    pub(crate) fn walk<'a>(
        &mut self,
        stores: impl IntoIterator<Item = (&'a str, &'a [Store<DynamicObject>])>,
        scope: &mut Scope,
    ) {
        let mut next = HashMap::with_capacity(self.by_address.len());
        for (kind, stores) in stores {
            for object in stores.iter().flat_map(|s| s.state()) {
                let address = Arc::as_ptr(&object) as usize;
                let key = self.by_address.remove(&address).unwrap_or_else(|| {
                    let key = (
                        kind.to_string(),
                        object.metadata.namespace.clone().unwrap_or_default(),
                        object.metadata.name.clone().unwrap_or_default(),
                    );
                    scope.add(&key.0, &key.1, &key.2);
                    self.by_key.insert(key.clone(), object);
                    key
                });
                next.insert(address, key);
            }
        }
        // Replaced or gone: forgotten, unless the key now holds the newer version.
        for (address, key) in self.by_address.drain() {
            scope.add(&key.0, &key.1, &key.2);
            if (self.by_key.get(&key)).is_some_and(|o| Arc::as_ptr(o) as usize == address) {
                self.by_key.remove(&key);
            }
        }
        self.by_address = next;
    }

    /// The cached object of `kind` (as walked) `namespace/name`.
    pub(crate) fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<&DynamicObject> {
        let key = (kind.to_string(), namespace.to_string(), name.to_string());
        self.by_key.get(&key).map(|o| &**o)
    }

    /// The objects of `kind`, by namespace and name.
    pub(crate) fn of_kind<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a Key, &'a DynamicObject)> + 'a {
        (self.by_key.iter())
            .filter(move |(key, _)| key.0 == kind)
            .map(|(key, o)| (key, &**o))
    }
}

/// The last compile output a pass saw. Its statuses are in key order (kind, namespace, name),
/// as the compiler sorts them.
#[derive(Default)]
pub(crate) struct SeenOutput {
    output: Option<Arc<Output>>,
}

/// The key of a status, borrowed.
fn key_of(s: &ObjectStatus) -> (&str, &str, &str) {
    (s.kind.as_str(), s.namespace.as_str(), s.name.as_str())
}

impl SeenOutput {
    /// Takes `output` as the current one, adding to `scope` the objects whose status differs
    /// from the last one's (added and removed ones included); whether it is a new output.
    /// One walk over both outputs in key order, copying nothing.
    pub(crate) fn update(&mut self, output: Arc<Output>, scope: &mut Scope) -> bool {
        if (self.output.as_ref()).is_some_and(|o| Arc::ptr_eq(o, &output)) {
            return false;
        }
        let new = &output.statuses[..];
        debug_assert!(new.is_sorted_by(|a, b| key_of(a) <= key_of(b)));
        let old = self.output.as_deref().map_or(&[][..], |o| &o.statuses[..]);
        let (mut i, mut j) = (0, 0);
        loop {
            let changed = match (old.get(i), new.get(j)) {
                (None, None) => break,
                (Some(o), Some(n)) if key_of(o) == key_of(n) => {
                    (i, j) = (i + 1, j + 1);
                    (o != n).then_some(n)
                }
                // Dropped: before every key still to come.
                (Some(o), n) if n.is_none_or(|n| key_of(o) < key_of(n)) => {
                    i += 1;
                    Some(o)
                }
                (_, n) => {
                    j += 1;
                    n
                }
            };
            if let Some(s) = changed {
                scope.add(&s.kind, &s.namespace, &s.name);
            }
        }
        self.output = Some(output);
        true
    }

    /// The status computed for `kind namespace/name`.
    pub(crate) fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<&ObjectStatus> {
        let statuses = &self.output.as_ref()?.statuses;
        let at = (statuses.binary_search_by(|s| key_of(s).cmp(&(kind, namespace, name)))).ok()?;
        statuses.get(at)
    }

    pub(crate) fn contains(&self, key: &Key) -> bool {
        self.get(&key.0, &key.1, &key.2).is_some()
    }

    pub(crate) fn output(&self) -> Option<&Arc<Output>> {
        self.output.as_ref()
    }
}

/// The replicas' progress summaries, read from their ConfigMaps, each parsed once per
/// rewrite.
#[derive(Default)]
pub(crate) struct SeenProgress {
    /// By ConfigMap name: its resourceVersion and its summary.
    replicas: HashMap<String, (Option<String>, Arc<ReplicaProgress>)>,
    fresh_after: i64,
}

impl SeenProgress {
    /// Reads the ConfigMaps, adding to `scope` the objects whose progress may have moved:
    /// those whose entry differs in a rewritten summary, those of a gateway whose connected
    /// count changed, and all of a replica that went stale (not written since `fresh_after`),
    /// came back or went away. A stale replica counts as none.
    pub(crate) fn update(
        &mut self,
        stores: &[Store<ConfigMap>],
        fresh_after: i64,
        scope: &mut Scope,
    ) {
        let none = ReplicaProgress::default();
        let mut next = HashMap::with_capacity(self.replicas.len());
        for cm in stores.iter().flat_map(|s| s.state()) {
            let name = cm.metadata.name.clone().unwrap_or_default();
            let version = cm.metadata.resource_version.clone();
            let old = self.replicas.remove(&name).map(|(v, s)| (v == version, s));
            let new = match &old {
                Some((true, summary)) => Some(summary.clone()),
                // Unreadable: as if it were not there.
                _ => (cm.data.as_ref())
                    .and_then(|d| d.get("progress.json"))
                    .and_then(|json| serde_json::from_str::<ReplicaProgress>(json).ok())
                    .map(Arc::new),
            };
            let before = fresh(old.as_ref().map(|(_, s)| s), self.fresh_after, &none);
            changed_objects(before, fresh(new.as_ref(), fresh_after, &none), scope);
            next.extend(new.map(|summary| (name, (version, summary))));
        }
        for (_, (_, gone)) in self.replicas.drain() {
            changed_objects(fresh(Some(&gone), self.fresh_after, &none), &none, scope);
        }
        self.replicas = next;
        self.fresh_after = fresh_after;
    }

    /// The summaries of the replicas still writing theirs.
    pub(crate) fn fresh(&self) -> impl Iterator<Item = &ReplicaProgress> {
        (self.replicas.values())
            .filter(|(_, s)| s.updated >= self.fresh_after)
            .map(|(_, s)| &**s)
    }
}

/// `summary` if it was written after `after`, else `none`.
fn fresh<'a>(
    summary: Option<&'a Arc<ReplicaProgress>>,
    after: i64,
    none: &'a ReplicaProgress,
) -> &'a ReplicaProgress {
    summary
        .filter(|s| s.updated >= after)
        .map_or(none, |s| &**s)
}

/// Adds to `scope` the objects whose progress differs between two summaries of one replica.
fn changed_objects(before: &ReplicaProgress, after: &ReplicaProgress, scope: &mut Scope) {
    if std::ptr::eq(before, after) || before.gateways == after.gateways {
        return;
    }
    let gateways: HashSet<&String> = before
        .gateways
        .keys()
        .chain(after.gateways.keys())
        .collect();
    for gateway in gateways {
        let (old, new) = (before.gateways.get(gateway), after.gateways.get(gateway));
        if old.map(|g| g.connected) != new.map(|g| g.connected) {
            // "n/m proxies": every object of the gateway.
            for (key, _) in objects(old).chain(objects(new)) {
                add_summary_key(key, scope);
            }
            continue;
        }
        let (old_objects, new_objects) = (old.map(|g| &g.objects), new.map(|g| &g.objects));
        for (key, entry) in objects(new) {
            if old_objects.and_then(|o| o.get(key)) != Some(entry) {
                add_summary_key(key, scope);
            }
        }
        for (key, _) in objects(old) {
            if new_objects.is_none_or(|n| !n.contains_key(key)) {
                add_summary_key(key, scope);
            }
        }
    }
}

/// The objects of a gateway's summary, if any.
fn objects(g: Option<&GatewaySummary>) -> impl Iterator<Item = (&String, &ObjectSummary)> {
    g.into_iter().flat_map(|g| &g.objects)
}

/// A summary's `Kind/namespace/name` key.
fn add_summary_key(key: &str, scope: &mut Scope) {
    let mut parts = key.splitn(3, '/');
    if let (Some(kind), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next()) {
        scope.add(kind, namespace, name);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::ApiResource;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    fn keys(scope: &Scope) -> Vec<String> {
        let mut keys: Vec<String> = (scope.keys.iter())
            .map(|(kind, namespace, name)| format!("{kind} {namespace}/{name}"))
            .collect();
        keys.sort();
        keys
    }

    fn object(name: &str, version: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "frontdesk.dev/v1alpha1", "kind": "Route",
            "metadata": {"name": name, "namespace": "shop", "resourceVersion": version},
        }))
        .unwrap()
    }

    #[test]
    fn objects_added_replaced_or_deleted_are_in_scope_and_the_others_not() {
        let mut writer =
            Writer::<DynamicObject>::new(ApiResource::erase::<frontdesk_crds::Route>(&()));
        for name in ["a", "b", "c"] {
            writer.apply_watcher_event(&Event::Apply(object(name, "1")));
        }
        let stores = [writer.as_reader()];
        let mut seen = SeenObjects::default();
        let mut scope = Scope::default();
        seen.walk([("Route", &stores[..])], &mut scope);
        assert_eq!(
            keys(&scope),
            ["Route shop/a", "Route shop/b", "Route shop/c"]
        );
        let mut scope = Scope::default();
        seen.walk([("Route", &stores[..])], &mut scope);
        assert!(scope.keys.is_empty());
        writer.apply_watcher_event(&Event::Apply(object("b", "2")));
        writer.apply_watcher_event(&Event::Delete(object("c", "1")));
        let mut scope = Scope::default();
        seen.walk([("Route", &stores[..])], &mut scope);
        assert_eq!(keys(&scope), ["Route shop/b", "Route shop/c"]);
        let b = seen.get("Route", "shop", "b").unwrap();
        assert_eq!(b.metadata.resource_version.as_deref(), Some("2"));
        assert!(seen.get("Route", "shop", "c").is_none());
    }

    fn summary(updated: i64, connected: usize, acked: &[(&str, usize)]) -> ReplicaProgress {
        let objects = (acked.iter())
            .map(|(key, acked)| {
                let entry = ObjectSummary {
                    generation: 1,
                    acked: *acked,
                    since_version: 1,
                };
                (key.to_string(), entry)
            })
            .collect();
        let mut gateways = BTreeMap::new();
        gateways.insert("public".into(), GatewaySummary { connected, objects });
        ReplicaProgress { updated, gateways }
    }

    fn configmap(name: &str, version: &str, summary: &ReplicaProgress) -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": name, "resourceVersion": version},
            "data": {"progress.json": serde_json::to_string(summary).unwrap()},
        }))
        .unwrap()
    }

    #[test]
    fn progress_moves_per_object_per_gateway_and_per_replica() {
        let mut writer = Writer::<ConfigMap>::default();
        let stores = [writer.as_reader()];
        let mut seen = SeenProgress::default();
        let update = |seen: &mut SeenProgress, fresh_after: i64| {
            let mut scope = Scope::default();
            seen.update(&stores, fresh_after, &mut scope);
            keys(&scope)
        };
        let both = [("Route/shop/a", 2), ("Route/shop/b", 2)];
        writer.apply_watcher_event(&Event::Apply(configmap("p1", "1", &summary(100, 2, &both))));
        // A new replica: all its objects.
        assert_eq!(update(&mut seen, 90), ["Route shop/a", "Route shop/b"]);
        assert!(update(&mut seen, 90).is_empty(), "nothing rewritten");
        // Rewritten with the same content (its heartbeat): nothing moved.
        writer.apply_watcher_event(&Event::Apply(configmap("p1", "2", &summary(105, 2, &both))));
        assert!(update(&mut seen, 90).is_empty());
        // One object's count moved.
        let moved = [("Route/shop/a", 1), ("Route/shop/b", 2)];
        writer.apply_watcher_event(&Event::Apply(configmap(
            "p1",
            "3",
            &summary(106, 2, &moved),
        )));
        assert_eq!(update(&mut seen, 90), ["Route shop/a"]);
        // The gateway's connected count moved: "n/m proxies" of every object.
        writer.apply_watcher_event(&Event::Apply(configmap(
            "p1",
            "4",
            &summary(107, 3, &moved),
        )));
        assert_eq!(update(&mut seen, 90), ["Route shop/a", "Route shop/b"]);
        assert_eq!(seen.fresh().count(), 1);
        // The replica stopped writing: stale, every object of it.
        assert_eq!(update(&mut seen, 200), ["Route shop/a", "Route shop/b"]);
        assert_eq!(seen.fresh().count(), 0);
        assert!(update(&mut seen, 200).is_empty());
    }

    #[test]
    fn a_new_output_puts_the_statuses_it_added_changed_or_dropped_in_scope() {
        let status = |name: &str, generation: i64| -> ObjectStatus {
            serde_json::from_value(json!({"kind": "Route", "namespace": "shop", "name": name,
                                          "generation": generation, "conditions": []}))
            .unwrap()
        };
        let output = |statuses: Vec<ObjectStatus>| {
            Arc::new(Output {
                statuses,
                ..Default::default()
            })
        };
        let mut seen = SeenOutput::default();
        let first = output(vec![status("a", 1), status("b", 1), status("c", 1)]);
        let mut scope = Scope::default();
        assert!(seen.update(first.clone(), &mut scope));
        assert_eq!(
            keys(&scope),
            ["Route shop/a", "Route shop/b", "Route shop/c"]
        );
        let mut scope = Scope::default();
        assert!(!seen.update(first, &mut scope), "the same output");
        assert!(scope.keys.is_empty());
        // In key order, as the compiler sorts them: b changed, c gone, d new.
        let second = output(vec![status("a", 1), status("b", 2), status("d", 1)]);
        let mut scope = Scope::default();
        assert!(seen.update(second, &mut scope));
        assert_eq!(
            keys(&scope),
            ["Route shop/b", "Route shop/c", "Route shop/d"]
        );
        assert_eq!(
            seen.get("Route", "shop", "b").map(|s| s.generation),
            Some(2)
        );
        assert!(seen.get("Route", "shop", "c").is_none());
    }
}
