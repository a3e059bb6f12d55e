//! Resources per client are bounded, tried from outside with raw sockets: a client that stops
//! sending its body, one that stops reading its answer, a partial HTTP/2 preface, too many
//! connections from one address, bodies over the route's limit, and memory past its bound. Each gets its exact
//! answer, and the proxy keeps serving everyone else.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use support::*;

async fn start(extra: &[&str]) -> ProxyProcess {
    let demo = frontdesk_demo::spawn("demo").await;
    let files = manifest(
        "Policy",
        "big-uploads",
        "  limits: {maxRequestBodyBytes: 5000}",
    ) + &manifest(
        "Route",
        "bounds",
        &format!(
            "  rules:
    - name: big
      matches: [{{path: {{value: /big}}}}]
      policies: [big-uploads]
      rewrite: {{pathPrefix: /upload}}
      backends: [{{url: 'http://{demo}'}}]
    - name: rest
      backends: [{{url: 'http://{demo}'}}]"
        ),
    );
    ProxyProcess::with_files(&[("m.yaml", &files)], extra).await
}

/// Reads until the peer closes (or `limit` passes); returns what came and when it ended.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), None),
            Ok(Ok(0) | Err(_)) => {
                return (
                    String::from_utf8_lossy(&out).into_owned(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends `request` on a new connection; returns the whole answer and when it closed.
async fn exchange(p: &ProxyProcess, request: &str) -> (String, Option<Duration>) {
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    read_until_closed(&mut s, Duration::from_secs(10)).await
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_its_body_gets_408() {
    let p = start(&["--body-read-timeout", "500ms"]).await;
    let (answer, closed) = exchange(
        &p,
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..",
    )
    .await;
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 408 Request Timeout",
        "{answer}"
    );
    assert!(answer.contains("/problems/body-timeout"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    let closed = closed.expect("the connection closes");
    assert!(closed < Duration::from_secs(5), "held for {closed:?}");
    // Everyone else is served meanwhile.
    assert_eq!(get(&p.url("/status/200")).await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_and_a_policy_can_raise_it() {
    let p = start(&["--max-request-body-bytes", "1000"]).await;
    let big = "x".repeat(2000);
    // Declared too large: refused before the backend is called.
    let (answer, _) = exchange(
        &p,
        &format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n{big}"),
    )
    .await;
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 413 Payload Too Large",
        "{answer}"
    );
    assert!(answer.contains("/problems/body-too-large"), "{answer}");
    assert!(answer.contains("larger than the 1000 bytes"), "{answer}");
    // Streamed without a length: cut off once past the limit.
    let (answer, _) = exchange(&p, &format!("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n{big}\r\n0\r\n\r\n")).await;
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 413 Payload Too Large",
        "{answer}"
    );
    // Within the limit: served.
    let (answer, _) = exchange(&p, &format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{}",
            &big[..1000]
        )).await;
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert!(answer.ends_with("{\"bytes\":1000}"), "{answer}");
    // The /big route's Policy allows 5000 bytes.
    let (answer, _) = exchange(&p, &format!("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n{big}")).await;
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert!(answer.ends_with("{\"bytes\":2000}"), "{answer}");
    let metrics = p.metrics().await;
    assert!(
        metrics.contains(
            r#"frontdesk_local_replies_total{route="test/bounds/rest",type="body-too-large"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_are_let_go_and_cost_little_memory() {
    let p = start(&["--send-timeout", "1s"]).await;
    // Warm up, then measure the proxy while 200 clients ask for 4 MiB each and read nothing.
    assert_eq!(get(&p.url("/bytes/10")).await.unwrap().0, 200);
    let before = p.memory_kib("VmRSS");
    let mut stalled = Vec::new();
    for _ in 0..200 {
        // A small receive window, and an answer larger than the proxy's socket send buffer can
        // grow to (4 MiB): the proxy's writes must wait.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket.connect(p.addr).await.unwrap();
        s.write_all(b"GET /bytes/8388608 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let during = p.memory_kib("VmRSS");
    let per_client = (during.saturating_sub(before)) / 200;
    assert!(
        per_client <= 100,
        "{per_client} KiB of proxy memory per client that stopped reading ({before} -> {during} KiB)"
    );
    // Each is let go once its write has waited the send timeout (reading nothing meanwhile:
    // reading would let the writes go on).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut metrics = String::new();
    while Instant::now() < deadline {
        metrics = p.metrics().await;
        if metrics.contains(r#"frontdesk_connection_limits_total{limit="send-timeout"} 200"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains(r#"frontdesk_connection_limits_total{limit="send-timeout"} 200"#),
        "{metrics}"
    );
    // What the kernel had buffered can still be read, then the connection ends.
    let (_, closed) = read_until_closed(&mut stalled[0], Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a client that stopped reading was held");
    assert_eq!(get(&p.url("/status/200")).await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_memory_bound_the_proxy_turns_new_connections_away() {
    // Any process is past 1 MiB: overloaded from the first sample on.
    let p = start(&["--max-memory", "1Mi"]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    // The exact sample line: the metric's help text also reads "frontdesk_overloaded 1 while...".
    while !p
        .metrics()
        .await
        .lines()
        .any(|l| l == "frontdesk_overloaded 1")
    {
        assert!(
            Instant::now() < deadline,
            "never overloaded:\n{}",
            p.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (answer, closed) = exchange(&p, "GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(answer, "", "served while overloaded");
    assert!(closed.is_some(), "held while overloaded");
    // The admin listener still answers: probes and metrics say what is going on, and the
    // proxy is not ready, so endpoints send new clients elsewhere.
    let (status, _, _) = get(&format!("http://{}/healthz", p.admin)).await.unwrap();
    assert_eq!(status, 200);
    let (status, _, body) = get(&format!("http://{}/ready", p.admin)).await.unwrap();
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("overloaded"));
    let m = p.metrics().await;
    assert!(
        m.contains(r#"frontdesk_connection_limits_total{limit="memory"} 1"#),
        "{m}"
    );
    p.wait_log("overloaded: memory is at its limit").await;

    // With room, the same proxy serves.
    let p = start(&["--max-memory", "1Gi"]).await;
    let (answer, _) = exchange(
        &p,
        "GET /status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert!(
        p.metrics()
            .await
            .lines()
            .any(|l| l == "frontdesk_overloaded 0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let p = start(&["--max-connections-per-client", "3"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.1", p.addr).await);
    }
    // Let the proxy accept them before the fourth comes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = connect_from("127.0.0.1", p.addr).await;
    let _ = fourth
        .write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (answer, closed) = read_until_closed(&mut fourth, Duration::from_secs(5)).await;
    assert_eq!(answer, "", "the fourth connection was served");
    assert!(closed.is_some(), "the fourth connection was held");
    // Another address is served meanwhile, and the held ones still work.
    let mut other = connect_from("127.0.0.2", p.addr).await;
    other
        .write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut other, Duration::from_secs(5)).await;
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    held[0]
        .write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut held[0], Duration::from_secs(5)).await;
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert!(
        p.metrics()
            .await
            .contains(r#"frontdesk_connection_limits_total{limit="connections-per-client"} 1"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_and_partial_http2_prefaces_are_closed() {
    let p = start(&["--header-read-timeout", "500ms"]).await;
    let mut silent = TcpStream::connect(p.addr).await.unwrap();
    let mut partial = TcpStream::connect(p.addr).await.unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for s in [&mut silent, &mut partial] {
        let (answer, closed) = read_until_closed(s, Duration::from_secs(5)).await;
        assert_eq!(answer, "");
        let closed = closed.expect("closed");
        assert!(closed < Duration::from_secs(3), "held for {closed:?}");
    }
    assert!(
        p.metrics()
            .await
            .contains(r#"frontdesk_connection_limits_total{limit="header-read-timeout"} 2"#)
    );
}

/// A keep-alive connection's next request starts under the idle timeout; once its head has
/// begun, the rest is due within the header timeout, however long the idle timeout is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_second_request_head_is_cut_at_the_header_timeout() {
    let p = start(&["--header-read-timeout", "500ms", "--idle-timeout", "30s"]).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = Vec::new();
    let mut chunk = [0u8; 4096];
    while !first.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("the first answer")
            .unwrap();
        assert!(n > 0, "closed before the first answer");
        first.extend_from_slice(&chunk[..n]);
    }
    assert!(
        first.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    // Idle a while (well within the idle timeout), then begin a head and stall.
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    let closed = closed.expect("closed");
    assert!(
        closed < Duration::from_secs(3),
        "a stalled second head was held for {closed:?}"
    );
    assert!(
        p.metrics()
            .await
            .contains(r#"frontdesk_connection_limits_total{limit="header-read-timeout"} 1"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_get_goaway_even_when_they_ping() {
    let p = start(&["--idle-timeout", "1s"]).await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (h2, mut conn) = h2::client::handshake(tcp).await.unwrap();
    let mut pings = conn.ping_pong().expect("ping_pong");
    let started = Instant::now();
    let conn = tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    // A stream open longer than the idle timeout is not cut: 4 lines, one every 400 ms.
    let req = http::Request::get(format!("http://{}/stream/4/400", p.addr))
        .body(())
        .unwrap();
    let (resp, _) = h2.send_request(req, true).unwrap();
    let mut body = resp.await.unwrap().into_body();
    let mut got = 0;
    while let Some(chunk) = body.data().await {
        got += chunk.unwrap().len();
    }
    assert!(got > 0 && started.elapsed() > Duration::from_millis(1200));
    // Then idle, answering pings all the while: GOAWAY within the idle timeout.
    let pinging = tokio::spawn(async move {
        loop {
            if pings.ping(h2::Ping::opaque()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let idle_from = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle connection was not closed");
    assert!(closed.is_ok(), "{closed:?}");
    assert!(idle_from.elapsed() >= Duration::from_millis(900));
    pinging.abort();
    assert!(
        p.metrics()
            .await
            .contains(r#"frontdesk_connection_limits_total{limit="http2-idle-timeout"} 1"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_stops_sending_its_body_gets_408() {
    let p = start(&["--body-read-timeout", "500ms"]).await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    let req = http::Request::post(format!("http://{}/upload", p.addr))
        .body(())
        .unwrap();
    let (resp, mut upload) = h2.send_request(req, false).unwrap();
    upload
        .send_data(bytes::Bytes::from_static(b"only the start"), false)
        .unwrap();
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(resp.status(), 408);
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(upload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_stops_reading_is_let_go_and_a_slow_reader_is_not() {
    let p = start(&["--send-timeout", "1s"]).await;
    let connect = || async {
        let tcp = TcpStream::connect(p.addr).await.unwrap();
        let (h2, conn) = h2::client::handshake(tcp).await.unwrap();
        (h2.ready().await.unwrap(), tokio::spawn(conn))
    };
    let ask = |size: usize| {
        http::Request::get(format!("http://{}/bytes/{size}", p.addr))
            .body(())
            .unwrap()
    };

    // Takes the headers, then never makes room for more than the first window's worth.
    let (mut stalled, stalled_conn) = connect().await;
    let (resp, _) = stalled.send_request(ask(8 << 20), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), stalled_conn).await;
    assert!(ended.is_ok(), "a client that stopped reading was held");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "let go too soon"
    );
    assert!(
        p.metrics()
            .await
            .contains(r#"frontdesk_connection_limits_total{limit="send-timeout"} 1"#)
    );

    // Holds one stream back (a paused download) and reads another slowly, every frame within
    // the timeout: the connection stays, and the read one is served to the end.
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (h2, conn) = h2::client::Builder::new()
        .initial_connection_window_size(4 << 20)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut slow = h2.ready().await.unwrap();
    let (paused, _) = slow.send_request(ask(8 << 20), true).unwrap();
    let _paused = paused.await.unwrap();
    let mut slow = slow.ready().await.unwrap();
    let (resp, _) = slow.send_request(ask(256 << 10), true).unwrap();
    let mut body = resp.await.unwrap().into_body();
    let mut got = 0;
    let mut alive_midway = None;
    let started = Instant::now();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        got += chunk.len();
        tokio::time::sleep(Duration::from_millis(40)).await;
        let _ = body.flow_control().release_capacity(chunk.len());
        // Checked once the paused stream has waited past the send timeout, while the read one
        // still moves: not after the read ends, when nothing moves any more and the connection
        // may rightly go (asserted below) before a loaded machine's client reads its tail.
        if alive_midway.is_none() && started.elapsed() > Duration::from_secs(1) {
            alive_midway = Some(!conn.is_finished());
        }
    }
    assert_eq!(got, 256 << 10);
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "not slow enough to tell"
    );
    assert_eq!(
        alive_midway,
        Some(true),
        "a paused stream cost the connection while another one moved"
    );
    // With nothing moving any more, the paused stream's connection goes too.
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(ended.is_ok(), "a connection with nothing moving was held");
    assert!(
        p.metrics()
            .await
            .contains(r#"frontdesk_connection_limits_total{limit="send-timeout"} 2"#)
    );
}
