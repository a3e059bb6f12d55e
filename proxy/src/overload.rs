//! Overload protection: the proxy stops taking on work before it runs out of memory.
//!
//! The process's resident memory is sampled every [`SAMPLE_EVERY`] (from `/proc/self/status`).
//! At or past the limit the proxy is overloaded until it falls below [`RESUME_AT`] of it
//! (hysteresis, so it does not flap at the line). While overloaded:
//! - a newly accepted connection is closed at once, before anything is read or buffered
//!   (`frontdesk_connection_limits_total{limit="memory"}`): a load balancer or client retries
//!   elsewhere, which is what a replica that is about to be OOM-killed owes them;
//! - HTTP/1.1 answers say `Connection: close`, so keep-alive connections give back their
//!   memory after the request in flight instead of holding it;
//! - `frontdesk_overloaded` is 1.
//!
//! Requests already in flight are served. The admin listener is not affected, so probes and
//! metrics keep answering. The limit (`--max-memory`) defaults to 90% of the container's
//! memory limit (cgroup v2 `memory.max`, or v1 `memory.limit_in_bytes`), and to none when the
//! process has no limit: like Envoy's overload manager, a watermark below the point where the
//! kernel would kill the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::Metrics;

/// How often the resident memory is read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Overloaded from the limit down to this share of it.
pub const RESUME_AT: f64 = 0.9;
/// The share of the container's memory limit taken when none is given.
const SHARE_OF_CONTAINER: f64 = 0.9;

/// The memory bound, and whether the process is past it now.
#[derive(Debug, Default)]
pub struct Overload {
    /// Bytes; 0 when there is no bound.
    limit: u64,
    resident: AtomicU64,
    overloaded: AtomicBool,
}

/// What a sample changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    Entered,
    Left,
}

impl Overload {
    /// A guard with `limit` bytes (`None`: never overloaded).
    pub fn new(limit: Option<u64>) -> Self {
        Overload {
            limit: limit.unwrap_or(0),
            ..Default::default()
        }
    }

    pub fn limit(&self) -> Option<u64> {
        (self.limit > 0).then_some(self.limit)
    }

    /// Whether new work should be turned away now.
    pub fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// Takes a resident-memory sample, in bytes.
    pub fn observe(&self, resident: u64) -> Change {
        self.resident.store(resident, Ordering::Relaxed);
        if self.limit == 0 {
            return Change::None;
        }
        let was = self.overloaded();
        let now = if was {
            resident as f64 >= self.limit as f64 * RESUME_AT
        } else {
            resident >= self.limit
        };
        self.overloaded.store(now, Ordering::Relaxed);
        match (was, now) {
            (false, true) => Change::Entered,
            (true, false) => Change::Left,
            _ => Change::None,
        }
    }

    /// Samples the process's memory until the runtime ends; logs and counts the changes.
    pub fn watch(self: Arc<Self>, metrics: Arc<Metrics>) {
        if self.limit == 0 {
            return;
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(resident) = resident_bytes() else {
                    continue;
                };
                match self.observe(resident) {
                    Change::Entered => {
                        metrics.overloaded.set(1);
                        tracing::warn!(
                            resident,
                            limit = self.limit,
                            "overloaded: memory is at its limit; new connections are turned away"
                        );
                    }
                    Change::Left => {
                        metrics.overloaded.set(0);
                        tracing::info!(resident, limit = self.limit, "no longer overloaded");
                    }
                    Change::None => {}
                }
            }
        });
    }
}

/// The process's resident memory, from `/proc/self/status` (`VmRSS`, in kB).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// What `--max-memory` said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryLimit {
    /// A share of the container's limit, none without one.
    Auto,
    Off,
    Bytes(u64),
}

