//! The ports the proxy serves, following the snapshot serving.
//!
//! Without Gateways (`Snapshot::listeners_declared` false) that is `--listen`, plain HTTP, as
//! always. With them, exactly the snapshot's listeners, on `--listen`'s address with each
//! listener's port, and never `--listen` itself: an HTTPS port never turns into plain HTTP,
//! even when every listener lost its certificate.
//!
//! Listeners that share a port share its server; an HTTPS port chooses among the certificates
//! of all of them by SNI. A port whose certificates change keeps its socket and its open
//! connections: new handshakes use the new certificates. New certificates that do not load
//! (expired, key mismatch) are refused with their Secret and the reason, and the port keeps
//! the ones it had. A port no longer listed stops accepting and drains like a shutdown; a port
//! that changes protocol keeps its socket (the new server takes it over, so no client finds it
//! closed). A port that cannot be opened (taken, privileged, no loadable certificate) is tried
//! again every two seconds. `--max-connections` and `--max-connections-per-client` bound
//! the process, all ports together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use frontdesk_snapshot::{Certificate, ClientValidation, ListenerProtocol, Snapshot};
use http::HeaderValue;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::exchange::{LivePortSettings, PortSettings};
use crate::metrics::Metrics;
use crate::runtime::RuntimeHandle;
use crate::server::tls::{Certificates, Live, LiveConfig};
use crate::server::{self, Budget, ServerLimits};

/// How often the serving snapshot is looked at for listener changes.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// How often ports that could not be opened are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// What one port should be.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Wanted {
    protocol: ListenerProtocol,
    certificates: Vec<Certificate>,
    /// The port's client certificate validation (its first listener's that has one).
    client_validation: Option<ClientValidation>,
    /// HTTPS redirect and HSTS (its first listener's that has each).
    settings: PortSettings,
}

/// One port being served.
struct Running {
    protocol: ListenerProtocol,
    certificates: Vec<Certificate>,
    client_validation: Option<ClientValidation>,
    /// The port's settings as its server reads them, replaced in place.
    live_settings: Arc<LivePortSettings>,
    live: Option<Arc<Live>>,
    /// HTTPS: the TLS configuration, rebuilt around `live` when the client validation changes.
    config: Option<Arc<LiveConfig>>,
    /// The listening socket, shared with its server: handed to the next server when the
    /// port changes protocol.
    socket: std::net::TcpListener,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The ports served, and what serves them.
pub struct Listeners {
    base: SocketAddr,
    runtime: RuntimeHandle,
    metrics: Arc<Metrics>,
    limits: ServerLimits,
    budget: Arc<Budget>,
    running: BTreeMap<u16, Running>,
    /// Servers stopped and still draining: awaited at shutdown.
    draining: Vec<JoinHandle<()>>,
    /// The wanted ports that are not open, and why each failed last (said at warn when the
    /// reason changes only); tried again while any is left.
    failures: BTreeMap<u16, String>,
    /// `--listen`'s socket, bound at start so a taken port fails the start; served until a
    /// snapshot declares listeners.
    base_socket: Option<std::net::TcpListener>,
}

impl Listeners {
    pub fn new(
        base: tokio::net::TcpListener,
        runtime: RuntimeHandle,
        metrics: Arc<Metrics>,
        limits: ServerLimits,
    ) -> std::io::Result<Self> {
        Ok(Listeners {
            base: base.local_addr()?,
            runtime,
            metrics,
            budget: Budget::new(&limits),
            limits,
            running: BTreeMap::new(),
            draining: Vec::new(),
            failures: BTreeMap::new(),
            base_socket: Some(base.into_std()?),
        })
    }

    /// Serves what the snapshot in place says until `shutdown`, following its changes; then
    /// every port stops accepting and drains.
    pub async fn serve(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut seen = None;
        let mut retry_at = tokio::time::Instant::now();
        loop {
            let runtime = self.runtime.load();
            let now = tokio::time::Instant::now();
            let missing = !self.failures.is_empty();
            if seen != Some(runtime.version()) || (missing && now >= retry_at) {
                seen = Some(runtime.version());
                retry_at = now + RETRY_EVERY;
                self.apply(&runtime.snapshot);
            }
            self.draining.retain(|task| !task.is_finished());
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
        }
        for r in std::mem::take(&mut self.running).into_values() {
            let _ = r.stop.send(true);
            self.draining.push(r.task);
        }
        for task in std::mem::take(&mut self.draining) {
            let _ = task.await;
        }
    }

