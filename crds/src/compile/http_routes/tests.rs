use std::time::Duration;

use frontdesk_snapshot as snap;

use super::*;
use crate::gateway_api::GRPCRoute;
use crate::gateway_api::HTTPRoute;

/// Services `shop/api:80` (two endpoints) and `other/api:80`; `shop/h2:9000` says h2c.
struct Services;

impl ResolveService for Services {
    fn resolve(&self, namespace: &str, service: &str, port: u16) -> Result<Vec<String>, String> {
        match (namespace, service, port) {
            ("shop", "api", 80) => Ok(vec!["10.0.0.1:8080".into(), "10.0.0.2:8080".into()]),
            ("other", "api", 80) => Ok(vec!["10.1.0.1:8080".into()]),
            ("shop", "h2", 9000) => Ok(vec!["10.0.0.3:9000".into()]),
            _ => Err(format!("Service {namespace}/{service} not found")),
        }
    }

    fn app_protocol(&self, _namespace: &str, service: &str, _port: u16) -> Option<&str> {
        (service == "h2").then_some("kubernetes.io/h2c")
    }
}

fn http(spec: &str) -> LoweredRoute {
    http_with(spec, &[])
}

fn http_with(spec: &str, grants: &[ReferenceGrant]) -> LoweredRoute {
    let route: HTTPRoute = serde_saphyr::from_str(&format!(
        "metadata: {{name: r, namespace: shop}}\nspec: {spec}\n"
    ))
    .unwrap();
    let ctx = Context {
        services: &Services,
        grants,
    };
    lower_http_route("shop", "r", &route.spec, &ctx)
}

fn problems(d: &Diagnostics) -> Vec<String> {
    d.0.iter().map(ToString::to_string).collect()
}

fn backends(l: &LoweredRoute, rule: usize) -> &[snap::Backend] {
    match &l.lowered.rules[rule].action {
        snap::Action::Forward { backends } => backends,
        other => panic!("not a forward: {other:?}"),
    }
}

