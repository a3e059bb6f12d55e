//! Cluster mode: snapshots from the controller (`--controller URL --gateway NAME`).
//!
//! One long-lived HTTP/2 stream (wire format in docs/wire.md), over mutual TLS unless
//! `--insecure`. Every version received is applied (built and swapped in atomically) and
//! answered with an ACK, or refused with a NACK and its reason while the current version keeps
//! serving. When the stream breaks, the proxy keeps serving what it has and reconnects with
//! exponential backoff and full jitter. Each applied snapshot is written to `--state-dir`, and
//! a restarted proxy serves it at once, before (or without) reaching the controller.
//!
//! A version that only changes some backends' endpoints may come as an endpoint delta on the
//! version this proxy serves: applied in place without rebuilding the routes, persisted and
//! acknowledged like a snapshot. One on any other version is refused, and the controller sends
//! the whole snapshot instead.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use std::time::Duration;

use bytes::Bytes;
use frontdesk_snapshot::{EndpointChange, Snapshot};
use frontdesk_wire::{
    ChannelBody, LineDecoder, MAX_MESSAGE_BYTES, STREAM_PATH, ToController, ToProxy,
};
use http::{Request, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::admin::Admin;
pub use crate::channel_status::ChannelStatus;
use crate::channel_status::Source;
use crate::metrics::Metrics;
use crate::runtime::{Applied, RuntimeHandle};

/// The proxy's side of the snapshot stream's mutual TLS.
pub type ClientTls = frontdesk_wire::tls::Reloading<tokio_rustls::rustls::ClientConfig>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to reach the controller.
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The proxy's credentials (reloaded when the files are rotated) and the controller's name.
    pub tls: Option<(Arc<ClientTls>, ServerName<'static>)>,
}

impl Endpoint {
    /// `https://` needs the TLS files; `http://` needs `insecure`.
    pub fn new(
        url: &str,
        insecure: bool,
        tls_files: (Option<&PathBuf>, Option<&PathBuf>, Option<&PathBuf>),
    ) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("--controller {url:?}: {e}"))?;
        let host = uri
            .host()
            .ok_or_else(|| format!("--controller {url:?} has no host"))?
            .to_string();
        let tls = match (uri.scheme_str(), insecure) {
            (Some("http"), true) => None,
            (Some("http"), false) => {
                return Err(
                    "a plaintext controller URL needs --insecure (snapshots carry secrets)".into(),
                );
            }
            (Some("https"), _) => {
                let (Some(ca), Some(cert), Some(key)) = tls_files else {
                    return Err("https:// needs --tls-ca, --tls-cert and --tls-key".into());
                };
                let config = ClientTls::client(ca, cert, key).map_err(|e| e.to_string())?;
                let name = ServerName::try_from(
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                )
                .map_err(|e| format!("--controller host {host:?}: {e}"))?;
                Some((Arc::new(config), name))
            }
            _ => {
                return Err(format!(
                    "--controller {url:?} must start with https:// or http://"
                ));
            }
        };
        let default_port = if tls.is_some() { 443 } else { 80 };
        Ok(Endpoint {
            port: uri.port_u16().unwrap_or(default_port),
            host,
            tls,
        })
    }
}

pub struct Subscriber {
    pub endpoint: Endpoint,
    pub gateway: String,
    pub proxy_id: String,
    pub state_dir: Option<PathBuf>,
    pub max_snapshot_bytes: usize,
    pub runtime: RuntimeHandle,
    pub metrics: Arc<Metrics>,
    pub admin: Arc<Admin>,
    /// What `/status` shows.
    pub channel: Mutex<ChannelStatus>,
}

impl Subscriber {
    /// Serves the persisted snapshot, if any, then subscribes in the background.
    pub fn start(self) {
        self.report(|_| {}); // `/status` shows the channel from the start
        self.restore();
        tokio::spawn(self.run());
    }

    /// Records a change of the stream's state and publishes it on `/status`.
    fn report(&self, change: impl FnOnce(&mut ChannelStatus)) {
        let mut channel = self.channel.lock();
        change(&mut channel);
        self.admin.status.store(Arc::new(channel.to_json()));
    }