    /// Brings the ports in line with `snapshot`.
    fn apply(&mut self, snapshot: &Snapshot) {
        let wanted = wanted(snapshot, self.base.port());
        // `--listen`'s socket, bound but not served, would still complete handshakes.
        if !wanted.contains_key(&self.base.port()) {
            self.base_socket = None;
        }
        let gone: Vec<u16> = self
            .running
            .iter()
            // A new protocol: a new server, on the same socket.
            .filter(|(port, r)| wanted.get(port).is_none_or(|w| w.protocol != r.protocol))
            .map(|(port, _)| *port)
            .collect();
        // Sockets of ports that stay, under another protocol: the next server takes them.
        let mut handed = BTreeMap::new();
        for port in gone {
            if let Some(r) = self.running.remove(&port) {
                let _ = r.stop.send(true);
                self.draining.push(r.task);
                if wanted.contains_key(&port) {
                    handed.insert(port, r.socket);
                } else {
                    tracing::info!(port, "a listener's port stops accepting and drains");
                }
            }
        }
        self.failures.retain(|port, _| wanted.contains_key(port));
        for (port, want) in wanted {
            match self.running.get_mut(&port) {
                Some(r) => {
                    // Same port and protocol: what changed is swapped in place.
                    if r.certificates != want.certificates
                        && let Some(live) = &r.live
                    {
                        match Certificates::new(&want.certificates) {
                            Ok((certs, refused)) => {
                                for why in refused {
                                    tracing::warn!(port, error = %why, "a certificate was left out");
                                }
                                live.replace(certs);
                                r.certificates = want.certificates;
                                tracing::info!(port, "a listener's certificates were replaced");
                            }
                            Err(e) => {
                                tracing::warn!(port, error = %e, "new certificates refused; the listener keeps its current ones")
                            }
                        }
                    }
                    // New settings: the next requests follow them; connections stay.
                    if settings_of(&want.settings) != *r.live_settings.load() {
                        r.live_settings.store(settings_of(&want.settings));
                        tracing::info!(port, "a listener's HTTPS redirect or HSTS changed");
                    }
                    // New CAs (or none): new handshakes verify clients by them.
                    if r.client_validation != want.client_validation
                        && let (Some(live), Some(config)) = (&r.live, &r.config)
                    {
                        config.replace(tls_config(port, live, want.client_validation.as_ref()));
                        r.client_validation = want.client_validation;
                        tracing::info!(
                            port,
                            "a listener's client certificate validation was replaced"
                        );
                    }
                }
                None => {
                    let socket = handed.remove(&port);
                    self.start(port, want, socket);
                }
            }
        }
    }

    /// Opens `port` (on `socket` when one is handed over); a failure is noted in `failures`.
    fn start(&mut self, port: u16, want: Wanted, socket: Option<std::net::TcpListener>) {
        let live = match want.protocol {
            ListenerProtocol::Http => None,
            ListenerProtocol::Https => match Certificates::new(&want.certificates) {
                Ok((certs, refused)) => {
                    for why in refused {
                        tracing::warn!(port, error = %why, "a certificate was left out");
                    }
                    Some(Arc::new(Live::new(certs)))
                }
                Err(e) => {
                    self.failed(port, format!("its certificates do not load: {e}"));
                    return;
                }
            },
        };
        let socket = match socket {
            Some(handed) => handed,
            None => match self.base_socket.take() {
                Some(s) if port == self.base.port() => s,
                base => {
                    self.base_socket = base;
                    match bind(SocketAddr::new(self.base.ip(), port)) {
                        Ok(s) => s,
                        Err(e) => {
                            self.failed(port, format!("it cannot be bound: {e}"));
                            return;
                        }
                    }
                }
            },
        };
        // The server gets its own handle on the socket; this one is kept to hand over.
        let serving = match socket
            .try_clone()
            .and_then(tokio::net::TcpListener::from_std)
        {
            Ok(s) => s,
            Err(e) => {
                self.failed(port, format!("its socket cannot be served: {e}"));
                return;
            }
        };
        self.failures.remove(&port);
        let (stop, mut stopped) = watch::channel(false);
        let config = live.as_ref().map(|l| {
            Arc::new(LiveConfig::new(tls_config(
                port,
                l,
                want.client_validation.as_ref(),
            )))
        });
        let live_settings = Arc::new(LivePortSettings::new(settings_of(&want.settings)));
        let limits = ServerLimits {
            port: live_settings.clone(),
            ..self.limits.clone()
        };
        let task = tokio::spawn(server::serve_with(
            serving,
            config.clone(),
            self.budget.clone(),
            self.runtime.clone(),
            self.metrics.clone(),
            limits,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ));
        tracing::info!(port, protocol = ?want.protocol, "a listener serves");
        self.running.insert(
            port,
            Running {
                protocol: want.protocol,
                certificates: want.certificates,
                client_validation: want.client_validation,
                live_settings,
                live,
                config,
                socket,
                stop,
                task,
            },
        );
    }
}

impl Listeners {
    /// Notes why `port` did not open: at warn when the reason is new, then at debug on each
    /// retry.
    fn failed(&mut self, port: u16, why: String) {
        if self.failures.get(&port) == Some(&why) {
            tracing::debug!(port, reason = %why, "a listener's port is still not open");
        } else {
            tracing::warn!(port, reason = %why, "a listener's port is not open; trying again");
            self.failures.insert(port, why);
        }
    }
}

/// The ports `snapshot` asks for: its listeners by port, or `--listen`'s alone.
fn wanted(snapshot: &Snapshot, base_port: u16) -> BTreeMap<u16, Wanted> {
    let mut wanted = BTreeMap::new();
    if !snapshot.listeners_declared {
        wanted.insert(
            base_port,
            Wanted {
                protocol: ListenerProtocol::Http,
                certificates: Vec::new(),
                client_validation: None,
                settings: PortSettings::default(),
            },
        );
        return wanted;
    }
    for l in &snapshot.listeners {
        let w = wanted.entry(l.port).or_insert_with(|| Wanted {
            protocol: l.protocol,
            certificates: Vec::new(),
            client_validation: None,
            settings: PortSettings::default(),
        });
        if w.client_validation.is_none() {
            w.client_validation = l.client_validation.clone();
        }
        if w.settings.redirect_to_https.is_none() {
            w.settings.redirect_to_https = l.redirect_to_https_port;
        }
        if w.settings.hsts.is_none() {
            w.settings.hsts = l
                .hsts
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok());
        }
        for c in &l.certificates {
            if !w.certificates.contains(c) {
                w.certificates.push(c.clone());
            }
        }
    }
    wanted
}

