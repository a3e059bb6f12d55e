//! WebSocket through the proxy: HTTP/1.1 upgrades and HTTP/2 extended CONNECT (RFC 8441) to a
//! real WebSocket echo backend, with real WebSocket clients (tungstenite), across reloads,
//! under the route's authentication, and bounded by the idle timeout and the lifetime.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Method, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};
use tokio_tungstenite::tungstenite::{self, Error as WsError};

type H1Socket = WebSocketStream<TcpStream>;
type H2Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A WebSocket over HTTP/1.1 to `path` of the proxy; the handshake's answer too.
async fn open_h1(
    p: &ProxyProcess,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(H1Socket, tungstenite::handshake::client::Response), WsError> {
    let mut req = format!("ws://{}{path}", p.addr).into_client_request()?;
    for (k, v) in headers {
        req.headers_mut()
            .insert(k.parse::<http::HeaderName>().unwrap(), v.parse().unwrap());
    }
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    tokio_tungstenite::client_async(req, tcp).await
}

/// A WebSocket over an HTTP/2 stream (extended CONNECT) to `path` of the proxy.
async fn open_h2(p: &ProxyProcess, path: &str) -> (H2Socket, http::HeaderMap) {
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    // A first request lets the server's SETTINGS (which allow extended CONNECT) arrive.
    let warm = sender
        .send_request(
            Request::get(format!("http://{}/anything", p.addr))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(warm.status(), StatusCode::OK);
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{}{path}", p.addr))
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.headers());
    let headers = resp.headers().clone();
    let upgraded = hyper::upgrade::on(&mut resp).await.unwrap();
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    // The connection lives on in its task as long as the stream does.
    tokio::spawn(async move {
        let _sender = sender;
        std::future::pending::<()>().await
    });
    (ws, headers)
}

/// Sends `text` and expects it back.
async fn echo<S>(ws: &mut WebSocketStream<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(text)).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the echo comes back")
        .expect("the socket is open")
        .unwrap();
    assert_eq!(back, Message::text(text));
}

fn ws_route(backend: SocketAddr, extra: &str) -> String {
    route(
        "ws",
        &format!("  rules:\n    - {extra}backends: [{{url: 'http://{backend}'}}]"),
    )
}

