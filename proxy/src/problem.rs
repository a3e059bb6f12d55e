//! Errors answered to clients, as RFC 9457 `application/problem+json`.
//!
//! Every cause has a stable `type` URI, its HTTP status, and whether retrying the request could
//! help (used by retries later). The body never echoes request content beyond the method and
//! path, so it cannot reflect credentials back.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::body::{ProxyBody, full};

/// Why the proxy answered instead of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    BadRequest,
    /// The request head is larger than the gateway accepts (431).
    HeadersTooLarge,
    /// The request body is larger than the route accepts (413).
    BodyTooLarge,
    /// The client stopped sending its request body (408).
    BodyTimeout,
    /// Missing or invalid credentials (401, with `WWW-Authenticate`).
    Unauthorized,
    /// Authenticated, but not allowed (403).
    Forbidden,
    /// The rule's policy is missing or invalid: refused rather than served unchecked (503).
    PolicyUnavailable,
    /// Keys or the authorization service could not be reached (503).
    AuthUnavailable,
    /// Over a rate limit (429, with Retry-After).
    RateLimited,
    /// A global rate limit could not be checked and its policy says Deny (503).
    RateLimitUnavailable,
    NoRoute,
    NoEndpoints,
    /// The route sends this request to a backend reference that is not valid (a Gateway API
    /// route naming a missing Service, or one it may not reference) (500).
    InvalidBackend,
    UpstreamUnavailable,
    UpstreamTimeout,
    /// The request said `only-if-cached` and the cache has no answer it may use.
    NotCached,
    /// The backend has as many requests in flight and waiting as its circuit breaker allows
    /// (503).
    CircuitOpen,
    /// A CORS preflight from an origin, or asking for a method or header, the route's Policy
    /// does not allow (403).
    CorsRefused,
    /// A request for something the gateway does not do (an extended CONNECT for a protocol
    /// other than WebSocket) (501).
    NotImplemented,
    Internal,
}

impl ProblemKind {
    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::BadRequest => StatusCode::BAD_REQUEST,
            ProblemKind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProblemKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProblemKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden => StatusCode::FORBIDDEN,
            ProblemKind::PolicyUnavailable
            | ProblemKind::AuthUnavailable
            | ProblemKind::RateLimitUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ProblemKind::NoRoute => StatusCode::NOT_FOUND,
            ProblemKind::NoEndpoints => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::InvalidBackend => StatusCode::INTERNAL_SERVER_ERROR,
            ProblemKind::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            ProblemKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProblemKind::NotCached => StatusCode::GATEWAY_TIMEOUT,
            ProblemKind::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::CorsRefused => StatusCode::FORBIDDEN,
            ProblemKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The last part of the `type` URI; stable, documented in docs/proxy.md and docs/policies.md.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "bad-request",
            ProblemKind::HeadersTooLarge => "headers-too-large",
            ProblemKind::BodyTooLarge => "body-too-large",
            ProblemKind::BodyTimeout => "body-timeout",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::PolicyUnavailable => "policy-unavailable",
            ProblemKind::AuthUnavailable => "auth-unavailable",
            ProblemKind::RateLimited => "rate-limited",
            ProblemKind::RateLimitUnavailable => "rate-limit-unavailable",
            ProblemKind::NoRoute => "no-route",
            ProblemKind::NoEndpoints => "no-endpoints",
            ProblemKind::InvalidBackend => "invalid-backend",
            ProblemKind::UpstreamUnavailable => "upstream-unavailable",
            ProblemKind::UpstreamTimeout => "upstream-timeout",
            ProblemKind::NotCached => "not-cached",
            ProblemKind::CircuitOpen => "circuit-open",
            ProblemKind::CorsRefused => "cors-refused",
            ProblemKind::NotImplemented => "not-implemented",
            ProblemKind::Internal => "internal",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "Bad request",
            ProblemKind::HeadersTooLarge => "Request headers too large",
            ProblemKind::BodyTooLarge => "Request body too large",
            ProblemKind::BodyTimeout => "The request body stopped arriving",
            ProblemKind::Unauthorized => "Authentication required",
            ProblemKind::Forbidden => "Not allowed",
            ProblemKind::PolicyUnavailable => "The route's policy is not available",
            ProblemKind::AuthUnavailable => "Credentials cannot be checked right now",
            ProblemKind::RateLimited => "Too many requests",
            ProblemKind::RateLimitUnavailable => "The rate limit cannot be checked right now",
            ProblemKind::NoRoute => "No route matches the request",
            ProblemKind::NoEndpoints => "No backend endpoint is available",
            ProblemKind::InvalidBackend => "The route's backend is not valid",
            ProblemKind::UpstreamUnavailable => "The backend could not be reached",
            ProblemKind::UpstreamTimeout => "The backend did not answer in time",
            ProblemKind::NotCached => "The answer is not in the cache",
            ProblemKind::CircuitOpen => "The backend is at its bound of requests",
            ProblemKind::CorsRefused => "Cross-origin request not allowed",
            ProblemKind::NotImplemented => "Not something this gateway does",
            ProblemKind::Internal => "Internal gateway error",
        }
    }

    /// Whether the client is at fault (a 4xx), not the backend.
    pub fn is_client_error(self) -> bool {
        self.status().is_client_error()
    }

    /// Whether the same request may succeed on another attempt or endpoint.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ProblemKind::NoEndpoints
                | ProblemKind::UpstreamUnavailable
                | ProblemKind::UpstreamTimeout
        )
    }
}

/// A problem to answer, with a human-readable detail.
#[derive(Debug)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
    /// Headers of the answer (WWW-Authenticate, Retry-After, RateLimit...).
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    pub fn into_response(self, request_id: &str) -> Response<ProxyBody> {
        let status = self.kind.status();
        let body = json!({
            "type": format!("https://frontdesk.dev/problems/{}", self.kind.slug()),
            "title": self.kind.title(),
            "status": status.as_u16(),
            "detail": self.detail,
            "requestId": request_id,
        });
        let mut resp = Response::new(full(Bytes::from(body.to_string())));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in self.headers {
            resp.headers_mut().append(name, value);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn problems_are_rfc9457_json() {
        let resp =
            Problem::new(ProblemKind::UpstreamTimeout, "no answer in 2s").into_response("abc");
        assert_eq!(resp.status(), 504);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "https://frontdesk.dev/problems/upstream-timeout");
        assert_eq!(v["status"], 504);
        assert_eq!(v["requestId"], "abc");
    }
}
