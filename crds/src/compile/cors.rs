//! A Policy's `cors` section, lowered to the snapshot's [`snap::Cors`]: origins sorted into
//! exact ones, subdomain wildcards and regular expressions; names normalised; a mistake named
//! with its field.

use frontdesk_snapshot as snap;

use crate::diagnostic::Diagnostics;
use crate::policy::CorsSpec;

/// The longest a browser may be told to keep a preflight.
const MAX_AGE_LIMIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub(super) fn lower_cors(p: &str, spec: &CorsSpec, d: &mut Diagnostics) -> Option<snap::Cors> {
    let before = d.0.len();
    let mut cors = snap::Cors {
        credentials: spec.allow_credentials.unwrap_or(false),
        ..Default::default()
    };
    if spec.allow_origins.is_empty() && spec.allow_origin_regexes.is_empty() {
        d.push(
            format!("{p}.allowOrigins"),
            "name at least one origin (or allowOriginRegexes)",
        );
    }
    for (i, origin) in spec.allow_origins.iter().enumerate() {
        let field = format!("{p}.allowOrigins[{i}]");
        if origin == "*" {
            if cors.credentials {
                d.push(
                    field,
                    "`*` cannot be allowed with allowCredentials: list the origins",
                );
            } else {
                cors.origins.push(origin.clone());
            }
            continue;
        }
        match parse_origin(origin) {
            Ok(Origin::Exact(o)) => cors.origins.push(o),
            Ok(Origin::Subdomains(o)) => cors.origin_suffixes.push(o),
            Err(why) => d.push(field, why),
        }
    }
    for (i, r) in spec.allow_origin_regexes.iter().enumerate() {
        // Origins are matched whole, and case does not matter in them.
        let anchored = format!("^(?i:{r})$");
        match regex::Regex::new(&anchored) {
            Ok(_) => cors.origin_regexes.push(anchored),
            Err(e) => d.push(format!("{p}.allowOriginRegexes[{i}]"), e.to_string()),
        }
    }
    cors.methods = if spec.allow_methods.is_empty() {
        ["GET", "HEAD", "POST"].map(String::from).to_vec()
    } else {
        // Browsers upper-case the standard methods they send: `get` is `GET`.
        spec.allow_methods
            .iter()
            .map(|m| {
                let upper = m.to_ascii_uppercase();
                let standard = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];
                if standard.contains(&upper.as_str()) {
                    upper
                } else {
                    m.clone()
                }
            })
            .collect()
    };
    for (i, m) in spec.allow_methods.iter().enumerate() {
        if http::Method::from_bytes(m.as_bytes()).is_err() || m == "*" {
            d.push(
                format!("{p}.allowMethods[{i}]"),
                format!("{m:?} is not a method"),
            );
        }
    }
    cors.headers = names(p, "allowHeaders", &spec.allow_headers, d);
    cors.expose_headers = names(p, "exposeHeaders", &spec.expose_headers, d);
    if cors.credentials && cors.expose_headers.iter().any(|h| h == "*") {
        d.push(
            format!("{p}.exposeHeaders"),
            "`*` exposes nothing with allowCredentials: list the headers",
        );
    }
    if let Some(age) = &spec.max_age {
        match humantime::parse_duration(age) {
            Ok(t) if t <= MAX_AGE_LIMIT => cors.max_age_seconds = Some(t.as_secs()),
            Ok(_) => d.push(format!("{p}.maxAge"), "must be at most 24h"),
            Err(e) => d.push(
                format!("{p}.maxAge"),
                format!("{age:?} is not a duration like 10m: {e}"),
            ),
        }
    }
    (d.0.len() == before).then_some(cors)
}

