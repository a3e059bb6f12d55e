//! Aggregates against real backends: merges and shaping, dependsOn, optional and required
//! failures (with the cancelled calls seen by the backend), the deadline, URL injection, and a
//! policy that refuses before any backend is called.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn aggregate(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: frontdesk.dev/v1alpha1\nkind: Aggregate\nmetadata: {{name: {name}, namespace: test}}\nspec:\n{spec}\n---\n"
    )
}

/// A backend that answers after `delay_ms`, and counts requests whose client went away first
/// (it reads the socket while waiting: EOF is the cancellation).
async fn patient_backend(delay_ms: u64) -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, cancelled) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (s, c) = (seen.clone(), cancelled.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (s, c) = (s.clone(), c.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                s.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    r = stream.read(&mut buf) => {
                        if matches!(r, Ok(0) | Err(_)) {
                            c.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    () = tokio::time::sleep(Duration::from_millis(delay_ms)) => {
                        let body = r#"{"slow":true}"#;
                        let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                        let _ = stream.write_all(resp.as_bytes()).await;
                    }
                }
            });
        }
    });
    (addr, seen, cancelled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_and_flat_merges_shaping_and_a_dependent_call() {
    let products = frontdesk_demo::spawn("products").await;
    let reviews = frontdesk_demo::spawn("reviews").await;
    let echo = frontdesk_demo::spawn("echo").await;
    let calls = format!(
        "  calls:\n\
         \x20   - {{name: product, backend: {{url: 'http://{products}'}}, path: '/products/{{id}}', required: true, select: [name, price, trackingId]}}\n\
         \x20   - {{name: reviews, backend: {{url: 'http://{reviews}'}}, path: '/reviews?productId={{id}}', select: [average, items.stars]}}\n\
         \x20   - {{name: stock, backend: {{url: 'http://{products}'}}, path: '/inventory/{{id}}', extract: quantity, rename: inStock}}\n\
         \x20   - {{name: shipping, dependsOn: [product], backend: {{url: 'http://{echo}'}}, path: '/track/{{product.trackingId}}?lang=en', select: [path, query, headers.x-request-id, headers.accept-language, headers.cookie]}}"
    );
    let files = aggregate(
        "details",
        &format!(
            "  path: /api/product-details/{{id}}\n  forwardHeaders: [accept-language]\n{calls}"
        ),
    ) + &aggregate(
        "flat",
        &format!("  path: /api/flat/{{id}}\n  response: {{merge: Flat}}\n{calls}"),
    );
    let p = ProxyProcess::with_files(&[("agg.yaml", &files)], &[]).await;
    let c = client();
    let a = get_with(
        &c,
        &p.url("/api/product-details/2"),
        &[
            ("accept-language", "fr"),
            ("cookie", "secret=1"),
            ("x-request-id", "req-42"),
        ],
    )
    .await;
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    assert_eq!(a.1["content-type"], "application/json");
    assert!(a.1.get("frontdesk-aggregate-errors").is_none());
    assert!(
        a.1.get("x-backend").is_none(),
        "backend response headers must not leak"
    );
    assert_eq!(
        json(&a.2),
        json!({
            "product": {"name": "Burr grinder", "price": 129.5, "trackingId": "TRK-1002"},
            "reviews": {"average": 4.5, "items": [{"stars": 5}, {"stars": 4}]},
            "inStock": 7,
            "shipping": {"path": "/track/TRK-1002", "query": "lang=en", "headers": {"x-request-id": "req-42", "accept-language": "fr"}},
        })
    );
    let flat = get_with(&c, &p.url("/api/flat/1"), &[]).await;
    let v = json(&flat.2);
    assert_eq!(v["name"], "Espresso machine");
    assert_eq!(v["average"], 4.5);
    assert_eq!(v["inStock"], 7);
    assert_eq!(v["path"], "/track/TRK-1001");
    // One access-log line for the aggregate, listing its calls.
    let log = p.wait_log_stdout("\"calls\":[").await;
    let line = log.lines().find(|l| l.contains("req-42")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    let names: Vec<&str> = entry["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4);
    assert!(entry["calls"][0]["status"].as_u64() == Some(200));
    let m = p.metrics().await;
    assert!(m.contains("frontdesk_aggregate_calls_total{aggregate=\"test/details/aggregate\",call=\"shipping\",outcome=\"ok\"} 1"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_failures_give_a_partial_answer_with_the_signal() {
    let demo = frontdesk_demo::spawn("demo").await;
    let refused = free_port();
    let files = aggregate(
        "partial",
        &format!(
            "  path: /partial/{{id}}\n  calls:\n\
             \x20   - {{name: product, backend: {{url: 'http://{demo}'}}, path: '/products/{{id}}', required: true, select: [name]}}\n\
             \x20   - {{name: error, backend: {{url: 'http://{demo}'}}, path: '/status/500'}}\n\
             \x20   - {{name: slow, backend: {{url: 'http://{demo}'}}, path: '/delay/2000', timeout: 200ms}}\n\
             \x20   - {{name: text, backend: {{url: 'http://{demo}'}}, path: '/bytes/10'}}\n\
             \x20   - {{name: down, backend: {{url: 'http://{refused}'}}, path: '/x'}}\n\
             \x20   - {{name: big, backend: {{url: 'http://{demo}'}}, path: '/products'}}\n\
             \x20   - {{name: after, dependsOn: [error], backend: {{url: 'http://{demo}'}}, path: '/products/1'}}\n\
             \x20 maxCallBytes: '200'"
        ),
    );
    let p = ProxyProcess::with_files(&[("agg.yaml", &files)], &[]).await;
    let a = get_with(&client(), &p.url("/partial/3"), &[]).await;
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    let v = json(&a.2);
    assert_eq!(v["product"], json!({"name": "Milk jug"}));
    for k in ["error", "slow", "text", "down", "big", "after"] {
        assert!(v[k].is_null(), "{k}: {v}");
    }
    let errors: std::collections::BTreeMap<String, String> = v["_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["call"].as_str().unwrap().to_string(),
                e["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(errors["error"], "status 500");
    assert!(
        errors["slow"].contains("no answer within 200ms"),
        "{errors:?}"
    );
    assert!(errors["text"].contains("not JSON"), "{errors:?}");
    assert!(errors["down"].contains("cannot reach"), "{errors:?}");
    assert!(
        errors["big"].contains("larger than 200 bytes"),
        "{errors:?}"
    );
    assert_eq!(errors["after"], "dependency error failed");
    assert_eq!(
        a.1["frontdesk-aggregate-errors"],
        "error, slow, text, down, big, after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_required_call_fails_the_answer_and_cancels_the_others() {
    let demo = frontdesk_demo::spawn("demo").await;
    let (slow, seen, cancelled) = patient_backend(5_000).await;
    let files = aggregate(
        "strict",
        &format!(
            "  path: /strict\n  calls:\n\
             \x20   - {{name: broken, backend: {{url: 'http://{demo}'}}, path: '/delay/100', required: true, timeout: 50ms}}\n\
             \x20   - {{name: slow, backend: {{url: 'http://{slow}'}}, path: '/slow'}}\n"
        ),
    ) + &aggregate(
        // The required call fails 100 ms in, so the slow call has surely been sent by then
        // and its cancellation is what the backend sees.
        "bad",
        &format!(
            "  path: /bad\n  calls:\n\
             \x20   - {{name: broken, backend: {{url: 'http://{demo}'}}, path: '/status/503?delay=100', required: true}}\n\
             \x20   - {{name: slow, backend: {{url: 'http://{slow}'}}, path: '/slow'}}\n"
        ),
    );
    // Declared before what it waits for: a fails because b failed because c failed.
    let files = files
        + &aggregate(
            "chain",
            &format!(
                "  path: /chain\n  calls:\n\
                 \x20   - {{name: a, dependsOn: [b], required: true, backend: {{url: 'http://{demo}'}}, path: '/products/1'}}\n\
                 \x20   - {{name: b, dependsOn: [c], backend: {{url: 'http://{demo}'}}, path: '/products/1'}}\n\
                 \x20   - {{name: c, backend: {{url: 'http://{demo}'}}, path: '/status/500'}}\n"
            ),
        );
    let p = ProxyProcess::with_files(&[("agg.yaml", &files)], &[]).await;
    let c = client();
    let a = get_with(&c, &p.url("/chain"), &[]).await;
    assert_eq!(a.0, 502, "{}", String::from_utf8_lossy(&a.2));
    assert!(
        json(&a.2)["detail"]
            .as_str()
            .unwrap()
            .contains("required call a failed: dependency b failed")
    );
    let started = Instant::now();
    let a = get_with(&c, &p.url("/strict"), &[]).await;
    assert_eq!(a.0, 504, "{}", String::from_utf8_lossy(&a.2));
    assert!(
        json(&a.2)["detail"]
            .as_str()
            .unwrap()
            .contains("required call broken failed")
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let a = get_with(&c, &p.url("/bad"), &[]).await;
    assert_eq!(a.0, 502);
    assert_eq!(
        json(&a.2)["type"],
        "https://frontdesk.dev/problems/upstream-unavailable"
    );
    // The slow backend saw both of its requests go away.
    let deadline = Instant::now() + Duration::from_secs(3);
    while cancelled.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "seen {}, cancelled {}",
            seen.load(Ordering::SeqCst),
            cancelled.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_is_kept_within_fifty_milliseconds() {
    let demo = frontdesk_demo::spawn("demo").await;
    let (slow, _, cancelled) = patient_backend(5_000).await;
    let files = aggregate(
        "deadline",
        &format!(
            "  path: /deadline\n  timeout: 300ms\n  calls:\n\
             \x20   - {{name: fast, backend: {{url: 'http://{demo}'}}, path: '/products/1', required: true, select: [id]}}\n\
             \x20   - {{name: slow, backend: {{url: 'http://{slow}'}}, path: '/slow'}}\n"
        ),
    );
    let p = ProxyProcess::with_files(&[("agg.yaml", &files)], &[]).await;
    let c = client();
    get_with(&c, &p.url("/deadline"), &[]).await; // warm the connections
    for _ in 0..3 {
        let started = Instant::now();
        let a = get_with(&c, &p.url("/deadline"), &[]).await;
        let took = started.elapsed();
        assert_eq!(a.0, 200);
        let v = json(&a.2);
        assert_eq!(v["fast"], json!({"id": "1"}));
        assert!(v["slow"].is_null());
        // The call's own timeout defaults to the aggregate's: either may be the one that fired.
        let why = v["_errors"][0]["error"].as_str().unwrap();
        assert!(why.contains("deadline") || why.contains("300ms"), "{why}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(350),
            "answered in {took:?}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while cancelled.load(Ordering::SeqCst) < 4 {
        assert!(
            Instant::now() < deadline,
            "the slow calls were not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_cannot_alter_the_upstream_url() {
    let echo = frontdesk_demo::spawn("echo").await;
    let files = aggregate(
        "inject",
        &format!(
            "  path: /inject/{{id}}\n  calls:\n    - {{name: e, backend: {{url: 'http://{echo}'}}, path: '/items/{{id}}?q={{id}}', select: [path, query, headers.host]}}"
        ),
    );
    let p = ProxyProcess::with_files(&[("agg.yaml", &files)], &[]).await;
    let c = client();
    for (raw, encoded) in [
        ("a%3Fadmin%3Dtrue", "a%3Fadmin%3Dtrue"),
        ("x%23frag", "x%23frag"),
        ("%2E%2E.x", "%2E%2E%2Ex"),
        ("a&b=c", "a%26b%3Dc"),
    ] {
        let a = get_with(&c, &p.url(&format!("/inject/{raw}")), &[]).await;
        assert_eq!(a.0, 200, "{raw}: {}", String::from_utf8_lossy(&a.2));
        let v = json(&a.2)["e"].clone();
        assert_eq!(v["path"], format!("/items/{encoded}"), "{raw}");
        assert_eq!(v["query"], format!("q={encoded}"), "{raw}");
        assert_eq!(v["headers"]["host"], echo.to_string());
    }
    // An encoded slash or line break never reaches the aggregate (the canonical path refuses
    // them), and a dot segment is resolved before matching.
    assert_eq!(get_with(&c, &p.url("/inject/..%2Fadmin"), &[]).await.0, 400);
    assert_eq!(
        get_with(&c, &p.url("/inject/l1%0D%0AHost:%20evil"), &[])
            .await
            .0,
        400
    );
    assert_eq!(get_with(&c, &p.url("/inject/%2E%2E"), &[]).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_policy_refuses_before_any_backend_is_called() {
    let demo = frontdesk_demo::spawn("demo").await;
    let files = "apiVersion: frontdesk.dev/v1alpha1\nkind: Policy\nmetadata: {name: keys, namespace: test}\nspec:\n  \
                 authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: agg}}}\n---\n\
                 apiVersion: v1\nkind: Secret\nmetadata: {name: k, namespace: test, labels: {frontdesk.dev/api-keys: agg}}\n\
                 stringData: {key: agg-key-0001}\n---\n"
        .to_string()
        + &aggregate(
            "guarded",
            &format!("  path: /guarded/{{id}}\n  policies: [keys]\n  calls:\n    - {{name: p, backend: {{url: 'http://{demo}'}}, path: '/products/{{id}}'}}"),
        );
    let p = ProxyProcess::with_files(&[("agg.yaml", &files)], &[]).await;
    let c = client();
    let a = get_with(&c, &p.url("/guarded/1"), &[]).await;
    assert_eq!(a.0, 401);
    let (_, _, conns) = get(&format!("http://{demo}/connections")).await.unwrap();
    assert_eq!(
        json(&conns)["accepted"],
        1,
        "a backend was called before the policy refused"
    );
    let a = get_with(&c, &p.url("/guarded/1"), &[("x-api-key", "agg-key-0001")]).await;
    assert_eq!(a.0, 200);
    assert_eq!(json(&a.2)["p"]["name"], "Espresso machine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_retries_rides_over_a_backend_failing_every_other_request() {
    // One backend per call, each failing every second request it gets.
    let flaky = frontdesk_demo::spawn("flaky").await;
    let other = frontdesk_demo::spawn("other").await;
    let files = aggregate(
        "steady",
        &format!(
            "  path: /steady\n  calls:\n\
             \x20   - {{name: plain, backend: {{url: 'http://{flaky}'}}, path: '/flaky/2'}}\n\
             \x20   - {{name: retried, backend: {{url: 'http://{other}'}}, path: '/flaky/2', retries: {{attempts: 2, on: ['503'], backoff: 1ms}}}}"
        ),
    );
    let p = ProxyProcess::with_files(&[("agg.yaml", &files)], &[]).await;
    let c = client();
    let (mut plain_failed, mut retried_failed) = (0, 0);
    for _ in 0..10 {
        let a = get_with(&c, &p.url("/steady"), &[]).await;
        assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
        let v = json(&a.2);
        plain_failed += usize::from(v["plain"].is_null());
        retried_failed += usize::from(v["retried"].is_null());
    }
    assert_eq!(
        plain_failed, 5,
        "the call without retries sees every failure"
    );
    assert_eq!(retried_failed, 0, "the call with retries none");
    let metrics = p.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("frontdesk_upstream_retries_total{") && l.contains("retried")),
        "{metrics}"
    );
}
