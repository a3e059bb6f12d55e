//! Route spec → snapshot rules: validation and translation in one walk.
//!
//! Every check names the field it concerns. Lowering never fails half-way: it records every
//! problem it finds so one `kubectl apply` shows all of them, and the caller rejects the object
//! when any was found.
//!
//! - [`backends`]: a rule's `backends` (Services, URLs, their TLS, weights).
//! - [`checks`]: the checks lowering shares with Aggregates and Policies.

use std::time::Duration;

use frontdesk_snapshot as snap;
use regex::RegexBuilder;

use crate::diagnostic::Diagnostics;
use crate::route::{
    BackendProtocol, BackendRef, DirectResponseAction, GrpcMatch, HeaderModifier, PathMatchType,
    RedirectAction, RouteMatch, RouteRule, RouteSpec, ValueMatch, ValueMatchType,
};
use crate::template;

mod backends;
mod checks;

pub(crate) use backends::lower_backends;
pub(crate) use checks::check_object_name;
use checks::check_regex;
pub(crate) use checks::{
    check_dns_label, check_header_value, check_path, check_token, is_hop_by_hop, normalize_host,
    parse_backend_url, parse_timeout,
};

/// The timeout for a rule that sets none, as Envoy's edge guidance suggests.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest timeout a rule may set.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Compiled regexes are bounded so a pathological pattern cannot eat the proxy's memory.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Bound on a directResponse body, which every proxy keeps in memory.
pub const MAX_DIRECT_BODY: usize = 64 * 1024;

/// Finds the endpoints of a Service port. `Err` says why the reference does not resolve.
pub trait ResolveService {
    fn resolve(&self, namespace: &str, service: &str, port: u16) -> Result<Vec<String>, String>;

    /// The Secret `namespace/name`, for a backend's TLS; none by default.
    fn secret(&self, _namespace: &str, _name: &str) -> Option<&k8s_openapi::api::core::v1::Secret> {
        None
    }

    /// The ConfigMap `namespace/name`, for a backend's TLS; none by default.
    fn config_map(
        &self,
        _namespace: &str,
        _name: &str,
    ) -> Option<&k8s_openapi::api::core::v1::ConfigMap> {
        None
    }

    /// The TLS a BackendTLSPolicy sets for port `port` of Service `namespace/service`:
    /// `Some(Err(why))` when the policy holding it cannot be applied; none by default.
    fn backend_tls_policy(
        &self,
        _namespace: &str,
        _service: &str,
        _port: u16,
    ) -> Option<Result<snap::BackendTls, String>> {
        None
    }

    /// Whether a `url` backend may name `host` ([`super::urls::UrlPolicy`]); any by default.
    fn check_url_host(&self, _host: &str) -> Result<(), String> {
        Ok(())
    }

    /// The compiler leaves `backend` (a [`super::backend_name`]) without the endpoints its
    /// Service has; noted by resolvers whose results the endpoint fast path reads.
    fn hold_back(&self, _backend: &str) {}

    /// The `appProtocol` of port `port` of Service `namespace/service`; none by default.
    fn app_protocol(&self, _namespace: &str, _service: &str, _port: u16) -> Option<&str> {
        None
    }
}

/// A resolver for validation alone: every Service exists and has no endpoints.
pub struct NoServices;

