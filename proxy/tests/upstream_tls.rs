//! TLS to backends, with real handshakes on 127.0.0.1: a backend whose certificate a private
//! CA signed is reached when the backend trusts that CA and refused (with a clear problem)
//! when it trusts another or names another server; connections are kept and reused; uploads
//! are sent whole; a backend that wants a client certificate gets the proxy's.
// Real sockets, timed by the wall clock: the paused-time ban (clippy.toml) is for the proxy's
// own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use frontdesk_demo::certs::{Authority, Issued};
use frontdesk_proxy::runtime::{Env, Runtime};
use frontdesk_snapshot::{Action, BackendTls, ClientCertificatePair, Secret};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::resilience::{CLIENT, send_body};
use support::tls_backend::{ca_secret, serve_tls, server_config, tls_backend};
use support::*;

const NAME: &str = "orders.internal";

fn runtime(backend: SocketAddr, tls: BackendTls) -> Arc<Runtime> {
    let yaml = manifest(
        "Route",
        "shop",
        &format!("  rules:\n    - backends: [{{url: 'http://{backend}'}}]\n"),
    );
    let mut snap = snapshot(&yaml);
    let Action::Forward { backends } =
        &mut std::sync::Arc::make_mut(&mut snap.routes[0]).rules[0].action
    else {
        panic!("a forward");
    };
    backends[0].tls = Some(tls);
    Arc::new(Runtime::build(snap, Arc::new(Env::standalone())).unwrap())
}

fn trusting(ca: &Authority) -> BackendTls {
    BackendTls {
        server_name: NAME.into(),
        ca_certificates: Some(ca.pem().to_string()),
        client_certificate: None,
    }
}

async fn call(rt: &Arc<Runtime>, method: &str, body: &'static str) -> (StatusCode, String) {
    send_body(rt, method, "/orders", body).await
}

#[tokio::test]
async fn a_backend_signed_by_a_private_ca_is_reached_over_kept_connections() {
    let ca = Authority::new();
    let (backend, handshakes) = tls_backend(&ca.issue(&[NAME], 1, 30), None).await;
    let rt = runtime(backend, trusting(&ca));
    for _ in 0..5 {
        let (status, body) = call(&rt, "GET", "").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "{\"bodyBytes\":0}")
        );
    }
    assert_eq!(handshakes.load(Ordering::SeqCst), 1, "one connection, kept");
    // An upload goes whole, its end flushed through TLS before the answer is awaited, and
    // the connection is used again after it.
    let (status, body) = call(&rt, "POST", "order=1&qty=3").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "{\"bodyBytes\":13}")
    );
    assert_eq!(call(&rt, "GET", "").await.0, StatusCode::OK);
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
    // A body that pauses between its parts (what is written before the pause must reach the
    // backend while the client is quiet).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(2);
    let body = http_body_util::StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    }));
    let req = Request::post("/orders")
        .header("host", "shop.example.com")
        .header("content-length", "10")
        .body(body)
        .unwrap();
    let pending = tokio::spawn({
        let rt = rt.clone();
        async move { rt.handle(req, CLIENT.parse::<SocketAddr>().unwrap()).await }
    });
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"first"))))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"-last"))))
        .await
        .unwrap();
    drop(tx);
    let resp = pending.await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "{\"bodyBytes\":10}");
}

