//! The checks the lowering of Routes, Aggregates and Policies shares: timeouts, backend
//! URLs, paths, regular expressions, header names and values, object names and hosts.

use super::*;

pub(crate) fn parse_timeout(t: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(t)
        .map_err(|e| format!("{t:?} is not a duration like 500ms or 10s: {e}"))?;
    if d.is_zero() || d > MAX_TIMEOUT {
        return Err(format!(
            "must be more than 0 and at most {}",
            humantime::format_duration(MAX_TIMEOUT)
        ));
    }
    Ok(d)
}

/// `http://host[:port][/]` → `(host:port, false)`; `https://...` → `(host:port, true)`, port
/// 443 by default.
pub(crate) fn parse_backend_url(url: &str) -> Result<(String, bool), String> {
    let shown = crate::compile::urls::redact_url(url);
    let (rest, https) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, true)
    } else {
        return Err(format!("{shown:?} must start with http:// or https://"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "{shown:?} must be http(s)://host[:port], without path, query or credentials"
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        // A bracketed IPv6 address has a port only after its closing bracket.
        Some((h, p)) if !authority.starts_with('[') || h.ends_with(']') => {
            let port: u16 = p
                .parse()
                .map_err(|_| format!("{shown:?} has an invalid port"))?;
            if port == 0 {
                return Err(format!("{shown:?} has an invalid port"));
            }
            (h, port)
        }
        _ => (authority, if https { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("{shown:?} has no host"));
    }
    Ok((format!("{}:{port}", host.to_ascii_lowercase()), https))
}

/// A configured path, checked and put in the canonical form request paths are matched in
/// (`frontdesk_snapshot::path`), so it can be written naturally (`/v1/orders%3Acancel`,
/// `/a//b`) and still match.
pub(crate) fn check_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with '/'"));
    }
    if p.bytes()
        .any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#')
    {
        return Err(format!(
            "{p:?} must not contain spaces, control characters, '?' or '#'"
        ));
    }
    frontdesk_snapshot::path::normalize(p)
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| format!("{p:?}: {e}"))
}

pub(super) fn check_regex(r: &str) -> Result<(), String> {
    RegexBuilder::new(&format!("^(?:{r})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(|_| ())
        .map_err(|e| {
            format!(
                "invalid regular expression: {}",
                e.to_string().lines().last().unwrap_or_default()
            )
        })
}

pub(crate) fn check_token(v: &str, what: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("{v:?} is not a valid {what}"))
    }
}

pub(crate) fn check_header_value(v: &str) -> Result<(), String> {
    if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        Err("must not contain control characters (CR, LF, NUL...)".into())
    } else {
        Ok(())
    }
}

pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// A Kubernetes object name (DNS subdomain): what a Route may name a Policy by.
pub(crate) fn check_object_name(v: &str) -> Result<(), String> {
    let ok = !v.is_empty() && v.len() <= 253 && v.split('.').all(|l| check_dns_label(l).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!("{v:?} is not a valid object name"))
    }
}

pub(crate) fn check_dns_label(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{v:?} must be a DNS label: lower-case letters, digits and '-'"
        ))
    }
}

/// Lower-cases a host name and checks it; `*.` is allowed in front when `wildcard`.
pub(crate) fn normalize_host(h: &str, wildcard: bool) -> Result<String, String> {
    let lower = h.to_ascii_lowercase();
    let name = match lower.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        Some(_) => return Err(format!("{h:?}: a wildcard is not allowed here")),
        None => &lower,
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(lower)
    } else {
        Err(format!(
            "{h:?} is not a host name (a wildcard is only allowed as a leading \"*.\")"
        ))
    }
}
