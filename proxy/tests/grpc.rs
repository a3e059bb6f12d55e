//! gRPC through the gateway with a real gRPC client (tonic) and the demo's gRPC service over
//! h2c: unary and server-streaming calls, routes matched by service and method, backend
//! statuses carried, and the proxy's own refusals answered as gRPC statuses (UNAUTHENTICATED,
//! RESOURCE_EXHAUSTED, UNAVAILABLE, UNIMPLEMENTED, DEADLINE_EXCEEDED from `grpc-timeout`).
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::time::{Duration, Instant};

use frontdesk_demo::grpc::{GetProductRequest, ListProductsRequest, Product};
use http::uri::PathAndQuery;
use support::*;
use tonic::client::Grpc;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

async fn connect(p: &ProxyProcess) -> Grpc<Channel> {
    let channel = Channel::from_shared(format!("http://{}", p.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Grpc::new(channel)
}

/// `GetProduct(id)` with `metadata`; the product and the answer's `x-backend`.
async fn get_product(
    grpc: &mut Grpc<Channel>,
    id: &str,
    metadata: &[(&'static str, &str)],
) -> Result<(Product, String), Status> {
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(GetProductRequest { id: id.into() });
    for (k, v) in metadata {
        req.metadata_mut().insert(*k, v.parse().unwrap());
    }
    let resp = grpc
        .unary(
            req,
            PathAndQuery::from_static("/demo.Catalog/GetProduct"),
            ProstCodec::<GetProductRequest, Product>::default(),
        )
        .await?;
    let backend = resp
        .metadata()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    Ok((resp.into_inner(), backend))
}

fn grpc_route(rules: &str) -> String {
    route("catalog", &format!("  rules:\n{rules}"))
}

fn rule(grpc: &str, backend: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "    - matches: [{{grpc: {grpc}}}]\n{extra}      backends: [{{url: 'http://{backend}', protocol: h2c}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_and_streaming_calls_pass_with_their_statuses_routed_by_service_and_method() {
    let a = frontdesk_demo::spawn("a").await;
    let b = frontdesk_demo::spawn("b").await;
    let files = grpc_route(
        &(rule("{service: demo.Catalog, method: ListProducts}", b, "")
            + &rule("{service: demo.Catalog}", a, "")),
    );
    let p = ProxyProcess::with_files(&[("r.yaml", &files)], &[]).await;
    let mut grpc = connect(&p).await;

    let (product, backend) = get_product(&mut grpc, "2", &[]).await.unwrap();
    assert_eq!(product.name, "Burr grinder");
    assert_eq!(product.price_cents, 12950);
    assert_eq!(backend, "a");

    // The backend's own status passes as it is.
    let missing = get_product(&mut grpc, "404", &[]).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.message(), "no product \"404\"");

    // A server stream, from the method's own rule.
    grpc.ready().await.unwrap();
    let resp = grpc
        .server_streaming(
            tonic::Request::new(ListProductsRequest { limit: 0 }),
            PathAndQuery::from_static("/demo.Catalog/ListProducts"),
            ProstCodec::<ListProductsRequest, Product>::default(),
        )
        .await
        .unwrap();
    assert_eq!(resp.metadata().get("x-backend").unwrap(), "b");
    let mut stream = resp.into_inner();
    let mut names = Vec::new();
    while let Some(product) = stream.message().await.unwrap() {
        names.push(product.name);
    }
    assert_eq!(names, ["Espresso machine", "Burr grinder", "Milk jug"]);

    // No rule for the service: UNIMPLEMENTED, from the proxy.
    grpc.ready().await.unwrap();
    let unrouted = grpc
        .unary(
            tonic::Request::new(GetProductRequest { id: "1".into() }),
            PathAndQuery::from_static("/other.Service/Get"),
            ProstCodec::<GetProductRequest, Product>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(unrouted.code(), Code::Unimplemented);
    assert!(unrouted.message().contains("no route"), "{unrouted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_refusals_are_grpc_statuses() {
    let backend = frontdesk_demo::spawn("a").await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let silent = silent_backend().await;
    let policy = manifest(
        "Policy",
        "keys",
        "  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: t}}}\n  rateLimit:\n    limits: [{requests: 1, period: 1m, burst: 2, key: Consumer}]",
    ) + "apiVersion: v1\nkind: Secret\nmetadata: {name: alice, namespace: test, labels: {frontdesk.dev/api-keys: t}}\nstringData: {key: alice-key-01, consumer: alice}\n---\n";
    let files = policy
        + &grpc_route(
            &(rule(
                "{service: demo.Catalog, method: GetProduct}",
                backend,
                "      policies: [keys]\n",
            ) + &rule("{service: demo.Catalog, method: ListProducts}", down, "")
                + &rule("{service: demo.Catalog, method: CreateProduct}", silent, "")),
        );
    let p = ProxyProcess::with_files(&[("r.yaml", &files)], &[]).await;
    let mut grpc = connect(&p).await;

    let refused = get_product(&mut grpc, "1", &[]).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let key = [("x-api-key", "alice-key-01")];
    get_product(&mut grpc, "1", &key).await.unwrap();
    get_product(&mut grpc, "1", &key).await.unwrap();
    let limited = get_product(&mut grpc, "1", &key).await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert!(
        limited.metadata().contains_key("retry-after"),
        "{limited:?}"
    );

    grpc.ready().await.unwrap();
    let unavailable = grpc
        .unary(
            tonic::Request::new(ListProductsRequest { limit: 0 }),
            PathAndQuery::from_static("/demo.Catalog/ListProducts"),
            ProstCodec::<ListProductsRequest, Product>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(unavailable.code(), Code::Unavailable, "{unavailable:?}");
    assert!(
        !unavailable.message().contains("127.0.0.1"),
        "{unavailable:?}"
    );

    // The client's deadline (grpc-timeout) bounds the wait for a backend that never answers.
    // Sent by a plain HTTP/2 client: tonic would enforce the deadline itself, first.
    let call = http::Request::post(p.url("/demo.Catalog/CreateProduct"))
        .header("content-type", "application/grpc")
        .header("grpc-timeout", "300m")
        .body(body(frontdesk_demo::grpc::frame(&GetProductRequest {
            id: "1".into(),
        })))
        .unwrap();
    let started = Instant::now();
    let (status, headers, _) = send(&h2_client(), call).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(
        headers["grpc-status"], "4",
        "DEADLINE_EXCEEDED: {headers:?}"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn grpc_health_checks_keep_an_endpoint_that_is_not_serving_out() {
    use frontdesk_proxy::runtime::{Env, Runtime};
    use support::resilience::{call, metric};
    let serving = frontdesk_demo::spawn("serving").await;
    // Answers the health check NOT_SERVING.
    let other = support::h2_backend::h2c_backend().await;
    let files = manifest(
        "Policy",
        "checked",
        "  healthCheck: {grpc: {service: demo.Catalog}, interval: 100ms, timeout: 100ms, unhealthyThreshold: 1}",
    ) + &manifest(
        "Route",
        "catalog",
        &format!(
            "  rules:\n    - policies: [checked]\n      backends: [{{url: 'http://{serving}', protocol: h2c}}]\n"
        ),
    );
    let mut snap = snapshot(&files);
    let frontdesk_snapshot::Action::Forward { backends } =
        &mut std::sync::Arc::make_mut(&mut snap.routes[0]).rules[0].action
    else {
        panic!("a forward");
    };
    backends[0].endpoints = vec![serving.to_string(), other.addr.to_string()];
    let rt =
        std::sync::Arc::new(Runtime::build(snap, std::sync::Arc::new(Env::standalone())).unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&rt, "frontdesk_upstream_unhealthy_endpoints{") != 1 {
        assert!(Instant::now() < deadline, "{}", rt.env.metrics.encode());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..10 {
        let (status, _, body) = call(&rt, "/anything").await;
        assert_eq!(status, 200);
        assert!(body.contains("\"backend\":\"serving\""), "{body}");
    }
    assert_eq!(metric(&rt, "frontdesk_upstream_unhealthy_endpoints{"), 1);
}

/// The frames of a gRPC-Web answer body: messages (flag 0) and the trailer block (flag 0x80).
fn grpc_web_frames(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = body[5..5 + len].to_vec();
        if body[0] & 0x80 != 0 {
            trailers = String::from_utf8(payload).unwrap();
        } else {
            messages.push(payload);
        }
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "a partial frame: {body:?}");
    (messages, trailers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_clients_are_translated_to_grpc_and_back() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use prost::Message;
    let backend = frontdesk_demo::spawn("a").await;
    let files = manifest(
        "Policy",
        "keys",
        "  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: t}}}",
    ) + "apiVersion: v1\nkind: Secret\nmetadata: {name: alice, namespace: test, labels: {frontdesk.dev/api-keys: t}}\nstringData: {key: alice-key-01, consumer: alice}\n---\n"
        + &grpc_route(
            &(rule(
                "{service: demo.Catalog, method: CreateProduct}",
                backend,
                "      policies: [keys]\n",
            ) + &rule("{service: demo.Catalog}", backend, "")),
        );
    let p = ProxyProcess::with_files(&[("r.yaml", &files)], &[]).await;
    let c = client();
    let call = |path: &str, content_type: &str, body: Vec<u8>| {
        http::Request::post(p.url(path))
            .header("content-type", content_type)
            .header("x-grpc-web", "1")
            .body(support::body(body))
            .unwrap()
    };

    // grpc-web-text over HTTP/1.1: base64 both ways, the status in a trailer frame.
    let asked = frontdesk_demo::grpc::frame(&GetProductRequest { id: "3".into() });
    let (status, headers, body) = send(
        &c,
        call(
            "/demo.Catalog/GetProduct",
            "application/grpc-web-text",
            STANDARD.encode(&asked).into_bytes(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/grpc-web-text");
    let (messages, trailers) = grpc_web_frames(&STANDARD.decode(&body).unwrap());
    assert_eq!(trailers, "grpc-status:0\r\n");
    let product = Product::decode(&messages[0][..]).unwrap();
    assert_eq!(product.name, "Milk jug");

    // Binary gRPC-Web; the backend's NOT_FOUND in the trailer frame.
    let missing = frontdesk_demo::grpc::frame(&GetProductRequest { id: "9".into() });
    let (status, headers, body) = send(
        &c,
        call(
            "/demo.Catalog/GetProduct",
            "application/grpc-web+proto",
            missing.to_vec(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/grpc-web");
    let (messages, trailers) = grpc_web_frames(&body);
    assert!(messages.is_empty());
    assert!(trailers.contains("grpc-status:5\r\n"), "{trailers}");
    assert!(
        trailers.contains("grpc-message:no product \"9\"\r\n"),
        "{trailers}"
    );

    // The proxy's own refusal: a gRPC status in the head, as gRPC-Web clients read it.
    let (status, headers, body) = send(
        &c,
        call(
            "/demo.Catalog/CreateProduct",
            "application/grpc-web-text",
            STANDARD.encode(&asked).into_bytes(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["grpc-status"], "16");
    assert_eq!(headers["content-type"], "application/grpc-web-text+proto");
    assert!(body.is_empty());
}
