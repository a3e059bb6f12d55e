//! Gateway API BackendTLSPolicies compiled with frontdesk Routes: which backends speak TLS,
//! what they verify, and what each policy's status says.
use frontdesk_crds::compile::Output;
use frontdesk_crds::manifests::{parse_file, resources};
use frontdesk_crds::{ObjectStatus, compile};
use frontdesk_snapshot as snap;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: shop}
spec: {ports: [{name: https, port: 443}, {name: http, port: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: orders-1, namespace: shop, labels: {kubernetes.io/service-name: orders}}
addressType: IPv4
ports: [{name: https, port: 8443}, {name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: secure, namespace: shop}
spec:
  hosts: [secure.example]
  rules:
    - backends: [{service: orders, port: 443}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: plain, namespace: shop}
spec:
  hosts: [plain.example]
  rules:
    - backends: [{service: orders, port: 8080}]
"#;

/// A ConfigMap `name` of namespace shop holding `pem` under ca.crt.
fn ca_map(name: &str, pem: &str) -> String {
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: shop}}\ndata:\n  ca.crt: |\n{indented}"
    )
}

fn compiled(docs: &[&str]) -> Output {
    let text = docs.join("\n---\n");
    let parsed = parse_file("m.yaml", &text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut r = resources(parsed.objects.iter().map(|(o, _)| o));
    r.gateway_class_optional = true;
    compile(&r)
}

/// The first backend of the Route `name`.
fn backend<'a>(out: &'a Output, gateway: &str, name: &str) -> &'a snap::Backend {
    let route = out.snapshots[gateway]
        .routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("route {name} is served"));
    match &route.rules[0].action {
        snap::Action::Forward { backends } => &backends[0],
        other => panic!("{other:?}"),
    }
}

fn status<'a>(out: &'a Output, kind: &str, name: &str) -> &'a ObjectStatus {
    out.status(kind, "shop", name)
        .unwrap_or_else(|| panic!("{kind} {name} has a status"))
}

/// `(status, reason)` of condition `type_`.
fn condition(st: &ObjectStatus, type_: &str) -> (bool, String) {
    let c = st
        .condition(type_)
        .unwrap_or_else(|| panic!("{type_} in {st:?}"));
    (c.status, c.reason.clone())
}

fn policy(name: &str, created: &str, targets: &str, validation: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {name}, namespace: shop, creationTimestamp: '{created}', generation: 2}}\nspec:\n  targetRefs: {targets}\n  validation: {validation}\n"
    )
}

/// A policy trusting the proxies' own roots for `hostname`.
fn system_policy(name: &str, created: &str, targets: &str, hostname: &str) -> String {
    policy(
        name,
        created,
        targets,
        &format!("{{hostname: {hostname}, wellKnownCACertificates: System}}"),
    )
}

#[test]
fn a_policy_on_a_service_port_makes_its_backends_speak_tls_and_lists_its_ancestors() {
    let ca = frontdesk_demo::certs::Authority::new();
    let pem = ca.pem().to_string();
    let tls = policy(
        "orders-tls",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders, sectionName: https}]",
        "{hostname: orders.internal, caCertificateRefs: [{group: '', kind: ConfigMap, name: orders-ca}]}",
    );
    let out = compiled(&[SERVICE, &ca_map("orders-ca", &pem), &tls]);

    let secure = backend(&out, "default", "secure");
    let got = secure.tls.as_ref().expect("TLS to port https");
    assert_eq!(got.server_name, "orders.internal");
    assert_eq!(
        got.ca_certificates.as_deref(),
        Some(format!("{pem}\n").as_str())
    );
    assert_eq!(secure.endpoints, ["10.0.0.1:8443"]);
    // The policy names the https port only: port 8080 stays plaintext.
    assert_eq!(backend(&out, "default", "plain").tls, None);

    let st = status(&out, "BackendTLSPolicy", "orders-tls");
    assert_eq!(condition(st, "Accepted"), (true, "Accepted".into()));
    assert_eq!(condition(st, "ResolvedRefs"), (true, "ResolvedRefs".into()));
    assert_eq!(st.generation, 2);
    // A Route on a gateway without a Gateway object is the policy's ancestor itself.
    let ancestors: Vec<_> = st
        .ancestors
        .iter()
        .map(|a| format!("{}/{} {}/{}", a.group, a.kind, a.namespace, a.name))
        .collect();
    assert_eq!(ancestors, ["frontdesk.dev/Route shop/secure"]);
}

