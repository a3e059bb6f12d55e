//! Real handshakes on 127.0.0.1 against a listener's certificates, made by a test CA.
// The clock is the system's here: certificates are dated.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::Arc;

use frontdesk_demo::certs::{Authority, Issued};
use frontdesk_snapshot::{Certificate, Secret};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// The test CA, issuing listener certificates.
struct Ca(Authority);

impl Ca {
    fn new() -> Self {
        Ca(Authority::new())
    }

    fn cert(source: &str, issued: Issued) -> Certificate {
        Certificate {
            source: source.into(),
            chain: issued.chain,
            key: Secret::new(issued.key),
        }
    }

    /// A certificate for `names`, valid from `from` days ago for `days` days.
    fn issue(&self, source: &str, names: &[&str], from: i64, days: i64) -> Certificate {
        Self::cert(source, self.0.issue(names, from, days))
    }

    fn issue_from(
        &self,
        source: &str,
        names: &[&str],
        not_before: time::OffsetDateTime,
        days: i64,
    ) -> Certificate {
        Self::cert(source, self.0.issue_from(names, not_before, days))
    }

    fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        self.0.client(alpn)
    }
}

/// The three certificates a listener might hold: exact, wildcard, and the default first.
fn three(ca: &Ca) -> Vec<Certificate> {
    vec![
        ca.issue("web/default", &["default.test"], 1, 30),
        ca.issue("web/wild", &["*.example.com"], 1, 30),
        ca.issue("web/api", &["api.example.com"], 1, 30),
    ]
}

/// A server answering `hello` on each TLS connection; returns its address.
async fn serve(certs: &[Certificate]) -> std::net::SocketAddr {
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Certificates::new(certs).unwrap().0.into_server_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"hello").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

/// Connects with `sni`; returns the leaf certificate served, the ALPN protocol agreed and
/// whether the session was resumed.
async fn connect(
    addr: std::net::SocketAddr,
    client: Arc<rustls::ClientConfig>,
    sni: &str,
) -> (Vec<u8>, Option<Vec<u8>>, bool) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .unwrap();
    let mut hello = Vec::new();
    tls.read_to_end(&mut hello).await.unwrap();
    assert_eq!(hello, b"hello");
    let (_, conn) = tls.get_ref();
    (
        conn.peer_certificates().unwrap()[0].to_vec(),
        conn.alpn_protocol().map(<[u8]>::to_vec),
        conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
    )
}

fn leaf(c: &Certificate) -> Vec<u8> {
    Issued {
        chain: c.chain.clone(),
        key: String::new(),
    }
    .leaf()
}

#[tokio::test]
async fn the_certificate_is_chosen_by_sni_exact_then_wildcard_then_default() {
    let ca = Ca::new();
    let certs = three(&ca);
    let addr = serve(&certs).await;
    let client = ca.client(&[b"h2", b"http/1.1"]);
    let (served, _, _) = connect(addr, client.clone(), "api.example.com").await;
    assert_eq!(served, leaf(&certs[2]), "exact");
    let (served, _, _) = connect(addr, client.clone(), "shop.example.com").await;
    assert_eq!(served, leaf(&certs[1]), "wildcard");
    // A name nothing covers gets the default (here the client then refuses it: the default
    // is not for that name).
    let (chosen, refused) = Certificates::new(&certs).unwrap();
    assert!(refused.is_empty());
    for unknown in [Some("other.test"), Some("a.b.example.com"), None] {
        let key = chosen.choose(unknown);
        assert_eq!(key.cert[0].to_vec(), leaf(&certs[0]), "{unknown:?}");
    }
    assert_eq!(
        chosen.choose(Some("API.Example.COM")).cert[0].to_vec(),
        leaf(&certs[2]),
        "SNI is compared without case"
    );
    let (served, _, _) = connect(addr, client, "default.test").await;
    assert_eq!(served, leaf(&certs[0]));
}

#[tokio::test]
async fn alpn_agrees_on_h2_or_http1_and_sessions_resume() {
    let ca = Ca::new();
    let addr = serve(&three(&ca)).await;
    let (_, alpn, _) = connect(addr, ca.client(&[b"h2", b"http/1.1"]), "api.example.com").await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (_, alpn, _) = connect(addr, ca.client(&[b"http/1.1"]), "api.example.com").await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (_, alpn, _) = connect(addr, ca.client(&[]), "api.example.com").await;
    assert_eq!(alpn, None, "no ALPN: HTTP/1.1 by default");
    // The same client config keeps the session: the second handshake is a resumption.
    let client = ca.client(&[b"h2"]);
    let (_, _, resumed) = connect(addr, client.clone(), "api.example.com").await;
    assert!(!resumed);
    let (_, _, resumed) = connect(addr, client, "api.example.com").await;
    assert!(resumed, "the second handshake was a full one");
}

