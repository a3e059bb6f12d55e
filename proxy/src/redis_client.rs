//! The proxy's Redis (`--redis-url`): what Global rate limits and the response cache's shared
//! tier talk to. Connections are multiplexed `ConnectionManager`s, created lazily (a proxy
//! starts while Redis is down) that reconnect by themselves; calls are spread over a few of
//! them, and each has a deadline (`--redis-timeout`). A failure is the caller's to handle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub struct Redis {
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    timeout: Duration,
}

impl Redis {
    /// Connections are opened on first use; must be called inside a Tokio runtime. A
    /// `rediss://` URL speaks TLS, verified against `ca` (PEM; `--redis-ca-file`) or, without
    /// it, the system's trusted roots.
    pub fn new(
        url: &str,
        timeout: Duration,
        connections: usize,
        ca: Option<Vec<u8>>,
    ) -> Result<Self, String> {
        if let Some(ca) = &ca {
            use rustls_pki_types::{CertificateDer, pem::PemObject};
            let certs = CertificateDer::pem_slice_iter(ca)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--redis-ca-file: not PEM: {e}"))?;
            if certs.is_empty() {
                return Err("--redis-ca-file holds no PEM certificate".into());
            }
        }
        let client = match ca {
            Some(ca) if url.starts_with("rediss://") => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                },
            ),
            Some(_) => return Err("--redis-ca-file needs a rediss:// --redis-url".into()),
            None => redis::Client::open(url),
        }
        .map_err(|e| format!("--redis-url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let connections = (0..connections.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("redis: {e}"))?;
        Ok(Redis {
            connections,
            next: AtomicUsize::new(0),
            timeout,
        })
    }

    /// A connection to send one call on, in turn.
    pub fn connection(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    /// `call`'s answer within the deadline.
    pub async fn within<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("no answer from Redis within {:?}", self.timeout))?
            .map_err(|e| format!("Redis: {e}"))
    }
}