#[test]
fn the_ancestor_is_the_gateway_a_route_attached_to() {
    let gateway = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: public, namespace: shop}\nspec:\n  gatewayClassName: frontdesk\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n";
    let route = "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: edge, namespace: shop}\nspec:\n  gateways: [public]\n  hosts: [edge.example]\n  rules:\n    - backends: [{service: orders, port: 443}]\n";
    let tls = system_policy(
        "orders-tls",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}]",
        "orders.internal",
    );
    let out = compiled(&[SERVICE, gateway, route, &tls]);
    let edge = backend(&out, "public", "edge").tls.as_ref().unwrap();
    // The proxies' own trust: no bundle inlined.
    assert_eq!(
        (edge.server_name.as_str(), edge.ca_certificates.as_deref()),
        ("orders.internal", None)
    );
    let st = status(&out, "BackendTLSPolicy", "orders-tls");
    let ancestors: Vec<_> = st
        .ancestors
        .iter()
        .map(|a| format!("{}/{} {}/{}", a.group, a.kind, a.namespace, a.name))
        .collect();
    // The whole Service: both Routes of the default group, and the Gateway.
    assert_eq!(
        ancestors,
        [
            "frontdesk.dev/Route shop/plain",
            "frontdesk.dev/Route shop/secure",
            "gateway.networking.k8s.io/Gateway shop/public",
        ]
    );
}

#[test]
fn a_backend_reference_with_its_own_tls_is_not_overridden() {
    let own = "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: own, namespace: shop}\nspec:\n  hosts: [own.example]\n  rules:\n    - backends: [{service: orders, port: 443, tls: {hostname: own.internal}}]\n";
    let tls = system_policy(
        "orders-tls",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}]",
        "orders.internal",
    );
    let out = compiled(&[SERVICE, own, &tls]);
    let got = backend(&out, "default", "own").tls.as_ref().unwrap();
    assert_eq!(got.server_name, "own.internal");
    let st = status(&out, "BackendTLSPolicy", "orders-tls");
    assert!(
        st.ancestors.iter().all(|a| a.name != "own"),
        "{:?}",
        st.ancestors
    );
}

#[test]
fn of_two_policies_for_one_target_the_older_wins_and_the_other_is_conflicted() {
    let older = system_policy(
        "older",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}]",
        "older.internal",
    );
    let younger = system_policy(
        "a-younger",
        "2026-02-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}]",
        "younger.internal",
    );
    let out = compiled(&[SERVICE, &younger, &older]);
    let got = backend(&out, "default", "secure").tls.as_ref().unwrap();
    assert_eq!(got.server_name, "older.internal");
    let st = status(&out, "BackendTLSPolicy", "a-younger");
    assert_eq!(condition(st, "Accepted"), (false, "Conflicted".into()));
    assert!(
        st.conditions[0]
            .message
            .contains("older BackendTLSPolicy shop/older"),
        "{:?}",
        st.conditions
    );
    // The loser's status reaches where its Service is used, so the conflict is seen.
    assert_eq!(st.ancestors.len(), 2, "{:?}", st.ancestors);
}

#[test]
fn a_policy_keeps_the_targets_no_older_policy_holds() {
    let billing = "apiVersion: v1\nkind: Service\nmetadata: {name: billing, namespace: shop}\nspec: {ports: [{name: https, port: 443}]}\n---\napiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: pay, namespace: shop}\nspec:\n  hosts: [pay.example]\n  rules:\n    - backends: [{service: billing, port: 443}]\n";
    let older = system_policy(
        "older",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}]",
        "older.internal",
    );
    let younger = system_policy(
        "younger",
        "2026-02-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}, {group: '', kind: Service, name: billing}]",
        "younger.internal",
    );
    let out = compiled(&[SERVICE, billing, &older, &younger]);
    let orders = backend(&out, "default", "secure").tls.as_ref().unwrap();
    assert_eq!(orders.server_name, "older.internal");
    // Billing is not left in plaintext by the conflict over orders.
    let billing = backend(&out, "default", "pay").tls.as_ref().unwrap();
    assert_eq!(billing.server_name, "younger.internal");
    let st = status(&out, "BackendTLSPolicy", "younger");
    assert_eq!(condition(st, "Accepted"), (false, "Conflicted".into()));
    assert!(
        st.conditions[0]
            .message
            .contains("it applies to its other targets"),
        "{:?}",
        st.conditions
    );
}

