//! CORS (a Policy's `cors`): runs after the route match and before authenticate, so a
//! browser's preflight `OPTIONS` is answered by the gateway without credentials and never
//! reaches the backend. Rules without the section skip the stage.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from an allowed
//!   origin, asking for allowed methods and headers, gets 204 with the
//!   `Access-Control-Allow-*` headers and `Access-Control-Max-Age`; anything else gets a 403
//!   `cors-refused` problem, saying what was not allowed.
//! - Any other request from an allowed origin goes on; `Access-Control-Allow-Origin` (and
//!   `-Credentials`, `-Expose-Headers`) join [`Exchange::response_headers`], which the respond
//!   path puts on every answer, errors included (so the page can read a 401 or 429). A request
//!   from another origin goes on without them: the browser keeps the answer from the page.
//! - Every answer of a rule with the section carries `Vary: Origin`: caches must not give one
//!   origin's answer to another.
//! - The allowed origin is echoed, never `*`, when credentials are allowed.
//! - The Policy's CORS headers are the only ones: a backend's own are dropped.

use bytes::Bytes;
use frontdesk_snapshot as snap;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Empty};

use crate::body::ProxyBody;
use crate::exchange::Exchange;
use crate::http1::raw_fields::FieldsView;
use crate::problem::{Problem, ProblemKind};

/// What the names of the response headers CORS is made of start with; on a rule with the
/// section, only the Policy's reach the client.
pub const PREFIX: &str = "access-control-";

/// Removes a backend's own CORS headers from an answer's map.
pub fn remove_from(headers: &mut HeaderMap) {
    let theirs: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    for name in theirs {
        headers.remove(&name);
    }
}

