//! TLS to backends: one client configuration per backend TLS setting (what to trust, the
//! client certificate), built when a snapshot is built and shared by the snapshots that keep
//! the setting, the handshake on each new connection, and the connection's stream, plain or
//! TLS ([`BackendIo`]).
//!
//! A plain connection keeps the readiness-driven reads the HTTP/1.1 code is built on
//! ([`crate::http1::poll_fill`]); a TLS one reads and writes through rustls. Writes to a TLS
//! stream are flushed where the exchange waits for the backend (after the head, at the end of
//! an upload), so nothing stays in rustls' buffer while the proxy waits for an answer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use frontdesk_snapshot as snap;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How the proxy speaks TLS to one backend.
pub struct TlsClient {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    /// Tells pools apart: endpoints reached with other TLS settings have other connections.
    /// Shared (not copied) by every pool of the setting.
    pub key: std::sync::Arc<str>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Parses the setting's certificates; a bad one is a reason the backend is not used.
    /// ALPN offers what `protocol` may speak.
    pub fn build(t: &snap::BackendTls, protocol: snap::BackendProtocol) -> Result<Self, String> {
        let server_name = ServerName::try_from(t.server_name.clone())
            .map_err(|_| format!("{:?} is not a valid TLS server name", t.server_name))?;
        let mut config = client_config(t)?;
        config.alpn_protocols = alpn(protocol).iter().map(|p| p.to_vec()).collect();
        Ok(TlsClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
            key: tls_key(t, protocol).into(),
        })
    }

    /// The handshake on a new connection.
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.server_name.clone(), tcp).await
    }
}

/// The rustls client configuration of a TLS setting: its trust (the web PKI without CA
/// certificates) and client certificate. Shared with the HTTP client of the authentication
/// stages (external authorization over TLS).
pub fn client_config(t: &snap::BackendTls) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &t.ca_certificates {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("caCertificates: not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("caCertificates: not a CA certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("caCertificates holds no certificate".into());
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let config = match &t.client_certificate {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let chain = CertificateDer::pem_slice_iter(pair.certificate_chain.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("clientCertificate: not PEM: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(pair.private_key.expose().as_bytes())
                .map_err(|_| "clientCertificate: the private key is not PEM".to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("clientCertificate: {e}"))?
        }
    };
    Ok(config)
}

/// What ALPN offers for `protocol`, preferred first.
fn alpn(protocol: snap::BackendProtocol) -> &'static [&'static [u8]] {
    match protocol {
        snap::BackendProtocol::Http1 | snap::BackendProtocol::H2c => &[b"http/1.1"],
        snap::BackendProtocol::H2 => &[b"h2"],
        snap::BackendProtocol::Auto => &[b"h2", b"http/1.1"],
    }
}

/// A TLS setting as a key (the whole of it, and what ALPN offers, so different settings never
/// share a client or a pool); kept in memory only, never shown.
pub fn tls_key(t: &snap::BackendTls, protocol: snap::BackendProtocol) -> String {
    format!(
        "{}{:?}",
        serde_json::to_string(t).unwrap_or_default(),
        alpn(protocol)
    )
}

/// Why a handshake failed, said without the backend's name or address: whether its
/// certificate was refused, or the handshake failed otherwise.
pub fn handshake_failure(e: &io::Error) -> &'static str {
    let refused = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        });
    if refused {
        "the backend's TLS certificate could not be verified"
    } else {
        "the TLS handshake with the backend failed"
    }
}

/// A connection to a backend: plain, or TLS.
pub enum BackendIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl BackendIo {
    /// Whether an idle connection can take a request: nothing arrived on its socket while idle
    /// (an idle HTTP/1.1 connection has nothing to say; EOF, or a TLS close_notify, means the
    /// backend closed it). Reads the socket only when the reactor saw it readable.
    pub fn idle_and_open(&mut self) -> bool {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        match self {
            BackendIo::Plain(s) => match s.poll_read_ready(&mut cx) {
                Poll::Pending => true,
                Poll::Ready(Err(_)) => false,
                Poll::Ready(Ok(())) => matches!(
                    s.try_read(&mut [0u8; 1]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock
                ),
            },
            // What came while idle goes through rustls: records that carry no data (a session
            // ticket, a key update) leave the connection usable; data, a close_notify, EOF or
            // an error do not. Plaintext rustls still held counts as data.
            BackendIo::Tls(s) => {
                let mut scratch = [0u8; 64];
                let mut read = ReadBuf::new(&mut scratch);
                Pin::new(&mut **s)
                    .poll_read(&mut cx, &mut read)
                    .is_pending()
            }
        }
    }

    /// Whether the TLS handshake's ALPN picked HTTP/2 (never, in plaintext).
    pub fn negotiated_h2(&self) -> bool {
        match self {
            BackendIo::Plain(_) => false,
            BackendIo::Tls(s) => s.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }

    /// Writes all of `bytes`, flushed.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            BackendIo::Plain(s) => s.write_all(bytes).await,
            BackendIo::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    /// Reads what the connection has into `buf`, making `room` first; `Ok(0)` at EOF.
    pub fn poll_fill(
        &mut self,
        buf: &mut BytesMut,
        room: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match self {
            BackendIo::Plain(s) => crate::http1::poll_fill(s, buf, room, cx),
            // A close without close_notify is an `UnexpectedEof` error, not an EOF: a body
            // delimited by the close alone must not end there (anyone on the path could cut it
            // short). Before any answer, the exchange reads it as a close.
            BackendIo::Tls(s) => {
                buf.reserve(room);
                tokio_util::io::poll_read_buf(Pin::new(&mut **s), cx, buf)
            }
        }
    }
}

impl AsyncWrite for BackendIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BackendIo::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendIo::Plain(s) => Pin::new(s).poll_flush(cx),
            BackendIo::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            BackendIo::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for BackendIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            BackendIo::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}