#[test]
fn a_port_policy_wins_over_a_service_policy_and_an_ip_is_no_hostname() {
    let whole = system_policy(
        "whole",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}]",
        "whole.internal",
    );
    let port = system_policy(
        "port",
        "2026-02-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders, sectionName: https}]",
        "port.internal",
    );
    let out = compiled(&[SERVICE, &whole, &port]);
    let https = backend(&out, "default", "secure").tls.as_ref().unwrap();
    assert_eq!(https.server_name, "port.internal");
    let http = backend(&out, "default", "plain").tls.as_ref().unwrap();
    assert_eq!(http.server_name, "whole.internal");

    let ip = system_policy(
        "ip",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}]",
        "10.0.0.9",
    );
    let st = status(&compiled(&[SERVICE, &ip]), "BackendTLSPolicy", "ip").clone();
    assert_eq!(condition(&st, "Accepted"), (false, "Invalid".into()));
}

#[test]
fn a_policy_that_cannot_be_applied_leaves_its_backends_without_endpoints_never_plaintext() {
    let missing = policy(
        "orders-tls",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}]",
        "{hostname: orders.internal, caCertificateRefs: [{group: '', kind: ConfigMap, name: gone}]}",
    );
    let out = compiled(&[SERVICE, &missing]);
    let secure = backend(&out, "default", "secure");
    assert!(secure.endpoints.is_empty(), "{secure:?}");
    assert_eq!(secure.tls, None);
    let route = status(&out, "Route", "secure");
    assert!(condition(route, "Accepted").0);
    assert!(!condition(route, "ResolvedRefs").0);
    assert!(
        route.diagnostics[0]
            .message
            .contains("BackendTLSPolicy shop/orders-tls cannot be applied"),
        "{:?}",
        route.diagnostics
    );
    let st = status(&out, "BackendTLSPolicy", "orders-tls");
    assert_eq!(
        condition(st, "Accepted"),
        (false, "NoValidCACertificate".into())
    );
    assert_eq!(
        condition(st, "ResolvedRefs"),
        (false, "InvalidCACertificateRef".into())
    );
    assert!(
        st.conditions[1]
            .message
            .contains("ConfigMap shop/gone not found"),
        "{:?}",
        st.conditions
    );

    let wrong_kind = policy(
        "orders-tls",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}]",
        "{hostname: orders.internal, caCertificateRefs: [{group: example.com, kind: Bundle, name: b}]}",
    );
    let st = status(
        &compiled(&[SERVICE, &wrong_kind]),
        "BackendTLSPolicy",
        "orders-tls",
    )
    .clone();
    assert_eq!(
        condition(&st, "ResolvedRefs"),
        (false, "InvalidKind".into())
    );
    assert_eq!(
        condition(&st, "Accepted"),
        (false, "NoValidCACertificate".into())
    );

    let sans = policy(
        "orders-tls",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: orders}]",
        "{hostname: orders.internal, wellKnownCACertificates: System, subjectAltNames: [{type: Hostname, hostname: orders.example}]}",
    );
    let out = compiled(&[SERVICE, &sans]);
    assert!(backend(&out, "default", "secure").endpoints.is_empty());
    let st = status(&out, "BackendTLSPolicy", "orders-tls");
    assert_eq!(condition(st, "Accepted"), (false, "Invalid".into()));
    assert!(
        st.conditions[0].message.contains("subjectAltNames"),
        "{:?}",
        st.conditions
    );
}

#[test]
fn a_policy_whose_services_do_not_exist_says_so() {
    let nowhere = system_policy(
        "nowhere",
        "2026-01-01T00:00:00Z",
        "[{group: '', kind: Service, name: missing}, {group: example.com, kind: Pool, name: p}]",
        "orders.internal",
    );
    let out = compiled(&[SERVICE, &nowhere]);
    let st = status(&out, "BackendTLSPolicy", "nowhere");
    assert_eq!(condition(st, "Accepted"), (false, "TargetNotFound".into()));
    assert_eq!(backend(&out, "default", "secure").tls, None);
}
