//! Gateway API routes lowered into the same snapshot rules as frontdesk's Routes: one data
//! plane, one precedence order across every route of a gateway.
//!
//! An HTTPRoute rule becomes a frontdesk rule:
//!
//! | HTTPRoute | frontdesk rule |
//! |---|---|
//! | `matches` path Exact, PathPrefix, RegularExpression; headers; queryParams; method | `matches` |
//! | RequestHeaderModifier, ResponseHeaderModifier | `requestHeaders`, `responseHeaders` |
//! | RequestRedirect | `redirect` (the rule's backends are not used) |
//! | URLRewrite ReplaceFullPath, ReplacePrefixMatch, hostname | `rewrite` |
//! | ExtensionRef to a frontdesk.dev Policy | the rule's `policies` |
//! | `backendRefs` (Services, other namespaces through a ReferenceGrant) | weighted backends ([`backends`]) |
//! | `timeouts.request`, `timeouts.backendRequest` | `timeout`, `retries.perTryTimeout` |
//! | `retry` (codes, attempts, backoff) | `retries` |
//! | CORS (experimental) | the rule's own last Policy, a CORS section ([`cors`]) |
//! | RequestMirror (`percent`, `fraction`; HTTPRoute only, bodiless requests) | the rule's `mirrors` |
//!
//! GRPCRoute rules ([`grpc`]) lower the same way, their matches becoming `POST /service/method`
//! paths and their backends speaking HTTP/2.
//!
//! What frontdesk does not implement (per-backend filters, session persistence, a filter type
//! it does not know) refuses the route with
//! `UnsupportedValue`, naming the field, rather than serving it without.

pub(crate) mod backends;
mod cors;
pub(crate) mod grpc;
mod placement;

pub(crate) use placement::{Piece, Placement, routes};

use std::time::Duration;

use frontdesk_snapshot as snap;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::lower::{
    Backends, Lowered, ResolveService, check_object_name, lower_rule, normalize_host,
};
use crate::diagnostic::Diagnostics;
use crate::gateway_api::ReferenceGrant;
use crate::gateway_api::http_route::{
    HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule, HTTPRouteSpec, HeaderFilter, NameValueMatch,
    PathModifier, RequestMirrorFilter,
};
use crate::route::{
    HeaderModifier, PathMatch, PathMatchType, RedirectAction, Retries, Rewrite, RouteMatch,
    RouteRule, ValueMatch, ValueMatchType,
};

/// A Gateway API route, lowered.
pub(crate) struct LoweredRoute {
    /// Its `hosts` are the route's `hostnames` (checked, lower-case); its `gateways` are empty
    /// (the parentRefs decide, [`super::gateways::parent_refs`]).
    pub lowered: Lowered,
    /// Per rule: the frontdesk Policies its ExtensionRef filters name.
    pub policy_lists: Vec<Vec<String>>,
    /// Fields naming what frontdesk does not implement: the route is not accepted.
    pub unsupported: Diagnostics,
    /// The `ResolvedRefs` reason of the first reference that did not resolve.
    pub ref_reason: Option<&'static str>,
    /// Policies the route makes of its own filters (a rule's CORS filter), by name: the
    /// rules that have one list it last in `policy_lists`. The names hold a `:`, which no
    /// object name does.
    pub own_policies: Vec<(String, snap::Policy)>,
    /// The CORS filter of the rule being lowered.
    pending_cors: Option<snap::Cors>,
    /// The RequestMirror filters of the rule being lowered, with their field paths.
    pending_mirrors: Vec<(String, RequestMirrorFilter)>,
}

/// What lowering a Gateway API route reads besides the route.
pub(crate) struct Context<'a> {
    pub services: &'a dyn ResolveService,
    pub grants: &'a [ReferenceGrant],
}

