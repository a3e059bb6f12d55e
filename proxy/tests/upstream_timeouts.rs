//! Timeouts around backend connections, against real sockets: a client whose body stalls
//! frees the upstream connection it was streaming to, a backend whose listen queue is full
//! fails a try at the Policy's connect timeout, and pooled connections idle past the Policy's
//! idle timeout are not used again.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use std::sync::Arc;

use frontdesk_proxy::runtime::Env;
use support::resilience::{call, runtime, runtime_in};
use support::*;

/// A backend that reads each connection to its end and reports what it got and when the
/// proxy closed it.
async fn upload_watcher() -> (SocketAddr, mpsc::UnboundedReceiver<(Vec<u8>, Instant)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let _ = tx.send((got, Instant::now()));
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_times_out_and_frees_the_upstream_connection() {
    let (backend, mut closed) = upload_watcher().await;
    let r = manifest(
        "Route",
        "uploads",
        &format!("  rules:\n    - backends: [{{url: 'http://{backend}'}}]\n"),
    );
    let p = ProxyProcess::with_files(&[("r.yaml", &r)], &["--body-read-timeout", "500ms"]).await;
    let mut client = TcpStream::connect(p.addr).await.unwrap();
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..")
        .await
        .unwrap();
    let sent = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer))
        .await
        .expect("the proxy answers and closes")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    let (got, at) = tokio::time::timeout(Duration::from_secs(5), closed.recv())
        .await
        .expect("the upstream connection was closed")
        .unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("POST /upload HTTP/1.1\r\n"), "{got}");
    assert!(
        got.ends_with("\r\n\r\nonly ten.."),
        "the body streamed as it came: {got}"
    );
    assert!(
        at.duration_since(sent) < Duration::from_secs(3),
        "held for {:?}",
        at.duration_since(sent)
    );
}

/// A listener whose accept queue is full (it never accepts): further connects hang in SYN
/// retransmission, as with a backend that is overloaded or behind a dropping firewall. Keep
/// what it returns alive.
async fn full_listener() -> (SocketAddr, tokio::net::TcpListener, Vec<TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    (addr, listener, fillers)
}

#[tokio::test]
async fn a_policy_connect_timeout_fails_a_try_at_an_endpoint_that_does_not_accept() {
    let (stuck, _listener, _fillers) = full_listener().await;
    let rt = runtime(
        &[stuck],
        "  backendConnection: {connectTimeout: 300ms}",
        None,
    );
    let started = Instant::now();
    let (status, _, body) = call(&rt, "/p").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.contains("upstream-unavailable"), "{body}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "took {took:?}"
    );

    // With retries, the next try goes to an endpoint that does accept.
    let good = frontdesk_demo::spawn("good").await;
    let rt = runtime(
        &[stuck, good],
        "  backendConnection: {connectTimeout: 300ms}",
        Some("{attempts: 1, on: [connect-failure], backoff: 1ms}"),
    );
    for _ in 0..4 {
        assert_eq!(call(&rt, "/p").await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn pooled_connections_idle_past_the_policy_idle_timeout_are_not_used_again() {
    let demo = frontdesk_demo::spawn("demo").await;
    let accepted = || async move {
        let (_, _, body) = get(&format!("http://{demo}/connections")).await.unwrap();
        json(&body)["accepted"].as_u64().unwrap()
    };
    // Two rules' worth of the same endpoint in one proxy: they share its pool, and each
    // request applies its own backend's idle timeout.
    let env = Arc::new(Env::standalone());
    let kept = runtime_in(
        &env,
        &[demo],
        "  backendConnection: {idleTimeout: 1h}",
        None,
    );
    let short = runtime_in(
        &env,
        &[demo],
        "  backendConnection: {idleTimeout: 200ms}",
        None,
    );
    assert_eq!(call(&kept, "/p").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = accepted().await;
    assert_eq!(call(&kept, "/p").await.0, StatusCode::OK);
    // Our own /connections request counts one.
    assert_eq!(accepted().await - before, 1, "the warm connection was used");
    let before = accepted().await;
    assert_eq!(call(&short, "/p").await.0, StatusCode::OK);
    assert_eq!(
        accepted().await - before,
        1,
        "fresh enough for the short timeout too"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = accepted().await;
    assert_eq!(call(&short, "/p").await.0, StatusCode::OK);
    assert_eq!(
        accepted().await - before,
        2,
        "idle past 200ms: a new connection"
    );
}
