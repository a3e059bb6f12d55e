//! A Gateway written next to the Routes opens its listeners: plain HTTP on one port, HTTPS
//! with a certificate from a `kubernetes.io/tls` Secret on another, and `--listen` no more.
//! Tried from outside with real TLS handshakes: the certificate served, a rotation that new
//! handshakes see while an open connection goes on, and a bad certificate refused while the
//! listener keeps its good one.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::time::{Duration, Instant};

use frontdesk_demo::certs::{Authority, Issued};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

use support::*;

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

fn secret(Issued { chain, key }: &Issued) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: site-tls, namespace: test}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(chain),
        indent(key)
    )
}

/// One request on `tls`, answered in full; the status line.
async fn ask(tls: &mut TlsStream<tokio::net::TcpStream>) -> String {
    ask_for(tls, "/status/200").await.0
}

/// A GET of `path` on `tls`, answered in full: the status line and the body.
async fn ask_for(tls: &mut TlsStream<tokio::net::TcpStream>, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    read_answer(tls).await.expect("an answer")
}

/// Reads one answer framed by its Content-Length: the status line and the body, or why the
/// connection ended before it (a TLS alert, a close).
async fn read_answer(
    tls: &mut TlsStream<tokio::net::TcpStream>,
) -> Result<(String, String), String> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut chunk))
            .await
            .expect("an answer or a refusal in time")
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed without an answer".into());
        }
        got.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + length {
                let status = text.lines().next().unwrap().to_string();
                return Ok((status, text[end + 4..].to_string()));
            }
        }
    }
}

