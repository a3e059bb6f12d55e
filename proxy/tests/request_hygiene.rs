//! What the proxy refuses or repairs before routing: ambiguous paths, bad Host headers,
//! smuggling attempts; and what it owes the backend: joined cookies, no proxy credentials, and
//! a timeout that does not cut off a slow upload.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::*;

async fn start() -> ProxyProcess {
    let a = frontdesk_demo::spawn("a").await;
    let r = route(
        "hygiene",
        &format!(
            "  rules:
    - name: public
      matches: [{{path: {{value: /public}}}}]
      backends: [{{url: 'http://{a}'}}]
    - name: files
      matches: [{{path: {{type: Template, value: '/files/{{name}}'}}}}]
      rewrite: {{path: '/static/{{name}}'}}
      backends: [{{url: 'http://{a}'}}]
    - name: upload
      matches: [{{path: {{value: /upload}}}}]
      timeout: 300ms
      backends: [{{url: 'http://{a}'}}]
    - name: home
      matches: [{{path: {{type: Exact, value: /}}}}]
      redirect: {{path: /public, statusCode: 302}}
    - name: admin
      matches: [{{path: {{value: /admin}}}}]
      directResponse: {{status: 200, body: admin-area}}"
        ),
    );
    ProxyProcess::with_files(&[("r.yaml", &r)], &["--access-log", "off"]).await
}

/// Sends raw bytes and returns the whole answer.
async fn raw(p: &ProxyProcess, request: &str) -> String {
    let addr = p.addr;
    let request = request.to_string();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap()
}

fn status_of(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_paths_cannot_reach_other_routes() {
    let p = start().await;
    let c = client();
    // %2e%2e is "..": resolved before matching, so this is /admin, served by the admin rule.
    let r = get_with(&c, &p.url("/public/%2e%2e/admin"), &[]).await;
    assert_eq!(&r.2[..], b"admin-area");
    // Decoded letters match too, and the backend receives the normalised path.
    let r = get_with(&c, &p.url("/%70ublic/x"), &[]).await;
    assert_eq!(json(&r.2)["path"], "/public/x");
    // Encoded slashes and backslashes are refused instead of guessed at.
    for bad in [
        "/public/..%2Fadmin",
        "/public/%5C..%5Cadmin",
        "/public/%00",
        "/public/%zz",
    ] {
        let r = get_with(&c, &p.url(bad), &[]).await;
        assert_eq!(r.0, 400, "{bad}");
        assert_eq!(
            json(&r.2)["type"],
            "https://frontdesk.dev/problems/bad-request"
        );
    }
    // A capture is one normalised segment: it cannot climb out of the rewrite.
    let r = get_with(&c, &p.url("/files/%2e%2e"), &[]).await;
    assert_eq!(
        r.0, 302,
        "/files/%2e%2e is /, answered by the Exact / redirect, not the template"
    );
    assert_eq!(
        r.1["location"],
        format!("http://{}/public", p.addr).as_str()
    );
    let r = get_with(&c, &p.url("/files/a%2Fb"), &[]).await;
    assert_eq!(r.0, 400);
    let r = get_with(&c, &p.url("/files/report%20v2"), &[]).await;
    assert_eq!(json(&r.2)["path"], "/static/report%20v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_missing_hosts_are_refused_and_never_reflected() {
    let p = start().await;
    let answer = raw(
        &p,
        "GET / HTTP/1.1\r\nHost: evil.example/x?\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status_of(&answer).starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!answer.contains("location: http://evil"), "{answer}");
    let answer = raw(&p, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(
        status_of(&answer).starts_with("HTTP/1.1 400"),
        "missing Host: {answer}"
    );
    let answer = raw(
        &p,
        "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        status_of(&answer).starts_with("HTTP/1.1 400"),
        "two Hosts: {answer}"
    );
    // A good Host is kept in the redirect; HTTP/1.0 without Host gets a relative one.
    let answer = raw(
        &p,
        "GET / HTTP/1.1\r\nHost: shop.example:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("location: http://shop.example:8080/public"),
        "{answer}"
    );
    let answer = raw(&p, "GET / HTTP/1.0\r\n\r\n").await;
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("location: /public\r\n"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shapes_never_yield_a_second_request() {
    let p = start().await;
    // CL and TE together: refused with 400 and the connection closed, so the "hidden" request
    // after the empty chunk is never read: exactly one response comes back.
    let answer = raw(
        &p,
        "POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert_eq!(status_of(&answer), "HTTP/1.1 400 Bad Request", "{answer}");
    assert!(
        !answer.contains("admin-area"),
        "the smuggled request was answered: {answer}"
    );
    // A Transfer-Encoding that is not exactly `chunked` (an empty element, another coding,
    // two lines) is refused, never guessed at.
    for te in [
        "Transfer-Encoding: ,chunked\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: xchunked\r\n",
    ] {
        let answer = raw(
            &p,
            &format!("POST /public HTTP/1.1\r\nHost: x\r\n{te}Connection: close\r\n\r\n0\r\n\r\n"),
        )
        .await;
        assert_eq!(
            status_of(&answer),
            "HTTP/1.1 400 Bad Request",
            "{te:?}: {answer}"
        );
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    }
    // Plain chunked is read, and re-framed upstream by the proxy: the backend sees the body.
    let answer = raw(
        &p,
        "POST /public HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), "HTTP/1.1 200 OK", "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let seen: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(seen["bodyBytes"], 3, "{seen}");
    let answer = raw(&p, "GET /public HTTP/1.1\r\nHost : x\r\n\r\n").await;
    assert!(
        status_of(&answer).starts_with("HTTP/1.1 400"),
        "space before colon: {answer}"
    );
    let answer = raw(
        &p,
        "GET /public HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    )
    .await;
    assert!(
        status_of(&answer).starts_with("HTTP/1.1 400"),
        "obs-fold: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_joined_and_proxy_credentials_dropped() {
    let p = start().await;
    let req = Request::get(p.url("/public/echo"))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .body(body(""))
        .unwrap();
    let r = send(&h2_client(), req).await.unwrap();
    let h = &json(&r.2)["headers"];
    assert_eq!(
        h["cookie"], "a=1; b=2",
        "one Cookie line for the HTTP/1.1 backend"
    );
    assert!(h.get("proxy-authorization").is_none());
}

/// A body sent in `chunks` pieces, one every `every`.
fn slow_body(chunks: u32, every: Duration) -> TestBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<
        Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
    >(1);
    tokio::spawn(async move {
        for _ in 0..chunks {
            tokio::time::sleep(every).await;
            if tx
                .send(Ok(Frame::data(Bytes::from_static(b"0123456789"))))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    StreamBody::new(frontdesk_demo::ReceiverStream(rx)).boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_runs_after_the_upload_not_during_it() {
    let p = start().await;
    // The rule's timeout is 300 ms; the upload takes about 1 s.
    let req = Request::post(p.url("/upload"))
        .body(slow_body(5, Duration::from_millis(200)))
        .unwrap();
    let (status, _, answer) = send(&client(), req).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(json(&answer)["bytes"], 50);
}

/// A body on a GET (or DELETE) is forwarded with its framing, never silently dropped: the
/// backend sees every byte, whether the client framed it by length or chunked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_on_a_get_reaches_the_backend() {
    let p = start().await;
    for request in [
        "GET /public HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        "DELETE /public HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let answer = raw(&p, request).await;
        assert_eq!(status_of(&answer), "HTTP/1.1 200 OK", "{answer}");
        let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        let seen: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(seen["bodyBytes"], 5, "{request:?}: {seen}");
    }
}