/// What a port's server reads: nothing when the Gateway sets nothing.
fn settings_of(settings: &PortSettings) -> Option<Arc<PortSettings>> {
    (*settings != PortSettings::default()).then(|| Arc::new(settings.clone()))
}

/// The TLS configuration of HTTPS `port`: its certificates as they are now, and clients
/// verified by `validation` when given.
fn tls_config(
    port: u16,
    live: &Arc<Live>,
    validation: Option<&ClientValidation>,
) -> Arc<rustls::ServerConfig> {
    let clients = validation.map(|v| {
        let (verifier, refused) = server::tls::clients::verifier(v);
        for why in refused {
            tracing::warn!(port, error = %why, "client CA certificates were left out");
        }
        verifier
    });
    server::tls::server_config(
        live.clone() as Arc<dyn rustls::server::ResolvesServerCert>,
        clients,
    )
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

#[cfg(test)]
mod tests {
    use frontdesk_snapshot::{Listener, Secret};

    use super::*;

    fn listener(port: u16, protocol: ListenerProtocol, cert: Option<&str>) -> Listener {
        Listener {
            name: format!("ns/gw/{port}"),
            port,
            protocol,
            hostname: None,
            client_validation: None,
            redirect_to_https_port: None,
            hsts: None,
            certificates: cert
                .map(|c| Certificate {
                    source: c.into(),
                    chain: c.into(),
                    key: Secret::new(c),
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn ports_come_from_gateways_or_from_listen() {
        let plain = Snapshot::default();
        let w = wanted(&plain, 8080);
        assert_eq!(w.keys().copied().collect::<Vec<_>>(), [8080]);

        // Declared, even empty: --listen is not served.
        let none = Snapshot {
            listeners_declared: true,
            ..Default::default()
        };
        assert!(wanted(&none, 8080).is_empty());

        // Two HTTPS listeners on one port share it, with both certificates once each.
        let gateways = Snapshot {
            listeners_declared: true,
            listeners: vec![
                listener(80, ListenerProtocol::Http, None),
                listener(443, ListenerProtocol::Https, Some("a")),
                Listener {
                    hostname: Some("b.test".into()),
                    ..listener(443, ListenerProtocol::Https, Some("b"))
                },
                Listener {
                    hostname: Some("c.test".into()),
                    ..listener(443, ListenerProtocol::Https, Some("a"))
                },
            ],
            ..Default::default()
        };
        let w = wanted(&gateways, 8080);
        assert_eq!(w.keys().copied().collect::<Vec<_>>(), [80, 443]);
        let sources: Vec<_> = w[&443]
            .certificates
            .iter()
            .map(|c| c.source.as_str())
            .collect();
        assert_eq!(sources, ["a", "b"]);
        assert_eq!(w[&80].protocol, ListenerProtocol::Http);
    }
}
