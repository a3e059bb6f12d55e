//! Aggregate spec → one snapshot rule whose action calls several backends.
//!
//! Checked here, so a proxy never meets them: placeholders name a capture of the path or a
//! field of a call listed in `dependsOn` (and, when that call selects or extracts, a field
//! that survives the shaping); `dependsOn` names known calls and has no cycle; names and keys
//! are unique; backends resolve like a Route's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use frontdesk_snapshot as snap;

use super::lower::{
    Lowered, ResolveService, check_dns_label, check_path, check_token, is_hop_by_hop,
    lower_backends, parse_timeout,
};
use crate::aggregate::{AggregateSpec, CallSpec, MergeSpec};
use crate::diagnostic::Diagnostics;
use crate::template;

pub const DEFAULT_AGGREGATE_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MAX_CALL_BYTES: u64 = 1 << 20;
pub const MAX_CALL_BYTES: u64 = 64 << 20;

pub fn lower_aggregate(
    namespace: &str,
    name: &str,
    spec: &AggregateSpec,
    services: &dyn ResolveService,
) -> Lowered {
    let mut out = Lowered::placed(&spec.gateways, &spec.hosts);
    let d = &mut out.invalid;

    let path = d.check("spec.path", check_path(&spec.path));
    let segments = path
        .as_deref()
        .and_then(|path| d.check("spec.path", template::parse_match_template(path)));
    let captures: BTreeSet<String> = segments
        .iter()
        .flatten()
        .filter_map(|s| match s {
            snap::Segment::Capture(c) => Some(c.clone()),
            snap::Segment::Literal(_) => None,
        })
        .collect();
    let mut methods: Vec<String> = Vec::new();
    for (i, m) in spec.methods.iter().enumerate() {
        let upper = m.to_ascii_uppercase();
        if d.check(
            format!("spec.methods[{i}]"),
            check_token(&upper, "HTTP method"),
        )
        .is_some()
        {
            methods.push(upper);
        }
    }
    if methods.is_empty() {
        methods.push("GET".into());
    }
    methods.sort();
    methods.dedup();
    let timeout = match &spec.timeout {
        None => Some(DEFAULT_AGGREGATE_TIMEOUT),
        Some(t) => d.check("spec.timeout", parse_timeout(t)),
    };
    let mut forward_headers = Vec::new();
    for (i, h) in spec.forward_headers.iter().enumerate() {
        let lower = h.to_ascii_lowercase();
        let field = format!("spec.forwardHeaders[{i}]");
        if d.check(field.clone(), check_token(&lower, "header name"))
            .is_some()
        {
            if lower == "host" || is_hop_by_hop(&lower) {
                d.push(field, format!("{lower} cannot be forwarded"));
            } else {
                forward_headers.push(lower);
            }
        }
    }
    let max_call_bytes = match &spec.max_call_bytes {
        None => Some(DEFAULT_MAX_CALL_BYTES),
        Some(v) => d.check("spec.maxCallBytes", parse_bytes(v)),
    };
    if spec.calls.is_empty() {
        d.push("spec.calls", "an Aggregate needs at least one call");
    }
    let calls = lower_calls(
        namespace,
        spec,
        &captures,
        timeout,
        services,
        d,
        &mut out.unresolved,
    );

    if let (Some(segments), Some(timeout), Some(max_call_bytes), Some(calls)) =
        (segments, timeout, max_call_bytes, calls)
        && out.invalid.is_empty()
    {
        out.rules.push(snap::Rule {
            id: format!("{namespace}/{name}/aggregate"),
            matches: vec![snap::Match {
                ignore_case: false,
                rank: 0,
                path: snap::PathMatch::Template {
                    value: path.clone().unwrap_or_default(),
                    segments,
                },
                methods,
                headers: vec![],
                query: vec![],
            }],
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            rewrite: None,
            request_headers: snap::HeaderOps::default(),
            response_headers: snap::HeaderOps::default(),
            policy: None,
            retries: None,
            grpc_transcode: None,
            mirrors: Vec::new(),
            action: snap::Action::Aggregate(snap::Aggregate {
                forward_headers,
                max_call_bytes,
                merge: match spec.response.as_ref().map(|r| r.merge).unwrap_or_default() {
                    MergeSpec::Nested => snap::Merge::Nested,
                    MergeSpec::Flat => snap::Merge::Flat,
                },
                calls,
            }),
        });
    }
    out
}

