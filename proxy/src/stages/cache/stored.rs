//! A stored answer and the answers made from it: the stored one with its `Age`, a `HEAD`'s
//! (fields only), a `304 Not Modified` when the request's conditions say the client has it
//! (RFC 9110 §13), and the stored fields freshened by a backend's 304 (RFC 9111 §4.3.4).
//! Pure: the clock is an argument.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    AGE, CONTENT_LENGTH, DATE, ETAG, HeaderName, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::rfc9111::{Freshness, http_date};
use crate::body::{ProxyBody, empty, full};

/// One answer as the backend gave it, with its clocks.
pub struct Stored {
    pub status: StatusCode,
    /// The backend's fields but `Age` (made anew for each answer) and hop-by-hop ones.
    pub headers: HeaderMap,
    pub body: Bytes,
    pub freshness: Freshness,
    /// What it is purged by (the backend's `Cache-Tag`, which is not among `headers`).
    pub tags: Vec<Box<str>>,
}

/// Fields a 304 carries from the answer it stands for (RFC 9110 §15.4.5), and `Last-Modified`
/// besides (its validator).
const NOT_MODIFIED_FIELDS: [HeaderName; 7] = [
    http::header::CACHE_CONTROL,
    http::header::CONTENT_LOCATION,
    DATE,
    ETAG,
    http::header::EXPIRES,
    LAST_MODIFIED,
    http::header::VARY,
];

/// Fields a backend's 304 does not change in what is stored (RFC 9111 §3.2: the stored
/// answer's framing stays its own).
const KEPT_ON_FRESHEN: [HeaderName; 3] = [
    CONTENT_LENGTH,
    http::header::CONTENT_ENCODING,
    http::header::TRANSFER_ENCODING,
];