/// An HTTPS backend that answers one request per connection, then closes it: with a
/// close_notify (`notify`) or by dropping the socket.
async fn closing_tls_backend(cert: &Issued, notify: bool) -> (SocketAddr, Arc<AtomicU64>) {
    serve_tls(server_config(cert, None), move |mut s| async move {
        let mut buf = [0u8; 4096];
        if s.read(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let _ = s.write_all(answer.as_bytes()).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if notify {
            let _ = s.shutdown().await;
        }
    })
    .await
}

#[tokio::test]
async fn a_kept_connection_the_backend_closed_is_not_used_again() {
    let ca = Authority::new();
    for notify in [true, false] {
        let (backend, handshakes) = closing_tls_backend(&ca.issue(&[NAME], 1, 30), notify).await;
        let rt = runtime(backend, trusting(&ca));
        for i in 0..4 {
            // A POST with a body: a request that found its connection closed is not sent
            // again by itself, so only the idle check keeps it from failing.
            let (status, body) = call(&rt, "POST", "order=1").await;
            assert_eq!(
                status,
                StatusCode::OK,
                "close_notify {notify}, request {i}: {body}"
            );
            // Let the backend close the connection the proxy kept.
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
        assert_eq!(
            handshakes.load(Ordering::SeqCst),
            4,
            "close_notify {notify}"
        );
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_for_another_name_is_refused_with_a_clear_problem() {
    let ca = Authority::new();
    let (backend, handshakes) = tls_backend(&ca.issue(&[NAME], 1, 30), None).await;
    let other = Authority::new();
    let wrong_ca = runtime(backend, trusting(&other));
    let mut wrong_name = trusting(&ca);
    wrong_name.server_name = "billing.internal".into();
    let wrong_name = runtime(backend, wrong_name);
    for rt in [wrong_ca, wrong_name] {
        let (status, body) = call(&rt, "GET", "").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let problem = json(&Bytes::from(body.clone()));
        assert_eq!(
            problem["type"],
            "https://frontdesk.dev/problems/upstream-unavailable"
        );
        assert_eq!(
            problem["detail"],
            "the backend's TLS certificate could not be verified"
        );
        assert!(
            !body.contains("127.0.0.1") && !body.contains(NAME),
            "{body}"
        );
    }
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
    // The web PKI does not know a private CA either.
    let public = BackendTls {
        ca_certificates: None,
        ..trusting(&ca)
    };
    assert_eq!(call(&runtime(backend, public), "GET", "").await.0, 502);
}

#[tokio::test]
async fn a_backend_that_wants_a_client_certificate_gets_the_proxys() {
    let ca = Authority::new();
    let clients = Authority::new();
    let (backend, handshakes) = tls_backend(&ca.issue(&[NAME], 1, 30), Some(&clients)).await;
    let without = runtime(backend, trusting(&ca));
    let (status, body) = call(&without, "GET", "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    // TLS 1.3 finishes the client's side of the handshake before the backend checks its
    // certificate: the refusal comes as the first read fails.
    assert_eq!(
        json(&Bytes::from(body))["detail"],
        "the backend's connection failed before a response"
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);

    let cert = clients.issue_client("spiffe://frontdesk/proxy", "frontdesk-proxy");
    let with = runtime(
        backend,
        BackendTls {
            client_certificate: Some(ClientCertificatePair {
                certificate_chain: cert.chain.clone(),
                private_key: Secret::new(cert.key.clone()),
            }),
            ..trusting(&ca)
        },
    );
    assert_eq!(call(&with, "GET", "").await.0, StatusCode::OK);
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn certificates_that_do_not_parse_leave_that_backend_without_endpoints_not_in_plaintext() {
    let yaml = manifest(
        "Route",
        "shop",
        "  rules:\n    - backends: [{url: 'http://127.0.0.1:9'}]\n",
    );
    let mut snap = snapshot(&yaml);
    let Action::Forward { backends } =
        &mut std::sync::Arc::make_mut(&mut snap.routes[0]).rules[0].action
    else {
        panic!("a forward");
    };
    backends[0].tls = Some(BackendTls {
        server_name: NAME.into(),
        ca_certificates: Some(
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".into(),
        ),
        client_certificate: None,
    });
    // The configuration is taken (the rest of it serves); that backend answers 503.
    let rt = Arc::new(Runtime::build(snap, Arc::new(Env::standalone())).unwrap());
    let (status, body) = call(&rt, "GET", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("no-endpoints"), "{body}");
}

/// Replaces the proxy's manifests with `yaml`, waits until it serves them, and GETs /orders.
async fn reload_and_get(p: &ProxyProcess, yaml: &str) -> Answer {
    std::fs::write(p.dir.join("r.yaml"), yaml).unwrap();
    let v = p.config_version().await;
    p.wait_version_above(v).await;
    get(&p.url("/orders")).await.unwrap()
}

/// A Route to `url` with `tls`, and the Secret `orders-ca` holding `ca` when given.
fn tls_manifests(url: &str, tls: &str, ca: Option<&Authority>) -> String {
    let route = manifest(
        "Route",
        "shop",
        &format!("  rules:\n    - backends: [{{url: '{url}', tls: {tls}}}]\n"),
    );
    route + &ca.map_or(String::new(), |ca| ca_secret("orders-ca", ca))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_trusts_the_ca_of_a_secret_it_names_and_never_falls_back_to_plaintext() {
    let ca = Authority::new();
    let (backend, handshakes) = tls_backend(&ca.issue(&[NAME], 1, 30), None).await;
    let tls =
        format!("{{hostname: {NAME}, caCertificateRefs: [{{kind: Secret, name: orders-ca}}]}}");
    // An https:// url: TLS whatever the port, here verified against the Secret's CA.
    let files = tls_manifests(&format!("https://{backend}"), &tls, Some(&ca));
    let p = ProxyProcess::with_files(&[("r.yaml", &files)], &[]).await;
    let (status, _, body) = get(&p.url("/orders")).await.unwrap();
    assert_eq!(
        (status, json(&body)["bodyBytes"].as_u64()),
        (StatusCode::OK, Some(0))
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);

    // The Secret goes away: the backend is unreachable (503), not reached in plaintext.
    let (status, _, body) =
        reload_and_get(&p, &tls_manifests(&format!("http://{backend}"), &tls, None)).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let route = &p.status().await;
    assert!(
        route
            .to_string()
            .contains("Secret test/orders-ca not found"),
        "{route}"
    );
}

/// An HTTPS authorization service that allows every request and names its user.
async fn tls_authorizer(cert: &Issued) -> (SocketAddr, Arc<AtomicU64>) {
    serve_tls(server_config(cert, None), |mut s| async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                return;
            }
            let answer = "HTTP/1.1 200 OK\r\nx-user-id: alice\r\ncontent-length: 0\r\n\r\n";
            if s.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_authorization_service_over_tls_is_verified_against_the_named_ca() {
    let ca = Authority::new();
    let (authorizer, handshakes) = tls_authorizer(&ca.issue(&["localhost"], 1, 30)).await;
    let backend = frontdesk_demo::spawn("orders").await;
    let files = |secret_ca: &Authority| {
        manifest(
            "Policy",
            "authz",
            &format!(
                "  authentication:\n    external: {{url: 'https://localhost:{}/check', copyHeaders: [x-user-id], tls: {{caCertificateRefs: [{{kind: Secret, name: authz-ca}}]}}}}",
                authorizer.port()
            ),
        ) + &manifest(
            "Route",
            "shop",
            &format!(
                "  policies: [authz]\n  rules:\n    - backends: [{{url: 'http://{backend}'}}]\n"
            ),
        ) + &ca_secret("authz-ca", secret_ca)
    };
    let p = ProxyProcess::with_files(&[("r.yaml", &files(&ca))], &[]).await;
    let (status, _, body) = get(&p.url("/orders")).await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "{}\n{}",
        String::from_utf8_lossy(&body),
        p.stderr()
    );
    let echoed = json(&body);
    assert_eq!(echoed["headers"]["x-user-id"], "alice", "{echoed}");
    assert!(handshakes.load(Ordering::SeqCst) >= 1);

    // Trusting another CA: the service cannot be verified, so nothing is let through.
    let (status, _, body) = reload_and_get(&p, &files(&Authority::new())).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(String::from_utf8_lossy(&body).contains("auth-unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_fetched_over_tls_is_verified_against_the_named_ca() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
    const RSA1: &[u8] = include_bytes!("keys/rsa1.pem");
    let key = EncodingKey::from_rsa_pem(RSA1).unwrap();
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap()).unwrap();
    jwk["kid"] = "k1".into();
    let jwks: &'static str = Box::leak(
        serde_json::json!({"keys": [jwk]})
            .to_string()
            .into_boxed_str(),
    );
    let ca = Authority::new();
    let (keys_at, _) = serve_tls(
        server_config(&ca.issue(&["localhost"], 1, 30), None),
        move |mut s| async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{jwks}",
                    jwks.len()
                );
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        },
    )
    .await;
    let backend = frontdesk_demo::spawn("orders").await;
    let files = |trusted: &Authority| {
        manifest(
            "Policy",
            "jwt",
            &format!(
                "  authentication:\n    jwt: {{jwksUri: 'https://localhost:{}/jwks.json', algorithms: [RS256], jwksTls: {{caCertificateRefs: [{{kind: Secret, name: keys-ca}}]}}}}",
                keys_at.port()
            ),
        ) + &manifest(
            "Route",
            "shop",
            &format!(
                "  policies: [jwt]\n  rules:\n    - backends: [{{url: 'http://{backend}'}}]\n"
            ),
        ) + &ca_secret("keys-ca", trusted)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(
        &header,
        &serde_json::json!({"sub": "user-7", "exp": now + 600}),
        &key,
    )
    .unwrap();
    let bearer = format!("Bearer {token}");
    let c = client();
    let p = ProxyProcess::with_files(&[("r.yaml", &files(&ca))], &[]).await;
    let a = get_with(&c, &p.url("/orders"), &[("authorization", &bearer)]).await;
    assert_eq!(a.0, StatusCode::OK, "{}", String::from_utf8_lossy(&a.2));

    // Trusting another CA: no key set can be had, so no token is accepted.
    std::fs::write(p.dir.join("r.yaml"), files(&Authority::new())).unwrap();
    let v = p.config_version().await;
    p.wait_version_above(v).await;
    let a = get_with(&c, &p.url("/orders"), &[("authorization", &bearer)]).await;
    assert_eq!(
        a.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&a.2)
    );
    assert!(String::from_utf8_lossy(&a.2).contains("auth-unavailable"));
}
