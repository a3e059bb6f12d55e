//! The snapshot push server (`--listen`): one long-lived HTTP/2 stream per proxy, over mutual
//! TLS unless `--insecure`. Wire format: `frontdesk_wire` and docs/wire.md.
//!
//! A proxy gets its gateway's current snapshot at once, then every new version. Its ACKs and
//! NACKs feed the [`AckTracker`] (for `Programmed`) and the metrics. A client that cannot
//! complete the TLS handshake with a certificate from the proxies' CA gets nothing; one whose
//! certificate names another gateway than it asks for gets 403 ([`Identity`]): a gateway's
//! snapshot, secrets included, goes only to that gateway's proxies. `--insecure` has no
//! certificates, hence no such check.

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
use crate::channel_identity::Identity;
use crate::metrics::{Metrics, RefusedLabels};
use crate::store::{Published, SnapshotStore};

type Body = Either<ChannelBody, Full<Bytes>>;

/// A client that has not completed its TLS handshake by then is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Open connections at most (proxies plus clients still in their handshake).
const MAX_CONNECTIONS: usize = 4096;

pub struct PushServer {
    pub store: SnapshotStore,
    pub acks: AckTracker,
    pub metrics: Arc<Metrics>,
    /// Whether the Gateway API CRDs are installed, for `/status` (cluster mode sets it).
    pub gateway_api: Arc<crate::gateway_api::GatewayApiState>,
    /// Whether each watch lists (cluster mode), for `/status` and the compile.
    pub watch_health: Arc<crate::watch_health::WatchHealth>,
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
                None => serve_connection(stream, peer, Identity::Unchecked, server).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            // The chain rustls verified against the CA: who this client is.
                            let identity = Identity::of(stream.get_ref().1.peer_certificates());
                            serve_connection(stream, peer, identity, server).await
                        }
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

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    identity: Identity,
    server: Arc<PushServer>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let identity = Arc::new(identity);
    let service = service_fn(move |req| {
        let server = server.clone();
        let identity = identity.clone();
        async move { Ok::<_, Infallible>(server.handle(req, peer, &identity)) }
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

fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Either::Right(Full::new(text.into())));
    *r.status_mut() = status;
    r
}

