//! Gateway API HTTPRoutes and GRPCRoutes served by a standalone proxy, next to a frontdesk
//! Route, through real sockets: a route attached to one listener of the Gateway answers on its
//! port only; a backend reference that is not valid answers its share 500 as a problem that
//! names no internal object; a GRPCRoute's method match reaches an h2c backend.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use support::*;

/// A Service `name` of namespace `test` whose one endpoint is `addr`.
fn service(name: &str, addr: SocketAddr, app_protocol: Option<&str>) -> String {
    let app = app_protocol.map_or(String::new(), |p| format!(", appProtocol: {p}"));
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: test}}\n\
         spec: {{ports: [{{name: http, port: 80{app}}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-1, namespace: test, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: ['{}']}}]\n",
        addr.port(),
        addr.ip()
    )
}

/// Waits until `url` answers `status`; returns the answer.
async fn until(url: &str, status: StatusCode, p: &ProxyProcess) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match get(url).await {
            Ok(a) if a.0 == status => return a,
            other => assert!(
                Instant::now() < deadline,
                "{url}: {:?}\n{}",
                other.map(|a| a.0),
                p.stderr()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproutes_serve_on_the_listeners_they_attach_to_and_invalid_backends_answer_500() {
    let demo = frontdesk_demo::spawn("demo").await;
    let (web, admin) = (free_port().port(), free_port().port());
    let gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: default, namespace: test}}
spec:
  gatewayClassName: frontdesk
  listeners:
    - {{name: web, port: {web}, protocol: HTTP}}
    - {{name: admin, port: {admin}, protocol: HTTP}}
"
    );
    let routes = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: site, namespace: test}
spec:
  parentRefs: [{name: default}]
  rules:
    - matches: [{path: {value: /site}}]
      filters:
        - type: URLRewrite
          urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /status}}
      backendRefs: [{name: demo, port: 80}]
    # Half to a Service that does not exist: its share is answered 500.
    - matches: [{path: {value: /half}}]
      backendRefs: [{name: demo, port: 80}, {name: nowhere, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: console, namespace: test}
spec:
  parentRefs: [{name: default, sectionName: admin}]
  rules:
    - matches: [{path: {value: /console}}]
      filters:
        - type: URLRewrite
          urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /status/204}}
      backendRefs: [{name: demo, port: 80}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: legacy, namespace: test}
spec:
  gateways: [default]
  rules:
    - matches: [{path: {type: Exact, value: /legacy}}]
      directResponse: {status: 200, body: legacy}
";
    let p = ProxyProcess::with_files(
        &[
            ("gateway.yaml", &gateway),
            ("services.yaml", &service("demo", demo, None)),
            ("routes.yaml", routes),
        ],
        &[],
    )
    .await;
    let on = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");

    // Attached to the whole Gateway: both ports.
    until(&on(web, "/site/201"), StatusCode::CREATED, &p).await;
    until(&on(admin, "/site/202"), StatusCode::ACCEPTED, &p).await;
    // Attached to the admin listener: its port only.
    until(&on(admin, "/console"), StatusCode::NO_CONTENT, &p).await;
    let (status, headers, body) = get(&on(web, "/console")).await.unwrap();
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(headers["content-type"], "application/problem+json");
    // A frontdesk Route of the gateway: every port.
    for port in [web, admin] {
        let (status, _, body) = get(&on(port, "/legacy")).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"legacy"[..]));
    }

    // Round robin over two equal weights: one of two requests gets the invalid share.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, headers, body) = get(&on(web, "/half/ok")).await.unwrap();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            assert_eq!(headers["content-type"], "application/problem+json");
            let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                problem["type"],
                "https://frontdesk.dev/problems/invalid-backend"
            );
            assert_eq!(problem["status"], 500);
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("nowhere") && !text.contains("test/"),
                "{text}"
            );
        }
        statuses.push(status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 500, 500]);
}

/// A GRPCRoute matching one method reaches the demo's gRPC service over h2c (a GRPCRoute's
/// backends speak HTTP/2); another method of the service is not routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpcroute_sends_its_methods_to_an_h2c_backend() {
    use frontdesk_demo::grpc::{GetProductRequest, ListProductsRequest, Product};
    use http::uri::PathAndQuery;
    use tonic_prost::ProstCodec;

    let demo = frontdesk_demo::spawn("catalog").await;
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: catalog, namespace: test}
spec:
  parentRefs: [{name: default}]
  rules:
    - matches: [{method: {service: demo.Catalog, method: GetProduct}}]
      backendRefs: [{name: catalog, port: 80}]
";
    let p = ProxyProcess::with_files(
        &[
            ("services.yaml", &service("catalog", demo, None)),
            ("routes.yaml", route),
        ],
        &[],
    )
    .await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", p.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let product = grpc
        .unary(
            tonic::Request::new(GetProductRequest { id: "1".into() }),
            PathAndQuery::from_static("/demo.Catalog/GetProduct"),
            ProstCodec::<GetProductRequest, Product>::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", p.stderr()))
        .into_inner();
    assert_eq!(product.name, "Espresso machine");
    grpc.ready().await.unwrap();
    let unrouted = grpc
        .server_streaming(
            tonic::Request::new(ListProductsRequest { limit: 0 }),
            PathAndQuery::from_static("/demo.Catalog/ListProducts"),
            ProstCodec::<ListProductsRequest, Product>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(unrouted.code(), tonic::Code::Unimplemented, "{unrouted:?}");
}

/// RequestMirror: every bodiless request of the rule also reaches the mirror, whose answer
/// (a 500 here) never reaches the client; a mirror without an endpoint changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_mirrored_and_the_mirrors_answers_ignored() {
    use std::sync::atomic::Ordering;
    let demo = frontdesk_demo::spawn("demo").await;
    let (shadow, copies) =
        support::resilience::fixed_backend(support::resilience::ALWAYS_500).await;
    let routes = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mirrored, namespace: test}
spec:
  parentRefs: [{name: default}]
  rules:
    - filters:
        - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}
        - {type: RequestMirror, requestMirror: {backendRef: {name: nowhere, port: 80}}}
      backendRefs: [{name: demo, port: 80}]
";
    let services = format!(
        "{}---\n{}",
        service("demo", demo, None),
        service("shadow", shadow, None)
    );
    let p = ProxyProcess::with_files(
        &[("services.yaml", &services), ("routes.yaml", routes)],
        &[],
    )
    .await;
    let url = format!("http://{}/status/200", p.addr);
    until(&url, StatusCode::OK, &p).await;
    for _ in 0..4 {
        let (status, _, _) = get(&url).await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "the mirror's 500 is not the client's"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while copies.load(Ordering::SeqCst) < 5 {
        assert!(
            Instant::now() < deadline,
            "{} copies",
            copies.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
