//! The end-to-end scenarios: what a platform team does after installing frontdesk, checked from
//! outside (HTTP through the gateways, the objects' status). The same code runs against local
//! processes in `make test` and against the chart in a kind cluster in `make e2e-kind`; see
//! `frontdesk_e2e::target`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use frontdesk_e2e::target::Target;
use frontdesk_e2e::{client, eventually};
use http::{HeaderMap, Method, StatusCode};

/// How long a change may take to show: local processes reload in milliseconds; a cluster
/// schedules pods and watches through the API server.
fn patience(t: &Target) -> Duration {
    match t.name() {
        "kind" => Duration::from_secs(180),
        _ => Duration::from_secs(30),
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(method: Method, url: &str, headers: &[(&str, &str)]) -> Option<Answer> {
    let (status, headers, body) = frontdesk_e2e::send(&client(), method, url, headers)
        .await
        .ok()?;
    Some(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn get(url: &str) -> Option<Answer> {
    send(Method::GET, url, &[]).await
}

/// Waits until `url` answers `status`, and returns that answer.
async fn until(t: &Target, url: &str, headers: &[(&str, &str)], status: u16) -> Answer {
    eventually(
        patience(t),
        &format!("{url} to answer {status}"),
        || async {
            send(Method::GET, url, headers)
                .await
                .filter(|a| a.status.as_u16() == status)
        },
    )
    .await
}

/// Waits until `url` answers 200 with exactly `body`.
async fn until_body(t: &Target, url: &str, body: &str) {
    eventually(
        patience(t),
        &format!("{url} to answer {body:?}"),
        || async {
            get(url)
                .await
                .filter(|a| a.status == StatusCode::OK && a.body == body)
        },
    )
    .await;
}

/// Waits until the object's condition has `status`, and returns (reason, message).
async fn until_condition(
    t: &Target,
    kind: &str,
    name: &str,
    condition: &str,
    status: &str,
) -> (String, String) {
    eventually(
        patience(t),
        &format!("{kind} {name}: {condition}={status}"),
        || async {
            let conditions = t.conditions(kind, name).await?;
            let (s, reason, message) = conditions.get(condition)?.clone();
            (s == status).then_some((reason, message))
        },
    )
    .await
}

/// `url` is on a gateway that must not serve it: 404, or no answer at all.
/// The gateway answers, and answers that no route matches: a refused connection or a timeout
/// would prove nothing.
async fn assert_not_served(url: &str, why: &str) {
    let a = get(url)
        .await
        .unwrap_or_else(|| panic!("{why}: {url} did not answer at all"));
    assert_eq!(a.status, 404, "{why}: {}", a.body);
    assert_eq!(
        problem(&a)["type"],
        "https://frontdesk.dev/problems/no-route",
        "{why}"
    );
}

fn problem(a: &Answer) -> serde_json::Value {
    assert_eq!(
        a.headers["content-type"], "application/problem+json",
        "errors are RFC 9457 problems: {}",
        a.body
    );
    serde_json::from_str(&a.body).unwrap()
}

/// The first Route the chart's notes suggest (examples/kubernetes/hello-route.yaml).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_route_of_the_install_notes_serves() {
    let t = Target::start("hello");
    t.apply("hello", &t.example("kubernetes/hello-route.yaml"));
    until_body(
        &t,
        &format!("{}/hello", t.gateway("default")),
        "hello from frontdesk\n",
    )
    .await;
    until_condition(&t, "Route", "hello", "Accepted", "True").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_reach_service_backends_on_every_replica() {
    let t = Target::start("routes");
    t.apply_backends();
    t.apply("shop", &t.manifest("shop.yaml"));

    for replica in t.replicas("default") {
        let a = until(&t, &format!("{replica}/api/products/1"), &[], 200).await;
        assert!(a.body.contains("Espresso machine"), "{}", a.body);
        assert_eq!(a.headers["x-backend"], "products");
        assert_eq!(a.headers["x-served-by"], "frontdesk");
    }
    let gw = t.gateway("default");
    let a = get(&format!("{gw}/api/v2/products/2")).await.unwrap();
    assert!(
        a.body.contains("Burr grinder"),
        "template rewrite: {}",
        a.body
    );
    let a = get(&format!("{gw}/api/reviews?productId=1")).await.unwrap();
    assert_eq!(a.headers["x-backend"], "reviews");
    let a = get(&format!("{gw}/nope")).await.unwrap();
    assert_eq!(a.status, 404);
    assert_eq!(problem(&a)["status"], 404);

    until_condition(&t, "Route", "shop", "Accepted", "True").await;
    until_condition(&t, "Route", "shop", "ResolvedRefs", "True").await;
    if t.name() == "kind" {
        // Written by the leader once every proxy of the gateway, whichever controller replica
        // it streams from, acknowledged the snapshot (progress ConfigMaps, the Lease).
        let (_, message) = until_condition(&t, "Route", "shop", "Programmed", "True").await;
        assert!(message.contains("proxies of gateway default"), "{message}");
    }
    // Another gateway does not serve it.
    let other = format!("{}/api/products/1", t.gateway("partner"));
    assert_not_served(&other, "the partner gateway serves no shop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_guard_the_partner_gateway() {
    let t = Target::start("policies");
    t.apply_backends();
    t.apply("partner", &t.manifest("partner.yaml"));
    let url = format!("{}/partner/products", t.gateway("partner"));

    let a = until(&t, &url, &[("x-api-key", "e2e-key-acme")], 200).await;
    assert!(a.body.contains("Espresso machine"), "{}", a.body);

    let a = send(Method::GET, &url, &[]).await.unwrap();
    assert_eq!(a.status, 401);
    assert_eq!(problem(&a)["status"], 401);
    assert!(a.headers.contains_key("www-authenticate"));
    let a = send(Method::GET, &url, &[("x-api-key", "e2e-key-wrong")])
        .await
        .unwrap();
    assert_eq!(a.status, 401);
    assert!(!a.body.contains("e2e-key-wrong"), "the key is never echoed");
    let a = send(Method::POST, &url, &[("x-api-key", "e2e-key-acme")])
        .await
        .unwrap();
    assert_eq!(a.status, 403, "GET-only authorization");

    until_condition(&t, "Policy", "partner-keys", "Accepted", "True").await;
    until_condition(&t, "Route", "partner", "ResolvedRefs", "True").await;
    let other = format!("{}/partner/products", t.gateway("default"));
    assert_not_served(&other, "only the partner gateway serves it").await;
}

/// An HS256 token for the storefront Policy of e2e/scenarios/gateway-api.yaml.
fn storefront_token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = serde_json::json!({
        "iss": "https://auth.e2e.frontdesk.test/", "sub": "e2e-shopper", "exp": exp,
    });
    let key =
        jsonwebtoken::EncodingKey::from_secret(b"e2e-hmac-secret-for-the-storefront-0123456789");
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

/// A portable HTTPRoute and a frontdesk Route on one gateway; a frontdesk Policy attached to
/// the HTTPRoute by targetRefs guards it alone; each object's status says what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_httproute_and_a_route_share_a_gateway_and_a_target_ref_policy_guards_the_httproute() {
    let t = Target::start("gateway-api");
    t.apply_backends();
    t.apply("gateway-api", &t.manifest("gateway-api.yaml"));
    let gw = t.gateway("default");
    let products = format!("{gw}/storefront/products/1");
    let bearer = format!("Bearer {}", storefront_token());

    // The HTTPRoute serves, with its filters, only with a token.
    let a = until(&t, &products, &[("authorization", &bearer)], 200).await;
    assert!(a.body.contains("Espresso machine"), "{}", a.body);
    assert_eq!(a.headers["x-route-kind"], "HTTPRoute");
    let a = until(&t, &products, &[], 401).await;
    assert_eq!(
        problem(&a)["type"],
        "https://frontdesk.dev/problems/unauthorized"
    );
    let forged = format!("Bearer {}x", storefront_token());
    let a = send(Method::GET, &products, &[("authorization", &forged)])
        .await
        .unwrap();
    assert_eq!(a.status, 401, "a token whose signature does not verify");

    // A backendRef to a Service that does not exist: 500 for its share, as the Gateway API
    // says, and only behind the Policy all the same.
    let gone = format!("{gw}/storefront/gone");
    let a = until(&t, &gone, &[("authorization", &bearer)], 500).await;
    assert_eq!(
        problem(&a)["type"],
        "https://frontdesk.dev/problems/invalid-backend"
    );
    assert!(
        !a.body.contains("no-such-service"),
        "internal names stay inside: {}",
        a.body
    );
    assert_eq!(send(Method::GET, &gone, &[]).await.unwrap().status, 401);

    // The frontdesk Route on the same gateway is not guarded by the HTTPRoute's Policy.
    let a = until(
        &t,
        &format!("{gw}/storefront/reviews?productId=1"),
        &[],
        200,
    )
    .await;
    assert_eq!(a.headers["x-backend"], "reviews");

    until_condition(&t, "HTTPRoute", "storefront", "Accepted", "True").await;
    let (reason, message) =
        until_condition(&t, "HTTPRoute", "storefront", "ResolvedRefs", "False").await;
    assert_eq!(reason, "BackendNotFound");
    assert!(message.contains("no-such-service"), "{message}");
    until_condition(&t, "Policy", "storefront-jwt", "Accepted", "True").await;
    until_condition(&t, "Route", "storefront-legacy", "Accepted", "True").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_compose_backends() {
    let t = Target::start("aggregate");
    t.apply_backends();
    t.apply("aggregate", &t.manifest("aggregate.yaml"));
    let url = format!("{}/api/product-details/1", t.gateway("default"));
    let a = until(&t, &url, &[], 200).await;
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["product"]["name"], "Espresso machine", "{v}");
    assert_eq!(v["reviews"]["average"], 4.5, "{v}");
    assert_eq!(v["stock"], 7, "{v}");
    until_condition(&t, "Aggregate", "product-details", "Accepted", "True").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_objects_are_rejected_alone_and_the_rest_serves() {
    let t = Target::start("broken");
    t.apply("broken", &t.manifest("broken.yaml"));
    let gw = t.gateway("default");
    until_body(&t, &format!("{gw}/healthy"), "healthy").await;

    let (reason, message) = until_condition(&t, "Route", "broken", "Accepted", "False").await;
    assert_eq!(reason, "Invalid");
    assert!(
        message.contains("matches[0].path.value") && message.contains("regular expression"),
        "names the field and the problem: {message}"
    );
    let (reason, message) = until_condition(&t, "Route", "orphan", "ResolvedRefs", "False").await;
    assert_eq!(reason, "BackendNotFound");
    assert!(message.contains("no-such-service"), "{message}");
    until_condition(&t, "Route", "healthy", "Accepted", "True").await;

    // Without the label that skips it, the admission webhook refuses the broken Route at
    // apply time, with the message its status carries.
    let unlabelled = t
        .manifest("broken.yaml")
        .replace("name: broken, namespace", "name: refused, namespace")
        .split("---")
        .next()
        .unwrap()
        .replace(", labels: {frontdesk.dev/admission: skip}", "");
    if let Some(refusal) = t.refused(&unlabelled) {
        assert!(
            refusal.contains("denied the request")
                && refusal.contains("matches[0].path.value")
                && refusal.contains("regular expression"),
            "{refusal}"
        );
    }

    let a = until(&t, &format!("{gw}/orphan"), &[], 503).await;
    assert_eq!(problem(&a)["status"], 503);
    let a = get(&format!("{gw}/broken/x")).await.unwrap();
    assert_eq!(a.status, 404, "the rejected Route serves nothing");

    // A bad edit of a serving Route is reported and takes nothing down: the generation
    // accepted before keeps serving until the Route is fixed.
    let manifest = t.manifest("broken.yaml");
    let bad_edit = manifest.replace("value: /healthy}", "value: healthy}");
    assert_ne!(bad_edit, manifest);
    t.apply("broken", &bad_edit);
    let (_, message) = until_condition(&t, "Route", "healthy", "Accepted", "False").await;
    assert!(message.contains("must start with '/'"), "{message}");
    if t.name() == "kind" {
        let (_, message) = until_condition(&t, "Route", "healthy", "Programmed", "False").await;
        assert!(message.contains("keep serving generation 1"), "{message}");
    }
    for _ in 0..10 {
        let a = get(&format!("{gw}/healthy")).await.unwrap();
        assert_eq!((a.status.as_u16(), a.body.as_str()), (200, "healthy"));
    }
    t.apply("broken", &manifest);
    until_condition(&t, "Route", "healthy", "Accepted", "True").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_and_deletions_reach_every_replica() {
    let t = Target::start("changes");
    t.apply_backends();
    let v1 = t.manifest("shop.yaml");
    t.apply("shop", &v1);
    for replica in t.replicas("default") {
        until_body(&t, &format!("{replica}/version"), "v1").await;
    }
    t.apply("shop", &v1.replace(r#"body: "v1""#, r#"body: "v2""#));
    for replica in t.replicas("default") {
        until_body(&t, &format!("{replica}/version"), "v2").await;
    }
    t.delete("shop");
    for replica in t.replicas("default") {
        until(&t, &format!("{replica}/version"), &[], 404).await;
    }
}

/// An upgrade rotates the channel's credentials; proxies keep serving throughout, reconnect to
/// restarted controllers with the rotated files, and take changes as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_rotate_without_downtime() {
    let mut t = Target::start("rotation");
    let v1 = t.manifest("shop.yaml");
    t.apply("shop", &v1);
    let replicas = t.replicas("default");
    for replica in &replicas {
        until_body(&t, &format!("{replica}/version"), "v1").await;
    }
    // One replica keeps the files from before the rotation: pods with old and new files must
    // accept each other (both CAs trusted), or it never sees v2.
    let held = t.hold_back_credentials();
    for replica in &replicas {
        until_body(&t, &format!("{replica}/version"), "v1").await;
    }

    // Traffic on every replica for the whole rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        let replicas = replicas.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for replica in &replicas {
                    match get(&format!("{replica}/version")).await {
                        Some(a) if a.status == 200 => served.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    t.rotate_credentials();
    t.settle_rotation().await;
    t.restart_controller();
    // Only a proxy that reconnected with credentials the new controller accepts sees v2.
    t.apply("shop", &v1.replace(r#"body: "v1""#, r#"body: "v2""#));
    for replica in &replicas {
        until_body(&t, &format!("{replica}/version"), "v2").await;
    }
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert!(
        served > 20,
        "traffic ran during the rotation ({served} served)"
    );
    assert_eq!(
        failed, 0,
        "no request failed during the rotation ({served} served)"
    );
    let log = t.controller_log();
    assert!(
        !log.contains("TLS handshake failed"),
        "a proxy was refused after the rotation:\n{log}"
    );
    // The replicas that took v2 reconnected, with the files they had just reloaded; the one
    // held back, with the files from before.
    for (proxy, log) in t.proxy_logs("default") {
        let reloaded = log.contains("TLS credentials changed on disk");
        if held.as_deref() == Some(proxy.as_str()) {
            assert!(!reloaded, "{proxy} kept its old files:\n{log}");
        } else {
            assert!(
                reloaded,
                "{proxy} reconnected with the rotated files:\n{log}"
            );
        }
    }
}

/// HTTPS from a Secret through a Gateway listener, as a user sets it up: the chart's `default`
/// Gateway has an HTTPS listener for `*.e2e.frontdesk.test` (e2e/kind/values.yaml) whose
/// certificate Secret this writes, and a Route through it answers over TLS, chosen by SNI, with
/// HTTP/2 or HTTP/1.1 by ALPN; the listener's status says its certificate resolved. Every run
/// writes a new certificate, so the run after the upgrade rotates it under a live listener.
/// Locally the same path (Gateway, Secret, listener, Route) is covered by the proxy's TLS tests
/// against real processes; this is its check on a cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the kind install's HTTPS listener: make e2e-kind runs it (--include-ignored)"]
async fn https_through_a_gateway_listener_with_a_certificate_secret() {
    let t = Target::start("https");
    let (url, secret_namespace) = t
        .https_listener()
        .expect("make e2e-kind sets FRONTDESK_E2E_HTTPS_URL");
    let addr = url.trim_start_matches("https://").to_string();
    let host = "secure.e2e.frontdesk.test";
    let (ca, cert, key) = tls::certificate_for("*.e2e.frontdesk.test");
    let indent = |pem: &str| pem.trim_end().replace('\n', "\n    ");
    t.apply(
        "certificate",
        &format!(
            "apiVersion: v1\nkind: Secret\n\
             metadata: {{name: e2e-https-tls, namespace: {secret_namespace}}}\n\
             type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n    {}\n  tls.key: |\n    {}\n",
            indent(&cert),
            indent(&key)
        ),
    );
    t.apply_backends();
    t.apply("secure", &t.manifest("secure.yaml"));
    until_condition(&t, "Route", "secure", "Accepted", "True").await;

    // The listener's status first: its certificate resolved, and every proxy acknowledged the
    // snapshot that carries it (the Secret is deleted at the end, so each run starts from
    // InvalidCertificateRef and this waits for this run's certificate).
    eventually(
        patience(&t),
        "Gateway default: listener https ResolvedRefs=True and Programmed=True",
        || async {
            let gateway = t.release_gateway("default")?;
            let listener = gateway["status"]["listeners"]
                .as_array()?
                .iter()
                .find(|l| l["name"] == "https")?
                .clone();
            let is_true = |kind: &str| {
                listener["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
            };
            (is_true("ResolvedRefs") && is_true("Programmed")).then_some(())
        },
    )
    .await;

    // Several connections per protocol, so that every replica behind the Service answers.
    let path = "/secure/products/1";
    for alpn in [&b"http/1.1"[..], b"h2"].into_iter().cycle().take(12) {
        let (negotiated, status, body) = eventually(
            patience(&t),
            &format!("https://{host}{path} over {addr} to answer 200 with this run's certificate"),
            || async {
                tls::get(&addr, host, &ca, alpn, path)
                    .await
                    .ok()
                    .filter(|(_, status, _)| *status == 200)
            },
        )
        .await;
        assert_eq!(negotiated.as_bytes(), alpn);
        assert_eq!(status, 200);
        assert!(body.contains("Espresso machine"), "{body}");
    }
    t.delete("certificate");
}

/// A TLS client of the scenarios: certificates, and one request over TLS.
mod tls {
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    /// A new CA and a certificate for `name` signed by it: (CA PEM, certificate PEM, key PEM).
    pub fn certificate_for(name: &str) -> (String, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "frontdesk e2e HTTPS CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        (ca.pem(), cert.pem(), key.serialize_pem())
    }

    /// GET `path` from `addr` over TLS with SNI and Host `host`, trusting only `ca`, offering
    /// the one ALPN protocol `alpn`: (the negotiated protocol, status, body).
    pub async fn get(
        addr: &str,
        host: &str,
        ca: &str,
        alpn: &[u8],
        path: &str,
    ) -> Result<(String, u16, String), String> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let name =
            rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            let negotiated = tls
                .get_ref()
                .1
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            let io = TokioIo::new(tls);
            let response = if negotiated == "h2" {
                let (mut sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                // HTTP/2 carries the host in :authority, never in a Host header.
                let request = http::Request::get(format!("https://{host}{path}"))
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| e.to_string())?;
                sender.send_request(request).await
            } else {
                let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                // As browsers send it: the path as the target, the host in Host.
                let request = http::Request::get(path)
                    .header(http::header::HOST, host)
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| e.to_string())?;
                sender.send_request(request).await
            }
            .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((
                negotiated,
                status,
                String::from_utf8_lossy(&body).into_owned(),
            ))
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), exchange)
            .await
            .map_err(|_| "timed out".to_string())?
    }
}