#[test]
fn durations_are_the_gateway_apis() {
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(
        parse_duration("1h2m3s4ms"),
        Ok(Duration::from_millis(3_723_004))
    );
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    for bad in [
        "",
        "10",
        "1.5s",
        "1d",
        "123456s",
        "1s1s1s1s1s",
        "-1s",
        "1 s",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn matches_and_filters_become_a_frontdesk_rule() {
    let l = http(
        "{hostnames: [Shop.Example.com], rules: [{\
           matches: [{path: {type: Exact, value: /cart}, method: GET, \
                      headers: [{name: x-v, value: '2'}, {type: RegularExpression, name: x-r, value: 'a.*'}], \
                      queryParams: [{name: q, value: x}]}, {}], \
           filters: [\
             {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: '1'}], add: [{name: x-b, value: '2'}], remove: [x-c]}}, \
             {type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-d, value: '3'}]}}, \
             {type: URLRewrite, urlRewrite: {hostname: internal.example.com, path: {type: ReplaceFullPath, replaceFullPath: /v2/cart}}}, \
             {type: ExtensionRef, extensionRef: {group: frontdesk.dev, kind: Policy, name: jwt}}], \
           backendRefs: [{name: api, port: 80}], \
           timeouts: {request: 2s}}]}",
    );
    assert!(
        l.lowered.invalid.is_empty(),
        "{:?}",
        problems(&l.lowered.invalid)
    );
    assert!(l.unsupported.is_empty(), "{:?}", problems(&l.unsupported));
    assert_eq!(l.lowered.hosts, ["shop.example.com"]);
    assert_eq!(l.policy_lists, [vec!["jwt".to_string()]]);
    let rule = &l.lowered.rules[0];
    assert_eq!(rule.id, "shop/r/rule-0");
    assert_eq!(rule.timeout_ms, 2000);
    let m = &rule.matches[0];
    assert_eq!(
        m.path,
        snap::PathMatch::Exact {
            value: "/cart".into()
        }
    );
    assert_eq!(m.methods, ["GET"]);
    assert_eq!((m.headers.len(), m.query.len()), (2, 1));
    // No match: PathPrefix `/`.
    assert_eq!(
        rule.matches[1].path,
        snap::PathMatch::Prefix {
            value: String::new()
        }
    );
    assert!(!rule.request_headers.is_empty() && !rule.response_headers.is_empty());
    let rewrite = rule.rewrite.as_ref().unwrap();
    assert_eq!(rewrite.host.as_deref(), Some("internal.example.com"));
    assert_eq!(backends(&l, 0)[0].endpoints.len(), 2);
}

#[test]
fn redirects_take_the_place_of_backends() {
    let l = http(
        "{rules: [{matches: [{path: {value: /old}}], filters: [{type: RequestRedirect, requestRedirect: \
           {scheme: https, port: 8443, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}], \
           backendRefs: [{name: api, port: 80}]}]}",
    );
    assert!(
        l.lowered.invalid.is_empty(),
        "{:?}",
        problems(&l.lowered.invalid)
    );
    let snap::Action::Redirect(r) = &l.lowered.rules[0].action else {
        panic!("not a redirect");
    };
    assert_eq!(
        (r.scheme.as_deref(), r.port, r.status),
        (Some("https"), Some(8443), 301)
    );
    assert_eq!(
        r.path,
        Some(snap::PathRewrite::Prefix {
            value: "/new".into()
        })
    );
}

#[test]
fn invalid_references_keep_their_share_and_answer_500() {
    let l = http(
        "{rules: [{backendRefs: [\
           {name: api, port: 80, weight: 3}, \
           {name: missing, port: 80}, \
           {name: api, namespace: other, port: 80}, \
           {group: example.org, kind: Bucket, name: b}, \
           {name: h2, port: 9000, weight: 0}]}]}",
    );
    assert!(
        l.lowered.invalid.is_empty(),
        "{:?}",
        problems(&l.lowered.invalid)
    );
    let b = backends(&l, 0);
    let invalid: Vec<(bool, u32)> = b.iter().map(|b| (b.invalid, b.weight)).collect();
    assert_eq!(
        invalid,
        [(false, 3), (true, 1), (true, 1), (true, 1), (false, 0)]
    );
    assert_eq!(b[4].protocol, snap::BackendProtocol::H2c);
    assert_eq!(l.ref_reason, Some("BackendNotFound"));
    let why = problems(&l.lowered.unresolved);
    assert!(why[1].contains("no ReferenceGrant"), "{why:?}");
    assert!(why[2].contains("example.org/Bucket"), "{why:?}");

    // A grant in the Service's namespace lets the reference through.
    let grant: ReferenceGrant = serde_saphyr::from_str(
        "metadata: {name: g, namespace: other}\n\
         spec: {from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}], \
                to: [{group: '', kind: Service}]}\n",
    )
    .unwrap();
    let l = http_with(
        "{rules: [{backendRefs: [{name: api, namespace: other, port: 80}]}]}",
        &[grant],
    );
    assert_eq!(backends(&l, 0)[0].endpoints, ["10.1.0.1:8080"]);
    assert_eq!(l.ref_reason, None);
}

#[test]
fn a_rule_without_backends_or_weight_answers_500() {
    for spec in [
        "{rules: [{matches: [{path: {value: /x}}]}]}",
        "{rules: [{backendRefs: [{name: api, port: 80, weight: 0}]}]}",
        "{}",
    ] {
        let l = http(spec);
        assert!(
            l.lowered.invalid.is_empty(),
            "{spec}: {:?}",
            problems(&l.lowered.invalid)
        );
        let b = backends(&l, 0);
        assert!(
            b.len() == 1 && b[0].invalid && b[0].weight == 1,
            "{spec}: {b:?}"
        );
    }
}

#[test]
fn timeouts_and_retries() {
    let l = http(
        "{rules: [{backendRefs: [{name: api, port: 80}], timeouts: {request: 10s, backendRequest: 2s}}]}",
    );
    assert_eq!(
        l.lowered.rules[0].timeout_ms, 2000,
        "no retry: the shorter bound"
    );
    let l = http(
        "{rules: [{backendRefs: [{name: api, port: 80}], timeouts: {request: 10s, backendRequest: 2s}, \
           retry: {attempts: 2, codes: [502, 503], backoff: 50ms}}]}",
    );
    let rule = &l.lowered.rules[0];
    let retries = rule.retries.as_ref().unwrap();
    assert_eq!(
        (rule.timeout_ms, retries.per_try_timeout_ms),
        (10_000, Some(2000))
    );
    assert_eq!((retries.attempts, retries.backoff_ms), (2, 50));
    assert!(retries.on.contains(&snap::RetryOn::Status(502)));
    assert!(retries.on.contains(&snap::RetryOn::ConnectFailure));
    let l = http("{rules: [{backendRefs: [{name: api, port: 80}], timeouts: {request: 0s}}]}");
    assert_eq!(
        l.lowered.rules[0].timeout_ms, 3_600_000,
        "0s turns the bound off"
    );
    let l = http(
        "{rules: [{backendRefs: [{name: api, port: 80}], timeouts: {request: 1s, backendRequest: 2s}}]}",
    );
    assert_eq!(
        problems(&l.lowered.invalid),
        ["spec.rules[0].timeouts.backendRequest: must not be longer than timeouts.request"]
    );
}

#[test]
fn what_frontdesk_does_not_implement_is_unsupported_not_ignored() {
    let l = http(
        "{rules: [{filters: [\
            {type: ExtensionRef, extensionRef: {group: example.org, kind: Magic, name: m}}, \
            {type: Teleport}], \
          backendRefs: [{name: api, port: 80, filters: [{type: RequestHeaderModifier}]}], \
          sessionPersistence: {type: Cookie}}]}",
    );
    let got = problems(&l.unsupported);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        got[0].starts_with("spec.rules[0].filters[0].extensionRef"),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("spec.rules[0].backendRefs[0].filters"))
    );
    // Two of one filter, or a redirect with a rewrite, are invalid.
    let l = http(
        "{rules: [{filters: [\
            {type: RequestRedirect, requestRedirect: {scheme: https}}, \
            {type: URLRewrite, urlRewrite: {hostname: a.example.com}}, \
            {type: URLRewrite, urlRewrite: {hostname: b.example.com}}]}]}",
    );
    assert_eq!(
        problems(&l.lowered.invalid).len(),
        2,
        "{:?}",
        problems(&l.lowered.invalid)
    );
}

