//! Overload protection: the proxy stops taking on work before it runs out of memory.
//!
//! Memory is sampled every [`SAMPLE_EVERY`]: against the container's limit, the container's
//! working set (its cgroup's usage without inactive file pages: what the kubelet evicts on and
//! what the OOM killer counts, socket buffers included); against a limit given in bytes, the
//! process's resident memory (`/proc/self/status`).
//! At or past the limit the proxy is overloaded until it falls below [`RESUME_AT`] of it
//! (hysteresis, so it does not flap at the line). While overloaded:
//! - a newly accepted connection is closed at once, before anything is read or buffered
//!   (`frontdesk_connection_limits_total{limit="memory"}`): a load balancer or client retries
//!   elsewhere, which is what a replica that is about to be OOM-killed owes them;
//! - HTTP/1.1 answers say `Connection: close`, so keep-alive connections give back their
//!   memory after the request in flight instead of holding it; HTTP/2 connections get GOAWAY,
//!   their open streams finish;
//! - `/ready` answers 503, so Kubernetes takes the pod out of its Services' endpoints;
//! - `frontdesk_overloaded` is 1.
//!
//! Requests already in flight are served. The admin listener is not affected, so probes and
//! metrics keep answering. The limit (`--max-memory`) defaults to 90% of the container's
//! memory limit (cgroup v2 `memory.max`, or v1 `memory.limit_in_bytes`), and to none when the
//! process has no limit: like Envoy's overload manager, a watermark below the point where the
//! kernel would kill the process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::metrics::Metrics;

/// How often the resident memory is read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Overloaded from the limit down to this share of it.
pub const RESUME_AT: f64 = 0.9;
/// The share of the container's memory limit taken when none is given.
const SHARE_OF_CONTAINER: f64 = 0.9;

/// The memory bound, and whether the process is past it now.
#[derive(Debug)]
pub struct Overload {
    /// Bytes; 0 when there is no bound.
    limit: u64,
    meter: Meter,
    overloaded: AtomicBool,
    /// The same, for those who wait for it to change (HTTP/2 connections).
    changes: tokio::sync::watch::Sender<bool>,
}

/// What a sample changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    Entered,
    Left,
}

impl Overload {
    /// A guard with `limit` bytes of the process's resident memory (`None`: never
    /// overloaded).
    pub fn new(limit: Option<u64>) -> Self {
        Self::measured(limit, Meter::Process)
    }

    /// The guard `--max-memory` asks for, in `container` (if the process runs in one).
    pub fn configured(limit: MemoryLimit, container: Option<Container>) -> Self {
        match (limit, container) {
            (MemoryLimit::Off, _) | (MemoryLimit::Auto, None) => Self::new(None),
            (MemoryLimit::Bytes(n), _) => Self::new(Some(n)),
            (MemoryLimit::Auto, Some(c)) => Self::measured(
                Some((c.limit as f64 * SHARE_OF_CONTAINER) as u64),
                Meter::Container(c),
            ),
        }
    }

