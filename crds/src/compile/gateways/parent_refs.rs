//! Where a Gateway API route (HTTPRoute, GRPCRoute) attaches through its `parentRefs`, and
//! which hostnames it serves there.
//!
//! A parentRef names a Gateway (`namespace` defaults to the route's) and optionally one
//! listener (`sectionName`) or the listeners of one `port`. It attaches to those of the
//! Gateway's accepted listeners that admit the route (`allowedRoutes`, [`Parents::admits`])
//! and whose hostname intersects the route's `hostnames`:
//!
//! - a listener without hostname takes the route's hostnames (every host when it has none);
//! - a route without hostnames takes the listener's;
//! - otherwise a pair intersects when equal, or when one is a wildcard (`*.example.com`,
//!   one or more leading labels) covering the other, which is then the hostname served.
//!
//! A parentRef naming something other than a Gateway, or a Gateway that is not frontdesk's, is
//! another controller's business: it gets no status from frontdesk. When a manifest file names
//! a Gateway that does not exist (in any namespace, and without a listener or port), it is the
//! gateway group of that name (proxies started with `--gateway name`), as for frontdesk's
//! Routes: the same HTTPRoute then serves standalone and in a cluster.

use std::collections::BTreeSet;

use super::attach::{ListenerView, Parents};
use crate::gateway_api::GROUP;
use crate::gateway_api::http_route::ParentReference;

/// The hostnames a route is served for in one gateway group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hosts {
    Any,
    /// Sorted, deduplicated, lower-case.
    Only(Vec<String>),
}

impl Hosts {
    /// Both sets' hostnames (every host when either is `Any`).
    pub fn union(self, other: Hosts) -> Hosts {
        match (self, other) {
            (Hosts::Only(mut a), Hosts::Only(b)) => {
                a.extend(b);
                a.sort();
                a.dedup();
                Hosts::Only(a)
            }
            _ => Hosts::Any,
        }
    }

    /// The snapshot's form: an empty list is every host.
    pub fn into_list(self) -> Vec<String> {
        match self {
            Hosts::Any => Vec::new(),
            Hosts::Only(list) => list,
        }
    }
}

/// What became of one parentRef that frontdesk implements.
#[derive(Debug, PartialEq)]
pub struct ParentOutcome {
    /// Index in `spec.parentRefs`.
    pub index: usize,
    pub result: Result<Attached, Refused>,
}

#[derive(Debug, PartialEq)]
pub struct Attached {
    pub group: String,
    /// `(gateway namespace, gateway name, listener index)` and the hosts served there; none
    /// for a gateway group without a Gateway object.
    pub listeners: Vec<((String, String, usize), Hosts)>,
    /// Every host served, over the listeners.
    pub hosts: Hosts,
}

/// Why a parentRef attached nowhere: the `Accepted` reason and a message.
#[derive(Debug, PartialEq)]
pub struct Refused {
    pub reason: &'static str,
    pub message: String,
}

fn refused(reason: &'static str, message: String) -> Result<Attached, Refused> {
    Err(Refused { reason, message })
}

