//! Finding a credential in a request: a header (with an optional scheme prefix), a cookie or a
//! query parameter. Pure functions over the request's parts.

use std::borrow::Cow;

use frontdesk_snapshot::CredentialSource;
use http::HeaderMap;
use http::header::COOKIE;

/// The first credential found, trying `sources` in order. Empty values do not count.
pub fn find<'a>(
    sources: &[CredentialSource],
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    sources.iter().find_map(|s| {
        match s {
            CredentialSource::Header { name, prefix } => headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| strip_prefix_ci(v.trim(), prefix))
                .map(|v| Cow::Borrowed(v.trim())),
            CredentialSource::Cookie { name } => cookie(headers, name).map(Cow::Borrowed),
            CredentialSource::Query { name } => query_param(query?, name),
        }
        .filter(|v| !v.is_empty())
    })
}

/// A credential the request gives more than once: one of `sources` repeated (two
/// Authorization lines, a cookie or query parameter twice), or two of them present at once (a
/// header and a query parameter). Which one counts is up to each server, so the proxy and the
/// backend could see different credentials. Named for the answer.
pub fn duplicated(
    sources: &[CredentialSource],
    headers: &HeaderMap,
    query: Option<&str>,
) -> Option<String> {
    let name = |s: &CredentialSource| match s {
        CredentialSource::Header { name, .. } => format!("header {name}"),
        CredentialSource::Cookie { name } => format!("cookie {name}"),
        CredentialSource::Query { name } => format!("query parameter {name}"),
    };
    // The same value in two places (a token in a cookie and the header) is one credential.
    let present: Vec<(&CredentialSource, Cow<'_, str>)> = sources
        .iter()
        .filter_map(|s| Some((s, find(std::slice::from_ref(s), headers, query)?)))
        .collect();
    if let Some((a, first)) = present.first()
        && let Some((b, _)) = present.iter().find(|(_, v)| v != first)
    {
        return Some(format!("{} and {}", name(a), name(b)));
    }
    sources.iter().find_map(|s| {
        let repeated = match s {
            CredentialSource::Header { name, .. } => {
                headers.get_all(name.as_str()).iter().nth(1).is_some()
            }
            CredentialSource::Cookie { name } => headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter(|pair| pair.trim().split_once('=').is_some_and(|(k, _)| k == name))
                .nth(1)
                .is_some(),
            CredentialSource::Query { name } => query.is_some_and(|q| {
                q.split('&')
                    .filter(|pair| {
                        let k = pair.split_once('=').map_or(*pair, |(k, _)| k);
                        decode(k).as_deref() == Some(name)
                    })
                    .nth(1)
                    .is_some()
            }),
        };
        repeated.then(|| name(s))
    })
}

fn strip_prefix_ci<'a>(v: &'a str, prefix: &str) -> Option<&'a str> {
    let head = v.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &v[prefix.len()..])
}

/// The value of cookie `name` in the request's Cookie header(s).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"'))
        })
}

/// The first value of query parameter `name`, percent-decoded (`+` is a space).
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k).as_deref() == Some(name)).then(|| decode(v))?
    })
}

/// Percent-decoding of a query component; `None` when the result is not UTF-8.
fn decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex = |c: u8| (c as char).to_digit(16);
        if b == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|c| hex(*c)),
                bytes.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn header_prefix_is_case_insensitive_and_required() {
        let src = [CredentialSource::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }];
        let h = headers(&[("authorization", "bearer abc.def.ghi")]);
        assert_eq!(find(&src, &h, None).as_deref(), Some("abc.def.ghi"));
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(find(&src, &h, None), None);
        let h = headers(&[("authorization", "Bearer ")]);
        assert_eq!(find(&src, &h, None), None);
    }

    #[test]
    fn cookies_and_query_parameters() {
        let src = [
            CredentialSource::Cookie {
                name: "token".into(),
            },
            CredentialSource::Query {
                name: "access_token".into(),
            },
        ];
        let h = headers(&[("cookie", "a=1; token=xyz; b=2")]);
        assert_eq!(find(&src, &h, None).as_deref(), Some("xyz"));
        let h = HeaderMap::new();
        assert_eq!(
            find(&src, &h, Some("x=1&access_token=a%2Eb+c")).as_deref(),
            Some("a.b c")
        );
        assert_eq!(find(&src, &h, Some("access_token=")), None);
        assert_eq!(find(&src, &h, Some("other=1")), None);
    }

    #[test]
    fn a_credential_given_twice_is_found_out() {
        let src = [
            CredentialSource::Header {
                name: "x-api-key".into(),
                prefix: String::new(),
            },
            CredentialSource::Cookie {
                name: "token".into(),
            },
            CredentialSource::Query { name: "key".into() },
        ];
        let once = headers(&[("x-api-key", "a"), ("cookie", "other=2")]);
        assert_eq!(duplicated(&src, &once, Some("x=2")), None);
        let twice = headers(&[("x-api-key", "a"), ("x-api-key", "b")]);
        assert_eq!(
            duplicated(&src, &twice, None).as_deref(),
            Some("header x-api-key")
        );
        let cookies = headers(&[("cookie", "token=1"), ("cookie", "x=1; token=2")]);
        assert_eq!(
            duplicated(&src, &cookies, None).as_deref(),
            Some("cookie token")
        );
        assert_eq!(
            duplicated(&src, &HeaderMap::new(), Some("key=1&k%65y=2")).as_deref(),
            Some("query parameter key")
        );
        // One credential in the header and another in the query; the same one twice is fine.
        let header = headers(&[("x-api-key", "a")]);
        assert_eq!(
            duplicated(&src, &header, Some("key=2")).as_deref(),
            Some("header x-api-key and query parameter key")
        );
        assert_eq!(duplicated(&src, &header, Some("key=a")), None);
    }
}