    fn measured(limit: Option<u64>, meter: Meter) -> Self {
        Overload {
            limit: limit.unwrap_or(0),
            meter,
            overloaded: AtomicBool::new(false),
            changes: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Sees every change of [`Overload::overloaded`].
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.changes.subscribe()
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
        if was != now {
            self.changes.send_replace(now);
        }
        match (was, now) {
            (false, true) => Change::Entered,
            (true, false) => Change::Left,
            _ => Change::None,
        }
    }

    /// Samples the process's memory until the runtime ends; logs and counts the changes.
    /// The first sample is taken before this returns, so the listeners, started after it,
    /// never accept a connection the bound would have turned away.
    pub fn watch(self: Arc<Self>, metrics: Arc<Metrics>) {
        if self.limit == 0 {
            return;
        }
        self.sample(&metrics);
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE_EVERY, SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.sample(&metrics);
            }
        });
    }

    fn sample(&self, metrics: &Metrics) {
        let Some(resident) = self.meter.sample() else {
            return;
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
}

/// What memory is measured.
#[derive(Debug)]
enum Meter {
    Process,
    Container(Container),
}

impl Meter {
    fn sample(&self) -> Option<u64> {
        match self {
            Meter::Process => resident_bytes(),
            Meter::Container(c) => c.working_set(),
        }
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
}

/// The memory cgroup this process runs in, when it has a limit.
#[derive(Debug)]
pub struct Container {
    limit: u64,
    /// Where its usage and its inactive file pages are read (v2, or v1).
    usage: PathBuf,
    stat: PathBuf,
    inactive_file: &'static str,
}

impl Container {
    /// This process's container, from `/proc/self/cgroup`; `None` without a memory limit.
    pub fn of_this_process() -> Option<Self> {
        let read = |p: &Path| std::fs::read_to_string(p).ok();
        let own = read(Path::new("/proc/self/cgroup")).and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))
        });
        let v2_dirs = own
            .map(|p| PathBuf::from(format!("/sys/fs/cgroup{p}")))
            .into_iter()
            .chain([PathBuf::from("/sys/fs/cgroup")]);
        for dir in v2_dirs {
            if let Some(limit) = read(&dir.join("memory.max")).and_then(|t| parse_cgroup_limit(&t))
            {
                return Some(Container {
                    limit,
                    usage: dir.join("memory.current"),
                    stat: dir.join("memory.stat"),
                    inactive_file: "inactive_file",
                });
            }
        }
        // v1: the memory controller's own line, `N:memory:/path`.
        let own = read(Path::new("/proc/self/cgroup")).and_then(|c| {
            c.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                controllers
                    .split(',')
                    .any(|c| c == "memory")
                    .then(|| path.trim().to_string())
            })
        });
        let v1_dirs = own
            .map(|p| PathBuf::from(format!("/sys/fs/cgroup/memory{p}")))
            .into_iter()
            .chain([PathBuf::from("/sys/fs/cgroup/memory")]);
        for dir in v1_dirs {
            if let Some(limit) =
                read(&dir.join("memory.limit_in_bytes")).and_then(|t| parse_cgroup_limit(&t))
            {
                return Some(Container {
                    limit,
                    usage: dir.join("memory.usage_in_bytes"),
                    stat: dir.join("memory.stat"),
                    inactive_file: "total_inactive_file",
                });
            }
        }
        None
    }

    /// Usage less inactive file pages (which the kernel reclaims before killing anything).
    fn working_set(&self) -> Option<u64> {
        let usage: u64 = std::fs::read_to_string(&self.usage)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(&self.stat).ok()?;
        Some(usage.saturating_sub(stat_value(&stat, self.inactive_file).unwrap_or(0)))
    }
}

/// One `name value` line of a cgroup's `memory.stat`.
fn stat_value(stat: &str, name: &str) -> Option<u64> {
    stat.lines().find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
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
        let container = || Container {
            limit: 1000,
            usage: "/nonexistent/memory.current".into(),
            stat: "/nonexistent/memory.stat".into(),
            inactive_file: "inactive_file",
        };
        let auto = Overload::configured(MemoryLimit::Auto, Some(container()));
        assert!(auto.limit() == Some(900) && matches!(auto.meter, Meter::Container(_)));
        assert_eq!(Overload::configured(MemoryLimit::Auto, None).limit(), None);
        assert_eq!(
            Overload::configured(MemoryLimit::Off, Some(container())).limit(),
            None
        );
        let given = Overload::configured(MemoryLimit::Bytes(5), Some(container()));
        assert!(given.limit() == Some(5) && matches!(given.meter, Meter::Process));
        let stat = "anon 100\ninactive_file 4096\nactive_file 10\n";
        assert_eq!(stat_value(stat, "inactive_file"), Some(4096));
        assert_eq!(stat_value(stat, "inactive"), None);
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_cgroup_limit("9223372036854771712"), None);
    }

    #[test]
    fn the_working_set_is_usage_less_inactive_file_pages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.current"), "10000\n").unwrap();
        std::fs::write(
            dir.path().join("memory.stat"),
            "anon 6000\ninactive_file 3000\nactive_file 1000\n",
        )
        .unwrap();
        let c = Container {
            limit: 20000,
            usage: dir.path().join("memory.current"),
            stat: dir.path().join("memory.stat"),
            inactive_file: "inactive_file",
        };
        assert_eq!(c.working_set(), Some(7000));
        let guard = Overload::configured(MemoryLimit::Auto, Some(c));
        assert_eq!(guard.limit(), Some(18000));
        assert_eq!(guard.meter.sample(), Some(7000));
    }

    #[test]
    fn this_process_container_is_measured_when_it_has_a_limit() {
        if let Some(c) = Container::of_this_process() {
            let used = c.working_set().expect("the cgroup's usage and stat");
            assert!(used > 0 && c.limit > 0, "{c:?}: {used}");
        }
    }

    #[test]
    fn this_process_resident_memory_is_read() {
        let rss = resident_bytes().expect("/proc/self/status");
        assert!(rss > 1 << 20, "{rss}");
    }
}
