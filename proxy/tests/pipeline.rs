//! The whole request path in process: a runtime built from manifests, called with requests,
//! no proxy process and, where no backend is involved, no socket. Time is tokio's, paused where
//! a test needs to move it.
// The shared process-test support times real processes with the wall clock.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use frontdesk_proxy::body::ProxyBody;
use frontdesk_proxy::runtime::{Applied, Env, Runtime, RuntimeHandle};
use frontdesk_snapshot::Action;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use support::{free_port, manifest, silent_backend, snapshot};

const CLIENT: &str = "192.0.2.10:50000";

fn runtime(yaml: &str) -> Arc<Runtime> {
    Arc::new(Runtime::build(snapshot(yaml), Arc::new(Env::standalone())).unwrap())
}

async fn call(rt: &Arc<Runtime>, method: &str, path: &str) -> Response<ProxyBody> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "shop.example.com")
        .body(Empty::<Bytes>::new())
        .unwrap();
    rt.clone()
        .handle(req, CLIENT.parse::<std::net::SocketAddr>().unwrap())
        .await
}

async fn text(resp: Response<ProxyBody>) -> String {
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

fn problem_type(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["type"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn direct_answers_redirects_and_no_route_without_a_socket() {
    let rt = runtime(&manifest(
        "Route",
        "site",
        "  rules:\n\
         \x20   - matches: [{path: {type: Exact, value: /hello}}]\n\
         \x20     responseHeaders: {set: {x-served-by: frontdesk}}\n\
         \x20     directResponse: {status: 200, body: hi, contentType: text/plain}\n\
         \x20   - matches: [{path: {value: /old}}]\n\
         \x20     redirect: {scheme: https, statusCode: 301}\n",
    ));
    let resp = call(&rt, "GET", "/hello").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-served-by"], "frontdesk");
    assert_eq!(resp.headers()["x-request-id"].len(), 32);
    assert_eq!(text(resp).await, "hi");

    let resp = call(&rt, "GET", "/old/x?a=1").await;
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.headers()["location"],
        "https://shop.example.com/old/x?a=1"
    );

    let resp = call(&rt, "GET", "/nothing/here").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(
        resp.headers().get("x-served-by").is_none(),
        "no rule, no edits"
    );
    assert_eq!(
        problem_type(&text(resp).await),
        "https://frontdesk.dev/problems/no-route"
    );

    // A path spelled differently matches what its canonical form matches.
    let resp = call(&rt, "GET", "/./hello").await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn authorization_and_local_limits_refuse_with_the_rules_edits_and_refill_on_the_clock() {
    let yaml = manifest(
        "Policy",
        "reads",
        "  authorization:\n    rules: [{methods: [GET]}]\n\
         \x20 rateLimit:\n    limits: [{name: tight, requests: 1, period: 10s, burst: 1, key: ClientIP}]",
    ) + &manifest(
        "Route",
        "api",
        "  rules:\n\
         \x20   - matches: [{path: {value: /api}}]\n\
         \x20     policies: [reads]\n\
         \x20     responseHeaders: {set: {x-edge: frontdesk}}\n\
         \x20     directResponse: {status: 200, body: ok}\n",
    );
    let rt = runtime(&yaml);

    let refused = call(&rt, "POST", "/api").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["x-edge"], "frontdesk");
    assert_eq!(
        problem_type(&text(refused).await),
        "https://frontdesk.dev/problems/forbidden"
    );

    let ok = call(&rt, "GET", "/api").await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["ratelimit"], "\"tight\";r=0;t=10");
    let limited = call(&rt, "GET", "/api").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["x-edge"], "frontdesk");
    assert_eq!(limited.headers()["retry-after"], "10");

    // The limiter reads tokio's clock: ten paused seconds later the bucket is full again.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(call(&rt, "GET", "/api").await.status(), 200);
}