pub(crate) fn lower_http_route(
    namespace: &str,
    name: &str,
    spec: &HTTPRouteSpec,
    ctx: &Context<'_>,
) -> LoweredRoute {
    let mut out = start(spec.hostnames.as_slice());
    // The upstream default: one rule that matches everything and has no backend (500).
    let default_rule = [HTTPRouteRule::default()];
    let rules = if spec.rules.is_empty() {
        &default_rule[..]
    } else {
        &spec.rules
    };
    for (ri, rule) in rules.iter().enumerate() {
        let p = format!("spec.rules[{ri}]");
        let mut route_rule = RouteRule {
            name: Some(rule.name.clone().unwrap_or_else(|| format!("rule-{ri}"))),
            matches: rule
                .matches
                .iter()
                .enumerate()
                .map(|(mi, m)| http_match(&format!("{p}.matches[{mi}]"), m, &mut out))
                .collect(),
            ..Default::default()
        };
        let mut policies = Vec::new();
        let redirects = apply_filters(&p, &rule.filters, &mut route_rule, &mut policies, &mut out);
        if rule.session_persistence.is_some() {
            out.unsupported.push(
                format!("{p}.sessionPersistence"),
                "session persistence is not implemented",
            );
        }
        apply_timeouts(&p, rule, &mut route_rule, &mut out.lowered.invalid);
        let backends = if redirects {
            Backends::Listed
        } else {
            let (action, reason) = backends::lower_backend_refs(
                &format!("{p}.backendRefs"),
                namespace,
                (crate::gateway_api::GROUP, "HTTPRoute"),
                &rule.backend_refs,
                snap::BackendProtocol::Http1,
                ctx,
                &mut out.lowered.unresolved,
                &mut out.unsupported,
            );
            out.ref_reason = out.ref_reason.or(reason);
            Backends::Lowered(action)
        };
        let before = out.lowered.rules.len();
        push_rule(namespace, name, &p, &route_rule, backends, ctx, &mut out);
        add_mirrors(namespace, ctx, redirects, before, &mut out);
        if let Some(cors) = out.pending_cors.take() {
            let rule_name = route_rule.name.as_deref().unwrap_or_default();
            let own = format!("HTTPRoute:{name}:{rule_name}:cors");
            policies.push(own.clone());
            let policy = snap::Policy {
                sources: vec![format!("{namespace}/{own}")],
                cors: Some(cors),
                ..Default::default()
            };
            out.own_policies.push((own, policy));
        }
        out.policy_lists.push(policies);
    }
    out
}

/// Lowers the rule's RequestMirror filters onto the rule lowered last (when it was, since
/// `before` rules). A mirror needs the rule to forward: with a redirect it is refused.
fn add_mirrors(
    namespace: &str,
    ctx: &Context<'_>,
    redirects: bool,
    before: usize,
    out: &mut LoweredRoute,
) {
    let pending = std::mem::take(&mut out.pending_mirrors);
    let mut mirrors = Vec::new();
    for (p, m) in pending {
        if redirects {
            out.lowered
                .invalid
                .push(p, "a rule that redirects has no request to mirror");
            continue;
        }
        let lowered = backends::lower_mirror(
            &p,
            namespace,
            (crate::gateway_api::GROUP, "HTTPRoute"),
            &m,
            ctx,
            &mut out.lowered.invalid,
            &mut out.lowered.unresolved,
        );
        match lowered {
            Ok(mirror) => mirrors.extend(mirror),
            Err(reason) => out.ref_reason = out.ref_reason.or(Some(reason)),
        }
    }
    if out.lowered.rules.len() > before
        && let Some(rule) = out.lowered.rules.last_mut()
    {
        rule.mirrors = mirrors;
    }
}

