//! HTTP/2 to backends: h2c (prior knowledge) from a real proxy process, with trailers carried
//! both ways and requests multiplexed on one connection; h2 and `auto` over real TLS
//! handshakes, ALPN deciding.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use frontdesk_demo::certs::Authority;
use frontdesk_proxy::runtime::{Env, Runtime};
use frontdesk_snapshot::{Action, BackendProtocol, BackendTls};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::h2_backend::{h2c_backend, tls_backend};
use support::resilience::send_body;
use support::*;

/// A body of `data` with the trailer `x-req: <trailer>`.
fn with_trailer(data: &'static str, trailer: &str) -> TestBody {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-req", trailer.parse().unwrap());
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(data.as_bytes()))),
        Ok(Frame::trailers(trailers)),
    ];
    StreamBody::new(futures::stream::iter(frames))
        .map_err(|e| match e {})
        .boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_backends_get_http2_with_trailers_both_ways_on_one_connection() {
    let backend = h2c_backend().await;
    let files = route(
        "grpcish",
        &format!(
            "  rules:\n    - backends: [{{url: 'http://{}', protocol: h2c}}]",
            backend.addr
        ),
    );
    let p = ProxyProcess::with_files(&[("r.yaml", &files)], &[]).await;

    // An HTTP/2 client: trailers go to the backend and come back.
    let c = h2_client();
    let req = Request::post(p.url("/pkg.Echo/Say"))
        .header("content-type", "application/grpc")
        .body(with_trailer("hello", "from-the-client"))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-version"], "HTTP/2.0");
    // gRPC servers need `te: trailers`; the proxy says it for gRPC requests.
    assert_eq!(resp.headers()["x-te"], "trailers");
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("the backend's trailers");
    assert_eq!(trailers["x-echo"], "from-the-client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "HTTP/2.0 hello");

    // An HTTP/1.1 client's request goes to the backend in HTTP/2 too.
    let (status, headers, body) = get(&p.url("/plain")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["x-version"], "HTTP/2.0");
    assert_eq!(body, "HTTP/2.0 ");

    // Concurrent requests share the one connection, at once: 20 answers that each take
    // 300 ms come back together, not one after the other.
    let c = client();
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let (c, url) = (c.clone(), p.url("/slow"));
            tokio::spawn(async move { get_with(&c, &url, &[]).await.0 })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1);
}

const NAME: &str = "grpc.internal";

fn runtime(
    backend: std::net::SocketAddr,
    ca: &Authority,
    protocol: BackendProtocol,
) -> Arc<Runtime> {
    let yaml = manifest(
        "Route",
        "shop",
        &format!("  rules:\n    - backends: [{{url: 'http://{backend}'}}]\n"),
    );
    let mut snap = snapshot(&yaml);
    let Action::Forward { backends } =
        &mut std::sync::Arc::make_mut(&mut snap.routes[0]).rules[0].action
    else {
        panic!("a forward");
    };
    backends[0].tls = Some(BackendTls {
        server_name: NAME.into(),
        ca_certificates: Some(ca.pem().to_string()),
        client_certificate: None,
    });
    backends[0].protocol = protocol;
    Arc::new(Runtime::build(snap, Arc::new(Env::standalone())).unwrap())
}

#[tokio::test]
async fn over_tls_alpn_decides_h2_and_auto() {
    let ca = Authority::new();
    let cert = ca.issue(&[NAME], 1, 30);
    let speaks_h2 = tls_backend(&cert, &[b"h2", b"http/1.1"]).await;
    let speaks_h1 = tls_backend(&cert, &[b"http/1.1"]).await;
    // Says nothing by ALPN: HTTP/1.1.
    let silent_alpn = tls_backend(&cert, &[]).await;

    // h2: HTTP/2, one handshake for many requests.
    let rt = runtime(speaks_h2.addr, &ca, BackendProtocol::H2);
    for _ in 0..3 {
        assert_eq!(
            send_body(&rt, "POST", "/x", "hi").await,
            (StatusCode::OK, "HTTP/2.0 hi".to_string())
        );
    }
    assert_eq!(speaks_h2.connections.load(Ordering::SeqCst), 1);
    // Trailers both ways over TLS too.
    let req = Request::post("/x")
        .header("host", "shop.example.com")
        .body(with_trailer("over tls", "sealed"))
        .unwrap();
    let resp = rt
        .clone()
        .handle(
            req,
            "10.1.2.3:5000".parse::<std::net::SocketAddr>().unwrap(),
        )
        .await;
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().expect("trailers")["x-echo"], "sealed");
    assert_eq!(collected.to_bytes(), "HTTP/2.0 over tls");

    // auto: what ALPN picks; the connection that asked carries the requests.
    let rt = runtime(speaks_h2.addr, &ca, BackendProtocol::Auto);
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let rt = rt.clone();
            tokio::spawn(async move { send_body(&rt, "GET", "/x", "").await.1 })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), "HTTP/2.0 ");
    }
    assert_eq!(speaks_h2.connections.load(Ordering::SeqCst), 2);
    let rt = runtime(speaks_h1.addr, &ca, BackendProtocol::Auto);
    assert_eq!(send_body(&rt, "GET", "/x", "").await.1, "HTTP/1.1 ");
    assert_eq!(send_body(&rt, "POST", "/x", "hey").await.1, "HTTP/1.1 hey");
    // The connection that asked ALPN served the next request: one handshake.
    assert_eq!(speaks_h1.connections.load(Ordering::SeqCst), 1);

    // h2 to a backend that does not pick it: 502, said without the backend's address, and
    // never HTTP/1.1 instead. (One offering only http/1.1 fails the handshake; one that
    // says nothing completes it, and is refused for that.)
    let rt = runtime(silent_alpn.addr, &ca, BackendProtocol::H2);
    for _ in 0..2 {
        let (status, body) = send_body(&rt, "GET", "/x", "").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert!(!body.contains("127.0.0.1"), "{body}");
    }
    // Each request tried a connection of its own (the server counts a handshake once it
    // has read the client's last message, after the client went on).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while silent_alpn.connections.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "one handshake only");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let rt = runtime(speaks_h1.addr, &ca, BackendProtocol::H2);
    for _ in 0..2 {
        let (status, body) = send_body(&rt, "GET", "/x", "").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert!(!body.contains("127.0.0.1"), "{body}");
    }
}
