//! frontdesk's HTTP/1.1 server and backend client, in process on real sockets: raw client
//! bytes in, raw backend bytes out, asserting exactly what crosses each wire.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use frontdesk_proxy::runtime::{Env, Runtime};
use support::wire::*;
use support::{manifest, snapshot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn an_http10_keep_alive_client_is_closed_when_the_length_is_unknown() {
    let backend = scripted(vec![Some(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )])
    .await;
    let (proxy, _stop) = proxy(&route_to(backend.addr, "")).await;
    let (answer, took) = exchange(
        proxy,
        "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert_eq!(header(&answer, "connection"), Some("close"));
    assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
    assert!(took < Duration::from_secs(3), "the client waited {took:?}");
    // The backend got a Host it can use, though the client sent none.
    let seen = backend.seen.lock().await;
    assert!(
        seen[0].contains(&format!("host: {}", backend.addr)),
        "{}",
        seen[0]
    );
}

#[tokio::test]
async fn head_answers_keep_their_framing_and_transfer_encoding_wins_over_content_length() {
    let backend = scripted(vec![
        // HEAD: the backend would have answered chunked; the proxy must not claim 0 bytes.
        Some("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
        // A 5-byte chunked body with a lying Content-Length of 3.
        Some("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ])
    .await;
    let (proxy, _stop) = proxy(&route_to(backend.addr, "")).await;
    let (answer, _) = exchange(
        proxy,
        "HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(header(&answer, "content-length"), None, "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "no body on HEAD: {answer}");

    let (answer, _) = exchange(
        proxy,
        "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(header(&answer, "content-length"), None, "{answer}");
    assert_eq!(header(&answer, "transfer-encoding"), Some("chunked"));
    assert!(answer.contains("\r\n5\r\nhello\r\n0\r\n\r\n"), "{answer}");
}

/// A backend's fields reach the client as the backend wrote them (names' case included),
/// without those of the hop (RFC 9110 §7.6.1), with the proxy's framing and request id; a
/// `Connection` naming another field takes that field away too.
#[tokio::test]
async fn a_backends_fields_are_relayed_as_sent_without_the_hops_own() {
    let backend = scripted(vec![
        Some(
            "HTTP/1.1 200 OK\r\nServer: scripted\r\nX-Mixed-Case:kept as sent\r\n\
             X-Request-Id: the-backends\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
             Upgrade: h2c\r\nTrailer: x-sum\r\nTE: trailers\r\nContent-Length: 2\r\n\r\nok",
        ),
        Some(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
             X-Kept: 1\r\nContent-Length: 2\r\n\r\nok",
        ),
    ])
    .await;
    let (proxy, _stop) = proxy(&route_to(backend.addr, "")).await;
    let ask =
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: the-clients\r\nConnection: close\r\n\r\n";
    let (answer, _) = exchange(proxy, ask, Duration::from_secs(5)).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut lines: Vec<&str> = head.lines().collect();
    let date = lines.iter().position(|l| l.starts_with("date: ")).unwrap();
    lines.remove(date);
    assert_eq!(
        lines,
        [
            "HTTP/1.1 200 OK",
            "Server: scripted",
            "X-Mixed-Case:kept as sent",
            "x-request-id: the-clients",
            "content-length: 2",
            "connection: close",
        ],
        "{answer}"
    );
    assert_eq!(body, "ok");

    let (answer, _) = exchange(proxy, ask, Duration::from_secs(5)).await;
    assert_eq!(header(&answer, "x-secret"), None, "{answer}");
    assert_eq!(header(&answer, "x-kept"), Some("1"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
}

/// Framing is the proxy's: a header edit of Content-Length cannot be configured (the compiler
/// refuses it, and so does the proxy when a snapshot carries one); the encoder ignores one in
/// the head in any case (upstream::h1's unit tests).
#[test]
fn a_snapshot_that_edits_content_length_is_refused() {
    let mut snap = snapshot(&route_to("127.0.0.1:9".parse().unwrap(), ""));
    std::sync::Arc::make_mut(&mut snap.routes[0]).rules[0]
        .request_headers
        .set
        .push(frontdesk_snapshot::Header {
            name: "content-length".into(),
            value: "0".into(),
            sensitive: false,
        });
    let refused = Runtime::build(snap, Arc::new(Env::standalone()))
        .err()
        .expect("refused");
    assert!(refused.contains("only the proxy may set"), "{refused}");
}

#[tokio::test]
async fn a_closed_pooled_connection_replays_idempotent_requests_only() {
    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    // Requests in arrival order: answered; read and the connection closed without a word;
    // answered (on a new connection); read and closed again.
    let backend = scripted(vec![Some(ok), None, Some(ok), None, Some(ok)]).await;
    let (proxy, _stop) = proxy(&route_to(backend.addr, "")).await;
    let get = "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let (answer, _) = exchange(proxy, get, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The pooled connection is closed under this GET: it is sent again on a new connection.
    let (answer, _) = exchange(proxy, get, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(backend.seen.lock().await.len(), 3);
    assert_eq!(backend.connections.load(Ordering::SeqCst), 2);
    // A POST that meets the same fate is not replayed: the backend may have acted on it.
    let post = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (answer, _) = exchange(proxy, post, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let seen = backend.seen.lock().await;
    assert_eq!(seen.iter().filter(|r| r.starts_with("POST")).count(), 1);
}

#[tokio::test]
async fn the_head_reaches_the_client_before_a_slow_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        read_request(&mut s, &mut buf).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = s.write_all(b"5\r\nhello\r\n0\r\n\r\n").await;
    });
    let (proxy, _stop) = proxy(&route_to(backend, "")).await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf))
        .await
        .expect("the head arrives before the body")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
}

#[tokio::test]
async fn draining_answers_the_next_request_of_every_connection_with_close() {
    let backend = frontdesk_demo::spawn("b").await;
    let (proxy, stop) = proxy(&route_to(backend, "")).await;
    // An idle keep-alive connection, and one whose request is in flight during the drain.
    let mut idle = TcpStream::connect(proxy).await.unwrap();
    idle.write_all(b"GET /status/200 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut busy = TcpStream::connect(proxy).await.unwrap();
    busy.write_all(b"GET /delay/300 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();

    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), busy.read_to_end(&mut answer))
        .await
        .expect("the busy connection is answered, then closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(header(&answer, "connection"), Some("close"));

    // The idle connection was not closed under its client: its next request is answered,
    // with Connection: close, and then it closes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    idle.write_all(b"GET /status/200 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), idle.read_to_end(&mut answer))
        .await
        .expect("the idle connection's next request is answered, then it closes")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(header(&answer, "connection"), Some("close"));
}

/// A request still in flight when the drain timeout passes is cut off: the port's server
/// ends its connections rather than leaving them to run on (a port a snapshot stopped).
#[tokio::test]
async fn connections_still_open_at_the_drain_timeout_are_closed() {
    let backend = frontdesk_demo::spawn("b").await;
    let (proxy, stop) =
        proxy_draining_for(&route_to(backend, ""), Duration::from_millis(500)).await;
    let mut slow = TcpStream::connect(proxy).await.unwrap();
    slow.write_all(b"GET /delay/30000 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = Instant::now();
    stop.send(()).unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer))
        .await
        .expect("closed at the drain timeout, not after the backend's 30 s")
        .expect("closed, not reset: the request had been read");
    assert!(answer.is_empty(), "nothing was answered: {answer:?}");
    assert!(stopped.elapsed() >= Duration::from_millis(450));
}

/// Ten clients sending back to back on keep-alive connections through a drain: every
/// request sent is answered in full; each connection's last answer says Connection: close.
#[tokio::test]
async fn busy_keep_alive_clients_lose_no_request_in_a_drain() {
    let backend = frontdesk_demo::spawn("b").await;
    let (proxy, stop) = proxy(&route_to(backend, "")).await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(proxy).await.unwrap();
            let mut answered = 0;
            loop {
                s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: a\r\n\r\n")
                    .await
                    .expect("a request could not be sent");
                // Read one whole answer (its body is 14 bytes of JSON, by Content-Length).
                let mut got = Vec::new();
                let mut buf = [0u8; 1024];
                let head_end = loop {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(
                        n > 0,
                        "the connection closed under a request ({answered} answered)"
                    );
                    got.extend_from_slice(&buf[..n]);
                    if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let length: usize = header(&head, "content-length").unwrap().parse().unwrap();
                while got.len() < head_end + length {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0, "an answer was cut short");
                    got.extend_from_slice(&buf[..n]);
                }
                answered += 1;
                if header(&head, "connection") == Some("close") {
                    return answered;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    for c in clients {
        let answered = tokio::time::timeout(Duration::from_secs(5), c)
            .await
            .expect("a client was still going")
            .unwrap();
        assert!(answered > 1);
    }
}

/// A backend that answers as soon as it has the head, then echoes the body as it reads it,
/// `total` bytes in all; it stops quietly if the proxy goes away.
async fn echo_backend(total: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let mut body: Vec<u8> = buf.split_off(head_end);
        let mut echoed = 0;
        while echoed < total {
            if body.is_empty() {
                let mut chunk = vec![0u8; 65536];
                match s.read(&mut chunk).await {
                    Ok(n) if n > 0 => body.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            let frame = format!("{:x}\r\n", body.len());
            if s.write_all(frame.as_bytes()).await.is_err()
                || s.write_all(&body).await.is_err()
                || s.write_all(b"\r\n").await.is_err()
            {
                return;
            }
            echoed += body.len();
            body.clear();
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
    });
    backend
}

fn echo_routes(backend: SocketAddr) -> String {
    manifest(
        "Route",
        "r",
        &format!(
            "  rules:\n\
             \x20   - matches: [{{path: {{value: /echo}}}}]\n\
             \x20     backends: [{{url: 'http://{backend}'}}]\n\
             \x20   - matches: [{{path: {{value: /ping}}}}]\n\
             \x20     directResponse: {{status: 200, body: pong}}\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_goes_on_while_the_backend_streams_its_answer() {
    let total = 1 << 20;
    let (proxy, _stop) = proxy(&echo_routes(echo_backend(total).await)).await;
    let s = TcpStream::connect(proxy).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(
        format!("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {total}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'x'; 16 * 1024];
        for _ in 0..(total / chunk.len()) {
            wr.write_all(&chunk).await.unwrap();
        }
        wr
    });
    // Read the chunked answer to its last chunk.
    let mut answer = Vec::new();
    let read = async {
        let mut chunk = vec![0u8; 65536];
        while !answer.ends_with(b"\r\n0\r\n\r\n") {
            let n = rd.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the proxy closed the connection");
            answer.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the echo completes");
    let mut wr = writer.await.unwrap();
    let body_at = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&answer[..body_at]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "connection"), None, "kept alive: {head}");
    let xs = answer[body_at..].iter().filter(|b| **b == b'x').count();
    assert_eq!(xs, total, "every uploaded byte came back");
    // The upload ended cleanly, so the connection serves the next request.
    wr.write_all(b"GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut next = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut next))
        .await
        .unwrap()
        .unwrap();
    let next = String::from_utf8_lossy(&next);
    assert!(
        next.starts_with("HTTP/1.1 200") && next.ends_with("pong"),
        "{next}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_abandons_its_upload_mid_answer_is_closed_promptly() {
    let (proxy, _stop) = proxy(&echo_routes(echo_backend(1 << 20).await)).await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&vec![b'x'; 100 * 1024]).await.unwrap();
    // The client stops sending: its body can never be complete.
    s.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .expect("the proxy does not wait on a body that cannot end")
        .unwrap_or_default();
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = String::from_utf8_lossy(&answer);
    // Depending on which the proxy notices first: the backend's head (then the answer is cut
    // off, never made to look complete), or the client's broken body (then it is a 400).
    if text.starts_with("HTTP/1.1 200") {
        assert!(
            !text.ends_with("\r\n0\r\n\r\n"),
            "a cut answer looks complete"
        );
    } else {
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "{}",
            &text[..80.min(text.len())]
        );
        assert!(text.contains("bad-request"), "{text}");
    }
}

/// `Expect: 100-continue` is answered when the request path reads the body: an upload to a
/// backend gets `100 Continue` and then its answer; a request answered without its body (a
/// direct response here, a 401 or 413 alike) gets its answer alone, and the connection closes
/// since the body was never read.
#[tokio::test]
async fn continue_is_sent_only_when_the_body_is_wanted() {
    let backend = frontdesk_demo::spawn("b").await;
    let routes = manifest(
        "Route",
        "r",
        &format!(
            "  rules:
    - matches: [{{path: {{value: /upload}}}}]
      backends: [{{url: 'http://{backend}'}}]
    - matches: [{{path: {{value: /refuse}}}}]
      directResponse: {{status: 403, body: refused}}"
        ),
    );
    let (proxy, _stop) = proxy(&routes).await;

    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("100 Continue comes before the body is sent")
        .unwrap();
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{\"bytes\":5}"), "{answer}");

    let (answer, _) = exchange(
        proxy,
        "POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert_eq!(header(&answer, "connection"), Some("close"));
}

/// A backend connection goes back to its pool once an answer's last bytes went to the client,
/// whether its length was declared or chunked: requests one after the other use one.
#[tokio::test]
async fn answers_one_after_the_other_use_one_backend_connection() {
    let sized = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let backend = scripted(vec![Some(sized), Some(chunked), Some(sized), Some(chunked)]).await;
    let (proxy, _stop) = proxy(&route_to(backend.addr, "")).await;
    for _ in 0..4 {
        let get = "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        let (answer, _) = exchange(proxy, get, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("ok"), "{answer}");
    }
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1);
}
