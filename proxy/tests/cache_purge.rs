//! The response cache in a real proxy process: HTTP/1 clients over real sockets (whose fields
//! the server keeps as sent until the cache stage needs them), a backend on 127.0.0.1 that
//! counts its requests, purges by URL prefix and by tag on the admin port, and the cache's
//! metrics.
// Real sockets, timed by the wall clock: the paused-time ban (clippy.toml) is for the proxy's
// own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode};

use support::*;

const ANSWER: &str = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncache-control: max-age=60\r\ncache-tag: products, p-1\r\n\r\nhello";

fn manifests(backend: SocketAddr) -> String {
    manifest("Policy", "cached", "  cache: {ttl: 30s}")
        + &manifest(
            "Route",
            "shop",
            &format!(
                "  hosts: [shop.example.com]\n  policies: [cached]\n  rules:\n    - matches: [{{path: {{value: /}}}}]\n      backends: [{{url: 'http://{backend}'}}]\n"
            ),
        )
}

async fn purge(p: &ProxyProcess, query: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}/cache/purge?{query}", p.admin))
        .body(body(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(&client(), req).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_cached_over_http1_and_purged_by_prefix_and_tag() {
    let (backend, seen) = recording_backend(ANSWER).await;
    let p = ProxyProcess::with_files(&[("m.yaml", &manifests(backend))], &[]).await;
    let c = client();
    let host = [("host", "shop.example.com")];
    let count = || seen.lock().unwrap().len();

    let (status, h, body) = get_with(&c, &p.url("/products/1"), &host).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
    assert_eq!(
        h["cache-status"],
        "frontdesk; fwd=uri-miss; fwd-status=200; stored"
    );
    assert!(!h.contains_key("cache-tag"), "tags are the cache's own");
    let (_, h, body) = get_with(&c, &p.url("/products/1"), &host).await;
    assert_eq!(&body[..], b"hello");
    assert!(
        h["cache-status"]
            .to_str()
            .unwrap()
            .starts_with("frontdesk; hit; ttl="),
        "{h:?}"
    );
    assert_eq!(count(), 1);
    get_with(&c, &p.url("/products/10"), &host).await;
    get_with(&c, &p.url("/about"), &host).await;
    assert_eq!(count(), 3);

    // One URL as the client addressed it: `/products/1` spares `/products/10`.
    assert_eq!(
        purge(&p, "url=http://shop.example.com/products/1").await,
        (StatusCode::OK, "{\"purged\": 1}\n".into())
    );
    get_with(&c, &p.url("/products/10"), &host).await;
    assert_eq!(count(), 3);
    get_with(&c, &p.url("/products/1"), &host).await;
    assert_eq!(count(), 4);
    // Every URL under a prefix.
    assert_eq!(
        purge(&p, "prefix=http://shop.example.com/products/").await,
        (StatusCode::OK, "{\"purged\": 2}\n".into())
    );
    get_with(&c, &p.url("/products/10"), &host).await;
    get_with(&c, &p.url("/about"), &host).await;
    assert_eq!(count(), 5);

    // By tag: every answer the backend tagged `products`.
    assert_eq!(
        purge(&p, "tag=products").await,
        (StatusCode::OK, "{\"purged\": 2}\n".into())
    );
    get_with(&c, &p.url("/about"), &host).await;
    assert_eq!(count(), 6);

    // A purge names one thing, with POST.
    assert_eq!(purge(&p, "").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(purge(&p, "tag=a&prefix=b").await.0, StatusCode::BAD_REQUEST);
    let (status, _, _) = get(&format!("http://{}/cache/purge?tag=a", p.admin))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let metrics = p.metrics().await;
    for line in [
        "frontdesk_cache_requests_total{result=\"hit\"} 3",
        "frontdesk_cache_requests_total{result=\"miss\"} 6",
        "frontdesk_cache_keys 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}
