//! Where a Gateway API route is served and the status of each of its parents: its parentRefs
//! resolved ([`crate::compile::gateways::parent_refs`]), and the hosts it serves per gateway
//! group.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Context, LoweredRoute, grpc::lower_grpc_route, lower_http_route};
use crate::compile::Resources;
use crate::compile::gateways::attach::{Attachment, ListenerRef, Parents};
use crate::compile::gateways::parent_refs::{ParentOutcome, intersect};
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

/// What one gateway group serves of a route: the same hosts on some of its listeners. A
/// route attached to listeners with different hostnames is one piece per hostname set, so
/// each listener serves only its own hostnames, and each piece gets the Policies of its own
/// listeners.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Piece {
    pub group: String,
    /// `(gateway namespace, gateway name, listener index)`; none for a gateway group without
    /// a Gateway object.
    pub listeners: Vec<ListenerRef>,
    /// The listener ports served; empty: every port of the gateway.
    pub ports: Vec<u16>,
    /// The hosts served; empty: every host.
    pub hosts: Vec<String>,
}

impl Piece {
    /// This piece, split where its listeners' `key`s differ (the Policies attached to each
    /// listener of `parents`). Each part serves the ports of its own listeners, and of the
    /// piece's hosts those its listeners take: the ones their hostnames match, less those a
    /// more specific listener of the same port takes. So a request gets the Policies of the
    /// listener the Gateway API sends it to.
    pub fn split_by(
        self,
        key: impl Fn(&ListenerRef) -> Vec<String>,
        parents: &Parents,
    ) -> Vec<Piece> {
        let keys: BTreeSet<Vec<String>> = self.listeners.iter().map(&key).collect();
        if keys.len() < 2 {
            return vec![self];
        }
        let mut parts: BTreeMap<(Vec<String>, Vec<String>), Vec<ListenerRef>> = BTreeMap::new();
        for l in &self.listeners {
            let Some(hosts) = intersect(&self.hosts, parents.listener_hostname(l)) else {
                continue;
            };
            let mut hosts = hosts.into_list();
            let every = hosts.is_empty();
            hosts.retain(|h| !parents.host_goes_elsewhere(l, h));
            if hosts.is_empty() && !every {
                continue;
            }
            parts.entry((key(l), hosts)).or_default().push(l.clone());
        }
        parts
            .into_iter()
            .map(|((_, hosts), listeners)| {
                let mut ports: Vec<u16> = (listeners.iter())
                    .filter_map(|(ns, n, i)| parents.listener_port(ns, n, *i))
                    .collect();
                ports.sort_unstable();
                ports.dedup();
                Piece {
                    group: self.group.clone(),
                    listeners,
                    ports,
                    hosts,
                }
            })
            .collect()
    }
}

/// A Gateway API route's parentRefs and what became of them.
pub(crate) struct Placement {
    parent_refs: Vec<ParentReference>,
    /// The parentRefs frontdesk implements; empty: the route is another controller's.
    pub outcomes: Vec<ParentOutcome>,
    /// Where it is served, in group order.
    pub pieces: Vec<Piece>,
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
            pieces: Vec::new(),
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
        // By (group, hosts): the listeners serving them.
        let mut by_hosts: BTreeMap<(String, Vec<String>), Vec<ListenerRef>> = BTreeMap::new();
        for outcome in &self.outcomes {
            match &outcome.result {
                Ok(a) => {
                    out.groups.push(a.group.clone());
                    if a.listeners.is_empty() {
                        by_hosts
                            .entry((a.group.clone(), a.hosts.clone().into_list()))
                            .or_default();
                    }
                    for (listener, hosts) in &a.listeners {
                        out.listeners.push(listener.clone());
                        // Hosts a more specific listener of the same port takes are served
                        // there (with its Policies), not here.
                        let mut hosts = hosts.clone().into_list();
                        let every = hosts.is_empty();
                        hosts.retain(|h| !parents.host_goes_elsewhere(listener, h));
                        if hosts.is_empty() && !every {
                            continue;
                        }
                        by_hosts
                            .entry((a.group.clone(), hosts))
                            .or_default()
                            .push(listener.clone());
                    }
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
        self.pieces = by_hosts
            .into_iter()
            .map(|((group, hosts), mut listeners)| {
                listeners.sort();
                listeners.dedup();
                let mut ports: Vec<u16> = (listeners.iter())
                    .filter_map(|(ns, n, i)| parents.listener_port(ns, n, *i))
                    .collect();
                ports.sort_unstable();
                ports.dedup();
                // Every port of the Gateway is no restriction at all.
                let every = listeners
                    .first()
                    .is_none_or(|(ns, n, _)| parents.listener_ports(ns, n) == ports);
                Piece {
                    group,
                    listeners,
                    ports: if every { Vec::new() } else { ports },
                    hosts,
                }
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
