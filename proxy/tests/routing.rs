//! Routing through a real proxy process to real backends: hosts, path types, methods,
//! headers, query, precedence, weights, transforms, forwarding headers and HTTP/2.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use http::Request;
use support::*;

struct Setup {
    proxy: ProxyProcess,
}

async fn setup() -> Setup {
    let a = frontdesk_demo::spawn("a").await;
    let b = frontdesk_demo::spawn("b").await;
    let c = frontdesk_demo::spawn("c").await;
    let manifest = format!(
        r#"
{hosts}---
{wild}---
{main}"#,
        hosts = route(
            "exact-host",
            &format!(
                "  hosts: [api.example.com]\n  rules:\n    - backends: [{{url: 'http://{a}'}}]"
            )
        ),
        wild = route(
            "wildcard-host",
            &format!(
                "  hosts: ['*.example.com']\n  rules:\n    - backends: [{{url: 'http://{b}'}}]"
            )
        ),
        main = route(
            "main",
            &format!(
                r#"  rules:
    - name: exact
      matches: [{{path: {{type: Exact, value: /exact}}}}]
      backends: [{{url: 'http://{a}'}}]
    - name: prefix
      matches: [{{path: {{type: PathPrefix, value: /prefix}}}}]
      backends: [{{url: 'http://{b}'}}]
    - name: template
      matches: [{{path: {{type: Template, value: '/users/{{id}}/orders'}}}}]
      rewrite: {{path: '/u/{{id}}'}}
      backends: [{{url: 'http://{c}'}}]
    - name: regex
      matches: [{{path: {{type: RegularExpression, value: '/files/[a-z]+\.txt'}}}}]
      backends: [{{url: 'http://{a}'}}]
    - name: post-only
      matches: [{{path: {{value: /m}}, methods: [POST]}}]
      backends: [{{url: 'http://{b}'}}]
    - name: any-method
      matches: [{{path: {{value: /m}}}}]
      backends: [{{url: 'http://{a}'}}]
    - name: canary
      matches: [{{path: {{value: /h}}, headers: [{{name: x-canary, value: 'true'}}]}}]
      backends: [{{url: 'http://{b}'}}]
    - name: stable
      matches: [{{path: {{value: /h}}}}]
      backends: [{{url: 'http://{a}'}}]
    - name: query-v2
      matches: [{{path: {{value: /q}}, query: [{{name: v, value: '2'}}]}}]
      backends: [{{url: 'http://{b}'}}]
    - name: query-any
      matches: [{{path: {{value: /q}}}}]
      backends: [{{url: 'http://{a}'}}]
    - name: p-exact
      matches: [{{path: {{type: Exact, value: /p/x}}}}]
      backends: [{{url: 'http://{a}'}}]
    - name: p-regex
      matches: [{{path: {{type: RegularExpression, value: '/p/.*'}}}}]
      backends: [{{url: 'http://{c}'}}]
    - name: p-prefix
      matches: [{{path: {{value: /p}}}}]
      backends: [{{url: 'http://{b}'}}]
    - name: p-long-prefix
      matches: [{{path: {{value: /p/deep/er}}}}]
      backends: [{{url: 'http://{c}'}}]
    - name: weighted
      matches: [{{path: {{value: /w}}}}]
      backends: [{{url: 'http://{a}', weight: 3}}, {{url: 'http://{b}', weight: 1}}]
    - name: transforms
      matches: [{{path: {{value: /t}}}}]
      rewrite: {{pathPrefix: /rewritten, host: internal.svc}}
      requestHeaders: {{set: {{x-added: 'yes', x-upstream-token: tok-123, x-signed: sig-456}}, sensitive: [x-signed], remove: [x-secret]}}
      responseHeaders: {{set: {{x-frame-options: DENY}}, remove: [x-backend]}}
      backends: [{{url: 'http://{a}'}}]
    - name: echo
      matches: [{{path: {{value: /echo}}}}]
      backends: [{{url: 'http://{a}'}}]
    - name: redirect
      matches: [{{path: {{value: /old}}}}]
      redirect: {{scheme: https, host: new.example.com, pathPrefix: /new, statusCode: 308}}
    - name: fixed
      matches: [{{path: {{type: Exact, value: /fixed}}}}]
      directResponse: {{status: 418, body: teapot, contentType: text/plain}}"#
            )
        ),
    );
    let proxy = ProxyProcess::with_files(&[("routes.yaml", &manifest)], &[]).await;
    Setup { proxy }
}

