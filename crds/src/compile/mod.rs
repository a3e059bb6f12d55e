//! The compiler: user objects in, one snapshot per gateway and a status per object out.
//!
//! `compile` is pure: no I/O, no clock, no randomness, so the controller and the standalone
//! proxy get the same answer from the same objects, and golden tests pin it down. An invalid
//! Route is rejected alone (Accepted=False) and the others compile.

pub mod aggregate;
mod backend_tls;
pub mod backend_tls_policies;
mod cache;
mod cors;
pub mod gateways;
mod http_routes;
mod lower;
pub mod policy;
mod precedence;
mod relations;
mod retries;
mod services;
mod transcode;
mod upstream;
pub mod urls;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use frontdesk_snapshot::{Policy as SnapPolicy, Route as SnapRoute, Snapshot, SourceRef};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use lower::{DEFAULT_TIMEOUT, NoServices, ResolveService, lower_route};
pub use precedence::MatchKey;
pub use services::{ServiceIndex, backend_name, parse_backend_name};

use crate::aggregate::Aggregate;
use crate::gateway_api::backend_tls_policy::AncestorReference;
use crate::policy::Policy;
use crate::route::Route;
use crate::status::{CONFLICTED, ObjectStatus, condition};
use backend_tls_policies::BackendTlsPolicies;
use policy::{Compiled, merge};
use relations::{RouteListeners, ancestors, compile_policies, host_owners, policy_ancestors};

/// Everything the compiler reads. The objects users write many of are shared with the source
/// that read them (a catalog of 10,000 Routes is not copied for each compile).
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub routes: Vec<Arc<Route>>,
    pub aggregates: Vec<Arc<Aggregate>>,
    pub policies: Vec<Arc<Policy>>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Secrets that Policies may read (by name or label) and that Gateway listeners name in
    /// `certificateRefs` (type `kubernetes.io/tls`); others are ignored.
    pub secrets: Vec<Secret>,
    /// Gateway API Gateways; those of frontdesk's classes become listeners ([`gateways`]).
    pub gateways: Vec<crate::gateway_api::Gateway>,
    /// Gateway API routes, lowered into the same rules as Routes ([`http_routes`]).
    pub http_routes: Vec<Arc<crate::gateway_api::HTTPRoute>>,
    pub grpc_routes: Vec<Arc<crate::gateway_api::GRPCRoute>>,
    pub gateway_classes: Vec<crate::gateway_api::GatewayClass>,
    /// What lets a Gateway name a Secret of another namespace.
    pub reference_grants: Vec<crate::gateway_api::ReferenceGrant>,
    /// Gateway API BackendTLSPolicies: TLS to the Services they target, for backend
    /// references without a `tls` of their own ([`backend_tls_policies`]).
    pub backend_tls_policies: Vec<crate::gateway_api::BackendTLSPolicy>,
    /// ConfigMaps that Gateways name for client certificate validation (`ca.crt`); others are
    /// ignored.
    pub config_maps: Vec<k8s_openapi::api::core::v1::ConfigMap>,
    /// Namespaces, for their labels: `allowedRoutes` of `from: Selector` select by them.
    pub namespaces: Vec<k8s_openapi::api::core::v1::Namespace>,
    /// A Gateway whose GatewayClass is not among `gateway_classes` is frontdesk's (manifest
    /// files, where no other controller runs); otherwise it is ignored, as it may be another
    /// controller's whose class is not created yet.
    pub gateway_class_optional: bool,
    /// Let Routes of several namespaces serve one host (`--allow-shared-hosts`). By default a
    /// host belongs to the namespace of the oldest Route or Aggregate that names it, per
    /// gateway, and another namespace's claim is refused (Conflicted).
    pub shared_hosts: bool,
    /// Which hosts `url` backends, JWKS URIs and external authorization may name (the
    /// default allows any: standalone).
    pub urls: urls::UrlPolicy,
}

