//! An object's last accepted version keeps serving while its newest one is rejected.
//!
//! A bad `kubectl apply` or file edit must not take a working Route, Policy or Aggregate off
//! the gateway. So each compile remembers the accepted version of every object, and when an
//! object's newest version is rejected (Accepted=False) or cannot be read at all, the version
//! remembered for it is compiled in its place. Statuses still describe what the user wrote,
//! plus [`ObjectStatus::served_generation`] naming what is served instead.
//!
//! An object deleted and created again (another Kubernetes `uid`) starts afresh: a rejected
//! new object is never stood in for by its namesake's past. The versions standing in can be
//! written out ([`LastAccepted::stand_ins`]) and read back after a restart
//! ([`LastAccepted::restore`]), so a rollout during a bad edit does not drop what was serving;
//! without that, an object rejected at startup is not served.
//!
//! Used by both sources: manifest files ([`crate::catalog`]) and the Kubernetes API (the
//! controller's cluster mode). Pure: no I/O.

use std::collections::{BTreeMap, HashMap};

use crate::compile::{Output, compile};
use crate::manifests::{Object, ObjectKey, resources};
use crate::status::ObjectStatus;

/// What happened to an object whose newest version could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    pub key: ObjectKey,
    /// The generation served instead, or `None`: the object is not served.
    pub served: Option<i64>,
}

/// An object of ours that could not be read at all: its status saying why (Accepted=False),
/// and its `uid` when known.
pub struct Unreadable {
    pub status: ObjectStatus,
    pub uid: Option<String>,
}

/// The last accepted version of every Route, Policy, Aggregate, HTTPRoute and GRPCRoute.
#[derive(Default)]
pub struct LastAccepted {
    accepted: HashMap<ObjectKey, Object>,
    /// Compile with hosts shared across namespaces ([`crate::compile::Resources::shared_hosts`]).
    pub shared_hosts: bool,
    /// The URL hosts manifests may name ([`crate::compile::Resources::urls`]).
    pub urls: crate::compile::urls::UrlPolicy,
    /// Gateways whose class is not written are frontdesk's
    /// ([`crate::compile::Resources::gateway_class_optional`]).
    pub gateway_class_optional: bool,
}

/// The kinds whose versions are kept; Services, EndpointSlices and Secrets are facts about the
/// cluster, taken as they are.
pub const KEPT_KINDS: [&str; 5] = ["Route", "Policy", "Aggregate", "HTTPRoute", "GRPCRoute"];

/// Refusals by where the object attaches rather than by what it says: a version its Gateways'
/// listeners refuse was placed there on purpose (or its Gateway changed), and the version
/// before it is not stood in.
pub(crate) const PLACEMENT_REASONS: [&str; 3] = [
    "NotAllowedByListeners",
    "NoMatchingParent",
    "NoMatchingListenerHostname",
];

/// The key of the object a status is about, when it is of a kept kind.
fn kept_key(status: &ObjectStatus) -> Option<ObjectKey> {
    Some(ObjectKey {
        kind: KEPT_KINDS.into_iter().find(|k| *k == status.kind)?,
        namespace: status.namespace.clone(),
        name: status.name.clone(),
    })
}