async fn who(s: &Setup, path: &str, headers: &[(&str, &str)]) -> String {
    backend(&get_with(&client(), &s.proxy.url(path), headers).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_path_method_header_query_with_precedence() {
    let s = setup().await;
    let c = client();

    // Hosts: exact beats wildcard beats host-less routes; ports and case do not matter.
    assert_eq!(
        who(&s, "/anything", &[("host", "API.example.com:8080")]).await,
        "a"
    );
    assert_eq!(
        who(&s, "/anything", &[("host", "shop.example.com")]).await,
        "b"
    );
    assert_eq!(
        who(&s, "/anything", &[("host", "deep.shop.example.com")]).await,
        "b"
    );
    let none = get_with(&c, &s.proxy.url("/anything"), &[("host", "example.com")]).await;
    assert_eq!(none.0, 404, "the wildcard does not cover the bare domain");

    // Path types.
    assert_eq!(who(&s, "/exact", &[]).await, "a");
    assert_eq!(
        get_with(&c, &s.proxy.url("/exact/more"), &[]).await.0,
        404,
        "Exact is exact"
    );
    assert_eq!(who(&s, "/prefix", &[]).await, "b");
    assert_eq!(who(&s, "/prefix/deeper/still", &[]).await, "b");
    assert_eq!(
        get_with(&c, &s.proxy.url("/prefixX"), &[]).await.0,
        404,
        "prefixes match whole segments"
    );
    let t = get_with(&c, &s.proxy.url("/users/42/orders?x=1"), &[]).await;
    assert_eq!(backend(&t), "c");
    assert_eq!(
        json(&t.2)["path"],
        "/u/42",
        "template capture used in the rewrite"
    );
    assert_eq!(json(&t.2)["query"], "x=1", "the query string is kept");
    assert_eq!(
        get_with(&c, &s.proxy.url("/users/42/orders/9"), &[])
            .await
            .0,
        404
    );
    assert_eq!(who(&s, "/files/notes.txt", &[]).await, "a");
    assert_eq!(
        get_with(&c, &s.proxy.url("/files/notes.txt.bak"), &[])
            .await
            .0,
        404,
        "regexes are anchored"
    );

    // Method, header, query conditions.
    let post = send(
        &c,
        Request::post(s.proxy.url("/m")).body(body("x")).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(backend(&post), "b");
    assert_eq!(who(&s, "/m", &[]).await, "a");
    assert_eq!(who(&s, "/h", &[("x-canary", "true")]).await, "b");
    assert_eq!(who(&s, "/h", &[("x-canary", "false")]).await, "a");
    assert_eq!(who(&s, "/q?v=2", &[]).await, "b");
    assert_eq!(
        who(&s, "/q?v=1&v=2", &[]).await,
        "b",
        "any value of a repeated parameter"
    );
    assert_eq!(who(&s, "/q?v=3", &[]).await, "a");

    // Precedence: Exact > longest prefix > shorter prefix > regex.
    assert_eq!(who(&s, "/p/x", &[]).await, "a");
    assert_eq!(who(&s, "/p/deep/er/yet", &[]).await, "c");
    assert_eq!(
        who(&s, "/p/y", &[]).await,
        "b",
        "a prefix beats a regex that also matches"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_is_within_five_percent_over_2000_requests() {
    let s = setup().await;
    let c = client();
    let mut a = 0;
    for _ in 0..2000 {
        if who_with(&c, &s, "/w").await == "a" {
            a += 1;
        }
    }
    let share = f64::from(a) / 2000.0;
    assert!(
        (share - 0.75).abs() <= 0.05,
        "backend a got {share:.3} of the requests, expected 0.75 ± 0.05"
    );
}

async fn who_with(
    c: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        TestBody,
    >,
    s: &Setup,
    path: &str,
) -> String {
    backend(&get_with(c, &s.proxy.url(path), &[]).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_redirects_and_direct_responses() {
    let s = setup().await;
    let c = client();
    let t = get_with(
        &c,
        &s.proxy.url("/t/7?k=v"),
        &[("x-secret", "s"), ("host", "front.example.org")],
    )
    .await;
    let seen = json(&t.2);
    assert_eq!(seen["path"], "/rewritten/7");
    assert_eq!(seen["headers"]["host"], "internal.svc");
    assert_eq!(seen["headers"]["x-forwarded-host"], "front.example.org");
    assert_eq!(seen["headers"]["x-added"], "yes");
    assert!(seen["headers"].get("x-secret").is_none());
    // Credentials for the backend arrive in full and are never shown in /config.
    assert_eq!(seen["headers"]["x-upstream-token"], "tok-123");
    assert_eq!(seen["headers"]["x-signed"], "sig-456");
    let (_, _, config) = get(&format!("http://{}/config", s.proxy.admin))
        .await
        .unwrap();
    let config = String::from_utf8_lossy(&config);
    assert!(config.contains("\"x-added\""), "{config}");
    assert!(
        !config.contains("tok-123") && !config.contains("sig-456"),
        "{config}"
    );
    assert_eq!(t.1["x-frame-options"], "DENY");
    assert!(t.1.get("x-backend").is_none(), "response header removed");

    let r = get_with(
        &c,
        &s.proxy.url("/old/page?q=1"),
        &[("host", "shop.test:8080")],
    )
    .await;
    assert_eq!(r.0, 308);
    assert_eq!(r.1["location"], "https://new.example.com/new/page?q=1");

    let f = get_with(&c, &s.proxy.url("/fixed"), &[]).await;
    assert_eq!(
        (
            f.0.as_u16(),
            &f.2[..],
            f.1["content-type"].to_str().unwrap()
        ),
        (418, &b"teapot"[..], "text/plain")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_request_ids_and_hop_by_hop() {
    let s = setup().await;
    let c = client();
    let r = get_with(
        &c,
        &s.proxy.url("/echo"),
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "admin.internal"),
            ("forwarded", "for=203.0.113.9;proto=https"),
            ("x-real-ip", "203.0.113.9"),
            ("true-client-ip", "203.0.113.9"),
            ("x-client-ip", "203.0.113.9"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
        ],
    )
    .await;
    let h = &json(&r.2)["headers"];
    // The peer (127.0.0.1) is no trusted proxy: what the client says about itself is replaced.
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        h["x-forwarded-proto"], "http",
        "a client cannot claim https to the backend"
    );
    assert_eq!(h["x-forwarded-host"], s.proxy.addr.to_string());
    for forged in [
        "forwarded",
        "x-real-ip",
        "true-client-ip",
        "x-client-ip",
        "x-original-url",
        "x-rewrite-url",
    ] {
        assert!(h.get(forged).is_none(), "{forged} reached the backend: {h}");
    }
    assert!(
        h.get("x-hop").is_none(),
        "headers named by Connection are hop-by-hop"
    );
    let id = r.1["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(
        h["x-request-id"], id,
        "the generated id reaches the backend and the client"
    );

    let r = get_with(
        &c,
        &s.proxy.url("/echo"),
        &[("x-request-id", "client-id-1")],
    )
    .await;
    assert_eq!(r.1["x-request-id"], "client-id-1");
    assert_eq!(json(&r.2)["headers"]["x-request-id"], "client-id-1");

    // Dot segments cannot escape a route: /prefix/../exact is /exact.
    let r = get_with(&c, &s.proxy.url("/prefix/../echo"), &[]).await;
    assert_eq!(json(&r.2)["path"], "/echo");

    // The access log has a line per request with the route, status and upstream.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = s.proxy.stdout();
    let line = log
        .lines()
        .find(|l| l.contains("client-id-1"))
        .expect("an access log line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["route"], "test/main/echo");
    assert_eq!(v["status"], 200);
    assert!(v["upstream"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(v["bytes_out"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    let s = setup().await;
    let c = h2_client();
    let r = send(
        &c,
        Request::get(s.proxy.url("/echo")).body(body("")).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.0, 200);
    let seen = json(&r.2);
    assert_eq!(
        seen["version"], "HTTP/1.1",
        "the backend is spoken to in HTTP/1.1"
    );
    assert_eq!(
        seen["headers"]["host"],
        s.proxy.addr.to_string(),
        ":authority becomes Host"
    );
    let r = send(
        &c,
        Request::get(s.proxy.url("/nowhere"))
            .body(body(""))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.0, 404);
    assert_eq!(r.1["content-type"], "application/problem+json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_forwarding_headers_are_extended() {
    let echo = frontdesk_demo::spawn("echo").await;
    let r = route(
        "trusted",
        &format!("  rules:\n    - backends: [{{url: 'http://{echo}'}}]"),
    );
    let p = ProxyProcess::with_files(
        &[("r.yaml", &r)],
        &["--trusted-proxies", "10.0.0.0/8,127.0.0.1/32"],
    )
    .await;
    let a = get_with(
        &client(),
        &p.url("/x"),
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "shop.example.com"),
            ("forwarded", "for=203.0.113.9;proto=https"),
            ("x-real-ip", "203.0.113.9"),
            ("x-original-url", "/admin"),
            ("x_forwarded_for", "6.6.6.6"),
            ("transfer_encoding", "chunked"),
            ("content_length", "5"),
            ("x_tenant", "blue"),
        ],
    )
    .await;
    let h = &json(&a.2)["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    // Framing names spelled with `_` never pass; other `_` names do.
    assert!(h.get("transfer_encoding").is_none(), "{h}");
    assert!(h.get("content_length").is_none(), "{h}");
    assert_eq!(h["x_tenant"], "blue");
    assert_eq!(
        h["x-forwarded-proto"], "https",
        "believed from a trusted proxy"
    );
    // The host is the one routed on; URL overrides and underscore spellings never pass.
    assert_eq!(h["x-forwarded-host"], p.addr.to_string());
    assert!(h.get("x-original-url").is_none(), "{h}");
    assert!(h.get("x_forwarded_for").is_none(), "{h}");
    assert_eq!(h["forwarded"], "for=203.0.113.9;proto=https, for=127.0.0.1");
    assert_eq!(h["x-real-ip"], "203.0.113.9");
}
