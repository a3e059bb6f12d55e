//! Request transforms: run after the cache slot and just before a forward action, on the
//! request head that goes to the backend (an Aggregate builds its own calls; redirects and
//! direct responses send nothing upstream). In order: the path rewrite (the canonical path is
//! what the backend sees, with the client's query), HTTP/2 cookie fields joined, the
//! X-Forwarded-For/Proto/Host headers, the rule's header edits (remove, set, add), then Host
//! (the rewrite's, else the client's authority). By default (no rewrite, no edits) only the
//! forwarding headers and Host change.

use frontdesk_snapshot::{self as snap, PathRewrite};
use http::header::{COOKIE, HOST};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderValue, Uri, Version};

use crate::forwarding::{Peer, add_forwarded, add_raw_forwarded};
use crate::http1::raw_fields::{FieldsView, RawFields, into_map};
use crate::problem::{Problem, ProblemKind};
use crate::transforms::{HeaderEdits, MatchedPath, rewrite_path};

/// The request transforms of one rule.
#[derive(Default)]
pub struct RequestTransforms {
    rewrite_path: Option<PathRewrite>,
    rewrite_host: Option<HeaderValue>,
    headers: HeaderEdits,
}

impl RequestTransforms {
    pub fn build(rule: &snap::Rule) -> Result<Self, String> {
        let rewrite = rule.rewrite.as_ref();
        Ok(RequestTransforms {
            rewrite_path: rewrite.and_then(|r| r.path.clone()),
            rewrite_host: rewrite
                .and_then(|r| r.host.as_deref())
                .map(HeaderValue::from_str)
                .transpose()
                .map_err(|e| format!("rewrite.host: {e}"))?,
            headers: HeaderEdits::new(&rule.request_headers)?,
        })
    }

    /// Whether the rule edits the request's fields (beyond the forwarding ones every request
    /// gets).
    pub fn edits_fields(&self) -> bool {
        self.rewrite_host.is_some() || !self.headers.is_empty()
    }

    /// Turns the client's request head into the backend's: an origin-form target, HTTP/1.1,
    /// forwarding headers, edits and Host. `authority` is what the client addressed.
    pub fn apply(
        &self,
        head: &mut Parts,
        matched: &MatchedPath<'_>,
        peer: Peer,
        authority: Option<&Authority>,
    ) -> Result<(), Problem> {
        let unchanged = self.rewrite_path.is_none() && matched.path == head.uri.path();
        let path_and_query = match head.uri.path_and_query() {
            // The common case: forward the client's target as parsed, no copy or re-parse.
            Some(pq) if unchanged => pq.clone(),
            _ => {
                let new_path = match &self.rewrite_path {
                    Some(rw) => rewrite_path(rw, matched.path, matched.captures, matched.prefix),
                    None => matched.path.to_string(),
                };
                let path_and_query = match head.uri.query() {
                    Some(q) => format!("{new_path}?{q}"),
                    None => new_path,
                };
                PathAndQuery::try_from(path_and_query).map_err(|_| {
                    Problem::new(
                        ProblemKind::BadRequest,
                        "the rewritten path is not a valid request target",
                    )
                })?
            }
        };
        head.uri = Uri::from(path_and_query);
        // Fields kept as sent are for rules that edit none (the pipeline sees to it); any
        // other request gets its map here.
        if self.edits_fields() {
            into_map(head.extensions.remove(), &mut head.headers);
        }
        let headers = &mut head.headers;
        if head.version == Version::HTTP_2 {
            join_cookies(headers);
        }
        head.version = Version::HTTP_11;
        // Fields kept as the client sent them: the rule edits none (see `edits_fields`), and
        // the map holds only what the proxy adds.
        let client_host = FieldsView::of_parts(headers, &head.extensions).get(&HOST);
        let raw = head.extensions.get_mut::<RawFields>();
        // What the client addressed, as a header value: its Host line when it has one (HTTP/2
        // clients send :authority instead).
        let addressed = authority.and_then(|a| match client_host {
            Some(ref v) if v.as_bytes() == a.as_str().as_bytes() => client_host.clone(),
            _ => HeaderValue::from_str(a.as_str()).ok(),
        });
        let Some(raw) = raw else {
            add_forwarded(headers, peer, addressed.as_ref());
            self.headers.apply(headers);
            match (&self.rewrite_host, addressed) {
                (Some(h), _) => {
                    headers.insert(HOST, h.clone());
                }
                // Usually the client's own Host line, already in place.
                (None, Some(v)) if headers.get(HOST) != Some(&v) => {
                    headers.insert(HOST, v);
                }
                _ => {}
            }
            return Ok(());
        };
        add_raw_forwarded(raw, peer, addressed.as_ref());
        if let Some(v) = addressed
            && client_host.as_ref() != Some(&v)
        {
            raw.remove(&HOST);
            raw.add(HOST, v);
        }
        Ok(())
    }
}