fn lower_calls(
    namespace: &str,
    spec: &AggregateSpec,
    captures: &BTreeSet<String>,
    timeout: Option<Duration>,
    services: &dyn ResolveService,
    d: &mut Diagnostics,
    unresolved: &mut Diagnostics,
) -> Option<Vec<snap::Call>> {
    let before = d.0.len();
    let by_name: BTreeMap<&str, &CallSpec> =
        spec.calls.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut keys = BTreeSet::new();
    let mut out = Vec::new();
    for (i, c) in spec.calls.iter().enumerate() {
        let p = format!("spec.calls[{i}]");
        d.check(format!("{p}.name"), check_dns_label(&c.name));
        if spec.calls.iter().filter(|x| x.name == c.name).count() > 1
            && spec.calls.iter().position(|x| x.name == c.name) == Some(i)
        {
            d.push(
                format!("{p}.name"),
                format!("call name {:?} is used twice", c.name),
            );
        }
        let key = c.rename.clone().unwrap_or_else(|| c.name.clone());
        if key.is_empty() || key.starts_with('_') {
            d.push(
                format!("{p}.rename"),
                "a key must not be empty or start with '_' (reserved for _errors)",
            );
        }
        if !keys.insert(key.clone()) {
            d.push(
                format!("{p}.rename"),
                format!("two calls answer under the key {key:?}"),
            );
        }
        for (j, dep) in c.depends_on.iter().enumerate() {
            if dep == &c.name {
                d.push(
                    format!("{p}.dependsOn[{j}]"),
                    "a call cannot depend on itself",
                );
            } else if !by_name.contains_key(dep.as_str()) {
                d.push(
                    format!("{p}.dependsOn[{j}]"),
                    format!("no call is named {dep:?}"),
                );
            }
        }
        for (j, s) in c.select.iter().enumerate() {
            d.check(format!("{p}.select[{j}]"), check_field_path(s));
        }
        if let Some(e) = &c.extract {
            d.check(format!("{p}.extract"), check_field_path(e));
        }
        let target = lower_target(&format!("{p}.path"), c, captures, &by_name, d);
        let retries = match &c.retries {
            None => Some(None),
            Some(r) => super::retries::lower_retries(&format!("{p}.retries"), r, d).map(Some),
        };
        let call_timeout = match &c.timeout {
            None => timeout,
            Some(t) => d.check(format!("{p}.timeout"), parse_timeout(t)),
        };
        let backend = match lower_backends(
            &format!("{p}.backend"),
            namespace,
            std::slice::from_ref(&c.backend),
            services,
            d,
            unresolved,
        ) {
            Some(snap::Action::Forward { mut backends }) if !backends.is_empty() => {
                Some(backends.remove(0))
            }
            _ => None,
        };
        if let (Some(target), Some(t), Some(backend), Some(retries)) =
            (target, call_timeout, backend, retries)
        {
            out.push(snap::Call {
                retries,
                name: c.name.clone(),
                key,
                backend,
                target,
                required: c.required,
                timeout_ms: u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
                depends_on: c.depends_on.clone(),
                select: c.select.clone(),
                extract: c.extract.clone(),
            });
        }
    }
    if let Some(cycle) = find_cycle(&spec.calls) {
        d.push(
            "spec.calls",
            format!("dependsOn makes a cycle: {}", cycle.join(" -> ")),
        );
    }
    (d.0.len() == before).then_some(out)
}

/// `a.b.c`: non-empty names separated by dots.
fn check_field_path(p: &str) -> Result<(), String> {
    if p.is_empty() || p.split('.').any(str::is_empty) {
        Err(format!(
            "{p:?} is not a field path like items or product.price"
        ))
    } else {
        Ok(())
    }
}

