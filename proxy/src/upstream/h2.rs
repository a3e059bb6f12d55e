//! HTTP/2 to backends (`protocol: h2c | h2 | auto`): one multiplexed connection per endpoint
//! (hyper's client, with its connection task), made on first use and again once it closed;
//! requests wait for room when the backend's stream limit is reached.
//!
//! What is sent: the request with an absolute target (`:scheme`, and `:authority` from the
//! Host the request path settled on), without the fields HTTP/2 forbids (RFC 9113 §8.2.2:
//! `Connection` and what it names, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`,
//! `Upgrade`, and `TE` but `trailers`), with `te: trailers` for gRPC (its servers require it);
//! the body's length is its own. Trailers pass both ways. What comes back is relayed as it
//! came, trailers included ([`super::response_body::ResponseBody::Http2`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TE, TRANSFER_ENCODING, UPGRADE,
};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Request, Response, Uri, Version};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::pool::{ConnectError, EndpointPool, Timeouts};
use super::response_body::ResponseBody;
use super::tls::BackendIo;
use super::{Endpoint, TryError, UpstreamBody};
use crate::http1::raw_fields::RawFields;

/// An endpoint's HTTP/2 connection: the sender of its requests, when one is open.
#[derive(Default)]
pub struct Slot {
    sender: parking_lot::Mutex<Option<SendRequest<UpstreamBody>>>,
    /// Held while a connection is made (or, for `auto`, while the first one asks ALPN), so
    /// concurrent requests wait for that one instead of making their own.
    pub(super) dialing: tokio::sync::Mutex<()>,
    /// Dials that failed: requests that waited for one fail with it rather than each trying
    /// again in turn (an endpoint that is down would make the last of them wait for all).
    failures: AtomicU64,
}

impl Slot {
    /// The open connection's sender, if there is one.
    fn open(&self) -> Option<SendRequest<UpstreamBody>> {
        self.sender
            .lock()
            .as_ref()
            .filter(|s| !s.is_closed())
            .cloned()
    }

    /// Dials failed so far.
    pub(super) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    pub(super) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Release);
    }

    /// Makes `io` (a connection whose ALPN picked `h2`) the endpoint's HTTP/2 connection; the
    /// caller holds `dialing`.
    pub(super) async fn install(
        &self,
        io: BackendIo,
        timeout: Duration,
    ) -> Result<(), ConnectError> {
        let sender = tokio::time::timeout(timeout, handshake(io))
            .await
            .map_err(|_| ConnectError::Timeout(timeout))??;
        *self.sender.lock() = Some(sender);
        Ok(())
    }
}

/// The failure of a request that waited for another's connection, which could not be made.
pub(super) fn waited_for_a_failure() -> ConnectError {
    ConnectError::Io(std::io::Error::other(
        "the connection this request waited for could not be made",
    ))
}

/// The HTTP/2 handshake on `io`; the connection runs in a task of its own from then on.
async fn handshake(io: BackendIo) -> Result<SendRequest<UpstreamBody>, ConnectError> {
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(1024 * 1024)
        .initial_connection_window_size(4 * 1024 * 1024)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        // An idle connection that died is found by its pings, not by the next request.
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(ConnectError::Http2)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "a backend HTTP/2 connection ended");
        }
    });
    Ok(sender)
}

impl EndpointPool {
    /// The endpoint's HTTP/2 connection, made now when none is open.
    async fn h2_sender(
        &self,
        timeouts: Timeouts,
    ) -> Result<SendRequest<UpstreamBody>, ConnectError> {
        if let Some(sender) = self.h2.open() {
            return Ok(sender);
        }
        let failures = self.h2.failures();
        let _dialing = self.h2.dialing.lock().await;
        // Made by another request meanwhile, or failed to be.
        if let Some(sender) = self.h2.open() {
            return Ok(sender);
        }
        if self.h2.failures() != failures {
            return Err(waited_for_a_failure());
        }
        let made = async {
            let io = self.connect(timeouts.connect).await?;
            self.check_negotiated(&io, true)?;
            self.h2.install(io, timeouts.connect).await
        };
        if let Err(e) = made.await {
            self.h2.failed();
            return Err(e);
        }
        self.h2
            .open()
            .ok_or_else(|| ConnectError::Io(std::io::Error::other("the connection closed at once")))
    }
}

