//! Endpoint changes: the small delta that moves a snapshot to its next version when only the
//! ready addresses behind some backends changed (a pod started, stopped or failed its
//! readiness probe). The controller computes it ([`Snapshot::endpoint_changes`]) and applies
//! it to what it publishes; a proxy applies the same delta to what it serves
//! ([`Snapshot::with_endpoints`]) without rebuilding its routes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Action, Backend, Route, Rule, Snapshot};

/// The endpoints every backend named `backend` now has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointChange {
    /// [`Backend::name`]: every backend of that name (in every rule, mirror and call) changes.
    pub backend: String,
    pub endpoints: Vec<String>,
}

impl Snapshot {
    /// Every backend: of forwards, mirrors and aggregate calls.
    pub fn backends(&self) -> impl Iterator<Item = &Backend> {
        self.routes
            .iter()
            .flat_map(|r| &r.rules)
            .flat_map(backends_of)
    }

    /// The backends whose endpoints differ from what `now` says they are, one change per
    /// name, in name order. `now` answers `None` for a backend whose endpoints it cannot tell
    /// (not a Service's, or held back by the compiler): those are left alone. Invalid backends
    /// have no endpoints by design and are never asked about.
    pub fn endpoint_changes(
        &self,
        mut now: impl FnMut(&str) -> Option<Vec<String>>,
    ) -> Vec<EndpointChange> {
        let mut asked = std::collections::BTreeMap::new();
        for b in self.backends().filter(|b| !b.invalid) {
            if asked.contains_key(b.name.as_str()) {
                continue;
            }
            let change = now(&b.name)
                .filter(|endpoints| *endpoints != b.endpoints)
                .map(|endpoints| EndpointChange {
                    backend: b.name.clone(),
                    endpoints,
                });
            asked.insert(b.name.as_str(), change);
        }
        asked.into_values().flatten().collect()
    }

    /// This snapshot with `changes` applied, at `version`. Fails, changing nothing, when a
    /// change names no backend or an endpoint is not a `host:port` authority.
    pub fn with_endpoints(
        &self,
        version: u64,
        changes: &[EndpointChange],
    ) -> Result<Snapshot, String> {
        for (i, c) in changes.iter().enumerate() {
            for e in &c.endpoints {
                crate::validate::check_authority(e)
                    .map_err(|r| format!("changes[{i}] ({}): {r}", c.backend))?;
            }
        }
        let by_name: HashMap<&str, &Vec<String>> = changes
            .iter()
            .map(|c| (c.backend.as_str(), &c.endpoints))
            .collect();
        let changes_route = |route: &Route| {
            route
                .rules
                .iter()
                .flat_map(backends_of)
                .any(|b| !b.invalid && by_name.contains_key(b.name.as_str()))
        };
        // The routes are shared with `self`: only those with a changed backend are copied.
        let mut next = self.clone();
        next.version = version;
        let mut found = HashSet::new();
        for route in next.routes.iter_mut().filter(|r| changes_route(r)) {
            let rules = &mut Arc::make_mut(route).rules;
            for b in rules.iter_mut().flat_map(backends_of_mut) {
                if let Some(endpoints) = by_name.get(b.name.as_str()).filter(|_| !b.invalid) {
                    b.endpoints.clone_from(endpoints);
                    found.insert(b.name.as_str().to_owned());
                }
            }
        }
        match changes.iter().find(|c| !found.contains(&c.backend)) {
            Some(c) => Err(format!(
                "the endpoint change for {} names no backend of version {}",
                c.backend, self.version
            )),
            None => Ok(next),
        }
    }
}

/// The backends of one rule: its action's (forward or aggregate calls), then its mirrors'.
fn backends_of(rule: &Rule) -> impl Iterator<Item = &Backend> {
    let (forward, calls): (&[Backend], &[crate::Call]) = match &rule.action {
        Action::Forward { backends } => (backends, &[]),
        Action::Aggregate(a) => (&[], &a.calls),
        Action::Redirect(_) | Action::DirectResponse(_) => (&[], &[]),
    };
    forward
        .iter()
        .chain(calls.iter().map(|c| &c.backend))
        .chain(rule.mirrors.iter().map(|m| &m.backend))
}