    fn state_file(&self) -> Option<PathBuf> {
        self.state_dir
            .as_ref()
            .map(|d| d.join(format!("{}.snapshot.json", self.gateway)))
    }

    fn restore(&self) {
        let Some(path) = self.state_file() else {
            return;
        };
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the persisted snapshot");
                return;
            }
        };
        let restored = serde_json::from_slice::<Snapshot>(&text)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                if s.gateway == self.gateway {
                    Ok(s)
                } else {
                    Err("it is for another gateway".into())
                }
            })
            .and_then(|s| self.runtime.apply_exact(s));
        match restored {
            Ok(applied) => {
                tracing::info!(path = %path.display(), ?applied, "serving the persisted snapshot until the controller answers");
                let version = self.runtime.load().version();
                self.report(|c| c.serving(version, Source::Persisted));
                self.admin.ready.store(true, Ordering::Release);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring the persisted snapshot")
            }
        }
    }

    /// Writes the snapshot durably and privately (it will carry secrets): a temporary file
    /// readable by this user only, synced, renamed over the old one, directory synced.
    fn persist(&self, snapshot: &Snapshot) {
        let Some(path) = self.state_file() else {
            return;
        };
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            use std::io::Write;
            let bytes = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            std::fs::create_dir_all(dir)?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "cannot persist the snapshot");
        }
    }

    async fn run(self) {
        let mut backoff = Backoff::default();
        loop {
            let error = match self.session(&mut backoff).await {
                Ok(()) => {
                    tracing::warn!("the controller closed the snapshot stream");
                    None
                }
                Err(e) => {
                    tracing::warn!(controller = %self.endpoint.host, error = %e, "snapshot stream failed");
                    Some(e)
                }
            };
            self.metrics.controller_connected.set(0);
            self.report(|c| c.disconnected(error, unix_now()));
            let wait = backoff.next();
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "reconnecting to the controller; serving the current snapshot meanwhile"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One connection; returns when it ends.
    async fn session(&self, backoff: &mut Backoff) -> Result<(), String> {
        let addr = format!(
            "{}:{}",
            self.endpoint
                .host
                .trim_start_matches('[')
                .trim_end_matches(']'),
            self.endpoint.port
        );
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match &self.endpoint.tls {
            None => self.stream(tcp, backoff).await,
            Some((credentials, name)) => {
                let connector = tokio_rustls::TlsConnector::from(credentials.for_connection());
                let tls =
                    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| "the TLS handshake timed out".to_string())?
                        .map_err(|e| format!("TLS handshake: {e}"))?;
                self.stream(tls, backoff).await
            }
        }
    }

    async fn stream<S>(&self, io: S, backoff: &mut Backoff) -> Result<(), String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10));
        let (mut sender, conn) = builder
            .handshake::<_, ChannelBody>(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP/2: {e}"))?;
        tokio::spawn(conn);
        let (acks, body) = ChannelBody::new(8);
        let uri = format!(
            "http://{}{STREAM_PATH}?{}",
            self.endpoint.host,
            frontdesk_wire::stream_query(&self.gateway, &self.proxy_id)
        );
        let req = Request::post(uri).body(body).map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("subscribing: {e}"))?;
        if resp.status() != StatusCode::OK {
            return Err(format!("the controller answered {}", resp.status()));
        }
        self.metrics.controller_connected.set(1);
        self.report(|c| c.connected(unix_now()));
        let mut handled_any = false;
        tracing::info!(gateway = %self.gateway, proxy = %self.proxy_id, "subscribed to the controller");
        let mut body = resp.into_body();
        let mut decoder = LineDecoder::new(MAX_MESSAGE_BYTES);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading the stream: {e}"))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            for (line, size) in decoder.push::<serde_json::Value>(data) {
                match line.map_err(|e| (0, e.to_string())).and_then(read_message) {
                    Ok(ToProxy::Snapshot { snapshot }) => self.receive(snapshot, size, &acks).await,
                    Ok(ToProxy::Endpoints {
                        gateway,
                        base,
                        version,
                        changes,
                    }) => {
                        let delta = Delta {
                            gateway: &gateway,
                            base,
                            version,
                            changes: &changes,
                        };
                        self.receive_endpoints(delta, size, &acks).await
                    }
                    // Refused, but the stream goes on: reconnecting would fetch the same again.
                    Err((version, reason)) => self.refuse(version, reason, &acks).await,
                }
                // Reset only once something went through, so a controller that accepts the
                // stream and then fails is not hammered.
                if !handled_any {
                    handled_any = true;
                    *backoff = Backoff::default();
                }
            }
        }
        Ok(())
    }

    async fn refuse(&self, version: u64, reason: String, acks: &mpsc::Sender<Bytes>) {
        self.metrics.config_reload_failures.inc();
        tracing::error!(version, %reason, "refused a snapshot from the controller; the current one keeps serving");
        self.report(|c| c.refused(version, &reason, unix_now()));
        let _ = acks
            .send(frontdesk_wire::encode(&ToController::Nack {
                version,
                reason,
            }))
            .await;
    }

    /// Refuses a message larger than `--max-snapshot-bytes`.
    fn check_size(&self, what: &str, size: usize) -> Result<(), String> {
        if size > self.max_snapshot_bytes {
            return Err(format!(
                "the {what} is {size} bytes; this proxy accepts at most {} (--max-snapshot-bytes)",
                self.max_snapshot_bytes
            ));
        }
        Ok(())
    }

    async fn receive(&self, snapshot: Snapshot, size: usize, acks: &mpsc::Sender<Bytes>) {
        let version = snapshot.version;
        let outcome = if let Err(e) = self.check_size("snapshot", size) {
            Err(e)
        } else if snapshot.gateway != self.gateway {
            Err(format!(
                "the snapshot is for gateway {:?}, this proxy serves {:?}",
                snapshot.gateway, self.gateway
            ))
        } else {
            let kept = snapshot.clone();
            // Persisted before it serves: a proxy seen serving a version restarts from it.
            self.runtime
                .apply_exact_then(snapshot, |s| self.persist(s))
                .map(|applied| (applied, kept))
        };
        let reply = match outcome {
            Ok((applied, snapshot)) => {
                if let Applied::Swapped(_) = applied {
                    self.metrics.config_reloads.inc();
                }
                tracing::info!(
                    version,
                    rules = snapshot.rule_count(),
                    "serving snapshot from the controller"
                );
                self.admin.ready.store(true, Ordering::Release);
                self.report(|c| c.serving(version, Source::Controller));
                ToController::Ack { version }
            }
            Err(reason) => return self.refuse(version, reason, acks).await,
        };
        let _ = acks.send(frontdesk_wire::encode(&reply)).await;
    }

    /// An endpoint delta: applied in place when this proxy serves its base version, persisted
    /// before it serves, and acknowledged; refused (NACK) otherwise, the current version
    /// serving on.
    async fn receive_endpoints(&self, delta: Delta<'_>, size: usize, acks: &mpsc::Sender<Bytes>) {
        let version = delta.version;
        let serving = self.runtime.load().version();
        if serving != delta.base {
            // Routine (this proxy took another version meanwhile): the controller answers the
            // NACK with the whole snapshot, so it is no refusal to report.
            tracing::debug!(
                version,
                base = delta.base,
                serving,
                "an endpoint delta on another version; asking for the whole snapshot"
            );
            let reason = format!(
                "this proxy serves version {serving}, not the delta's base {}",
                delta.base
            );
            let nack = ToController::Nack { version, reason };
            let _ = acks.send(frontdesk_wire::encode(&nack)).await;
            return;
        }
        let started = tokio::time::Instant::now();
        let outcome = self.check_size("endpoint change", size).and_then(|()| {
            // Persisted before it serves: a proxy seen serving a version restarts from it.
            self.runtime
                .apply_endpoints(delta.gateway, delta.base, version, delta.changes, |s| {
                    self.persist(s)
                })
        });
        match outcome {
            Ok(applied) => {
                if let Applied::Swapped(_) = applied {
                    self.metrics.config_reloads.inc();
                }
                // The delta's own part: from its base checked to serving (persisting included).
                let took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                tracing::info!(
                    version,
                    base = delta.base,
                    delta = true,
                    changes = delta.changes.len(),
                    took_us,
                    "serving snapshot from the controller"
                );
                self.admin.ready.store(true, Ordering::Release);
                self.report(|c| c.serving(version, Source::Controller));
                let ack = ToController::Ack { version };
                let _ = acks.send(frontdesk_wire::encode(&ack)).await;
            }
            Err(reason) => self.refuse(version, reason, acks).await,
        }
    }
}

