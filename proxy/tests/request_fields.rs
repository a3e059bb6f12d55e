//! An HTTP/1 client's request fields on their way to the backend, on real sockets: relayed as
//! the client sent them when the rule only forwards, made a map when a stage reads or edits
//! them, and the same fields reach the backend either way.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use support::wire::*;

/// Everything a client may put in a request that the proxy must not pass on, and what it may.
const ASKED: &str = "POST /x?q=1 HTTP/1.1\r\nHost: a.example\r\nUser-Agent: Test/1\r\n\
     X-Forwarded-For: 203.0.113.9\r\nConnection: close\r\nKeep-Alive: timeout=5\r\n\
     X_Real_IP: 203.0.113.9\r\nX-Mixed:  kept\r\nTE: trailers\r\n\
     Proxy-Authorization: Basic eDp5\r\nX-Request-Id: not sane\r\nContent_Type: text/plain\r\n\
     X-Original-URL: /admin\r\nTransfer_Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc";

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// The head the backend read, its lines after the request line.
async fn relayed(extra: &str, asked: &str) -> Vec<String> {
    let backend = scripted(vec![Some(OK)]).await;
    let (proxy, _stop) = proxy(&route_to(backend.addr, extra)).await;
    let (answer, _) = exchange(proxy, asked, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = backend.seen.lock().await;
    let head = seen[0].split("\r\n\r\n").next().unwrap();
    head.lines().skip(1).map(str::to_string).collect()
}

fn request_id(lines: &[String]) -> &str {
    let id = lines
        .iter()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap();
    assert_eq!(id.len(), 32, "{id}");
    id
}

#[tokio::test]
async fn a_forwarded_requests_fields_are_relayed_as_sent_without_the_hops_own_or_the_claims() {
    let lines = relayed("", ASKED).await;
    let id = request_id(&lines).to_string();
    assert_eq!(
        lines,
        [
            "Host: a.example",
            "User-Agent: Test/1",
            "X-Mixed:  kept",
            "Content_Type: text/plain",
            &format!("x-request-id: {id}"),
            "x-forwarded-for: 127.0.0.1",
            "x-forwarded-proto: http",
            "x-forwarded-host: a.example",
            "content-length: 3",
        ]
    );
}

#[tokio::test]
async fn a_rule_that_edits_fields_sends_the_same_fields_from_a_map() {
    let relayed_as_sent = relayed("", ASKED).await;
    // A header edit, and a route that matches on a header: both read the fields as a map.
    for extra in [
        "      requestHeaders: {set: {x-edited: '1'}}\n",
        "      matches: [{headers: [{name: user-agent, value: Test/1}]}]\n",
    ] {
        let from_map = relayed(extra, ASKED).await;
        let normal = |lines: &[String]| {
            let id = request_id(lines).to_string();
            let mut fields: Vec<String> = lines
                .iter()
                .filter(|l| !l.contains(&id) && !l.starts_with("x-edited"))
                .map(|l| {
                    let (name, value) = l.split_once(':').unwrap();
                    format!("{}: {}", name.to_ascii_lowercase(), value.trim())
                })
                .collect();
            fields.sort();
            fields
        };
        assert!(
            from_map.iter().all(|l| l == &l.to_ascii_lowercase()
                || l.starts_with("host")
                || l.starts_with("user-agent")),
            "names from a map are lower-case: {from_map:?}"
        );
        assert_ne!(from_map, relayed_as_sent);
        assert_eq!(normal(&from_map), normal(&relayed_as_sent), "{extra}");
        assert_eq!(
            from_map.iter().any(|l| l == "x-edited: 1"),
            extra.contains("x-edited")
        );
    }
}

#[tokio::test]
async fn the_host_the_backend_reads_is_the_one_the_request_was_routed_on() {
    // An absolute-form target wins over Host (which may differ only in case): the backend
    // reads the target's.
    let lines = relayed(
        "",
        "GET http://a.example/x HTTP/1.1\r\nHost: A.Example\r\nX-A: 1\r\nConnection: close\r\n\r\n",
    )
    .await;
    let id = request_id(&lines).to_string();
    assert_eq!(
        lines,
        [
            "X-A: 1",
            &format!("x-request-id: {id}"),
            "x-forwarded-for: 127.0.0.1",
            "x-forwarded-proto: http",
            "x-forwarded-host: a.example",
            "host: a.example",
        ]
    );
    // An HTTP/1.0 request without Host: the backend's authority.
    let backend = scripted(vec![Some(OK)]).await;
    let (proxy, _stop) = proxy(&route_to(backend.addr, "")).await;
    let (answer, _) = exchange(
        proxy,
        "GET /x HTTP/1.0\r\nX-Request-Id: kept-1\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let seen = backend.seen.lock().await;
    assert_eq!(
        seen[0],
        format!(
            "GET /x HTTP/1.1\r\nX-Request-Id: kept-1\r\nx-forwarded-for: 127.0.0.1\r\n\
             x-forwarded-proto: http\r\nhost: {}\r\n\r\n",
            backend.addr
        )
    );
}

/// Which rules keep an HTTP/1 client's fields as sent: those whose stages read none of them
/// (CORS reads either form), and whose action is not an Aggregate or a forward that hashes
/// on a field.
#[test]
fn rules_relay_a_requests_fields_as_sent_only_when_no_stage_reads_them() {
    use frontdesk_proxy::runtime::{Env, Runtime};
    let policy = |name: &str, spec: &str| support::manifest("Policy", name, spec);
    let yaml = policy("limited", "  rateLimit:\n    limits: [{name: l, requests: 9, period: 1s, key: ClientIP}]")
        + &policy("keys", "  authentication:\n    apiKeys: {secretSelector: {matchLabels: {k: v}}}")
        + &policy("cors", "  cors:\n    allowOrigins: ['https://shop.example.com']")
        + &policy("reads", "  authorization:\n    rules: [{methods: [GET]}]")
        + &policy("by-cookie", "  loadBalancer: {algorithm: ConsistentHash, hashOn: 'Cookie:session'}")
        + &policy("by-ip", "  loadBalancer: {algorithm: ConsistentHash, hashOn: ClientIP}")
        + &support::manifest(
            "Route",
            "r",
            "  rules:
    - {name: plain, matches: [{path: {value: /plain}}], backends: [{url: 'http://127.0.0.1:9'}]}
    - {name: cors, matches: [{path: {value: /cors}}], policies: [cors], backends: [{url: 'http://127.0.0.1:9'}]}
    - {name: reads, matches: [{path: {value: /reads}}], policies: [reads], backends: [{url: 'http://127.0.0.1:9'}]}
    - {name: by-ip, matches: [{path: {value: /by-ip}}], policies: [by-ip], backends: [{url: 'http://127.0.0.1:9'}]}
    - {name: redirect, matches: [{path: {value: /redirect}}], redirect: {path: /plain}}
    - {name: direct, matches: [{path: {value: /direct}}], directResponse: {status: 200, body: ok}}
    - {name: limited, matches: [{path: {value: /limited}}], policies: [limited], backends: [{url: 'http://127.0.0.1:9'}]}
    - {name: keys, matches: [{path: {value: /keys}}], policies: [keys], backends: [{url: 'http://127.0.0.1:9'}]}
    - {name: by-cookie, matches: [{path: {value: /by-cookie}}], policies: [by-cookie], backends: [{url: 'http://127.0.0.1:9'}]}
    - {name: edits, matches: [{path: {value: /edits}}], requestHeaders: {set: {x-a: '1'}}, backends: [{url: 'http://127.0.0.1:9'}]}
    - {name: host, matches: [{path: {value: /host}}], rewrite: {host: internal}, backends: [{url: 'http://127.0.0.1:9'}]}",
        );
    let runtime = Runtime::build(
        support::snapshot(&yaml),
        std::sync::Arc::new(Env::standalone()),
    )
    .unwrap();
    let relaying: Vec<&str> = runtime
        .routes
        .targets()
        .iter()
        .filter(|r| r.relays_request_fields)
        .map(|r| r.id.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        relaying,
        ["plain", "cors", "reads", "by-ip", "redirect", "direct"]
    );
    assert_eq!(runtime.routes.targets().len(), 11);
}
