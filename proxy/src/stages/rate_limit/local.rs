//! Local counters: one GCRA state per bucket, in the proxy's memory.
//!
//! Buckets live in shards (a mutex each) keyed by a 64-bit hash of the bucket's identity.
//! A bucket whose TAT has passed is full again, which is the same as no bucket, so dropping it
//! loses nothing: sweeps remove them, at most once per [`SWEEP_EVERY`] per shard when a shard
//! fills, and every 10 s in the background. Memory is bounded by `max_keys`: when a shard is
//! still full after a sweep, new keys share that shard's overflow bucket (limited together, never
//! let through).
//!
//! Limiters live in a [`Registry`] keyed by their configuration, outside snapshots: a reload
//! that leaves a limit unchanged keeps its counters.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use frontdesk_snapshot::Limit;

use super::gcra::{Gcra, Outcome};
use crate::shared_by_key::SharedByKey;

const SHARDS: usize = 16;
/// Default bound on buckets per limiter (about 40 MB at most).
pub const MAX_KEYS: usize = 1_000_000;
/// Shortest time between two sweeps of a full shard.
const SWEEP_EVERY: u64 = 100_000_000;
/// The overflow bucket of shard `i`: the shard's index in the high bits (where [`shard`]
/// looks), the low bit clear (real buckets have it set).
fn overflow(i: usize) -> u64 {
    (i as u64) << 58
}

fn shard_index(bucket: u64) -> usize {
    (bucket >> 58) as usize % SHARDS
}

pub struct LocalLimiter {
    pub gcra: Gcra,
    base: Instant,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    tats: HashMap<u64, u64>,
    last_sweep: u64,
}

impl LocalLimiter {
    pub fn new(gcra: Gcra, max_keys: usize) -> Self {
        LocalLimiter {
            gcra,
            base: Instant::now(),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// Nanoseconds on this limiter's clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The bucket id of a key (never the overflow bucket's).
    pub fn bucket(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key) | 1
    }

    /// Decides for one request in `bucket` at `now`, taking a token when allowed.
    pub fn acquire(&self, bucket: u64, now: u64) -> (u64, Outcome) {
        let mut shard = self.shard(bucket);
        let mut bucket = bucket;
        if !shard.tats.contains_key(&bucket) && shard.tats.len() >= self.per_shard {
            if now.saturating_sub(shard.last_sweep) >= SWEEP_EVERY {
                shard.last_sweep = now;
                shard.tats.retain(|_, tat| *tat > now);
            }
            if shard.tats.len() >= self.per_shard {
                bucket = overflow(shard_index(bucket));
            }
        }
        let outcome = self.gcra.decide(shard.tats.get(&bucket).copied(), now);
        if outcome.allowed {
            shard.tats.insert(bucket, outcome.tat);
        }
        (bucket, outcome)
    }

    /// Gives back the token taken for a request a later limit refused.
    pub fn refund(&self, bucket: u64) {
        let mut shard = self.shard(bucket);
        if let Some(tat) = shard.tats.get_mut(&bucket) {
            *tat = self.gcra.refund(*tat);
        }
    }

    /// Drops every full bucket.
    pub fn sweep(&self) {
        let now = self.now();
        for s in self.shards.iter() {
            let mut s = s.lock();
            s.tats.retain(|_, tat| *tat > now);
            s.last_sweep = now;
        }
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().tats.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, bucket: u64) -> parking_lot::MutexGuard<'_, Shard> {
        self.shards[shard_index(bucket)].lock()
    }
}

/// Limiters by configuration, shared by successive runtimes.
pub struct Registry {
    limiters: SharedByKey<Limit, LocalLimiter>,
    max_keys: usize,
}

impl Registry {
    pub fn new(max_keys: usize) -> Self {
        Registry {
            limiters: SharedByKey::default(),
            max_keys,
        }
    }

    /// The limiter of `limit`: the running one when the configuration did not change.
    pub fn get(&self, limit: &Limit) -> Arc<LocalLimiter> {
        self.limiters.get_or_make(limit, || {
            let gcra = Gcra::new(
                limit.requests,
                limit.period_ms.saturating_mul(1_000_000),
                limit.burst,
            );
            let limiter = Arc::new(LocalLimiter::new(gcra, self.max_keys));
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(sweep_forever(Arc::downgrade(&limiter)));
            }
            limiter
        })
    }
}

async fn sweep_forever(limiter: Weak<LocalLimiter>) {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        match limiter.upgrade() {
            Some(l) => l.sweep(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn two_hundred_thousand_keys_stay_bounded_and_expire() {
        // 10 per second, burst 10: a bucket is full again 1 s after its last request.
        let l = LocalLimiter::new(Gcra::new(10, S, 10), 50_000);
        let now = 5 * S;
        let mut allowed = 0;
        for i in 0..200_000u32 {
            let b = l.bucket(&i.to_be_bytes());
            allowed += usize::from(l.acquire(b, now).1.allowed);
        }
        // Never more than the bound (plus one overflow bucket per shard)...
        assert!(l.len() <= 50_000 + SHARDS, "{} buckets", l.len());
        // ...and the keys past it did not get through: each bucket of its own let one request
        // pass, and each overflow bucket at most its burst.
        assert!(
            allowed <= l.len() + 10 * SHARDS,
            "{allowed} allowed for {} buckets",
            l.len()
        );
        // Keys past the bound share the overflow bucket: limited together, never let through.
        let b = l.bucket(b"one more");
        let (used, _) = l.acquire(b, now);
        assert_eq!(used, overflow(shard_index(b)));
        let mut refused = 0;
        for _ in 0..20 {
            if !l.acquire(l.bucket(b"yet another"), now).1.allowed {
                refused += 1;
            }
        }
        assert!(refused >= 10, "{refused}");
        // After a quiet second every bucket is full again: a sweep frees them all.
        let later = now + 2 * S;
        for s in l.shards.iter() {
            s.lock().tats.retain(|_, tat| *tat > later);
        }
        assert_eq!(l.len(), 0);
        // And new keys get buckets of their own again.
        let fresh = l.bucket(b"fresh");
        assert_eq!(l.acquire(fresh, later).0, fresh);
    }

    #[test]
    fn a_full_shard_is_swept_before_falling_back_to_overflow() {
        let l = LocalLimiter::new(Gcra::new(1, S, 1), SHARDS * 4);
        for i in 0..10_000u32 {
            l.acquire(l.bucket(&i.to_be_bytes()), 0);
        }
        // Much later, every old bucket is full: inserting sweeps instead of overflowing.
        let (bucket, o) = l.acquire(l.bucket(b"late"), 10 * S);
        assert!(o.allowed);
        assert_eq!(bucket & 1, 1, "a bucket of its own");
    }

    #[test]
    fn unchanged_limits_keep_their_limiter() {
        let r = Registry::new(MAX_KEYS);
        let limit = Limit {
            id: "ns/p/l".into(),
            name: "l".into(),
            requests: 5,
            period_ms: 1000,
            burst: 5,
            key: frontdesk_snapshot::LimitKey::Route,
            scope: frontdesk_snapshot::LimitScope::Local,
        };
        let a = r.get(&limit);
        assert!(Arc::ptr_eq(&a, &r.get(&limit)));
        let changed = Limit {
            requests: 6,
            ..limit
        };
        assert!(!Arc::ptr_eq(&a, &r.get(&changed)));
    }
}