/// [`backends_of`], to edit.
fn backends_of_mut(rule: &mut Rule) -> impl Iterator<Item = &mut Backend> {
    let (forward, calls): (&mut [Backend], &mut [crate::Call]) = match &mut rule.action {
        Action::Forward { backends } => (backends, &mut []),
        Action::Aggregate(a) => (&mut [], &mut a.calls),
        Action::Redirect(_) | Action::DirectResponse(_) => (&mut [], &mut []),
    };
    forward
        .iter_mut()
        .chain(calls.iter_mut().map(|c| &mut c.backend))
        .chain(rule.mirrors.iter_mut().map(|m| &mut m.backend))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Call, Merge, Mirror};

    fn backend(name: &str, endpoints: &[&str]) -> Backend {
        Backend {
            name: name.into(),
            weight: 1,
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            tls: None,
            protocol: Default::default(),
            invalid: false,
        }
    }

    fn rule(id: &str, action: Action, mirrors: Vec<Mirror>) -> Rule {
        let mut rule: Rule = serde_json::from_value(serde_json::json!({
            "id": id, "matches": [], "timeoutMs": 1000,
            "action": {"type": "directResponse", "status": 200}
        }))
        .unwrap();
        rule.action = action;
        rule.mirrors = mirrors;
        rule
    }

    /// A forward to `a` mirrored to `b`, and an aggregate calling `a`.
    fn snapshot() -> Snapshot {
        let call: Call = serde_json::from_value(serde_json::json!({
            "name": "c", "key": "c", "target": [], "required": true, "timeoutMs": 100,
            "backend": {"name": "a", "weight": 1, "endpoints": ["10.0.0.1:80"]}
        }))
        .unwrap();
        let forward = rule(
            "ns/r/0",
            Action::Forward {
                backends: vec![backend("a", &["10.0.0.1:80"])],
            },
            vec![Mirror {
                backend: backend("b", &[]),
                share_ppm: 1_000_000,
            }],
        );
        let aggregate = rule(
            "ns/r/1",
            Action::Aggregate(crate::Aggregate {
                forward_headers: vec![],
                max_call_bytes: 1024,
                merge: Merge::Nested,
                calls: vec![call],
            }),
            vec![],
        );
        let route: Route = serde_json::from_value(serde_json::json!({
            "namespace": "ns", "name": "r", "hosts": [], "rules": []
        }))
        .unwrap();
        Snapshot {
            gateway: "g".into(),
            version: 4,
            routes: vec![Arc::new(Route {
                rules: vec![forward, aggregate],
                ..route
            })],
            ..Default::default()
        }
    }

    #[test]
    fn every_backend_of_a_name_changes_once() {
        let s = snapshot();
        let names: Vec<&str> = s.backends().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "a"]);
        let mut asked = Vec::new();
        let changes = s.endpoint_changes(|name| {
            asked.push(name.to_string());
            Some(vec!["10.0.0.2:80".to_string()])
        });
        assert_eq!(asked, ["a", "b"], "each name asked once");
        assert_eq!(changes.len(), 2);
        let next = s.with_endpoints(5, &changes).unwrap();
        assert_eq!(next.version, 5);
        assert!(next.backends().all(|b| b.endpoints == ["10.0.0.2:80"]));
        assert_eq!(s.backends().next().unwrap().endpoints, ["10.0.0.1:80"]);
    }

    #[test]
    fn only_the_routes_with_a_changed_backend_are_copied() {
        let mut s = snapshot();
        let other: Route = serde_json::from_value(serde_json::json!({
            "namespace": "ns", "name": "other", "hosts": [], "rules": [{
                "id": "ns/other/0", "matches": [], "timeoutMs": 1000,
                "action": {"type": "forward", "backends": [
                    {"name": "c", "weight": 1, "endpoints": ["10.0.0.3:80"]}
                ]}
            }]
        }))
        .unwrap();
        s.routes.push(Arc::new(other));
        let change = EndpointChange {
            backend: "a".into(),
            endpoints: vec!["10.0.0.2:80".into()],
        };
        let next = s.with_endpoints(5, &[change]).unwrap();
        assert!(
            !Arc::ptr_eq(&s.routes[0], &next.routes[0]),
            "a's route is a copy"
        );
        assert!(
            Arc::ptr_eq(&s.routes[1], &next.routes[1]),
            "the other is shared"
        );
        let moved: Vec<&Backend> = next.backends().filter(|b| b.name == "a").collect();
        assert_eq!(moved.len(), 2);
        assert!(moved.iter().all(|b| b.endpoints == ["10.0.0.2:80"]));
        assert_eq!(s.backends().next().unwrap().endpoints, ["10.0.0.1:80"]);
    }

    #[test]
    fn unchanged_unknown_and_invalid_backends_are_left_alone() {
        let mut s = snapshot();
        let changes = s.endpoint_changes(|name| match name {
            "a" => Some(vec!["10.0.0.1:80".to_string()]),
            _ => None,
        });
        assert!(changes.is_empty());
        let rules = s
            .routes
            .iter_mut()
            .flat_map(|r| &mut Arc::make_mut(r).rules);
        for b in rules.flat_map(backends_of_mut).filter(|b| b.name == "b") {
            b.invalid = true;
        }
        let changes = s.endpoint_changes(|_| Some(vec!["10.0.0.9:80".to_string()]));
        assert_eq!(
            changes
                .iter()
                .map(|c| c.backend.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[test]
    fn a_change_that_names_nothing_or_no_authority_is_refused_whole() {
        let s = snapshot();
        let change = |backend: &str, e: &str| EndpointChange {
            backend: backend.into(),
            endpoints: vec![e.into()],
        };
        let e = s
            .with_endpoints(
                5,
                &[change("a", "10.0.0.2:80"), change("zz", "10.0.0.2:80")],
            )
            .unwrap_err();
        assert_eq!(
            e,
            "the endpoint change for zz names no backend of version 4"
        );
        let e = s.with_endpoints(5, &[change("a", "nope")]).unwrap_err();
        assert!(e.starts_with("changes[0] (a): "), "{e}");
    }
}
