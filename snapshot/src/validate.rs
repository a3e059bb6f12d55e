//! Invariants a proxy relies on, checked before a snapshot is applied.
//!
//! The compiler already guarantees all of this; checking again at the boundary means a snapshot
//! that was corrupted, hand-written or produced by a mismatched controller is rejected whole with
//! a reason, and the proxy keeps serving the previous one.

use std::collections::HashSet;

use crate::{Action, Backend, PathMatch, PathRewrite, Rule, Segment, Snapshot, ValueMatchKind};

/// Why a snapshot cannot be applied. `path` names the offending element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ValidationError {
    pub path: String,
    pub reason: String,
}

fn err(path: String, reason: impl Into<String>) -> ValidationError {
    ValidationError {
        path,
        reason: reason.into(),
    }
}

impl Snapshot {
    /// Checks every invariant the proxy's runtime depends on.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.gateway.is_empty() {
            return Err(err("gateway".into(), "must not be empty"));
        }
        let mut ranks = HashSet::new();
        for (ri, route) in self.routes.iter().enumerate() {
            let rp = format!("routes[{ri}]");
            for (hi, host) in route.hosts.iter().enumerate() {
                check_host(host).map_err(|r| err(format!("{rp}.hosts[{hi}]"), r))?;
            }
            for (ui, rule) in route.rules.iter().enumerate() {
                let up = format!("{rp}.rules[{ui}]");
                check_rule(rule, &up, &mut ranks)?;
                if let Some(key) = &rule.policy
                    && !self.policies.contains_key(key)
                {
                    return Err(err(
                        format!("{up}.policy"),
                        format!("policy {key:?} is not in the snapshot"),
                    ));
                }
            }
        }
        for (key, policy) in &self.policies {
            crate::policy::check(policy)
                .map_err(|(field, r)| err(format!("policies[{key:?}].{field}"), r))?;
        }
        let mut ports = HashSet::new();
        for (li, l) in self.listeners.iter().enumerate() {
            check_listener(l).map_err(|r| err(format!("listeners[{li}]"), r))?;
            // Listeners sharing a port must share its protocol; hostnames tell them apart.
            if !ports.insert((l.port, l.hostname.clone())) {
                return Err(err(
                    format!("listeners[{li}]"),
                    format!(
                        "port {} and hostname {:?} are already served",
                        l.port, l.hostname
                    ),
                ));
            }
        }
        if let Some(l) = self.listeners.iter().find(|l| {
            self.listeners
                .iter()
                .any(|o| o.port == l.port && o.protocol != l.protocol)
        }) {
            return Err(err(
                "listeners".into(),
                format!("port {} is both HTTP and HTTPS", l.port),
            ));
        }
        Ok(())
    }
}

