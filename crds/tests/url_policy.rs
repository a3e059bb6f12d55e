//! In a cluster, manifests cannot send the proxy to loopback, link-local (cloud metadata) or
//! API server addresses, nor, with an allow-list, anywhere else; standalone they can.
use frontdesk_crds::compile::urls::UrlPolicy;
use frontdesk_crds::manifests::{parse_file, resources};

const MANIFESTS: &str = r#"
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: metadata, namespace: shop}
spec:
  rules:
    - backends: [{url: "http://169.254.169.254:80"}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: api-server, namespace: shop}
spec:
  rules:
    - backends: [{url: "http://kubernetes.default.svc:443"}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: fine, namespace: shop}
spec:
  rules:
    - backends: [{url: "http://orders.shop.svc.cluster.local:8080"}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Aggregate
metadata: {name: loopback-call, namespace: shop}
spec:
  path: /agg/{id}
  calls:
    - {name: a, backend: {url: "http://127.0.0.1:9901"}, path: "/config"}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: jwks-on-loopback, namespace: shop}
spec:
  authentication:
    jwt: {jwksUri: "http://127.0.0.1:9901/keys", allowPlaintextJwksUri: true}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: external-metadata, namespace: shop}
spec:
  authentication:
    external: {url: "http://[fe80::1]:80/check"}
"#;

fn accepted(policy: UrlPolicy) -> Vec<(String, bool)> {
    let parsed = parse_file("m.yaml", MANIFESTS);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut r = resources(parsed.objects.iter().map(|(o, _)| o));
    r.urls = policy;
    frontdesk_crds::compile(&r)
        .statuses
        .into_iter()
        .map(|s| (s.name.clone(), s.accepted()))
        .collect()
}

#[test]
fn internal_urls_are_refused_in_a_cluster_and_allowed_standalone() {
    let cluster = UrlPolicy {
        refuse_internal: true,
        api_server_hosts: vec![],
        allow: vec![],
    };
    let mut got = accepted(cluster);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("api-server".to_string(), false),
            ("external-metadata".to_string(), false),
            ("fine".to_string(), true),
            ("jwks-on-loopback".to_string(), false),
            ("loopback-call".to_string(), false),
            ("metadata".to_string(), false),
        ]
    );
    assert!(accepted(UrlPolicy::default()).iter().all(|(_, ok)| *ok));

    // With an allow-list, only what it names.
    let listed = UrlPolicy {
        allow: vec!["*.example.com".parse().unwrap()],
        ..UrlPolicy::default()
    };
    let got = accepted(listed);
    assert!(got.contains(&("fine".to_string(), false)), "{got:?}");
}

#[test]
fn a_plaintext_jwks_uri_is_refused_unless_allowed_and_then_warned_about() {
    let policy = |extra: &str| {
        format!(
            "apiVersion: frontdesk.dev/v1alpha1\nkind: Policy\nmetadata: {{name: keys, namespace: shop}}\n\
             spec:\n  authentication:\n    jwt: {{jwksUri: 'http://auth.example.com/jwks'{extra}}}\n"
        )
    };
    let status = |yaml: &str| {
        let parsed = parse_file("m.yaml", yaml);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let r = resources(parsed.objects.iter().map(|(o, _)| o));
        frontdesk_crds::compile(&r).statuses.remove(0)
    };
    let refused = status(&policy(""));
    assert!(!refused.accepted());
    let message = &refused.condition("Accepted").unwrap().message;
    assert!(
        message.contains("spec.authentication.jwt.jwksUri: plaintext http://"),
        "{message}"
    );
    let allowed = status(&policy(", allowPlaintextJwksUri: true"));
    assert!(allowed.accepted());
    let message = &allowed.condition("Accepted").unwrap().message;
    assert!(
        message.contains("warning: spec.authentication.jwt.jwksUri is plaintext"),
        "{message}"
    );
    // https:// needs nothing.
    let tls = status(&policy("").replace("http://", "https://"));
    assert_eq!(
        tls.condition("Accepted").unwrap().message,
        "the Policy is valid"
    );
}