fn grpc(spec: &str) -> LoweredRoute {
    let route: GRPCRoute = serde_saphyr::from_str(&format!(
        "metadata: {{name: g, namespace: shop}}\nspec: {spec}\n"
    ))
    .unwrap();
    let ctx = Context {
        services: &Services,
        grants: &[],
    };
    grpc::lower_grpc_route("shop", "g", &route.spec, &ctx)
}

#[test]
fn grpc_methods_become_paths_and_backends_speak_h2c() {
    let l = grpc(
        "{rules: [{matches: [\
            {method: {service: demo.Catalog, method: Get}}, \
            {method: {service: demo.Catalog}}, \
            {method: {method: Get}}, \
            {method: {type: RegularExpression, service: 'demo\\..*', method: 'Get|List'}, headers: [{name: x-t, value: a}]}, \
            {}], \
          backendRefs: [{name: api, port: 80}]}]}",
    );
    assert!(
        l.lowered.invalid.is_empty(),
        "{:?}",
        problems(&l.lowered.invalid)
    );
    assert!(l.unsupported.is_empty(), "{:?}", problems(&l.unsupported));
    let paths: Vec<&snap::PathMatch> = l.lowered.rules[0].matches.iter().map(|m| &m.path).collect();
    assert_eq!(
        paths,
        [
            &snap::PathMatch::Exact {
                value: "/demo.Catalog/Get".into()
            },
            &snap::PathMatch::Prefix {
                value: "/demo.Catalog".into()
            },
            &snap::PathMatch::RegularExpression {
                value: "/(?:[^/]+)/(?:Get)".into()
            },
            &snap::PathMatch::RegularExpression {
                value: "/(?:demo\\..*)/(?:Get|List)".into()
            },
            &snap::PathMatch::Prefix {
                value: String::new()
            },
        ]
    );
    assert_eq!(l.lowered.rules[0].matches[3].headers.len(), 1);
    assert_eq!(backends(&l, 0)[0].protocol, snap::BackendProtocol::H2c);
    let l = grpc(
        "{rules: [{filters: [{type: URLRewrite, urlRewrite: {hostname: x}}], backendRefs: [{name: api, port: 80}]}]}",
    );
    assert_eq!(
        problems(&l.unsupported),
        ["spec.rules[0].filters[0].type: a GRPCRoute has no URLRewrite filter"]
    );
    let l = grpc(
        "{rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: api, port: 80}}}], backendRefs: [{name: api, port: 80}]}]}",
    );
    assert_eq!(
        problems(&l.unsupported),
        [
            "spec.rules[0].filters[0].type: a GRPCRoute's RequestMirror is not implemented: gRPC calls carry a body, which is not mirrored"
        ]
    );
}

