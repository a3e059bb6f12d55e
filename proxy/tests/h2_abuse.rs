//! HTTP/2 abuse: a client opening and immediately resetting streams (Rapid Reset,
//! CVE-2023-44487) must not take the proxy down or keep it busy for others.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::time::{Duration, Instant};

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off_and_others_are_still_served() {
    let a = frontdesk_demo::spawn("a").await;
    let r = route(
        "slow",
        &format!("  rules:\n    - backends: [{{url: 'http://{a}'}}]"),
    );
    let p = ProxyProcess::with_files(&[("r.yaml", &r)], &["--access-log", "off"]).await;

    let tcp = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let started = Instant::now();
    let mut sent = 0u32;
    for _ in 0..20_000 {
        let ready = match tokio::time::timeout(Duration::from_secs(2), h2.clone().ready()).await {
            Ok(Ok(s)) => s,
            _ => break,
        };
        h2 = ready;
        let req = http::Request::get(format!("http://{}/delay/1000", p.addr))
            .body(())
            .unwrap();
        match h2.send_request(req, true) {
            // Dropping the response future resets the stream at once (RST_STREAM CANCEL).
            Ok((response, _)) => drop(response),
            Err(_) => break,
        }
        sent += 1;
    }
    let outcome = tokio::time::timeout(Duration::from_secs(5), conn).await;
    eprintln!(
        "sent {sent} reset streams in {:?}; connection: {outcome:?}",
        started.elapsed()
    );
    // hyper's bound on remotely reset streams (max_pending_accept_reset_streams = 20 pending)
    // makes the proxy close the connection; about 900 streams get through before it does.
    assert!(
        sent < 20_000,
        "the proxy accepted 20,000 reset streams without closing the connection"
    );
    assert!(
        matches!(outcome, Ok(Ok(Err(_)))),
        "the abusive connection was not closed: {outcome:?}"
    );

    // Others are served promptly meanwhile and after.
    let t = Instant::now();
    let (status, _, _) = get(&p.url("/status/200")).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "a normal request took {:?}",
        t.elapsed()
    );
    let (status, _, _) = get(&format!("http://{}/healthz", p.admin)).await.unwrap();
    assert_eq!(status, 200);
    let m = p.metrics().await;
    assert!(
        m.contains(r#"frontdesk_connection_limits_total{limit="http2-reset-flood"} 1"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrent_stream_bound_is_the_flags() {
    let a = frontdesk_demo::spawn("a").await;
    let r = route(
        "slow",
        &format!("  rules:\n    - backends: [{{url: 'http://{a}'}}]"),
    );
    let p =
        ProxyProcess::with_files(&[("r.yaml", &r)], &["--http2-max-concurrent-streams", "3"]).await;
    let tcp = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    // One exchange, so the proxy's SETTINGS have arrived.
    let req = http::Request::get(format!("http://{}/status/200", p.addr))
        .body(())
        .unwrap();
    let (resp, _) = h2.send_request(req, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    assert_eq!(h2.current_max_send_streams(), 3);
}