/// What the compiler produces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// One snapshot per gateway group named by any valid Route or any Gateway of frontdesk's
    /// (by its name), with version 0.
    pub snapshots: BTreeMap<String, Snapshot>,
    /// One status per Route and Policy, sorted by kind, namespace and name.
    pub statuses: Vec<ObjectStatus>,
    /// The sections each usable Policy has (`namespace/name` -> `authentication`,
    /// `rateLimit`...), to tell where each section of a rule's effective policy came from
    /// ([`crate::explain`]).
    pub policy_sections: BTreeMap<String, Vec<&'static str>>,
    /// The Service backends ([`backend_name`]) the compile left without the endpoints their
    /// Service has, in some rule: TLS that cannot be set up, a transcoder without its
    /// descriptors. The endpoint fast path leaves them to compiles.
    pub held_back: std::collections::BTreeSet<String>,
    /// Per object refused for `HostConflict` (`(kind, namespace, name)`): the `(gateway group,
    /// host)` pairs an older claim of another namespace holds ([`crate::admission`] checks
    /// them against what is served).
    pub host_conflicts: BTreeMap<(String, String, String), Vec<(String, String)>>,
}

impl Output {
    /// The snapshot of `gateway`; an empty one when no Route names it.
    pub fn snapshot(&self, gateway: &str) -> Snapshot {
        self.snapshots
            .get(gateway)
            .cloned()
            .unwrap_or_else(|| Snapshot {
                gateway: gateway.to_string(),
                ..Default::default()
            })
    }

    pub fn status(&self, kind: &str, namespace: &str, name: &str) -> Option<&ObjectStatus> {
        self.statuses
            .iter()
            .find(|s| s.kind == kind && s.namespace == namespace && s.name == name)
    }
}

/// What a gateway's snapshot is assembled from: its routes, the precedence keys of their
/// matches (in route/rule/match order) and the objects they came from.
#[derive(Default)]
struct GatewayParts {
    routes: Vec<SnapRoute>,
    keys: Vec<MatchKey>,
    sources: Vec<SourceRef>,
    policies: BTreeMap<String, SnapPolicy>,
}

