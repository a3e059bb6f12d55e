//! Admission review: would the compiler accept this object, given the others?
//!
//! The controller's validating webhook asks this at `kubectl apply` time, so an invalid Route,
//! Policy, Aggregate, HTTPRoute or GRPCRoute is refused with the message its `Accepted`
//! condition would carry, instead of being stored and then rejected in status. It runs
//! [`crate::compile`] itself, on the object and the part of the cluster that can decide whether
//! it is accepted ([`Context::relevant`]): the Policies of its own namespace and those
//! targeting its Gateways, the routes that claim one of its hosts (the oldest claim of a host
//! wins across namespaces), the Gateways it names with the GatewayClasses (whether a Gateway
//! is frontdesk's) and its Namespace (listeners' `allowedRoutes`). So a review costs what that
//! part costs, not what the whole cluster does.
//!
//! Only `Accepted=False` refuses. Missing references (a Policy or a Service not created yet)
//! do not: applying a directory must work in any order, and the status reports them; nor does
//! where an object attaches (a Gateway not created yet, a listener that does not admit it).
//! Warnings carry those, and what the status would say as `Conflicted`. A Gateway API route
//! none of whose parentRefs is a Gateway of frontdesk's is another controller's: allowed
//! without a word, as the compiler gives it no status.

use serde_json::Value;

use crate::compile::Output;
use crate::compile::urls::UrlPolicy;
use crate::gateway_api::GROUP;
use crate::gateway_api::http_route::ParentReference;
use crate::manifests::{Object, ObjectKey, read, resources};
use crate::status::{ACCEPTED, CONFLICTED, ObjectStatus};

/// The compile settings of the cluster the object goes to.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub shared_hosts: bool,
    pub urls: UrlPolicy,
}

/// The answer to a review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Why not (the `Accepted` message), when refused.
    pub message: String,
    /// Shown by `kubectl` even when allowed.
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn allowed(warnings: Vec<String>) -> Self {
        Verdict {
            allowed: true,
            message: String::new(),
            warnings,
        }
    }

    fn refused(message: String) -> Self {
        Verdict {
            allowed: false,
            message,
            warnings: Vec::new(),
        }
    }

    /// An object whose fields cannot be read: refused as the status would reject it.
    pub fn unreadable(field: &str, reason: &str) -> Self {
        Verdict::refused(format!("{field}: {reason}"))
    }
}

/// What the reviewed object may depend on for its verdict, found among the cluster's objects.
pub struct Context {
    key: ObjectKey,
    namespace: String,
    hosts: Vec<String>,
    /// The Gateways it names: `(namespace, name)`, no namespace for a Route's plain entry
    /// (which may name a Gateway of any namespace, or a gateway group).
    gateways: Vec<(Option<String>, String)>,
}

impl Context {
    pub fn of(candidate: &Object) -> Self {
        let key = candidate.key();
        let hosts = hosts(candidate).into_iter().map(String::from).collect();
        let namespace = key.namespace.clone();
        let gateways = match candidate {
            Object::Route(r) => entries(&r.spec.gateways),
            Object::Aggregate(a) => entries(&a.spec.gateways),
            Object::HttpRoute(r) => parents(&r.spec.parent_refs, &namespace),
            Object::GrpcRoute(r) => parents(&r.spec.parent_refs, &namespace),
            _ => Vec::new(),
        };
        Context {
            namespace,
            key,
            hosts,
            gateways,
        }
    }

    /// Whether the verdict may depend on an object of the cluster, given its kind, namespace,
    /// name and `spec` (as the API server serves it): never on the object's own stored version
    /// (it is replaced); on the Policies of its namespace (what it may name, what targets it)
    /// and those targeting a Gateway it names; on the routes of any kind and namespace that
    /// claim one of its hosts; on the Gateways it names, with every GatewayClass (which says
    /// whether a Gateway is frontdesk's) and its own Namespace (for `allowedRoutes`
    /// selectors). Services do not decide acceptance (a missing one is ResolvedRefs=False).
    pub fn relevant(&self, kind: &str, namespace: &str, name: &str, spec: Option<&Value>) -> bool {
        if kind == self.key.kind && namespace == self.key.namespace && name == self.key.name {
            return false;
        }
        match kind {
            "Policy" => {
                namespace == self.namespace
                    || strings(spec, "targetRefs").any(|target| {
                        target.get("kind").and_then(Value::as_str) == Some("Gateway")
                            && (target.get("name").and_then(Value::as_str))
                                .is_some_and(|gateway| self.names_gateway(namespace, gateway))
                    })
            }
            "Route" | "Aggregate" | "HTTPRoute" | "GRPCRoute" => {
                let field = if kind.ends_with("Route") && kind != "Route" {
                    "hostnames"
                } else {
                    "hosts"
                };
                strings(spec, field)
                    .filter_map(Value::as_str)
                    .any(|h| self.hosts.iter().any(|m| m == h))
            }
            "Gateway" => self.names_gateway(namespace, name),
            "GatewayClass" => !self.gateways.is_empty(),
            "Namespace" => name == self.namespace,
            _ => false,
        }
    }

