//! An object's last accepted version keeps serving while its newest one is rejected.
//!
//! A bad `kubectl apply` or file edit must not take a working Route, Policy or Aggregate off
//! the gateway. So each compile remembers the accepted version of every object, and when an
//! object's newest version is rejected (Accepted=False) or cannot be read at all, the version
//! remembered for it is compiled in its place. Statuses still describe what the user wrote,
//! plus [`ObjectStatus::served_generation`] naming what is served instead.
//!
//! An object deleted and created again (another Kubernetes `uid`) starts afresh: a rejected
//! new object is never stood in for by its namesake's past. Nothing survives a restart either:
//! an object rejected at startup is not served.
//!
//! Used by both sources: manifest files ([`crate::catalog`]) and the Kubernetes API (the
//! controller's cluster mode). Pure: no I/O.

use std::collections::{BTreeMap, HashMap};

use crate::compile::{Output, compile};
use crate::manifests::{Object, ObjectKey, resources};

/// What happened to an object whose newest version could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    pub key: ObjectKey,
    /// The generation served instead, or `None`: the object is not served.
    pub served: Option<i64>,
}

/// The last accepted version of every user object, with whatever the caller keeps beside it
/// (`M`: the file and document it came from, or nothing).
pub struct LastAccepted<M> {
    accepted: HashMap<ObjectKey, (Object, M)>,
}

impl<M> Default for LastAccepted<M> {
    fn default() -> Self {
        LastAccepted {
            accepted: HashMap::new(),
        }
    }
}

/// The kinds whose versions are kept; Services, EndpointSlices and Secrets are facts about the
/// cluster, taken as they are.
fn kept_kind(kind: &str) -> bool {
    matches!(kind, "Route" | "Policy" | "Aggregate")
}

impl<M: Clone> LastAccepted<M> {
    /// Compiles `objects` (one per key, as read) with the last accepted version standing in for
    /// each rejected one and for each of `unreadable` (objects present but not readable, with
    /// their `uid` when known; their statuses are the caller's). Remembers what was accepted
    /// and forgets objects that are gone.
    pub fn compile(
        &mut self,
        mut objects: BTreeMap<ObjectKey, (Object, M)>,
        unreadable: &[(ObjectKey, Option<String>)],
    ) -> (Output, Vec<Fallback>) {
        let mut output = compile(&resources(objects.values().map(|(o, _)| o)));
        let rejected: Vec<(ObjectKey, Option<String>)> = output
            .statuses
            .iter()
            .filter(|s| !s.accepted())
            .filter_map(|s| {
                let key = ObjectKey {
                    kind: ["Route", "Policy", "Aggregate"]
                        .into_iter()
                        .find(|k| *k == s.kind)?,
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                };
                let uid = uid(&objects.get(&key)?.0);
                Some((key, uid))
            })
            .collect();
        let mut fallbacks = Vec::new();
        for (key, uid) in rejected.iter().chain(unreadable) {
            let previous = self
                .accepted
                .get(key)
                .filter(|(o, _)| same_object(uid.as_deref(), self::uid(o).as_deref()));
            let served = previous.map(|(o, _)| generation(o));
            if let Some(previous) = previous {
                objects.insert(key.clone(), previous.clone());
            }
            fallbacks.push(Fallback {
                key: key.clone(),
                served,
            });
        }
        if fallbacks.iter().any(|f| f.served.is_some()) {
            // Statuses still describe what the user wrote; the snapshots serve the last good.
            let statuses = std::mem::take(&mut output.statuses);
            output = compile(&resources(objects.values().map(|(o, _)| o)));
            output.statuses = statuses;
            for f in &fallbacks {
                if let Some(status) = output.statuses.iter_mut().find(|s| {
                    s.kind == f.key.kind && s.namespace == f.key.namespace && s.name == f.key.name
                }) {
                    status.served_generation = f.served;
                }
            }
        }
        self.remember(objects, &output, unreadable);
        (output, fallbacks)
    }

    fn remember(
        &mut self,
        objects: BTreeMap<ObjectKey, (Object, M)>,
        output: &Output,
        unreadable: &[(ObjectKey, Option<String>)],
    ) {
        // Gone from the source: forgotten. Unreadable: still there, keep what we had.
        self.accepted
            .retain(|key, _| objects.contains_key(key) || unreadable.iter().any(|(k, _)| k == key));
        for (key, value) in objects {
            if !kept_kind(key.kind) {
                continue;
            }
            let accepted = output
                .status(key.kind, &key.namespace, &key.name)
                .is_none_or(|s| s.accepted());
            if accepted {
                self.accepted.insert(key, value);
            }
        }
    }
}