impl Stored {
    /// What it says to a `method` request with `request` fields at `now`: 304 when the
    /// request's conditions hold, else its status, fields and (but for `HEAD`) body; `Age`
    /// set either way.
    pub fn answer(
        &self,
        method: &Method,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Response<ProxyBody> {
        let age = age_value(&self.freshness, now);
        if self.status == StatusCode::OK && not_modified(request, &self.headers) {
            let mut resp = Response::new(empty());
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            let headers = resp.headers_mut();
            for name in &NOT_MODIFIED_FIELDS {
                for v in self.headers.get_all(name) {
                    headers.append(name.clone(), v.clone());
                }
            }
            headers.insert(AGE, age);
            return resp;
        }
        let body = if method == Method::HEAD {
            empty()
        } else {
            full(self.body.clone())
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        // The stored framing: the body is whole, so its length is known.
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        resp.headers_mut().insert(AGE, age);
        resp
    }

    /// It, its fields updated by a backend's `304` fields (but its framing), with `freshness`
    /// recomputed by the caller from the result.
    pub fn freshened_headers(&self, not_modified: &HeaderMap) -> HeaderMap {
        let mut headers = self.headers.clone();
        for name in not_modified.keys() {
            if KEPT_ON_FRESHEN.contains(name) || name == AGE {
                continue;
            }
            headers.remove(name);
            for v in not_modified.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        headers
    }

    /// Its validators, for a conditional request to the backend: `If-None-Match` with its
    /// `ETag`, `If-Modified-Since` with its `Last-Modified`.
    pub fn validators(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        if let Some(etag) = self.headers.get(ETAG) {
            out.push((IF_NONE_MATCH, etag.clone()));
        }
        if let Some(lm) = self.headers.get(LAST_MODIFIED) {
            out.push((IF_MODIFIED_SINCE, lm.clone()));
        }
        out
    }
}

/// `Age` in seconds.
fn age_value(freshness: &Freshness, now: SystemTime) -> HeaderValue {
    HeaderValue::from(freshness.age(now).as_secs())
}

/// Whether the request's conditions say it has the answer with `headers` already (RFC 9110
/// §13.2.2): `If-None-Match` when present (weak comparison, `*` matches any), else
/// `If-Modified-Since` against `Last-Modified`.
pub fn not_modified(request: &HeaderMap, headers: &HeaderMap) -> bool {
    if request.contains_key(IF_NONE_MATCH) {
        let Some(etag) = headers.get(ETAG).map(|e| weak_opaque(e.as_bytes())) else {
            return false;
        };
        return request.get_all(IF_NONE_MATCH).iter().any(|line| {
            line.as_bytes()
                .split(|b| *b == b',')
                .map(<[u8]>::trim_ascii)
                .any(|tag| tag == b"*" || weak_opaque(tag) == etag)
        });
    }
    let Some(since) = request.get(IF_MODIFIED_SINCE).and_then(http_date) else {
        return false;
    };
    headers
        .get(LAST_MODIFIED)
        .and_then(http_date)
        .is_some_and(|modified| modified <= since)
}

/// An entity tag without its weakness: weak comparison compares the rest (RFC 9110 §8.8.3.2).
fn weak_opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;
    use crate::stages::cache::rfc9111::CacheControl;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn stored(fields: &[(&str, &str)]) -> Stored {
        let mut headers = HeaderMap::new();
        for (n, v) in fields {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Stored {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"hello"),
            freshness: Freshness {
                lifetime: Duration::from_secs(60),
                initial_age: Duration::from_secs(3),
                received: at(0),
                directives: CacheControl::default(),
            },
            tags: vec![],
        }
    }

    fn request(fields: &[(&str, &str)]) -> HeaderMap {
        stored(fields).headers
    }

    async fn body(resp: Response<ProxyBody>) -> Bytes {
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_get_gets_the_whole_answer_with_its_age_and_a_head_its_fields() {
        let s = stored(&[("etag", "\"v1\""), ("content-type", "text/plain")]);
        let resp = s.answer(&Method::GET, &HeaderMap::new(), at(10));
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["age"], "13");
        assert_eq!(resp.headers()["content-length"], "5");
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(body(resp).await, "hello");
        let resp = s.answer(&Method::HEAD, &HeaderMap::new(), at(10));
        assert_eq!(resp.headers()["content-length"], "5");
        assert_eq!(body(resp).await, "");
    }

    #[tokio::test]
    async fn conditions_that_hold_get_304_with_the_validators() {
        let s = stored(&[
            ("etag", "W/\"v1\""),
            ("last-modified", "Tue, 14 Nov 2023 22:00:00 GMT"),
            ("content-type", "text/plain"),
            ("cache-control", "max-age=60"),
        ]);
        for (fields, expected) in [
            (&[("if-none-match", "\"v1\"")][..], 304),
            (&[("if-none-match", "\"v0\", W/\"v1\"")], 304),
            (&[("if-none-match", "*")], 304),
            (&[("if-none-match", "\"v2\"")], 200),
            // If-None-Match decides alone when present.
            (
                &[
                    ("if-none-match", "\"v2\""),
                    ("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT"),
                ],
                200,
            ),
            (
                &[("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")],
                304,
            ),
            (
                &[("if-modified-since", "Tue, 14 Nov 2023 22:00:00 GMT")],
                304,
            ),
            (
                &[("if-modified-since", "Tue, 14 Nov 2023 21:59:59 GMT")],
                200,
            ),
            (&[("if-modified-since", "yesterday")], 200),
        ] {
            let resp = s.answer(&Method::GET, &request(fields), at(0));
            assert_eq!(resp.status(), expected, "{fields:?}");
            if expected == 304 {
                assert_eq!(resp.headers()["etag"], "W/\"v1\"");
                assert_eq!(resp.headers()["cache-control"], "max-age=60");
                assert_eq!(resp.headers()["age"], "3");
                assert!(!resp.headers().contains_key("content-type"));
                assert_eq!(body(resp).await, "");
            }
        }
        // No validator: no condition can hold.
        let plain = stored(&[]);
        let resp = plain.answer(&Method::GET, &request(&[("if-none-match", "*")]), at(0));
        assert_eq!(resp.status(), 200);
    }

    #[test]
    fn a_304_updates_the_fields_but_the_framing() {
        let s = stored(&[
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("x-version", "1"),
            ("content-length", "5"),
        ]);
        let fresh = s.freshened_headers(&request(&[
            ("cache-control", "max-age=120"),
            ("x-version", "2"),
            ("content-length", "0"),
            ("age", "7"),
        ]));
        assert_eq!(fresh["cache-control"], "max-age=120");
        assert_eq!(fresh["x-version"], "2");
        assert_eq!(fresh["content-length"], "5");
        assert_eq!(fresh["etag"], "\"v1\"");
        assert!(!fresh.contains_key("age"));
        assert_eq!(
            s.validators(),
            [(IF_NONE_MATCH, HeaderValue::from_static("\"v1\""))]
        );
    }
}
