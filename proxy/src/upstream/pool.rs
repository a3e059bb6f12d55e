//! Connection pools, one per backend endpoint, of HTTP/1.1 connections ([`super::h1`]), or of
//! the one multiplexed HTTP/2 connection of an endpoint spoken to in HTTP/2 ([`super::h2`]).
//!
//! A request takes the most recently used idle connection of its endpoint (warm, and the
//! likeliest to still be open) that has seen nothing arrive while idle, or dials a new one; the
//! connection goes back to the pool when the response body has been read to its end, and is
//! dropped (closed) when the client went away mid-body. Nothing is spawned, per request or per
//! connection, and no lock is held across an await.
//!
//! Pools are process-wide and found through a registry by endpoint, so a snapshot swap that
//! keeps an endpoint keeps its warm connections; a pool no snapshot refers to any more is
//! freed with its connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use frontdesk_snapshot as snap;

use http::uri::Authority;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::h1::Connection;
use super::tls::{BackendIo, TlsClient};
use crate::shared_by_key::SharedByKey;

/// How connections to backends are made and kept.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The defaults of every endpoint's [`Timeouts`] (`--upstream-connect-timeout`,
    /// `--upstream-idle-timeout`); a Policy's `backendConnection` overrides them.
    pub timeouts: Timeouts,
    pub max_idle_per_endpoint: usize,
    /// Never connect to loopback, link-local (cloud metadata) or unspecified addresses,
    /// whatever a name resolves to or an endpoint says (`--refuse-internal-upstreams`).
    pub refuse_internal: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            timeouts: Timeouts {
                connect: Duration::from_secs(5),
                idle: Duration::from_secs(60),
            },
            max_idle_per_endpoint: 256,
            refuse_internal: false,
        }
    }
}

/// The timeouts of one backend's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting takes at most this long.
    pub connect: Duration,
    /// An idle connection older than this is closed instead of reused. Pools are shared by
    /// every backend naming the endpoint, so each request applies its backend's.
    pub idle: Duration,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the endpoint's host name did not resolve: {0}")]
    Resolve(std::io::Error),
    #[error("connecting timed out after {0:?}")]
    Timeout(Duration),
    #[error("connecting failed: {0}")]
    Io(std::io::Error),
    #[error("the TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error(
        "{0} is an internal address; connections to it are refused (--refuse-internal-upstreams)"
    )]
    Internal(std::net::IpAddr),
    /// ALPN picked another protocol than the endpoint was known to speak (`auto`): the next
    /// request speaks the new one.
    #[error("the backend's TLS handshake picked another HTTP version than before")]
    ProtocolChanged,
    #[error("the HTTP/2 handshake failed: {0}")]
    Http2(hyper::Error),
}

/// The process-wide pools, by endpoint.
pub struct Pools {
    config: PoolConfig,
    /// By endpoint, TLS setting (`None`: plaintext) and protocol.
    by_endpoint: SharedByKey<(Authority, Option<Arc<str>>, snap::BackendProtocol), EndpointPool>,
}

impl Pools {
    pub fn new(config: PoolConfig) -> Self {
        Pools {
            config,
            by_endpoint: SharedByKey::default(),
        }
    }

    /// The timeouts of endpoints whose backend sets none.
    pub fn timeouts(&self) -> Timeouts {
        self.config.timeouts
    }

    /// The pool of `endpoint`, shared with every snapshot that names it. Called when a
    /// snapshot is built, never per request.
    /// With `tls`, the pool of the endpoint reached over TLS with that setting: connections
    /// made with other settings (or none) are other pools.
    pub fn get(
        &self,
        endpoint: &Authority,
        tls: Option<&Arc<TlsClient>>,
        protocol: snap::BackendProtocol,
    ) -> Arc<EndpointPool> {
        let key = (endpoint.clone(), tls.map(|t| t.key.clone()), protocol);
        self.by_endpoint.get_or_make(&key, || {
            let speaks = match protocol {
                snap::BackendProtocol::H2 | snap::BackendProtocol::H2c => SPEAKS_H2,
                snap::BackendProtocol::Auto if tls.is_some() => UNKNOWN,
                _ => SPEAKS_H1,
            };
            Arc::new(EndpointPool {
                authority: endpoint.clone(),
                address: endpoint_address(endpoint),
                config: self.config.clone(),
                tls: tls.cloned(),
                idle: Mutex::new(Vec::new()),
                refused_once: Default::default(),
                speaks: AtomicU8::new(speaks),
                auto: protocol == snap::BackendProtocol::Auto,
                h2: Default::default(),
            })
        })
    }
}

