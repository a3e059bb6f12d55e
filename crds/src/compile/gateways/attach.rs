//! Which Gateways a Route or Aggregate attaches to: its `spec.gateways` entries resolved against
//! the Gateways of frontdesk's classes, and each Gateway's listeners' `allowedRoutes`.
//!
//! An entry is `name` or `namespace/name`:
//!
//! - `namespace/name` names that Gateway; it must exist (else `NoMatchingParent`).
//! - `name` names the Gateway `name` of the Route's own namespace, as in the Gateway API.
//!   When there is none, a Gateway of that name in another namespace whose listeners admit the
//!   Route is taken (so Routes written before Gateways existed, naming a gateway the chart
//!   declared, keep working once the chart renders it as a Gateway); and when no Gateway of
//!   that name exists at all, the entry is a gateway group without listeners of its own
//!   (proxies started with `--gateway name`), served as before Gateways existed.
//!
//! A Gateway admits a Route when one of its accepted listeners does: `allowedRoutes.namespaces`
//! `Same` (the default: the Gateway's namespace), `All`, or `Selector` (the labels of the
//! Route's namespace), and `allowedRoutes.kinds`, when given, naming the object's kind in group
//! `frontdesk.dev` (when not given, frontdesk's Routes and Aggregates are admitted, as
//! HTTPRoutes are). A gateway group's proxies serve one route table, so a Route admitted by
//! one listener is served on every listener of its gateway: give listeners that must not share
//! routes to different Gateways.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::gateway_api::{AllowedRoutes, FromNamespaces, Gateway};

/// The API group of frontdesk's own route kinds, for `allowedRoutes.kinds`.
pub const ROUTE_GROUP: &str = "frontdesk.dev";

/// One Gateway that Routes may attach to.
#[derive(Debug)]
pub(super) struct Parent {
    pub(super) namespace: String,
    pub(super) name: String,
    /// Per listener (in spec order), `None` when the listener is not accepted.
    pub(super) listeners: Vec<Option<ListenerView>>,
}

/// What attaching to one accepted listener depends on.
#[derive(Debug)]
pub(super) struct ListenerView {
    pub(super) name: String,
    pub(super) port: i32,
    /// Lower-case; `None` admits every host.
    pub(super) hostname: Option<String>,
    pub(super) allowed: AllowedRoutes,
}

/// The Gateways of frontdesk's classes, by gateway group, with the namespaces' labels.
#[derive(Debug, Default)]
pub struct Parents {
    pub(super) by_group: BTreeMap<String, Vec<Parent>>,
    namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// A Gateway API route naming a Gateway that does not exist (in any namespace) attaches to
    /// the gateway group of that name (manifest files, where proxies are started with
    /// `--gateway name`).
    pub implicit_groups: bool,
}

/// One listener: `(gateway namespace, gateway name, listener index)`.
pub type ListenerRef = (String, String, usize);

/// Where one object attached.
#[derive(Debug, Default, PartialEq)]
pub struct Attachment {
    /// The gateway groups that serve it, sorted and deduplicated.
    pub groups: Vec<String>,
    /// The listeners it attached to, as `(gateway namespace, gateway name, listener index)`,
    /// for their `attachedRoutes`.
    pub listeners: Vec<(String, String, usize)>,
    /// The entries that attached nowhere: `(index in spec.gateways, reason, message)`.
    pub refused: Vec<(usize, &'static str, String)>,
}

impl Parents {
    pub fn new(namespaces: &[Namespace]) -> Self {
        Parents {
            by_group: BTreeMap::new(),
            implicit_groups: false,
            namespace_labels: namespaces
                .iter()
                .filter_map(|n| {
                    let name = n.metadata.name.clone()?;
                    Some((name, n.metadata.labels.clone().unwrap_or_default()))
                })
                .collect(),
        }
    }

    /// Adds a Gateway of `group`; `accepted[i]` says whether its listener `i` is accepted.
    pub fn add(&mut self, group: &str, gateway: &Gateway, accepted: &[bool]) {
        let listeners = gateway
            .spec
            .listeners
            .iter()
            .zip(accepted)
            .map(|(l, ok)| {
                ok.then(|| ListenerView {
                    name: l.name.clone(),
                    port: l.port,
                    hostname: l.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
                    allowed: l.allowed_routes.clone().unwrap_or_default(),
                })
            })
            .collect();
        self.by_group
            .entry(group.to_string())
            .or_default()
            .push(Parent {
                namespace: gateway
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(default_ns),
                name: gateway.metadata.name.clone().unwrap_or_default(),
                listeners,
            });
    }