/// Starts the lowering of a route with `hostnames`.
fn start(hostnames: &[String]) -> LoweredRoute {
    let mut d = Diagnostics::default();
    let mut hosts: Vec<String> = hostnames
        .iter()
        .enumerate()
        .filter_map(|(i, h)| d.check(format!("spec.hostnames[{i}]"), normalize_host(h, true)))
        .collect();
    hosts.sort();
    hosts.dedup();
    let mut lowered = Lowered::placed(&[], &[]);
    lowered.gateways.clear();
    lowered.hosts = hosts;
    lowered.invalid = d;
    LoweredRoute {
        lowered,
        policy_lists: Vec::new(),
        unsupported: Diagnostics::default(),
        ref_reason: None,
        own_policies: Vec::new(),
        pending_cors: None,
        pending_mirrors: Vec::new(),
    }
}

/// Lowers one translated rule into `out`, checking its rule name.
fn push_rule(
    namespace: &str,
    name: &str,
    p: &str,
    rule: &RouteRule,
    backends: Backends,
    ctx: &Context<'_>,
    out: &mut LoweredRoute,
) {
    let rule_name = rule.name.clone().unwrap_or_default();
    let d = &mut out.lowered.invalid;
    d.check(
        format!("{p}.name"),
        super::lower::check_dns_label(&rule_name),
    );
    if out
        .lowered
        .rules
        .iter()
        .any(|r| r.id.rsplit('/').next() == Some(&rule_name))
    {
        d.push(
            format!("{p}.name"),
            format!("rule name {rule_name:?} is used twice in this route"),
        );
    }
    let id = format!("{namespace}/{name}/{rule_name}");
    let lowered = lower_rule(
        p,
        id,
        namespace,
        rule,
        backends,
        ctx.services,
        d,
        &mut out.lowered.unresolved,
    );
    if let Some(r) = lowered {
        out.lowered.rules.push(r);
    }
}

fn http_match(p: &str, m: &HTTPRouteMatch, out: &mut LoweredRoute) -> RouteMatch {
    let path = m.path.as_ref();
    let kind = match path
        .and_then(|p| p.type_.as_deref())
        .unwrap_or("PathPrefix")
    {
        "Exact" => PathMatchType::Exact,
        "PathPrefix" => PathMatchType::PathPrefix,
        "RegularExpression" => PathMatchType::RegularExpression,
        other => {
            out.unsupported.push(
                format!("{p}.path.type"),
                format!("path match type {other:?} is not implemented"),
            );
            PathMatchType::PathPrefix
        }
    };
    RouteMatch {
        path: Some(PathMatch {
            kind,
            value: path
                .and_then(|p| p.value.clone())
                .unwrap_or_else(|| "/".to_string()),
            ignore_case: false,
        }),
        methods: m.method.iter().cloned().collect(),
        headers: value_matches(&format!("{p}.headers"), &m.headers, out),
        query: value_matches(&format!("{p}.queryParams"), &m.query_params, out),
        grpc: None,
    }
}

/// Header or query parameter matches.
pub(crate) fn value_matches(
    p: &str,
    list: &[NameValueMatch],
    out: &mut LoweredRoute,
) -> Vec<ValueMatch> {
    list.iter()
        .enumerate()
        .map(|(i, m)| ValueMatch {
            name: m.name.clone(),
            kind: match m.type_.as_deref().unwrap_or("Exact") {
                "Exact" => ValueMatchType::Exact,
                "RegularExpression" => ValueMatchType::RegularExpression,
                other => {
                    out.unsupported.push(
                        format!("{p}[{i}].type"),
                        format!("match type {other:?} is not implemented"),
                    );
                    ValueMatchType::Exact
                }
            },
            value: Some(m.value.clone()),
        })
        .collect()
}

