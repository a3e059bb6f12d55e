//! What the response cache keeps across snapshots: the memory ([`Store`]), the requests at
//! the backend ([`Inflight`]), the shared tier, the counters, and the recent removals that a
//! late store must not undo.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;

use super::inflight::Inflight;
use super::rfc9111::varied_values;
use super::shared_tier::{self, SharedTier};
use super::store::{self, Store};
use super::stored::Stored;
use super::{MAX_REFRESHES, now};
use crate::metrics::{CacheLabels, Metrics};

/// What outlives snapshots: the memory, the requests at the backend, the counters.
pub struct CacheShared {
    pub(super) store: Store<Stored>,
    pub(super) inflight: Inflight,
    pub(super) metrics: CacheMetrics,
    /// Redis, for `Global` sections (`--redis-url`).
    pub(super) tier: Option<Arc<SharedTier>>,
    pub(super) refreshes: Arc<Semaphore>,
    removals: Removals,
}

/// When an answer was asked for, and the URI part of its key when it goes to the shared tier.
pub(super) struct Asked<'a> {
    pub requested: SystemTime,
    pub shared_uri: Option<&'a str>,
}

/// Recent invalidations, purges and removals: an answer asked for before one of them and
/// stored after it (its body took that long) may be what was removed, and is not stored.
#[derive(Default)]
struct Removals {
    recent: parking_lot::Mutex<std::collections::VecDeque<(Removed, SystemTime)>>,
}

enum Removed {
    Prefix(Box<str>),
    Tag(Box<str>),
}

/// Removals remembered at most, and for at most this long.
const REMOVALS_KEPT: usize = 1024;
const REMOVALS_FOR: Duration = Duration::from_secs(600);

impl Removals {
    fn note(&self, removed: Removed) {
        let now = now();
        let mut recent = self.recent.lock();
        while recent.len() >= REMOVALS_KEPT
            || recent
                .front()
                .is_some_and(|(_, at)| now.duration_since(*at).unwrap_or_default() > REMOVALS_FOR)
        {
            recent.pop_front();
        }
        recent.push_back((removed, now));
    }

    /// Whether `key` (tagged `tags`) was removed at or after `requested`.
    fn since(&self, requested: SystemTime, key: &str, tags: &[Box<str>]) -> bool {
        self.recent.lock().iter().rev().any(|(removed, at)| {
            *at >= requested
                && match removed {
                    Removed::Prefix(p) => key.starts_with(&**p),
                    Removed::Tag(t) => tags.contains(t),
                }
        })
    }
}

pub(super) struct CacheMetrics {
    pub(super) hit: Counter,
    pub(super) miss: Counter,
    pub(super) stale: Counter,
    pub(super) revalidated: Counter,
    pub(super) coalesced: Counter,
    pub(super) shared_hit: Counter,
    pub(super) shared_error: Counter,
    pub(super) bytes: Gauge,
    pub(super) keys: Gauge,
    pub(super) evictions: Counter,
}

impl CacheShared {
    /// A cache of at most `capacity` bytes, in this proxy only.
    pub fn new(capacity: usize, metrics: &Metrics) -> Self {
        CacheShared::with_tier(capacity, metrics, None)
    }

    /// A cache of at most `capacity` bytes whose `Global` sections share answers in `tier`.
    pub fn with_tier(capacity: usize, metrics: &Metrics, tier: Option<SharedTier>) -> Self {
        let result = |result| {
            metrics
                .cache_requests
                .get_or_create(&CacheLabels { result })
                .clone()
        };
        CacheShared {
            store: Store::new(capacity, capacity),
            inflight: Inflight::default(),
            metrics: CacheMetrics {
                hit: result("hit"),
                miss: result("miss"),
                stale: result("stale"),
                revalidated: result("revalidated"),
                coalesced: result("coalesced"),
                shared_hit: result("shared-hit"),
                shared_error: result("shared-error"),
                bytes: metrics.cache_bytes.clone(),
                keys: metrics.cache_keys.clone(),
                evictions: metrics.cache_evictions.clone(),
            },
            tier: tier.map(Arc::new),
            refreshes: Arc::new(Semaphore::new(MAX_REFRESHES)),
            removals: Removals::default(),
        }
    }