/// Compiles every object. Never fails: problems end up in the statuses.
pub fn compile(resources: &Resources) -> Output {
    let base = ServiceIndex::new(&resources.services, &resources.endpoint_slices)
        .with_urls(&resources.urls)
        .with_refs(&resources.secrets, &resources.config_maps);
    let tls_policies = BackendTlsPolicies::new(
        &resources.backend_tls_policies,
        &base,
        &|namespace, name| base.has_service(namespace, name),
    );
    let index = base.with_backend_tls(&tls_policies);
    // Routes and Aggregates both lower to rules; each rule lists its Policies.
    struct Item<'a> {
        kind: &'static str,
        meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        lowered: lower::Lowered,
        policy_lists: Vec<Vec<String>>,
        attachment: gateways::attach::Attachment,
        /// The BackendTLSPolicies naming its backends' Services.
        tls_policies: BTreeSet<(String, String)>,
        /// A Gateway API route's parentRefs and what they became.
        placement: Option<http_routes::Placement>,
    }
    impl Item<'_> {
        fn valid(&self) -> bool {
            self.lowered.invalid.is_empty()
                && self
                    .placement
                    .as_ref()
                    .is_none_or(|p| p.unsupported.is_empty())
        }

        /// Where it is served: per gateway group, the hosts on some listeners.
        fn pieces(&self) -> Vec<http_routes::Piece> {
            if let Some(p) = &self.placement {
                return p.pieces.clone();
            }
            (self.lowered.gateways.iter())
                .map(|group| http_routes::Piece {
                    group: group.clone(),
                    listeners: (self.attachment.listeners.iter())
                        .filter(|(_, gateway, _)| gateway == group)
                        .cloned()
                        .collect(),
                    ports: Vec::new(),
                    hosts: self.lowered.hosts.clone(),
                })
                .collect()
        }

        /// The hosts it names per gateway group: those it claims (and may conflict over),
        /// whatever other pieces serve every host.
        fn placed(&self) -> BTreeMap<String, Vec<String>> {
            let mut placed: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for piece in self.pieces() {
                let hosts = placed.entry(piece.group).or_default();
                hosts.extend(piece.hosts);
                hosts.sort();
                hosts.dedup();
            }
            placed
        }
    }
    let mut items: Vec<Item<'_>> = Vec::new();
    for route in &resources.routes {
        let (namespace, name) = object_id(&route.metadata);
        let lists = route
            .spec
            .rules
            .iter()
            .map(|r| {
                route
                    .spec
                    .policies
                    .iter()
                    .chain(&r.policies)
                    .cloned()
                    .collect()
            })
            .collect();
        items.push(Item {
            kind: "Route",
            meta: &route.metadata,
            lowered: lower_route(&namespace, &name, &route.spec, &index),
            policy_lists: lists,
            attachment: Default::default(),
            tls_policies: index.take_used_policies(),
            placement: None,
        });
    }
    for agg in &resources.aggregates {
        let (namespace, name) = object_id(&agg.metadata);
        items.push(Item {
            kind: "Aggregate",
            meta: &agg.metadata,
            lowered: aggregate::lower_aggregate(&namespace, &name, &agg.spec, &index),
            policy_lists: vec![agg.spec.policies.clone()],
            attachment: Default::default(),
            tls_policies: index.take_used_policies(),
            placement: None,
        });
    }
    let ctx = http_routes::Context {
        services: &index,
        grants: &resources.reference_grants,
    };
    // Policies Gateway API routes make of their own filters, by `(namespace, name)`.
    let mut own_policies = Vec::new();
    for (kind, route) in http_routes::routes(resources) {
        let (namespace, name) = object_id(route.meta);
        let mut lowered = route.lower(&namespace, &name, &ctx);
        own_policies.extend(
            (lowered.own_policies.drain(..))
                .map(|(own, policy)| ((namespace.clone(), own), policy)),
        );
        items.push(Item {
            kind,
            meta: route.meta,
            policy_lists: lowered.policy_lists,
            lowered: lowered.lowered,
            attachment: Default::default(),
            tls_policies: index.take_used_policies(),
            placement: Some(http_routes::Placement::new(
                route.parent_refs,
                lowered.unsupported,
                lowered.ref_reason,
            )),
        });
    }
    items.sort_by_key(|i| (object_id(i.meta), i.kind));
    // Each `spec.gateways` entry becomes the gateway group it attaches to, if any; each
    // parentRef of a Gateway API route, the listeners it attaches to.
    let gateways = gateways::compile_gateways(resources);
    items.retain_mut(|item| {
        let Some(placement) = &mut item.placement else {
            return true;
        };
        let (namespace, _) = object_id(item.meta);
        item.attachment = placement.attach(&gateways.parents, item.kind, &namespace, &item.lowered);
        item.lowered.gateways = item.attachment.groups.clone();
        // No parentRef names a Gateway of frontdesk's: another controller's route.
        !placement.outcomes.is_empty()
    });
    for item in &mut items {
        if item.placement.is_none() && item.lowered.invalid.is_empty() {
            let (namespace, _) = object_id(item.meta);
            let attachment = gateways
                .parents
                .attach(item.kind, &namespace, &item.lowered.gateways);
            item.lowered.gateways = attachment.groups.clone();
            item.attachment = attachment;
        }
    }
    let owners = if resources.shared_hosts {
        BTreeMap::new()
    } else {
        host_owners(
            items
                .iter()
                .filter(|i| i.valid())
                .map(|i| (i.meta, i.placed())),
        )
    };

    let mut out = Output::default();
    out.statuses.extend(gateways.statuses);
    // Per listener `(gateway namespace, gateway name, index)`: the accepted objects attached.
    let mut attached: BTreeMap<(String, String, usize), i32> = BTreeMap::new();
    let (mut compiled, policy_generations) = compile_policies(resources, &mut out);
    compiled.extend(
        (own_policies.into_iter()).map(|(key, policy)| (key, Compiled::Usable(Box::new(policy)))),
    );
    let attached_policies = policy::targets::Attached::new(resources.policies.iter().map(|p| &**p));
    // By route `(kind, namespace, name)`: the listeners it attached to, for the ancestors of
    // the Policies that target it.
    let mut route_listeners: RouteListeners = BTreeMap::new();
    let mut per_gateway: BTreeMap<String, GatewayParts> = BTreeMap::new();
    // By BackendTLSPolicy: the Gateways (or Routes) it took effect through.
    let mut tls_ancestors: BTreeMap<(String, String), BTreeSet<AncestorReference>> =
        BTreeMap::new();

    for mut item in items {
        let route = item.meta;
        let (namespace, name) = object_id(route);
        let generation = route.generation.unwrap_or(0);
        let placed = item.placed();
        let pieces = item.pieces();
        let mut lowered = item.lowered;
        let mut st = ObjectStatus::new(item.kind, &namespace, &name, generation);
        let placement = item.placement.take();
        if placement.is_some() {
            // A Gateway API route is attached where its parentRefs and the listeners'
            // allowedRoutes say, whatever its own verdict (the spec's attachedRoutes).
            for listener in &item.attachment.listeners {
                *attached.entry(listener.clone()).or_default() += 1;
            }
        }
        let finish = |mut st: ObjectStatus, out: &mut Output| {
            if let Some(placement) = &placement {
                st.parents = placement.parent_statuses(&st);
            }
            out.statuses.push(st);
        };
        let unsupported = placement.as_ref().map_or(0, |p| p.unsupported.0.len());
        if !lowered.invalid.is_empty() || unsupported > 0 {
            let mut invalid = lowered.invalid.0;
            if let Some(p) = &placement {
                invalid.extend(p.unsupported.0.iter().cloned());
            }
            st.reject(invalid);
            if unsupported > 0 {
                st.conditions[0].reason = "UnsupportedValue".into();
            }
            finish(st, &mut out);
            continue;
        }
        let field = if placement.is_some() {
            "spec.parentRefs"
        } else {
            "spec.gateways"
        };
        let refused: Vec<crate::Diagnostic> = item
            .attachment
            .refused
            .iter()
            .map(|(i, _, why)| crate::Diagnostic::new(format!("{field}[{i}]"), why))
            .collect();
        let refused_reason = item.attachment.refused.first().map(|r| r.1);
        if lowered.gateways.is_empty()
            && let Some(reason) = refused_reason
        {
            // Attached nowhere: nothing serves it.
            st.reject(refused);
            st.conditions[0].reason = reason.into();
            finish(st, &mut out);
            continue;
        }
        let taken_on: Vec<(String, String)> = placed
            .iter()
            .flat_map(|(g, hosts)| hosts.iter().map(move |h| (g, h)))
            .filter(|(g, h)| {
                owners
                    .get(&((*g).clone(), (*h).clone()))
                    .is_some_and(|owner| *owner != namespace)
            })
            .map(|(g, h)| (g.clone(), h.clone()))
            .collect();
        if !taken_on.is_empty() {
            let mut taken: Vec<String> = taken_on.iter().map(|(_, h)| h.clone()).collect();
            let key = (item.kind.to_string(), namespace.clone(), name.clone());
            out.host_conflicts.insert(key, taken_on);
            taken.sort();
            taken.dedup();
            // The other namespace is not named: tenants do not learn of each other.
            let why = format!(
                "host {} is already served by an older Route or Aggregate of another namespace",
                taken.join(", ")
            );
            st.reject(vec![crate::Diagnostic::new("spec.hosts", &why)]);
            st.conditions[0].reason = "HostConflict".into();
            st.conditions
                .push(condition(CONFLICTED, true, "HostConflict", why));
            finish(st, &mut out);
            continue;
        }
        // Each rule's effective policy, per piece (its listeners' Policies differ): those
        // attached by targetRefs (Gateway, listener, route, rule), then the Route's list, then
        // the rule's own.
        let mut served: Vec<(http_routes::Piece, Vec<frontdesk_snapshot::Rule>)> = Vec::new();
        let mut rule_policies: Vec<(String, SnapPolicy)> = Vec::new();
        let mut conflicts = Vec::new();
        let mut unavailable: BTreeMap<usize, String> = BTreeMap::new();
        // Listeners with Policies of their own serve the route apart, each with its own.
        let listener_policies = |(ns, n, i): &gateways::attach::ListenerRef| {
            (gateways.parents.listener_name(ns, n, *i))
                .map(|l| attached_policies.for_listener(ns, n, l))
                .unwrap_or_default()
        };
        let pieces =
            (pieces.into_iter()).flat_map(|p| p.split_by(listener_policies, &gateways.parents));
        for piece in pieces {
            let listener_names: Vec<(String, String, String)> = (piece.listeners.iter())
                .filter_map(|(ns, n, i)| {
                    let listener = gateways.parents.listener_name(ns, n, *i)?;
                    Some((ns.clone(), n.clone(), listener.to_string()))
                })
                .collect();
            let mut rules = lowered.rules.clone();
            for (ri, rule) in rules.iter_mut().enumerate() {
                let rule_name = rule.id.rsplit('/').next().unwrap_or_default().to_string();
                let mut names = attached_policies.for_rule(
                    (item.kind, &namespace, &name),
                    &rule_name,
                    &listener_names,
                );
                names.extend(item.policy_lists.get(ri).cloned().unwrap_or_default());
                if names.is_empty() {
                    continue;
                }
                let (effective, overrides) = merge(&namespace, &names, &compiled);
                if let Some(why) = &effective.unavailable {
                    unavailable.entry(ri).or_insert_with(|| why.clone());
                }
                for o in overrides {
                    let o = format!("rule {rule_name}: {o}");
                    if !conflicts.contains(&o) {
                        conflicts.push(o);
                    }
                }
                let key = effective.sources.join(",");
                rule.policy = Some(key.clone());
                if !rule_policies.iter().any(|(k, _)| *k == key) {
                    rule_policies.push((key, effective));
                }
            }
            served.push((piece, rules));
        }
        let policy_unresolved = !unavailable.is_empty();
        for (ri, why) in unavailable {
            lowered.unresolved.push(
                match item.kind {
                    "Route" => format!("spec.rules[{ri}].policies"),
                    "Aggregate" => "spec.policies".to_string(),
                    _ => format!("spec.rules[{ri}].filters"),
                },
                format!("{why}; the rule answers 503 until it is fixed"),
            );
        }
        // Entries that attached nowhere while others did: the object serves where it attached
        // (a Gateway API route says so per parent).
        if placement.is_none() {
            lowered.unresolved.0.extend(refused);
        }
        let reason = match refused_reason {
            _ if policy_unresolved => "PolicyNotResolved",
            _ if placement.is_some() => placement
                .as_ref()
                .and_then(|p| p.ref_reason)
                .unwrap_or("BackendNotFound"),
            Some(reason) => reason,
            None => "BackendNotFound",
        };
        st.accept(std::mem::take(&mut lowered.unresolved.0), reason);
        if !rule_policies.is_empty() {
            st.conditions.push(if conflicts.is_empty() {
                condition(
                    CONFLICTED,
                    false,
                    "NoConflicts",
                    "no policy section is overridden".into(),
                )
            } else {
                condition(CONFLICTED, true, "PolicyOverridden", conflicts.join("; "))
            });
        }
        finish(st, &mut out);
        let through = ancestors(item.kind, &namespace, &name, &item.attachment.listeners);
        for policy in &item.tls_policies {
            tls_ancestors
                .entry(policy.clone())
                .or_default()
                .extend(through.iter().cloned());
        }
        if attached_policies.targets(item.kind, &namespace, &name) {
            route_listeners.insert(
                (item.kind.to_string(), namespace.clone(), name.clone()),
                item.attachment.listeners.clone(),
            );
        }
        if placement.is_none() {
            for listener in std::mem::take(&mut item.attachment.listeners) {
                *attached.entry(listener).or_default() += 1;
            }
        }

        let created = route.creation_timestamp.as_ref().map(|t| t.0.to_string());
        for (piece, rules) in served {
            let parts = per_gateway.entry(piece.group.clone()).or_default();
            for (key, effective) in rule_policies
                .iter()
                .filter(|(key, _)| rules.iter().any(|r| r.policy.as_ref() == Some(key)))
            {
                for source in &effective.sources {
                    if let Some(generation) = policy_generations.get(source) {
                        let (ns, n) = source.split_once('/').unwrap_or_default();
                        parts.sources.push(SourceRef {
                            kind: "Policy".into(),
                            namespace: ns.into(),
                            name: n.into(),
                            generation: *generation,
                        });
                    }
                }
                parts.policies.insert(key.clone(), effective.clone());
            }
            for (ri, rule) in rules.iter().enumerate() {
                for (mi, m) in rule.matches.iter().enumerate() {
                    parts.keys.push(MatchKey::new(
                        m,
                        created.as_deref(),
                        &namespace,
                        &name,
                        ri,
                        mi,
                    ));
                }
            }
            parts.routes.push(SnapRoute {
                namespace: namespace.clone(),
                name: name.clone(),
                hosts: piece.hosts,
                ports: piece.ports,
                rules,
            });
            parts.sources.push(SourceRef {
                kind: item.kind.into(),
                namespace: namespace.clone(),
                name: name.clone(),
                generation,
            });
        }
    }

    // A gateway group with a Gateway but no Route still gets a snapshot: its listeners.
    for group in gateways.sources.keys() {
        per_gateway.entry(group.clone()).or_default();
    }
    for (gateway, parts) in per_gateway {
        let GatewayParts {
            mut routes,
            keys,
            mut sources,
            policies,
        } = parts;
        let from_gateways = gateways.sources.get(&gateway);
        sources.extend(from_gateways.into_iter().flatten().cloned());
        let listeners = gateways
            .listeners
            .get(&gateway)
            .cloned()
            .unwrap_or_default();
        sources.sort();
        sources.dedup();
        let ranks = precedence::ranks(&keys);
        let mut next = ranks.into_iter();
        for m in routes
            .iter_mut()
            .flat_map(|r| r.rules.iter_mut())
            .flat_map(|r| r.matches.iter_mut())
        {
            m.rank = next.next().unwrap_or(u32::MAX);
        }
        out.snapshots.insert(
            gateway.clone(),
            Snapshot {
                gateway,
                version: 0,
                routes: routes.into_iter().map(std::sync::Arc::new).collect(),
                sources: std::sync::Arc::new(sources),
                policies,
                exclusive_hosts: !resources.shared_hosts,
                listeners,
                listeners_declared: from_gateways.is_some(),
            },
        );
    }
    for st in out.statuses.iter_mut().filter(|s| s.kind == "Gateway") {
        for (i, listener) in st.listeners.iter_mut().enumerate() {
            let key = (st.namespace.clone(), st.name.clone(), i);
            listener.attached_routes = attached.get(&key).copied().unwrap_or(0);
        }
    }
    out.policy_sections = compiled
        .iter()
        .filter_map(|((namespace, name), c)| match c {
            Compiled::Usable(p) => Some((format!("{namespace}/{name}"), policy::sections(p))),
            Compiled::Invalid => None,
        })
        .collect();
    out.held_back = index.take_held_back();
    out.statuses.extend(tls_policies.statuses(tls_ancestors));
    policy_ancestors(
        resources,
        &gateways.parents,
        &route_listeners,
        &mut out.statuses,
    );
    out.statuses
        .sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    out
}

/// Checks one Route on its own (no Services known), as an admission webhook or a linter would.
pub fn validate_route(route: &Route) -> Vec<crate::Diagnostic> {
    let (namespace, name) = object_id(&route.metadata);
    lower_route(&namespace, &name, &route.spec, &NoServices)
        .invalid
        .0
}

fn object_id(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (String, String) {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        meta.name.clone().unwrap_or_default(),
    )
}
