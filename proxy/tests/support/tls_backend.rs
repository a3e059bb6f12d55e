//! HTTPS backends on 127.0.0.1 for the backend TLS tests: a rustls server with a certificate
//! a test CA issued, optionally asking for client certificates, counting handshakes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use frontdesk_demo::certs::{Authority, Issued};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn server_config(cert: &Issued, client_ca: Option<&Authority>) -> Arc<rustls::ServerConfig> {
    let chain = CertificateDer::pem_slice_iter(cert.chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.key.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    Arc::new(builder.with_single_cert(chain, key).unwrap())
}

/// An HTTPS backend: answers each request with the size of its body, keep-alive; counts the
/// connections whose handshake completed.
pub async fn tls_backend(
    cert: &Issued,
    client_ca: Option<&Authority>,
) -> (SocketAddr, Arc<AtomicU64>) {
    serve_tls(server_config(cert, client_ca), |mut s| async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // One request: its head, then as many body bytes as it declares.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let declared: Option<usize> = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap());
                    let chunked = head.contains("transfer-encoding: chunked");
                    buf.drain(..head_end);
                    // The body: its declared length, or chunks up to the last (empty) one.
                    let mut length = 0;
                    loop {
                        let done = if chunked {
                            match chunk_end(&buf) {
                                Some((size, end)) => {
                                    buf.drain(..end);
                                    length += size;
                                    if size > 0 {
                                        continue;
                                    }
                                    true
                                }
                                None => false,
                            }
                        } else {
                            let n = declared.unwrap_or(0);
                            let whole = buf.len() >= n;
                            if whole {
                                buf.drain(..n);
                                length = n;
                            }
                            whole
                        };
                        if done {
                            break;
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = format!("{{\"bodyBytes\":{length}}}");
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
    })
    .await
}

/// Accepts TLS connections on a new 127.0.0.1 port with `config` and hands each to `serve`;
/// counts the handshakes that completed.
pub async fn serve_tls<F, Fut>(
    config: Arc<rustls::ServerConfig>,
    serve: F,
) -> (SocketAddr, Arc<AtomicU64>)
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicU64::new(0));
    let counted = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted, serve) = (acceptor.clone(), counted.clone(), serve.clone());
            tokio::spawn(async move {
                if let Ok(s) = acceptor.accept(tcp).await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    serve(s).await;
                }
            });
        }
    });
    (addr, handshakes)
}

/// The size and end of the first whole chunk (`size` hex CRLF data CRLF) at the front of
/// `buf`.
fn chunk_end(buf: &[u8]) -> Option<(usize, usize)> {
    let line = buf.windows(2).position(|w| w == b"\r\n")?;
    let size = usize::from_str_radix(std::str::from_utf8(&buf[..line]).ok()?.trim(), 16).ok()?;
    let end = line + 2 + size + 2;
    (buf.len() >= end).then_some((size, end))
}

/// The Secret `name` of namespace `test` holding `ca`'s certificate under `ca.crt`.
pub fn ca_secret(name: &str, ca: &Authority) -> String {
    let pem: String = ca.pem().lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: test}}\nstringData:\n  ca.crt: |\n{pem}---\n"
    )
}