impl MemoryLimit {
    /// `auto`, `off`, or bytes with an optional `Ki`/`Mi`/`Gi` (or `K`/`M`/`G`) suffix.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "auto" => return Ok(MemoryLimit::Auto),
            "off" | "0" => return Ok(MemoryLimit::Off),
            _ => {}
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?} is not auto, off or a size like 512Mi"))?;
        let scale: u64 = match unit.trim_end_matches(['i', 'B']) {
            "" => 1,
            "K" | "k" => 1 << 10,
            "M" => 1 << 20,
            "G" => 1 << 30,
            _ => return Err(format!("{s:?}: the size unit must be Ki, Mi or Gi")),
        };
        n.checked_mul(scale)
            .map(MemoryLimit::Bytes)
            .ok_or_else(|| format!("{s:?} is too large"))
    }

    /// The bound in bytes, given the container's limit (if any).
    pub fn resolve(self, container: Option<u64>) -> Option<u64> {
        match self {
            MemoryLimit::Off => None,
            MemoryLimit::Bytes(n) => Some(n),
            MemoryLimit::Auto => container.map(|c| (c as f64 * SHARE_OF_CONTAINER) as u64),
        }
    }
}

/// The memory limit of this process's cgroup, if it has one.
pub fn container_limit() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let v2 = read("/proc/self/cgroup")
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .and_then(|path| read(&format!("/sys/fs/cgroup{}/memory.max", path.trim())))
        .or_else(|| read("/sys/fs/cgroup/memory.max"));
    let text = v2.or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))?;
    parse_cgroup_limit(&text)
}

/// `max` (or v1's huge number) is no limit.
fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let n: u64 = text.trim().parse().ok()?;
    (n < 1 << 60).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overloaded_from_the_limit_until_below_the_resume_mark() {
        let o = Overload::new(Some(1000));
        assert_eq!(o.observe(500), Change::None);
        assert!(!o.overloaded());
        assert_eq!(o.observe(1000), Change::Entered);
        assert!(o.overloaded());
        // Between the marks nothing changes, whichever way memory goes.
        assert_eq!(o.observe(950), Change::None);
        assert!(o.overloaded());
        assert_eq!(o.observe(899), Change::Left);
        assert!(!o.overloaded());
        assert_eq!(o.observe(950), Change::None);
        assert!(!o.overloaded());

        let unbounded = Overload::new(None);
        assert_eq!(unbounded.observe(u64::MAX), Change::None);
        assert!(!unbounded.overloaded());
    }

    #[test]
    fn limits_parse_and_resolve() {
        assert_eq!(MemoryLimit::parse("auto"), Ok(MemoryLimit::Auto));
        assert_eq!(MemoryLimit::parse("off"), Ok(MemoryLimit::Off));
        assert_eq!(MemoryLimit::parse("0"), Ok(MemoryLimit::Off));
        assert_eq!(
            MemoryLimit::parse("1048576"),
            Ok(MemoryLimit::Bytes(1 << 20))
        );
        assert_eq!(
            MemoryLimit::parse("512Mi"),
            Ok(MemoryLimit::Bytes(512 << 20))
        );
        assert_eq!(MemoryLimit::parse("2G"), Ok(MemoryLimit::Bytes(2 << 30)));
        assert_eq!(
            MemoryLimit::parse("64KiB"),
            Ok(MemoryLimit::Bytes(64 << 10))
        );
        for bad in ["", "lots", "5T", "-1", "99999999999999999999Gi"] {
            assert!(MemoryLimit::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(MemoryLimit::Auto.resolve(Some(1000)), Some(900));
        assert_eq!(MemoryLimit::Auto.resolve(None), None);
        assert_eq!(MemoryLimit::Off.resolve(Some(1000)), None);
        assert_eq!(MemoryLimit::Bytes(5).resolve(None), Some(5));
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_cgroup_limit("9223372036854771712"), None);
    }

    #[test]
    fn this_process_resident_memory_is_read() {
        let rss = resident_bytes().expect("/proc/self/status");
        assert!(rss > 1 << 20, "{rss}");
    }
}