/// A rule's CORS, built once per snapshot.
#[derive(Debug)]
pub struct Cors {
    any_origin: bool,
    /// Exact origins, lower-case.
    origins: Vec<Box<str>>,
    /// `(scheme://, .domain[:port])`: any subdomain.
    suffixes: Vec<(Box<str>, Box<str>)>,
    regexes: Option<regex::RegexSet>,
    methods: Vec<Method>,
    allow_methods: HeaderValue,
    any_header: bool,
    /// Lower-case.
    headers: Vec<Box<str>>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

impl Cors {
    pub fn build(c: &snap::Cors) -> Result<Self, String> {
        let joined = |list: &[String]| -> Result<Option<HeaderValue>, String> {
            if list.is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(&list.join(", "))
                .map(Some)
                .map_err(|e| e.to_string())
        };
        let named: Vec<String> = c.headers.iter().filter(|h| *h != "*").cloned().collect();
        Ok(Cors {
            any_origin: c.origins.iter().any(|o| o == "*"),
            origins: c.origins.iter().map(|o| o.as_str().into()).collect(),
            suffixes: c
                .origin_suffixes
                .iter()
                .filter_map(|s| {
                    let (scheme, domain) = s.split_once("://")?;
                    Some((format!("{scheme}://").into(), domain.into()))
                })
                .collect(),
            // Anchored here too: the snapshot's are, but a regex matching part of an origin
            // would allow far more than meant.
            regexes: if c.origin_regexes.is_empty() {
                None
            } else {
                let anchored = c.origin_regexes.iter().map(|r| format!("^(?:{r})$"));
                Some(regex::RegexSet::new(anchored).map_err(|e| e.to_string())?)
            },
            methods: c
                .methods
                .iter()
                .map(|m| Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
            allow_methods: joined(&c.methods)?.unwrap_or(HeaderValue::from_static("")),
            any_header: c.headers.iter().any(|h| h == "*"),
            allow_headers: joined(&named)?,
            headers: named.iter().map(|h| h.as_str().into()).collect(),
            expose_headers: joined(&c.expose_headers)?,
            credentials: c.credentials,
            max_age: c.max_age_seconds.map(HeaderValue::from),
        })
    }

    /// Looks at a request: answers a preflight (`Some`), or lets it go on with its CORS
    /// headers in `ex`'s response headers (`None`).
    pub fn check(
        &self,
        method: &Method,
        fields: FieldsView<'_>,
        ex: &mut Exchange,
    ) -> Option<Result<Response<ProxyBody>, Problem>> {
        ex.owns_cors = true;
        let out = &mut ex.response_headers;
        // Room for what an allowed request adds: one allocation.
        out.reserve(4);
        out.push((VARY, HeaderValue::from_static("Origin")));
        let origin = fields.get(&ORIGIN)?;
        let allowed = self.allows(origin.as_bytes());
        let asked = if method == Method::OPTIONS {
            fields.get(&ACCESS_CONTROL_REQUEST_METHOD)
        } else {
            None
        };
        let Some(asked) = asked else {
            if allowed {
                self.allow(&origin, out);
                if let Some(v) = &self.expose_headers {
                    out.push((ACCESS_CONTROL_EXPOSE_HEADERS, v.clone()));
                }
            }
            return None;
        };
        out.push((
            VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        ));
        if !allowed {
            return Some(Err(refused("the origin is not allowed to call this route")));
        }
        // The CORS-safelisted methods (GET, HEAD, POST) need no listing (Fetch standard).
        let safelisted = matches!(asked.as_bytes(), b"GET" | b"HEAD" | b"POST");
        if !safelisted
            && !self
                .methods
                .iter()
                .any(|m| m.as_str().as_bytes() == asked.as_bytes())
        {
            let shown = String::from_utf8_lossy(asked.as_bytes()).into_owned();
            return Some(Err(refused(format!(
                "method {shown:?} is not allowed from other origins"
            ))));
        }
        let requested = fields.get(&ACCESS_CONTROL_REQUEST_HEADERS);
        if !self.any_header
            && let Some(list) = &requested
            && let Some(name) = self.first_not_allowed(list)
        {
            return Some(Err(refused(format!(
                "header {name:?} is not allowed from other origins"
            ))));
        }
        self.allow(&origin, out);
        out.push((ACCESS_CONTROL_ALLOW_METHODS, self.allow_methods.clone()));
        let allow_headers = if self.any_header {
            requested
        } else {
            self.allow_headers.clone()
        };
        if let Some(v) = allow_headers {
            out.push((ACCESS_CONTROL_ALLOW_HEADERS, v));
        }
        if let Some(v) = &self.max_age {
            out.push((ACCESS_CONTROL_MAX_AGE, v.clone()));
        }
        let mut resp = Response::new(Empty::<Bytes>::new().map_err(|e| match e {}).boxed());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        Some(Ok(resp))
    }

    fn allow(&self, origin: &HeaderValue, out: &mut Vec<(HeaderName, HeaderValue)>) {
        if self.any_origin && !self.credentials {
            out.push((ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")));
        } else {
            out.push((ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
        }
        if self.credentials {
            out.push((
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
    }

    /// Whether `origin` (as sent: `scheme://host[:port]`; case does not matter) may call the
    /// rule.
    fn allows(&self, origin: &[u8]) -> bool {
        if self.any_origin {
            return true;
        }
        let suffixed = |(scheme, domain): &(Box<str>, Box<str>)| {
            let (scheme, domain) = (scheme.as_bytes(), domain.as_bytes());
            origin.len() > scheme.len() + domain.len()
                && origin[..scheme.len()].eq_ignore_ascii_case(scheme)
                && origin[origin.len() - domain.len()..].eq_ignore_ascii_case(domain)
                && !origin[scheme.len()..origin.len() - domain.len()]
                    .iter()
                    .any(|b| matches!(b, b':' | b'/'))
        };
        self.origins
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
            || self.suffixes.iter().any(suffixed)
            || self
                .regexes
                .as_ref()
                .is_some_and(|r| std::str::from_utf8(origin).is_ok_and(|o| r.is_match(o)))
    }

    /// The first name of an `Access-Control-Request-Headers` list that is not allowed.
    fn first_not_allowed(&self, list: &HeaderValue) -> Option<String> {
        let Ok(list) = list.to_str() else {
            return Some(String::from_utf8_lossy(list.as_bytes()).into_owned());
        };
        list.split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .find(|h| !self.headers.iter().any(|a| **a == **h))
    }
}

fn refused(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::CorsRefused, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(yaml: &str) -> Cors {
        let c: snap::Cors = serde_json::from_str(yaml).unwrap();
        c.check().unwrap();
        Cors::build(&c).unwrap()
    }

    /// What the stage did (an answer's status or a problem's kind) and the headers it added.
    type Asked = (
        Option<Result<StatusCode, ProblemKind>>,
        Vec<(String, String)>,
    );

    /// Asks with the fields in a map and as sent (HTTP/1): both must give the same answer.
    fn ask(cors: &Cors, method: Method, headers: &[(&str, &str)]) -> Asked {
        let mut map = HeaderMap::new();
        let mut lines = String::new();
        for (n, v) in headers {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
            lines.push_str(&format!("{n}: {v}\r\n"));
        }
        let (raw, _) = crate::http1::raw_fields::tests::read(&lines).unwrap();
        let [from_map, from_raw] = [FieldsView::Map(&map), FieldsView::Raw(&raw)].map(|fields| {
            let mut ex = crate::exchange::tests::exchange();
            let outcome = cors
                .check(&method, fields, &mut ex)
                .map(|r| r.map(|resp| resp.status()).map_err(|p| p.kind));
            let added: Vec<(String, String)> = ex
                .response_headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            (outcome, added)
        });
        assert_eq!(from_map, from_raw);
        from_map
    }

    fn get<'a>(added: &'a [(String, String)], name: &str) -> Option<&'a str> {
        added
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    const SHOP: &str = r#"{"origins": ["https://shop.example.com"], "originSuffixes": ["https://.partners.example"], "originRegexes": ["^(?i:https://pr-[0-9]+\\.preview\\.example)$"], "methods": ["GET", "PUT"], "headers": ["x-trace"], "exposeHeaders": ["x-total"], "credentials": true, "maxAgeSeconds": 600}"#;

    #[test]
    fn an_allowed_preflight_is_answered_with_what_the_policy_allows() {
        let c = cors(SHOP);
        let (outcome, added) = ask(
            &c,
            Method::OPTIONS,
            &[
                ("origin", "https://shop.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "X-Trace"),
            ],
        );
        assert_eq!(outcome, Some(Ok(StatusCode::NO_CONTENT)));
        assert_eq!(
            get(&added, "access-control-allow-origin"),
            Some("https://shop.example.com")
        );
        assert_eq!(
            get(&added, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            get(&added, "access-control-allow-methods"),
            Some("GET, PUT")
        );
        assert_eq!(get(&added, "access-control-allow-headers"), Some("x-trace"));
        assert_eq!(get(&added, "access-control-max-age"), Some("600"));
        assert_eq!(get(&added, "vary"), Some("Origin"));
    }

    #[test]
    fn a_preflight_outside_the_policy_is_refused_with_what_was_not_allowed() {
        let c = cors(SHOP);
        let preflight = |origin: &str, method: &str, headers: &str| {
            ask(
                &c,
                Method::OPTIONS,
                &[
                    ("origin", origin),
                    ("access-control-request-method", method),
                    ("access-control-request-headers", headers),
                ],
            )
        };
        for (origin, method, headers) in [
            ("https://evil.example", "GET", ""),
            // A subdomain wildcard is not the domain itself, nor another port.
            ("https://partners.example", "GET", ""),
            ("https://a.partners.example:8443", "GET", ""),
            ("http://shop.example.com", "GET", ""),
            ("https://shop.example.com", "DELETE", ""),
            ("https://shop.example.com", "GET", "x-trace, x-secret"),
        ] {
            let (outcome, added) = preflight(origin, method, headers);
            assert_eq!(
                outcome,
                Some(Err(ProblemKind::CorsRefused)),
                "{origin} {method} {headers}"
            );
            assert_eq!(get(&added, "access-control-allow-origin"), None);
        }
        // POST is CORS-safelisted: allowed without listing, as browsers expect.
        assert_eq!(
            preflight("https://shop.example.com", "POST", "").0,
            Some(Ok(StatusCode::NO_CONTENT))
        );
        for origin in [
            "https://a.b.partners.example",
            "https://pr-42.preview.example",
            "HTTPS://Shop.Example.com",
        ] {
            assert_eq!(
                preflight(origin, "GET", "").0,
                Some(Ok(StatusCode::NO_CONTENT)),
                "{origin}"
            );
        }
    }

    #[test]
    fn actual_requests_go_on_with_headers_only_for_allowed_origins() {
        let c = cors(SHOP);
        let (outcome, added) = ask(&c, Method::GET, &[("origin", "https://shop.example.com")]);
        assert_eq!(outcome, None);
        assert_eq!(
            get(&added, "access-control-allow-origin"),
            Some("https://shop.example.com")
        );
        assert_eq!(
            get(&added, "access-control-expose-headers"),
            Some("x-total")
        );
        assert_eq!(get(&added, "access-control-allow-methods"), None);
        let (outcome, added) = ask(&c, Method::GET, &[("origin", "https://evil.example")]);
        assert_eq!(outcome, None);
        assert_eq!(added, [("vary".to_string(), "Origin".to_string())]);
        // Not cross-origin at all, and an OPTIONS that is not a preflight: on to the backend.
        assert_eq!(ask(&c, Method::GET, &[]).0, None);
        assert_eq!(
            ask(
                &c,
                Method::OPTIONS,
                &[("origin", "https://shop.example.com")]
            )
            .0,
            None
        );
    }

    #[test]
    fn any_origin_is_a_star_without_credentials_and_any_header_echoes_the_request() {
        let c = cors(r#"{"origins": ["*"], "methods": ["GET"], "headers": ["*"]}"#);
        let (outcome, added) = ask(
            &c,
            Method::OPTIONS,
            &[
                ("origin", "https://anyone.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-a, x-b"),
            ],
        );
        assert_eq!(outcome, Some(Ok(StatusCode::NO_CONTENT)));
        assert_eq!(get(&added, "access-control-allow-origin"), Some("*"));
        assert_eq!(
            get(&added, "access-control-allow-headers"),
            Some("x-a, x-b")
        );
        assert_eq!(get(&added, "access-control-allow-credentials"), None);
    }
}
