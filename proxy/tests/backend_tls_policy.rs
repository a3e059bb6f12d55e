//! A Gateway API BackendTLSPolicy read from manifest files by a real standalone proxy: a Route
//! to a plain Service port reaches the Service's HTTPS pods over TLS, verified against the
//! policy's CA, with real handshakes on 127.0.0.1; without the policy the same Route speaks
//! plaintext (and the HTTPS backend refuses it); a policy whose CA cannot be found leaves the
//! backend unreachable (503), never plaintext, and says why in its status.
// Real sockets, timed by the wall clock: the paused-time ban (clippy.toml) is for the proxy's
// own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use frontdesk_demo::certs::Authority;
use http::StatusCode;

use support::tls_backend::tls_backend;
use support::*;

const NAME: &str = "orders.internal";

/// The Service `orders` (port 443, named https) whose one endpoint is `backend`, and a Route
/// to it.
fn service_and_route(backend: SocketAddr) -> String {
    let route = manifest(
        "Route",
        "shop",
        "  rules:\n    - backends: [{service: orders, port: 443}]\n",
    );
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: orders, namespace: test}}\nspec: {{ports: [{{name: https, port: 443}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: orders-1, namespace: test, labels: {{kubernetes.io/service-name: orders}}}}\n\
         addressType: IPv4\nports: [{{name: https, port: {port}}}]\nendpoints: [{{addresses: ['{ip}']}}]\n---\n{route}",
        port = backend.port(),
        ip = backend.ip(),
    )
}

/// A BackendTLSPolicy for the https port of `orders`, trusting the ConfigMap `orders-ca`.
const POLICY: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {name: orders-tls, namespace: test}\nspec:\n  targetRefs: [{group: '', kind: Service, name: orders, sectionName: https}]\n  validation:\n    hostname: orders.internal\n    caCertificateRefs: [{group: '', kind: ConfigMap, name: orders-ca}]\n---\n";

/// The ConfigMap `orders-ca` holding `ca`'s certificate.
fn ca_config_map(ca: &Authority) -> String {
    let pem: String = ca.pem().lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: orders-ca, namespace: test}}\ndata:\n  ca.crt: |\n{pem}---\n"
    )
}

/// Replaces the manifests with `yaml`, waits until the proxy serves them, and GETs /orders.
async fn reload_and_get(p: &ProxyProcess, yaml: &str) -> Answer {
    std::fs::write(p.dir.join("r.yaml"), yaml).unwrap();
    let v = p.config_version().await;
    p.wait_version_above(v).await;
    get(&p.url("/orders")).await.unwrap()
}

/// The status `/status` lists for the BackendTLSPolicy.
async fn policy_status(p: &ProxyProcess) -> serde_json::Value {
    let status = p.status().await;
    let found = status
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .filter_map(|v| v.as_array())
        .flatten()
        .find(|s| s["kind"] == "BackendTLSPolicy")
        .cloned();
    found.unwrap_or_else(|| panic!("no BackendTLSPolicy in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_port_a_policy_targets_is_reached_over_verified_tls_and_never_in_plaintext() {
    let ca = Authority::new();
    let (backend, handshakes) = tls_backend(&ca.issue(&[NAME], 1, 30), None).await;
    let with_policy = service_and_route(backend) + POLICY + &ca_config_map(&ca);
    let p = ProxyProcess::with_files(&[("r.yaml", &with_policy)], &[]).await;
    let (status, _, body) = get(&p.url("/orders")).await.unwrap();
    assert_eq!(
        (status, json(&body)["bodyBytes"].as_u64()),
        (StatusCode::OK, Some(0))
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
    let st = policy_status(&p).await;
    assert_eq!(st["conditions"][0]["type"], "Accepted", "{st}");
    assert_eq!(st["conditions"][0]["status"], true, "{st}");
    assert_eq!(st["ancestors"][0]["kind"], "Route", "{st}");

    // Without the policy, the Route speaks plaintext to the port, and the HTTPS backend does
    // not answer it: the policy was what made it TLS.
    let (status, _, _) = reload_and_get(&p, &service_and_route(backend)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);

    // The policy's CA goes away: 503, not plaintext, and both statuses say why.
    let without_ca = service_and_route(backend) + POLICY;
    let (status, _, body) = reload_and_get(&p, &without_ca).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let st = policy_status(&p).await;
    assert_eq!(
        st["conditions"][0]["reason"], "NoValidCACertificate",
        "{st}"
    );
    assert!(
        st.to_string()
            .contains("ConfigMap test/orders-ca not found"),
        "{st}"
    );
    assert!(
        p.status()
            .await
            .to_string()
            .contains("BackendTLSPolicy test/orders-tls cannot be applied"),
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
}
