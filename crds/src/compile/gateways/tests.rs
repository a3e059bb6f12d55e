//! What a user of Gateways notices: which listeners a gateway serves and what their status
//! says. The full outputs are pinned by the golden cases `testdata/compile/gateways-*`.

use super::*;
use crate::catalog::Catalog;
use crate::certificate::testing;
use crate::compile::compile;
use crate::manifests::{parse_file, resources};

const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
                     metadata: {name: frontdesk}\nspec: {controllerName: frontdesk.dev/gateway-controller}\n---\n";

/// A PEM as a YAML double-quoted string's content.
fn quoted(pem: &str) -> String {
    pem.replace('\n', "\\n")
}

fn secret(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         type: kubernetes.io/tls\nstringData: {{tls.crt: \"{}\", tls.key: \"{}\"}}\n---\n",
        quoted(testing::CERT),
        quoted(testing::KEY)
    )
}

/// Gateway `edge/public` with one HTTPS listener naming Secret `certs/shared`.
fn cross_namespace_gateway() -> String {
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
     metadata: {name: public, namespace: edge}\n\
     spec:\n  gatewayClassName: frontdesk\n  listeners:\n    \
     - name: https\n      port: 443\n      protocol: HTTPS\n      \
     tls: {certificateRefs: [{name: shared, namespace: certs}]}\n---\n"
        .to_string()
}

fn grant(from_namespace: &str, to_name: Option<&str>) -> String {
    let name = to_name.map_or(String::new(), |n| format!(", name: {n}"));
    format!(
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n\
         metadata: {{name: g, namespace: certs}}\n\
         spec:\n  from: [{{group: gateway.networking.k8s.io, kind: Gateway, namespace: {from_namespace}}}]\n  \
         to: [{{group: \"\", kind: Secret{name}}}]\n---\n"
    )
}

fn compiled(yaml: &str) -> crate::compile::Output {
    let parsed = parse_file("g.yaml", yaml);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    compile(&resources(parsed.objects.iter().map(|(o, _)| o)))
}

fn listener_reason(out: &crate::compile::Output, type_: &str) -> (bool, String) {
    let st = out
        .status("Gateway", "edge", "public")
        .expect("a Gateway status");
    let c = st.listeners[0].condition(type_).unwrap();
    (c.status, c.reason.clone())
}

#[test]
fn another_namespaces_secret_needs_a_reference_grant_from_the_gateways_namespace() {
    let base = format!(
        "{CLASS}{}{}",
        cross_namespace_gateway(),
        secret("certs", "shared")
    );

    let refused = compiled(&base);
    assert_eq!(
        listener_reason(&refused, RESOLVED_REFS),
        (false, "RefNotPermitted".into())
    );
    // Sent without certificates: a proxy keeps what the port has, never plain HTTP.
    let listeners = refused.snapshot("public").listeners;
    assert_eq!(listeners.len(), 1);
    assert!(listeners[0].certificates.is_empty());
    assert!(
        refused.snapshot("public").listeners_declared,
        "no fallback to plain HTTP"
    );

    // A grant for Gateways of another namespace, or for another Secret, does not help.
    for other in [grant("web", None), grant("edge", Some("other"))] {
        let out = compiled(&format!("{base}{other}"));
        assert_eq!(listener_reason(&out, RESOLVED_REFS).1, "RefNotPermitted");
    }

    for allowing in [grant("edge", None), grant("edge", Some("shared"))] {
        let allowed = compiled(&format!("{base}{allowing}"));
        assert_eq!(
            listener_reason(&allowed, RESOLVED_REFS),
            (true, "ResolvedRefs".into())
        );
        let listeners = allowed.snapshot("public").listeners;
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].name, "edge/public/https");
        assert_eq!(listeners[0].certificates[0].source, "certs/shared");
        assert!(
            listeners[0].certificates[0]
                .key
                .expose()
                .contains("PRIVATE KEY")
        );
    }
}

#[test]
fn a_gateway_of_another_controllers_class_is_left_alone() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
                metadata: {name: other}\nspec: {controllerName: example.com/gateway}\n---\n\
                apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
                metadata: {name: public, namespace: edge}\n\
                spec:\n  gatewayClassName: other\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n";
    let out = compiled(yaml);
    assert!(out.statuses.is_empty(), "{:?}", out.statuses);
    assert!(out.snapshots.is_empty());
}

#[test]
fn a_gateway_without_its_class_is_served_from_files_but_not_from_a_cluster() {
    let gateway = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
                   metadata: {name: public}\n\
                   spec:\n  gatewayClassName: frontdesk\n  listeners: [{name: http, port: 8080, protocol: HTTP}]\n";
    // In a cluster the class may be another controller's, not created yet.
    assert!(compiled(gateway).snapshots.is_empty());

    let update = Catalog::default().update(&[("g.yaml".into(), Ok(gateway.into()))]);
    assert!(update.problems.is_empty(), "{:?}", update.problems);
    let listeners = update.output.snapshot("public").listeners;
    assert_eq!(listeners.len(), 1);
    assert_eq!(
        (listeners[0].name.as_str(), listeners[0].port),
        ("default/public/http", 8080)
    );
}

#[test]
fn a_rotated_certificate_is_a_new_snapshot() {
    let yaml = |cert: &str| {
        format!(
            "{CLASS}apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
             metadata: {{name: public, namespace: edge}}\n\
             spec:\n  gatewayClassName: frontdesk\n  listeners:\n    \
             - {{name: https, port: 443, protocol: HTTPS, tls: {{certificateRefs: [{{name: tls}}]}}}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {{name: tls, namespace: edge}}\n\
             type: kubernetes.io/tls\nstringData: {{tls.crt: \"{}\", tls.key: \"{}\"}}\n",
            quoted(cert),
            quoted(testing::KEY)
        )
    };
    let before = compiled(&yaml(testing::CERT)).snapshot("public");
    let after = compiled(&yaml(testing::ROTATED_CERT)).snapshot("public");
    assert_eq!(before.sources, after.sources, "no user object changed");
    assert!(
        !before.same_content(&after),
        "the new certificate must reach the proxies"
    );
}

#[test]
fn the_secrets_a_gateway_names_are_listed_for_whoever_fetches_them() {
    let parsed = parse_file(
        "g.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
         metadata: {name: public, namespace: edge}\n\
         spec:\n  gatewayClassName: frontdesk\n  listeners:\n    \
         - name: https\n      port: 443\n      protocol: HTTPS\n      \
         tls: {certificateRefs: [{name: a}, {name: b, namespace: certs}, {name: c, kind: ConfigMap}]}\n",
    );
    let crate::manifests::Object::Gateway(gateway) = &parsed.objects[0].0 else {
        panic!("a Gateway");
    };
    let refs: Vec<(String, String)> = certificate_secret_refs(gateway).into_iter().collect();
    assert_eq!(
        refs,
        [
            ("certs".to_string(), "b".to_string()),
            ("edge".to_string(), "a".to_string())
        ]
    );
}

#[test]
fn keys_and_chains_are_checked_for_their_pem_shape() {
    let block = |label: &str| format!("-----BEGIN {label}-----\nTUlJ\n-----END {label}-----\n");
    assert!(check_chain(&(block("CERTIFICATE") + &block("CERTIFICATE"))).is_ok());
    assert!(
        check_chain(&(block("CERTIFICATE") + &block("PRIVATE KEY")))
            .unwrap_err()
            .contains("tls.key")
    );
    assert!(
        check_chain("-----BEGIN CERTIFICATE-----\nTUlJ\n")
            .unwrap_err()
            .contains("no END")
    );
    assert!(
        check_chain("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n")
            .unwrap_err()
            .contains("not base64")
    );
    for ok in ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"] {
        assert!(check_key(&block(ok)).is_ok(), "{ok}");
    }
    assert!(
        check_key(&block("ENCRYPTED PRIVATE KEY"))
            .unwrap_err()
            .contains("encrypted")
    );
    assert!(check_key(&block("CERTIFICATE")).is_err());
}

#[test]
fn hostnames_are_lower_cased_and_must_be_dns_names() {
    assert_eq!(check_hostname("*.Example.COM").unwrap(), "*.example.com");
    assert_eq!(
        check_hostname("api.example.com").unwrap(),
        "api.example.com"
    );
    for bad in [
        "",
        "*",
        "*.",
        "a..b",
        "-a.example.com",
        "a.*.example.com",
        "h:443",
        "10.0.0.1",
    ] {
        assert!(check_hostname(bad).is_err(), "{bad:?}");
    }
}