    fn names_gateway(&self, namespace: &str, name: &str) -> bool {
        (self.gateways.iter())
            .any(|(ns, n)| n == name && ns.as_deref().is_none_or(|ns| ns == namespace))
    }
}

/// The items of `spec.field`, when it is a list.
fn strings<'a>(spec: Option<&'a Value>, field: &str) -> impl Iterator<Item = &'a Value> {
    (spec.and_then(|s| s.get(field)).and_then(Value::as_array))
        .into_iter()
        .flatten()
}

/// A Route's or Aggregate's `spec.gateways`: `namespace/name` or a plain name; none is the
/// `default` gateway.
fn entries(gateways: &[String]) -> Vec<(Option<String>, String)> {
    if gateways.is_empty() {
        return vec![(None, "default".to_string())];
    }
    (gateways.iter())
        .map(|entry| match entry.split_once('/') {
            Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
            None => (None, entry.clone()),
        })
        .collect()
}

/// The Gateways among a Gateway API route's parentRefs.
fn parents(refs: &[ParentReference], namespace: &str) -> Vec<(Option<String>, String)> {
    (refs.iter())
        .filter(|p| p.kind.as_deref().is_none_or(|k| k == "Gateway"))
        .filter(|p| p.group.as_deref().is_none_or(|g| g == GROUP))
        .map(|p| {
            let ns = p.namespace.clone().unwrap_or_else(|| namespace.to_string());
            (Some(ns), p.name.clone())
        })
        .collect()
}

/// The hosts a route claims: a Route's or Aggregate's `hosts`, a Gateway API route's
/// `hostnames` (none for other kinds).
pub fn hosts(object: &Object) -> Vec<&str> {
    let hosts = match object {
        Object::Route(r) => &r.spec.hosts,
        Object::Aggregate(a) => &a.spec.hosts,
        Object::HttpRoute(r) => &r.spec.hostnames,
        Object::GrpcRoute(r) => &r.spec.hostnames,
        _ => return Vec::new(),
    };
    hosts.iter().map(String::as_str).collect()
}

/// The object an admission request is about, when it is of a kind the webhook reviews: a
/// Route, Policy, Aggregate, HTTPRoute or GRPCRoute. The error says which field cannot be
/// read. (Objects of the context are read with [`crate::manifests::read`].)
pub fn reviewed(kind: &str, doc: Value) -> Option<Result<Object, (String, String)>> {
    matches!(
        kind,
        "Route" | "Policy" | "Aggregate" | "HTTPRoute" | "GRPCRoute"
    )
    .then(|| read(kind, doc))
    .flatten()
}

/// Compiles `candidate` with `context` (the objects [`Context::relevant`] selected) and
/// answers whether it is accepted. `served` is the last compile of the whole cluster (what the
/// proxies serve): a host conflict the review finds is refused only when another namespace
/// serves that host there too, since the context may lack the route that really holds it (one
/// that gets the host from its listener, or an earlier version standing in for a rejected
/// edit).
pub fn review(
    candidate: Object,
    context: Vec<Object>,
    settings: &Settings,
    served: Option<&Output>,
) -> Verdict {
    let key = candidate.key();
    let mut objects = context;
    objects.push(candidate);
    let mut resources = resources(objects.iter());
    resources.shared_hosts = settings.shared_hosts;
    resources.urls = settings.urls.clone();
    let output = crate::compile(&resources);
    let Some(status) = output.status(key.kind, &key.namespace, &key.name) else {
        // A kind the compiler gives no status (nothing to check), or a Gateway API route
        // naming no Gateway of frontdesk's.
        return Verdict::allowed(Vec::new());
    };
    let verdict = verdict(status);
    let conflicts = (output.host_conflicts).get(&(
        key.kind.to_string(),
        key.namespace.clone(),
        key.name.clone(),
    ));
    if let Some(conflicts) = conflicts.filter(|_| !verdict.allowed) {
        let confirmed = served.is_some_and(|served| {
            (conflicts.iter())
                .any(|(group, host)| served_by_another(served, group, host, &key.namespace))
        });
        if !confirmed {
            let why = format!(
                "{} (not refused: the proxies do not serve it so now; the status will tell)",
                verdict.message
            );
            return Verdict::allowed(vec![why]);
        }
    }
    verdict
}

