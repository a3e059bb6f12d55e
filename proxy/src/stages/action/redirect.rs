//! The redirect action: a Location built from the request and the rule's redirect (scheme,
//! host, port, path rewrite), with 301/302/303/307/308.

use bytes::Bytes;
use frontdesk_snapshot as snap;
use http::header::LOCATION;
use http::{HeaderValue, Response, StatusCode};

use super::Input;
use crate::body::{ProxyBody, full};
use crate::problem::{Problem, ProblemKind};
use crate::transforms::rewrite_path;

pub struct Redirect {
    redirect: snap::Redirect,
    status: StatusCode,
}

impl Redirect {
    pub fn build(r: &snap::Redirect) -> Result<Self, String> {
        Ok(Redirect {
            status: StatusCode::from_u16(r.status).map_err(|e| e.to_string())?,
            redirect: r.clone(),
        })
    }

    pub fn answer(
        &self,
        input: &Input<'_>,
        query: Option<&str>,
    ) -> Result<Response<ProxyBody>, Problem> {
        let m = &input.matched;
        let location = redirect_location(
            &self.redirect,
            input.host,
            input.port,
            m.path,
            query,
            m.captures,
            m.prefix,
        );
        let location = HeaderValue::from_str(&location).map_err(|_| {
            Problem::new(
                ProblemKind::BadRequest,
                "the redirect location is not a valid header value",
            )
        })?;
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(LOCATION, location);
        Ok(resp)
    }
}

/// Where ACME HTTP-01 challenges are asked (RFC 8555 §8.3): never redirected to HTTPS, so a
/// certificate can be issued for a host that does not serve HTTPS yet.
const ACME_CHALLENGES: &str = "/.well-known/acme-challenge/";

/// The answer of an HTTP port whose Gateway redirects to HTTPS (`frontdesk.dev/redirect-to-https`):
/// 308 to the same host, canonical path and query on `https://` at `port`. `None` for ACME
/// challenges and for requests without a host (they go on to the routes).
pub fn to_https(
    host: &str,
    path: &str,
    query: Option<&str>,
    port: u16,
) -> Option<Response<ProxyBody>> {
    if host.is_empty() || path.starts_with(ACME_CHALLENGES) {
        return None;
    }
    let https = snap::Redirect {
        scheme: Some("https".into()),
        host: None,
        port: Some(port),
        path: None,
        status: 308,
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let location = redirect_location(&https, Some(&host), None, path, query, &[], None);
    let location = HeaderValue::from_str(&location).ok()?;
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(LOCATION, location);
    Some(resp)
}

/// The Location of a redirect. Parts the redirect does not set keep the request's values; a
/// changed scheme without an explicit port drops the request's port. Without any host (an
/// HTTP/1.0 request without Host, and no `redirect.host`) the Location is relative.
pub fn redirect_location(
    r: &snap::Redirect,
    req_host: Option<&str>,
    req_port: Option<u16>,
    path: &str,
    query: Option<&str>,
    captures: &[(&str, &str)],
    prefix: Option<&str>,
) -> String {
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let path = r.path.as_ref().map_or_else(
        || path.to_string(),
        |rw| rewrite_path(rw, path, captures, prefix),
    );
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let Some(host) = r.host.as_deref().or(req_host) else {
        return format!("{path}{query}");
    };
    let port = match r.port {
        Some(p) => Some(p),
        None if r.scheme.is_some() && scheme != "http" => None,
        None => req_port,
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    match port.filter(|p| *p != default_port) {
        Some(p) => format!("{scheme}://{host}:{p}{path}{query}"),
        None => format!("{scheme}://{host}{path}{query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_what_they_do_not_set() {
        let r = snap::Redirect {
            scheme: Some("https".into()),
            host: None,
            port: None,
            path: None,
            status: 301,
        };
        assert_eq!(
            redirect_location(&r, Some("a.com"), Some(8080), "/x", Some("q=1"), &[], None),
            "https://a.com/x?q=1"
        );
        let r = snap::Redirect {
            scheme: None,
            host: Some("b.com".into()),
            port: None,
            path: None,
            status: 302,
        };
        assert_eq!(
            redirect_location(&r, Some("a.com"), Some(8080), "/x", None, &[], None),
            "http://b.com:8080/x"
        );
    }

    #[test]
    fn http_ports_redirect_to_https_but_not_acme_challenges() {
        let to = |host, path, query, port| {
            to_https(host, path, query, port)
                .map(|r| r.headers()[LOCATION].to_str().unwrap().to_string())
        };
        assert_eq!(
            to("shop.example.com", "/a/b", Some("x=1"), 443).as_deref(),
            Some("https://shop.example.com/a/b?x=1")
        );
        assert_eq!(
            to("shop.example.com", "/", None, 8443).as_deref(),
            Some("https://shop.example.com:8443/")
        );
        assert_eq!(to("::1", "/", None, 443).as_deref(), Some("https://[::1]/"));
        assert_eq!(
            to(
                "shop.example.com",
                "/.well-known/acme-challenge/abc",
                None,
                443
            ),
            None
        );
        assert_eq!(to("", "/", None, 443), None);
        let status = to_https("a.example", "/", None, 443).unwrap().status();
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    }

    #[test]
    fn redirects_without_any_host_are_relative() {
        let r = snap::Redirect {
            scheme: None,
            host: None,
            port: None,
            path: None,
            status: 302,
        };
        assert_eq!(
            redirect_location(&r, None, None, "/x", Some("a=1"), &[], None),
            "/x?a=1"
        );
    }
}
