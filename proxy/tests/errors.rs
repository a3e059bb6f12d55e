//! What the client gets when things go wrong: problem+json with the right status and type,
//! and the limits that protect the proxy from slow or oversized requests.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use support::*;

fn problem_type(a: &Answer) -> String {
    assert_eq!(a.1["content-type"], "application/problem+json", "{a:?}");
    let v = json(&a.2);
    assert_eq!(v["status"], a.0.as_u16());
    v["type"].as_str().unwrap().to_string()
}

async fn start() -> ProxyProcess {
    let a = frontdesk_demo::spawn("a").await;
    let dead = free_port(); // nothing listens there
    let files = format!(
        "{}---\n{}---\n{}",
        route(
            "errors",
            &format!(
                "  rules:
    - name: slow
      matches: [{{path: {{value: /delay}}}}]
      timeout: 300ms
      backends: [{{url: 'http://{a}'}}]
    - name: dead
      matches: [{{path: {{value: /dead}}}}]
      backends: [{{url: 'http://{dead}'}}]
    - name: empty-service
      matches: [{{path: {{value: /empty}}}}]
      backends: [{{service: empty, port: 80}}]
    - name: ok
      matches: [{{path: {{value: /status}}}}]
      backends: [{{url: 'http://{a}'}}]"
            )
        ),
        "apiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: test}\nspec:\n  ports: [{port: 80}]\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n"
    );
    ProxyProcess::with_files(&[("errors.yaml", &files)], &["--header-read-timeout", "1s"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_problem_json() {
    let p = start().await;
    let c = client();

    let started = Instant::now();
    let r = get_with(&c, &p.url("/delay/3000"), &[]).await;
    assert_eq!(r.0, 504);
    assert_eq!(
        problem_type(&r),
        "https://frontdesk.dev/problems/upstream-timeout"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the 300ms timeout was applied"
    );
    assert_eq!(
        json(&r.2)["requestId"],
        r.1["x-request-id"].to_str().unwrap()
    );

    let r = get_with(&c, &p.url("/dead"), &[]).await;
    assert_eq!(r.0, 502);
    assert_eq!(
        problem_type(&r),
        "https://frontdesk.dev/problems/upstream-unavailable"
    );
    // Answers never reveal the inside: no backend address, port or internal name.
    let text = String::from_utf8_lossy(&r.2).into_owned();
    assert_eq!(
        json(&r.2)["detail"],
        "the backend could not be reached",
        "{text}"
    );
    assert!(!text.contains("127.0.0.1"), "{text}");

    let r = get_with(&c, &p.url("/empty"), &[]).await;
    assert_eq!(r.0, 503);
    assert_eq!(
        problem_type(&r),
        "https://frontdesk.dev/problems/no-endpoints"
    );
    let text = String::from_utf8_lossy(&r.2).into_owned();
    assert!(!text.contains("empty") && !text.contains("test/"), "{text}");

    let r = get_with(&c, &p.url("/missing"), &[]).await;
    assert_eq!(r.0, 404);
    assert_eq!(problem_type(&r), "https://frontdesk.dev/problems/no-route");

    // A backend's own error statuses pass through untouched.
    let r = get_with(&c, &p.url("/status/503"), &[]).await;
    assert_eq!(
        (r.0.as_u16(), r.1["content-type"].to_str().unwrap()),
        (503, "application/json")
    );

    let metrics = p.metrics().await;
    assert!(
        metrics.contains(r#"frontdesk_requests_total{route="test/errors/slow",status="504"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"frontdesk_requests_total{route="none",status="404"} 1"#),
        "{metrics}"
    );
    // The proxy's own answers are told apart from the backends' by type.
    for line in [
        r#"frontdesk_local_replies_total{route="test/errors/slow",type="upstream-timeout"} 1"#,
        r#"frontdesk_local_replies_total{route="test/errors/dead",type="upstream-unavailable"} 1"#,
        r#"frontdesk_local_replies_total{route="test/errors/empty-service",type="no-endpoints"} 1"#,
        r#"frontdesk_local_replies_total{route="none",type="no-route"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(
        metrics.contains(r#"frontdesk_requests_total{route="test/errors/ok",status="503"} 1"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"frontdesk_local_replies_total{route="test/errors/ok""#),
        "a backend's own 503 is not a local reply: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_senders_are_cut_off() {
    let p = start().await;
    let addr = p.addr;
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        // Keep trickling a byte now and then, as slowloris does; the proxy must hang up anyway.
        loop {
            std::thread::sleep(Duration::from_millis(200));
            if s.write_all(b"a").is_err() {
                break;
            }
            s.set_nonblocking(true).unwrap();
            let read = s.read(&mut buf);
            s.set_nonblocking(false).unwrap();
            match read {
                Ok(0) => break,
                Ok(_) => break, // an error response, then close
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
            if started.elapsed() > Duration::from_secs(8) {
                break;
            }
        }
        started.elapsed()
    })
    .await
    .unwrap();
    assert!(
        closed_after < Duration::from_secs(3),
        "a slow header sender was held for {closed_after:?}"
    );
    // Meanwhile normal requests are served.
    assert_eq!(get(&p.url("/status/200")).await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests_are_rejected() {
    let p = start().await;
    let addr = p.addr;
    let answers = tokio::task::spawn_blocking(move || {
        let raw = |req: Vec<u8>| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(&req);
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_string()
        };
        let huge = format!("GET /status/200 HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(100 * 1024));
        let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
        let many = format!("GET /status/200 HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        let smuggle = "POST /status/200 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde";
        let bad_te = "POST /status/200 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n";
        [raw(huge.into_bytes()), raw(many.into_bytes()), raw(smuggle.as_bytes().to_vec()), raw(bad_te.as_bytes().to_vec())]
    })
    .await
    .unwrap();
    assert!(
        answers[0].starts_with("HTTP/1.1 431"),
        "huge header: {}",
        answers[0]
    );
    assert!(
        answers[1].starts_with("HTTP/1.1 431"),
        "too many headers: {}",
        answers[1]
    );
    assert!(
        answers[2].starts_with("HTTP/1.1 400"),
        "duplicate Content-Length: {}",
        answers[2]
    );
    // CL+TE together is refused (RFC 9112 §6.3 allows it; a gateway that guesses can be
    // desynchronised from the next hop), and the connection closes.
    assert_eq!(answers[3], "HTTP/1.1 400 Bad Request", "CL+TE");
}
