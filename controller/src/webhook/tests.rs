//! The webhook over real HTTPS on 127.0.0.1, with the certificate frontdesk-certs issues the
//! controller, answering AdmissionReviews the way the API server sends them.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::*;

fn reviewer() -> Reviewer {
    let route = json!({"apiVersion": "frontdesk.dev/v1alpha1", "kind": "Route",
        "metadata": {"name": "shop", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"hosts": ["shop.example"], "rules": [{"backends": [{"url": "http://127.0.0.1:1"}]}]}});
    Reviewer::over(vec![route], Settings::default()).unwrap()
}

/// An AdmissionReview for `object`, as the API server sends it.
fn review_of(operation: &str, object: Value) -> Value {
    let kind = object["kind"].clone();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "frontdesk.dev", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "frontdesk.dev", "version": "v1alpha1", "resource": "routes"},
            "name": object["metadata"]["name"],
            "namespace": "partners",
            "operation": operation,
            "object": object,
            "dryRun": false,
        }
    })
}

fn route(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "frontdesk.dev/v1alpha1", "kind": "Route",
           "metadata": {"name": name, "creationTimestamp": "2026-06-01T00:00:00Z"}, "spec": spec})
}

/// POSTs `body` to the webhook over HTTPS, trusting the controller's CA; (status, JSON body).
async fn post(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in frontdesk_wire::tls::load_certs(ca).unwrap() {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the webhook's certificate verifies against the controller's CA");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::post(path)
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The webhook serving `reviewer` on 127.0.0.1 with the controller's certificate: its
/// address, the CA that issued it (in `dir`) and its metrics.
async fn serving(
    reviewer: Reviewer,
    dir: &std::path::Path,
) -> (std::net::SocketAddr, std::path::PathBuf, Arc<Metrics>) {
    crate::push::tests::credentials(dir).await;
    let tls = frontdesk_wire::tls::Reloading::webhook(
        &dir.join("controller/tls.crt"),
        &dir.join("controller/tls.key"),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::new(Metrics::new());
    tokio::spawn(serve(
        listener,
        Arc::new(tls),
        Arc::new(reviewer),
        metrics.clone(),
    ));
    (addr, dir.join("controller/ca.crt"), metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_an_invalid_route_with_the_compile_message_and_admits_a_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, ca, metrics) = serving(reviewer(), dir.path()).await;
    let send = |review: Value| {
        let ca = ca.clone();
        async move { post(addr, &ca, PATH, serde_json::to_vec(&review).unwrap()).await }
    };

    // Invalid: refused, with the message Accepted=False would carry.
    let invalid = route(
        "bad",
        json!({"rules": [{"matches": [{"path": {"value": "no-slash"}}],
                          "backends": [{"url": "http://127.0.0.1:1"}]}]}),
    );
    let (status, answer) = send(review_of("CREATE", invalid)).await;
    assert_eq!(status, StatusCode::OK);
    let response = &answer["response"];
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 422);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.rules[0].matches[0].path"),
        "{message}"
    );

    // Valid, even naming a Policy that does not exist yet: admitted.
    let valid = route(
        "good",
        json!({"hosts": ["partners.example"], "policies": ["later"],
               "rules": [{"backends": [{"service": "orders", "port": 80}]}]}),
    );
    let (_, answer) = send(review_of("CREATE", valid)).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(answer["response"].get("status").is_none());

    // A host an older Route of another namespace serves: refused as the status would.
    let thief = route(
        "thief",
        json!({"hosts": ["shop.example"], "rules": [{"backends": [{"url": "http://127.0.0.1:1"}]}]}),
    );
    let (_, answer) = send(review_of("UPDATE", thief)).await;
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(
        answer["response"]["status"]["message"],
        "spec.hosts: host shop.example is already served by an older Route or Aggregate of another namespace"
    );

    // A field of the wrong type: refused with where.
    let unreadable = route("typo", json!({"rules": [{"timeout": 5}]}));
    let (_, answer) = send(review_of("CREATE", unreadable)).await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.starts_with("spec.rules[0].timeout"), "{message}");

    // An invalid object already stored (from before the webhook): an update that keeps its
    // spec (a label, a finalizer removed) is allowed; one that changes it is checked.
    let stored = route(
        "old",
        json!({"rules": [{"matches": [{"path": {"value": "no-slash"}}],
                          "backends": [{"url": "http://127.0.0.1:1"}]}]}),
    );
    let mut labelled = stored.clone();
    labelled["metadata"]["labels"] = json!({"frontdesk.dev/admission": "skip"});
    let mut update = review_of("UPDATE", labelled);
    update["request"]["oldObject"] = stored.clone();
    let (_, answer) = send(update).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let mut still_bad = stored.clone();
    still_bad["spec"]["rules"][0]["matches"][0]["path"]["value"] = json!("still-no-slash");
    let mut update = review_of("UPDATE", still_bad);
    update["request"]["oldObject"] = stored;
    let (_, answer) = send(update).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");

    // Deletions and other kinds are not ours to refuse; garbage is a 400.
    let (_, answer) = send(review_of("DELETE", route("bad", json!({})))).await;
    assert_eq!(answer["response"]["allowed"], true);
    let (status, _) = post(addr, &ca, PATH, b"{not json".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(addr, &ca, "/other", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let text = metrics.encode();
    assert!(
        text.contains(
            "frontdesk_controller_admission_reviews_total{kind=\"Route\",allowed=\"false\"} 4"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "frontdesk_controller_admission_reviews_total{kind=\"Route\",allowed=\"true\"} 3"
        ),
        "{text}"
    );
}

/// An HTTPRoute of namespace shop on `parents`, with these `rules`.
fn http_route(name: &str, parents: Value, rules: Value) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": "shop"},
           "spec": {"parentRefs": parents, "hostnames": ["shop.example.com"], "rules": rules}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_reviews_http_routes_on_frontdesk_gateways_only() {
    let class = |name: &str, controller: &str| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": name}, "spec": {"controllerName": controller}})
    };
    let gateway = |name: &str, class: &str| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": name, "namespace": "edge"},
               "spec": {"gatewayClassName": class, "listeners": [
                   {"name": "http", "port": 80, "protocol": "HTTP",
                    "allowedRoutes": {"namespaces": {"from": "All"}}}]}})
    };
    let cluster = vec![
        class("frontdesk", frontdesk_crds::gateway_api::CONTROLLER_NAME),
        class("other", "example.org/other"),
        gateway("public", "frontdesk"),
        gateway("mesh", "other"),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let reviewer = Reviewer::over(cluster, Settings::default()).unwrap();
    let (addr, ca, metrics) = serving(reviewer, dir.path()).await;
    let send = |object: Value| {
        let ca = ca.clone();
        let mut review = review_of("CREATE", object);
        review["request"]["kind"]["group"] = json!("gateway.networking.k8s.io");
        review["request"]["namespace"] = json!("shop");
        async move { post(addr, &ca, PATH, serde_json::to_vec(&review).unwrap()).await }
    };
    let two_rewrites = json!([{
        "filters": [
            {"type": "URLRewrite", "urlRewrite": {"hostname": "a.example.com"}},
            {"type": "URLRewrite", "urlRewrite": {"hostname": "b.example.com"}}],
        "backendRefs": [{"name": "shop", "port": 80}]}]);

    // On frontdesk's Gateway: refused with what Accepted=False would say.
    let on_public = json!([{"name": "public", "namespace": "edge"}]);
    let (status, answer) = send(http_route("cart", on_public.clone(), two_rewrites.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(answer["response"]["status"]["code"], 422);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.starts_with("spec.rules[0].filters[1]"), "{message}");

    // The same route on another controller's Gateway: not frontdesk's to judge.
    let on_mesh = json!([{"name": "mesh", "namespace": "edge"}]);
    let (_, answer) = send(http_route("cart", on_mesh, two_rewrites)).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(answer["response"].get("warnings").is_none(), "{answer}");

    // A valid one naming a listener that does not exist: admitted, with the reason as a
    // warning (its status will say it too).
    let on_missing_listener =
        json!([{"name": "public", "namespace": "edge", "sectionName": "nope"}]);
    let valid = json!([{"backendRefs": [{"name": "shop", "port": 80}]}]);
    let (_, answer) = send(http_route("cart", on_missing_listener, valid.clone())).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(
        answer["response"]["warnings"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    let (_, answer) = send(http_route("cart", on_public, valid)).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(answer["response"].get("warnings").is_none(), "{answer}");

    let text = metrics.encode();
    assert!(
        text.contains(
            "frontdesk_controller_admission_reviews_total{kind=\"HTTPRoute\",allowed=\"false\"} 1"
        ),
        "{text}"
    );
}