#[tokio::test]
async fn the_proxys_own_502_503_504_carry_ratelimit_headers_and_response_edits() {
    let silent = silent_backend().await;
    let refused = free_port();
    let yaml = manifest(
        "Policy",
        "limited",
        "  rateLimit:\n    limits: [{name: generous, requests: 1000, period: 1m, key: ClientIP}]",
    ) + &manifest(
        "Route",
        "fragile",
        &format!(
            "  policies: [limited]\n  rules:\n\
             \x20   - matches: [{{path: {{value: /refused}}}}]\n\
             \x20     responseHeaders: {{set: {{x-edge: frontdesk}}}}\n\
             \x20     backends: [{{url: 'http://{refused}'}}]\n\
             \x20   - matches: [{{path: {{value: /empty}}}}]\n\
             \x20     responseHeaders: {{set: {{x-edge: frontdesk}}}}\n\
             \x20     backends: [{{url: 'http://{refused}'}}]\n\
             \x20   - matches: [{{path: {{value: /silent}}}}]\n\
             \x20     timeout: 200ms\n\
             \x20     responseHeaders: {{set: {{x-edge: frontdesk}}}}\n\
             \x20     backends: [{{url: 'http://{silent}'}}]\n"
        ),
    );
    let mut snap = snapshot(&yaml);
    // The /empty rule's backend has no ready endpoint (an EndpointSlice with nothing ready).
    for route in &mut snap.routes {
        for rule in &mut std::sync::Arc::make_mut(route).rules {
            let empty = rule
                .matches
                .iter()
                .any(|m| format!("{:?}", m.path).contains("/empty"));
            if empty && let Action::Forward { backends } = &mut rule.action {
                backends[0].endpoints.clear();
            }
        }
    }
    let rt = Arc::new(Runtime::build(snap, Arc::new(Env::standalone())).unwrap());
    for (path, status, slug) in [
        ("/refused", 502, "upstream-unavailable"),
        ("/empty", 503, "no-endpoints"),
        ("/silent", 504, "upstream-timeout"),
    ] {
        let resp = call(&rt, "GET", path).await;
        assert_eq!(resp.status(), status, "{path}");
        assert_eq!(resp.headers()["x-edge"], "frontdesk", "{path}");
        assert_eq!(
            resp.headers()["ratelimit-policy"],
            "\"generous\";q=1000;w=60",
            "{path}"
        );
        assert!(resp.headers().contains_key("ratelimit"), "{path}");
        assert_eq!(
            problem_type(&text(resp).await),
            format!("https://frontdesk.dev/problems/{slug}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_in_flight_across_a_swap_finishes_on_the_old_configuration() {
    let backend = frontdesk_demo::spawn("old").await;
    let v1 = manifest(
        "Route",
        "r",
        &format!("  rules:\n    - backends: [{{url: 'http://{backend}'}}]\n"),
    );
    let v2 = manifest(
        "Route",
        "r",
        "  rules:\n    - directResponse: {status: 200, body: v2}\n",
    );
    let handle =
        RuntimeHandle::new(Runtime::build(snapshot(&v1), Arc::new(Env::standalone())).unwrap());

    // 10 lines, one every 50 ms: half a second in flight.
    let slow = call(&handle.load(), "GET", "/stream/10/50").await;
    assert_eq!(slow.status(), 200);
    assert_eq!(slow.headers()["x-backend"], "old");
    let mut body = slow.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(!first.is_empty());

    assert!(matches!(
        handle.apply(snapshot(&v2)),
        Ok(Applied::Swapped(_))
    ));
    let new = call(&handle.load(), "GET", "/stream/10/50").await;
    assert_eq!(
        text(new).await,
        "v2",
        "new requests use the new configuration"
    );

    let rest = body.collect().await.unwrap().to_bytes();
    let lines = first
        .iter()
        .chain(rest.iter())
        .filter(|b| **b == b'\n')
        .count();
    assert_eq!(lines, 10, "the old request streamed to its end");
}

#[tokio::test]
async fn request_bodies_stream_to_the_backend_in_process() {
    let backend = frontdesk_demo::spawn("b").await;
    let rt = runtime(&manifest(
        "Route",
        "up",
        &format!("  rules:\n    - backends: [{{url: 'http://{backend}'}}]\n"),
    ));
    let req = Request::builder()
        .method("POST")
        .uri("/upload")
        .header("host", "shop.example.com")
        .body(Full::new(Bytes::from(vec![b'x'; 100_000])))
        .unwrap();
    let resp = rt
        .clone()
        .handle(req, CLIENT.parse::<std::net::SocketAddr>().unwrap())
        .await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(v["bytes"], 100_000);
}

#[tokio::test]
async fn authentication_refuses_without_a_key_and_names_the_consumer_to_later_stages() {
    let yaml = manifest(
        "Policy",
        "keys",
        "  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: shop}}}\n\
         \x20 authorization:\n    rules: [{consumers: [alice]}]",
    ) + "apiVersion: v1\nkind: Secret\nmetadata: {name: alice, namespace: test, labels: {frontdesk.dev/api-keys: shop}}\nstringData: {key: 'alice-key-0001', consumer: alice}\n---\n"
        + "apiVersion: v1\nkind: Secret\nmetadata: {name: bob, namespace: test, labels: {frontdesk.dev/api-keys: shop}}\nstringData: {key: 'bob-key-0002', consumer: bob}\n---\n"
        + &manifest(
            "Route",
            "private",
            "  policies: [keys]\n  rules:\n    - responseHeaders: {set: {x-edge: frontdesk}}\n      directResponse: {status: 200, body: secret}\n",
        );
    let rt = runtime(&yaml);
    let with_key = |key: Option<&str>| {
        let mut b = Request::builder()
            .uri("/x")
            .header("host", "shop.example.com");
        if let Some(k) = key {
            b = b.header("x-api-key", k);
        }
        b.body(Empty::<Bytes>::new()).unwrap()
    };
    let anonymous = rt
        .clone()
        .handle(
            with_key(None),
            CLIENT.parse::<std::net::SocketAddr>().unwrap(),
        )
        .await;
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert_eq!(anonymous.headers()["x-edge"], "frontdesk");
    let body = text(anonymous).await;
    assert_eq!(
        problem_type(&body),
        "https://frontdesk.dev/problems/unauthorized"
    );

    let wrong = rt
        .clone()
        .handle(
            with_key(Some("nope")),
            CLIENT.parse::<std::net::SocketAddr>().unwrap(),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    // Authenticated, but the authorize stage allows alice only.
    let bob = rt
        .clone()
        .handle(
            with_key(Some("bob-key-0002")),
            CLIENT.parse::<std::net::SocketAddr>().unwrap(),
        )
        .await;
    assert_eq!(bob.status(), 403);
    let alice = rt
        .clone()
        .handle(
            with_key(Some("alice-key-0001")),
            CLIENT.parse::<std::net::SocketAddr>().unwrap(),
        )
        .await;
    assert_eq!(alice.status(), 200);
    assert_eq!(text(alice).await, "secret");
}