impl Parents {
    /// Resolves the `parentRefs` of a route of `(group, kind)` in `namespace` with
    /// `hostnames` (already lower-case). Only the parentRefs frontdesk implements are in the
    /// answer, in spec order.
    pub fn attach_refs(
        &self,
        (group, kind): (&str, &str),
        namespace: &str,
        refs: &[ParentReference],
        hostnames: &[String],
    ) -> Vec<ParentOutcome> {
        let mut out = Vec::new();
        for (index, r) in refs.iter().enumerate() {
            let is_gateway = r.group.as_deref().unwrap_or(GROUP) == GROUP
                && r.kind.as_deref().unwrap_or("Gateway") == "Gateway";
            if !is_gateway {
                continue;
            }
            let gateway_ns = r.namespace.as_deref().unwrap_or(namespace);
            let parent = self
                .by_group
                .get(&r.name)
                .and_then(|ps| ps.iter().find(|p| p.namespace == gateway_ns));
            let Some(parent) = parent else {
                let implicit = self.implicit_groups
                    && r.section_name.is_none()
                    && r.port.is_none()
                    && !self.by_group.contains_key(&r.name);
                if implicit {
                    out.push(ParentOutcome {
                        index,
                        result: Ok(Attached {
                            group: r.name.clone(),
                            listeners: Vec::new(),
                            hosts: route_hosts(hostnames),
                        }),
                    });
                }
                continue;
            };
            let named: Vec<(usize, Option<&ListenerView>)> = parent
                .listeners
                .iter()
                .enumerate()
                .filter(|(_, l)| {
                    l.as_ref().is_none_or(|l| {
                        r.section_name.as_ref().is_none_or(|s| *s == l.name)
                            && r.port.is_none_or(|p| p == l.port)
                    })
                })
                .map(|(i, l)| (i, l.as_ref()))
                .collect();
            let which = format!("Gateway {gateway_ns}/{}", r.name);
            let accepted: Vec<(usize, &ListenerView)> = named
                .iter()
                .filter_map(|(i, l)| l.map(|l| (*i, l)))
                .collect();
            if accepted.is_empty() {
                let what = match (&r.section_name, r.port) {
                    (Some(s), Some(p)) => format!("no accepted listener {s} on port {p}"),
                    (Some(s), None) => format!("no accepted listener named {s}"),
                    (None, Some(p)) => format!("no accepted listener on port {p}"),
                    (None, None) => "no accepted listener".to_string(),
                };
                out.push(ParentOutcome {
                    index,
                    result: refused("NoMatchingParent", format!("{which} has {what}")),
                });
                continue;
            }
            let admitting: Vec<(usize, &ListenerView)> = accepted
                .into_iter()
                .filter(|(_, l)| {
                    self.admits(&l.allowed, &parent.namespace, (group, kind), namespace)
                })
                .collect();
            if admitting.is_empty() {
                out.push(ParentOutcome {
                    index,
                    result: refused(
                        "NotAllowedByListeners",
                        format!(
                            "no listener of {which} admits a {kind} of namespace {namespace} \
                             (see its listeners' allowedRoutes)"
                        ),
                    ),
                });
                continue;
            }
            let mut listeners = Vec::new();
            let mut hosts: Option<Hosts> = None;
            for (i, l) in admitting {
                if let Some(h) = intersect(hostnames, l.hostname.as_deref()) {
                    let listener = (parent.namespace.clone(), parent.name.clone(), i);
                    listeners.push((listener, h.clone()));
                    hosts = Some(match hosts {
                        None => h,
                        Some(so_far) => so_far.union(h),
                    });
                }
            }
            out.push(ParentOutcome {
                index,
                result: match hosts {
                    Some(hosts) => Ok(Attached {
                        group: r.name.clone(),
                        listeners,
                        hosts,
                    }),
                    None => refused(
                        "NoMatchingListenerHostname",
                        format!("no hostname of the route matches a listener hostname of {which}"),
                    ),
                },
            });
        }
        out
    }
}

fn route_hosts(hostnames: &[String]) -> Hosts {
    if hostnames.is_empty() {
        Hosts::Any
    } else {
        let set: BTreeSet<String> = hostnames.iter().cloned().collect();
        Hosts::Only(set.into_iter().collect())
    }
}

/// The hostnames a route with `hostnames` serves on a listener with `listener`, `None` when
/// they do not intersect.
pub fn intersect(hostnames: &[String], listener: Option<&str>) -> Option<Hosts> {
    let Some(l) = listener else {
        return Some(route_hosts(hostnames));
    };
    if hostnames.is_empty() {
        return Some(Hosts::Only(vec![l.to_string()]));
    }
    let both: BTreeSet<String> = hostnames
        .iter()
        .filter_map(|h| {
            if h == l || covers(l, h) {
                Some(h.clone())
            } else if covers(h, l) {
                Some(l.to_string())
            } else {
                None
            }
        })
        .collect();
    (!both.is_empty()).then(|| Hosts::Only(both.into_iter().collect()))
}