/// Header names, lower-cased, `*` kept; a name that is not one is noted.
fn names(p: &str, field: &str, list: &[String], d: &mut Diagnostics) -> Vec<String> {
    let mut out = Vec::new();
    for (i, h) in list.iter().enumerate() {
        if h != "*" && http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            d.push(
                format!("{p}.{field}[{i}]"),
                format!("{h:?} is not a header name"),
            );
            continue;
        }
        let h = h.to_ascii_lowercase();
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

enum Origin {
    /// `scheme://host[:port]`, lower-case.
    Exact(String),
    /// `scheme://*.domain[:port]`, kept as `scheme://` and `.domain[:port]` joined.
    Subdomains(String),
}

/// An origin as browsers send it: `scheme://host[:port]`, no path, no trailing slash.
fn parse_origin(origin: &str) -> Result<Origin, String> {
    let lower = origin.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return Err(format!(
            "{origin:?} is not an origin like https://shop.example.com"
        ));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(format!("{origin:?}: the scheme must be http or https"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "{origin:?} must be scheme://host[:port], without path or trailing slash"
        ));
    }
    let (wildcard, host) = match rest.strip_prefix("*.") {
        Some(domain) => (true, domain),
        None => (false, rest),
    };
    if host.contains('*') {
        return Err(format!(
            "{origin:?}: `*` may only start the host, as in https://*.example.com"
        ));
    }
    let authority = host
        .parse::<http::uri::Authority>()
        .map_err(|_| format!("{origin:?} does not have a valid host and port"))?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    if authority.port_u16() == Some(default_port) {
        return Err(format!(
            "{origin:?}: browsers send the origin without its default port; leave :{default_port} out"
        ));
    }
    Ok(if wildcard {
        Origin::Subdomains(format!("{scheme}://.{host}"))
    } else {
        Origin::Exact(lower)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(yaml: &str) -> (Option<snap::Cors>, Vec<String>) {
        let spec: CorsSpec = serde_saphyr::from_str(yaml).unwrap();
        let mut d = Diagnostics::default();
        let out = lower_cors("spec.cors", &spec, &mut d);
        (
            out,
            d.0.iter()
                .map(|x| format!("{}: {}", x.field, x.message))
                .collect(),
        )
    }

    #[test]
    fn origins_are_sorted_into_exact_wildcard_and_regex() {
        let (cors, notes) = lower(
            "{allowOrigins: ['https://Shop.example.com', 'https://*.example.com:8443'], allowOriginRegexes: ['https://a[0-9]+\\.example\\.org'], allowHeaders: [X-Trace, '*'], maxAge: 10m}",
        );
        assert!(notes.is_empty(), "{notes:?}");
        let cors = cors.unwrap();
        assert_eq!(cors.origins, ["https://shop.example.com"]);
        assert_eq!(cors.origin_suffixes, ["https://.example.com:8443"]);
        assert_eq!(
            cors.origin_regexes,
            ["^(?i:https://a[0-9]+\\.example\\.org)$"]
        );
        assert_eq!(cors.methods, ["GET", "HEAD", "POST"]);
        assert_eq!(cors.headers, ["x-trace", "*"]);
        assert_eq!(cors.max_age_seconds, Some(600));
        assert!(!cors.credentials);
    }

    #[test]
    fn mistakes_are_named_with_their_field() {
        let (cors, notes) = lower(
            "{allowOrigins: ['*', 'shop.example.com', 'https://shop.example.com/', 'https://a.*.com', 'https://x.example:443', 'ftp://x'], allowOriginRegexes: ['('], allowMethods: ['GET', 'BAD METHOD'], allowHeaders: ['bad header'], exposeHeaders: ['*'], allowCredentials: true, maxAge: 2d}",
        );
        assert_eq!(cors, None);
        let fields: Vec<&str> = notes.iter().map(|n| n.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "spec.cors.allowOrigins[0]",
                "spec.cors.allowOrigins[1]",
                "spec.cors.allowOrigins[2]",
                "spec.cors.allowOrigins[3]",
                "spec.cors.allowOrigins[4]",
                "spec.cors.allowOrigins[5]",
                "spec.cors.allowOriginRegexes[0]",
                "spec.cors.allowMethods[1]",
                "spec.cors.allowHeaders[0]",
                "spec.cors.exposeHeaders",
                "spec.cors.maxAge",
            ],
            "{notes:#?}"
        );
        assert!(notes[0].contains("allowCredentials"), "{}", notes[0]);
        let (_, notes) = lower("{allowMethods: [GET]}");
        assert_eq!(
            notes,
            ["spec.cors.allowOrigins: name at least one origin (or allowOriginRegexes)"]
        );
    }
}
