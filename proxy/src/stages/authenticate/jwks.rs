//! Remote key sets (`jwksUri`): fetched by the proxy, kept fresh in the background, refetched
//! (rate-limited) when a token names a key id nobody has seen, and kept when the server fails.
//!
//! One fetcher per distinct configuration lives in a [`Registry`] that outlives snapshots, so a
//! configuration reload does not refetch, and the fetcher's task ends once no runtime uses it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use frontdesk_snapshot::RemoteJwks as Config;
use http::{HeaderMap, Request, header};
use http_body_util::{BodyExt, Full, Limited};

use super::HttpClient;
use super::keys::KeySet;
use crate::shared_by_key::SharedByKey;

/// Bounds on how long a fetched set is used before refreshing, whatever the server says.
pub const MIN_TTL: Duration = Duration::from_secs(10);
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Largest JWKS document accepted.
pub const MAX_BYTES: usize = 1 << 20;
/// Refresh this far into the freshness lifetime, so keys never go stale while serving.
const REFRESH_AT: f64 = 0.8;

/// Fetchers by configuration.
pub struct Registry {
    http: Arc<HttpClient>,
    fetchers: SharedByKey<Config, RemoteJwks>,
}

impl Registry {
    pub fn new(http: HttpClient) -> Self {
        Registry {
            http: Arc::new(http),
            fetchers: SharedByKey::default(),
        }
    }

    /// The fetcher for `cfg`, shared with earlier runtimes when one is still alive; a new one
    /// starts fetching at once in the background (when a Tokio runtime is around), with `http`
    /// (the client of `cfg.tls`) or, without it, the registry's own.
    pub fn get(&self, cfg: &Config, http: Option<Arc<HttpClient>>) -> Arc<RemoteJwks> {
        self.fetchers.get_or_make(cfg, || {
            let fetcher = Arc::new(RemoteJwks {
                cfg: cfg.clone(),
                http: http.unwrap_or_else(|| self.http.clone()),
                keys: ArcSwapOption::empty(),
                generation: AtomicU64::new(0),
                last_attempt: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            });
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(refresh(Arc::downgrade(&fetcher)));
            }
            fetcher
        })
    }
}

pub struct RemoteJwks {
    cfg: Config,
    http: Arc<HttpClient>,
    keys: ArcSwapOption<KeySet>,
    /// Bumped on every successful fetch, so verification caches can tell keys changed.
    generation: AtomicU64,
    last_attempt: Mutex<Option<Instant>>,
    /// One fetch at a time; waiters see its result.
    fetching: tokio::sync::Mutex<()>,
}

impl RemoteJwks {
    pub fn uri(&self) -> &str {
        &self.cfg.uri
    }

    /// The last good key set, if any fetch ever succeeded.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Called when a token names a key id the current set lacks (or there is no set yet):
    /// waits for a fetch in progress, or fetches now unless the last attempt was less than
    /// `refetchInterval` ago. `seen` is the generation the caller looked at.
    pub async fn refetch(&self, seen: u64) {
        let _one = self.fetching.lock().await;
        if self.generation() != seen {
            return; // someone else fetched meanwhile
        }
        let interval = Duration::from_millis(self.cfg.refetch_interval_ms);
        let recent = self
            .last_attempt
            .lock()
            .is_some_and(|at| at.elapsed() < interval);
        if recent {
            return;
        }
        if let Err(e) = self.fetch().await {
            tracing::warn!(uri = %self.cfg.uri, error = %e, "JWKS refetch for an unknown key id failed; the last good keys stay");
        }
    }

    /// One fetch; on success the new set replaces the old and its freshness lifetime is
    /// returned. On failure the old set stays.
    async fn fetch(&self) -> Result<Duration, String> {
        *self.last_attempt.lock() = Some(Instant::now());
        let req = Request::get(&self.cfg.uri)
            .header(header::ACCEPT, "application/json, application/jwk-set+json")
            .header(header::USER_AGENT, "frontdesk-proxy")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let fetch = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| format!("cannot reach the key server: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("the key server answered {}", resp.status()));
            }
            let ttl = freshness(resp.headers()).unwrap_or(Duration::from_secs(self.cfg.cache_secs));
            let body = Limited::new(resp.into_body(), MAX_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the key set: {e}"))?
                .to_bytes();
            Ok((ttl, body))
        };
        let (ttl, body) = tokio::time::timeout(timeout, fetch)
            .await
            .map_err(|_| format!("no answer within {timeout:?}"))??;
        let (set, skipped) = KeySet::parse_remote(&body)?;
        if !skipped.is_empty() {
            tracing::debug!(uri = %self.cfg.uri, ?skipped, "JWKS keys skipped");
        }
        tracing::info!(uri = %self.cfg.uri, keys = set.len(), "JWKS fetched");
        self.keys.store(Some(Arc::new(set)));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(ttl.clamp(MIN_TTL, MAX_TTL))
    }
}

/// Fetches at once, then again before each set goes stale; retries failures with backoff.
/// Ends when the fetcher is no longer used.
async fn refresh(fetcher: Weak<RemoteJwks>) {
    let mut failures = 0u32;
    loop {
        let Some(f) = fetcher.upgrade() else { return };
        let wait = {
            let _one = f.fetching.lock().await;
            match f.fetch().await {
                Ok(ttl) => {
                    failures = 0;
                    ttl.mul_f64(REFRESH_AT)
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(uri = %f.cfg.uri, error = %e, failures, "JWKS fetch failed; the last good keys stay");
                    Duration::from_millis(500 << failures.min(6)).min(Duration::from_secs(30))
                }
            }
        };
        drop(f);
        tokio::time::sleep(wait).await;
    }
}

/// How long a response may be used, from Cache-Control: `max-age`, or zero for `no-store` /
/// `no-cache` (clamped to [`MIN_TTL`] by the caller).
pub fn freshness(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for v in headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for d in v.split(',').map(str::trim) {
            let lower = d.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                return Some(Duration::ZERO);
            }
            if let Some(n) = lower.strip_prefix("max-age=") {
                max_age = n.trim_matches('"').parse().ok().map(Duration::from_secs);
            }
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_freshness() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CACHE_CONTROL, v.parse().unwrap());
            m
        };
        assert_eq!(
            freshness(&h("public, max-age=600")),
            Some(Duration::from_secs(600))
        );
        assert_eq!(freshness(&h("no-store")), Some(Duration::ZERO));
        assert_eq!(freshness(&h("public")), None);
        assert_eq!(freshness(&HeaderMap::new()), None);
    }
}
