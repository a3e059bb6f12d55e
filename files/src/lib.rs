//! Manifest files as a configuration source, for the standalone proxy and the controller's file
//! mode (`--manifests PATH`).
//!
//! PATH is a file or a directory read recursively (`*.yaml`, `*.yml`; hidden entries skipped;
//! symlinks followed, each directory once). Changes are found by file-system events
//! ([`events`]: inotify), the files read once events stopped for [`events::QUIET`], and by
//! polling as the fallback (names, sizes, modification times; read once they have held still
//! for [`SETTLE`]). They are compiled through [`frontdesk_crds::catalog::Catalog`], so a bad
//! edit keeps the last good version of what it touched. SIGHUP forces a reload. Reading and
//! compiling run on a blocking thread.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use frontdesk_crds::catalog::{Catalog, EndpointsNow, Update};

pub mod events;

/// How long files must hold still after a change before they are read.
pub const SETTLE: Duration = Duration::from_millis(50);

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

pub struct FileSource {
    root: PathBuf,
    catalog: Catalog,
    fingerprint: Fingerprint,
    endpoints: Option<EndpointFastPath>,
}

/// Takes a reload that changed EndpointSlices alone; `false` asks for a compile instead.
pub type EndpointFastPath = Box<dyn FnMut(&EndpointsNow) -> bool + Send>;

impl FileSource {
    pub fn new(root: PathBuf) -> Self {
        FileSource {
            root,
            catalog: Catalog::default(),
            fingerprint: Vec::new(),
            endpoints: None,
        }
    }

    /// Hands the reloads of [`FileSource::watch`] that changed files of EndpointSlices alone to
    /// `fast_path`, without a compile ([`Catalog::update_endpoints`]), unless it declines.
    pub fn with_endpoint_fast_path(mut self, fast_path: EndpointFastPath) -> Self {
        self.endpoints = Some(fast_path);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads and compiles the files now. Fails only when PATH itself cannot be read; problems
    /// with single files or objects are in the update.
    pub fn load(&mut self) -> std::io::Result<Update> {
        // Taken before reading, so an edit made while reading is seen at the next poll.
        self.fingerprint = fingerprint(&self.root);
        let files = read_manifests(&self.root)?;
        Ok(self.compile(&files))
    }

    fn compile(&mut self, files: &[(String, Result<String, String>)]) -> Update {
        let update = self.catalog.update(files);
        log_problems(&update);
        update
    }

    /// [`FileSource::load`], through the endpoint fast path when it applies: `None` when the
    /// fast path took the change.
    fn reload(&mut self) -> std::io::Result<Option<Update>> {
        self.fingerprint = fingerprint(&self.root);
        let files = read_manifests(&self.root)?;
        if let Some(fast_path) = &mut self.endpoints
            && let Some(now) = self.catalog.update_endpoints(&files)
            && fast_path(&now)
        {
            return Ok(None);
        }
        Ok(Some(self.compile(&files)))
    }

    /// Watches forever: on file events, and every `interval` as a fallback. `apply` receives
    /// each compiled load's result and how long reading and compiling took, on a blocking
    /// thread (the loads the endpoint fast path took go to it alone).
    pub async fn watch<F>(mut self, interval: Duration, mut apply: F)
    where
        F: FnMut(std::io::Result<Update>, Duration) + Send + 'static,
    {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let events = events::Events::watch(&self.root);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            let trigger = tokio::select! {
                _ = tokio::time::sleep(interval) => Trigger::Poll,
                _ = events.next() => Trigger::Event,
                _ = hangup => Trigger::Forced,
            };
            let forced = trigger == Trigger::Forced;
            if trigger == Trigger::Event {
                // Let an editor or deploy tool finish writing.
                events.quiet().await;
            }
            let now = blocking_fingerprint(&self.root).await;
            if !forced && now == self.fingerprint {
                continue;
            }
            if trigger == Trigger::Poll {
                // Polling saw a change mid-write, maybe: load once the files hold still.
                tokio::time::sleep(SETTLE).await;
                if blocking_fingerprint(&self.root).await != now {
                    continue;
                }
            }
            let joined = tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                if let Some(result) = self.reload().transpose() {
                    apply(result, started.elapsed());
                }
                (self, apply)
            })
            .await;
            match joined {
                Ok((this, f)) => {
                    self = this;
                    apply = f;
                }
                Err(e) => {
                    tracing::error!(error = %e, "the configuration loader panicked; reloads stop");
                    return;
                }
            }
        }
    }
}

/// What made the loader look at the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    Poll,
    Event,
    /// SIGHUP: reload even if nothing seems to have changed.
    Forced,
}

/// Logs every problem of an update with its location.
pub fn log_problems(update: &Update) {
    for skipped in &update.skipped {
        tracing::debug!("{skipped}");
    }
    for p in &update.problems {
        tracing::warn!(
            file = %p.file,
            document = p.document,
            line = p.line,
            object = p.object.as_deref(),
            field = p.field.as_deref(),
            reason = %p.reason,
            outcome = p.outcome,
            "manifest problem: {p}"
        );
    }
}

async fn blocking_fingerprint(root: &Path) -> Fingerprint {
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || fingerprint(&root))
        .await
        .unwrap_or_default()
}

fn is_manifest(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Every manifest file under `root` (or `root` itself), sorted. Symlinks are followed (a
/// ConfigMap volume is made of them), each directory visited once, so a loop cannot hang us.
fn list(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        if !seen.insert(std::fs::canonicalize(&dir)?) {
            continue;
        }
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if is_hidden(&path) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if is_manifest(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `(file name, text or why it could not be read)` for every manifest; names are relative to
/// `root` when possible. Only an unreadable `root` fails the whole read.
pub fn read_manifests(root: &Path) -> std::io::Result<Vec<(String, Result<String, String>)>> {
    Ok(list(root)?
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| e.to_string());
            let name = p
                .strip_prefix(root)
                .ok()
                .filter(|r| !r.as_os_str().is_empty())
                .unwrap_or(&p);
            (name.display().to_string(), text)
        })
        .collect())
}

fn fingerprint(root: &Path) -> Fingerprint {
    list(root)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let mtime = meta.and_then(|m| m.modified().ok());
            (p, len, mtime)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_directories_recursively_skipping_hidden_and_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("team/a")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("team/a/r.yaml"), "x: 1").unwrap();
        std::fs::write(root.join("b.yml"), "y: 2").unwrap();
        std::fs::write(root.join("README.md"), "no").unwrap();
        std::fs::write(root.join(".git/c.yaml"), "no").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root, root.join("team/loop")).unwrap();
        let names: Vec<String> = read_manifests(root)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["b.yml", "team/a/r.yaml"]);
    }
}
