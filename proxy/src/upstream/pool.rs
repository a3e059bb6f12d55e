//! Connection pools, one per backend endpoint, over hyper's HTTP/1.1 client connections.
//!
//! A request takes the most recently used idle connection of its endpoint (warm, and the
//! likeliest to still be open), or dials a new one; the connection goes back to the pool when
//! the response body has been read to its end, and is dropped (closed) when the client went
//! away mid-body. Nothing is spawned per request and no lock is held across an await: the
//! legacy pooled client spent two tasks and a channel per request on what this does inline.
//!
//! Pools are process-wide and found through a registry by endpoint, so a snapshot swap that
//! keeps an endpoint keeps its warm connections; a pool no snapshot refers to any more is
//! freed with its connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::UpstreamBody;

/// How connections to backends are made and kept.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub connect_timeout: Duration,
    /// An idle connection older than this is closed instead of reused.
    pub idle_timeout: Duration,
    pub max_idle_per_endpoint: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_idle_per_endpoint: 256,
        }
    }
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
    #[error("the HTTP/1.1 handshake failed: {0}")]
    Handshake(hyper::Error),
}

/// The process-wide pools, by endpoint.
pub struct Pools {
    config: PoolConfig,
    by_endpoint: Mutex<HashMap<Authority, Weak<EndpointPool>>>,
}

impl Pools {
    pub fn new(config: PoolConfig) -> Self {
        Pools {
            config,
            by_endpoint: Mutex::new(HashMap::new()),
        }
    }

    /// The pool of `endpoint`, shared with every snapshot that names it. Called when a
    /// snapshot is built, never per request.
    pub fn get(&self, endpoint: &Authority) -> Arc<EndpointPool> {
        let mut map = self.by_endpoint.lock();
        if let Some(pool) = map.get(endpoint).and_then(Weak::upgrade) {
            return pool;
        }
        // Drop the entries of pools that are gone, so the map stays as small as the
        // endpoints in use.
        map.retain(|_, w| w.strong_count() > 0);
        let pool = Arc::new(EndpointPool {
            authority: endpoint.clone(),
            address: endpoint_address(endpoint),
            config: self.config.clone(),
            idle: Mutex::new(Vec::new()),
        });
        map.insert(endpoint.clone(), Arc::downgrade(&pool));
        pool
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
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

/// One endpoint's idle connections, most recently used last.
pub struct EndpointPool {
    pub authority: Authority,
    address: Option<SocketAddr>,
    config: PoolConfig,
    idle: Mutex<Vec<Idle>>,
}

/// A connection taken from a pool, ready to send one request.
pub struct Connection {
    pub sender: SendRequest<UpstreamBody>,
    /// Whether it served a request before (a failure to send on it may be the backend having
    /// closed it while idle).
    pub reused: bool,
}

impl EndpointPool {
    /// An idle connection ready for a request, or a new one.
    pub async fn connection(&self) -> Result<Connection, ConnectError> {
        if let Some(sender) = self.take_idle() {
            return Ok(Connection {
                sender,
                reused: true,
            });
        }
        Ok(Connection {
            // Boxed: dialing (name resolution, handshake) is rare and its future large.
            sender: Box::pin(self.dial()).await?,
            reused: false,
        })
    }

    fn take_idle(&self) -> Option<SendRequest<UpstreamBody>> {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        while let Some(Idle { sender, since }) = idle.pop() {
            if now.duration_since(since) >= self.config.idle_timeout {
                // Everything below is older still.
                idle.clear();
                return None;
            }
            if sender.is_ready() {
                return Some(sender);
            }
            // Closed by the backend, or still busy: dropping it closes it.
        }
        None
    }

    /// Opens a new connection and starts its I/O task (one per connection, not per request).
    pub async fn dial(&self) -> Result<SendRequest<UpstreamBody>, ConnectError> {
        let timeout = self.config.connect_timeout;
        let stream = tokio::time::timeout(timeout, async {
            match self.address {
                Some(addr) => TcpStream::connect(addr).await.map_err(ConnectError::Io),
                None => {
                    let addrs = tokio::net::lookup_host(self.authority.as_str())
                        .await
                        .map_err(ConnectError::Resolve)?;
                    let mut last = None;
                    for addr in addrs {
                        match TcpStream::connect(addr).await {
                            Ok(s) => return Ok(s),
                            Err(e) => last = Some(e),
                        }
                    }
                    Err(ConnectError::Resolve(last.unwrap_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                    })))
                }
            }
        })
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(64 * 1024)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Puts a connection whose exchange is complete back for the next request.
    fn put_back(&self, sender: SendRequest<UpstreamBody>) {
        if !sender.is_ready() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() >= self.config.max_idle_per_endpoint {
            // The oldest goes: the newest are the warmest.
            idle.remove(0);
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
    }

    /// Idle connections kept now (for tests and the admin view).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}

pin_project_lite::pin_project! {
    /// A backend's response body that returns its connection to the pool when it ends.
    pub struct PooledBody {
        #[pin]
        inner: Incoming,
        give_back: Option<(Arc<EndpointPool>, SendRequest<UpstreamBody>)>,
    }
}

impl PooledBody {
    pub fn new(
        inner: Incoming,
        pool: Arc<EndpointPool>,
        sender: SendRequest<UpstreamBody>,
    ) -> Self {
        let mut body = PooledBody {
            inner,
            give_back: Some((pool, sender)),
        };
        // A bodiless response (204, 304, HEAD, Content-Length: 0) is complete already.
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((pool, sender)) = self.give_back.take() {
            pool.put_back(sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            // A broken body leaves the connection in an unknown state: it is not reused.
            Poll::Ready(Some(Err(_))) => {
                this.give_back.take();
                false
            }
            Poll::Pending => false,
        };
        if ended && let Some((pool, sender)) = this.give_back.take() {
            pool.put_back(sender);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
