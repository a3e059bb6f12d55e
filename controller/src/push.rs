//! The snapshot push server (`--listen`): one long-lived HTTP/2 stream per proxy, over mutual
//! TLS unless `--insecure`. Wire format: `frontdesk_wire` and docs/wire.md.
//!
//! A proxy gets its gateway's current snapshot at once, then every new version. Its ACKs and
//! NACKs feed the [`AckTracker`] (for `Programmed`) and the metrics. A client that cannot
//! complete the TLS handshake with a certificate from the proxies' CA gets nothing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use frontdesk_wire::{ChannelBody, LineDecoder, MAX_MESSAGE_BYTES, STREAM_PATH, ToController};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::acks::AckTracker;
use crate::metrics::Metrics;
use crate::store::SnapshotStore;

type Body = Either<ChannelBody, Full<Bytes>>;

/// A client that has not completed its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Open connections at most (proxies plus clients still in their handshake).
const MAX_CONNECTIONS: usize = 4096;

pub struct PushServer {
    pub store: SnapshotStore,
    pub acks: AckTracker,
    pub metrics: Arc<Metrics>,
}

/// The controller's TLS credentials, reloaded when the mounted files are rotated.
pub type ServerTls = frontdesk_wire::tls::Reloading<rustls::ServerConfig>;

/// Accepts proxies forever.
pub async fn serve(listener: TcpListener, tls: Option<Arc<ServerTls>>, server: Arc<PushServer>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let tls = tls.as_ref().map(|t| TlsAcceptor::from(t.for_connection()));
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(stream, peer, server).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, peer, server).await,
                        // No certificate from our CA: nothing is sent, not even an HTTP error.
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "refused a snapshot client: TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::warn!(%peer, "refused a snapshot client: no TLS handshake within 10 s")
                        }
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(stream: S, peer: SocketAddr, server: Arc<PushServer>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let server = server.clone();
        async move { Ok::<_, Infallible>(server.handle(req, peer)) }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(std::time::Duration::from_secs(20));
    if let Err(e) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "snapshot connection ended");
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *r.status_mut() = status;
    r
}

impl PushServer {
    fn handle(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if req.method() != Method::POST || req.uri().path() != STREAM_PATH {
            return plain(
                StatusCode::NOT_FOUND,
                "POST /frontdesk.v1/snapshots?gateway=NAME&proxy=ID\n",
            );
        }
        let Some((gateway, proxy)) = req
            .uri()
            .query()
            .and_then(frontdesk_wire::parse_stream_query)
        else {
            return plain(
                StatusCode::BAD_REQUEST,
                "gateway and proxy must be names ([A-Za-z0-9._-])\n",
            );
        };
        let Some(mut snapshots) = self.store.subscribe(&gateway) else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "no configuration compiled yet\n",
            );
        };
        let (tx, body) = ChannelBody::new(4);
        let mut incoming = req.into_body();
        tokio::spawn(async move {
            let labels = Metrics::gateway(&gateway);
            let token = self.acks.connected(&gateway, &proxy);
            self.metrics.connected_proxies.get_or_create(&labels).inc();
            tracing::info!(%gateway, %proxy, %peer, "proxy subscribed");
            let mut decoder = LineDecoder::new(MAX_MESSAGE_BYTES);
            let mut current = snapshots.borrow_and_update().clone();
            let mut send = Some(current.encoded.clone());
            // When this stream sent its latest version: push latency is measured from here, so
            // the first snapshot after a reconnect does not count the time it sat published.
            let mut sent_at = std::time::Instant::now();
            loop {
                if let Some(line) = send.take() {
                    if tx.send(line).await.is_err() {
                        break;
                    }
                    sent_at = std::time::Instant::now();
                }
                tokio::select! {
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        current = snapshots.borrow_and_update().clone();
                        send = Some(current.encoded.clone());
                    }
                    frame = incoming.frame() => {
                        let Some(Ok(frame)) = frame else { break };
                        let Some(data) = frame.data_ref() else { continue };
                        let messages = decoder.push::<ToController>(data);
                        for (m, _) in messages {
                            match m {
                                Ok(m) => self.record(&gateway, &proxy, m, current.snapshot.version, sent_at),
                                Err(e) => tracing::warn!(%gateway, %proxy, error = %e, "ignoring a bad message from a proxy"),
                            }
                        }
                    }
                }
            }
            self.acks.disconnected(&gateway, &proxy, token);
            self.metrics.connected_proxies.get_or_create(&labels).dec();
            tracing::info!(%gateway, %proxy, "proxy unsubscribed");
        });
        let mut resp = Response::new(Either::Left(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/x-ndjson"),
        );
        resp
    }

    /// Records an ACK or NACK; `sent_version` went out on this stream at `sent_at`.
    fn record(
        &self,
        gateway: &str,
        proxy: &str,
        message: ToController,
        sent_version: u64,
        sent_at: std::time::Instant,
    ) {
        let labels = Metrics::gateway(gateway);
        match message {
            ToController::Ack { version } => {
                self.acks.ack(gateway, proxy, version);
                self.metrics.acks.get_or_create(&labels).inc();
                if version == sent_version {
                    self.metrics
                        .push_latency
                        .get_or_create(&labels)
                        .observe(sent_at.elapsed().as_secs_f64());
                }
                tracing::debug!(%gateway, %proxy, version, "ack");
            }
            ToController::Nack { version, reason } => {
                tracing::warn!(%gateway, %proxy, version, %reason, "a proxy rejected a snapshot");
                self.metrics.nacks.get_or_create(&labels).inc();
                self.acks.nack(gateway, proxy, version, reason);
            }
        }
    }
}
