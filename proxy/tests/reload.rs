//! Standalone mode reloads: atomic swaps under traffic, open connections kept, and bad edits
//! rejected with their location while the previous configuration keeps serving.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use support::*;

fn routes(a: std::net::SocketAddr, b: std::net::SocketAddr, n: u32) -> String {
    // Alternate the backend and a response header so each version is observable.
    let target = if n.is_multiple_of(2) { a } else { b };
    route(
        "live",
        &format!(
            "  rules:\n    - responseHeaders: {{set: {{x-config: '{n}'}}}}\n      backends: [{{url: 'http://{target}'}}]"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_reloads_under_traffic_fail_no_request_and_keep_connections() {
    let a = frontdesk_demo::spawn("a").await;
    let b = frontdesk_demo::spawn("b").await;
    let p = ProxyProcess::with_files(&[("live.yaml", &routes(a, b, 0))], &["--access-log", "off"])
        .await;

    // Continuous load from two clients: a pooled keep-alive one and one opening new connections.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut loaders = Vec::new();
    for fresh_connections in [false, true] {
        let (stop, ok, failed, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            p.url("/status/200"),
        );
        loaders.push(tokio::spawn(async move {
            let pooled = client();
            while !stop.load(Ordering::Relaxed) {
                let c = if fresh_connections {
                    client()
                } else {
                    pooled.clone()
                };
                match send(&c, Request::get(&url).body(body("")).unwrap()).await {
                    Ok((status, _, _)) if status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }

    // One raw keep-alive connection that must survive every reload.
    let stream = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (mut sender, conn) = http1::handshake::<_, TestBody>(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);

    let mut version = p.config_version().await;
    for n in 1..=30 {
        p.write("live.yaml", &routes(a, b, n));
        version = p.wait_version_above(version).await;
        let resp = sender
            .send_request(
                Request::get("/status/200")
                    .header("host", "x")
                    .body(body(Bytes::new()))
                    .unwrap(),
            )
            .await
            .expect("the open connection survives the reload");
        assert_eq!(
            resp.headers()["x-config"],
            n.to_string().as_str(),
            "the new configuration serves at once"
        );
        resp.into_body().collect().await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{ok} requests succeeded during 30 reloads, {failed} failed");
    assert!(ok > 100, "the load was too light to mean anything: {ok}");
    assert_eq!(failed, 0);
    assert!(
        p.metrics()
            .await
            .contains("frontdesk_config_reloads_total 31")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_edits_are_reported_and_the_previous_configuration_keeps_serving() {
    let a = frontdesk_demo::spawn("a").await;
    let good = route(
        "shop",
        &format!(
            "  rules:\n    - matches: [{{path: {{value: /shop}}}}]\n      backends: [{{url: 'http://{a}'}}]"
        ),
    );
    let other = route(
        "other",
        &format!(
            "  rules:\n    - matches: [{{path: {{value: /other}}}}]\n      backends: [{{url: 'http://{a}'}}]"
        ),
    );
    let p = ProxyProcess::with_files(&[("shop.yaml", &good), ("other.yaml", &other)], &[]).await;
    let c = client();
    assert_eq!(get_with(&c, &p.url("/shop"), &[]).await.0, 200);

    // 1. Broken YAML: the file keeps its previous objects.
    p.write(
        "shop.yaml",
        "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: shop\n",
    );
    let log = p
        .wait_log("shop.yaml document 1 (line 1): not valid YAML: line 3 column 11")
        .await;
    assert!(log.contains("previous version kept"), "{log}");
    assert_eq!(get_with(&c, &p.url("/shop"), &[]).await.0, 200);

    // 2. A field of the wrong type: reported with document and field path.
    let wrong_type = format!(
        "{}---\n{}",
        route("extra", "  rules: []"),
        good.replace("PathPrefix", "Prefixx")
            .replace("{value: /shop}", "{type: Prefixx, value: /shop}")
    );
    p.write("shop.yaml", &wrong_type);
    let log = p.wait_log("spec.rules[0].matches[0].path.type").await;
    assert!(log.contains(r#""document":2"#), "{log}");
    assert!(log.contains("Prefixx"), "{log}");
    assert_eq!(get_with(&c, &p.url("/shop"), &[]).await.0, 200);

    // 3. A valid document with an invalid value: the Route keeps its last accepted version, the
    //    other file's edit is applied, and /status says why.
    let version = p.config_version().await;
    p.write(
        "shop.yaml",
        &good.replace("{value: /shop}", "{value: shop-no-slash}"),
    );
    p.write("other.yaml", &other.replace("/other", "/other2"));
    p.wait_version_above(version).await;
    let log = p.wait_log("spec.rules[0].matches[0].path.value").await;
    assert!(log.contains("must start with '/'"), "{log}");
    assert_eq!(
        get_with(&c, &p.url("/shop"), &[]).await.0,
        200,
        "the last good shop Route serves"
    );
    assert_eq!(
        get_with(&c, &p.url("/other2"), &[]).await.0,
        200,
        "an unrelated good edit is applied"
    );
    let status = p.status().await;
    let shop = status["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "shop")
        .unwrap()
        .clone();
    assert_eq!(shop["conditions"][0]["type"], "Accepted");
    assert_eq!(shop["conditions"][0]["status"], false);
    assert!(
        shop["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("must start with '/'")
    );

    // 4. Fixing the file serves the fix.
    let version = p.config_version().await;
    p.write("shop.yaml", &good.replace("/shop", "/shop2"));
    p.wait_version_above(version).await;
    assert_eq!(get_with(&c, &p.url("/shop2"), &[]).await.0, 200);
    let metrics = p.metrics().await;
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("frontdesk_config_reload_failures_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 3, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_across_reloads() {
    let a = frontdesk_demo::spawn("a").await;
    let b = frontdesk_demo::spawn("b").await;
    // Both versions route /connections to the same backend `a`; only a header changes.
    let config = |n: u32| {
        route(
            "pool",
            &format!(
                "  rules:\n    - responseHeaders: {{set: {{x-config: '{n}'}}}}\n      backends: [{{url: 'http://{a}'}}]\n    - matches: [{{path: {{value: /other}}}}]\n      backends: [{{url: 'http://{b}'}}]"
            ),
        )
    };
    let p = ProxyProcess::with_files(&[("pool.yaml", &config(0))], &["--access-log", "off"]).await;
    let c = client();
    let first = json(&get_with(&c, &p.url("/connections"), &[]).await.2)["accepted"]
        .as_u64()
        .unwrap();
    let mut version = p.config_version().await;
    for n in 1..=5 {
        p.write("pool.yaml", &config(n));
        version = p.wait_version_above(version).await;
        let r = get_with(&c, &p.url("/connections"), &[]).await;
        assert_eq!(r.1["x-config"], n.to_string().as_str());
        assert_eq!(
            json(&r.2)["accepted"].as_u64().unwrap(),
            first,
            "the backend saw a new connection after reload {n}: the upstream pool was not kept"
        );
    }
}

/// `/explain` on a standalone proxy's admin port: the same view as the controller's, following
/// each load of the manifests.
#[tokio::test]
async fn explain_follows_the_loaded_manifests() {
    let route = |policies: &str| {
        format!(
            "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\n\
             metadata: {{name: orders, namespace: shop}}\n\
             spec:\n  hosts: [shop.example]\n  policies: [{policies}]\n  rules:\n\
             \x20 - matches: [{{path: {{type: PathPrefix, value: /orders}}}}]\n\
             \x20   backends: [{{url: 'http://127.0.0.1:9001'}}]\n"
        )
    };
    let policies = "\
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: base, namespace: shop}
spec:
  authentication: {apiKeys: {secretSelector: {matchLabels: {team: shop}}}}
  rateLimit: {limits: [{requests: 100, period: 1s}]}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: strict, namespace: shop}
spec:
  rateLimit: {limits: [{requests: 5, period: 1s}]}
";
    let p = ProxyProcess::with_files(
        &[
            ("route.yaml", &route("base, strict")),
            ("policies.yaml", policies),
        ],
        &[],
    )
    .await;
    let admin = p.admin;
    let explain = move |path: &str| {
        let url = format!("http://{admin}/explain/{path}");
        async move { get(&url).await }
    };
    let sections = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        let rules = &v["gateways"][0]["rules"];
        assert_eq!(rules.as_array().unwrap().len(), 1, "{v}");
        rules[0]["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["section"].as_str().unwrap().to_string(),
                    s["from"].as_str().unwrap().to_string(),
                    s["overrides"].to_string(),
                )
            })
            .collect()
    };
    let (status, _, body) = explain("route/shop/orders").await.unwrap();
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["kind"], "Route");
    assert_eq!(v["gateways"][0]["gateway"], "default");
    assert_eq!(
        v["gateways"][0]["rules"][0]["backends"][0]["endpoints"],
        serde_json::json!(["127.0.0.1:9001"])
    );
    assert_eq!(
        sections(&v),
        [
            ("authentication".into(), "shop/base".into(), "null".into()),
            (
                "rateLimit".into(),
                "shop/strict".into(),
                r#"["shop/base"]"#.into()
            ),
        ]
    );

    // The Policies swapped in the Route: the next load explains the other winner.
    let version = p.config_version().await;
    p.write("route.yaml", &route("strict, base"));
    p.wait_version_above(version).await;
    let (_, _, body) = explain("routes/shop/orders").await.unwrap();
    let swapped = sections(&json(&body));
    assert!(
        swapped.contains(&(
            "rateLimit".into(),
            "shop/base".into(),
            r#"["shop/strict"]"#.into()
        )),
        "{swapped:?}"
    );

    let (status, _, body) = explain("route/shop/nothing").await.unwrap();
    assert_eq!(status, 404);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "no Route shop/nothing in the last load of the manifests\n"
    );
    let (status, _, body) = explain("widget/shop/orders").await.unwrap();
    assert_eq!(
        (status, &body[..]),
        (http::StatusCode::NOT_FOUND, &b"unknown kind\n"[..])
    );
}
