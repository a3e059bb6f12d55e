//! How compiled objects relate to each other: which namespace owns a host, which Gateways a
//! policy takes effect through, and every Policy lowered once for the merges of all rules.

use std::collections::{BTreeMap, BTreeSet};

use super::policy::{Compiled, SecretIndex, lower_policy};
use super::{Output, Resources, gateways, object_id};
use crate::gateway_api::backend_tls_policy::AncestorReference;
use crate::status::ObjectStatus;

/// What a policy that took effect for an object of `kind` (a Route or an Aggregate) took
/// effect through: the Gateways of the `listeners` it attached to, or, attached to none (a
/// gateway group without a Gateway object), the object itself.
pub(super) fn ancestors(
    kind: &str,
    namespace: &str,
    name: &str,
    listeners: &[(String, String, usize)],
) -> BTreeSet<AncestorReference> {
    if listeners.is_empty() {
        let group = match kind {
            "HTTPRoute" | "GRPCRoute" => crate::gateway_api::GROUP,
            _ => gateways::attach::ROUTE_GROUP,
        };
        return BTreeSet::from([AncestorReference {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }]);
    }
    listeners
        .iter()
        .map(|(ns, n, _)| AncestorReference {
            group: crate::gateway_api::GROUP.into(),
            kind: "Gateway".into(),
            namespace: ns.clone(),
            name: n.clone(),
        })
        .collect()
}

/// By route `(kind, namespace, name)`: the listeners it attached to, as
/// `(gateway namespace, gateway name, listener index)`.
pub(super) type RouteListeners = BTreeMap<(String, String, String), Vec<(String, String, usize)>>;

/// Fills in the ancestors of each Policy with `targetRefs`: the Gateways it targets, and those
/// the routes it targets attached to (the route itself on a gateway without a Gateway
/// object). A target frontdesk does not serve is named in a warning.
pub(super) fn policy_ancestors(
    resources: &Resources,
    parents: &gateways::attach::Parents,
    route_listeners: &RouteListeners,
    statuses: &mut [ObjectStatus],
) {
    for p in resources
        .policies
        .iter()
        .filter(|p| !p.spec.target_refs.is_empty())
    {
        let (namespace, name) = object_id(&p.metadata);
        let Some(st) = statuses.iter_mut().find(|s| {
            s.kind == "Policy" && s.namespace == namespace && s.name == name && s.accepted()
        }) else {
            continue;
        };
        let mut found = BTreeSet::new();
        let mut missing = Vec::new();
        for (i, r) in p.spec.target_refs.iter().enumerate() {
            let key = (r.kind.clone(), namespace.clone(), r.name.clone());
            if r.kind == "Gateway" && parents.has_gateway(&namespace, &r.name) {
                found.insert(AncestorReference {
                    group: crate::gateway_api::GROUP.into(),
                    kind: "Gateway".into(),
                    namespace: namespace.clone(),
                    name: r.name.clone(),
                });
            } else if let Some(listeners) = route_listeners.get(&key) {
                found.extend(ancestors(&r.kind, &namespace, &r.name, listeners));
            } else {
                missing.push(format!(
                    "spec.targetRefs[{i}]: {} {namespace}/{} is not served by frontdesk (not found, not accepted, or of another controller)",
                    r.kind, r.name
                ));
            }
        }
        st.ancestors = found.into_iter().collect();
        st.warn(&missing);
    }
}

/// Which namespace each `(gateway, host)` belongs to: the namespace of the oldest valid Route
/// or Aggregate naming it (then by namespace and name, for objects without a creation time).
pub(super) fn host_owners<'a>(
    items: impl Iterator<
        Item = (
            &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            BTreeMap<String, Vec<String>>,
        ),
    >,
) -> BTreeMap<(String, String), String> {
    let mut claims: BTreeMap<(String, String), (Option<String>, String, String)> = BTreeMap::new();
    for (meta, placed) in items {
        let (namespace, name) = object_id(meta);
        // RFC 3339 in UTC sorts as time; no timestamp sorts after any.
        let created = meta.creation_timestamp.as_ref().map(|t| t.0.to_string());
        let claim = (created, namespace, name);
        for (gateway, hosts) in &placed {
            for host in hosts {
                let key = (gateway.clone(), host.clone());
                let older = claims.get(&key).is_none_or(|held| {
                    let (held_at, claim_at) = (held.0.as_deref(), claim.0.as_deref());
                    match (claim_at, held_at) {
                        (Some(c), Some(h)) => (c, &claim.1, &claim.2) < (h, &held.1, &held.2),
                        (Some(_), None) => true,
                        (None, Some(_)) => false,
                        (None, None) => (&claim.1, &claim.2) < (&held.1, &held.2),
                    }
                });
                if older {
                    claims.insert(key, claim.clone());
                }
            }
        }
    }
    claims
        .into_iter()
        .map(|(key, (_, namespace, _))| (key, namespace))
        .collect()
}

/// Lowers every Policy: its status, and what the merge of each rule reads. Also returns the
/// generation of each usable Policy, by `namespace/name`, for the snapshots' sources.
pub(super) fn compile_policies(
    resources: &Resources,
    out: &mut Output,
) -> (BTreeMap<(String, String), Compiled>, BTreeMap<String, i64>) {
    let secrets = SecretIndex::new(&resources.secrets);
    let mut compiled = BTreeMap::new();
    let mut generations = BTreeMap::new();
    for p in &resources.policies {
        let (namespace, name) = object_id(&p.metadata);
        let generation = p.metadata.generation.unwrap_or(0);
        let lowered = lower_policy(
            &namespace,
            &name,
            &p.spec,
            &secrets,
            &resources.config_maps,
            &resources.urls,
        );
        let mut st = ObjectStatus::new("Policy", &namespace, &name, generation);
        if !lowered.invalid.is_empty() {
            st.reject(lowered.invalid.0);
            compiled.insert((namespace, name), Compiled::Invalid);
            out.statuses.push(st);
            continue;
        }
        let reason = if lowered.policy.unavailable.is_some() {
            "SecretNotFound"
        } else {
            "SecretEntriesSkipped"
        };
        st.accept(lowered.unresolved.0, reason);
        st.warn(&lowered.warnings);
        out.statuses.push(st);
        generations.insert(format!("{namespace}/{name}"), generation);
        compiled.insert(
            (namespace, name),
            Compiled::Usable(Box::new(lowered.policy)),
        );
    }
    (compiled, generations)
}