/// Applies the rule's filters to `rule`; returns whether one redirects (the action).
pub(crate) fn apply_filters(
    p: &str,
    filters: &[HTTPRouteFilter],
    rule: &mut RouteRule,
    policies: &mut Vec<String>,
    out: &mut LoweredRoute,
) -> bool {
    let mut redirects = false;
    let mut seen: Vec<&str> = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let fp = format!("{p}.filters[{i}]");
        let kind = f.type_.as_str();
        // Only the mirror and extension filters may appear more than once.
        if seen.contains(&kind) && !matches!(kind, "RequestMirror" | "ExtensionRef") {
            out.lowered.invalid.push(
                format!("{fp}.type"),
                format!("{kind} may appear once per rule"),
            );
        }
        seen.push(kind);
        let missing = |out: &mut LoweredRoute, field: &str| {
            out.lowered.invalid.push(
                format!("{fp}.{field}"),
                format!("a {kind} filter needs its {field}"),
            );
        };
        match kind {
            "RequestHeaderModifier" => match &f.request_header_modifier {
                Some(h) => rule.request_headers = Some(header_modifier(h)),
                None => missing(out, "requestHeaderModifier"),
            },
            "ResponseHeaderModifier" => match &f.response_header_modifier {
                Some(h) => rule.response_headers = Some(header_modifier(h)),
                None => missing(out, "responseHeaderModifier"),
            },
            "RequestRedirect" => match &f.request_redirect {
                Some(r) => {
                    redirects = true;
                    let (path, path_prefix) =
                        path_modifier(&format!("{fp}.requestRedirect.path"), r.path.as_ref(), out);
                    rule.redirect = Some(RedirectAction {
                        scheme: r.scheme.clone(),
                        host: r.hostname.clone(),
                        port: r.port.map(|p| u16::try_from(p).unwrap_or(0)),
                        path,
                        path_prefix,
                        status_code: r.status_code.map(|s| u16::try_from(s).unwrap_or(0)),
                    });
                }
                None => missing(out, "requestRedirect"),
            },
            "URLRewrite" => match &f.url_rewrite {
                Some(r) => {
                    let (path, path_prefix) =
                        path_modifier(&format!("{fp}.urlRewrite.path"), r.path.as_ref(), out);
                    rule.rewrite = Some(Rewrite {
                        path,
                        path_prefix,
                        host: r.hostname.clone(),
                    });
                }
                None => missing(out, "urlRewrite"),
            },
            "ExtensionRef" => match &f.extension_ref {
                Some(r)
                    if r.group == super::gateways::attach::ROUTE_GROUP && r.kind == "Policy" =>
                {
                    // A Policy of the route's own namespace: never `namespace/name`.
                    let checked = check_object_name(&r.name).map(|()| r.name.clone());
                    if let Some(name) =
                        (out.lowered.invalid).check(format!("{fp}.extensionRef.name"), checked)
                    {
                        policies.push(name);
                    }
                }
                Some(r) => {
                    out.unsupported.push(
                        format!("{fp}.extensionRef"),
                        format!(
                            "{}/{} is not an extension frontdesk knows: name a Policy of group frontdesk.dev",
                            r.group, r.kind
                        ),
                    );
                }
                None => missing(out, "extensionRef"),
            },
            "CORS" => match &f.cors {
                Some(c) => {
                    out.pending_cors =
                        cors::lower_cors_filter(&format!("{fp}.cors"), c, &mut out.lowered.invalid);
                }
                None => missing(out, "cors"),
            },
            "RequestMirror" => match &f.request_mirror {
                Some(m) => out
                    .pending_mirrors
                    .push((format!("{fp}.requestMirror"), m.clone())),
                None => missing(out, "requestMirror"),
            },
            other => out.unsupported.push(
                format!("{fp}.type"),
                format!("filter type {other:?} is not implemented"),
            ),
        }
    }
    if redirects && seen.contains(&"URLRewrite") {
        out.lowered.invalid.push(
            format!("{p}.filters"),
            "RequestRedirect and URLRewrite cannot be used together",
        );
    }
    redirects
}

fn header_modifier(h: &HeaderFilter) -> HeaderModifier {
    HeaderModifier {
        set: h
            .set
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect(),
        add: h
            .add
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect(),
        remove: h.remove.clone(),
        sensitive: Vec::new(),
    }
}