    /// The name of listener `index` of Gateway `namespace/name`, when it is accepted.
    pub fn listener_name(&self, namespace: &str, name: &str, index: usize) -> Option<&str> {
        let parent = self
            .by_group
            .get(name)?
            .iter()
            .find(|p| p.namespace == namespace)?;
        Some(parent.listeners.get(index)?.as_ref()?.name.as_str())
    }

    /// The port of listener `index` of Gateway `namespace/name`, when it is accepted.
    pub fn listener_port(&self, namespace: &str, name: &str, index: usize) -> Option<u16> {
        let parent = self
            .by_group
            .get(name)?
            .iter()
            .find(|p| p.namespace == namespace)?;
        u16::try_from(parent.listeners.get(index)?.as_ref()?.port).ok()
    }

    /// The hostname of accepted listener `l` (`None`: every host, or not accepted).
    pub fn listener_hostname(&self, (namespace, name, index): &ListenerRef) -> Option<&str> {
        let parent =
            (self.by_group.get(name).into_iter().flatten()).find(|p| p.namespace == *namespace)?;
        parent.listeners.get(*index)?.as_ref()?.hostname.as_deref()
    }

    /// The ports of every accepted listener of Gateway `namespace/name`, sorted.
    pub fn listener_ports(&self, namespace: &str, name: &str) -> Vec<u16> {
        let mut ports: Vec<u16> = (self.by_group.get(name).into_iter().flatten())
            .filter(|p| p.namespace == namespace)
            .flat_map(|p| p.listeners.iter().flatten())
            .filter_map(|l| u16::try_from(l.port).ok())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Whether requests for `host` (a route's hostname as served on listener `l`, exact or a
    /// wildcard) go to another listener of its Gateway instead: one on the same port whose
    /// hostname is more specific than `l`'s (exact, then the longest wildcard, then none) and
    /// matches `host`. The Gateway API sends a request to the most specific listener of its
    /// port, whether or not the route attached there.
    pub fn host_goes_elsewhere(&self, (namespace, name, index): &ListenerRef, host: &str) -> bool {
        let Some(parent) =
            (self.by_group.get(name).into_iter().flatten()).find(|p| p.namespace == *namespace)
        else {
            return false;
        };
        let Some(Some(own)) = parent.listeners.get(*index) else {
            return false;
        };
        let specificity = |hostname: Option<&str>| match hostname {
            None => 0,
            Some(h) if h.starts_with('*') => h.len(),
            Some(_) => usize::MAX,
        };
        let own_specificity = specificity(own.hostname.as_deref());
        (parent.listeners.iter().enumerate())
            .filter(|(i, _)| i != index)
            .filter_map(|(_, l)| l.as_ref())
            .filter(|l| l.port == own.port)
            .filter_map(|l| l.hostname.as_deref())
            .any(|h| {
                specificity(Some(h)) > own_specificity
                    && (h == host || super::parent_refs::covers(h, host))
            })
    }

    /// Whether Gateway `namespace/name` is one of frontdesk's.
    pub fn has_gateway(&self, namespace: &str, name: &str) -> bool {
        self.by_group
            .get(name)
            .is_some_and(|ps| ps.iter().any(|p| p.namespace == namespace))
    }

    /// Resolves the `spec.gateways` entries of a `kind` object in `namespace`.
    pub fn attach(&self, kind: &str, namespace: &str, entries: &[String]) -> Attachment {
        let mut out = Attachment::default();
        for (i, entry) in entries.iter().enumerate() {
            let (wanted_ns, name) = match entry.split_once('/') {
                Some((ns, name)) => (Some(ns), name),
                None => (None, entry.as_str()),
            };
            let Some(parents) = self.by_group.get(name) else {
                match wanted_ns {
                    None => out.groups.push(name.to_string()),
                    Some(ns) => out.refused.push((
                        i,
                        "NoMatchingParent",
                        format!("no Gateway {ns}/{name} of frontdesk's classes exists"),
                    )),
                }
                continue;
            };
            let candidates: Vec<&Parent> = match wanted_ns {
                Some(ns) => parents.iter().filter(|p| p.namespace == ns).collect(),
                None => match parents.iter().find(|p| p.namespace == namespace) {
                    Some(own) => vec![own],
                    None => parents.iter().collect(),
                },
            };
            if candidates.is_empty() {
                let ns = wanted_ns.unwrap_or(namespace);
                out.refused.push((
                    i,
                    "NoMatchingParent",
                    format!("no Gateway {ns}/{name} of frontdesk's classes exists"),
                ));
                continue;
            }
            let mut attached = false;
            for parent in candidates {
                for (li, listener) in parent.listeners.iter().enumerate() {
                    if let Some(listener) = listener
                        && self.admits(
                            &listener.allowed,
                            &parent.namespace,
                            (ROUTE_GROUP, kind),
                            namespace,
                        )
                    {
                        attached = true;
                        out.listeners
                            .push((parent.namespace.clone(), parent.name.clone(), li));
                    }
                }
                if attached {
                    // One Gateway is enough: the group's route table is shared.
                    break;
                }
            }
            if attached {
                out.groups.push(name.to_string());
            } else {
                let which = wanted_ns.map_or_else(|| name.to_string(), |ns| format!("{ns}/{name}"));
                out.refused.push((
                    i,
                    "NotAllowedByListeners",
                    format!(
                        "no listener of Gateway {which} admits a {kind} of namespace {namespace} \
                         (see its listeners' allowedRoutes)"
                    ),
                ));
            }
        }
        out.groups.sort();
        out.groups.dedup();
        out.listeners.sort();
        out.listeners.dedup();
        out
    }

    /// Whether a listener allowing `allowed` admits a `(group, kind)` route of `route_ns`.
    /// A listener that lists no kinds admits every kind frontdesk serves (the Gateway API's
    /// HTTPRoute and GRPCRoute, frontdesk's Route and Aggregate); a listed kind's group
    /// defaults to the Gateway API's.
    pub(super) fn admits(
        &self,
        allowed: &AllowedRoutes,
        gateway_ns: &str,
        (group, kind): (&str, &str),
        route_ns: &str,
    ) -> bool {
        let kind_ok = allowed.kinds.is_empty()
            || allowed.kinds.iter().any(|k| {
                k.kind == kind && k.group.as_deref().unwrap_or(crate::gateway_api::GROUP) == group
            });
        if !kind_ok {
            return false;
        }
        let namespaces = allowed.namespaces.as_ref();
        match namespaces.and_then(|n| n.from).unwrap_or_default() {
            FromNamespaces::All => true,
            FromNamespaces::Same => gateway_ns == route_ns,
            // A namespace whose labels are not known (not read, or not allowed to be) is
            // selected by nothing: `NotIn` and `DoesNotExist` must not admit it by default.
            FromNamespaces::Selector => match self.namespace_labels.get(route_ns) {
                Some(labels) => namespaces
                    .and_then(|n| n.selector.as_ref())
                    .is_some_and(|s| selects(s, labels)),
                None => false,
            },
        }
    }
}

fn default_ns() -> String {
    "default".to_string()
}

/// Whether `selector` selects an object with `labels` (an empty selector selects everything;
/// an operator this version does not know selects nothing).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && selector.match_expressions.iter().flatten().all(|e| {
            let value = labels.get(&e.key);
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn gateway(yaml: &str) -> Gateway {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn listed_kinds_admit_only_frontdesk_kinds_they_name() {
        let partners = gateway(
            "metadata: {name: partners, namespace: edge}\n\
             spec:\n  gatewayClassName: frontdesk\n  listeners:\n    \
             - name: http\n      port: 80\n      protocol: HTTP\n      \
             allowedRoutes: {namespaces: {from: All}, kinds: [{group: frontdesk.dev, kind: Aggregate}]}\n",
        );
        let mut parents = Parents::new(&[]);
        parents.add("partners", &partners, &[true]);
        let entries = ["edge/partners".to_string()];
        let aggregate = parents.attach("Aggregate", "shop", &entries);
        assert_eq!(aggregate.groups, ["partners"]);
        assert_eq!(aggregate.listeners, [("edge".into(), "partners".into(), 0)]);
        let route = parents.attach("Route", "shop", &entries);
        assert!(route.groups.is_empty());
        assert_eq!(route.refused[0].1, "NotAllowedByListeners");
    }

    /// The Gateway API sends a request to the most specific listener of its port: exact
    /// hostname, then the longest wildcard, then none; other ports do not compete.
    #[test]
    fn a_host_goes_to_the_most_specific_listener_of_its_port() {
        let public = gateway(
            "metadata: {name: public, namespace: edge}\n\
             spec:\n  gatewayClassName: frontdesk\n  listeners:\n    \
             - {name: any, port: 80, protocol: HTTP}\n    \
             - {name: wild, port: 80, protocol: HTTP, hostname: '*.example.com'}\n    \
             - {name: api, port: 80, protocol: HTTP, hostname: api.example.com}\n    \
             - {name: other, port: 8080, protocol: HTTP, hostname: api.example.com}\n",
        );
        let mut parents = Parents::new(&[]);
        parents.add("public", &public, &[true, true, true, true]);
        let l = |i| ("edge".to_string(), "public".to_string(), i);
        assert!(parents.host_goes_elsewhere(&l(0), "api.example.com"));
        assert!(parents.host_goes_elsewhere(&l(0), "www.example.com"));
        assert!(parents.host_goes_elsewhere(&l(0), "*.eu.example.com"));
        assert!(!parents.host_goes_elsewhere(&l(0), "example.org"));
        assert!(parents.host_goes_elsewhere(&l(1), "api.example.com"));
        assert!(!parents.host_goes_elsewhere(&l(1), "www.example.com"));
        assert!(!parents.host_goes_elsewhere(&l(2), "api.example.com"));
        assert!(!parents.host_goes_elsewhere(&l(3), "api.example.com"));
        assert_eq!(parents.listener_hostname(&l(1)), Some("*.example.com"));
        assert_eq!(parents.listener_hostname(&l(0)), None);
    }

    #[test]
    fn a_listener_that_is_not_accepted_admits_nothing() {
        let public = gateway(
            "metadata: {name: public, namespace: edge}\n\
             spec: {gatewayClassName: frontdesk, listeners: [{name: http, port: 80, protocol: HTTP}]}\n",
        );
        let mut parents = Parents::new(&[]);
        parents.add("public", &public, &[false]);
        let got = parents.attach("Route", "edge", &["public".to_string()]);
        assert!(got.groups.is_empty());
        assert_eq!(got.refused[0].1, "NotAllowedByListeners");
    }

    #[test]
    fn a_namespace_whose_labels_are_unknown_is_selected_by_nothing() {
        let public = gateway(
            "metadata: {name: public, namespace: edge}\n\
             spec:\n  gatewayClassName: frontdesk\n  listeners:\n    \
             - name: http\n      port: 80\n      protocol: HTTP\n      \
             allowedRoutes: {namespaces: {from: Selector, selector: {matchExpressions: [{key: untrusted, operator: DoesNotExist}]}}}\n",
        );
        let known: Namespace = serde_saphyr::from_str("metadata: {name: shop}\n").unwrap();
        let mut parents = Parents::new(&[known]);
        parents.add("public", &public, &[true]);
        let entries = ["edge/public".to_string()];
        assert_eq!(parents.attach("Route", "shop", &entries).groups, ["public"]);
        let unknown = parents.attach("Route", "elsewhere", &entries);
        assert!(unknown.groups.is_empty(), "{unknown:?}");
    }

    #[test]
    fn selectors_match_labels_and_every_expression_operator() {
        let expr = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        };
        let ns = labels(&[("team", "shop"), ("tier", "prod")]);
        let with = |exprs: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: Some(labels(&[("tier", "prod")])),
            match_expressions: Some(exprs),
        };
        assert!(selects(&LabelSelector::default(), &ns), "empty selects all");
        assert!(selects(&with(vec![expr("team", "In", &["shop"])]), &ns));
        assert!(!selects(&with(vec![expr("team", "NotIn", &["shop"])]), &ns));
        assert!(selects(&with(vec![expr("team", "Exists", &[])]), &ns));
        assert!(!selects(
            &with(vec![expr("team", "DoesNotExist", &[])]),
            &ns
        ));
        assert!(selects(&with(vec![expr("owner", "NotIn", &["x"])]), &ns));
        assert!(!selects(
            &with(vec![expr("team", "Matches", &["shop"])]),
            &ns
        ));
        assert!(!selects(&with(vec![]), &labels(&[("tier", "dev")])));
    }
}
