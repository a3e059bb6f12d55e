//! Request target: the first stage, for every request. Reads the host the request is for and
//! the canonical form of its path (what routes, policies and the backend see), and removes
//! hop-by-hop headers (RFC 9110 §7.6.1) before any later stage adds headers of its own, so a
//! client's `Connection: x-user-id` cannot remove what a policy sets. A request whose target
//! cannot be read is answered 400.
//!
//! The host: RFC 9112 §3.2 and RFC 9113 §8.3.1: the authority of an absolute-form target or HTTP/2's
//! `:authority` wins over Host; an HTTP/1.1 request needs exactly one Host; a Host that is not a
//! valid authority (`evil.com/x?`, `user@host`) is refused, so it can never reach a redirect's
//! Location or a backend's Host header.

use http::header::HOST;
use http::uri::Authority;
use http::{Request, Version};

use crate::forwarding::{
    remove_forwarding_claims, remove_hop_by_hop, remove_raw_forwarding_claims,
};
use crate::http1::raw_fields::{FieldsView, RawFields};
use crate::problem::{Problem, ProblemKind};

/// Where the client sent the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// As the client wrote it (forwarded as Host and X-Forwarded-Host).
    pub authority: Option<Authority>,
    /// Lower-case, without port or trailing dot: what routes are matched against.
    pub host: String,
    pub port: Option<u16>,
    /// The canonical path ([`frontdesk_snapshot::path::normalize`]).
    pub path: String,
}

/// The stage: the request's target, its hop-by-hop headers gone, and what only a trusted proxy
/// may say about the client gone unless the peer is one
/// ([`crate::forwarding::remove_forwarding_claims`]).
/// Fields kept as the client sent them ([`RawFields`]) had their hop-by-hop fields left out
/// when they were read.
pub fn read<B>(req: &mut Request<B>, trusted_peer: bool) -> Result<Target, Problem> {
    let mut t = target(req).map_err(|why| Problem::new(ProblemKind::BadRequest, why))?;
    t.path = frontdesk_snapshot::path::normalize(req.uri().path())
        .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))?
        .into_owned();
    match req.extensions_mut().get_mut::<RawFields>() {
        Some(raw) => remove_raw_forwarding_claims(raw, trusted_peer),
        None => {
            remove_hop_by_hop(req.headers_mut());
            remove_forwarding_claims(req.headers_mut(), trusted_peer);
        }
    }
    Ok(t)
}

pub fn target<B>(req: &Request<B>) -> Result<Target, String> {
    let mut hosts = FieldsView::of(req).values(&HOST);
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err("the request has more than one Host header".into());
    }
    let header = header
        .map(|h| {
            Authority::try_from(h)
                .ok()
                .filter(|a| !a.as_str().contains('@'))
                .ok_or_else(|| "the Host header is not a valid host[:port]".to_string())
        })
        .transpose()?;
    let authority = match (req.uri().authority(), header) {
        (Some(uri), Some(h)) if !uri.as_str().eq_ignore_ascii_case(h.as_str()) => {
            return Err("the Host header differs from the request target's authority".into());
        }
        (Some(uri), _) => {
            if uri.as_str().contains('@') {
                return Err("the request target's authority must not contain credentials".into());
            }
            Some(uri.clone())
        }
        (None, Some(h)) => Some(h),
        (None, None) if req.version() == Version::HTTP_11 => {
            return Err("an HTTP/1.1 request needs a Host header".into());
        }
        (None, None) => None,
    };
    let (host, port) = match &authority {
        Some(a) => {
            let (host, port) = host_and_port(a.as_str());
            (host.trim_end_matches('.').to_ascii_lowercase(), port)
        }
        None => (String::new(), None),
    };
    Ok(Target {
        authority,
        host,
        port,
        path: String::new(),
    })
}

/// The host and port of an authority `Authority` already parsed (without userinfo, which
/// `target` refuses): what `Authority::host` and `port_u16` say, in one pass over a string
/// their two scans each cost a few hundred instructions per request for.
fn host_and_port(authority: &str) -> (&str, Option<u16>) {
    // An IPv6 literal keeps its brackets, as `Authority::host` does.
    let host_end = match authority.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(authority.len(), |i| i + 2),
        None => authority.rfind(':').unwrap_or(authority.len()),
    };
    let (host, rest) = authority.split_at(host_end);
    let port = rest.strip_prefix(':').and_then(|p| p.parse().ok());
    (host, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut r = Request::builder().uri(uri).version(version);
        for h in hosts {
            r = r.header(HOST, *h);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn host_and_port_agree_with_the_http_crate() {
        for a in [
            "example.com",
            "example.com:8080",
            "example.com:",
            "[::1]",
            "[::1]:443",
            "[fe80::1%25eth0]:8443",
            "10.0.0.1:80",
            "a:99999",
        ] {
            let parsed: Authority = a.parse().unwrap();
            assert_eq!(host_and_port(a), (parsed.host(), parsed.port_u16()), "{a}");
        }
    }

    #[test]
    fn host_headers_are_parsed_and_normalised() {
        let t = target(&req(Version::HTTP_11, "/x", &["Example.COM.:8080"])).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.com", Some(8080)));
        assert_eq!(t.authority.unwrap().as_str(), "Example.COM.:8080");
        let t = target(&req(Version::HTTP_11, "/x", &["[::1]:80"])).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("[::1]", Some(80)));
    }

    #[test]
    fn the_target_authority_wins_and_must_agree() {
        let t = target(&req(Version::HTTP_2, "http://api.example.com/x", &[])).unwrap();
        assert_eq!(t.host, "api.example.com");
        assert!(target(&req(Version::HTTP_11, "http://a.com/x", &["b.com"])).is_err());
        assert!(target(&req(Version::HTTP_11, "http://a.com/x", &["A.com"])).is_ok());
    }

    #[test]
    fn bad_missing_and_duplicate_hosts_are_refused() {
        assert!(target(&req(Version::HTTP_11, "/x", &["evil.com/x?"])).is_err());
        assert!(target(&req(Version::HTTP_11, "/x", &["user@host"])).is_err());
        assert!(target(&req(Version::HTTP_11, "/x", &["a", "b"])).is_err());
        assert!(target(&req(Version::HTTP_11, "/x", &[])).is_err());
        let t = target(&req(Version::HTTP_10, "/x", &[])).unwrap();
        assert_eq!(t, Target::default());
    }

    #[test]
    fn the_stage_canonicalises_the_path_and_drops_hop_by_hop_headers() {
        let mut r = req(Version::HTTP_11, "/a//b/../c?q=1", &["h"]);
        r.headers_mut()
            .insert("connection", "x-user-id".parse().unwrap());
        r.headers_mut()
            .insert("x-user-id", "forged".parse().unwrap());
        let t = read(&mut r, false).unwrap();
        assert_eq!(t.path, "/a/c");
        assert!(r.headers().get("x-user-id").is_none());
        assert!(r.headers().get("connection").is_none());
        let mut bad = req(Version::HTTP_11, "/x", &["a", "b"]);
        assert_eq!(
            read(&mut bad, false).unwrap_err().kind,
            ProblemKind::BadRequest
        );
    }
}
