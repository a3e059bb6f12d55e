//! REST/JSON to gRPC transcoding through a real proxy process to the demo's gRPC service over
//! h2c: descriptors from `.proto` sources in a ConfigMap (compiled by the proxy's own
//! compiler, as standalone) and from a `FileDescriptorSet` in a ConfigMap's binaryData; GET
//! with path and query bindings, POST with a body, a server stream as a JSON array and as
//! NDJSON, a backend NOT_FOUND as a 404 problem, and an invalid descriptor set refused alone.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use base64::Engine;
use support::*;

const CATALOG: &str = include_str!("../../demo/proto/catalog.proto");

/// A ConfigMap of `.proto` sources, as YAML.
fn protos_config_map(name: &str) -> String {
    let indented: String = CATALOG.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: test}}\ndata:\n  catalog.proto: |\n{indented}---\n"
    )
}

/// A ConfigMap holding `bytes` as binaryData `key`.
fn descriptor_config_map(name: &str, key: &str, bytes: &[u8]) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: test}}\nbinaryData:\n  {key}: {}\n---\n",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn transcoded_route(
    name: &str,
    prefix: &str,
    transcode: &str,
    backend: std::net::SocketAddr,
) -> String {
    route(
        name,
        &format!(
            "  rules:\n    - matches: [{{path: {{value: {prefix}}}}}]\n      grpcTranscode: {transcode}\n      backends: [{{url: 'http://{backend}', protocol: h2c}}]"
        ),
    ) + "---\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_calls_become_grpc_calls_and_their_answers_json() {
    let backend = frontdesk_demo::spawn("a").await;
    let set =
        frontdesk_crds::grpc_http::compile_protos(&[("catalog.proto".into(), CATALOG.into())])
            .unwrap();
    let files = protos_config_map("catalog-protos")
        + &descriptor_config_map("catalog-descriptors", "catalog.pb", &set)
        + &transcoded_route(
            "from-protos",
            "/v1",
            "{protosConfigMap: catalog-protos}",
            backend,
        )
        + &transcoded_route(
            "from-descriptors",
            "/v2",
            "{descriptorSetRef: {name: catalog-descriptors, key: catalog.pb}, streaming: NewlineDelimited}",
            backend,
        );
    // The second route serves /v2 paths, which its bindings (/v1/...) do not map: rewrite.
    let files = files.replace(
        "grpcTranscode: {descriptorSetRef",
        "rewrite: {pathPrefix: /v1}\n      grpcTranscode: {descriptorSetRef",
    );
    let p = ProxyProcess::with_files(&[("r.yaml", &files)], &[]).await;
    let c = client();

    // GET with a path binding.
    let (status, headers, body) = get_with(&c, &p.url("/v1/products/2"), &[]).await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        json(&body),
        serde_json::json!({"id": "2", "name": "Burr grinder", "priceCents": "12950"})
    );

    // A query parameter binds a field; a server stream is a JSON array.
    let (status, _, body) = get_with(&c, &p.url("/v1/products?limit=2&utm_source=x"), &[]).await;
    assert_eq!(status, 200, "{body:?}");
    let items = json(&body);
    assert_eq!(items.as_array().unwrap().len(), 2, "{items}");
    assert_eq!(items[1]["name"], "Burr grinder");

    // POST with a body field.
    let created = send(
        &c,
        http::Request::post(p.url("/v1/products"))
            .header("content-type", "application/json")
            .body(support::body(
                r#"{"id": "9", "name": "Tamper", "priceCents": 2500}"#,
            ))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(created.0, 200, "{:?}", created.2);
    assert_eq!(json(&created.2)["name"], "Tamper");
    assert_eq!(json(&created.2)["priceCents"], "2500");

    // The backend's NOT_FOUND: a 404 problem with its message.
    let (status, headers, body) = get_with(&c, &p.url("/v1/products/404"), &[]).await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/problem+json");
    let problem = json(&body);
    assert_eq!(problem["grpcStatus"], 5);
    assert_eq!(problem["detail"], "no product \"404\"");
    assert_eq!(
        problem["type"],
        "https://frontdesk.dev/problems/grpc-not-found"
    );

    // A query parameter never overrides what the path says, whichever name it uses.
    for query in ["id=3", "id=3&id=1"] {
        let (status, _, body) = get_with(&c, &p.url(&format!("/v1/products/2?{query}")), &[]).await;
        assert_eq!(status, 200, "{body:?}");
        assert_eq!(json(&body)["id"], "2");
    }

    // A stream whose status comes after the head, before any message: a problem answer.
    let (status, headers, body) = get_with(&c, &p.url("/v1/products?limit=-1"), &[]).await;
    assert_eq!(status, 400, "{body:?}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(json(&body)["grpcStatus"], 3);
    assert_eq!(json(&body)["detail"], "limit must not be negative");

    // JSON that is not the message: 400 from the proxy, never sent.
    let requests = |b: std::net::SocketAddr| async move {
        json(&get(&format!("http://{b}/requests")).await.unwrap().2)["requests"]
            .as_u64()
            .unwrap()
    };
    let before = requests(backend).await;
    let bad = send(
        &c,
        http::Request::post(p.url("/v1/products"))
            .body(support::body(r#"{"id": 9, "nope": true}"#))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(bad.0, 400, "{:?}", bad.2);
    assert!(
        String::from_utf8_lossy(&bad.2)
            .contains("the body is not a product demo.Product: invalid type: integer `9`"),
        "{:?}",
        bad.2
    );
    let trailing = send(
        &c,
        http::Request::post(p.url("/v1/products"))
            .body(support::body(r#"{"id": "9"} {"id": "10"}"#))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(trailing.0, 400, "{:?}", trailing.2);
    assert_eq!(
        requests(backend).await,
        before,
        "the backend got a refused call"
    );
    // A path no method maps: 404 problem from the proxy, not the backend's.
    let (status, _, body) = get_with(&c, &p.url("/v1/orders/1"), &[]).await;
    assert_eq!(status, 404);
    assert_eq!(
        json(&body)["type"],
        "https://frontdesk.dev/problems/no-route"
    );

    // The descriptor set from binaryData, streaming as newline-delimited JSON.
    let (status, headers, body) = get_with(&c, &p.url("/v2/products"), &[]).await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines: Vec<_> = std::str::from_utf8(&body).unwrap().lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(lines[2]).unwrap()["id"],
        "3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_descriptor_set_is_refused_alone_with_its_reason() {
    let backend = frontdesk_demo::spawn("a").await;
    let files = descriptor_config_map("broken", "catalog.pb", b"\xff\xff\xff not protobuf")
        + &transcoded_route(
            "broken",
            "/v1",
            "{descriptorSetRef: {name: broken, key: catalog.pb}}",
            backend,
        )
        + &route(
            "plain",
            &format!(
                "  rules:\n    - matches: [{{path: {{value: /plain}}}}]\n      backends: [{{url: 'http://{backend}'}}]"
            ),
        );
    let p = ProxyProcess::with_files(&[("r.yaml", &files)], &[]).await;
    let log = p.wait_log("not a valid FileDescriptorSet").await;
    assert!(log.contains("spec.rules[0].grpcTranscode"), "{log}");
    // Everything else serves; the broken Route does not.
    assert_eq!(get(&p.url("/plain")).await.unwrap().0, 200);
    let (status, _, body) = get(&p.url("/v1/products/1")).await.unwrap();
    assert_eq!(status, 404);
    assert_eq!(
        json(&body)["type"],
        "https://frontdesk.dev/problems/no-route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_descriptors_serve_from_the_next_snapshot_without_a_restart() {
    let backend = frontdesk_demo::spawn("a").await;
    let route = transcoded_route("rest", "/", "{protosConfigMap: catalog-protos}", backend);
    let p = ProxyProcess::with_files(
        &[
            ("r.yaml", &route),
            ("protos.yaml", &protos_config_map("catalog-protos")),
        ],
        &[],
    )
    .await;
    assert_eq!(get(&p.url("/v1/products/1")).await.unwrap().0, 200);
    assert_eq!(get(&p.url("/v3/items/1")).await.unwrap().0, 404);
    // The service's annotation moves: the ConfigMap changes, the proxy reloads.
    let version = p.config_version().await;
    let moved = protos_config_map("catalog-protos").replace("/v1/products/{id}", "/v3/items/{id}");
    p.write("protos.yaml", &moved);
    p.wait_version_above(version).await;
    let (status, _, body) = get(&p.url("/v3/items/1")).await.unwrap();
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(json(&body)["name"], "Espresso machine");
    assert_eq!(get(&p.url("/v1/products/1")).await.unwrap().0, 404);
}