/// A call's `path`: literal text and `{placeholders}`.
fn lower_target(
    field: &str,
    c: &CallSpec,
    captures: &BTreeSet<String>,
    calls: &BTreeMap<&str, &CallSpec>,
    d: &mut Diagnostics,
) -> Option<Vec<snap::UrlPart>> {
    let before = d.0.len();
    let text = &c.path;
    if !text.starts_with('/') {
        d.push(field, format!("{text:?} must start with '/'"));
        return None;
    }
    let mut parts = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        match rest.find('{') {
            None => {
                parts.push(snap::UrlPart::Literal(rest.to_string()));
                rest = "";
            }
            Some(open) => {
                if open > 0 {
                    parts.push(snap::UrlPart::Literal(rest[..open].to_string()));
                }
                let Some(close) = rest[open..].find('}') else {
                    d.push(field, format!("{text:?}: '{{' without '}}'"));
                    return None;
                };
                let inner = &rest[open + 1..open + close];
                parts.push(placeholder(field, inner, c, captures, calls, d)?);
                rest = &rest[open + close + 1..];
            }
        }
    }
    for part in &parts {
        if let snap::UrlPart::Literal(l) = part {
            let bad = l
                .bytes()
                .any(|b| b <= b' ' || b == 0x7f || b == b'#' || b == b'}' || b >= 0x80);
            if bad {
                d.push(
                    field,
                    format!(
                        "{text:?} must not contain spaces, control characters, '#' or non-ASCII"
                    ),
                );
            }
        }
    }
    (d.0.len() == before).then_some(parts)
}

fn placeholder(
    field: &str,
    inner: &str,
    c: &CallSpec,
    captures: &BTreeSet<String>,
    calls: &BTreeMap<&str, &CallSpec>,
    d: &mut Diagnostics,
) -> Option<snap::UrlPart> {
    match inner.split_once('.') {
        None if captures.contains(inner) => Some(snap::UrlPart::Capture(inner.to_string())),
        None => {
            d.push(
                field,
                format!(
                    "{{{inner}}} is not a capture of the Aggregate's path ({})",
                    captures.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
            None
        }
        Some((call, path)) => {
            if !c.depends_on.iter().any(|x| x == call) {
                let why = if calls.contains_key(call) {
                    format!("{{{inner}}} uses call {call:?}, which is not in dependsOn")
                } else {
                    format!("{{{inner}}}: no call is named {call:?}")
                };
                d.push(field, why);
                return None;
            }
            d.check(field.to_string(), check_field_path(path))?;
            // The field must survive the other call's shaping. (dependsOn may name a call that
            // does not exist: that is reported where dependsOn is checked.)
            let Some(other) = calls.get(call) else {
                d.push(field, format!("{{{inner}}}: no call is named {call:?}"));
                return None;
            };
            if other.extract.is_none()
                && !other.select.is_empty()
                && !other
                    .select
                    .iter()
                    .any(|s| path == s || path.starts_with(&format!("{s}.")))
            {
                d.push(
                    field,
                    format!(
                        "{{{inner}}}: call {call:?} selects only {}; {path} is not among them",
                        other.select.join(", ")
                    ),
                );
                return None;
            }
            Some(snap::UrlPart::Field {
                call: call.to_string(),
                path: path.to_string(),
            })
        }
    }
}

/// A dependency cycle, as call names, if any.
fn find_cycle(calls: &[CallSpec]) -> Option<Vec<String>> {
    fn visit<'a>(
        name: &'a str,
        calls: &'a [CallSpec],
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        if !done.insert(name) {
            return None;
        }
        stack.push(name);
        let call = calls.iter().find(|c| c.name == name)?;
        for dep in &call.depends_on {
            if let Some(c) = visit(dep, calls, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for c in calls {
        if let Some(cycle) = visit(&c.name, calls, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

/// `1048576`, `512Ki`, `1Mi`.
fn parse_bytes(v: &str) -> Result<u64, String> {
    let (n, unit) = match v.strip_suffix("Mi") {
        Some(n) => (n, 1 << 20),
        None => match v.strip_suffix("Ki") {
            Some(n) => (n, 1 << 10),
            None => (v, 1),
        },
    };
    let bytes = n
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{v:?} is not a size like 1048576, 512Ki or 1Mi"))?;
    if bytes == 0 || bytes > MAX_CALL_BYTES {
        return Err(format!(
            "must be between 1 byte and {}Mi",
            MAX_CALL_BYTES >> 20
        ));
    }
    Ok(bytes)
}
