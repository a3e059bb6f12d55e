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
}