/// A literal `ip:port` is used as is; a name is resolved at each dial (it may move).
fn endpoint_address(endpoint: &Authority) -> Option<SocketAddr> {
    let host = endpoint
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, endpoint.port_u16().unwrap_or(80)))
}

struct Idle {
    conn: Box<Connection>,
    since: Instant,
}

/// One endpoint's idle connections, most recently used last.
pub struct EndpointPool {
    pub authority: Authority,
    address: Option<SocketAddr>,
    config: PoolConfig,
    /// TLS on every connection, when the backend speaks it.
    tls: Option<Arc<TlsClient>>,
    idle: Mutex<Vec<Idle>>,
    /// An internal address was refused already: said at warn once, then at debug.
    refused_once: std::sync::atomic::AtomicBool,
    /// [`SPEAKS_H1`], [`SPEAKS_H2`], or [`UNKNOWN`] until ALPN said (`auto` over TLS).
    speaks: AtomicU8,
    /// `auto`: ALPN decides, and may decide otherwise on a later connection.
    auto: bool,
    /// The HTTP/2 connection, when the endpoint speaks HTTP/2.
    pub(super) h2: super::h2::Slot,
}

const UNKNOWN: u8 = 0;
const SPEAKS_H1: u8 = 1;
const SPEAKS_H2: u8 = 2;

/// A connection taken from a pool, ready to send one request.
pub struct Checkout {
    pub conn: Box<Connection>,
    /// Whether it served a request before (a failure before any answer on it may be the
    /// backend having closed it while idle).
    pub reused: bool,
}

impl EndpointPool {
    /// An idle connection ready for a request, or a new one.
    pub async fn connection(&self, timeouts: Timeouts) -> Result<Checkout, ConnectError> {
        if let Some(conn) = self.take_idle(timeouts.idle) {
            return Ok(Checkout { conn, reused: true });
        }
        Ok(Checkout {
            // Boxed: dialing (name resolution) is rare and its future large.
            conn: Box::pin(self.dial(timeouts.connect)).await?,
            reused: false,
        })
    }

    /// An idle connection ready for a request, if the pool has one now.
    pub fn idle_connection(&self, idle_timeout: Duration) -> Option<Checkout> {
        self.take_idle(idle_timeout)
            .map(|conn| Checkout { conn, reused: true })
    }

    fn take_idle(&self, idle_timeout: Duration) -> Option<Box<Connection>> {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        while let Some(Idle { mut conn, since }) = idle.pop() {
            if now.duration_since(since) >= idle_timeout {
                // Everything below is older still.
                idle.clear();
                return None;
            }
            if conn.reusable_now() {
                return Some(conn);
            }
            // Closed by the backend (or it sent something unasked): dropping it closes it.
        }
        None
    }

    /// Whether requests to the endpoint go over HTTP/2, when that is known without connecting.
    pub fn known_h2(&self) -> Option<bool> {
        match self.speaks.load(Ordering::Acquire) {
            SPEAKS_H2 => Some(true),
            SPEAKS_H1 => Some(false),
            _ => None,
        }
    }

    /// Whether the endpoint is reached over TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether requests to the endpoint go over HTTP/2. For `auto` over TLS, the first call
    /// connects and asks ALPN; that connection serves the next request of its protocol.
    pub async fn speaks_h2(&self, timeouts: Timeouts) -> Result<bool, ConnectError> {
        if let Some(known) = self.known_h2() {
            return Ok(known);
        }
        // One request asks; the others wait for its answer, or fail with it.
        let failures = self.h2.failures();
        let _asking = self.h2.dialing.lock().await;
        if let Some(known) = self.known_h2() {
            return Ok(known);
        }
        if self.h2.failures() != failures {
            return Err(super::h2::waited_for_a_failure());
        }
        let asked = async {
            let io = Box::pin(self.connect(timeouts.connect)).await?;
            let h2 = io.negotiated_h2();
            if h2 {
                self.h2.install(io, timeouts.connect).await?;
            } else {
                self.put_back(Box::new(Connection::new(io)));
            }
            Ok(h2)
        };
        let h2 = match asked.await {
            Ok(h2) => h2,
            Err(e) => {
                self.h2.failed();
                return Err(e);
            }
        };
        self.speaks
            .store(if h2 { SPEAKS_H2 } else { SPEAKS_H1 }, Ordering::Release);
        Ok(h2)
    }

