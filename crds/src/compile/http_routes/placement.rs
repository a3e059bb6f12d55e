//! Where a Gateway API route is served and the status of each of its parents: its parentRefs
//! resolved ([`crate::compile::gateways::parent_refs`]), and the hosts it serves per gateway
//! group.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Context, LoweredRoute, grpc::lower_grpc_route, lower_http_route};
use crate::compile::Resources;
use crate::compile::gateways::attach::{Attachment, Parents};
use crate::compile::gateways::parent_refs::{Hosts, ParentOutcome};
use crate::compile::lower::Lowered;
use crate::diagnostic::Diagnostics;
use crate::gateway_api::GROUP;
use crate::gateway_api::grpc_route::GRPCRouteSpec;
use crate::gateway_api::http_route::{HTTPRouteSpec, ParentReference};
use crate::status::{ACCEPTED, ObjectStatus, ParentStatus, RESOLVED_REFS, condition};

/// One Gateway API route of either kind.
pub(crate) struct GatewayRoute<'a> {
    pub meta: &'a ObjectMeta,
    pub parent_refs: Vec<ParentReference>,
    spec: Spec<'a>,
}

enum Spec<'a> {
    Http(&'a HTTPRouteSpec),
    Grpc(&'a GRPCRouteSpec),
}

impl GatewayRoute<'_> {
    pub fn lower(&self, namespace: &str, name: &str, ctx: &Context<'_>) -> LoweredRoute {
        match self.spec {
            Spec::Http(spec) => lower_http_route(namespace, name, spec, ctx),
            Spec::Grpc(spec) => lower_grpc_route(namespace, name, spec, ctx),
        }
    }
}

/// Every HTTPRoute and GRPCRoute, with its kind.
pub(crate) fn routes(resources: &Resources) -> Vec<(&'static str, GatewayRoute<'_>)> {
    let http = resources.http_routes.iter().map(|r| {
        let route = GatewayRoute {
            meta: &r.metadata,
            parent_refs: r.spec.parent_refs.clone(),
            spec: Spec::Http(&r.spec),
        };
        ("HTTPRoute", route)
    });
    let grpc = resources.grpc_routes.iter().map(|r| {
        let route = GatewayRoute {
            meta: &r.metadata,
            parent_refs: r.spec.parent_refs.clone(),
            spec: Spec::Grpc(&r.spec),
        };
        ("GRPCRoute", route)
    });
    http.chain(grpc).collect()
}

/// A Gateway API route's parentRefs and what became of them.
pub(crate) struct Placement {
    parent_refs: Vec<ParentReference>,
    /// The parentRefs frontdesk implements; empty: the route is another controller's.
    pub outcomes: Vec<ParentOutcome>,
    /// By gateway group: the hosts served there (empty: every host).
    pub hosts: BTreeMap<String, Vec<String>>,
    /// By gateway group: the listener ports it is served on, when not every port of the
    /// Gateway (listener isolation).
    pub ports: BTreeMap<String, Vec<u16>>,
    /// What the route asks that frontdesk does not implement (`UnsupportedValue`).
    pub unsupported: Diagnostics,
    /// The `ResolvedRefs` reason of its first backend reference that did not resolve.
    pub ref_reason: Option<&'static str>,
}

impl Placement {
    pub fn new(
        parent_refs: Vec<ParentReference>,
        unsupported: Diagnostics,
        ref_reason: Option<&'static str>,
    ) -> Self {
        Placement {
            parent_refs,
            outcomes: Vec::new(),
            hosts: BTreeMap::new(),
            ports: BTreeMap::new(),
            unsupported,
            ref_reason,
        }
    }

    /// Resolves the parentRefs of a `kind` route of `namespace` whose hostnames are
    /// `lowered.hosts`.
    pub fn attach(
        &mut self,
        parents: &Parents,
        kind: &str,
        namespace: &str,
        lowered: &Lowered,
    ) -> Attachment {
        self.outcomes =
            parents.attach_refs((GROUP, kind), namespace, &self.parent_refs, &lowered.hosts);
        let mut out = Attachment::default();
        let mut hosts: BTreeMap<String, Hosts> = BTreeMap::new();
        // By group: the ports attached to, `None` once any port is (no listeners: a gateway
        // group without a Gateway object).
        let mut ports: BTreeMap<String, Option<Vec<u16>>> = BTreeMap::new();
        for outcome in &self.outcomes {
            match &outcome.result {
                Ok(a) => {
                    let attached: Option<Vec<u16>> = (!a.listeners.is_empty()).then(|| {
                        (a.listeners.iter())
                            .filter_map(|(ns, n, i)| parents.listener_port(ns, n, *i))
                            .collect()
                    });
                    let entry = ports.entry(a.group.clone()).or_insert(Some(Vec::new()));
                    match (entry.as_mut(), attached) {
                        (Some(so_far), Some(more)) => so_far.extend(more),
                        _ => *entry = None,
                    }
                    out.groups.push(a.group.clone());
                    out.listeners.extend(a.listeners.iter().cloned());
                    let merged = match hosts.remove(&a.group) {
                        Some(so_far) => so_far.union(a.hosts.clone()),
                        None => a.hosts.clone(),
                    };
                    hosts.insert(a.group.clone(), merged);
                }
                Err(r) => out
                    .refused
                    .push((outcome.index, r.reason, r.message.clone())),
            }
        }
        out.groups.sort();
        out.groups.dedup();
        out.listeners.sort();
        out.listeners.dedup();
        self.hosts = hosts
            .into_iter()
            .map(|(group, hosts)| (group, hosts.into_list()))
            .collect();
        // Every port of the group's Gateway is no restriction at all.
        let every = |group: &str| {
            let gateway = out.listeners.iter().find(|(_, n, _)| n == group);
            gateway.map(|(ns, n, _)| parents.listener_ports(ns, n))
        };
        self.ports = ports
            .into_iter()
            .filter_map(|(group, ports)| {
                let mut ports = ports?;
                ports.sort_unstable();
                ports.dedup();
                (Some(&ports) != every(&group).as_ref()).then_some((group, ports))
            })
            .collect();
        out
    }

    /// The status of each parent frontdesk implements, given the route's own: a parent that
    /// refused the route says why; the others carry the route's `Accepted`. `ResolvedRefs`
    /// is the route's.
    pub fn parent_statuses(&self, st: &ObjectStatus) -> Vec<ParentStatus> {
        let resolved =
            st.condition(RESOLVED_REFS)
                .cloned()
                .unwrap_or_else(|| match self.ref_reason {
                    Some(reason) => condition(
                        RESOLVED_REFS,
                        false,
                        reason,
                        "a backend reference did not resolve".into(),
                    ),
                    None => condition(
                        RESOLVED_REFS,
                        true,
                        "ResolvedRefs",
                        "every reference was found".into(),
                    ),
                });
        self.outcomes
            .iter()
            .map(|outcome| {
                let (accepted, group) = match &outcome.result {
                    Err(r) => (
                        condition(ACCEPTED, false, r.reason, r.message.clone()),
                        None,
                    ),
                    Ok(a) => (
                        st.condition(ACCEPTED).cloned().unwrap_or_else(|| {
                            condition(ACCEPTED, false, "Pending", String::new())
                        }),
                        Some(a.group.clone()),
                    ),
                };
                ParentStatus {
                    parent_ref: self.parent_refs[outcome.index].clone(),
                    group,
                    conditions: vec![accepted, resolved.clone()],
                }
            })
            .collect()
    }
}
