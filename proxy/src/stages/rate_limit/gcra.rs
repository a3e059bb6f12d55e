//! GCRA (the generic cell rate algorithm): a token bucket kept as one number per key, the
//! theoretical arrival time (TAT) of the next request. Exact: with burst B, B requests at once
//! pass and the next waits one emission interval; no fixed windows, so no double burst at a
//! window boundary. Pure arithmetic on nanoseconds; the stores keep the TATs.
//!
//! The Redis script (`redis.rs`) implements the same decision in Lua, in microseconds.

/// One limit's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gcra {
    /// Time between two requests at the sustained rate: period / requests.
    pub interval: u64,
    /// Requests allowed at once.
    pub burst: u64,
}

/// The decision for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// The TAT to store when allowed.
    pub tat: u64,
    /// Requests that could still pass right now (after this one, when allowed).
    pub remaining: u64,
    /// Time until the bucket is full again.
    pub reset: u64,
    /// When refused: time until one request would pass.
    pub retry_after: u64,
}

impl Gcra {
    pub fn new(requests: u64, period_ns: u64, burst: u64) -> Self {
        Gcra {
            interval: (period_ns / requests.max(1)).max(1),
            burst: burst.max(1),
        }
    }

    /// The decision for a request at `now`, given the stored TAT (`None`: an unknown or
    /// expired key, the same as a full bucket).
    pub fn decide(&self, stored: Option<u64>, now: u64) -> Outcome {
        let tat = stored.unwrap_or(now).max(now);
        let window = self.interval.saturating_mul(self.burst);
        let new_tat = tat.saturating_add(self.interval);
        let allow_at = new_tat.saturating_sub(window);
        if now < allow_at {
            return Outcome {
                allowed: false,
                tat,
                remaining: 0,
                reset: tat - now,
                retry_after: allow_at - now,
            };
        }
        Outcome {
            allowed: true,
            tat: new_tat,
            // window - (new_tat - now) >= 0 on this branch; no sum that could overflow.
            remaining: window.saturating_sub(new_tat - now) / self.interval,
            reset: new_tat - now,
            retry_after: 0,
        }
    }

    /// The TAT after giving back one allowed request (when a later limit refused it).
    pub fn refund(&self, tat: u64) -> u64 {
        tat.saturating_sub(self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn run(g: &Gcra, times: &[u64]) -> Vec<bool> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| {
                let o = g.decide(tat, now);
                if o.allowed {
                    tat = Some(o.tat);
                }
                o.allowed
            })
            .collect()
    }

    #[test]
    fn burst_b_at_once_then_one_per_interval() {
        // 10 per second, burst 5: five at once, the sixth refused, then one per 100 ms.
        let g = Gcra::new(10, S, 5);
        let now = 7 * S;
        assert_eq!(run(&g, &[now; 6]), [true, true, true, true, true, false]);
        let mut tat = None;
        for _ in 0..5 {
            tat = Some(g.decide(tat, now).tat);
        }
        let refused = g.decide(tat, now);
        assert_eq!(refused.retry_after, S / 10);
        assert!(!g.decide(tat, now + S / 10 - 1).allowed);
        let next = g.decide(tat, now + S / 10);
        assert!(next.allowed);
        assert_eq!(next.remaining, 0);
        // Full again after burst x interval.
        assert_eq!(next.reset, 5 * S / 10);
    }

    #[test]
    fn no_double_burst_at_a_boundary_and_exact_over_time() {
        // 100 per minute, burst 100: over 10 minutes at 10x the rate, exactly 100 + 1000 pass.
        let g = Gcra::new(100, 60 * S, 100);
        let times: Vec<u64> = (0..10_000).map(|i| i * (60 * S / 1000)).collect();
        let allowed = run(&g, &times).iter().filter(|a| **a).count();
        let elapsed = times.last().unwrap();
        let expected = 100 + elapsed / g.interval;
        assert!(
            allowed as u64 == expected || allowed as u64 == expected + 1,
            "{allowed} vs {expected}"
        );
    }

    #[test]
    fn remaining_counts_down_and_refund_gives_back() {
        let g = Gcra::new(3, S, 3);
        let a = g.decide(None, 0);
        assert_eq!((a.allowed, a.remaining), (true, 2));
        let b = g.decide(Some(a.tat), 0);
        assert_eq!(b.remaining, 1);
        let back = g.refund(b.tat);
        assert_eq!(back, a.tat);
    }
}
