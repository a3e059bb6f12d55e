//! Retries, against real backends on 127.0.0.1: demo backends that fail on purpose, ports where
//! nothing listens, listeners that hang up or never answer. The request path runs in-process
//! (its backends' endpoints set in the snapshot, as a Service's would be), and once in a proxy
//! process for what the client and the access log see.
// Real sockets, timed by the wall clock: the paused-time ban (clippy.toml) is for the proxy's
// own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use frontdesk_proxy::runtime::{Env, Runtime};
use frontdesk_snapshot::Action;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use support::resilience::{CLIENT, metric, send_body as call};
use support::*;

/// A Route with one rule for every path, forwarding to `endpoints` (one backend), with
/// `retries` (YAML flow mapping) if given.
fn runtime(endpoints: &[SocketAddr], retries: Option<&str>) -> Arc<Runtime> {
    runtime_with_timeout(endpoints, "2s", retries)
}

fn runtime_with_timeout(
    endpoints: &[SocketAddr],
    timeout: &str,
    retries: Option<&str>,
) -> Arc<Runtime> {
    let retries = retries.map_or(String::new(), |r| format!("      retries: {r}\n"));
    let yaml = manifest(
        "Route",
        "shop",
        &format!(
            "  rules:\n    - timeout: {timeout}\n{retries}      backends: [{{url: 'http://{}'}}]\n",
            endpoints[0]
        ),
    );
    let mut snap = snapshot(&yaml);
    let Action::Forward { backends } =
        &mut std::sync::Arc::make_mut(&mut snap.routes[0]).rules[0].action
    else {
        panic!("a forward");
    };
    backends[0].endpoints = endpoints.iter().map(|e| e.to_string()).collect();
    Arc::new(Runtime::build(snap, Arc::new(Env::standalone())).unwrap())
}

/// How many requests a demo backend has answered.
async fn requests(backend: SocketAddr) -> u64 {
    let a = get(&format!("http://{backend}/requests")).await.unwrap();
    json(&a.2)["requests"].as_u64().unwrap()
}

/// A backend that reads each request head and hangs up without a word (a crashed worker).
async fn hanging_up() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_backend_failing_one_request_in_three_is_invisible_with_retries_and_visible_without() {
    let flaky = frontdesk_demo::spawn("flaky").await;
    let plain = runtime(&[flaky], None);
    let mut failed = 0;
    for _ in 0..30 {
        let (status, _) = call(&plain, "GET", "/flaky/3", "").await;
        failed += usize::from(status == 503);
    }
    assert_eq!(failed, 10, "without retries every third request fails");

    let retried = runtime(&[flaky], Some("{attempts: 2, on: ['503'], backoff: 1ms}"));
    let before = requests(flaky).await;
    for i in 0..30 {
        let (status, body) = call(&retried, "GET", "/flaky/3", "").await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    // Every 503 the backend sent (one in three of its answers) was tried again, only those.
    let failures = requests(flaky).await - before - 30;
    assert_eq!(failures, 14, "30 answers took 44 tries");
    assert_eq!(
        metric(
            &retried,
            "frontdesk_upstream_retries_total{route=\"test/shop/rule-0\",reason=\"status\"}"
        ),
        failures
    );
}

#[tokio::test]
async fn a_post_is_not_retried_unless_the_rule_opts_in_and_its_body_is_sent_again() {
    let backend = frontdesk_demo::spawn("down").await;
    let cautious = runtime(&[backend], Some("{attempts: 2, on: ['503'], backoff: 1ms}"));
    let before = requests(backend).await;
    let (status, _) = call(&cautious, "POST", "/status/503", "order=1").await;
    assert_eq!(status, 503);
    assert_eq!(requests(backend).await - before, 1, "a POST is sent once");
    let (status, _) = call(&cautious, "GET", "/status/503", "").await;
    assert_eq!(status, 503, "the last try's answer is the client's");
    assert_eq!(requests(backend).await - before, 4, "a GET three times");

    let bold = runtime(
        &[backend],
        Some("{attempts: 2, on: ['503'], backoff: 1ms, nonIdempotent: true}"),
    );
    let before = requests(backend).await;
    let (status, _) = call(&bold, "POST", "/status/503", "order=1").await;
    assert_eq!(status, 503);
    assert_eq!(requests(backend).await - before, 3);
    // A retried POST carries its whole body again: the backend's second answer (a 503) is
    // tried again and the third one counts the body.
    let flaky = frontdesk_demo::spawn("flaky").await;
    let bold = runtime(
        &[flaky],
        Some("{attempts: 2, on: ['503'], backoff: 1ms, nonIdempotent: true}"),
    );
    let (status, body) = call(&bold, "POST", "/flaky/2", "order=1").await;
    assert_eq!(
        (status, json(&Bytes::from(body))["n"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let (status, body) = call(&bold, "POST", "/flaky/2", "order=1").await;
    let answer = json(&Bytes::from(body));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["n"].as_u64(), answer["bodyBytes"].as_u64()),
        (Some(3), Some(7))
    );
}

#[tokio::test]
async fn the_budget_caps_retries_when_every_endpoint_fails() {
    let (a, b) = (
        frontdesk_demo::spawn("a").await,
        frontdesk_demo::spawn("b").await,
    );
    // 20% of requests, at least 1 per second: 10 retries in the first seconds, whatever the
    // attempts say.
    let rt = runtime(
        &[a, b],
        Some("{attempts: 3, on: ['503'], backoff: 1ms, budget: {percent: 20, minPerSecond: 1}}"),
    );
    let before = requests(a).await + requests(b).await;
    for _ in 0..50 {
        assert_eq!(call(&rt, "GET", "/status/503", "").await.0, 503);
    }
    let hits = requests(a).await + requests(b).await - before;
    assert_eq!(hits, 60, "50 requests and 10 retries, not 200 tries");
    assert_eq!(
        metric(
            &rt,
            "frontdesk_upstream_retry_budget_exhausted_total{route=\"test/shop/rule-0\"}"
        ),
        47,
        "requests 1 to 3 took 3 retries each, the 4th one and was refused its second, \
         every later one was refused its first"
    );
}

#[tokio::test]
async fn connect_failures_resets_and_silence_move_to_another_endpoint() {
    let good = frontdesk_demo::spawn("good").await;
    for (bad, on, reason) in [
        (free_port(), "connect-failure", "connect-failure"),
        (hanging_up().await, "reset", "reset"),
        (silent_backend().await, "timeout", "timeout"),
    ] {
        let plain = runtime(
            &[bad, good],
            Some("{attempts: 1, on: ['418'], perTryTimeout: 300ms}"),
        );
        let mut failed = 0;
        for _ in 0..4 {
            failed += usize::from(call(&plain, "GET", "/products", "").await.0 != 200);
        }
        assert_eq!(
            failed, 2,
            "{on}: without the condition, half the requests fail"
        );

        let retried = runtime(
            &[bad, good],
            Some(&format!(
                "{{attempts: 1, on: [{on}], perTryTimeout: 300ms, backoff: 1ms}}"
            )),
        );
        for i in 0..4 {
            let (status, body) = call(&retried, "GET", "/products", "").await;
            assert_eq!(status, 200, "{on}, request {i}: {body}");
        }
        assert_eq!(
            metric(
                &retried,
                &format!(
                    "frontdesk_upstream_retries_total{{route=\"test/shop/rule-0\",reason=\"{reason}\"}}"
                )
            ),
            2,
            "{on}"
        );
    }
}

/// A POST of `parts` with no declared length: its body streams.
async fn streamed_post(rt: &Arc<Runtime>, parts: [&'static str; 2]) -> (StatusCode, Bytes) {
    let stream = futures::stream::iter(parts.map(|s| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(s.as_bytes())))
    }));
    post_stream(rt, stream).await
}