fn metric(metrics: &str, line_start: &str) -> String {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in\n{metrics}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_echo_over_http1_and_http2_and_are_counted() {
    let backend = frontdesk_demo::spawn("a").await;
    let p = ProxyProcess::with_files(&[("r.yaml", &ws_route(backend, ""))], &[]).await;

    let (mut h1, answer) = open_h1(&p, "/ws", &[]).await.unwrap();
    assert_eq!(answer.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(answer.headers()["x-backend"], "a");
    assert!(answer.headers().contains_key("x-request-id"));
    let (mut h2, headers) = open_h2(&p, "/ws").await;
    assert_eq!(headers["x-backend"], "a");
    assert!(!headers.contains_key("sec-websocket-accept"));
    for i in 0..50 {
        echo(&mut h1, &format!("h1 message {i}")).await;
        echo(&mut h2, &format!("h2 message {i}")).await;
    }
    // A message larger than any buffer on the way.
    let big = "x".repeat(300_000);
    echo(&mut h1, &big).await;
    echo(&mut h2, &big).await;
    let m = p.metrics().await;
    assert_eq!(
        metric(&m, "frontdesk_upgraded_connections "),
        "frontdesk_upgraded_connections 2"
    );

    // The close handshake, then each side closes its connection.
    h1.close(None).await.unwrap();
    h2.close(None).await.unwrap();
    while let Some(Ok(_)) = h1.next().await {}
    while let Some(Ok(_)) = h2.next().await {}
    drop((h1, h2));
    // The echo closes in turn: both relays end, as closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = p.metrics().await;
        if m.contains("frontdesk_upgraded_connection_ends_total{reason=\"closed\"} 2") {
            assert!(m.contains("frontdesk_upgraded_connections 0"), "{m}");
            break;
        }
        assert!(Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_reloads_while_messages_flow_cut_no_websocket() {
    let a = frontdesk_demo::spawn("a").await;
    let b = frontdesk_demo::spawn("b").await;
    let config = |n: u32| {
        let target = if n.is_multiple_of(2) { a } else { b };
        ws_route(
            target,
            &format!("responseHeaders: {{set: {{x-config: '{n}'}}}}\n      "),
        )
    };
    let p = ProxyProcess::with_files(&[("r.yaml", &config(0))], &["--access-log", "off"]).await;
    let (mut h1, answer) = open_h1(&p, "/ws", &[]).await.unwrap();
    assert_eq!(answer.headers()["x-config"], "0");
    let (mut h2, _) = open_h2(&p, "/ws").await;

    // Messages flow all along, from a task of their own, on both sockets.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let flowing = tokio::spawn(async move {
        let mut sent = 0u32;
        loop {
            echo(&mut h1, &format!("during reloads {sent}")).await;
            echo(&mut h2, &format!("during reloads {sent}")).await;
            sent += 1;
            if stop_rx.try_recv().is_ok() {
                return (h1, h2, sent);
            }
        }
    });
    let mut version = p.config_version().await;
    for n in 1..=10 {
        p.write("r.yaml", &config(n));
        version = p.wait_version_above(version).await;
        // A new socket gets the new configuration at once.
        let (mut fresh, answer) = open_h1(&p, "/ws", &[]).await.unwrap();
        assert_eq!(answer.headers()["x-config"], n.to_string().as_str());
        assert_eq!(
            answer.headers()["x-backend"],
            if n % 2 == 0 { "a" } else { "b" }
        );
        echo(&mut fresh, "fresh").await;
    }
    stop_tx.send(()).unwrap();
    let (mut h1, mut h2, sent) = flowing.await.unwrap();
    assert!(sent > 10, "too few messages to mean anything: {sent}");
    echo(&mut h1, "after the reloads").await;
    echo(&mut h2, "after the reloads").await;
    let m = p.metrics().await;
    assert!(m.contains("frontdesk_config_reloads_total 11"), "{m}");
    assert!(!m.contains("reason=\"failed\""), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_the_rate_limit_run_on_the_upgrade_request() {
    let backend = frontdesk_demo::spawn("a").await;
    let files = manifest(
        "Policy",
        "keys",
        "  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: t}}}\n  rateLimit:\n    limits: [{requests: 1, period: 1m, burst: 2, key: Consumer}]",
    ) + "apiVersion: v1\nkind: Secret\nmetadata: {name: alice, namespace: test, labels: {frontdesk.dev/api-keys: t}}\nstringData: {key: alice-key-01, consumer: alice}\n---\n"
        + &ws_route(backend, "policies: [keys]\n      ");
    let p = ProxyProcess::with_files(&[("r.yaml", &files)], &[]).await;

    // No key: refused with the ordinary problem answer, never upgraded.
    match open_h1(&p, "/ws", &[]).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    let key = [("x-api-key", "alice-key-01")];
    let (mut ws, answer) = open_h1(&p, "/ws", &key).await.unwrap();
    assert!(
        answer.headers().contains_key("ratelimit"),
        "{:?}",
        answer.headers()
    );
    echo(&mut ws, "allowed").await;
    let (mut second, _) = open_h1(&p, "/ws", &key).await.unwrap();
    echo(&mut second, "allowed too").await;
    match open_h1(&p, "/ws", &key).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS),
        other => panic!("expected a 429, got {other:?}"),
    }
    let m = p.metrics().await;
    assert_eq!(
        metric(&m, "frontdesk_upgraded_connections "),
        "frontdesk_upgraded_connections 2"
    );
}

/// Writes `head` on a new connection to the proxy and reads one answer (head and
/// Content-Length body); the connection too, for more.
async fn raw_exchange(addr: SocketAddr, head: &str) -> (String, TcpStream) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    (read_answer(&mut tcp).await, tcp)
}

async fn read_answer(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        assert!(n > 0, "the connection closed: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_upgrades_are_dropped_and_refused_switches_keep_the_connection_http() {
    let backend = frontdesk_demo::spawn("a").await;
    let p = ProxyProcess::with_files(&[("r.yaml", &ws_route(backend, ""))], &[]).await;

    // h2c smuggling: the Upgrade never reaches the backend, which answers plain HTTP/1.1.
    let (answer, _) = raw_exchange(
        p.addr,
        "GET /anything HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(!lower.contains("\"upgrade\""), "{answer}");
    assert!(!lower.contains("http2-settings"), "{answer}");

    // A WebSocket ask the backend answers with 200: the client gets the 200, and the
    // connection goes on as HTTP.
    let (answer, mut tcp) = raw_exchange(
        p.addr,
        "GET /anything HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // The backend saw the ask.
    assert!(answer.contains("\"upgrade\":\"websocket\""), "{answer}");
    tcp.write_all(b"GET /anything HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let next = read_answer(&mut tcp).await;
    assert!(next.starts_with("HTTP/1.1 200 "), "{next}");

    // An ask with a body is no ask: the body is read as a request body.
    let (answer, _) = raw_exchange(
        p.addr,
        "POST /anything HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("\"upgrade\""),
        "{answer}"
    );
}

/// A backend that answers every request with `answer`, then waits.
async fn scripted_backend(answer: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp.write_all(answer.as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_switches_unasked_or_to_another_protocol_is_a_502() {
    let unasked = scripted_backend(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    let other = scripted_backend(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await;
    let files = route(
        "ws",
        &format!(
            "  rules:\n    - matches: [{{path: {{value: /unasked}}}}]\n      backends: [{{url: 'http://{unasked}'}}]\n    - matches: [{{path: {{value: /other}}}}]\n      backends: [{{url: 'http://{other}'}}]"
        ),
    );
    let p = ProxyProcess::with_files(&[("r.yaml", &files)], &[]).await;
    let (answer, _) = raw_exchange(p.addr, "GET /unasked HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(!answer.contains(&unasked.to_string()), "{answer}");
    let (answer, _) = raw_exchange(
        p.addr,
        "GET /other HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
}

/// Reads until the socket ends (a close, EOF or a reset); how long that took.
async fn until_closed<S>(ws: &mut WebSocketStream<S>, chatter: bool) -> Duration
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = Instant::now();
    loop {
        if chatter && ws.send(Message::text("still here")).await.is_err() {
            return started.elapsed();
        }
        match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Err(_) => {}
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return started.elapsed(),
            Ok(Some(Ok(_))) => {}
        }
        assert!(started.elapsed() < Duration::from_secs(15), "never closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_websockets_end_after_the_idle_timeout_and_busy_ones_at_their_lifetime() {
    let backend = frontdesk_demo::spawn("a").await;
    let p = ProxyProcess::with_files(
        &[("r.yaml", &ws_route(backend, ""))],
        &[
            "--websocket-idle-timeout",
            "1s",
            "--websocket-max-lifetime",
            "3s",
        ],
    )
    .await;
    let (mut idle, _) = open_h1(&p, "/ws", &[]).await.unwrap();
    let (mut busy, _) = open_h1(&p, "/ws", &[]).await.unwrap();
    let (idle_for, busy_for) = tokio::join!(
        until_closed(&mut idle, false),
        until_closed(&mut busy, true)
    );
    assert!(
        idle_for >= Duration::from_millis(900) && idle_for < Duration::from_millis(2500),
        "{idle_for:?}"
    );
    assert!(
        busy_for >= Duration::from_millis(2800) && busy_for < Duration::from_millis(5000),
        "{busy_for:?}"
    );
    let m = p.metrics().await;
    assert!(
        m.contains("frontdesk_upgraded_connection_ends_total{reason=\"idle-timeout\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("frontdesk_upgraded_connection_ends_total{reason=\"max-lifetime\"} 1"),
        "{m}"
    );
}

/// An extended CONNECT for `protocol` to `path` over a new HTTP/2 connection; its status.
async fn h2_ask(
    p: &ProxyProcess,
    path: &str,
    protocol: &'static str,
    headers: &[(&str, &str)],
) -> StatusCode {
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let warm = Request::get(format!("http://{}/anything", p.addr))
        .body(Empty::<Bytes>::new())
        .unwrap();
    sender.send_request(warm).await.unwrap();
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{}{path}", p.addr))
        .header("sec-websocket-version", "13");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Empty::<Bytes>::new()).unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static(protocol));
    sender.send_request(req).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_asks_that_do_not_switch_never_read_as_an_open_tunnel() {
    let backend = frontdesk_demo::spawn("a").await;
    let files = manifest(
        "Policy",
        "keys",
        "  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: t}}}",
    ) + &route(
        "ws",
        &format!(
            "  rules:\n    - matches: [{{path: {{value: /guarded}}}}]\n      policies: [keys]\n      backends: [{{url: 'http://{backend}'}}]\n    - backends: [{{url: 'http://{backend}'}}]"
        ),
    );
    let p = ProxyProcess::with_files(&[("r.yaml", &files)], &[]).await;
    // The backend answers the ask with a 200 of its own (no switch): a 502, not a tunnel.
    assert_eq!(
        h2_ask(&p, "/anything", "websocket", &[]).await,
        StatusCode::BAD_GATEWAY
    );
    // Authentication refuses the ask.
    assert_eq!(
        h2_ask(&p, "/guarded", "websocket", &[]).await,
        StatusCode::UNAUTHORIZED
    );
    // Other protocols are not relayed.
    assert_eq!(
        h2_ask(&p, "/ws", "connect-udp", &[]).await,
        StatusCode::NOT_IMPLEMENTED
    );
    // And the real thing still works.
    let (mut ws, _) = open_h2(&p, "/ws").await;
    echo(&mut ws, "still fine").await;
}