/// Sends a request to `endpoint` over its HTTP/2 connection; the answer's head comes back.
pub async fn exchange(
    endpoint: &Endpoint,
    parts: &http::request::Parts,
    body: UpstreamBody,
) -> Result<Response<ResponseBody>, TryError> {
    let pool = &endpoint.pool;
    let mut sender = Box::pin(pool.h2_sender(endpoint.timeouts))
        .await
        .map_err(TryError::Connect)?;
    let req = request(parts, body, pool.tls_enabled(), &endpoint.authority);
    // Room for another stream (the backend's limit), then the request.
    sender
        .ready()
        .await
        .map_err(|e| TryError::Exchange(super::h1::ExchangeError::Http2(e)))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| TryError::Exchange(super::h1::ExchangeError::Http2(e)))?;
    let (mut parts, body) = resp.into_parts();
    parts.version = Version::HTTP_11;
    Ok(Response::from_parts(
        parts,
        ResponseBody::Http2(Box::new(body)),
    ))
}

/// The request as HTTP/2 sends it (see the module's doc).
fn request(
    parts: &http::request::Parts,
    body: UpstreamBody,
    https: bool,
    endpoint: &Authority,
) -> Request<UpstreamBody> {
    let mut headers = match parts.extensions.get::<RawFields>() {
        Some(raw) => raw.clone().into_map(parts.headers.clone()),
        None => parts.headers.clone(),
    };
    let authority = headers
        .remove(HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .unwrap_or_else(|| endpoint.clone());
    strip_connection_fields(&mut headers);
    let grpc = headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    let mut target = Uri::builder()
        .scheme(if https { Scheme::HTTPS } else { Scheme::HTTP })
        .authority(authority);
    if let Some(pq) = parts.uri.path_and_query() {
        target = target.path_and_query(pq.clone());
    } else {
        target = target.path_and_query("/");
    }
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = target.build().unwrap_or_else(|_| parts.uri.clone());
    *req.version_mut() = Version::HTTP_2;
    *req.headers_mut() = headers;
    req
}

/// Removes what HTTP/2 forbids in a message (RFC 9113 §8.2.2), and the length (the body's own
/// is sent).
fn strip_connection_fields(headers: &mut HeaderMap) {
    if let Some(named) = headers.remove(CONNECTION) {
        for name in named.to_str().unwrap_or_default().split(',') {
            if let Ok(name) = http::HeaderName::from_bytes(name.trim().as_bytes()) {
                headers.remove(name);
            }
        }
    }
    for name in [TRANSFER_ENCODING, UPGRADE, CONTENT_LENGTH] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
    if headers
        .get(TE)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_an_absolute_target_and_lose_what_http2_forbids() {
        let req = Request::post("/pkg.Svc/Method?x=1")
            .header("host", "api.example.com")
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("keep-alive", "5")
            .header("te", "gzip")
            .header("content-length", "5")
            .header("content-type", "application/grpc+proto")
            .header("x-kept", "yes")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let endpoint: Authority = "10.0.0.1:50051".parse().unwrap();
        let out = request(&parts, UpstreamBody::Empty, false, &endpoint);
        assert_eq!(out.uri(), "http://api.example.com/pkg.Svc/Method?x=1");
        assert_eq!(out.version(), Version::HTTP_2);
        let mut names: Vec<_> = out.headers().keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "te", "x-kept"]);
        assert_eq!(out.headers()["te"], "trailers");

        // No Host: the endpoint; TLS: https.
        let (parts, ()) = Request::get("/").body(()).unwrap().into_parts();
        let out = request(&parts, UpstreamBody::Empty, true, &endpoint);
        assert_eq!(out.uri(), "https://10.0.0.1:50051/");
    }
}
