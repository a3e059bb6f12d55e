//! A Policy cannot be walked around by spelling its path differently. The setup users have: an
//! API-key Policy on PathPrefix `/admin` (ignoring case, for a case-insensitive backend) and an
//! open catch-all `/` to the same backend, which records every request line it receives. Each
//! spelling a servlet container, Go, Node, IIS or a Unicode-normalising server would read as
//! `/admin` is sent from outside, over HTTP/1.1 (raw bytes) and HTTP/2, without a key: the
//! answer is exactly the Policy's 401 or a 400 refusal, and the backend sees none of them.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::*;

async fn start() -> (ProxyProcess, Arc<Mutex<Vec<String>>>) {
    let (backend, seen) =
        recording_backend("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nbackend").await;
    let policy = manifest(
        "Policy",
        "admin-key",
        "  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: admin}}}",
    );
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: admin-key, namespace: test, labels: {frontdesk.dev/api-keys: admin}}\nstringData: {key: 'admin-key-0001', consumer: ops}\n---\n";
    let routes = manifest(
        "Route",
        "bypass",
        &format!(
            "  rules:
    - name: admin
      matches: [{{path: {{value: /admin, ignoreCase: true}}}}]
      policies: [admin-key]
      backends: [{{url: 'http://{backend}'}}]
    - name: open
      matches: [{{path: {{value: /}}}}]
      backends: [{{url: 'http://{backend}'}}]"
        ),
    );
    let p = ProxyProcess::with_files(
        &[("m.yaml", &(policy + secret + &routes))],
        &["--access-log", "off"],
    )
    .await;
    (p, seen)
}

/// Each spelling, with the exact status the proxy must answer without a key: 401 when the
/// request is recognised as `/admin` (the Policy asks for a key), 400 when the spelling is one
/// servers disagree on and is refused.
const SPELLINGS: &[(&str, u16)] = &[
    ("/admin", 401),
    ("/admin/users", 401),
    // Servlet path parameters: Tomcat, Jetty and Spring serve these as /admin.
    ("/admin;x", 400),
    ("/..;/admin", 400),
    ("/admin%3Bx", 400),
    ("/admin%3bjsessionid=1/users", 400),
    // Letter case, raw or escaped: the match ignores case.
    ("/Admin", 401),
    ("/ADMIN/users", 401),
    ("/%41dmin", 401),
    ("/%61dmin", 401),
    // Double encoding, for a server that decodes twice.
    ("/%2561dmin", 400),
    // Trailing space or dot, dropped by Windows servers.
    ("/admin%20", 400),
    ("/admin.", 400),
    ("/admin./users", 400),
    // Dot segments and slashes, raw or escaped.
    ("/public/../admin", 401),
    ("/public/%2e%2e/admin", 401),
    ("//admin", 401),
    ("/./admin", 401),
    ("/public/..%2Fadmin", 400),
    ("/admin%5C", 400),
    // Unicode look-alikes of `a`, escaped (full-width, and an overlong encoding).
    ("/%EF%BD%81dmin", 400),
    ("/%C0%AFadmin", 400),
];

/// Raw (unescaped) non-ASCII spellings: sent as UTF-8 bytes.
const RAW: &[(&str, u16)] = &[("/\u{ff41}dmin", 400), ("/admin\u{a0}", 400)];

/// Sends one request line over a fresh connection; returns the status code.
async fn raw_status(addr: SocketAddr, target: &[u8]) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n");
    s.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the proxy answers")
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    status.parse().unwrap()
}

fn admin_lines(seen: &Mutex<Vec<String>>) -> Vec<String> {
    seen.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_protected_path_reaches_the_backend_over_http1() {
    let (p, seen) = start().await;
    for (path, status) in SPELLINGS.iter().chain(RAW) {
        assert_eq!(
            raw_status(p.addr, path.as_bytes()).await,
            *status,
            "{path:?} over HTTP/1.1"
        );
    }
    assert_eq!(admin_lines(&seen), Vec::<String>::new());

    // With the key, the canonical form is what the backend receives.
    let c = client();
    for (path, sent) in [
        ("/Admin/x", "/Admin/x"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/%61dmin//y", "/admin/y"),
    ] {
        let a = get_with(&c, &p.url(path), &[("x-api-key", "admin-key-0001")]).await;
        assert_eq!(a.0, 200, "{path}");
        assert_eq!(
            admin_lines(&seen).pop().unwrap(),
            format!("GET {sent} HTTP/1.1")
        );
    }
    // The open route still serves, and gets raw non-ASCII percent-encoded.
    assert_eq!(raw_status(p.addr, "/caf\u{e9}".as_bytes()).await, 200);
    assert_eq!(admin_lines(&seen).pop().unwrap(), "GET /caf%C3%A9 HTTP/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_protected_path_reaches_the_backend_over_http2() {
    let (p, seen) = start().await;
    let c = h2_client();
    for (path, status) in SPELLINGS.iter().chain(RAW) {
        let req = Request::get(p.url(path))
            .body(body(Bytes::new()))
            .unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let a = send(&c, req).await.unwrap();
        assert_eq!(a.0.as_u16(), *status, "{path:?} over HTTP/2");
        if *status == 400 {
            assert_eq!(a.1["content-type"], "application/problem+json");
        }
    }
    assert_eq!(admin_lines(&seen), Vec::<String>::new());
}

/// A credential given twice is refused: the proxy checks one, the backend might read the
/// other (a valid key beside a forged one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_given_twice_is_refused() {
    let (p, seen) = start().await;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(
        b"GET /admin HTTP/1.1\r\nHost: gw.test\r\nx-api-key: admin-key-0001\r\nx-api-key: forged\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
    assert!(
        answer.contains("the request carries its credential (header x-api-key) more than once"),
        "{answer}"
    );
    assert_eq!(admin_lines(&seen), Vec::<String>::new());
}