impl ResolveService for NoServices {
    fn resolve(&self, _: &str, _: &str, _: u16) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// The result of lowering one Route.
pub struct Lowered {
    pub gateways: Vec<String>,
    pub hosts: Vec<String>,
    /// Rules with `rank` 0 everywhere; ranks are assigned per gateway later.
    pub rules: Vec<snap::Rule>,
    /// Problems that make the Route invalid (Accepted=False).
    pub invalid: Diagnostics,
    /// References that did not resolve (ResolvedRefs=False); the Route still serves, and the
    /// affected backends answer 503.
    pub unresolved: Diagnostics,
}

impl Lowered {
    /// Starts the lowering of an object served by `gateways` (default `[default]`) for
    /// `hosts`: both checked, sorted and deduplicated. Routes and Aggregates share it.
    pub fn placed(gateways: &[String], hosts: &[String]) -> Self {
        let mut d = Diagnostics::default();
        for (i, g) in gateways.iter().enumerate() {
            // `name`, or `namespace/name` for a Gateway of another namespace.
            let (namespace, name) = g.split_once('/').unwrap_or(("", g));
            if !namespace.is_empty() {
                d.check(format!("spec.gateways[{i}]"), check_dns_label(namespace));
            }
            d.check(format!("spec.gateways[{i}]"), check_dns_label(name));
        }
        let mut gateways = if gateways.is_empty() {
            vec!["default".to_string()]
        } else {
            gateways.to_vec()
        };
        gateways.sort();
        gateways.dedup();
        let mut out_hosts: Vec<String> = hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| d.check(format!("spec.hosts[{i}]"), normalize_host(h, true)))
            .collect();
        out_hosts.sort();
        out_hosts.dedup();
        Lowered {
            gateways,
            hosts: out_hosts,
            rules: Vec::new(),
            invalid: d,
            unresolved: Diagnostics::default(),
        }
    }
}

pub fn lower_route(
    namespace: &str,
    name: &str,
    spec: &RouteSpec,
    services: &dyn ResolveService,
) -> Lowered {
    let mut out = Lowered::placed(&spec.gateways, &spec.hosts);
    let d = &mut out.invalid;
    for (i, p) in spec.policies.iter().enumerate() {
        d.check(format!("spec.policies[{i}]"), check_object_name(p));
    }
    if spec.rules.is_empty() {
        d.push("spec.rules", "a Route needs at least one rule");
    }
    let mut names: Vec<String> = Vec::new();
    for (ri, rule) in spec.rules.iter().enumerate() {
        let p = format!("spec.rules[{ri}]");
        let rule_name = rule.name.clone().unwrap_or_else(|| format!("rule-{ri}"));
        if rule.name.is_some() {
            d.check(format!("{p}.name"), check_dns_label(&rule_name));
        }
        if names.contains(&rule_name) {
            d.push(
                format!("{p}.name"),
                format!("rule name {rule_name:?} is used twice in this Route"),
            );
        }
        names.push(rule_name.clone());
        for (i, policy) in rule.policies.iter().enumerate() {
            d.check(format!("{p}.policies[{i}]"), check_object_name(policy));
        }
        let id = format!("{namespace}/{name}/{rule_name}");
        let rule = lower_rule(
            &p,
            id,
            namespace,
            rule,
            Backends::Listed,
            services,
            d,
            &mut out.unresolved,
        );
        if let Some(r) = rule {
            out.rules.push(r);
        }
    }
    out
}