/// Whether a route of a namespace other than `namespace` serves `host` on gateway `group`
/// in `output`.
fn served_by_another(output: &Output, group: &str, host: &str, namespace: &str) -> bool {
    (output.snapshots.get(group)).is_some_and(|snapshot| {
        (snapshot.routes.iter())
            .any(|r| r.namespace != namespace && r.hosts.iter().any(|h| h == host))
    })
}

fn verdict(status: &ObjectStatus) -> Verdict {
    if let Some(accepted) = status.condition(ACCEPTED).filter(|c| !c.status) {
        // Where it attaches (a Gateway, a listener) is not in the review's context: a warning,
        // not a refusal; the status tells once it is compiled with everything.
        if crate::last_accepted::PLACEMENT_REASONS.contains(&accepted.reason.as_str()) {
            return Verdict::allowed(vec![accepted.message.clone()]);
        }
        return Verdict::refused(accepted.message.clone());
    }
    if !status.accepted() {
        return Verdict::refused("not accepted".into());
    }
    let warnings = status
        .conditions
        .iter()
        .filter(|c| c.type_ == CONFLICTED && c.status)
        .map(|c| c.message.clone())
        .collect();
    Verdict::allowed(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::parse_file;

    fn objects(yaml: &str) -> Vec<Object> {
        let parsed = parse_file("t.yaml", yaml);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed.objects.into_iter().map(|(o, _)| o).collect()
    }

    fn one(yaml: &str) -> Object {
        objects(yaml).remove(0)
    }

    fn relevant<'a>(candidate: &Object, cluster: &'a [Object]) -> Vec<&'a Object> {
        let context = Context::of(candidate);
        cluster
            .iter()
            .filter(|o| {
                let key = o.key();
                let spec = json(o).get("spec").cloned();
                context.relevant(key.kind, &key.namespace, &key.name, spec.as_ref())
            })
            .collect()
    }

    /// The object as the API server would serve it.
    fn json(o: &Object) -> Value {
        match o {
            Object::Route(x) => serde_json::to_value(&**x),
            Object::Policy(x) => serde_json::to_value(&**x),
            Object::Aggregate(x) => serde_json::to_value(&**x),
            Object::HttpRoute(x) => serde_json::to_value(&**x),
            Object::GrpcRoute(x) => serde_json::to_value(&**x),
            Object::Gateway(x) => serde_json::to_value(&**x),
            _ => Ok(Value::Null),
        }
        .unwrap()
    }

    const CLUSTER: &str = "\
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: shop, namespace: shop, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  hosts: [shop.example]
  rules: [{backends: [{url: 'http://127.0.0.1:1'}]}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: other, namespace: shop}
spec:
  hosts: [other.example]
  rules: [{backends: [{url: 'http://127.0.0.1:1'}]}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: auth, namespace: shop}
spec:
  authentication: {apiKeys: {secretSelector: {matchLabels: {team: shop}}}}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: auth, namespace: partners}
spec:
  authentication: {apiKeys: {secretSelector: {matchLabels: {team: partners}}}}