impl LastAccepted {
    /// Compiles `objects` (one per key, as read) with the last accepted version standing in for
    /// each rejected one and for each of `unreadable`, whose statuses join the output's.
    /// Remembers what was accepted and forgets objects that are gone.
    pub fn compile(
        &mut self,
        mut objects: BTreeMap<ObjectKey, Object>,
        unreadable: Vec<Unreadable>,
    ) -> (Output, Vec<Fallback>) {
        let read = |objects: &BTreeMap<ObjectKey, Object>| {
            let mut r = resources(objects.values());
            r.shared_hosts = self.shared_hosts;
            r.urls = self.urls.clone();
            r.gateway_class_optional = self.gateway_class_optional;
            r
        };
        let mut output = compile(&read(&objects));
        let rejected = output.statuses.iter().filter(|s| {
            let placed_elsewhere = s
                .condition(crate::status::ACCEPTED)
                .is_some_and(|c| PLACEMENT_REASONS.contains(&c.reason.as_str()));
            !s.accepted() && !placed_elsewhere
        });
        let unusable: Vec<(ObjectKey, Option<String>)> = rejected
            .filter_map(|s| {
                let key = kept_key(s)?;
                let uid = objects.get(&key)?.metadata().uid.clone();
                Some((key, uid))
            })
            .chain(
                unreadable
                    .iter()
                    .filter_map(|u| Some((kept_key(&u.status)?, u.uid.clone()))),
            )
            .collect();
        let mut fallbacks = Vec::new();
        for (key, uid) in unusable {
            // A namesake with another uid was deleted and created again: it starts afresh.
            let previous = self.accepted.get(&key).filter(|o| {
                let then = o.metadata().uid.as_deref();
                uid.as_deref()
                    .zip(then)
                    .is_none_or(|(now, then)| now == then)
            });
            let served = previous.map(|o| o.metadata().generation.unwrap_or(0));
            if let Some(previous) = previous {
                objects.insert(key.clone(), previous.clone());
            }
            fallbacks.push(Fallback { key, served });
        }
        if fallbacks.iter().any(|f| f.served.is_some()) {
            // Statuses still describe what the user wrote; the snapshots serve the last good.
            let mut statuses = std::mem::take(&mut output.statuses);
            output = compile(&read(&objects));
            // A stand-in can hold a host its rejected successor gave up: whoever lost the host
            // to it is not served, and its status says so rather than Accepted.
            for st in statuses.iter_mut().filter(|s| s.accepted()) {
                let lost = output.statuses.iter().find(|s| {
                    (&s.kind, &s.namespace, &s.name) == (&st.kind, &st.namespace, &st.name)
                        && s.condition(crate::status::CONFLICTED)
                            .is_some_and(|c| c.reason == "HostConflict")
                });
                if let Some(lost) = lost {
                    *st = lost.clone();
                }
            }
            output.statuses = statuses;
        }
        output
            .statuses
            .extend(unreadable.into_iter().map(|u| u.status));
        for status in &mut output.statuses {
            status.served_generation = fallbacks
                .iter()
                .find(|f| kept_key(status).is_some_and(|k| k == f.key))
                .and_then(|f| f.served);
        }
        output.statuses.sort_by(|a, b| {
            (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name))
        });
        self.remember(objects, &output);
        (output, fallbacks)
    }

    /// The versions standing in for the objects of `fallbacks` now, as one manifest (JSON
    /// documents separated by `---`) that [`LastAccepted::restore`] reads back.
    pub fn stand_ins(&self, fallbacks: &[Fallback]) -> String {
        let mut documents = Vec::new();
        for fallback in fallbacks.iter().filter(|f| f.served.is_some()) {
            let Some(object) = self.accepted.get(&fallback.key) else {
                continue;
            };
            let (api_version, value) = match object {
                Object::Route(o) => ("frontdesk.dev/v1alpha1", serde_json::to_value(o)),
                Object::Policy(o) => ("frontdesk.dev/v1alpha1", serde_json::to_value(o)),
                Object::Aggregate(o) => ("frontdesk.dev/v1alpha1", serde_json::to_value(o)),
                Object::HttpRoute(o) => ("gateway.networking.k8s.io/v1", serde_json::to_value(o)),
                Object::GrpcRoute(o) => ("gateway.networking.k8s.io/v1", serde_json::to_value(o)),
                _ => continue,
            };
            let Ok(serde_json::Value::Object(mut value)) = value else {
                continue;
            };
            value.insert("apiVersion".into(), api_version.into());
            value.insert("kind".into(), fallback.key.kind.into());
            // What the status said of it is not part of what it is; neither are the API
            // server's bookkeeping and kubectl's copy of the last apply, which only make the
            // ConfigMap bigger.
            value.remove("status");
            if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                meta.remove("managedFields");
                if let Some(notes) = meta.get_mut("annotations").and_then(|a| a.as_object_mut()) {
                    notes.remove("kubectl.kubernetes.io/last-applied-configuration");
                }
            }
            documents.push(serde_json::Value::Object(value).to_string());
        }
        documents.join("\n---\n")
    }

    /// Remembers the versions of a [`LastAccepted::stand_ins`] manifest, so that they stand in
    /// again for objects still rejected (and with the same uid) at the next compile; an object
    /// accepted by then replaces its version, one gone is forgotten. Returns what could not be
    /// read.
    pub fn restore(&mut self, manifest: &str) -> Vec<String> {
        let parsed = crate::manifests::parse_file("stand-ins", manifest);
        for (object, _) in parsed.objects {
            let key = object.key();
            // Without a uid it could stand in for a namesake created since.
            if KEPT_KINDS.contains(&key.kind) && object.metadata().uid.is_some() {
                self.accepted.entry(key).or_insert(object);
            }
        }
        parsed.errors.iter().map(ToString::to_string).collect()
    }

    /// The versions remembered, which may stand in for their objects at the next compile: a
    /// source that fetches what objects reference (the controller's Secret watches) must
    /// fetch for these too, or a stand-in would be compiled without its Secrets.
    pub fn kept(&self) -> impl Iterator<Item = &Object> {
        self.accepted.values()
    }

    /// Objects gone from the source are forgotten; accepted ones (or ones without a status)
    /// replace what was kept. A stood-in object is still present, so its version stays.
    fn remember(&mut self, objects: BTreeMap<ObjectKey, Object>, output: &Output) {
        self.accepted.retain(|key, _| objects.contains_key(key));
        for (key, object) in objects {
            let accepted = output
                .status(key.kind, &key.namespace, &key.name)
                .is_none_or(|s| s.accepted());
            if KEPT_KINDS.contains(&key.kind) && accepted {
                self.accepted.insert(key, object);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifests::parse_file;

    /// Route `name` (uid `uid`, generation `generation`) matching `path`.
    fn route(name: &str, uid: &str, generation: i64, path: &str) -> (ObjectKey, Object) {
        let text = format!(
            "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\n\
             metadata: {{name: {name}, namespace: shop, uid: {uid}, generation: {generation}}}\n\
             spec:\n  rules:\n    - matches: [{{path: {{value: \"{path}\"}}}}]\n      \
             backends: [{{url: 'http://127.0.0.1:1'}}]\n"
        );
        let parsed = parse_file("r.yaml", &text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let object = parsed.objects.into_iter().next().unwrap().0;
        (object.key(), object)
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
    fn a_host_kept_by_a_stand_in_is_reported_as_taken() {
        let route = |ns: &str,
                     name: &str,
                     uid: &str,
                     generation: i64,
                     created: &str,
                     path: &str| {
            let text = format!(
                "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\n\
                 metadata: {{name: {name}, namespace: {ns}, uid: {uid}, generation: {generation}, creationTimestamp: \"{created}\"}}\n\
                 spec:\n  hosts: [h.example.com]\n  rules:\n    - matches: [{{path: {{value: \"{path}\"}}}}]\n      \
                 backends: [{{url: 'http://127.0.0.1:1'}}]\n"
            );
            let parsed = parse_file("r.yaml", &text);
            assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
            let object = parsed.objects.into_iter().next().unwrap().0;
            (object.key(), object)
        };
        let mut last = LastAccepted::default();
        let older = |g, path| route("a", "yard", "u1", g, "2026-01-01T00:00:00Z", path);
        let newer = route("b", "xray", "u2", 1, "2026-02-01T00:00:00Z", "/x");
        last.compile([older(1, "/y")].into(), vec![]);
        // Y's next generation is invalid, so it claims nothing; its first one stands in and
        // keeps the host: X, of another namespace, is not served and is told so.
        let (out, _) = last.compile([older(2, "no-slash"), newer].into(), vec![]);
        let x = out.status("Route", "b", "xray").unwrap();
        assert!(!x.accepted(), "{x:?}");
        assert_eq!(
            x.condition(crate::status::CONFLICTED).unwrap().reason,
            "HostConflict"
        );
        let paths = served(&out);
        assert!(paths.iter().all(|p| !p.contains("/x")), "{paths:?}");
    }

    /// A restart during a bad edit: the version standing in is written out, and a fresh
    /// LastAccepted that reads it back serves it at its very first compile.
    #[test]
    fn a_stand_in_written_out_stands_in_again_after_a_restart() {
        let mut before = LastAccepted::default();
        before.compile([route("r", "u1", 1, "/v1")].into(), vec![]);
        let (out, fallbacks) = before.compile([route("r", "u1", 2, "no-slash")].into(), vec![]);
        assert_eq!(served(&out), ["Prefix { value: \"/v1\" }"]);
        let manifest = before.stand_ins(&fallbacks);
        assert!(manifest.contains("\"kind\":\"Route\""), "{manifest}");

        let mut after = LastAccepted::default();
        assert!(after.restore(&manifest).is_empty());
        let (out, fallbacks) = after.compile([route("r", "u1", 2, "no-slash")].into(), vec![]);
        assert_eq!(served(&out), ["Prefix { value: \"/v1\" }"]);
        assert_eq!(
            out.status("Route", "shop", "r").unwrap().served_generation,
            Some(1)
        );
        assert_eq!(after.stand_ins(&fallbacks), manifest);

        // Recreated meanwhile (another uid): not stood in for. Fixed: nothing to write out.
        let mut recreated = LastAccepted::default();
        recreated.restore(&manifest);
        let (out, _) = recreated.compile([route("r", "u2", 1, "no-slash")].into(), vec![]);
        assert!(served(&out).is_empty());
        let mut fixed = LastAccepted::default();
        fixed.restore(&manifest);
        let (out, fallbacks) = fixed.compile([route("r", "u1", 3, "/v3")].into(), vec![]);
        assert_eq!(served(&out), ["Prefix { value: \"/v3\" }"]);
        assert_eq!(fixed.stand_ins(&fallbacks), "");
    }

    /// An HTTPRoute moved to a listener that does not exist is refused there (placement, not
    /// content): its earlier version does not keep serving where the user took it away from.
    #[test]
    fn a_route_refused_by_where_it_attaches_is_not_stood_in_for() {
        let http_route = |generation: i64, section: &str| {
            let text = format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
                 metadata: {{name: default, namespace: shop}}\n\
                 spec: {{gatewayClassName: frontdesk, listeners: [{{name: web, port: 80, protocol: HTTP}}]}}\n---\n\
                 apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
                 metadata: {{name: a, namespace: shop, uid: u1, generation: {generation}}}\n\
                 spec:\n  parentRefs: [{{name: default, sectionName: {section}}}]\n  rules:\n    \
                 - matches: [{{path: {{value: /a}}}}]\n"
            );
            let parsed = parse_file("r.yaml", &text);
            assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
            let objects: BTreeMap<ObjectKey, Object> = parsed
                .objects
                .into_iter()
                .map(|(o, _)| (o.key(), o))
                .collect();
            objects
        };
        let mut last = LastAccepted {
            gateway_class_optional: true,
            ..Default::default()
        };
        let (out, _) = last.compile(http_route(1, "web"), vec![]);
        assert_eq!(served(&out).len(), 1);
        let (out, fallbacks) = last.compile(http_route(2, "elsewhere"), vec![]);
        assert!(fallbacks.is_empty(), "{:?}", fallbacks.len());
        assert!(served(&out).is_empty());
        let status = out.status("HTTPRoute", "shop", "a").unwrap();
        assert_eq!(status.conditions[0].reason, "NoMatchingParent");
    }

    #[test]
    fn a_rejected_generation_is_reported_while_the_accepted_one_serves() {
        let mut last = LastAccepted::default();
        let (out, fallbacks) = last.compile([route("a", "u1", 1, "/a")].into(), vec![]);
        assert!(fallbacks.is_empty());
        assert!(served(&out)[0].contains("\"/a\""));

        let (out, fallbacks) = last.compile(
            [route("a", "u1", 2, "no-slash"), route("b", "u2", 1, "/b")].into(),
            vec![],
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
        let (out, fallbacks) = last.compile([route("a", "u1", 3, "/a3")].into(), vec![]);
        assert!(fallbacks.is_empty());
        assert!(served(&out)[0].contains("/a3"));
        assert_eq!(
            out.status("Route", "shop", "a").unwrap().served_generation,
            None
        );
    }

    #[test]
    fn an_unreadable_object_keeps_its_accepted_version() {
        let unreadable = |uid: Option<&str>| Unreadable {
            status: ObjectStatus::unreadable("Route", "shop", "a", 2, "spec.x", "unknown field"),
            uid: uid.map(Into::into),
        };
        let mut last = LastAccepted::default();
        let (key, value) = route("a", "u1", 1, "/a");
        last.compile([(key.clone(), value)].into(), vec![]);
        let (out, fallbacks) = last.compile(BTreeMap::new(), vec![unreadable(Some("u1"))]);
        assert_eq!(
            fallbacks,
            [Fallback {
                key: key.clone(),
                served: Some(1)
            }]
        );
        assert_eq!(served(&out).len(), 1);
        let status = out.status("Route", "shop", "a").unwrap();
        assert_eq!(
            (status.accepted(), status.served_generation),
            (false, Some(1))
        );
        // Still unreadable later: still served.
        let (out, _) = last.compile(BTreeMap::new(), vec![unreadable(None)]);
        assert_eq!(served(&out).len(), 1);
    }

    #[test]
    fn a_recreated_or_deleted_object_does_not_bring_back_the_old_one() {
        let mut last = LastAccepted::default();
        last.compile([route("a", "u1", 1, "/a")].into(), vec![]);
        // Deleted and created again (new uid), invalid: not served.
        let (out, fallbacks) = last.compile([route("a", "u9", 1, "bad")].into(), vec![]);
        assert_eq!(fallbacks[0].served, None);
        assert!(served(&out).is_empty());
        assert_eq!(
            out.status("Route", "shop", "a").unwrap().served_generation,
            None
        );

        let mut last = LastAccepted::default();
        last.compile([route("a", "u1", 1, "/a")].into(), vec![]);
        last.compile(BTreeMap::new(), vec![]); // deleted
        let (out, fallbacks) = last.compile([route("a", "u1", 2, "bad")].into(), vec![]);
        assert_eq!(fallbacks[0].served, None, "a deleted object is forgotten");
        assert!(served(&out).is_empty());
    }
}
