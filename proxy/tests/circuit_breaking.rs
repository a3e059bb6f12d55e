//! Circuit breaking and outlier detection (a Policy's `circuitBreaker`), against real backends
//! on 127.0.0.1: a backend that holds every request until the test lets it answer, one that
//! answers 500 to everything, and demo backends. The request path runs in-process (the
//! backend's endpoints set in the snapshot, as a Service's would be), and in a proxy process for
//! what the client, the metrics and the log see.
// Real sockets, timed by the wall clock: the paused-time ban (clippy.toml) is for the proxy's
// own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use frontdesk_proxy::runtime::{Env, Runtime};
use frontdesk_snapshot::Action;
use http::StatusCode;
use support::resilience::*;
use support::*;

/// [`runtime`] with Policy `breaker` holding `circuit_breaker` (a YAML flow mapping).
fn breaker_runtime(
    endpoints: &[std::net::SocketAddr],
    circuit_breaker: &str,
    retries: Option<&str>,
) -> Arc<Runtime> {
    runtime(
        endpoints,
        &format!("  circuitBreaker: {circuit_breaker}"),
        retries,
    )
}

fn breaker_manifests(
    backend: std::net::SocketAddr,
    circuit_breaker: &str,
    retries: Option<&str>,
) -> String {
    manifests(
        backend,
        &format!("  circuitBreaker: {circuit_breaker}"),
        retries,
    )
}

#[tokio::test]
async fn a_circuit_opens_at_its_bound_and_closes_after() {
    let (backend, held, open) = gated_backend().await;
    let rt = breaker_runtime(
        &[backend],
        "{maxRequests: 2, maxPendingRequests: 1, consecutiveFailures: 0}",
        None,
    );
    let in_flight: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn({
                let rt = rt.clone();
                async move { call(&rt, "/a").await }
            })
        })
        .collect();
    until("two requests at the backend", || {
        held.load(Ordering::SeqCst) == 2
    })
    .await;
    // Two more: one waits for a place, the other finds the waiting room full.
    let mut more: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn({
                let rt = rt.clone();
                async move { call(&rt, "/b").await }
            })
        })
        .collect();
    let refused = loop {
        if let Some(i) = more.iter().position(|t| t.is_finished()) {
            break more.remove(i).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.1["content-type"], "application/problem+json");
    let problem = json(&Bytes::from(refused.2));
    assert_eq!(
        problem["type"],
        "https://frontdesk.dev/problems/circuit-open"
    );
    assert_eq!(
        problem["detail"],
        "the backend has 2 requests in flight and 1 waiting, its most"
    );
    assert_eq!(
        held.load(Ordering::SeqCst),
        2,
        "the refused request never reached the backend"
    );
    assert_eq!(metric(&rt, "frontdesk_upstream_overflow_total{"), 1);

    // The gate opens: the two in flight are answered, then the one that waited.
    open.send(true).unwrap();
    for t in in_flight.into_iter().chain(more) {
        assert_eq!(t.await.unwrap().0, StatusCode::OK);
    }
    assert_eq!(held.load(Ordering::SeqCst), 3);
    // Closed again: as many requests as the bound at once get through.
    let (a, b) = tokio::join!(call(&rt, "/c"), call(&rt, "/d"));
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
    assert_eq!(metric(&rt, "frontdesk_upstream_overflow_total{"), 1);
}