/// Where a rule's backends come from.
pub(crate) enum Backends {
    /// Its own `backends` list (a Route).
    Listed,
    /// Lowered by the caller (Gateway API routes, whose references differ): the forward
    /// action, `None` when they were invalid (and said so).
    Lowered(Option<snap::Action>),
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn lower_rule(
    p: &str,
    id: String,
    namespace: &str,
    rule: &RouteRule,
    backends: Backends,
    services: &dyn ResolveService,
    d: &mut Diagnostics,
    unresolved: &mut Diagnostics,
) -> Option<snap::Rule> {
    let has_backends = !rule.backends.is_empty() || matches!(backends, Backends::Lowered(_));
    let default_match = [RouteMatch::default()];
    let matches: &[RouteMatch] = if rule.matches.is_empty() {
        &default_match
    } else {
        &rule.matches
    };
    let matches: Vec<snap::Match> = matches
        .iter()
        .enumerate()
        .filter_map(|(i, m)| lower_match(&format!("{p}.matches[{i}]"), m, d))
        .collect();

    let timeout = match &rule.timeout {
        None => Some(DEFAULT_TIMEOUT),
        Some(t) => d.check(format!("{p}.timeout"), parse_timeout(t)),
    };

    let request_headers = lower_header_ops(
        &format!("{p}.requestHeaders"),
        rule.request_headers.as_ref(),
        true,
        d,
    );
    let response_headers = lower_header_ops(
        &format!("{p}.responseHeaders"),
        rule.response_headers.as_ref(),
        false,
        d,
    );

    let rewrite = rule.rewrite.as_ref().map(|rw| snap::Rewrite {
        path: lower_path_rewrite(
            &format!("{p}.rewrite"),
            rw.path.as_deref(),
            rw.path_prefix.as_deref(),
            &matches,
            d,
        ),
        host: rw
            .host
            .as_ref()
            .and_then(|h| d.check(format!("{p}.rewrite.host"), normalize_host(h, false))),
    });

    let actions = usize::from(has_backends)
        + usize::from(rule.redirect.is_some())
        + usize::from(rule.direct_response.is_some());
    let action = if actions != 1 {
        d.push(
            p.to_string(),
            "set exactly one of backends, redirect and directResponse",
        );
        None
    } else if let Some(r) = &rule.redirect {
        lower_redirect(&format!("{p}.redirect"), r, &matches, d)
    } else if let Some(r) = &rule.direct_response {
        lower_direct_response(&format!("{p}.directResponse"), r, d)
    } else {
        match backends {
            Backends::Listed => lower_backends(
                &format!("{p}.backends"),
                namespace,
                &rule.backends,
                services,
                d,
                unresolved,
            ),
            Backends::Lowered(action) => action,
        }
    };

    let grpc_transcode = match &rule.grpc_transcode {
        None => Some(None),
        Some(_) if rule.backends.is_empty() => {
            d.push(
                format!("{p}.grpcTranscode"),
                "only a rule with backends (the gRPC servers) transcodes",
            );
            None
        }
        Some(_)
            if rule
                .backends
                .iter()
                .any(|b| matches!(b.protocol, None | Some(BackendProtocol::Http1))) =>
        {
            d.push(
                format!("{p}.grpcTranscode"),
                "gRPC servers speak HTTP/2: give each backend protocol h2c (plaintext), h2 (TLS) or auto (TLS)",
            );
            None
        }
        Some(t) => super::transcode::lower_transcode(
            &format!("{p}.grpcTranscode"),
            namespace,
            t,
            services,
            d,
            unresolved,
        )
        .ok(),
    };
    // Descriptors not found yet: no endpoint (503), never the requests untranslated.
    let action = match (&grpc_transcode, action) {
        (Some(None), Some(snap::Action::Forward { mut backends }))
            if rule.grpc_transcode.is_some() =>
        {
            for b in &mut backends {
                b.endpoints.clear();
                services.hold_back(&b.name);
            }
            Some(snap::Action::Forward { backends })
        }
        (_, action) => action,
    };
    // `auto` speaks HTTP/1.1 to a backend without TLS: no gRPC server there.
    let grpc_transcode = match (&grpc_transcode, &action) {
        (Some(Some(_)), Some(snap::Action::Forward { backends }))
            if backends
                .iter()
                .any(|b| b.protocol == snap::BackendProtocol::Auto && b.tls.is_none()) =>
        {
            d.push(
                format!("{p}.grpcTranscode"),
                "a backend with protocol auto and no TLS speaks HTTP/1.1: say h2c for a plaintext gRPC server",
            );
            None
        }
        _ => grpc_transcode,
    };
    let retries = match &rule.retries {
        None => Some(None),
        Some(_) if !has_backends => {
            d.push(
                format!("{p}.retries"),
                "only a rule with backends retries: redirects and fixed responses have nothing to retry",
            );
            None
        }
        Some(r) => super::retries::lower_retries(&format!("{p}.retries"), r, d).map(Some),
    };

    Some(snap::Rule {
        id,
        matches,
        timeout_ms: u64::try_from(timeout?.as_millis()).ok()?,
        rewrite,
        request_headers: request_headers?,
        response_headers: response_headers?,
        policy: None,
        retries: retries?,
        grpc_transcode: grpc_transcode?,
        mirrors: Vec::new(),
        action: action?,
    })
}

pub(crate) fn lower_match(p: &str, m: &RouteMatch, d: &mut Diagnostics) -> Option<snap::Match> {
    if let Some(grpc) = &m.grpc {
        return lower_grpc_match(p, m, grpc, d);
    }
    let path = match &m.path {
        None => Some(snap::PathMatch::Prefix {
            value: String::new(),
        }),
        Some(pm) => {
            let field = format!("{p}.path.value");
            let v = pm.value.clone();
            match pm.kind {
                PathMatchType::Exact => d
                    .check(field, check_path(&v))
                    .map(|value| snap::PathMatch::Exact { value }),
                PathMatchType::PathPrefix => {
                    d.check(field, check_path(&v))
                        .map(|value| snap::PathMatch::Prefix {
                            value: value.trim_end_matches('/').to_string(),
                        })
                }
                PathMatchType::Template => d
                    .check(
                        field,
                        check_path(&v).and_then(|value| {
                            template::parse_match_template(&value).map(|s| (value, s))
                        }),
                    )
                    .map(|(value, segments)| snap::PathMatch::Template { value, segments }),
                PathMatchType::RegularExpression => d
                    .check(field, check_regex(&v))
                    .map(|()| snap::PathMatch::RegularExpression { value: v }),
            }
        }
    };
    let mut methods = Vec::new();
    for (i, method) in m.methods.iter().enumerate() {
        let upper = method.to_ascii_uppercase();
        if d.check(
            format!("{p}.methods[{i}]"),
            check_token(&upper, "HTTP method"),
        )
        .is_some()
        {
            methods.push(upper);
        }
    }
    methods.sort();
    methods.dedup();
    let headers = lower_value_matches(&format!("{p}.headers"), &m.headers, true, d);
    let query = lower_value_matches(&format!("{p}.query"), &m.query, false, d);
    Some(snap::Match {
        rank: 0,
        path: path?,
        ignore_case: m.path.as_ref().is_some_and(|p| p.ignore_case),
        methods,
        headers: headers?,
        query: query?,
    })
}

/// A `grpc` match: `POST /<service>/<method>`, or a PathPrefix of the service.
fn lower_grpc_match(
    p: &str,
    m: &RouteMatch,
    grpc: &GrpcMatch,
    d: &mut Diagnostics,
) -> Option<snap::Match> {
    let before = d.0.len();
    if m.path.is_some() || !m.methods.is_empty() {
        d.push(
            format!("{p}.grpc"),
            "a grpc match sets the path and method itself: leave out path and methods",
        );
    }
    let identifier = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !grpc.service.split('.').all(identifier) {
        d.push(
            format!("{p}.grpc.service"),
            format!(
                "{:?} is not a gRPC service name: dot-separated identifiers, like package.Service",
                grpc.service
            ),
        );
    }
    if let Some(method) = &grpc.method
        && !identifier(method)
    {
        d.push(
            format!("{p}.grpc.method"),
            format!("{method:?} is not a gRPC method name: an identifier, like GetOrder"),
        );
    }
    let headers = lower_value_matches(&format!("{p}.headers"), &m.headers, true, d);
    let query = lower_value_matches(&format!("{p}.query"), &m.query, false, d);
    if d.0.len() != before {
        return None;
    }
    let path = match &grpc.method {
        Some(method) => snap::PathMatch::Exact {
            value: format!("/{}/{method}", grpc.service),
        },
        None => snap::PathMatch::Prefix {
            value: format!("/{}", grpc.service),
        },
    };
    Some(snap::Match {
        rank: 0,
        path,
        ignore_case: false,
        methods: vec!["POST".into()],
        headers: headers?,
        query: query?,
    })
}

fn lower_value_matches(
    p: &str,
    list: &[ValueMatch],
    is_header: bool,
    d: &mut Diagnostics,
) -> Option<Vec<snap::ValueMatch>> {
    let before = d.0.len();
    let mut out = Vec::new();
    for (i, vm) in list.iter().enumerate() {
        let name = if is_header {
            d.check(
                format!("{p}[{i}].name"),
                check_token(&vm.name.to_ascii_lowercase(), "header name"),
            )
            .map(|()| vm.name.to_ascii_lowercase())
        } else if vm.name.is_empty() {
            d.push(format!("{p}[{i}].name"), "must not be empty");
            None
        } else {
            Some(vm.name.clone())
        };
        let field = format!("{p}[{i}].value");
        let kind = match (vm.kind, &vm.value) {
            (ValueMatchType::Present, None) => Some(snap::ValueMatchKind::Present),
            (ValueMatchType::Present, Some(_)) => {
                d.push(field, "a Present match takes no value");
                None
            }
            (_, None) => {
                d.push(field, "required unless type is Present");
                None
            }
            (ValueMatchType::Exact, Some(v)) => {
                let checked = if is_header {
                    check_header_value(v)
                } else {
                    Ok(())
                };
                d.check(field, checked)
                    .map(|()| snap::ValueMatchKind::Exact { value: v.clone() })
            }
            (ValueMatchType::RegularExpression, Some(v)) => d
                .check(field, check_regex(v))
                .map(|()| snap::ValueMatchKind::RegularExpression { value: v.clone() }),
        };
        if let (Some(name), Some(kind)) = (name, kind) {
            out.push(snap::ValueMatch { name, kind });
        }
    }
    (d.0.len() == before).then_some(out)
}

fn lower_header_ops(
    p: &str,
    ops: Option<&HeaderModifier>,
    is_request: bool,
    d: &mut Diagnostics,
) -> Option<snap::HeaderOps> {
    let Some(ops) = ops else {
        return Some(snap::HeaderOps::default());
    };
    let before = d.0.len();
    let check_name = |field: String, name: &str, d: &mut Diagnostics| -> String {
        let lower = name.to_ascii_lowercase();
        if d.check(field.clone(), check_token(&lower, "header name"))
            .is_some()
        {
            if is_request && lower == "host" {
                d.push(field, "use rewrite.host to change the Host header");
            } else if lower == "content-length" {
                d.push(
                    field,
                    "content-length frames the body and is set by the proxy; it cannot be edited",
                );
            } else if is_hop_by_hop(&lower) {
                d.push(
                    field,
                    format!("{lower} is a hop-by-hop header and cannot be edited"),
                );
            }
        }
        lower
    };
    let pairs =
        |kind: &str, map: &std::collections::BTreeMap<String, String>, d: &mut Diagnostics| {
            map.iter()
                .map(|(k, v)| {
                    let name = check_name(format!("{p}.{kind}.{k}"), k, d);
                    d.check(format!("{p}.{kind}.{k}"), check_header_value(v));
                    snap::Header {
                        sensitive: sensitive_header(&name, &ops.sensitive),
                        name,
                        value: v.clone(),
                    }
                })
                .collect::<Vec<_>>()
        };
    let set = pairs("set", &ops.set, d);
    let add = pairs("add", &ops.add, d);
    for (i, listed) in ops.sensitive.iter().enumerate() {
        let edited = |m: &std::collections::BTreeMap<String, String>| {
            m.keys().any(|k| k.eq_ignore_ascii_case(listed))
        };
        if !edited(&ops.set) && !edited(&ops.add) {
            d.push(
                format!("{p}.sensitive[{i}]"),
                format!("{listed} is neither set nor added here"),
            );
        }
    }
    let remove = ops
        .remove
        .iter()
        .enumerate()
        .map(|(i, n)| check_name(format!("{p}.remove[{i}]"), n, d))
        .collect::<Vec<_>>();
    (d.0.len() == before).then_some(snap::HeaderOps { set, add, remove })
}

/// Whether a header value set by an edit is a credential, to be redacted wherever a snapshot
/// is shown: listed in `sensitive`, or named as credentials usually are.
fn sensitive_header(name: &str, listed: &[String]) -> bool {
    const NAMED: [&str; 5] = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
    ];
    const PARTS: [&str; 9] = [
        "token",
        "secret",
        "password",
        "credential",
        "session",
        "api-key",
        "apikey",
        "auth",
        "signature",
    ];
    listed.iter().any(|l| l.eq_ignore_ascii_case(name))
        || NAMED.contains(&name)
        || PARTS.iter().any(|p| name.contains(p))
}

