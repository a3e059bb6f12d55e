//! HTTP/2 backends on 127.0.0.1 for the protocol tests: h2c (prior knowledge), or TLS whose
//! ALPN offers what a test says (HTTP/2 when it picks `h2`, else HTTP/1.1). Each answers with
//! what it saw (the HTTP version, the request's body and its `x-req` trailer) and trailers of
//! its own (`x-echo`, `grpc-status: 0`), `/slow` after 300 ms, and to the gRPC health check
//! NOT_SERVING; counts its connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use frontdesk_demo::certs::Issued;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

pub struct H2Backend {
    pub addr: SocketAddr,
    /// Connections accepted (TLS: handshakes completed).
    pub connections: Arc<AtomicU64>,
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/slow" {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    if req.uri().path() == "/grpc.health.v1.Health/Check" {
        return Ok(not_serving());
    }
    let version = format!("{:?}", req.version());
    let te = req
        .headers()
        .get("te")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let collected = req.into_body().collect().await;
    let (body, trailer) = match collected {
        Ok(c) => {
            let trailer = c
                .trailers()
                .and_then(|t| t.get("x-req"))
                .map(|v| v.to_str().unwrap_or_default().to_string());
            (c.to_bytes(), trailer)
        }
        Err(_) => (Bytes::new(), None),
    };
    let mut trailers = HeaderMap::new();
    trailers.insert(
        "x-echo",
        trailer.unwrap_or_else(|| "none".into()).parse().unwrap(),
    );
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from(format!(
            "{version} {}",
            String::from_utf8_lossy(&body)
        )))),
        Ok(Frame::trailers(trailers)),
    ];
    let mut resp = Response::new(StreamBody::new(futures::stream::iter(frames)).boxed());
    resp.headers_mut()
        .insert("x-version", version.parse().unwrap());
    if let Some(te) = te {
        resp.headers_mut().insert("x-te", te.parse().unwrap());
    }
    Ok(resp)
}

/// An h2c backend: HTTP/2 with prior knowledge, in plaintext.
pub async fn h2c_backend() -> H2Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU64::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service_fn(answer)),
            );
        }
    });
    H2Backend { addr, connections }
}

/// A TLS backend with `cert` whose ALPN offers `alpn` (none: it says nothing); speaks HTTP/2
/// when ALPN picked `h2`, else HTTP/1.1.
pub async fn tls_backend(cert: &Issued, alpn: &[&[u8]]) -> H2Backend {
    let mut config = (*super::tls_backend::server_config(cert, None)).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let (addr, connections) = super::tls_backend::serve_tls(Arc::new(config), |tls| async move {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service_fn(answer))
                .await;
        } else {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service_fn(answer))
                .await;
        }
    })
    .await;
    H2Backend { addr, connections }
}

/// A gRPC health answer saying NOT_SERVING (status 2), grpc-status 0.
fn not_serving() -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 2]))),
        Ok(Frame::trailers(trailers)),
    ];
    let mut resp = Response::new(StreamBody::new(futures::stream::iter(frames)).boxed());
    resp.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    resp
}