/// HTTP/2 clients may split Cookie into several fields; HTTP/1.1 allows one (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use frontdesk_snapshot::Segment;
    use http::Request;

    use super::*;

    fn head(uri: &str, version: Version) -> Parts {
        let (parts, ()) = Request::builder()
            .uri(uri)
            .version(version)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    fn rule(rewrite: Option<snap::Rewrite>, set: &[(&str, &str)]) -> snap::Rule {
        let mut r: snap::Rule = serde_json::from_value(serde_json::json!({
            "id": "ns/r/0", "matches": [], "timeoutMs": 1000,
            "action": {"type": "directResponse", "status": 200}
        }))
        .unwrap();
        r.rewrite = rewrite;
        r.request_headers.set = set
            .iter()
            .map(|(n, v)| snap::Header {
                name: n.to_string(),
                value: v.to_string(),
                sensitive: false,
            })
            .collect();
        r
    }

    const CLIENT: Peer = Peer {
        ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
        trusted: false,
        tls: false,
    };

    #[test]
    fn by_default_the_target_is_kept_and_forwarding_headers_and_host_are_set() {
        let t = RequestTransforms::build(&rule(None, &[])).unwrap();
        let mut h = head("/a/b?x=1", Version::HTTP_2);
        h.headers.append(COOKIE, "a=1".parse().unwrap());
        h.headers.append(COOKIE, "b=2".parse().unwrap());
        let authority: Authority = "api.example.com:8080".parse().unwrap();
        let m = MatchedPath {
            path: "/a/b",
            ..Default::default()
        };
        t.apply(&mut h, &m, CLIENT, Some(&authority)).unwrap();
        assert_eq!(h.uri, "/a/b?x=1");
        assert_eq!(h.version, Version::HTTP_11);
        assert_eq!(h.headers[COOKIE], "a=1; b=2");
        assert_eq!(h.headers[HOST], "api.example.com:8080");
        assert_eq!(h.headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h.headers["x-forwarded-host"], "api.example.com:8080");
    }

    #[test]
    fn the_backend_sees_the_canonical_path_rewritten_with_captures_and_edits() {
        let rw = snap::Rewrite {
            path: Some(PathRewrite::Full {
                parts: vec![
                    Segment::Literal("/v2/orders/".into()),
                    Segment::Capture("id".into()),
                ],
            }),
            host: Some("orders.internal".into()),
        };
        let t = RequestTransforms::build(&rule(Some(rw), &[("x-gateway", "frontdesk")])).unwrap();
        let mut h = head("/api//orders/7?view=full", Version::HTTP_11);
        h.headers.insert("x-gateway", "forged".parse().unwrap());
        let m = MatchedPath {
            path: "/api/orders/7",
            captures: &[("id", "7")],
            prefix: None,
        };
        t.apply(&mut h, &m, CLIENT, None).unwrap();
        assert_eq!(h.uri, "/v2/orders/7?view=full");
        assert_eq!(h.headers[HOST], "orders.internal");
        assert_eq!(h.headers["x-gateway"], "frontdesk");

        let plain = RequestTransforms::build(&rule(None, &[])).unwrap();
        let mut h = head("/a/./b", Version::HTTP_11);
        let m = MatchedPath {
            path: "/a/b",
            ..Default::default()
        };
        plain.apply(&mut h, &m, CLIENT, None).unwrap();
        assert_eq!(
            h.uri, "/a/b",
            "the backend never sees the spelling routing did not"
        );
    }
}