#[test]
fn bad_certificates_are_refused_with_their_source_and_reason() {
    let ca = Ca::new();
    let good = ca.issue("web/good", &["a.test"], 1, 30);
    let other = ca.issue("web/other", &["b.test"], 1, 30);
    let mismatched = Certificate {
        source: "web/mismatched".into(),
        key: other.key.clone(),
        ..good.clone()
    };
    let expired = ca.issue("web/expired", &["a.test"], 40, 30);
    let garbage = Certificate {
        source: "web/garbage".into(),
        chain: "not a certificate".into(),
        ..good.clone()
    };
    let no_key = Certificate {
        source: "web/no-key".into(),
        key: Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        ..good.clone()
    };
    for (cert, reason) in [
        (mismatched, "does not match"),
        (expired, "not valid now"),
        (garbage, "chain is empty"),
        (no_key, "private key"),
    ] {
        // Left out alone: the good one still serves, as the default.
        let (certs, refused) = Certificates::new(&[cert.clone(), good.clone()]).unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].starts_with(&cert.source) && refused[0].contains(reason),
            "{}: {refused:?}",
            cert.source
        );
        assert_eq!(certs.choose(None).cert[0].to_vec(), leaf(&good));
        // Alone, it leaves nothing to serve: an error with the reason.
        let err = Certificates::new(std::slice::from_ref(&cert)).unwrap_err();
        assert!(err.contains(reason), "{err}");
    }
    assert!(Certificates::new(&[]).is_err());
    // Issued by a clock a minute ahead: taken.
    let ahead = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let early = ca.issue_from("web/early", &["a.test"], ahead, 30);
    assert!(Certificates::new(&[early]).is_ok());
}

#[test]
fn wildcards_cover_one_whole_label() {
    let ca = Ca::new();
    let certs = [
        ca.issue("web/default", &["default.test"], 1, 30),
        ca.issue("web/partial", &["*foo.example.com"], 1, 30),
        ca.issue("web/bare", &["*"], 1, 30),
        ca.issue("web/wild", &["*.example.com"], 1, 30),
    ];
    let (chosen, _) = Certificates::new(&certs).unwrap();
    let served = |sni: &str| chosen.choose(Some(sni)).cert[0].to_vec();
    assert_eq!(served("shop.example.com"), leaf(&certs[3]));
    assert_eq!(served("afoo.example.com"), leaf(&certs[3]));
    assert_eq!(
        served("localhost"),
        leaf(&certs[0]),
        "a bare * matches nothing"
    );
    assert_eq!(served("example.com"), leaf(&certs[0]));
}

/// The server itself over TLS: HTTP/1.1 or HTTP/2 as ALPN agrees, the same request path
/// (here with no routes: 404 problem answers) behind either.
#[tokio::test]
async fn the_server_speaks_http1_and_http2_over_tls() {
    use crate::runtime::{Env, Runtime, RuntimeHandle};

    let ca = Ca::new();
    let config = Certificates::new(&three(&ca))
        .unwrap()
        .0
        .into_server_config();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let runtime = RuntimeHandle::new(Runtime::empty("test", Arc::new(Env::standalone())));
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let limits = crate::server::ServerLimits {
        header_read_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let budget = crate::server::Budget::new(&limits);
    tokio::spawn(crate::server::serve_with(
        listener,
        Some(Arc::new(super::LiveConfig::new(config))),
        budget,
        runtime,
        metrics.clone(),
        limits,
        std::future::pending(),
    ));
    let name = || ServerName::try_from("api.example.com").unwrap();

    // HTTP/1.1, twice on one connection.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(ca.client(&[b"http/1.1"]))
        .connect(name(), tcp)
        .await
        .unwrap();
    for close in ["", "Connection: close\r\n"] {
        let ask = format!("GET /nothing HTTP/1.1\r\nHost: api.example.com\r\n{close}\r\n");
        tls.write_all(ask.as_bytes()).await.unwrap();
        let mut got = vec![0u8; 4096];
        let n = tls.read(&mut got).await.unwrap();
        let answer = String::from_utf8_lossy(&got[..n]);
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
    }
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).await.unwrap();

    // HTTP/2, by ALPN.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(ca.client(&[b"h2"]))
        .connect(name(), tcp)
        .await
        .unwrap();
    let (h2, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    let ask = http::Request::get("https://api.example.com/nothing")
        .body(())
        .unwrap();
    let (resp, _) = h2.send_request(ask, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 404);

    // Plain HTTP on the TLS port fails the handshake and gets no HTTP answer; a client that
    // never starts its handshake is let go with the header timeout.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got).await;
    assert!(
        !String::from_utf8_lossy(&got).contains("HTTP/1.1"),
        "{got:?}"
    );
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        silent.read_to_end(&mut got),
    )
    .await
    .expect("a silent TLS client was held");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    let count = |limit: &'static str| {
        metrics
            .connection_limits
            .get_or_create(&crate::metrics::ConnectionLimitLabels { limit })
            .get()
    };
    assert_eq!(count("tls-handshake-failed"), 1);
    assert_eq!(count("header-read-timeout"), 1);
    // An HTTP/2 client that completes its handshake and never sends the preface is let go
    // as over cleartext.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut quiet = tokio_rustls::TlsConnector::from(ca.client(&[b"h2"]))
        .connect(name(), tcp)
        .await
        .unwrap();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        quiet.read_to_end(&mut got),
    )
    .await
    .expect("a TLS client without an HTTP/2 preface was held");
    assert_eq!(count("header-read-timeout"), 2);
}