fn lower_path_rewrite(
    p: &str,
    path: Option<&str>,
    prefix: Option<&str>,
    matches: &[snap::Match],
    d: &mut Diagnostics,
) -> Option<snap::PathRewrite> {
    match (path, prefix) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            d.push(
                format!("{p}.pathPrefix"),
                "set either path or pathPrefix, not both",
            );
            None
        }
        (None, Some(prefix)) => {
            let field = format!("{p}.pathPrefix");
            let prefix = d.check(field.clone(), check_path(prefix))?;
            if !matches
                .iter()
                .all(|m| matches!(m.path, snap::PathMatch::Prefix { .. }))
            {
                d.push(
                    field,
                    "pathPrefix needs every match of the rule to be a PathPrefix",
                );
                return None;
            }
            Some(snap::PathRewrite::Prefix {
                value: prefix.trim_end_matches('/').to_string(),
            })
        }
        (Some(path), None) => {
            let field = format!("{p}.path");
            let path = d.check(field.clone(), check_path(path))?;
            let parts = d.check(field.clone(), template::parse_substitution(&path))?;
            for capture in template::captures(&parts) {
                let everywhere = matches.iter().all(|m| match &m.path {
                    snap::PathMatch::Template { segments, .. } => segments
                        .iter()
                        .any(|s| matches!(s, snap::Segment::Capture(c) if c == capture)),
                    _ => false,
                });
                if !everywhere {
                    d.push(
                        field.clone(),
                        format!(
                            "{{{capture}}} is not a capture of every match (Template) of this rule"
                        ),
                    );
                }
            }
            Some(snap::PathRewrite::Full { parts })
        }
    }
}

