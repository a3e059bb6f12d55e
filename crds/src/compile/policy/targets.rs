//! Policies attached by `targetRefs` (Gateway API policy attachment, GEP-713): which Policies
//! apply to a rule because they target its Gateway, listener, route or rule, in the order the
//! merge reads them (least specific first, so the more specific wins a section).
//!
//! A Policy targets objects of its own namespace. A Gateway's Policy reaches every route
//! attached to it, whatever the route's namespace, as a default (GEP-713's `Defaults`): the
//! route's own Policies replace the sections they also have. Among Policies
//! attached to one object, the oldest wins (then namespace/name), as GEP-713 resolves
//! conflicts.

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostics;
use crate::gateway_api::GROUP;
use crate::policy::{Policy, PolicyTargetReference};

/// The kinds a Policy may target.
const TARGET_KINDS: [&str; 3] = ["Gateway", "HTTPRoute", "GRPCRoute"];

/// Checks a Policy's `targetRefs`.
pub fn check_targets(refs: &[PolicyTargetReference], d: &mut Diagnostics) {
    for (i, r) in refs.iter().enumerate() {
        let p = format!("spec.targetRefs[{i}]");
        if r.group != GROUP || !TARGET_KINDS.contains(&r.kind.as_str()) {
            d.push(
                p.clone(),
                format!(
                    "{}/{} cannot be targeted: name a Gateway, HTTPRoute or GRPCRoute of group {GROUP}",
                    r.group, r.kind
                ),
            );
        }
        if r.name.is_empty() {
            d.push(format!("{p}.name"), "names the object targeted");
        }
    }
}

/// One Policy attached to an object.
struct Attachment {
    section: Option<String>,
    /// `namespace/name`, as the merge reads it.
    policy: String,
    /// Creation time (RFC 3339; none sorts last), for the oldest-wins order.
    created: (bool, String),
}

/// Every Policy's `targetRefs`, by target `(kind, namespace, name)`.
#[derive(Default)]
pub struct Attached {
    by_target: BTreeMap<(String, String, String), Vec<Attachment>>,
}