fn check_rule(rule: &Rule, p: &str, ranks: &mut HashSet<u32>) -> Result<(), ValidationError> {
    if rule.matches.is_empty() {
        return Err(err(
            format!("{p}.matches"),
            "a rule needs at least one match",
        ));
    }
    if rule.timeout_ms == 0 {
        return Err(err(format!("{p}.timeoutMs"), "must be greater than 0"));
    }
    if let Some(retries) = &rule.retries {
        if !matches!(rule.action, Action::Forward { .. }) {
            return Err(err(
                format!("{p}.retries"),
                "only a rule that forwards to backends retries",
            ));
        }
        retries
            .check()
            .map_err(|(field, why)| err(format!("{p}.retries.{field}"), why))?;
    }
    for (mi, m) in rule.matches.iter().enumerate() {
        let mp = format!("{p}.matches[{mi}]");
        if !ranks.insert(m.rank) {
            return Err(err(
                format!("{mp}.rank"),
                format!("rank {} is used twice", m.rank),
            ));
        }
        check_path(&m.path).map_err(|r| err(format!("{mp}.path"), r))?;
        for (i, h) in m.headers.iter().enumerate() {
            check_header_name(&h.name).map_err(|r| err(format!("{mp}.headers[{i}].name"), r))?;
            if let ValueMatchKind::Exact { value } = &h.kind {
                check_header_value(value)
                    .map_err(|r| err(format!("{mp}.headers[{i}].value"), r))?;
            }
        }
        for (i, m) in m.methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(is_token_byte) {
                return Err(err(format!("{mp}.methods[{i}]"), "not a valid HTTP method"));
            }
        }
    }
    for (name, ops) in [
        ("requestHeaders", &rule.request_headers),
        ("responseHeaders", &rule.response_headers),
    ] {
        // Framing and connection headers are the proxy's: an edit could desynchronise it
        // from the next hop (a smuggling vector) or redirect the request.
        let edited = ops.set.iter().chain(&ops.add).map(|h| h.name.as_str());
        for (i, n) in edited
            .chain(ops.remove.iter().map(String::as_str))
            .enumerate()
        {
            let n = n.to_ascii_lowercase();
            let reserved = matches!(
                n.as_str(),
                "content-length"
                    | "transfer-encoding"
                    | "connection"
                    | "keep-alive"
                    | "te"
                    | "trailer"
                    | "upgrade"
                    | "proxy-connection"
            ) || (name == "requestHeaders" && n == "host");
            if reserved {
                return Err(err(
                    format!("{p}.{name}"),
                    format!("header edit {i} names {n}, which only the proxy may set"),
                ));
            }
        }
        for (i, h) in ops.set.iter().chain(&ops.add).enumerate() {
            let hp = format!("{p}.{name}[{i}]");
            check_header_name(&h.name).map_err(|r| err(hp.clone(), r))?;
            check_header_value(&h.value).map_err(|r| err(hp, r))?;
        }
        for (i, h) in ops.remove.iter().enumerate() {
            check_header_name(h).map_err(|r| err(format!("{p}.{name}.remove[{i}]"), r))?;
        }
    }
    if let Some(rw) = &rule.rewrite {
        if let Some(host) = &rw.host {
            check_host(host).map_err(|r| err(format!("{p}.rewrite.host"), r))?;
        }
        if let Some(path) = &rw.path {
            check_path_rewrite(path, rule).map_err(|r| err(format!("{p}.rewrite.path"), r))?;
        }
    }
    if rule.grpc_transcode.is_some() && !matches!(rule.action, Action::Forward { .. }) {
        return Err(err(
            format!("{p}.grpcTranscode"),
            "only a rule that forwards to backends transcodes",
        ));
    }
    if !rule.mirrors.is_empty() && !matches!(rule.action, Action::Forward { .. }) {
        return Err(err(
            format!("{p}.mirrors"),
            "only a rule that forwards to backends mirrors",
        ));
    }
    for (i, m) in rule.mirrors.iter().enumerate() {
        if m.share_ppm > 1_000_000 {
            return Err(err(
                format!("{p}.mirrors[{i}].sharePpm"),
                "at most 1000000 (every request)",
            ));
        }
        check_backend(&format!("{p}.mirrors[{i}].backend"), &m.backend)?;
    }
    match &rule.action {
        Action::Forward { backends } => {
            if backends.is_empty() {
                return Err(err(
                    format!("{p}.action.backends"),
                    "at least one backend is required",
                ));
            }
            if backends.iter().map(|b| u64::from(b.weight)).sum::<u64>() == 0 {
                return Err(err(
                    format!("{p}.action.backends"),
                    "weights must not all be 0",
                ));
            }
            for (bi, b) in backends.iter().enumerate() {
                check_backend(&format!("{p}.action.backends[{bi}]"), b)?;
            }
        }
        Action::Redirect(r) => {
            if !matches!(r.status, 301 | 302 | 303 | 307 | 308) {
                return Err(err(
                    format!("{p}.action.status"),
                    "a redirect status is 301, 302, 303, 307 or 308",
                ));
            }
            if let Some(path) = &r.path {
                check_path_rewrite(path, rule).map_err(|r| err(format!("{p}.action.path"), r))?;
            }
        }
        Action::Aggregate(a) => {
            if a.calls.is_empty() {
                return Err(err(
                    format!("{p}.action.calls"),
                    "at least one call is required",
                ));
            }
            let names: HashSet<&str> = a.calls.iter().map(|c| c.name.as_str()).collect();
            if names.len() != a.calls.len() {
                return Err(err(
                    format!("{p}.action.calls"),
                    "call names must be unique",
                ));
            }
            for (ci, c) in a.calls.iter().enumerate() {
                let cp = format!("{p}.action.calls[{ci}]");
                if c.depends_on
                    .iter()
                    .any(|d| !names.contains(d.as_str()) || *d == c.name)
                {
                    return Err(err(
                        format!("{cp}.dependsOn"),
                        "names an unknown call or itself",
                    ));
                }
                if c.timeout_ms == 0 {
                    return Err(err(format!("{cp}.timeoutMs"), "must be greater than 0"));
                }
                for (ei, e) in c.backend.endpoints.iter().enumerate() {
                    check_authority(e)
                        .map_err(|r| err(format!("{cp}.backend.endpoints[{ei}]"), r))?;
                }
                if let Some(tls) = &c.backend.tls {
                    tls.check()
                        .map_err(|(field, r)| err(format!("{cp}.backend.tls.{field}"), r))?;
                }
                if let Some(r) = &c.retries {
                    r.check()
                        .map_err(|(field, why)| err(format!("{cp}.retries.{field}"), why))?;
                }
            }
            for h in &a.forward_headers {
                check_header_name(h).map_err(|r| err(format!("{p}.action.forwardHeaders"), r))?;
            }
        }
        Action::DirectResponse(d) => {
            if !(200..=599).contains(&d.status) {
                return Err(err(
                    format!("{p}.action.status"),
                    "must be between 200 and 599",
                ));
            }
        }
    }
    Ok(())
}

