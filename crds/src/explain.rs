//! What an object became: its rules on each gateway, with their matches, backends and
//! endpoints, and the effective policy of each rule section by section: the Policy each
//! section came from and the Policies whose same section it overrode (a section is replaced
//! whole by the last Policy of the rule's list that has it, never merged).
//!
//! Pure, from a compile [`Output`]: the controller's admin API answers `/explain/...` with it
//! (adding how far its proxies got), so does a standalone proxy's, and `kubectl frontdesk
//! explain` prints it.

use serde::Serialize;

use crate::compile::Output;
use crate::status::Condition;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    /// When this generation is rejected: the one served in its place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_generation: Option<i64>,
    pub conditions: Vec<Condition>,
    /// Each gateway whose snapshot carries the object's rules.
    pub gateways: Vec<OnGateway>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnGateway {
    pub gateway: String,
    pub hosts: Vec<String>,
    pub ports: Vec<u16>,
    pub rules: Vec<RuleExplained>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleExplained {
    pub id: String,
    /// As the snapshot has them (path, methods, headers, query).
    pub matches: Vec<frontdesk_snapshot::Match>,
    /// `forward`, `redirect`, `directResponse` or `aggregate`.
    pub action: &'static str,
    pub backends: Vec<BackendExplained>,
    /// The Policies of the rule, in the order they apply.
    pub policies: Vec<String>,
    pub sections: Vec<Section>,
    /// Why the rule answers 503 instead (a Policy or Secret missing or invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendExplained {
    pub name: String,
    pub weight: u32,
    pub endpoints: Vec<String>,
}

/// One section of a rule's effective policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Section {
    pub section: &'static str,
    /// `namespace/name` of the Policy it comes from.
    pub from: String,
    /// Earlier Policies of the list that have the section too, replaced by `from`'s.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
}

/// What `/explain/KIND/NAMESPACE/NAME` asks for, the kind as compiled (`route` or `routes`
/// reads `Route`), for both admin APIs (the controller's and the standalone proxy's); a
/// plain-text reason otherwise.
pub fn parse_path(path: &str) -> Result<(&'static str, &str, &str), &'static str> {
    let parts: Vec<&str> = path.trim_start_matches("/explain/").split('/').collect();
    let [kind, namespace, name] = parts[..] else {
        return Err("/explain/KIND/NAMESPACE/NAME, e.g. /explain/route/shop/orders\n");
    };
    let kind = match kind.to_ascii_lowercase().as_str() {
        "route" | "routes" => "Route",
        "policy" | "policies" => "Policy",
        "aggregate" | "aggregates" => "Aggregate",
        "httproute" | "httproutes" => "HTTPRoute",
        "grpcroute" | "grpcroutes" => "GRPCRoute",
        "gateway" | "gateways" => "Gateway",
        _ => return Err("unknown kind\n"),
    };
    Ok((kind, namespace, name))
}

/// The explanation of `kind` `namespace/name`, or `None` when the output has no status for it.
pub fn explain(output: &Output, kind: &str, namespace: &str, name: &str) -> Option<Explanation> {
    let status = output.status(kind, namespace, name)?;
    let mut gateways = Vec::new();
    // Only kinds that become rules have any; snapshot routes are named by namespace and name
    // alone, so a Route and an HTTPRoute of one name would show each other's.
    let has_rules = matches!(kind, "Route" | "Aggregate" | "HTTPRoute" | "GRPCRoute");
    for (gateway, snapshot) in output.snapshots.iter().filter(|_| has_rules) {
        for route in snapshot
            .routes
            .iter()
            .filter(|r| r.namespace == namespace && r.name == name)
        {
            let rules = route
                .rules
                .iter()
                .map(|rule| {
                    let policy = rule.policy.as_ref().and_then(|k| snapshot.policies.get(k));
                    let policies = policy.map(|p| p.sources.clone()).unwrap_or_default();
                    RuleExplained {
                        id: rule.id.clone(),
                        matches: rule.matches.clone(),
                        action: action(&rule.action),
                        backends: backends(&rule.action),
                        sections: sections(&policies, output),
                        unavailable: policy.and_then(|p| p.unavailable.clone()),
                        policies,
                    }
                })
                .collect();
            gateways.push(OnGateway {
                gateway: gateway.clone(),
                hosts: route.hosts.clone(),
                ports: route.ports.clone(),
                rules,
            });
        }
    }
    Some(Explanation {
        kind: status.kind.clone(),
        namespace: status.namespace.clone(),
        name: status.name.clone(),
        generation: status.generation,
        served_generation: status.served_generation,
        conditions: status.conditions.clone(),
        gateways,
    })
}

fn action(action: &frontdesk_snapshot::Action) -> &'static str {
    use frontdesk_snapshot::Action;
    match action {
        Action::Forward { .. } => "forward",
        Action::Redirect(_) => "redirect",
        Action::DirectResponse(_) => "directResponse",
        Action::Aggregate(_) => "aggregate",
    }
}

