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
    /// listener the Gateway API sends it to. A piece none of whose listeners takes any of its
    /// hosts (a frontdesk Route, which attaches whatever the listeners' hostnames) stays whole,
    /// as without listener Policies.
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
        if parts.is_empty() {
            return vec![self];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway_api::Gateway;

    /// Gateway `edge/public`: `web` (port 80, every host), `admin` (port 80,
    /// admin.example.com), `partners` (port 8080, partners.example.com).
    fn parents() -> Parents {
        let public: Gateway = serde_saphyr::from_str(
            "metadata: {name: public, namespace: edge}\n\
             spec:\n  gatewayClassName: frontdesk\n  listeners:\n    \
             - {name: web, port: 80, protocol: HTTP}\n    \
             - {name: admin, port: 80, protocol: HTTP, hostname: admin.example.com}\n    \
             - {name: partners, port: 8080, protocol: HTTP, hostname: partners.example.com}\n",
        )
        .unwrap();
        let mut parents = Parents::new(&[]);
        parents.add("public", &public, &[true, true, true]);
        parents
    }

    fn piece(hosts: &[&str], listeners: &[usize]) -> Piece {
        Piece {
            group: "public".into(),
            listeners: (listeners.iter())
                .map(|i| ("edge".to_string(), "public".to_string(), *i))
                .collect(),
            ports: Vec::new(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        }
    }

    /// With a Policy on `admin` only, a route on every listener is served on each for the
    /// hosts it takes: admin.example.com through `admin` alone, with its Policy.
    #[test]
    fn a_split_gives_each_listener_the_hosts_it_takes() {
        let policies = |(_, _, i): &ListenerRef| {
            if *i == 1 {
                vec!["edge/admin-limit".to_string()]
            } else {
                Vec::new()
            }
        };
        let parts = piece(&[], &[0, 1, 2]).split_by(policies, &parents());
        let served: Vec<(Vec<String>, Vec<u16>, Vec<ListenerRef>)> = (parts.into_iter())
            .map(|p| (p.hosts, p.ports, p.listeners))
            .collect();
        let l = |i| ("edge".to_string(), "public".to_string(), i);
        assert_eq!(
            served,
            [
                (vec![], vec![80], vec![l(0)]),
                (
                    vec!["partners.example.com".to_string()],
                    vec![8080],
                    vec![l(2)]
                ),
                (vec!["admin.example.com".to_string()], vec![80], vec![l(1)]),
            ]
        );
        let parts = piece(&["admin.example.com"], &[0, 1]).split_by(policies, &parents());
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].listeners, [l(1)]);
    }

    /// A frontdesk Route attaches whatever the listeners' hostnames: when none of its
    /// listeners takes its hosts, it stays served as a whole rather than vanish.
    #[test]
    fn a_piece_no_listener_takes_stays_whole() {
        let policies = |(_, _, i): &ListenerRef| vec![i.to_string()];
        let whole = piece(&["orders.example.com"], &[1, 2]);
        assert_eq!(whole.clone().split_by(policies, &parents()), [whole]);
    }
}
