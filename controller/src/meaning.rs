//! Which watch events change what the compiler reads.
//!
//! The compiler reads an object's spec, labels and annotations, never its status. Kubernetes
//! bumps `metadata.generation` on every spec change of a kind with a status subresource (our
//! kinds, the Gateway API's), and not on a status write: so an update that keeps the
//! generation, the labels, the annotations and the deletion mark is a status write (often the
//! controller's own) and needs no compile. Kinds without a generation (Services, Secrets,
//! ConfigMaps, Namespaces) change meaning with every update; an EndpointSlice's generation
//! changes with its endpoints.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher;

/// What of an object's metadata the compile depends on, besides its spec (`generation`).
#[derive(Clone, Debug, PartialEq)]
struct Meaning {
    generation: i64,
    /// Of the labels and annotations (a hash: annotations can be large).
    metadata: u64,
    deleting: bool,
}

impl Meaning {
    /// `None` for an object without a generation: every update may change it.
    fn of(meta: &ObjectMeta) -> Option<Meaning> {
        let mut hasher = DefaultHasher::new();
        (&meta.labels, &meta.annotations).hash(&mut hasher);
        Some(Meaning {
            generation: meta.generation?,
            metadata: hasher.finish(),
            deleting: meta.deletion_timestamp.is_some(),
        })
    }
}

/// The meaning of each object one watch has seen, to tell meaningful events from the others.
#[derive(Default)]
pub struct Meanings {
    /// By `(namespace, name)`.
    seen: HashMap<(Option<String>, Option<String>), Meaning>,
    /// The meanings of a relist under way.
    relist: HashMap<(Option<String>, Option<String>), Meaning>,
}

impl Meanings {
    /// Whether `event` may change what the compiler reads (and so should wake it).
    pub fn changes<K: kube::Resource>(&mut self, event: &watcher::Event<K>) -> bool {
        let key = |m: &ObjectMeta| (m.namespace.clone(), m.name.clone());
        match event {
            watcher::Event::Apply(o) => {
                let meta = o.meta();
                let Some(meaning) = Meaning::of(meta) else {
                    return true;
                };
                self.seen.insert(key(meta), meaning.clone()) != Some(meaning)
            }
            watcher::Event::Delete(o) => {
                self.seen.remove(&key(o.meta()));
                true
            }
            watcher::Event::Init => {
                self.relist.clear();
                false
            }
            watcher::Event::InitApply(o) => {
                let meta = o.meta();
                if let Some(meaning) = Meaning::of(meta) {
                    self.relist.insert(key(meta), meaning);
                }
                false
            }
            // The store now holds the relist: compile once.
            watcher::Event::InitDone => {
                self.seen = std::mem::take(&mut self.relist);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use frontdesk_crds::route::Route;
    use k8s_openapi::api::core::v1::Service;

    use super::*;

    fn route(generation: i64, labels: &[(&str, &str)], status: &str) -> Route {
        let mut r: Route = serde_json::from_value(serde_json::json!({
            "apiVersion": "frontdesk.dev/v1alpha1", "kind": "Route",
            "metadata": {"name": "orders", "namespace": "shop", "generation": generation},
            "spec": {"rules": []},
        }))
        .unwrap();
        if !labels.is_empty() {
            r.metadata.labels = Some(
                (labels.iter())
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        r.metadata.resource_version = Some(status.to_string());
        r
    }

    #[test]
    fn a_status_write_wakes_no_compile_and_an_edit_does() {
        let mut m = Meanings::default();
        assert!(!m.changes(&watcher::Event::<Route>::Init));
        assert!(!m.changes(&watcher::Event::InitApply(route(1, &[], "1"))));
        assert!(m.changes(&watcher::Event::<Route>::InitDone));
        // The controller's own status write: a new resourceVersion, the same generation.
        assert!(!m.changes(&watcher::Event::Apply(route(1, &[], "2"))));
        // A spec edit bumps the generation.
        assert!(m.changes(&watcher::Event::Apply(route(2, &[], "3"))));
        assert!(!m.changes(&watcher::Event::Apply(route(2, &[], "4"))));
        // Labels and annotations are read too (Gateway API route selection, options).
        assert!(m.changes(&watcher::Event::Apply(route(2, &[("tier", "gold")], "5"))));
        let mut deleting = route(2, &[("tier", "gold")], "6");
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert!(m.changes(&watcher::Event::Apply(deleting)));
        assert!(m.changes(&watcher::Event::Delete(route(2, &[], "7"))));
        // Recreated with the same name and generation: new to this watch.
        assert!(m.changes(&watcher::Event::Apply(route(1, &[], "8"))));
    }

    #[test]
    fn a_kind_without_generation_changes_with_every_update() {
        let mut m = Meanings::default();
        let mut s = Service::default();
        s.metadata.name = Some("api".into());
        assert!(m.changes(&watcher::Event::Apply(s.clone())));
        assert!(m.changes(&watcher::Event::Apply(s)));
    }

    /// A relist replaces what the watch had seen: an object gone meanwhile is forgotten.
    #[test]
    fn a_relist_replaces_the_meanings_seen() {
        let mut m = Meanings::default();
        assert!(m.changes(&watcher::Event::Apply(route(3, &[], "1"))));
        assert!(!m.changes(&watcher::Event::<Route>::Init));
        assert!(m.changes(&watcher::Event::<Route>::InitDone));
        assert!(m.changes(&watcher::Event::Apply(route(3, &[], "2"))));
    }
}