/// An ExtensionRef names a Policy of the route's own namespace: `namespace/name` would borrow
/// another namespace's credentials and counters.
#[test]
fn an_extension_ref_cannot_reach_another_namespaces_policy() {
    let l = http(
        "{rules: [{filters: [{type: ExtensionRef, extensionRef: {group: frontdesk.dev, kind: Policy, name: victim/jwt}}], \
          backendRefs: [{name: api, port: 80}]}]}",
    );
    assert_eq!(
        problems(&l.lowered.invalid),
        ["spec.rules[0].filters[0].extensionRef.name: \"victim/jwt\" is not a valid object name"]
    );
    assert_eq!(l.policy_lists, [Vec::<String>::new()]);
}

/// The experimental CORS filter becomes the rule's own, last Policy: its CORS section.
#[test]
fn a_cors_filter_is_the_rules_own_cors_policy() {
    let l = http(
        "{rules: [{name: api, filters: [{type: CORS, cors: {allowOrigins: ['https://shop.example.com', 'https://*.example.org'], \
            allowMethods: ['*'], allowHeaders: [x-token], exposeHeaders: [x-trace], maxAge: 600}}], \
          backendRefs: [{name: api, port: 80}]}]}",
    );
    assert!(l.unsupported.is_empty(), "{:?}", problems(&l.unsupported));
    assert!(
        l.lowered.invalid.is_empty(),
        "{:?}",
        problems(&l.lowered.invalid)
    );
    assert_eq!(l.policy_lists, [vec!["HTTPRoute:r:api:cors".to_string()]]);
    let (name, policy) = &l.own_policies[0];
    assert_eq!(name, "HTTPRoute:r:api:cors");
    let cors = policy.cors.as_ref().unwrap();
    assert_eq!(cors.origins, ["https://shop.example.com"]);
    assert_eq!(cors.origin_suffixes.len(), 1);
    assert!(cors.methods.contains(&"PATCH".to_string()));
    assert_eq!(cors.max_age_seconds, Some(600));
    // Credentials with `*` are refused, naming the field.
    let l = http(
        "{rules: [{filters: [{type: CORS, cors: {allowOrigins: ['*'], allowCredentials: true}}], \
          backendRefs: [{name: api, port: 80}]}]}",
    );
    let got = problems(&l.lowered.invalid);
    assert!(
        got[0].starts_with("spec.rules[0].filters[0].cors.allowOrigins[0]"),
        "{got:?}"
    );
}

/// RequestMirror copies a share of the rule's requests to another backend; a reference that
/// does not resolve sends no copy and says so.
#[test]
fn mirrors_copy_a_share_of_the_requests() {
    let l = http(
        "{rules: [{filters: [\
            {type: RequestMirror, requestMirror: {backendRef: {name: api, port: 80}}}, \
            {type: RequestMirror, requestMirror: {backendRef: {name: h2, port: 9000}, percent: 25}}, \
            {type: RequestMirror, requestMirror: {backendRef: {name: api, port: 80}, fraction: {numerator: 1, denominator: 3}}}, \
            {type: RequestMirror, requestMirror: {backendRef: {name: gone, port: 80}}}], \
          backendRefs: [{name: api, port: 80}]}]}",
    );
    assert!(l.unsupported.is_empty(), "{:?}", problems(&l.unsupported));
    assert!(
        l.lowered.invalid.is_empty(),
        "{:?}",
        problems(&l.lowered.invalid)
    );
    let mirrors = &l.lowered.rules[0].mirrors;
    let shares: Vec<u32> = mirrors.iter().map(|m| m.share_ppm).collect();
    assert_eq!(shares, [1_000_000, 250_000, 333_333]);
    assert_eq!(mirrors[1].backend.protocol, snap::BackendProtocol::H2c);
    assert_eq!(l.ref_reason, Some("BackendNotFound"));
    assert_eq!(
        problems(&l.lowered.unresolved),
        ["spec.rules[0].filters[3].requestMirror.backendRef: Service shop/gone not found"]
    );
    let l = http(
        "{rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: api, port: 80}, percent: 5, fraction: {numerator: 1}}}], \
          backendRefs: [{name: api, port: 80}]}]}",
    );
    assert_eq!(problems(&l.lowered.invalid).len(), 1);
    // A fraction above 1 is refused, not read as every request.
    let l = http(
        "{rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: api, port: 80}, fraction: {numerator: 3, denominator: 2}}}], \
          backendRefs: [{name: api, port: 80}]}]}",
    );
    assert_eq!(
        problems(&l.lowered.invalid),
        [
            "spec.rules[0].filters[0].requestMirror: give percent (0-100) or a fraction (numerator over a positive denominator, at most 1), not both"
        ]
    );
}