/// Whether wildcard `pattern` (`*.example.com`) covers `host` (itself possibly a narrower
/// wildcard): `host` ends with `.example.com` after at least one label of its own.
pub(crate) fn covers(pattern: &str, host: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix('*') else {
        return false;
    };
    host.len() > suffix.len() && host.ends_with(suffix) && host != pattern
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway_api::Gateway;

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|h| h.to_string()).collect()
    }

    fn only(list: &[&str]) -> Option<Hosts> {
        Some(Hosts::Only(hosts(list)))
    }

    #[test]
    fn hostnames_intersect_as_the_gateway_api_says() {
        assert_eq!(intersect(&[], None), Some(Hosts::Any));
        assert_eq!(
            intersect(&[], Some("*.example.com")),
            only(&["*.example.com"])
        );
        assert_eq!(intersect(&hosts(&["a.b.com"]), None), only(&["a.b.com"]));
        // A wildcard listener takes the route's hosts it covers, at any depth.
        assert_eq!(
            intersect(
                &hosts(&["foo.example.com", "a.b.example.com", "example.com", "x.org"]),
                Some("*.example.com")
            ),
            only(&["a.b.example.com", "foo.example.com"])
        );
        // A wildcard route on an exact listener serves the listener's host.
        assert_eq!(
            intersect(&hosts(&["*.example.com"]), Some("foo.example.com")),
            only(&["foo.example.com"])
        );
        // Two wildcards: the narrower.
        assert_eq!(
            intersect(&hosts(&["*.foo.example.com"]), Some("*.example.com")),
            only(&["*.foo.example.com"])
        );
        assert_eq!(
            intersect(&hosts(&["*.example.com"]), Some("*.foo.example.com")),
            only(&["*.foo.example.com"])
        );
        assert_eq!(
            intersect(&hosts(&["*.example.com"]), Some("example.com")),
            None
        );
        assert_eq!(
            intersect(&hosts(&["badexample.com"]), Some("*.example.com")),
            None
        );
        assert_eq!(intersect(&hosts(&["x.org"]), Some("y.org")), None);
    }

    fn gateway() -> Gateway {
        serde_saphyr::from_str(
            "metadata: {name: public, namespace: edge}\n\
             spec:\n  gatewayClassName: frontdesk\n  listeners:\n    \
             - {name: http, port: 80, protocol: HTTP, hostname: '*.example.com', allowedRoutes: {namespaces: {from: All}}}\n    \
             - {name: other, port: 8080, protocol: HTTP, hostname: 'other.org', allowedRoutes: {namespaces: {from: All}}}\n    \
             - {name: same, port: 8081, protocol: HTTP}\n    \
             - {name: off, port: 8082, protocol: HTTP}\n",
        )
        .unwrap()
    }

    fn parent(yaml: &str) -> ParentReference {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const HTTP: (&str, &str) = (GROUP, "HTTPRoute");

    #[test]
    fn a_parent_ref_attaches_to_the_listeners_it_selects_that_admit_it() {
        let mut parents = Parents::new(&[]);
        parents.add("public", &gateway(), &[true, true, true, false]);
        let refs = [
            parent("{name: public, namespace: edge}"),
            parent("{name: public, namespace: edge, sectionName: other}"),
            parent("{name: public, namespace: edge, port: 8082}"),
            parent("{name: public, namespace: edge, sectionName: same}"),
            parent("{name: nowhere}"),
            parent("{group: example.org, kind: Mesh, name: public}"),
        ];
        let got = parents.attach_refs(HTTP, "shop", &refs, &hosts(&["a.example.com"]));
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(
            got[0].result,
            Ok(Attached {
                group: "public".into(),
                listeners: vec![(
                    ("edge".into(), "public".into(), 0),
                    Hosts::Only(hosts(&["a.example.com"]))
                )],
                hosts: Hosts::Only(hosts(&["a.example.com"])),
            })
        );
        assert_eq!(
            got[1].result.as_ref().unwrap_err().reason,
            "NoMatchingListenerHostname"
        );
        assert_eq!(
            got[2].result.as_ref().unwrap_err().reason,
            "NoMatchingParent"
        );
        assert_eq!(
            got[3].result.as_ref().unwrap_err().reason,
            "NotAllowedByListeners"
        );
        // Files name gateway groups that have no Gateway object.
        parents.implicit_groups = true;
        let got = parents.attach_refs(HTTP, "shop", &refs[4..5], &[]);
        assert_eq!(got[0].result.as_ref().unwrap().group, "nowhere");
    }

    #[test]
    fn listeners_that_list_kinds_admit_only_those() {
        let gw: Gateway = serde_saphyr::from_str(
            "metadata: {name: public, namespace: edge}\n\
             spec:\n  gatewayClassName: frontdesk\n  listeners:\n    \
             - {name: grpc, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: GRPCRoute}]}}\n",
        )
        .unwrap();
        let mut parents = Parents::new(&[]);
        parents.add("public", &gw, &[true]);
        let refs = [parent("{name: public}")];
        let http = parents.attach_refs(HTTP, "edge", &refs, &[]);
        assert_eq!(
            http[0].result.as_ref().unwrap_err().reason,
            "NotAllowedByListeners"
        );
        let grpc = parents.attach_refs((GROUP, "GRPCRoute"), "edge", &refs, &[]);
        assert_eq!(grpc[0].result.as_ref().unwrap().hosts, Hosts::Any);
    }
}
