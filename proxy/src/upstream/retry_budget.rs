//! A retry budget per backend: retries at most a share of its recent requests (or a few per
//! second), so a failing backend never gets a retry storm (Linkerd's and Envoy's idea).

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// The budget's window: retries are weighed against the requests of the last this many seconds.
const WINDOW_SECONDS: usize = 10;

/// Retries a backend may take: at most `percent` of its requests over the last
/// [`WINDOW_SECONDS`], or `min_per_second` per second, whichever is more.
///
/// Counted per second of the window in atomics, each slot the second it counts (high 32 bits)
/// and its count (low 32): counting a request is one or two atomic operations, without a lock.
pub struct RetryBudget {
    percent: u64,
    min_per_window: u64,
    started: Instant,
    /// By `second % WINDOW_SECONDS`: requests (first tries) that second.
    requests: [AtomicU64; WINDOW_SECONDS],
    /// By `second % WINDOW_SECONDS`: retries that second.
    retries: [AtomicU64; WINDOW_SECONDS],
}

/// Adds one to `slot`'s count for `second`, first emptying it if it counted an older second.
fn count(slot: &AtomicU64, second: u64) {
    let mut seen = slot.load(Ordering::Relaxed);
    loop {
        if seen >> 32 == second {
            slot.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match slot.compare_exchange_weak(
            seen,
            second << 32 | 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return,
            Err(now) => seen = now,
        }
    }
}

/// What `slots` counted over the window ending at `second`.
fn recent(slots: &[AtomicU64; WINDOW_SECONDS], second: u64) -> u64 {
    slots
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|v| second.wrapping_sub(v >> 32) < WINDOW_SECONDS as u64)
        .map(|v| v & 0xffff_ffff)
        .sum()
}

impl RetryBudget {
    pub fn new(percent: u32, min_per_second: u32) -> Self {
        RetryBudget {
            percent: u64::from(percent),
            min_per_window: u64::from(min_per_second) * WINDOW_SECONDS as u64,
            started: Instant::now(),
            requests: Default::default(),
            retries: Default::default(),
        }
    }

    /// The second of the budget's life `at` falls in (from 1: 0 marks an unused slot).
    fn second(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.started).as_secs() + 1) & 0xffff_ffff
    }

    /// Counts a request (a first try) made `at`.
    pub fn request(&self, at: Instant) {
        let second = self.second(at);
        count(&self.requests[second as usize % WINDOW_SECONDS], second);
    }

    /// Takes room for one retry, if there is any.
    pub fn try_retry(&self) -> bool {
        let second = self.second(Instant::now());
        let requests = recent(&self.requests, second);
        let retries = recent(&self.retries, second);
        if retries >= self.min_per_window.max(requests * self.percent / 100) {
            return false;
        }
        count(&self.retries[second as usize % WINDOW_SECONDS], second);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_budget_allows_a_share_of_recent_requests_or_a_floor_per_second() {
        // 20% of requests, at least 1 per second (10 per window).
        let budget = RetryBudget::new(20, 1);
        let granted = |n| (0..n).filter(|_| budget.try_retry()).count();
        assert_eq!(granted(20), 10, "the floor alone: 1/s over the 10 s window");
        for _ in 0..100 {
            budget.request(Instant::now());
        }
        assert_eq!(
            granted(20),
            10,
            "20% of 100 requests is 20, 10 of them taken"
        );
        // Past the window, what was counted is forgotten.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(granted(20), 10);
        for _ in 0..1000 {
            budget.request(Instant::now());
        }
        assert_eq!(
            granted(1000),
            190,
            "200 in all, 10 of them already taken this window"
        );
    }
}