/// A redirect's or rewrite's path: `(full path, prefix)`.
fn path_modifier(
    p: &str,
    m: Option<&PathModifier>,
    out: &mut LoweredRoute,
) -> (Option<String>, Option<String>) {
    let Some(m) = m else {
        return (None, None);
    };
    match m.type_.as_str() {
        // A literal path: braces would read as captures in frontdesk's substitution syntax.
        "ReplaceFullPath" => match &m.replace_full_path {
            Some(path) if path.contains(['{', '}']) => {
                out.unsupported.push(
                    format!("{p}.replaceFullPath"),
                    "a path with { or } is not implemented",
                );
                (None, None)
            }
            Some(path) => (Some(path.clone()), None),
            None => {
                out.lowered.invalid.push(
                    format!("{p}.replaceFullPath"),
                    "ReplaceFullPath needs replaceFullPath",
                );
                (None, None)
            }
        },
        "ReplacePrefixMatch" => match &m.replace_prefix_match {
            Some(prefix) => (None, Some(prefix.clone())),
            None => {
                out.lowered.invalid.push(
                    format!("{p}.replacePrefixMatch"),
                    "ReplacePrefixMatch needs replacePrefixMatch",
                );
                (None, None)
            }
        },
        other => {
            out.unsupported.push(
                format!("{p}.type"),
                format!("path modifier {other:?} is not implemented"),
            );
            (None, None)
        }
    }
}

/// `timeouts`: `request` bounds the wait for the answer, retries included; `backendRequest`
/// each try (the whole wait when the rule does not retry).
fn apply_timeouts(p: &str, rule: &HTTPRouteRule, out: &mut RouteRule, d: &mut Diagnostics) {
    let timeouts = rule.timeouts.as_ref();
    let parse = |d: &mut Diagnostics, field: &str, v: Option<&String>| {
        v.and_then(|v| d.check(format!("{p}.timeouts.{field}"), parse_duration(v)))
    };
    let request = parse(d, "request", timeouts.and_then(|t| t.request.as_ref()));
    let backend = parse(
        d,
        "backendRequest",
        timeouts.and_then(|t| t.backend_request.as_ref()),
    );
    // Zero turns a timeout off: the longest frontdesk has.
    let off = |t: Option<Duration>| {
        t.map(|t| {
            if t.is_zero() {
                super::lower::MAX_TIMEOUT
            } else {
                t
            }
        })
    };
    let (request, backend) = (off(request), off(backend));
    if let (Some(r), Some(b)) = (request, backend)
        && b > r
    {
        d.push(
            format!("{p}.timeouts.backendRequest"),
            "must not be longer than timeouts.request",
        );
    }
    let millis = |t: Duration| format!("{}ms", t.as_millis());
    if let Some(retry) = &rule.retry {
        let attempts = retry.attempts.unwrap_or(1);
        if attempts > 0 {
            let mut on: Vec<IntOrString> = vec![
                IntOrString::String("connect-failure".into()),
                IntOrString::String("reset".into()),
            ];
            on.extend(retry.codes.iter().map(|c| IntOrString::Int(*c)));
            out.retries = Some(Retries {
                attempts: u32::try_from(attempts).unwrap_or(0),
                per_try_timeout: backend.map(millis),
                on,
                backoff: retry
                    .backoff
                    .as_ref()
                    .and_then(|b| d.check(format!("{p}.retry.backoff"), parse_duration(b)))
                    .map(millis),
                ..Default::default()
            });
            out.timeout = request.map(millis);
            return;
        }
    }
    out.timeout = match (request, backend) {
        (Some(r), Some(b)) => Some(millis(r.min(b))),
        (r, b) => r.or(b).map(millis),
    };
}

/// A Gateway API duration: up to four `<1-5 digits><h|m|s|ms>` parts, like `1h30m` or `500ms`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a Gateway API duration like 10s, 500ms or 1m30s");
    let mut total = Duration::ZERO;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(n), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(n * 3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(n * 60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(n), 1)
        } else {
            return Err(bad());
        };
        total += unit;
        rest = &rest[len..];
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