/// Same object unless both sides have a `uid` and they differ (files have none).
fn same_object(now: Option<&str>, then: Option<&str>) -> bool {
    match (now, then) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

fn metadata(o: &Object) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    match o {
        Object::Route(o) => &o.metadata,
        Object::Policy(o) => &o.metadata,
        Object::Aggregate(o) => &o.metadata,
        Object::Secret(o) => &o.metadata,
        Object::Service(o) => &o.metadata,
        Object::EndpointSlice(o) => &o.metadata,
    }
}

fn uid(o: &Object) -> Option<String> {
    metadata(o).uid.clone()
}

fn generation(o: &Object) -> i64 {
    metadata(o).generation.unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifests::parse_file;

    /// Route `name` (uid `uid`, generation `generation`) matching `path`.
    fn route(name: &str, uid: &str, generation: i64, path: &str) -> (ObjectKey, (Object, ())) {
        let text = format!(
            "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\n\
             metadata: {{name: {name}, namespace: shop, uid: {uid}, generation: {generation}}}\n\
             spec:\n  rules:\n    - matches: [{{path: {{value: \"{path}\"}}}}]\n      \
             backends: [{{url: 'http://127.0.0.1:1'}}]\n"
        );
        let parsed = parse_file("r.yaml", &text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let object = parsed.objects.into_iter().next().unwrap().0;
        (object.key(), (object, ()))
    }

    /// The paths the default gateway serves (also used by the catalog's tests).
    pub(crate) fn served(output: &Output) -> Vec<String> {
        output
            .snapshot("default")
            .routes
            .iter()
            .flat_map(|r| r.rules.iter())
            .flat_map(|r| r.matches.iter())
            .map(|m| format!("{:?}", m.path))
            .collect()
    }

    #[test]
    fn a_rejected_generation_is_reported_while_the_accepted_one_serves() {
        let mut last = LastAccepted::default();
        let (out, fallbacks) = last.compile([route("a", "u1", 1, "/a")].into(), &[]);
        assert!(fallbacks.is_empty());
        assert!(served(&out)[0].contains("\"/a\""));

        let (out, fallbacks) = last.compile(
            [route("a", "u1", 2, "no-slash"), route("b", "u2", 1, "/b")].into(),
            &[],
        );
        assert_eq!(fallbacks.len(), 1);
        assert_eq!(fallbacks[0].served, Some(1));
        let status = out.status("Route", "shop", "a").unwrap();
        assert!(!status.accepted(), "the status reports generation 2");
        assert_eq!((status.generation, status.served_generation), (2, Some(1)));
        let paths = served(&out);
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("\"/a\"")), "{paths:?}");

        // Fixed: generation 3 serves, and nothing stands in any more.
        let (out, fallbacks) = last.compile([route("a", "u1", 3, "/a3")].into(), &[]);
        assert!(fallbacks.is_empty());
        assert!(served(&out)[0].contains("/a3"));
        assert_eq!(
            out.status("Route", "shop", "a").unwrap().served_generation,
            None
        );
    }

    #[test]
    fn an_unreadable_object_keeps_its_accepted_version() {
        let mut last = LastAccepted::default();
        let (key, value) = route("a", "u1", 1, "/a");
        last.compile([(key.clone(), value)].into(), &[]);
        let (out, fallbacks) = last.compile(BTreeMap::new(), &[(key.clone(), Some("u1".into()))]);
        assert_eq!(
            fallbacks,
            [Fallback {
                key: key.clone(),
                served: Some(1)
            }]
        );
        assert_eq!(served(&out).len(), 1);
        // Still unreadable later: still served.
        let (out, _) = last.compile(BTreeMap::new(), &[(key, None)]);
        assert_eq!(served(&out).len(), 1);
    }

    #[test]
    fn a_recreated_or_deleted_object_does_not_bring_back_the_old_one() {
        let mut last = LastAccepted::default();
        last.compile([route("a", "u1", 1, "/a")].into(), &[]);
        // Deleted and created again (new uid), invalid: not served.
        let (out, fallbacks) = last.compile([route("a", "u9", 1, "bad")].into(), &[]);
        assert_eq!(fallbacks[0].served, None);
        assert!(served(&out).is_empty());
        assert_eq!(
            out.status("Route", "shop", "a").unwrap().served_generation,
            None
        );

        let mut last = LastAccepted::default();
        last.compile([route("a", "u1", 1, "/a")].into(), &[]);
        last.compile(BTreeMap::new(), &[]); // deleted
        let (out, fallbacks) = last.compile([route("a", "u1", 2, "bad")].into(), &[]);
        assert_eq!(fallbacks[0].served, None, "a deleted object is forgotten");
        assert!(served(&out).is_empty());
    }
}