impl Attached {
    pub fn new<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Self {
        let mut by_target: BTreeMap<(String, String, String), Vec<Attachment>> = BTreeMap::new();
        for p in policies {
            let namespace = p.metadata.namespace.as_deref().unwrap_or("default");
            let name = p.metadata.name.as_deref().unwrap_or_default();
            let created = p
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string());
            let targets = p.spec.target_refs.iter();
            for r in targets.filter(|r| r.group == GROUP && TARGET_KINDS.contains(&r.kind.as_str()))
            {
                by_target
                    .entry((r.kind.clone(), namespace.to_string(), r.name.clone()))
                    .or_default()
                    .push(Attachment {
                        section: r.section_name.clone(),
                        policy: format!("{namespace}/{name}"),
                        created: (created.is_none(), created.clone().unwrap_or_default()),
                    });
            }
        }
        // Newest first, so that the oldest comes last and wins.
        for list in by_target.values_mut() {
            list.sort_by(|a, b| (&b.created, &b.policy).cmp(&(&a.created, &a.policy)));
        }
        Attached { by_target }
    }

    /// Whether any Policy targets `(kind, namespace, name)`.
    pub fn targets(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.by_target
            .contains_key(&(kind.to_string(), namespace.to_string(), name.to_string()))
    }

    /// The Policies attached to listener `listener` of Gateway `namespace/gateway` alone (by
    /// `sectionName`).
    pub fn for_listener(&self, namespace: &str, gateway: &str, listener: &str) -> Vec<String> {
        (self.by_target.get(&(
            "Gateway".to_string(),
            namespace.to_string(),
            gateway.to_string(),
        )))
        .into_iter()
        .flatten()
        .filter(|a| a.section.as_deref() == Some(listener))
        .map(|a| a.policy.clone())
        .collect()
    }

    /// The Policies attached to one rule (`rule`) of a `kind` route `namespace/name` attached
    /// to `listeners` (`(gateway namespace, gateway name, listener name)`), least specific
    /// first: Gateway, listener, route, rule.
    pub fn for_rule(
        &self,
        (kind, namespace, name): (&str, &str, &str),
        rule: &str,
        listeners: &[(String, String, String)],
    ) -> Vec<String> {
        let get = |kind: &str, namespace: &str, name: &str| {
            self.by_target
                .get(&(kind.to_string(), namespace.to_string(), name.to_string()))
                .map_or(&[][..], Vec::as_slice)
        };
        let mut gateways: Vec<(&str, &str)> = listeners
            .iter()
            .map(|(ns, n, _)| (ns.as_str(), n.as_str()))
            .collect();
        gateways.dedup();
        let mut out: Vec<String> = Vec::new();
        let mut push = |list: &[Attachment], keep: &dyn Fn(Option<&str>) -> bool| {
            for a in list.iter().filter(|a| keep(a.section.as_deref())) {
                if !out.contains(&a.policy) {
                    out.push(a.policy.clone());
                }
            }
        };
        for (ns, gateway) in &gateways {
            push(get("Gateway", ns, gateway), &|s| s.is_none());
        }
        for (ns, gateway, listener) in listeners {
            push(get("Gateway", ns, gateway), &|s| {
                s == Some(listener.as_str())
            });
        }
        if kind != "Gateway" {
            let route = get(kind, namespace, name);
            push(route, &|s| s.is_none());
            push(route, &|s| s == Some(rule));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Policy {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn attached_policies_come_least_specific_first_and_the_oldest_last_at_one_level() {
        let policies = [
            policy(
                "metadata: {name: edge-wide, namespace: edge}\n\
                 spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: public}]}\n",
            ),
            policy(
                "metadata: {name: https-only, namespace: edge}\n\
                 spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: public, sectionName: https}]}\n",
            ),
            policy(
                "metadata: {name: new, namespace: shop, creationTimestamp: '2026-02-01T00:00:00Z'}\n\
                 spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: cart}]}\n",
            ),
            policy(
                "metadata: {name: old, namespace: shop, creationTimestamp: '2026-01-01T00:00:00Z'}\n\
                 spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: cart}]}\n",
            ),
            policy(
                "metadata: {name: checkout, namespace: shop}\n\
                 spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: cart, sectionName: checkout}]}\n",
            ),
            // Another namespace's HTTPRoute of that name is not shop's.
            policy(
                "metadata: {name: elsewhere, namespace: blog}\n\
                 spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: cart}]}\n",
            ),
        ];
        let attached = Attached::new(&policies);
        let listeners = [
            ("edge".to_string(), "public".to_string(), "http".to_string()),
            (
                "edge".to_string(),
                "public".to_string(),
                "https".to_string(),
            ),
        ];
        let cart = ("HTTPRoute", "shop", "cart");
        assert_eq!(
            attached.for_rule(cart, "checkout", &listeners),
            [
                "edge/edge-wide",
                "edge/https-only",
                "shop/new",
                "shop/old",
                "shop/checkout"
            ]
        );
        assert_eq!(
            attached.for_rule(cart, "browse", &listeners[..1]),
            ["edge/edge-wide", "shop/new", "shop/old"]
        );
        assert!(attached.targets("HTTPRoute", "blog", "cart"));
        assert!(!attached.targets("HTTPRoute", "blog", "other"));
    }

    #[test]
    fn only_gateways_and_gateway_api_routes_can_be_targeted() {
        let refs: Vec<PolicyTargetReference> = serde_saphyr::from_str(
            "[{group: gateway.networking.k8s.io, kind: HTTPRoute, name: a}, \
              {group: gateway.networking.k8s.io, kind: TCPRoute, name: b}, \
              {group: frontdesk.dev, kind: Route, name: c}]",
        )
        .unwrap();
        let mut d = Diagnostics::default();
        check_targets(&refs, &mut d);
        let got: Vec<String> = d.0.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with(
            "spec.targetRefs[1]: gateway.networking.k8s.io/TCPRoute cannot be targeted"
        ));
    }
}