/// A TLS connection to `port` for api.example.com, and the leaf certificate it was shown.
async fn connect(ca: &Authority, port: u16) -> (TlsStream<tokio::net::TcpStream>, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(ca.client(&[b"http/1.1"]))
        .connect(ServerName::try_from("api.example.com").unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (tls, leaf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_opens_its_listeners_and_its_certificates_rotate() {
    let demo = frontdesk_demo::spawn("demo").await;
    let (http, https) = (free_port().port(), free_port().port());
    let ca = Authority::new();
    let first = ca.issue(&["api.example.com"], 1, 30);
    let gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: default, namespace: test}}
spec:
  gatewayClassName: frontdesk
  listeners:
    - {{name: http, port: {http}, protocol: HTTP}}
    - name: https
      port: {https}
      protocol: HTTPS
      tls: {{mode: Terminate, certificateRefs: [{{name: site-tls}}]}}
"
    );
    let routes = route(
        "site",
        &format!("  rules:\n    - backends: [{{url: 'http://{demo}'}}]"),
    );
    let p = ProxyProcess::with_files(
        &[
            ("gateway.yaml", &gateway),
            ("secret.yaml", &secret(&first)),
            ("routes.yaml", &routes),
        ],
        &[],
    )
    .await;

    // HTTP on its port; HTTPS on the other, with the Secret's certificate.
    let deadline = Instant::now() + Duration::from_secs(10);
    let plain = loop {
        match get(&format!("http://127.0.0.1:{http}/status/200")).await {
            Ok(a) => break a,
            Err(e) => assert!(Instant::now() < deadline, "{e}\n{}", p.stderr()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(plain.0, 200);
    let (mut open, shown) = connect(&ca, https).await;
    assert_eq!(shown, first.leaf());
    assert_eq!(ask(&mut open).await, "HTTP/1.1 200 OK");
    // A large answer arrives whole on a kept-alive connection (TLS records are flushed), and
    // the connection serves the next request.
    assert_eq!(
        ask_for(&mut open, "/bytes/600000").await.0,
        "HTTP/1.1 200 OK"
    );
    // The backend is told the scheme the client used.
    let (_, echo) = ask_for(&mut open, "/echo").await;
    let echo: serde_json::Value = serde_json::from_str(&echo).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https", "{echo}");
    let plain_echo = get(&format!("http://127.0.0.1:{http}/echo")).await.unwrap();
    assert_eq!(json(&plain_echo.2)["headers"]["x-forwarded-proto"], "http");
    assert_eq!(ask(&mut open).await, "HTTP/1.1 200 OK");
    // --listen is not served once Gateways say where traffic comes in.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(p.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "--listen still accepts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Rotation: new handshakes get the new certificate; the open connection goes on.
    let version = p.config_version().await;
    let second = ca.issue(&["api.example.com"], 1, 30);
    p.write("secret.yaml", &secret(&second));
    p.wait_version_above(version).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut fresh, shown) = connect(&ca, https).await;
        if shown == second.leaf() {
            assert_eq!(ask(&mut fresh).await, "HTTP/1.1 200 OK");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ask(&mut open).await, "HTTP/1.1 200 OK");

    // A port that changes protocol keeps its socket: the HTTP port turns HTTPS at once.
    let version = p.config_version().await;
    p.write(
        "gateway.yaml",
        &gateway.replace(
            &format!("{{name: http, port: {http}, protocol: HTTP}}"),
            &format!(
                "{{name: http, port: {http}, protocol: HTTPS, tls: {{certificateRefs: [{{name: site-tls}}]}}}}"
            ),
        ),
    );
    p.wait_version_above(version).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", http)).await;
        let tcp = tcp.expect("the port closed while changing protocol");
        let tls = tokio_rustls::TlsConnector::from(ca.client(&[b"http/1.1"]))
            .connect(ServerName::try_from("api.example.com").unwrap(), tcp)
            .await;
        if let Ok(mut tls) = tls {
            assert_eq!(ask(&mut tls).await, "HTTP/1.1 200 OK");
            break;
        }
        assert!(Instant::now() < deadline, "the port did not turn HTTPS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The Secret gone: the port keeps serving the certificate it has, never plain HTTP.
    let version = p.config_version().await;
    std::fs::remove_file(p.dir.join("secret.yaml")).unwrap();
    p.wait_version_above(version).await;
    let (mut fresh, shown) = connect(&ca, https).await;
    assert_eq!(shown, second.leaf());
    assert_eq!(ask(&mut fresh).await, "HTTP/1.1 200 OK");

    // An expired certificate is refused, with the reason in the Gateway's status; the listener
    // keeps serving the good one.
    p.write(
        "secret.yaml",
        &secret(&ca.issue(&["api.example.com"], 40, 30)),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = p.status().await.to_string();
        if status.contains("Secret test/site-tls: the certificate is not valid now") {
            break;
        }
        assert!(Instant::now() < deadline, "no refusal in /status: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut fresh, shown) = connect(&ca, https).await;
    assert_eq!(shown, second.leaf());
    assert_eq!(ask(&mut fresh).await, "HTTP/1.1 200 OK");
}

/// A request on a TLS connection made with `config`: the status line and body, or why the
/// handshake or the connection failed before an answer (a refused client certificate: in
/// TLS 1.3 the server's alert arrives on the first read, e.g. `received fatal alert:
/// CertificateRequired`).
async fn try_ask(
    config: std::sync::Arc<rustls::ClientConfig>,
    port: u16,
    extra: &str,
) -> Result<(String, String), String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("api.example.com").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET /echo HTTP/1.1\r\nHost: api.example.com\r\n{extra}\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    read_answer(&mut tls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_validates_clients_admits_only_certificates_its_cas_issued() {
    let demo = frontdesk_demo::spawn("demo").await;
    let (strict, fallback) = (free_port().port(), free_port().port());
    let ca = Authority::new();
    let partners = Authority::new();
    let stranger = Authority::new();
    let site = ca.issue(&["api.example.com"], 1, 30);
    let gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: default, namespace: test}}
spec:
  gatewayClassName: frontdesk
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{{group: '', kind: ConfigMap, name: partners-ca}}]
      perPort:
        - port: {fallback}
          tls:
            validation:
              mode: AllowInsecureFallback
              caCertificateRefs: [{{group: '', kind: ConfigMap, name: partners-ca}}]
  listeners:
    - name: strict
      port: {strict}
      protocol: HTTPS
      tls: {{certificateRefs: [{{name: site-tls}}]}}
    - name: fallback
      port: {fallback}
      protocol: HTTPS
      tls: {{certificateRefs: [{{name: site-tls}}]}}
"
    );
    let config_map = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: partners-ca, namespace: test}}\ndata:\n  ca.crt: |\n{}",
        indent(partners.pem())
    );
    // The certificate authenticates; only one partner is authorized, and the backend is told
    // who called in a header the client cannot forge.
    let policy = "apiVersion: frontdesk.dev/v1alpha1\nkind: Policy\n\
                  metadata: {name: partners, namespace: test}\nspec:\n  \
                  authentication:\n    clientCertificate: {forwardHeader: X-Client-Identity}\n  \
                  authorization:\n    rules: [{consumers: ['spiffe://partners/acme']}]\n";
    let routes = route(
        "site",
        &format!("  policies: [partners]\n  rules:\n    - backends: [{{url: 'http://{demo}'}}]"),
    );
    let p = ProxyProcess::with_files(
        &[
            ("gateway.yaml", &gateway),
            ("secret.yaml", &secret(&site)),
            ("ca.yaml", &config_map),
            ("policy.yaml", policy),
            ("routes.yaml", &routes),
        ],
        &[],
    )
    .await;
    let acme = partners.issue_client("spiffe://partners/acme", "acme");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        if let Ok(answer) = try_ask(
            ca.client_with(&[b"http/1.1"], &acme),
            strict,
            "X-Client-Identity: spiffe://partners/admin\r\n",
        )
        .await
        {
            break answer;
        }
        assert!(Instant::now() < deadline, "no answer\n{}", p.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        echo["headers"]["x-client-identity"], "spiffe://partners/acme",
        "the verified identity, not the client's own header: {echo}"
    );

    // The server certificate's CA trusted, but no client certificate, or one another CA
    // issued: the handshake is refused with the TLS alert that says why, nothing is answered.
    let refused = |got: Result<(String, String), String>| got.expect_err("refused");
    let required = "received fatal alert: CertificateRequired";
    // The stranger's CA has the partners' CA's name (every demo authority has the same), so its
    // certificate reads as the partners' CA's with a signature that does not verify: a forgery.
    let not_verified = "received fatal alert: DecryptError";
    assert_eq!(
        refused(try_ask(ca.client(&[b"http/1.1"]), strict, "").await),
        required
    );
    let forged = stranger.issue_client("spiffe://partners/acme", "acme");
    assert_eq!(
        refused(try_ask(ca.client_with(&[b"http/1.1"], &forged), strict, "").await),
        not_verified
    );
    // Over HTTP/2 too (ALPN h2): the certificate is verified before any frame.
    assert_eq!(
        refused(try_ask(ca.client(&[b"h2"]), strict, "").await),
        required
    );

    // A valid certificate of a partner the policy does not authorize: 403.
    let other = partners.issue_client("spiffe://partners/other", "other");
    let (status, _) = try_ask(ca.client_with(&[b"http/1.1"], &other), strict, "")
        .await
        .expect("an answer");
    assert_eq!(status, "HTTP/1.1 403 Forbidden");

    // AllowInsecureFallback: a client without a certificate is served, without an identity,
    // so this policy answers 401; a certificate of another CA is still refused.
    let (status, body) = try_ask(ca.client(&[b"http/1.1"]), fallback, "")
        .await
        .expect("served without a certificate");
    assert_eq!(status, "HTTP/1.1 401 Unauthorized", "{body}");
    assert_eq!(
        refused(try_ask(ca.client_with(&[b"http/1.1"], &forged), fallback, "").await),
        not_verified
    );
    let (status, _) = try_ask(ca.client_with(&[b"http/1.1"], &acme), fallback, "")
        .await
        .expect("an answer");
    assert_eq!(status, "HTTP/1.1 200 OK");

    // Another CA in the ConfigMap: new handshakes verify by it at once.
    let version = p.config_version().await;
    p.write(
        "ca.yaml",
        &config_map.replace(&indent(partners.pem()), &indent(stranger.pem())),
    );
    p.wait_version_above(version).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = try_ask(ca.client_with(&[b"http/1.1"], &forged), strict, "").await;
        if got.as_ref().is_ok_and(|(s, _)| s == "HTTP/1.1 200 OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new CA was not used: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        refused(try_ask(ca.client_with(&[b"http/1.1"], &acme), strict, "").await),
        not_verified,
        "the old CA no longer verifies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_redirects_its_http_ports_to_https_and_its_https_answers_carry_hsts() {
    let demo = frontdesk_demo::spawn("demo").await;
    let (http, https) = (free_port().port(), free_port().port());
    let ca = Authority::new();
    let site = ca.issue(&["api.example.com"], 1, 30);
    let gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: default
  namespace: test
  annotations:
    frontdesk.dev/redirect-to-https: 'true'
    frontdesk.dev/hsts: 'max-age=31536000; includeSubDomains'
spec:
  gatewayClassName: frontdesk
  listeners:
    - {{name: http, port: {http}, protocol: HTTP}}
    - name: https
      port: {https}
      protocol: HTTPS
      tls: {{certificateRefs: [{{name: site-tls}}]}}
"
    );
    let routes = route(
        "site",
        &format!(
            "  hosts: [api.example.com]\n  rules:\n    - backends: [{{url: 'http://{demo}'}}]"
        ),
    );
    let p = ProxyProcess::with_files(
        &[
            ("gateway.yaml", &gateway),
            ("secret.yaml", &secret(&site)),
            ("routes.yaml", &routes),
        ],
        // This test's client counts as a load balancer, to show its X-Forwarded-Proto.
        &["--trusted-proxies", "127.0.0.1/32"],
    )
    .await;
    let plain = |path: &str| {
        let url = format!("http://127.0.0.1:{http}{path}");
        async move {
            send(
                &client(),
                http::Request::get(url)
                    .header("host", "API.example.com")
                    .body(body(bytes::Bytes::new()))
                    .unwrap(),
            )
            .await
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let redirected = loop {
        match plain("/a/../status/200?x=1").await {
            Ok(a) => break a,
            Err(e) => assert!(Instant::now() < deadline, "{e}\n{}", p.stderr()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(redirected.0, 308);
    assert_eq!(
        redirected.1["location"],
        format!("https://api.example.com:{https}/status/200?x=1").as_str()
    );
    assert!(redirected.1.contains_key("x-request-id"));
    assert!(
        !redirected.1.contains_key("strict-transport-security"),
        "HSTS is for HTTPS answers only"
    );
    // A trusted load balancer that terminated TLS itself says so: no redirect (it would loop).
    let behind = send(
        &client(),
        http::Request::get(format!("http://127.0.0.1:{http}/status/200"))
            .header("host", "api.example.com")
            .header("x-forwarded-proto", "https")
            .body(body(bytes::Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(behind.0, 200);
    // ACME HTTP-01 challenges still reach the routes.
    let acme = plain("/.well-known/acme-challenge/token").await.unwrap();
    assert_eq!(acme.0, 200, "{:?}", acme.2);

    // HTTPS answers carry HSTS, the proxy's own (404) included.
    let head_of = |request: &'static [u8]| {
        let ca = &ca;
        async move {
            let (mut tls, _) = connect(ca, https).await;
            tls.write_all(request).await.unwrap();
            let mut got = vec![0u8; 4096];
            let n = tls.read(&mut got).await.unwrap();
            String::from_utf8_lossy(&got[..n]).to_ascii_lowercase()
        }
    };
    let head = head_of(b"GET /status/200 HTTP/1.1\r\nHost: api.example.com\r\n\r\n").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("strict-transport-security: max-age=31536000; includesubdomains\r\n"),
        "{head}"
    );
    let head = head_of(b"GET / HTTP/1.1\r\nHost: elsewhere.example.com\r\n\r\n").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );
    // And the HTTP/1.1 server's own refusals (a malformed request).
    let head = head_of(b"GET / HTTP/1.1\r\nHost : api.example.com\r\n\r\n").await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );

    let mut got = vec![0u8; 4096];
    // Without the annotation the HTTP port serves again: the next requests, on the connections
    // already open too (the port's server is not restarted for it).
    let mut kept = tokio::net::TcpStream::connect(("127.0.0.1", http))
        .await
        .unwrap();
    let request = b"GET /status/200 HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
    kept.write_all(request).await.unwrap();
    let n = kept.read(&mut got).await.unwrap();
    assert!(
        got[..n].starts_with(b"HTTP/1.1 308"),
        "{:?}",
        String::from_utf8_lossy(&got[..n])
    );
    let version = p.config_version().await;
    p.write(
        "gateway.yaml",
        &gateway.replace("    frontdesk.dev/redirect-to-https: 'true'\n", ""),
    );
    p.wait_version_above(version).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let a = plain("/status/200").await.expect("the port stayed open");
        if a.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still redirected: {}", a.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kept.write_all(request).await.unwrap();
    let n = kept.read(&mut got).await.unwrap();
    assert!(
        got[..n].starts_with(b"HTTP/1.1 200"),
        "the open connection: {:?}",
        String::from_utf8_lossy(&got[..n])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_stops_reading_is_let_go_after_the_send_timeout() {
    let demo = frontdesk_demo::spawn("demo").await;
    let https = free_port().port();
    let ca = Authority::new();
    let gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: default, namespace: test}}
spec:
  gatewayClassName: frontdesk
  listeners:
    - name: https
      port: {https}
      protocol: HTTPS
      tls: {{certificateRefs: [{{name: site-tls}}]}}
"
    );
    let routes = route(
        "site",
        &format!("  rules:\n    - backends: [{{url: 'http://{demo}'}}]"),
    );
    let p = ProxyProcess::with_files(
        &[
            ("gateway.yaml", &gateway),
            (
                "secret.yaml",
                &secret(&ca.issue(&["api.example.com"], 1, 30)),
            ),
            ("routes.yaml", &routes),
        ],
        &["--send-timeout", "1s"],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tls = loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        if let Ok(tcp) = socket.connect(([127, 0, 0, 1], https).into()).await
            && let Ok(tls) = tokio_rustls::TlsConnector::from(ca.client(&[b"http/1.1"]))
                .connect(ServerName::try_from("api.example.com").unwrap(), tcp)
                .await
        {
            break tls;
        }
        assert!(Instant::now() < deadline, "no TLS listener\n{}", p.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // 16 MiB asked for, nothing read: the proxy's writes wait, then it lets the client go.
    tls.write_all(b"GET /bytes/16777216 HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let limit = r#"frontdesk_connection_limits_total{limit="send-timeout"} 1"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.metrics().await.contains(limit) {
        assert!(
            Instant::now() < deadline,
            "a TLS client that stopped reading was held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tls);
}