/// A backend's endpoints, and its protocol against its TLS. `p` is the backend's field path.
fn check_backend(p: &str, b: &Backend) -> Result<(), ValidationError> {
    for (ei, e) in b.endpoints.iter().enumerate() {
        check_authority(e).map_err(|r| err(format!("{p}.endpoints[{ei}]"), r))?;
    }
    match b.protocol.needs_tls() {
        Some(true) if b.tls.is_none() => {
            return Err(err(
                format!("{p}.protocol"),
                "h2 is HTTP/2 over TLS: the backend needs TLS (h2c is plaintext)",
            ));
        }
        Some(false) if b.tls.is_some() => {
            return Err(err(
                format!("{p}.protocol"),
                "h2c is plaintext HTTP/2: a TLS backend speaks h2",
            ));
        }
        _ => {}
    }
    if let Some(tls) = &b.tls {
        tls.check()
            .map_err(|(field, r)| err(format!("{p}.tls.{field}"), r))?;
    }
    Ok(())
}

fn check_path(path: &PathMatch) -> Result<(), String> {
    match path {
        PathMatch::Exact { value } | PathMatch::Prefix { value } => {
            if !value.is_empty() && !value.starts_with('/') {
                return Err("must start with '/'".into());
            }
            if matches!(path, PathMatch::Prefix { .. }) && value.ends_with('/') {
                return Err("a prefix is stored without a trailing '/'".into());
            }
            canonical(value)
        }
        PathMatch::Template { value, segments } => {
            canonical(value)?;
            let mut seen = HashSet::new();
            for s in segments {
                match s {
                    Segment::Literal(l) if l.is_empty() || l.contains('/') => {
                        return Err("a literal segment must be non-empty and contain no '/'".into());
                    }
                    Segment::Capture(c) if !seen.insert(c.as_str()) => {
                        return Err(format!("capture {{{c}}} appears twice"));
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        PathMatch::RegularExpression { value } => {
            if value.is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(())
            }
        }
    }
}

/// Request paths are matched in canonical form: a path outside it could never match.
fn canonical(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    match crate::path::normalize(value) {
        Ok(n) if n == value => Ok(()),
        Ok(n) => Err(format!(
            "{value:?} is not in canonical form (it would be {n:?}) and could never match"
        )),
        Err(e) => Err(format!("{value:?}: {e}")),
    }
}

fn check_path_rewrite(rw: &PathRewrite, rule: &Rule) -> Result<(), String> {
    match rw {
        PathRewrite::Prefix { .. } => {
            if rule
                .matches
                .iter()
                .all(|m| matches!(m.path, PathMatch::Prefix { .. }))
            {
                Ok(())
            } else {
                Err("a prefix rewrite needs every match of the rule to be a PathPrefix".into())
            }
        }
        PathRewrite::Full { parts } => {
            for part in parts {
                if let Segment::Capture(c) = part {
                    let everywhere = rule.matches.iter().all(|m| match &m.path {
                        PathMatch::Template { segments, .. } => {
                            segments.contains(&Segment::Capture(c.clone()))
                        }
                        _ => false,
                    });
                    if !everywhere {
                        return Err(format!(
                            "capture {{{c}}} is not defined by every match of the rule"
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("{name:?} must be lower-case"));
    }
    Ok(())
}

fn check_header_value(value: &str) -> Result<(), String> {
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("header values must not contain control characters".into());
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{host:?} is not a lower-case DNS name"))
    }
}

fn check_listener(l: &crate::Listener) -> Result<(), String> {
    if l.name.is_empty() {
        return Err("a listener needs a name".into());
    }
    if l.port == 0 {
        return Err(format!("{}: port 0", l.name));
    }
    if let Some(h) = &l.hostname {
        check_host(h).map_err(|r| format!("{}: {r}", l.name))?;
    }
    // An HTTPS listener without certificates is one whose Secrets were lost: the proxy keeps
    // what its port has, and opens nothing otherwise.
    match (l.protocol, l.certificates.is_empty()) {
        (crate::ListenerProtocol::Http, false) => {
            Err(format!("{}: an HTTP listener has no certificates", l.name))
        }
        _ => Ok(()),
    }
}

pub(crate) fn check_authority(a: &str) -> Result<(), String> {
    let (host, port) = a
        .rsplit_once(':')
        .ok_or_else(|| format!("{a:?} is not host:port"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{a:?} is not host:port"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, Match, Route};

    fn snapshot(rule: Rule) -> Snapshot {
        Snapshot {
            gateway: "default".into(),
            routes: vec![std::sync::Arc::new(Route {
                namespace: "ns".into(),
                name: "r".into(),
                hosts: vec![],
                ports: vec![],
                rules: vec![rule],
            })],
            ..Default::default()
        }
    }

    fn rule() -> Rule {
        Rule {
            id: "ns/r/0".into(),
            matches: vec![Match {
                rank: 0,
                path: PathMatch::Prefix {
                    value: String::new(),
                },
                ignore_case: false,
                methods: vec![],
                headers: vec![],
                query: vec![],
            }],
            timeout_ms: 1000,
            rewrite: None,
            request_headers: Default::default(),
            response_headers: Default::default(),
            policy: None,
            retries: None,
            grpc_transcode: None,
            mirrors: Vec::new(),
            action: Action::Forward {
                backends: vec![Backend {
                    tls: None,
                    protocol: Default::default(),
                    invalid: false,
                    name: "b".into(),
                    weight: 1,
                    endpoints: vec!["127.0.0.1:80".into()],
                }],
            },
        }
    }

    #[test]
    fn a_valid_snapshot_passes() {
        snapshot(rule()).validate().unwrap();
    }

    #[test]
    fn retries_are_bounded_and_only_for_forwards() {
        let retries = crate::Retries {
            attempts: 2,
            per_try_timeout_ms: None,
            on: vec![crate::RetryOn::Reset],
            backoff_ms: 25,
            non_idempotent: false,
            budget_percent: 20,
            budget_min_per_second: 3,
        };
        let mut r = rule();
        r.retries = Some(retries.clone());
        snapshot(r.clone()).validate().unwrap();
        r.retries = Some(crate::Retries {
            attempts: 11,
            ..retries.clone()
        });
        let e = snapshot(r.clone()).validate().unwrap_err();
        assert_eq!(e.path, "routes[0].rules[0].retries.attempts");
        r.retries = Some(retries);
        r.action = Action::DirectResponse(crate::DirectResponse {
            status: 200,
            body: String::new(),
            content_type: None,
        });
        let e = snapshot(r).validate().unwrap_err();
        assert_eq!(e.path, "routes[0].rules[0].retries");
    }

    #[test]
    fn mirrors_are_checked_and_only_for_forwards() {
        let Action::Forward { backends } = rule().action else {
            unreachable!()
        };
        let mut r = rule();
        r.mirrors = vec![crate::Mirror {
            backend: backends[0].clone(),
            share_ppm: 1_000_000,
        }];
        snapshot(r.clone()).validate().unwrap();
        r.mirrors[0].share_ppm = 1_000_001;
        let e = snapshot(r.clone()).validate().unwrap_err();
        assert_eq!(e.path, "routes[0].rules[0].mirrors[0].sharePpm");
        r.mirrors[0].share_ppm = 10;
        r.mirrors[0].backend.endpoints = vec!["nope".into()];
        let e = snapshot(r.clone()).validate().unwrap_err();
        assert_eq!(e.path, "routes[0].rules[0].mirrors[0].backend.endpoints[0]");
        r.mirrors[0].backend = backends[0].clone();
        r.action = Action::DirectResponse(crate::DirectResponse {
            status: 200,
            body: String::new(),
            content_type: None,
        });
        let e = snapshot(r).validate().unwrap_err();
        assert_eq!(e.path, "routes[0].rules[0].mirrors");
    }

    #[test]
    fn duplicate_ranks_are_rejected() {
        let mut r = rule();
        r.matches.push(r.matches[0].clone());
        let e = snapshot(r).validate().unwrap_err();
        assert_eq!(e.path, "routes[0].rules[0].matches[1].rank");
    }

    #[test]
    fn zero_weights_and_bad_endpoints_are_rejected() {
        let mut r = rule();
        r.action = Action::Forward {
            backends: vec![Backend {
                tls: None,
                protocol: Default::default(),
                invalid: false,
                name: "b".into(),
                weight: 0,
                endpoints: vec![],
            }],
        };
        assert!(
            snapshot(r)
                .validate()
                .unwrap_err()
                .reason
                .contains("weights")
        );
        let mut r = rule();
        r.action = Action::Forward {
            backends: vec![Backend {
                tls: None,
                protocol: Default::default(),
                invalid: false,
                name: "b".into(),
                weight: 1,
                endpoints: vec!["nope".into()],
            }],
        };
        assert_eq!(
            snapshot(r).validate().unwrap_err().path,
            "routes[0].rules[0].action.backends[0].endpoints[0]"
        );
    }

    #[test]
    fn header_injection_is_rejected() {
        let mut r = rule();
        r.request_headers.set.push(crate::Header {
            name: "x-a".into(),
            value: "a\r\nx-b: 1".into(),
            sensitive: false,
        });
        assert!(
            snapshot(r)
                .validate()
                .unwrap_err()
                .reason
                .contains("control characters")
        );
    }

    #[test]
    fn framing_and_connection_headers_cannot_be_edited() {
        for (name, request) in [
            ("Content-Length", true),
            ("transfer-encoding", false),
            ("connection", true),
            ("host", true),
        ] {
            let mut r = rule();
            let ops = if request {
                &mut r.request_headers
            } else {
                &mut r.response_headers
            };
            ops.set.push(crate::Header {
                name: name.into(),
                value: "1".into(),
                sensitive: false,
            });
            let e = snapshot(r).validate().unwrap_err();
            assert!(e.reason.contains("only the proxy may set"), "{name}: {e}");
        }
        // Host in an answer is not the request's Host: allowed.
        let mut r = rule();
        r.response_headers.set.push(crate::Header {
            name: "host".into(),
            value: "x".into(),
            sensitive: false,
        });
        snapshot(r).validate().unwrap();
    }

    #[test]
    fn paths_must_be_canonical() {
        let mut r = rule();
        r.matches[0].path = PathMatch::Exact {
            value: "/a/../b".into(),
        };
        let e = snapshot(r).validate().unwrap_err();
        assert!(e.reason.contains("canonical"), "{e}");
        let mut r = rule();
        r.matches[0].path = PathMatch::Prefix {
            value: "/admin;x".into(),
        };
        assert!(snapshot(r).validate().is_err());
    }

    #[test]
    fn prefix_rewrite_needs_prefix_matches() {
        let mut r = rule();
        r.matches[0].path = PathMatch::Exact { value: "/a".into() };
        r.rewrite = Some(crate::Rewrite {
            path: Some(PathRewrite::Prefix { value: "/b".into() }),
            host: None,
        });
        assert!(
            snapshot(r)
                .validate()
                .unwrap_err()
                .reason
                .contains("PathPrefix")
        );
    }
}