";

    #[test]
    fn an_invalid_route_is_refused_with_its_accepted_message() {
        let candidate = one("\
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: bad, namespace: shop}
spec:
  rules:
  - matches: [{path: {value: 'no-slash'}}]
    backends: [{url: 'http://127.0.0.1:1'}]
");
        let verdict = review(candidate, Vec::new(), &Settings::default(), None);
        assert!(!verdict.allowed);
        assert!(
            verdict.message.contains("spec.rules[0].matches[0].path"),
            "{}",
            verdict.message
        );
    }

    #[test]
    fn a_valid_route_naming_what_does_not_exist_yet_is_allowed() {
        let candidate = one("\
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: new, namespace: shop}
spec:
  policies: [missing]
  rules: [{backends: [{service: orders, port: 80}]}]
");
        let verdict = review(candidate, Vec::new(), &Settings::default(), None);
        assert_eq!(verdict, Verdict::allowed(Vec::new()));
    }

    #[test]
    fn a_gateway_not_in_the_context_is_a_warning_not_a_refusal() {
        let candidate = one("\
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: shared, namespace: shop}
spec:
  gateways: [infra/public]
  rules: [{backends: [{url: 'http://127.0.0.1:1'}]}]
");
        let verdict = review(candidate, Vec::new(), &Settings::default(), None);
        assert!(verdict.allowed, "{verdict:?}");
        assert_eq!(verdict.warnings.len(), 1, "{verdict:?}");
    }

    #[test]
    fn a_host_an_older_route_of_another_namespace_holds_is_refused() {
        let cluster = objects(CLUSTER);
        let candidate = one("\
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: thief, namespace: partners, creationTimestamp: '2026-06-01T00:00:00Z'}
spec:
  hosts: [shop.example]
  rules: [{backends: [{url: 'http://127.0.0.1:1'}]}]
");
        let context: Vec<Object> = relevant(&candidate, &cluster)
            .into_iter()
            .cloned()
            .collect();
        // The route that holds the host and the partners' Policy; not the shop's other Route.
        let mut keys: Vec<String> = context.iter().map(|o| o.key().to_string()).collect();
        keys.sort();
        assert_eq!(keys, ["Policy partners/auth", "Route shop/shop"]);
        let served = compiled(&cluster);
        let verdict = review(
            candidate.clone(),
            context,
            &Settings::default(),
            Some(&served),
        );
        assert!(!verdict.allowed);
        assert_eq!(
            verdict.message,
            "spec.hosts: host shop.example is already served by an older Route or Aggregate of another namespace"
        );
        // With shared hosts, allowed.
        let shared = Settings {
            shared_hosts: true,
            ..Settings::default()
        };
        let context = relevant(&candidate, &cluster)
            .into_iter()
            .cloned()
            .collect();
        assert!(review(candidate, context, &shared, Some(&served)).allowed);
    }

    #[test]
    fn an_update_replaces_the_stored_version_and_a_policy_is_checked_alone() {
        let cluster = objects(CLUSTER);
        // The stored `shop` Route is not context for its own update.
        let update = one("\
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: shop, namespace: shop, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  hosts: [shop.example, more.example]
  rules: [{backends: [{url: 'http://127.0.0.1:1'}]}]
");
        let context: Vec<Object> = relevant(&update, &cluster).into_iter().cloned().collect();
        assert!(context.iter().all(|o| o.key().name != "shop"));
        assert!(review(update, context, &Settings::default(), None).allowed);
        let policy = one("\
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: limits, namespace: shop}
spec:
  rateLimit: {limits: [{requests: 10, period: 0s}]}
");
        let verdict = review(policy, Vec::new(), &Settings::default(), None);
        assert!(!verdict.allowed);
        assert!(
            verdict.message.contains("spec.rateLimit"),
            "{}",
            verdict.message
        );
    }

    const GATEWAYS: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: frontdesk}
spec: {controllerName: frontdesk.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.org/other}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  gatewayClassName: frontdesk
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: '*.example.com'
    tls: {certificateRefs: [{name: missing-cert}]}
    allowedRoutes: {namespaces: {from: All}}
  - {name: own, port: 8080, protocol: HTTP}
  - {name: shop, port: 8081, protocol: HTTP, hostname: shop.example.com, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: mesh, namespace: edge}
spec:
  gatewayClassName: other
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: unrelated, namespace: edge}
spec:
  gatewayClassName: frontdesk
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: blog}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: edge-wide, namespace: edge}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: public}]
  authentication: {apiKeys: {secretSelector: {matchLabels: {team: edge}}}}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: elsewhere, namespace: edge}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: unrelated}]
  authentication: {apiKeys: {secretSelector: {matchLabels: {team: edge}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: blog, namespace: blog, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  parentRefs: [{name: public, namespace: edge, sectionName: http}]
  hostnames: [blog.example.com]
  rules: [{backendRefs: [{name: blog, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: docs, namespace: blog}
spec:
  parentRefs: [{name: public, namespace: edge}]
  hostnames: [docs.example.com]
  rules: [{backendRefs: [{name: docs, port: 80}]}]
";

    /// An HTTPRoute of namespace shop for `hostnames` on `parents`, with these `rules`.
    fn http_route(parents: &str, hostnames: &str, rules: &str) -> Object {
        one(&format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: cart, namespace: shop, creationTimestamp: '2026-06-01T00:00:00Z'}}
spec:
  parentRefs: {parents}
  hostnames: {hostnames}
  rules: {rules}
"
        ))
    }

    /// What the proxies serve: the cluster compiled whole.
    fn compiled(cluster: &[Object]) -> Output {
        crate::compile(&resources(cluster.iter()))
    }

    fn review_in(candidate: Object, cluster: &[Object]) -> Verdict {
        let context = relevant(&candidate, cluster).into_iter().cloned().collect();
        review(
            candidate,
            context,
            &Settings::default(),
            Some(&compiled(cluster)),
        )
    }

    #[test]
    fn an_http_route_is_compiled_with_its_gateways_classes_namespace_policies_and_host_rivals() {
        let cluster = objects(GATEWAYS);
        let candidate = http_route(
            "[{name: public, namespace: edge}]",
            "[blog.example.com]",
            "[{backendRefs: [{name: cart, port: 80}]}]",
        );
        let mut keys: Vec<String> = (relevant(&candidate, &cluster).iter())
            .map(|o| o.key().to_string())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "Gateway edge/public",
                "GatewayClass frontdesk",
                "GatewayClass other",
                "HTTPRoute blog/blog",
                "Namespace default/shop",
                "Policy edge/edge-wide",
            ]
        );
        // blog.example.com is blog's (older) on that Gateway: refused as the status would.
        let verdict = review_in(candidate, &cluster);
        assert_eq!(
            verdict,
            Verdict::refused(
                "spec.hosts: host blog.example.com is already served by an older Route or Aggregate of another namespace".into()
            )
        );
    }

    #[test]
    fn an_invalid_http_route_on_a_frontdesk_gateway_is_refused_with_its_accepted_message() {
        let cluster = objects(GATEWAYS);
        // Two rewrites of one rule: invalid.
        let rules = "[{filters: [{type: URLRewrite, urlRewrite: {hostname: a.example.com}}, \
                                 {type: URLRewrite, urlRewrite: {hostname: b.example.com}}], \
                      backendRefs: [{name: cart, port: 80}]}]";
        let verdict = review_in(
            http_route(
                "[{name: public, namespace: edge}]",
                "[cart.example.com]",
                rules,
            ),
            &cluster,
        );
        assert!(!verdict.allowed, "{verdict:?}");
        assert!(
            verdict.message.starts_with("spec.rules[0].filters[1]"),
            "{}",
            verdict.message
        );
        // What frontdesk does not implement: refused too (UnsupportedValue in status).
        let unsupported =
            "[{sessionPersistence: {type: Cookie}, backendRefs: [{name: cart, port: 80}]}]";
        let verdict = review_in(
            http_route(
                "[{name: public, namespace: edge}]",
                "[cart.example.com]",
                unsupported,
            ),
            &cluster,
        );
        assert!(!verdict.allowed, "{verdict:?}");
        assert!(
            verdict.message.contains("spec.rules[0].sessionPersistence"),
            "{}",
            verdict.message
        );
        // The same route for another controller's Gateway, or for a Gateway not created yet:
        // not frontdesk's to judge.
        for parents in [
            "[{name: mesh, namespace: edge}]",
            "[{name: later, namespace: edge}]",
        ] {
            let verdict = review_in(http_route(parents, "[cart.example.com]", rules), &cluster);
            assert_eq!(verdict, Verdict::allowed(Vec::new()), "{parents}");
        }
    }

    #[test]
    fn where_an_http_route_attaches_is_a_warning_and_a_missing_listener_secret_is_none() {
        let cluster = objects(GATEWAYS);
        let rules = "[{backendRefs: [{name: cart, port: 80}]}]";
        // The https listener's certificate Secret is missing: not the route's problem.
        let verdict = review_in(
            http_route(
                "[{name: public, namespace: edge, sectionName: https}]",
                "[cart.example.com]",
                rules,
            ),
            &cluster,
        );
        assert!(verdict.allowed, "{verdict:?}");
        // It was reviewed there, not skipped: the same route with a bad match is refused.
        let bad = "[{matches: [{path: {type: RegularExpression, value: '('}}], \
                    backendRefs: [{name: cart, port: 80}]}]";
        let verdict = review_in(
            http_route(
                "[{name: public, namespace: edge, sectionName: https}]",
                "[cart.example.com]",
                bad,
            ),
            &cluster,
        );
        assert!(!verdict.allowed, "{verdict:?}");
        // The `own` listener admits routes of its own namespace only.
        let verdict = review_in(
            http_route(
                "[{name: public, namespace: edge, sectionName: own}]",
                "[cart.example.com]",
                rules,
            ),
            &cluster,
        );
        assert!(verdict.allowed, "{verdict:?}");
        assert_eq!(verdict.warnings.len(), 1, "{verdict:?}");
    }

    #[test]
    fn a_grpc_route_is_reviewed_like_an_http_route() {
        let cluster = objects(GATEWAYS);
        let candidate = one("\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: shop}
spec:
  parentRefs: [{name: public, namespace: edge}]
  hostnames: [rpc.example.com]
  rules: [{filters: [{type: URLRewrite, urlRewrite: {hostname: x}}], backendRefs: [{name: rpc, port: 50051}]}]
");
        let verdict = review_in(candidate, &cluster);
        assert_eq!(
            verdict,
            Verdict::refused(
                "spec.rules[0].filters[0].type: a GRPCRoute has no URLRewrite filter".into()
            )
        );
    }

    #[test]
    fn a_host_conflict_is_refused_only_when_the_proxies_serve_the_host_so() {
        // shop's HTTPRoute holds shop.example.com through its listener's hostname (it names
        // none itself, so no review finds it by host); blog's newer one names the host and is
        // rejected by the status. A new shop route naming the host is shop's to add.
        let mut cluster = objects(GATEWAYS);
        cluster.extend(objects(
            "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: holder, namespace: shop, creationTimestamp: '2025-01-01T00:00:00Z'}
spec:
  parentRefs: [{name: public, namespace: edge, sectionName: shop}]
  rules: [{backendRefs: [{name: shop, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: latecomer, namespace: blog, creationTimestamp: '2025-06-01T00:00:00Z'}
spec:
  parentRefs: [{name: public, namespace: edge, sectionName: shop}]
  hostnames: [shop.example.com]
  rules: [{backendRefs: [{name: blog, port: 80}]}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: elsewhere, namespace: blog, creationTimestamp: '2025-02-01T00:00:00Z'}
spec:
  gateways: [internal]
  hosts: [shop.example.com]
  rules: [{backends: [{url: 'http://127.0.0.1:1'}]}]
",
        ));
        // blog also serves the host on another gateway (`internal`): no conflict on `public`.
        let candidate = http_route(
            "[{name: public, namespace: edge, sectionName: shop}]",
            "[shop.example.com]",
            "[{backendRefs: [{name: cart, port: 80}]}]",
        );
        let context: Vec<String> = (relevant(&candidate, &cluster).iter())
            .map(|o| o.key().to_string())
            .collect();
        assert!(
            !context.contains(&"HTTPRoute shop/holder".to_string()),
            "{context:?}"
        );
        let verdict = review_in(candidate.clone(), &cluster);
        assert!(verdict.allowed, "{verdict:?}");
        assert_eq!(verdict.warnings.len(), 1, "{verdict:?}");
        assert!(
            verdict.warnings[0].contains("the status will tell"),
            "{verdict:?}"
        );
        // Without the holder, blog's route serves the host: refused.
        cluster.retain(|o| o.key().name != "holder");
        let verdict = review_in(candidate, &cluster);
        assert!(!verdict.allowed, "{verdict:?}");
    }

    #[test]
    fn a_wildcard_conflict_is_confirmed_on_the_host_its_listener_gives() {
        let mut cluster = objects(GATEWAYS);
        cluster.extend(objects(
            "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: older, namespace: blog, creationTimestamp: '2025-01-01T00:00:00Z'}
spec:
  parentRefs: [{name: public, namespace: edge, sectionName: shop}]
  hostnames: ['*.example.com']
  rules: [{backendRefs: [{name: blog, port: 80}]}]
",
        ));
        let candidate = http_route(
            "[{name: public, namespace: edge, sectionName: shop}]",
            "['*.example.com']",
            "[{backendRefs: [{name: cart, port: 80}]}]",
        );
        let verdict = review_in(candidate, &cluster);
        assert_eq!(
            verdict,
            Verdict::refused(
                "spec.hosts: host shop.example.com is already served by an older Route or Aggregate of another namespace".into()
            )
        );
    }
}