/// An endpoint delta as it arrived ([`ToProxy::Endpoints`]).
struct Delta<'a> {
    gateway: &'a str,
    base: u64,
    version: u64,
    changes: &'a [EndpointChange],
}

fn unix_now() -> i64 {
    i64::try_from(crate::stages::authenticate::jwt::now()).unwrap_or(i64::MAX)
}

/// Exponential backoff with full jitter: 100 ms doubling up to 5 s.
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let cap = Duration::from_millis(100)
            .saturating_mul(1 << self.attempt.min(6))
            .min(Duration::from_secs(5));
        self.attempt += 1;
        cap.mul_f64(fastrand::f64())
    }
}

/// Reads one message; when it cannot, says which version (0 if unknown) and why, for the NACK.
fn read_message(value: serde_json::Value) -> Result<ToProxy, (u64, String)> {
    // A snapshot carries its version inside; an endpoint delta at the top.
    let version = value["snapshot"]["version"]
        .as_u64()
        .or_else(|| value["version"].as_u64())
        .unwrap_or(0);
    serde_json::from_value::<ToProxy>(value).map_err(|e| {
        (
            version,
            format!("this proxy cannot read the message (is the controller newer?): {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_messages_are_refused_with_their_version() {
        let v = serde_json::json!({"type": "snapshot", "snapshot": {"gateway": "g", "version": 12, "mirrors": []}});
        let (version, reason) = read_message(v).unwrap_err();
        assert_eq!(version, 12);
        assert!(reason.contains("mirrors"), "{reason}");
        let ok =
            serde_json::json!({"type": "snapshot", "snapshot": {"gateway": "g", "version": 3}});
        assert!(
            matches!(read_message(ok).unwrap(), ToProxy::Snapshot { snapshot } if snapshot.version == 3)
        );
    }

    #[test]
    fn endpoint_deltas_are_read_and_unreadable_ones_refused_with_their_version() {
        let delta = serde_json::json!({
            "type": "endpoints", "gateway": "g", "base": 3, "version": 4,
            "changes": [{"backend": "service/ns/web:80", "endpoints": ["10.0.0.2:80"]}]
        });
        assert_eq!(
            read_message(delta).unwrap(),
            ToProxy::Endpoints {
                gateway: "g".into(),
                base: 3,
                version: 4,
                changes: vec![EndpointChange {
                    backend: "service/ns/web:80".into(),
                    endpoints: vec!["10.0.0.2:80".into()],
                }],
            }
        );
        // Its version is at the top, not in a snapshot.
        let unreadable = serde_json::json!({
            "type": "endpoints", "gateway": "g", "base": 3, "version": 9,
            "changes": [{"backend": "service/ns/web:80", "endpoints": "10.0.0.2:80"}]
        });
        let (version, reason) = read_message(unreadable).unwrap_err();
        assert_eq!(version, 9);
        assert!(reason.contains("cannot read the message"), "{reason}");
    }

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..20).map(|_| b.next()).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(5)));
        assert!(waits[0] <= Duration::from_millis(100));
        assert!(waits.windows(2).any(|w| w[0] != w[1]), "jittered");
    }

    #[test]
    fn endpoints_demand_tls_or_an_explicit_insecure() {
        assert!(
            Endpoint::new("http://c:7070", false, (None, None, None))
                .err()
                .unwrap()
                .contains("--insecure")
        );
        let e = Endpoint::new("http://c:7070", true, (None, None, None)).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls.is_none()),
            ("c", 7070, true)
        );
        assert!(
            Endpoint::new("https://c", false, (None, None, None))
                .err()
                .unwrap()
                .contains("--tls-ca")
        );
        assert!(Endpoint::new("ftp://c", true, (None, None, None)).is_err());
    }
}