    /// Removes the answers whose key starts with `prefix` (`GET`, the separator, then the
    /// URI: see [`super::key`]); how many keys (the shared tier's are removed in the background).
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        self.removals.note(Removed::Prefix(prefix.into()));
        if let Some(tier) = &self.tier {
            tier.remove_prefix(prefix);
        }
        let n = self.store.purge_prefix(prefix);
        self.note_size();
        n
    }

    /// Removes the answers tagged `tag`; how many keys (the shared tier's are removed in the
    /// background).
    pub fn purge_tag(&self, tag: &str) -> usize {
        self.removals.note(Removed::Tag(tag.into()));
        if let Some(tier) = &self.tier {
            tier.remove_tag(tag);
        }
        let n = self.store.purge_tag(tag);
        self.note_size();
        n
    }

    /// Removes the answer stored under `key` for `request`'s values of the fields it varies
    /// on, here and in the shared tier when `global`.
    pub(super) fn forget(&self, key: &str, request: &HeaderMap, global: bool) {
        self.removals.note(Removed::Prefix(key.into()));
        if global && let Some(tier) = &self.tier {
            tier.remove_key(key);
        }
        self.store.remove_variant(key, request);
        self.note_size();
    }

    /// An unsafe method's invalidation of the answers of a URI (`prefix`: the URI part of
    /// their keys), here and in the shared tier when `global`.
    pub(super) fn invalidate(&self, prefix: &str, global: bool) {
        self.removals.note(Removed::Prefix(prefix.into()));
        if global && let Some(tier) = &self.tier {
            tier.remove_uri(prefix);
        }
        self.store.purge_prefix(prefix);
        self.note_size();
    }

    /// What the store holds, and its evictions so far.
    pub fn stats(&self) -> store::Stats {
        self.store.stats()
    }

    fn note_size(&self) {
        let stats = self.store.stats();
        self.metrics.bytes.set(stats.bytes as i64);
        self.metrics.keys.set(stats.keys as i64);
    }
}

impl CacheShared {
    /// Stores an answer asked for at `asked.requested` unless something it may be was removed
    /// since, and puts it in the shared tier too when `asked` gives the key's URI part;
    /// whether it was stored here.
    pub(super) fn keep(
        &self,
        key: &str,
        asked: Asked<'_>,
        vary: Vec<HeaderName>,
        request: &HeaderMap,
        stored: Stored,
        size: usize,
    ) -> bool {
        let Asked {
            requested,
            shared_uri,
        } = asked;
        // Removed since it was asked for: what it answered may be what was removed.
        if self.removals.since(requested, key, &stored.tags) {
            return false;
        }
        if let (Some(uri), Some(tier)) = (shared_uri, &self.tier) {
            let values = varied_values(&vary, request);
            let parts = shared_tier::Parts {
                stored: &stored,
                vary: &vary,
                values: &values,
            };
            tier.put(key, uri, parts, requested, now());
        }
        self.insert(key, vary, request, stored, size)
    }

    /// Stores an answer; whether it fit.
    pub(super) fn insert(
        &self,
        key: &str,
        vary: Vec<HeaderName>,
        request: &HeaderMap,
        stored: Stored,
        size: usize,
    ) -> bool {
        let tags = stored.tags.clone();
        match self.store.insert(key, vary, request, stored, size, tags) {
            Ok(done) => {
                self.metrics.evictions.inc_by(done.evicted);
                self.metrics.bytes.set(done.bytes as i64);
                self.metrics.keys.set(done.keys as i64);
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_asked_for_before_a_removal_that_may_cover_it_is_refused() {
        let removals = Removals::default();
        let before = now();
        removals.note(Removed::Prefix("GET\u{1}http://a/x\u{1}".into()));
        removals.note(Removed::Tag("t".into()));
        let key = "GET\u{1}http://a/x\u{1}\u{1}ns/r/0#1\u{1}c";
        assert!(removals.since(before, key, &[]));
        assert!(removals.since(before, "GET\u{1}http://a/y\u{1}", &["t".into()]));
        assert!(!removals.since(before, "GET\u{1}http://a/y\u{1}", &["u".into()]));
        // Asked for after them: stored.
        let after = now() + Duration::from_millis(1);
        assert!(!removals.since(after, key, &[]));
    }
}
