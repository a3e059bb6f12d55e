//! Admission review: would the compiler accept this object, given the others?
//!
//! The controller's validating webhook asks this at `kubectl apply` time, so an invalid Route,
//! Policy or Aggregate is refused with the message its `Accepted` condition would carry,
//! instead of being stored and then rejected in status. It runs [`crate::compile`] itself, on
//! the object and the part of the cluster that can decide whether it is accepted
//! ([`Context::relevant`]): the Policies of its own namespace and the Routes and Aggregates
//! that claim one of its hosts (the oldest claim of a host wins across namespaces). So a review
//! costs what that part costs, not what the whole cluster does.
//!
//! Only `Accepted=False` refuses. Missing references (a Policy or a Service not created yet)
//! do not: applying a directory must work in any order, and the status reports them; nor does
//! where an object attaches (Gateways and listeners are not in the context). Warnings carry
//! those, and what the status would say as `Conflicted`.

use crate::compile::urls::UrlPolicy;
use crate::manifests::{Object, ObjectKey, resources};
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
}

impl Context {
    pub fn of(candidate: &Object) -> Self {
        let key = candidate.key();
        let hosts = hosts(candidate).into_iter().map(String::from).collect();
        Context {
            namespace: key.namespace.clone(),
            key,
            hosts,
        }
    }

    /// Whether the verdict may depend on an object of the cluster: never on the object's own
    /// stored version (it is replaced), on the Policies of its namespace (what it may name), and
    /// on the Routes and Aggregates of any namespace that claim one of its hosts. Services do
    /// not decide acceptance (a missing one is ResolvedRefs=False).
    pub fn relevant(&self, kind: &str, namespace: &str, name: &str, hosts: &[&str]) -> bool {
        if kind == self.key.kind && namespace == self.key.namespace && name == self.key.name {
            return false;
        }
        match kind {
            "Policy" => namespace == self.namespace,
            "Route" | "Aggregate" => hosts.iter().any(|h| self.hosts.iter().any(|m| m == h)),
            _ => false,
        }
    }
}

/// The hosts a Route or Aggregate claims (none for other kinds).
pub fn hosts(object: &Object) -> Vec<&str> {
    let hosts = match object {
        Object::Route(r) => &r.spec.hosts,
        Object::Aggregate(a) => &a.spec.hosts,
        _ => return Vec::new(),
    };
    hosts.iter().map(String::as_str).collect()
}

/// Compiles `candidate` with `context` (the objects [`Context::relevant`] selected) and
/// answers whether it is accepted.
pub fn review(candidate: Object, context: Vec<Object>, settings: &Settings) -> Verdict {
    let key = candidate.key();
    let mut objects = context;
    objects.push(candidate);
    let mut resources = resources(objects.iter());
    resources.shared_hosts = settings.shared_hosts;
    resources.urls = settings.urls.clone();
    let output = crate::compile(&resources);
    let Some(status) = output.status(key.kind, &key.namespace, &key.name) else {
        // A kind the compiler gives no status (nothing to check).
        return Verdict::allowed(Vec::new());
    };
    verdict(status)
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
                context.relevant(key.kind, &key.namespace, &key.name, &hosts(o))
            })
            .collect()
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
        let verdict = review(candidate, Vec::new(), &Settings::default());
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
        let verdict = review(candidate, Vec::new(), &Settings::default());
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
        let verdict = review(candidate, Vec::new(), &Settings::default());
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
        let verdict = review(candidate.clone(), context, &Settings::default());
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
        assert!(review(candidate, context, &shared).allowed);
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
        assert!(review(update, context, &Settings::default()).allowed);
        let policy = one("\
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: limits, namespace: shop}
spec:
  rateLimit: {limits: [{requests: 10, period: 0s}]}
");
        let verdict = review(policy, Vec::new(), &Settings::default());
        assert!(!verdict.allowed);
        assert!(
            verdict.message.contains("spec.rateLimit"),
            "{}",
            verdict.message
        );
    }
}
