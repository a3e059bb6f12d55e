//! gRPC as the proxy sees it: which requests are gRPC, the deadline a client gave
//! (`grpc-timeout`), and the proxy's own errors answered the way gRPC clients read them.
//!
//! A gRPC client reads a call's outcome from `grpc-status` and `grpc-message`, not from the
//! HTTP status, and cannot read a problem+json body: a refused call (a missing credential, a
//! rate limit, a backend down) is answered `200` with `content-type: application/grpc` and the
//! status in the header section, with no body (a "Trailers-Only" answer, which HTTP/2 sends as
//! one HEADERS frame ending the stream). The HTTP status a problem would have had maps onto the
//! gRPC code a client expects ([`code`]).

use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::body::{ProxyBody, empty};
use crate::http1::raw_fields::FieldsView;
use crate::problem::{Problem, ProblemKind};

pub static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// gRPC status codes the proxy answers with (grpc/doc/statuscodes.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// Whether a request is a gRPC call (`application/grpc`, `application/grpc+proto`...), not
/// gRPC-Web.
pub fn is_grpc(fields: FieldsView<'_>) -> bool {
    fields.values(&CONTENT_TYPE).next().is_some_and(|v| {
        v.strip_prefix(b"application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
    })
}

/// The code of the proxy's own answer of `kind`.
pub fn code(kind: ProblemKind) -> Code {
    match kind {
        ProblemKind::Unauthorized => Code::Unauthenticated,
        ProblemKind::Forbidden | ProblemKind::CorsRefused => Code::PermissionDenied,
        ProblemKind::RateLimited | ProblemKind::BodyTooLarge | ProblemKind::HeadersTooLarge => {
            Code::ResourceExhausted
        }
        ProblemKind::UpstreamTimeout | ProblemKind::BodyTimeout => Code::DeadlineExceeded,
        ProblemKind::NoRoute | ProblemKind::NotImplemented => Code::Unimplemented,
        ProblemKind::BadRequest => Code::InvalidArgument,
        ProblemKind::NotCached => Code::NotFound,
        ProblemKind::PolicyUnavailable
        | ProblemKind::AuthUnavailable
        | ProblemKind::RateLimitUnavailable
        | ProblemKind::NoEndpoints
        | ProblemKind::InvalidBackend
        | ProblemKind::UpstreamUnavailable
        | ProblemKind::CircuitOpen => Code::Unavailable,
        ProblemKind::Internal => Code::Internal,
    }
}

/// The problem as a Trailers-Only gRPC answer of `content_type` (gRPC's, or gRPC-Web's): `200`,
/// the code and the detail as `grpc-message`, and the problem's own fields
/// (`www-authenticate`, RateLimit...).
pub fn error_response(problem: Problem, content_type: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        GRPC_STATUS.clone(),
        HeaderValue::from(code(problem.kind) as u16),
    );
    if let Ok(message) = HeaderValue::from_str(&percent_encode(&problem.detail)) {
        headers.insert(GRPC_MESSAGE.clone(), message);
    }
    for (name, value) in problem.headers {
        headers.append(name, value);
    }
    resp
}

/// `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%` (gRPC over
/// HTTP/2, "Responses").
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The deadline a `grpc-timeout` value gives: at most 8 digits and a unit (`H`, `M`, `S`, `m`
/// milliseconds, `u` microseconds, `n` nanoseconds); `None` when it is not one.
pub fn timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    #[test]
    fn grpc_calls_are_told_from_grpc_web_and_others() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, ct.parse().unwrap());
            is_grpc(FieldsView::Map(&h))
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(with("application/grpc;charset=utf-8"));
        assert!(!with("application/grpc-web"));
        assert!(!with("application/grpc-web-text+proto"));
        assert!(!with("application/json"));
        assert!(!is_grpc(FieldsView::Map(&HeaderMap::new())));
    }

    #[test]
    fn timeouts_parse_as_the_spec_writes_them() {
        assert_eq!(timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout(b"5M"), Some(Duration::from_secs(300)));
        assert_eq!(timeout(b"250u"), Some(Duration::from_micros(250)));
        assert_eq!(
            timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [
            &b"123456789m"[..],
            b"10",
            b"m",
            b"-1S",
            b"1.5S",
            b"10s",
            b"",
        ] {
            assert_eq!(timeout(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn problems_become_trailers_only_answers_with_the_matching_code() {
        let mut p = Problem::new(ProblemKind::Unauthorized, "no credential: 100% missing");
        p.headers
            .push((http::header::WWW_AUTHENTICATE, "Bearer".parse().unwrap()));
        let resp = error_response(p, "application/grpc");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        assert_eq!(resp.headers()["grpc-status"], "16");
        assert_eq!(
            resp.headers()["grpc-message"],
            "no credential: 100%25 missing"
        );
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert!(http_body::Body::is_end_stream(resp.body()));
        assert_eq!(code(ProblemKind::RateLimited), Code::ResourceExhausted);
        assert_eq!(code(ProblemKind::UpstreamTimeout), Code::DeadlineExceeded);
        assert_eq!(code(ProblemKind::Forbidden), Code::PermissionDenied);
        assert_eq!(code(ProblemKind::UpstreamUnavailable), Code::Unavailable);
    }
}
