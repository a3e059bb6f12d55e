//! GRPCRoute, lowered like an HTTPRoute ([`super`]): a method match is a path, since a gRPC
//! call is `POST /<service>/<method>`.
//!
//! - `Exact` with service and method: that path; with the service alone: every method of it
//!   (frontdesk's `grpc` match); with the method alone: that method of any service.
//! - `RegularExpression`: service and method each matched whole by their expression (absent:
//!   any).
//!
//! Backends speak HTTP/2: plaintext (h2c) unless a BackendTLSPolicy gives them TLS (h2).

use frontdesk_snapshot as snap;

use super::{Context, LoweredRoute, apply_filters, backends, push_rule, start, value_matches};
use crate::gateway_api::grpc_route::{GRPCMethodMatch, GRPCRouteMatch, GRPCRouteSpec};
use crate::gateway_api::http_route::HTTPRouteFilter;
use crate::route::{GrpcMatch, PathMatch, PathMatchType, RouteMatch, RouteRule};

pub(crate) fn lower_grpc_route(
    namespace: &str,
    name: &str,
    spec: &GRPCRouteSpec,
    ctx: &Context<'_>,
) -> LoweredRoute {
    let mut out = start(spec.hostnames.as_slice());
    let default_rule = [crate::gateway_api::grpc_route::GRPCRouteRule::default()];
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
                .map(|(mi, m)| grpc_match(&format!("{p}.matches[{mi}]"), m, &mut out))
                .collect(),
            ..Default::default()
        };
        let mut policies = Vec::new();
        for (i, f) in rule.filters.iter().enumerate() {
            if f.type_ == "RequestMirror" {
                // Every gRPC call has a body, and bodies are not copied yet.
                out.unsupported.push(
                    format!("{p}.filters[{i}].type"),
                    "a GRPCRoute's RequestMirror is not implemented: gRPC calls carry a body, which is not mirrored",
                );
            } else if !allowed_filter(f) {
                out.unsupported.push(
                    format!("{p}.filters[{i}].type"),
                    format!("a GRPCRoute has no {} filter", f.type_),
                );
            }
        }
        apply_filters(&p, &rule.filters, &mut route_rule, &mut policies, &mut out);
        let (action, reason) = backends::lower_backend_refs(
            &format!("{p}.backendRefs"),
            namespace,
            (crate::gateway_api::GROUP, "GRPCRoute"),
            &rule.backend_refs,
            snap::BackendProtocol::H2c,
            ctx,
            &mut out.lowered.unresolved,
            &mut out.unsupported,
        );
        out.ref_reason = out.ref_reason.or(reason);
        push_rule(
            namespace,
            name,
            &p,
            &route_rule,
            super::Backends::Lowered(action),
            ctx,
            &mut out,
        );
        // Refused above (UnsupportedValue): nothing to mirror.
        out.pending_mirrors.clear();
        out.policy_lists.push(policies);
    }
    out
}

fn allowed_filter(f: &HTTPRouteFilter) -> bool {
    matches!(
        f.type_.as_str(),
        "RequestHeaderModifier" | "ResponseHeaderModifier" | "ExtensionRef"
    )
}

fn grpc_match(p: &str, m: &GRPCRouteMatch, out: &mut LoweredRoute) -> RouteMatch {
    let headers = value_matches(&format!("{p}.headers"), &m.headers, out);
    let any = RouteMatch {
        headers: headers.clone(),
        ..Default::default()
    };
    let Some(method) = &m.method else {
        return any;
    };
    let GRPCMethodMatch {
        type_,
        service,
        method,
    } = method;
    let regex = |service: Option<&str>, method: Option<&str>| RouteMatch {
        path: Some(PathMatch {
            kind: PathMatchType::RegularExpression,
            value: format!(
                "/(?:{})/(?:{})",
                service.unwrap_or("[^/]+"),
                method.unwrap_or("[^/]+")
            ),
            ignore_case: false,
        }),
        methods: vec!["POST".into()],
        headers: headers.clone(),
        ..Default::default()
    };
    match (type_.as_deref().unwrap_or("Exact"), service, method) {
        ("Exact", Some(service), method) => RouteMatch {
            headers: headers.clone(),
            grpc: Some(GrpcMatch {
                service: service.clone(),
                method: method.clone(),
            }),
            ..Default::default()
        },
        ("Exact", None, Some(method)) => {
            if !method
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                out.lowered.invalid.push(
                    format!("{p}.method.method"),
                    format!("{method:?} is not a gRPC method name"),
                );
            }
            regex(None, Some(method))
        }
        ("Exact", None, None) => any,
        ("RegularExpression", service, method) => regex(service.as_deref(), method.as_deref()),
        (other, _, _) => {
            out.unsupported.push(
                format!("{p}.method.type"),
                format!("method match type {other:?} is not implemented"),
            );
            any
        }
    }
}