#[tokio::test]
async fn without_a_waiting_room_a_request_past_the_bound_is_refused_at_once() {
    let (backend, held, open) = gated_backend().await;
    let rt = breaker_runtime(&[backend], "{maxRequests: 1, maxPendingRequests: 0}", None);
    let first = tokio::spawn({
        let rt = rt.clone();
        async move { call(&rt, "/a").await }
    });
    until("a request at the backend", || {
        held.load(Ordering::SeqCst) == 1
    })
    .await;
    let refused = tokio::time::timeout(Duration::from_secs(1), call(&rt, "/b"))
        .await
        .expect("refused at once, not after a wait");
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE);
    open.send(true).unwrap();
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    assert_eq!(call(&rt, "/c").await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_endpoint_answering_500s_is_ejected_after_its_failures_and_returns_after_the_ejection_time()
 {
    let (bad, bad_hits) = fixed_backend(ALWAYS_500).await;
    let good = frontdesk_demo::spawn("good").await;
    let rt = breaker_runtime(
        &[bad, good],
        "{consecutiveFailures: 3, ejectionTime: 1s}",
        None,
    );
    let mut failed = 0;
    for _ in 0..20 {
        let (status, _, _) = call(&rt, "/products/1").await;
        failed += usize::from(status == 500);
    }
    // Round robin sends every other request to the bad endpoint until its third 500.
    assert_eq!((failed, bad_hits.load(Ordering::SeqCst)), (3, 3));
    assert_eq!(metric(&rt, "frontdesk_upstream_ejections_total{"), 1);
    assert_eq!(metric(&rt, "frontdesk_upstream_ejected_endpoints{"), 1);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..4 {
        call(&rt, "/products/1").await;
    }
    assert_eq!(
        bad_hits.load(Ordering::SeqCst),
        5,
        "back in the balancer after the ejection time"
    );
    assert_eq!(metric(&rt, "frontdesk_upstream_ejected_endpoints{"), 0);
    // Failing again soon after it returned: ejected at its third failure since, for longer.
    for _ in 0..10 {
        call(&rt, "/products/1").await;
    }
    assert_eq!(bad_hits.load(Ordering::SeqCst), 6);
    assert_eq!(metric(&rt, "frontdesk_upstream_ejections_total{"), 2);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..4 {
        call(&rt, "/products/1").await;
    }
    assert_eq!(
        bad_hits.load(Ordering::SeqCst),
        6,
        "the second ejection lasts 2s"
    );
}

#[tokio::test]
async fn no_more_than_the_share_of_endpoints_is_ejected_and_with_retries_clients_see_no_failure() {
    let (bad_a, hits_a) = fixed_backend(ALWAYS_500).await;
    let (bad_b, hits_b) = fixed_backend(ALWAYS_500).await;
    let good = frontdesk_demo::spawn("good").await;
    let rt = breaker_runtime(
        &[bad_a, bad_b, good],
        "{consecutiveFailures: 2, maxEjectionPercent: 34}",
        Some("{attempts: 2, on: [5xx], backoff: 1ms, budget: {percent: 100}}"),
    );
    for i in 0..30 {
        let (status, _, body) = call(&rt, "/products/1").await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    // 34% of 3 endpoints is one: the other failing endpoint stays in, and every request it
    // gets is tried again at the good one.
    assert_eq!(metric(&rt, "frontdesk_upstream_ejections_total{"), 1);
    let (a, b) = (hits_a.load(Ordering::SeqCst), hits_b.load(Ordering::SeqCst));
    assert!(a.min(b) == 2 && a.max(b) > 2, "hits {a} and {b}");
}

#[tokio::test]
async fn a_proxy_logs_and_counts_ejections_and_its_clients_get_problems_without_addresses() {
    let (bad, _) = fixed_backend(ALWAYS_500).await;
    let m = breaker_manifests(
        bad,
        "{consecutiveFailures: 2, maxRequests: 1, maxPendingRequests: 0}",
        None,
    );
    let p = ProxyProcess::with_files(&[("r.yaml", &m)], &[]).await;
    for _ in 0..3 {
        assert_eq!(get(&p.url("/x")).await.unwrap().0, 500);
    }
    let log = p.wait_log("ejected from the balancer").await;
    assert!(
        log.contains(&bad.to_string()),
        "the log names the endpoint: {log}"
    );
    let metrics = p.metrics().await;
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .to_string()
    };
    assert!(line("frontdesk_upstream_ejections_total{").ends_with(" 1"));
    let ejections = line("frontdesk_upstream_ejections_total{");
    assert!(
        ejections.contains("route=\"test/shop/rule-0\""),
        "{ejections}"
    );

    // The circuit's answer over a real socket: problem+json naming no backend or address.
    let (held_at, held, open) = gated_backend().await;
    let m = breaker_manifests(held_at, "{maxRequests: 1, maxPendingRequests: 0}", None);
    std::fs::write(p.dir.join("r.yaml"), m).unwrap();
    let v = p.config_version().await;
    p.wait_version_above(v).await;
    let url = p.url("/slow");
    let first = tokio::spawn(async move { get(&url).await.unwrap() });
    until("a request at the backend", || {
        held.load(Ordering::SeqCst) == 1
    })
    .await;
    let (status, headers, body) = get(&p.url("/x")).await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(headers["content-type"], "application/problem+json");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("/circuit-open"), "{text}");
    assert!(
        !text.contains("127.0.0.1") && !text.contains(&held_at.port().to_string()),
        "{text}"
    );
    open.send(true).unwrap();
    assert_eq!(first.await.unwrap().0, 200);
}

#[tokio::test]
async fn an_aggregate_call_takes_its_place_among_the_backend_requests_in_flight() {
    let (backend, held, open) = gated_backend().await;
    let m = manifest(
        "Policy",
        "breaker",
        "  circuitBreaker: {maxRequests: 1, maxPendingRequests: 0}",
    ) + &manifest(
        "Aggregate",
        "both",
        &format!(
            "  path: /both\n  policies: [breaker]\n  timeout: 5s\n  calls:\n    - {{name: a, backend: {{url: 'http://{backend}'}}, path: /a, required: false}}\n"
        ),
    );
    let mut snap = snapshot(&m);
    let Action::Aggregate(a) = &mut std::sync::Arc::make_mut(&mut snap.routes[0]).rules[0].action
    else {
        panic!("an aggregate");
    };
    a.calls[0].backend.endpoints = vec![backend.to_string()];
    let rt = Arc::new(Runtime::build(snap, Arc::new(Env::standalone())).unwrap());
    let first = tokio::spawn({
        let rt = rt.clone();
        async move { call(&rt, "/both").await }
    });
    until("a call at the backend", || held.load(Ordering::SeqCst) == 1).await;
    // The second answer goes without its optional call: the backend has its one in flight.
    let (status, _, body) = call(&rt, "/both").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(held.load(Ordering::SeqCst), 1);
    assert_eq!(metric(&rt, "frontdesk_upstream_overflow_total{"), 1);
    open.send(true).unwrap();
    assert_eq!(first.await.unwrap().0, 200);
}
