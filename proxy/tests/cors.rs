//! CORS through a real proxy process, against a real backend on 127.0.0.1 that records every
//! request it gets: preflights are answered by the gateway (allowed: 204 with the policy's
//! headers; refused: 403 `cors-refused`) and never reach the backend, even with
//! authentication on the route; actual requests from an allowed origin get the CORS headers on
//! every answer, a 401 included, with the exact origin when credentials are allowed; the
//! backend's own CORS headers are replaced; `Vary: Origin` is on every answer.
// Real sockets, timed by the wall clock: the paused-time ban (clippy.toml) is for the proxy's
// own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode};

use support::*;

/// The backend's answer: CORS headers of its own (which the gateway's must replace) and a
/// Vary of its own (which must stay).
const ANSWER: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\naccess-control-allow-origin: *\r\nvary: Accept-Encoding\r\n\r\nok";

fn manifests(backend: SocketAddr) -> String {
    let policy = manifest(
        "Policy",
        "browsers",
        "  cors:\n    allowOrigins: ['https://shop.example.com', 'https://*.partners.example']\n    allowMethods: [GET, PUT]\n    allowHeaders: [x-api-key, content-type]\n    exposeHeaders: [x-total]\n    allowCredentials: true\n    maxAge: 10m\n  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: cors}}}",
    );
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: k, namespace: test, labels: {frontdesk.dev/api-keys: cors}}\nstringData: {key: 'key-0001-abcdef', consumer: web}\n---\n";
    let route = manifest(
        "Route",
        "orders",
        &format!(
            "  rules:\n    - matches: [{{path: {{type: PathPrefix, value: /orders}}}}]\n      policies: [browsers]\n      backends: [{{url: 'http://{backend}'}}]\n"
        ),
    );
    policy + secret + &route
}

async fn ask(p: &ProxyProcess, method: Method, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder().method(method).uri(p.url("/orders"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(&client(), req.body(body(Bytes::new())).unwrap())
        .await
        .unwrap()
}

fn header<'a>(a: &'a Answer, name: &str) -> Vec<&'a str> {
    a.1.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_by_the_gateway_and_answers_carry_cors_headers() {
    let (backend, seen) = recording_backend(ANSWER).await;
    let p = ProxyProcess::with_files(&[("m.yaml", &manifests(backend))], &[]).await;

    // An allowed preflight: 204, no credentials needed, the backend never asked.
    let ok = ask(
        &p,
        Method::OPTIONS,
        &[
            ("origin", "https://shop.example.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "X-Api-Key, Content-Type"),
        ],
    )
    .await;
    assert_eq!(ok.0, StatusCode::NO_CONTENT, "{:?}", ok.2);
    assert_eq!(
        header(&ok, "access-control-allow-origin"),
        ["https://shop.example.com"]
    );
    assert_eq!(header(&ok, "access-control-allow-credentials"), ["true"]);
    assert_eq!(header(&ok, "access-control-allow-methods"), ["GET, PUT"]);
    assert_eq!(
        header(&ok, "access-control-allow-headers"),
        ["x-api-key, content-type"]
    );
    assert_eq!(header(&ok, "access-control-max-age"), ["600"]);
    assert!(header(&ok, "vary").contains(&"Origin"), "{:?}", ok.1);

    // Refused preflights: another origin, a method or a header not allowed.
    for (origin, method, headers) in [
        ("https://evil.example", "GET", ""),
        ("https://shop.example.com", "DELETE", ""),
        ("https://shop.example.com", "GET", "x-secret"),
    ] {
        let refused = ask(
            &p,
            Method::OPTIONS,
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                ("access-control-request-headers", headers),
            ],
        )
        .await;
        assert_eq!(
            refused.0,
            StatusCode::FORBIDDEN,
            "{origin} {method} {headers}"
        );
        let problem = json(&refused.2);
        assert_eq!(
            problem["type"], "https://frontdesk.dev/problems/cors-refused",
            "{problem}"
        );
        assert!(header(&refused, "access-control-allow-origin").is_empty());
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "a preflight reached the backend: {:?}",
        seen.lock().unwrap()
    );

    // An actual request without its key: 401, readable by the allowed page.
    let denied = ask(&p, Method::GET, &[("origin", "https://a.partners.example")]).await;
    assert_eq!(denied.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&denied, "access-control-allow-origin"),
        ["https://a.partners.example"]
    );
    // With it: the backend's answer, its own CORS header replaced, its Vary kept.
    let served = ask(
        &p,
        Method::GET,
        &[
            ("origin", "https://shop.example.com"),
            ("x-api-key", "key-0001-abcdef"),
        ],
    )
    .await;
    assert_eq!(served.0, StatusCode::OK);
    assert_eq!(
        header(&served, "access-control-allow-origin"),
        ["https://shop.example.com"]
    );
    assert_eq!(
        header(&served, "access-control-expose-headers"),
        ["x-total"]
    );
    let vary = header(&served, "vary");
    assert!(
        vary.contains(&"Origin") && vary.contains(&"Accept-Encoding"),
        "{vary:?}"
    );
    // Another origin: served (CORS is the browser's to enforce), without CORS headers.
    let other = ask(
        &p,
        Method::GET,
        &[
            ("origin", "https://evil.example"),
            ("x-api-key", "key-0001-abcdef"),
        ],
    )
    .await;
    assert_eq!(other.0, StatusCode::OK);
    assert!(header(&other, "access-control-allow-origin").is_empty());
    let methods: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|line| line.split(' ').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(methods, ["GET", "GET"]);
}