fn backends(action: &frontdesk_snapshot::Action) -> Vec<BackendExplained> {
    use frontdesk_snapshot::Action;
    let explained = |b: &frontdesk_snapshot::Backend| BackendExplained {
        name: b.name.clone(),
        weight: b.weight,
        endpoints: b.endpoints.clone(),
    };
    match action {
        Action::Forward { backends } => backends.iter().map(explained).collect(),
        Action::Aggregate(a) => a.calls.iter().map(|c| explained(&c.backend)).collect(),
        Action::Redirect(_) | Action::DirectResponse(_) => Vec::new(),
    }
}

/// Each section present in any of `policies` (in order): the last one that has it, and the
/// earlier ones it replaced.
fn sections(policies: &[String], output: &Output) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for id in policies {
        let Some(present) = output.policy_sections.get(id) else {
            continue;
        };
        for section in present {
            match out.iter_mut().find(|s| s.section == *section) {
                Some(s) if s.from != *id => {
                    let previous = std::mem::replace(&mut s.from, id.clone());
                    s.overrides.push(previous);
                }
                Some(_) => {}
                None => out.push(Section {
                    section,
                    from: id.clone(),
                    overrides: Vec::new(),
                }),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::{parse_file, resources};

    #[test]
    fn each_section_names_the_policy_it_came_from_and_those_it_overrode() {
        let yaml = "\
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: orders, namespace: shop, generation: 4}
spec:
  hosts: [shop.example]
  policies: [base, strict]
  rules:
  - matches: [{path: {value: /orders}}]
    backends: [{url: 'http://127.0.0.1:9001'}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: base, namespace: shop}
spec:
  authentication: {apiKeys: {secretSelector: {matchLabels: {team: shop}}}}
  rateLimit: {limits: [{requests: 100, period: 1s}]}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: strict, namespace: shop}
spec:
  rateLimit: {limits: [{requests: 5, period: 1s}]}
";
        let parsed = parse_file("t.yaml", yaml);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let output = crate::compile(&resources(parsed.objects.iter().map(|(o, _)| o)));
        let e = explain(&output, "Route", "shop", "orders").unwrap();
        assert_eq!(e.generation, 4);
        assert_eq!(e.gateways.len(), 1);
        let on = &e.gateways[0];
        assert_eq!(
            (on.gateway.as_str(), on.hosts.as_slice()),
            ("default", &["shop.example".to_string()][..])
        );
        let rule = &on.rules[0];
        assert_eq!(rule.action, "forward");
        assert_eq!(rule.backends[0].endpoints, ["127.0.0.1:9001"]);
        assert_eq!(rule.policies, ["shop/base", "shop/strict"]);
        assert_eq!(
            rule.sections,
            [
                Section {
                    section: "authentication",
                    from: "shop/base".into(),
                    overrides: vec![],
                },
                Section {
                    section: "rateLimit",
                    from: "shop/strict".into(),
                    overrides: vec!["shop/base".into()],
                },
            ]
        );
        assert!(explain(&output, "Route", "shop", "missing").is_none());
        // A Policy explains itself (no rules of its own), even one named like a Route.
        let policy = explain(&output, "Policy", "shop", "strict").unwrap();
        assert!(policy.gateways.is_empty());
    }
}