fn lower_redirect(
    p: &str,
    r: &RedirectAction,
    matches: &[snap::Match],
    d: &mut Diagnostics,
) -> Option<snap::Action> {
    let before = d.0.len();
    let status = r.status_code.unwrap_or(302);
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        d.push(
            format!("{p}.statusCode"),
            "must be 301, 302, 303, 307 or 308",
        );
    }
    let scheme = r.scheme.as_ref().map(|s| s.to_ascii_lowercase());
    if let Some(s) = &scheme
        && s != "http"
        && s != "https"
    {
        d.push(format!("{p}.scheme"), "must be http or https");
    }
    let host = r
        .host
        .as_ref()
        .and_then(|h| d.check(format!("{p}.host"), normalize_host(h, false)));
    if r.port == Some(0) {
        d.push(format!("{p}.port"), "must be between 1 and 65535");
    }
    let path = lower_path_rewrite(p, r.path.as_deref(), r.path_prefix.as_deref(), matches, d);
    (d.0.len() == before).then_some(snap::Action::Redirect(snap::Redirect {
        scheme,
        host,
        port: r.port,
        path,
        status,
    }))
}

fn lower_direct_response(
    p: &str,
    r: &DirectResponseAction,
    d: &mut Diagnostics,
) -> Option<snap::Action> {
    let before = d.0.len();
    if !(200..=599).contains(&r.status) {
        d.push(format!("{p}.status"), "must be between 200 and 599");
    }
    let body = r.body.clone().unwrap_or_default();
    if body.len() > MAX_DIRECT_BODY {
        d.push(
            format!("{p}.body"),
            format!(
                "is {} bytes; at most {MAX_DIRECT_BODY} are allowed",
                body.len()
            ),
        );
    }
    if let Some(ct) = &r.content_type {
        d.check(format!("{p}.contentType"), check_header_value(ct));
    }
    let content_type = r
        .content_type
        .clone()
        .or_else(|| (!body.is_empty()).then(|| "text/plain; charset=utf-8".to_string()));
    (d.0.len() == before).then_some(snap::Action::DirectResponse(snap::DirectResponse {
        status: r.status,
        body,
        content_type,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_urls() {
        let plain = parse_backend_url;
        assert_eq!(
            plain("http://Orders.shop:8080").unwrap(),
            ("orders.shop:8080".into(), false)
        );
        assert_eq!(
            plain("http://orders/").unwrap(),
            ("orders:80".into(), false)
        );
        assert_eq!(
            plain("http://[::1]:9000").unwrap(),
            ("[::1]:9000".into(), false)
        );
        assert_eq!(plain("https://a").unwrap(), ("a:443".into(), true));
        assert_eq!(
            plain("https://[fd00::1]").unwrap(),
            ("[fd00::1]:443".into(), true)
        );
        assert_eq!(plain("https://a:8443/").unwrap(), ("a:8443".into(), true));
        assert!(parse_backend_url("http://a/b").is_err());
        let refused = parse_backend_url("http://user:hunter2@a").unwrap_err();
        assert!(!refused.contains("hunter2"), "{refused}");
        assert!(parse_backend_url("ftp://a").is_err());
        assert!(parse_backend_url("http://a:0").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            normalize_host("API.example.com", false).unwrap(),
            "api.example.com"
        );
        assert_eq!(
            normalize_host("*.example.com", true).unwrap(),
            "*.example.com"
        );
        assert!(normalize_host("*.example.com", false).is_err());
        assert!(normalize_host("a.*.com", true).is_err());
        assert!(normalize_host("a..com", true).is_err());
    }

    #[test]
    fn credential_header_values_are_marked_sensitive() {
        let ops = HeaderModifier {
            set: [
                ("Authorization", "Bearer t"),
                ("x-upstream-token", "t"),
                ("x-tenant", "blue"),
                ("X-Signed", "s"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
            add: [("x-trace", "on")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            sensitive: vec!["x-signed".into()],
            ..Default::default()
        };
        let mut d = Diagnostics::default();
        let lowered = lower_header_ops("spec", Some(&ops), true, &mut d).unwrap();
        let flags: Vec<(&str, bool)> = lowered
            .set
            .iter()
            .chain(&lowered.add)
            .map(|h| (h.name.as_str(), h.sensitive))
            .collect();
        assert_eq!(
            flags,
            [
                ("authorization", true),
                ("x-signed", true),
                ("x-tenant", false),
                ("x-upstream-token", true),
                ("x-trace", false),
            ]
        );
        // Shown redacted, sent in full.
        let shown =
            frontdesk_snapshot::secret::redacted(|| serde_json::to_string(&lowered).unwrap());
        assert!(
            !shown.contains("Bearer t") && shown.contains("blue"),
            "{shown}"
        );
        assert!(
            serde_json::to_string(&lowered)
                .unwrap()
                .contains("Bearer t")
        );
        assert!(!format!("{lowered:?}").contains("Bearer t"));

        // A name listed as sensitive that no edit sets is a mistake worth a word.
        let typo = HeaderModifier {
            sensitive: vec!["x-sigend".into()],
            ..ops
        };
        let mut d = Diagnostics::default();
        assert!(lower_header_ops("spec", Some(&typo), true, &mut d).is_none());
        assert_eq!(d.0[0].field, "spec.sensitive[0]");
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("2h").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
