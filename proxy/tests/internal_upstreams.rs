//! `--refuse-internal-upstreams`: a gateway in a cluster never connects to loopback,
//! link-local (cloud metadata) or unspecified addresses, whether a manifest names one through a
//! DNS name that resolves to it (the compiler only sees the name) or an endpoint carries it.
//! Backends here live on 127.0.0.1, so with the flag every one of them is out of reach, and the
//! same routes without it are served.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use support::*;

async fn start(extra: &[&str]) -> ProxyProcess {
    let demo = frontdesk_demo::spawn("demo").await;
    let port = demo.port();
    let files = manifest(
        "Policy",
        "outside-check",
        &format!(
            "  authentication:\n    external: {{url: 'http://localhost:{port}/status/200', timeout: 300ms, failureMode: Deny}}"
        ),
    ) + &manifest(
        "Policy",
        "literal-check",
        &format!(
            "  authentication:\n    external: {{url: 'http://{demo}/status/200', timeout: 300ms, failureMode: Deny}}"
        ),
    ) + &route(
        "inside",
        &format!(
            "  rules:
    - name: by-name
      matches: [{{path: {{value: /by-name}}}}]
      rewrite: {{pathPrefix: /status/200}}
      backends: [{{url: 'http://localhost:{port}'}}]
    - name: by-address
      matches: [{{path: {{value: /by-address}}}}]
      rewrite: {{pathPrefix: /status/200}}
      backends: [{{url: 'http://{demo}'}}]
    - name: checked
      matches: [{{path: {{value: /checked}}}}]
      policies: [outside-check]
      directResponse: {{status: 200, body: checked}}
    - name: checked-literal
      matches: [{{path: {{value: /literal}}}}]
      policies: [literal-check]
      directResponse: {{status: 200, body: checked}}"
        ),
    );
    ProxyProcess::with_files(&[("m.yaml", &files)], extra).await
}

fn assert_problem(a: &Answer, status: u16, slug: &str) {
    assert_eq!(a.0.as_u16(), status, "{}", String::from_utf8_lossy(&a.2));
    let v = json(&a.2);
    assert_eq!(
        v["type"],
        format!("https://frontdesk.dev/problems/{slug}"),
        "{v}"
    );
    // The refusal is the log's business, not the client's.
    let text = v.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("localhost"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_are_never_connected_to_when_refused() {
    let p = start(&["--refuse-internal-upstreams"]).await;
    let c = client();
    // A name that resolves to loopback: the compiler let it through, the proxy does not.
    assert_problem(
        &get_with(&c, &p.url("/by-name"), &[]).await,
        502,
        "upstream-unavailable",
    );
    // An address an endpoint carries.
    assert_problem(
        &get_with(&c, &p.url("/by-address"), &[]).await,
        502,
        "upstream-unavailable",
    );
    // The proxy's own client (external authorization, key sets) resolves the same way.
    assert_problem(
        &get_with(&c, &p.url("/checked"), &[]).await,
        503,
        "auth-unavailable",
    );
    // An address written in the URL never reaches a resolver: checked all the same.
    assert_problem(
        &get_with(&c, &p.url("/literal"), &[]).await,
        503,
        "auth-unavailable",
    );
    p.wait_log("a backend connection was refused").await;
    p.wait_log("resolved to internal addresses only").await;

    // Without the flag (standalone's default) the same routes are served.
    let open = start(&[]).await;
    for path in ["/by-name", "/by-address", "/checked", "/literal"] {
        let a = get_with(&c, &open.url(path), &[]).await;
        assert_eq!(a.0, 200, "{path}: {}", String::from_utf8_lossy(&a.2));
    }
}