    /// A new connection's protocol agrees with what the endpoint was known to speak; for
    /// `auto`, a change is noted for the next request, and this connection is not used.
    pub(super) fn check_negotiated(&self, io: &BackendIo, h2: bool) -> Result<(), ConnectError> {
        if self.tls.is_none() || io.negotiated_h2() == h2 {
            return Ok(());
        }
        if self.auto && self.speaks.load(Ordering::Acquire) != UNKNOWN {
            self.speaks
                .store(if h2 { SPEAKS_H1 } else { SPEAKS_H2 }, Ordering::Release);
        }
        Err(ConnectError::ProtocolChanged)
    }

    /// Opens a new HTTP/1.1 connection, within `timeout`.
    pub async fn dial(&self, timeout: Duration) -> Result<Box<Connection>, ConnectError> {
        let io = self.connect(timeout).await?;
        self.check_negotiated(&io, false)?;
        Ok(Box::new(Connection::new(io)))
    }

    /// Connects (TCP, then TLS when the backend speaks it), within `timeout`.
    pub(super) async fn connect(&self, timeout: Duration) -> Result<BackendIo, ConnectError> {
        let refused = |ip: std::net::IpAddr| {
            self.config.refuse_internal && frontdesk_crds::compile::urls::is_internal_address(ip)
        };
        let deadline = Instant::now() + timeout;
        let stream = tokio::time::timeout_at(deadline, async {
            match self.address {
                Some(addr) if refused(addr.ip()) => Err(ConnectError::Internal(addr.ip())),
                Some(addr) => TcpStream::connect(addr).await.map_err(ConnectError::Io),
                None => {
                    let addrs = tokio::net::lookup_host(self.authority.as_str())
                        .await
                        .map_err(ConnectError::Resolve)?;
                    let mut last = None;
                    for addr in addrs {
                        if refused(addr.ip()) {
                            last = Some(ConnectError::Internal(addr.ip()));
                            continue;
                        }
                        match TcpStream::connect(addr).await {
                            Ok(s) => return Ok(s),
                            Err(e) => last = Some(ConnectError::Io(e)),
                        }
                    }
                    Err(last.unwrap_or_else(|| {
                        ConnectError::Resolve(std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no address",
                        ))
                    }))
                }
            }
        })
        .await
        .map_err(|_| ConnectError::Timeout(timeout))?
        .inspect_err(|e| {
            if let ConnectError::Internal(_) = e {
                // Every request to the endpoint is refused: once at warn is enough.
                if self.refused_once.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::debug!(endpoint = %self.authority, error = %e, "a backend connection was refused");
                } else {
                    tracing::warn!(endpoint = %self.authority, error = %e, "a backend connection was refused");
                }
            }
        })?;
        let _ = stream.set_nodelay(true);
        let io = match &self.tls {
            None => BackendIo::Plain(stream),
            Some(tls) => {
                let handshake = tokio::time::timeout_at(deadline, tls.handshake(stream)).await;
                match handshake {
                    Err(_) => return Err(ConnectError::Timeout(timeout)),
                    Ok(Err(e)) => return Err(ConnectError::Tls(e)),
                    Ok(Ok(s)) => BackendIo::Tls(Box::new(s)),
                }
            }
        };
        Ok(io)
    }

    /// Puts a connection whose exchange is complete back for the next request.
    pub(super) fn put_back(&self, conn: Box<Connection>) {
        let mut idle = self.idle.lock();
        if idle.len() >= self.config.max_idle_per_endpoint {
            // The oldest goes: the newest are the warmest.
            idle.remove(0);
        }
        idle.push(Idle {
            conn,
            since: Instant::now(),
        });
    }
}