impl PushServer {
    /// Nothing published yet, no proxy; the watches' health reports to `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        PushServer {
            store: SnapshotStore::default(),
            acks: AckTracker::default(),
            watch_health: Arc::new(crate::watch_health::WatchHealth::new(&metrics)),
            metrics,
            gateway_api: Default::default(),
        }
    }

    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        identity: &Identity,
    ) -> Response<Body> {
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
        // Before subscribing: a refused client must not even make the gateway exist.
        if let Some(reason) = identity.refuses(&gateway) {
            let certificate_gateway = identity.certificate_gateway();
            tracing::warn!(
                %peer,
                certificate_gateway,
                requested_gateway = %gateway,
                %proxy,
                %reason,
                "refused a snapshot subscription: the client certificate does not name the gateway asked for"
            );
            self.metrics
                .refused_subscriptions
                .get_or_create(&RefusedLabels {
                    certificate_gateway: certificate_gateway.to_string(),
                })
                .inc();
            return plain(StatusCode::FORBIDDEN, format!("{reason}\n"));
        }
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
            let mut send = Some(current.encoded());
            // The version last sent as a delta, until the next: its NACK asks for the whole.
            let mut sent_delta = None;
            // The version the proxy has when it took what was sent: a delta builds on it. Not
            // known after the proxy refused a whole snapshot (it serves something else).
            let mut has = Some(current.snapshot.version);
            // What this stream sent lately, as (version, publish number): an ACK names a
            // version, "at or past" compares publish numbers.
            let mut sent = SentVersions::default();
            sent.push(current.snapshot.version, current.seq);
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
                        // The delta when this stream sent the version it is from, unrefused.
                        let delta = current.delta.as_ref().filter(|d| Some(d.base) == has);
                        sent_delta = delta.map(|_| current.snapshot.version);
                        send = Some(delta.map_or_else(|| current.encoded(), |d| d.encoded.clone()));
                        has = Some(current.snapshot.version);
                        sent.push(current.snapshot.version, current.seq);
                    }
                    frame = incoming.frame() => {
                        let Some(Ok(frame)) = frame else { break };
                        let Some(data) = frame.data_ref() else { continue };
                        let messages = decoder.push::<ToController>(data);
                        for (m, _) in messages {
                            match m {
                                // A proxy not serving the delta's base, or one that cannot read
                                // deltas (it names version 0): it gets the whole.
                                Ok(ToController::Nack { version, reason })
                                    if sent_delta.is_some_and(|v| version == v || version == 0) =>
                                {
                                    tracing::debug!(%gateway, %proxy, version, %reason, "a proxy refused an endpoint delta; sending the whole snapshot");
                                    sent_delta = None;
                                    send = Some(current.encoded());
                                }
                                Ok(ToController::Nack { version, reason }) => {
                                    if has == Some(version) {
                                        has = None;
                                    }
                                    self.record(&gateway, &proxy, ToController::Nack { version, reason }, &current, &sent, sent_at);
                                }
                                Ok(m) => self.record(&gateway, &proxy, m, &current, &sent, sent_at),
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

    /// Records an ACK or NACK; `latest` went out on this stream at `sent_at`, after `sent`.
    fn record(
        &self,
        gateway: &str,
        proxy: &str,
        message: ToController,
        latest: &Published,
        sent: &SentVersions,
        sent_at: std::time::Instant,
    ) {
        let labels = Metrics::gateway(gateway);
        match message {
            ToController::Ack { version } => {
                let Some(seq) = sent.seq(version) else {
                    tracing::warn!(%gateway, %proxy, version, "ignoring an ACK of a version this stream did not send");
                    return;
                };
                self.acks.ack(gateway, proxy, version, seq);
                self.metrics.acks.get_or_create(&labels).inc();
                // Timed when the ACK is of the latest send. (With content that came back within
                // a round trip, A, B, A, the ACK of the first A is timed from the last send:
                // one short sample.)
                if seq == latest.seq {
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

/// The versions a stream sent last, newest last, with their publish numbers: an ACK names a
/// version, and [`AckTracker`] compares publish numbers. A version sent more than once
/// (content that came back: A, B, A) maps to its latest send, and rightly so: every object a
/// publish carries and the current one still carries was in each publish between them, so a
/// proxy serving that content serves all of it.
#[derive(Default)]
struct SentVersions(std::collections::VecDeque<(u64, u64)>);

impl SentVersions {
    /// A proxy answering a send older than this many is ignored until it answers a newer one.
    const KEPT: usize = 64;

    /// Publish `seq`, at `version`, was sent.
    fn push(&mut self, version: u64, seq: u64) {
        if self.0.len() == Self::KEPT {
            self.0.pop_front();
        }
        self.0.push_back((version, seq));
    }

    /// The publish number of the latest send of `version`.
    fn seq(&self, version: u64) -> Option<u64> {
        let (_, seq) = self.0.iter().rev().find(|(v, _)| *v == version)?;
        Some(*seq)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use std::path::Path;

    use frontdesk_wire::ToProxy;
    use hyper_util::rt::TokioExecutor;

    use crate::certs::tests::{POLICY, gateway_set};

    /// A push server publishing gateways `a` and `b`, each with a Route of its own.
    fn push_server() -> Arc<PushServer> {
        use frontdesk_crds::manifests::{parse_file, resources};
        let route = |gateway: &str| {
            format!(
                "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: route-{gateway}}}\nspec:\n  \
                 gateways: [{gateway}]\n  rules:\n    - matches: [{{path: {{value: /{gateway}}}}}]\n      \
                 backends: [{{url: 'http://127.0.0.1:1'}}]\n"
            )
        };
        let yaml = format!("{}---\n{}", route("a"), route("b"));
        let parsed = parse_file("routes.yaml", &yaml);
        let output = frontdesk_crds::compile(&resources(parsed.objects.iter().map(|(o, _)| o)));
        let server = Arc::new(PushServer::new(Arc::new(Metrics::new())));
        server.store.publish(output);
        server
    }

    /// The credentials `frontdesk-certs --out-dir` writes, for gateways `a` and `b`.
    pub(crate) async fn credentials(dir: &Path) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let (state, issued, _) = crate::certs::rotate(
            None,
            now,
            &POLICY,
            &["localhost".into()],
            &gateway_set(&["a", "b"]),
        )
        .unwrap();
        let store = crate::certs_store::Store::Files(dir.to_path_buf());
        let loaded = store.load(&state.gateways).await.unwrap();
        store.save(&loaded, &state, &issued).await.unwrap();
    }

    /// An HTTP/2 connection to the push server, as a proxy opens it.
    async fn connect<S>(io: S) -> hyper::client::conn::http2::SendRequest<ChannelBody>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        sender
    }

    /// Subscribes to `gateway`: the status, and the first line of the body (the snapshot) or
    /// the whole body (a refusal). The request body stays open, as a proxy's does.
    async fn subscribe(
        sender: &mut hyper::client::conn::http2::SendRequest<ChannelBody>,
        gateway: &str,
    ) -> (StatusCode, String) {
        let (acks, body) = ChannelBody::new(1);
        let uri = format!(
            "http://localhost{STREAM_PATH}?{}",
            frontdesk_wire::stream_query(gateway, "p1")
        );
        let resp = sender
            .send_request(Request::post(uri).body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let mut body = resp.into_body();
        let mut got = Vec::new();
        while !got.contains(&b'\n') {
            match body.frame().await {
                Some(frame) => got.extend_from_slice(frame.unwrap().data_ref().unwrap()),
                None => break,
            }
        }
        drop(acks);
        let line = got.split(|b| *b == b'\n').next().unwrap_or_default();
        (status, String::from_utf8_lossy(line).into_owned())
    }

    fn snapshot_gateway(line: &str) -> String {
        match serde_json::from_str::<ToProxy>(line).unwrap() {
            ToProxy::Snapshot { snapshot } => snapshot.gateway,
            other => panic!("a stream starts with a whole snapshot, not {other:?}"),
        }
    }

    /// Real TLS on 127.0.0.1, with the credentials `frontdesk-certs` makes: the proxy
    /// certificate of gateway `a` gets `a`'s snapshot, and 403 with the reason for `b` (whose
    /// snapshot carries b's secrets) or a gateway nobody published (which is not even created).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proxy_certificate_opens_only_the_gateway_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        credentials(d).await;
        let tls = frontdesk_wire::tls::Reloading::server(
            &d.join("controller/tls.crt"),
            &d.join("controller/tls.key"),
            &d.join("controller/ca.crt"),
        )
        .unwrap();
        let server = push_server();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Some(Arc::new(tls)), server.clone()));

        let proxy_a = d.join("proxy-a");
        let client = frontdesk_wire::tls::client_config(
            &proxy_a.join("ca.crt"),
            &proxy_a.join("tls.crt"),
            &proxy_a.join("tls.key"),
        )
        .unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await
            .unwrap();
        let mut sender = connect(tls).await;

        let (status, line) = subscribe(&mut sender, "a").await;
        assert_eq!(status, StatusCode::OK, "{line}");
        assert_eq!(snapshot_gateway(&line), "a");

        let (status, reason) = subscribe(&mut sender, "b").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(reason, "this client certificate is for gateway a, not b");
        let (status, _) = subscribe(&mut sender, "c").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let published: Vec<String> = server
            .store
            .versions()
            .into_iter()
            .map(|v| v.gateway)
            .collect();
        assert_eq!(
            published,
            ["a", "b"],
            "a refused subscribe creates no gateway"
        );
        let metrics = server.metrics.encode();
        assert!(
            metrics.contains(
                "frontdesk_controller_refused_subscriptions_total{certificate_gateway=\"a\"} 2"
            ),
            "{metrics}"
        );
    }

    /// `--insecure` (plaintext, loopback, local development) has no certificates, so it has no
    /// gateway check either: any client gets any gateway.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_insecure_stream_serves_every_gateway_to_anyone() {
        let server = push_server();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, None, server.clone()));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut sender = connect(tcp).await;
        for gateway in ["a", "b"] {
            let (status, line) = subscribe(&mut sender, gateway).await;
            assert_eq!(status, StatusCode::OK, "{line}");
            assert_eq!(snapshot_gateway(&line), gateway);
        }
        assert!(
            !server
                .metrics
                .encode()
                .contains("refused_subscriptions_total{")
        );
    }

    /// A stream that has the version before gets an endpoint change as a delta; its NACK (the
    /// proxy serves something else) gets the whole snapshot of that version.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_endpoint_delta_refused_is_followed_by_the_whole_snapshot() {
        let server = push_server();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, None, server.clone()));
        let mut sender = connect(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
        let (acks, body) = ChannelBody::new(4);
        let uri = format!(
            "http://localhost{STREAM_PATH}?{}",
            frontdesk_wire::stream_query("a", "p1")
        );
        let resp = sender
            .send_request(Request::post(uri).body(body).unwrap())
            .await
            .unwrap();
        let mut decoder = LineDecoder::new(MAX_MESSAGE_BYTES);
        let mut body = resp.into_body();
        let mut received = std::collections::VecDeque::new();
        let mut next = async || loop {
            if let Some(m) = received.pop_front() {
                return m;
            }
            let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
                .await
                .expect("a message within 5 s")
                .unwrap()
                .unwrap();
            for (m, _) in decoder.push::<ToProxy>(frame.data_ref().unwrap()) {
                received.push_back(m.unwrap());
            }
        };
        // The version of gateway `a` that endpoint `to` moves to.
        let moved = |to: &'static str| {
            let changed = server
                .store
                .publish_endpoints(move |name| {
                    (name == "http://127.0.0.1:1").then(|| vec![to.to_string()])
                })
                .unwrap();
            changed.iter().find(|(g, _)| g == "a").unwrap().1
        };
        let whole = |m: ToProxy| match m {
            ToProxy::Snapshot { snapshot } => snapshot.version,
            other => panic!("not a whole snapshot: {other:?}"),
        };
        let v1 = whole(next().await);
        let v2 = moved("127.0.0.1:2");
        match next().await {
            ToProxy::Endpoints {
                base,
                version,
                changes,
                ..
            } => {
                assert_eq!((base, version), (v1, v2));
                assert_eq!(changes[0].endpoints, ["127.0.0.1:2"]);
            }
            other => panic!("not a delta: {other:?}"),
        }
        let nack = ToController::Nack {
            version: v2,
            reason: "this proxy serves version 7".into(),
        };
        acks.send(frontdesk_wire::encode(&nack)).await.unwrap();
        assert_eq!(whole(next().await), v2);
        acks.send(frontdesk_wire::encode(&ToController::Ack { version: v2 }))
            .await
            .unwrap();
        let v3 = moved("127.0.0.1:3");
        let delta = next().await;
        assert!(
            matches!(delta, ToProxy::Endpoints { base, version, .. } if (base, version) == (v2, v3)),
            "{delta:?}"
        );
        // A proxy that cannot read deltas refuses them as version 0: it gets the whole.
        let unreadable = ToController::Nack {
            version: 0,
            reason: "unknown variant `endpoints`".into(),
        };
        acks.send(frontdesk_wire::encode(&unreadable))
            .await
            .unwrap();
        assert_eq!(whole(next().await), v3);
        // A whole snapshot refused: what the proxy serves is unknown, so no delta builds on it.
        let refused = ToController::Nack {
            version: v3,
            reason: "too large".into(),
        };
        acks.send(frontdesk_wire::encode(&refused)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let v4 = moved("127.0.0.1:4");
        assert_eq!(whole(next().await), v4);
        // The refused deltas were not reported as refusals; the refused snapshot was.
        let metrics = server.metrics.encode();
        assert!(
            metrics.contains("nacks_total{gateway=\"a\"} 1\n"),
            "{metrics}"
        );
    }

    /// ACKs name versions, which are content: one sent more than once (A, B, A) counts as its
    /// latest send.
    #[test]
    fn an_ack_counts_as_the_latest_send_of_its_version() {
        let mut sent = SentVersions::default();
        for (version, seq) in [(10, 1), (20, 2), (10, 3)] {
            sent.push(version, seq);
        }
        assert_eq!(sent.seq(10), Some(3));
        assert_eq!(sent.seq(20), Some(2));
        assert_eq!(sent.seq(30), None, "never sent");
        for seq in 0..(SentVersions::KEPT as u64) {
            sent.push(100 + seq, 10 + seq);
        }
        assert_eq!(sent.seq(20), None, "forgotten past KEPT");
        assert_eq!(sent.seq(100), Some(10));
    }
}