/// A POST to /upload whose body is `stream`; the answer's status and body.
async fn post_stream<S>(rt: &Arc<Runtime>, stream: S) -> (StatusCode, Bytes)
where
    S: futures::Stream<Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>>
        + Send
        + Sync
        + 'static,
{
    let req = Request::post("/upload")
        .header("host", "shop.example.com")
        .body(http_body_util::StreamBody::new(stream))
        .unwrap();
    let resp = rt
        .clone()
        .handle(req, CLIENT.parse::<SocketAddr>().unwrap())
        .await;
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn a_streamed_body_is_retried_only_when_no_connection_was_made() {
    let good = frontdesk_demo::spawn("good").await;
    let retries = "{attempts: 1, on: [connect-failure, reset], backoff: 1ms, nonIdempotent: true}";
    // Nothing of the body was read when the connection could not be made: it goes on whole.
    let rt = runtime(&[free_port(), good], Some(retries));
    for _ in 0..4 {
        let (status, body) = streamed_post(&rt, ["part one, ", "part two"]).await;
        assert_eq!(status, 200);
        assert_eq!(json(&body)["bytes"], 18);
    }
    // A backend that hung up after reading it: what it read is gone, so no other try.
    let rt = runtime(&[hanging_up().await, good], Some(retries));
    let mut failed = 0;
    for _ in 0..4 {
        failed += usize::from(streamed_post(&rt, ["part one, ", "part two"]).await.0 == 502);
    }
    assert_eq!(failed, 2, "the two that went to the backend that hung up");
}

#[tokio::test]
async fn a_slow_upload_retried_after_a_refused_connection_is_not_cut_off_by_the_timeout() {
    let good = frontdesk_demo::spawn("good").await;
    // The rule's timeout (300ms) is shorter than the upload (3 parts 200ms apart): it counts
    // from when the body was sent in full, on the second try as on the first.
    let rt = runtime_with_timeout(
        &[free_port(), good],
        "300ms",
        Some("{attempts: 1, on: [connect-failure], backoff: 1ms, nonIdempotent: true}"),
    );
    for _ in 0..2 {
        let parts = futures::stream::unfold(0, |i| async move {
            if i == 3 {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let frame = http_body::Frame::data(Bytes::from_static(b"0123456789"));
            Some((Ok::<_, std::convert::Infallible>(frame), i + 1))
        });
        let (status, body) = post_stream(&rt, parts).await;
        assert_eq!(status, 200);
        assert_eq!(json(&body)["bytes"], 30);
    }
}

#[tokio::test]
async fn tries_show_in_the_access_log_and_never_to_the_client() {
    let flaky = frontdesk_demo::spawn("flaky").await;
    let r = route(
        "shop",
        &format!(
            "  rules:\n    - retries: {{attempts: 2, on: ['503'], backoff: 1ms}}\n      backends: [{{url: 'http://{flaky}'}}]\n"
        ),
    );
    let p = ProxyProcess::with_files(&[("r.yaml", &r)], &[]).await;
    // The backend answers its first request, and the second one's first try with a 503.
    let a = get(&p.url("/flaky/2")).await.unwrap();
    let b = get(&p.url("/flaky/2")).await.unwrap();
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
    for (name, _) in a.1.iter().chain(b.1.iter()) {
        assert!(
            !name.as_str().contains("tries") && !name.as_str().contains("attempt"),
            "{name}"
        );
    }
    let log = p.wait_log_stdout("\"tries\":2").await;
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("\"tries\"")).collect();
    assert_eq!(lines.len(), 1, "only the retried request: {log}");
    assert!(lines[0].contains("\"status\":200"), "{log}");
}
