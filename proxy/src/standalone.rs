//! Standalone mode: configuration from YAML files (`--manifests PATH`), reloaded on change.
//!
//! PATH is a file or a directory read recursively (`*.yaml`, `*.yml`; hidden entries skipped).
//! The files are polled (names, sizes and modification times) every `--reload-interval`, read
//! once they have held still for 50 ms, and SIGHUP forces a reload. Loading runs on a blocking
//! thread, never on the threads serving traffic. Each load goes through [`frontdesk_crds::catalog::Catalog`], so
//! a bad edit is logged with file, document, field and reason while the last good version of
//! what it touched keeps serving; the new runtime is then swapped in atomically.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use frontdesk_crds::catalog::Catalog;
use serde_json::json;

use crate::admin::Admin;
use crate::metrics::Metrics;
use crate::runtime::{Applied, RuntimeHandle};

/// How long files must hold still after a change before they are read.
const SETTLE: Duration = Duration::from_millis(50);

pub struct Standalone {
    root: PathBuf,
    gateway: String,
    catalog: Catalog,
    fingerprint: Vec<(PathBuf, u64, Option<SystemTime>)>,
    runtime: RuntimeHandle,
    metrics: Arc<Metrics>,
    admin: Arc<Admin>,
}

impl Standalone {
    pub fn new(
        root: PathBuf,
        gateway: String,
        runtime: RuntimeHandle,
        metrics: Arc<Metrics>,
        admin: Arc<Admin>,
    ) -> Self {
        Standalone {
            root,
            gateway,
            catalog: Catalog::default(),
            fingerprint: Vec::new(),
            runtime,
            metrics,
            admin,
        }
    }

    /// Loads the files now and applies the result.
    pub fn load(&mut self) {
        // Taken before reading, so an edit made while reading is seen at the next poll.
        self.fingerprint = fingerprint(&self.root);
        let files = match read_manifests(&self.root) {
            Ok(files) => files,
            Err(e) => {
                self.metrics.config_reload_failures.inc();
                tracing::error!(path = %self.root.display(), error = %e, "cannot read the manifests; the previous configuration keeps serving");
                return;
            }
        };
        let update = self.catalog.update(&files);
        for skipped in &update.skipped {
            tracing::debug!("{skipped}");
        }
        for p in &update.problems {
            tracing::warn!(
                file = %p.file,
                document = p.document,
                object = p.object.as_deref(),
                field = p.field.as_deref(),
                reason = %p.reason,
                outcome = p.outcome,
                "manifest problem: {p}"
            );
        }
        if !update.problems.is_empty() {
            self.metrics.config_reload_failures.inc();
        }
        let snapshot = update.output.snapshot(&self.gateway);
        let gateways: Vec<&String> = update
            .output
            .snapshots
            .keys()
            .filter(|g| **g != self.gateway)
            .collect();
        if !gateways.is_empty() {
            tracing::info!(serving = %self.gateway, ignored = ?gateways, "routes for other gateways are not served by this proxy (see --gateway)");
        }
        let rules = snapshot.rule_count();
        match self.runtime.apply(snapshot) {
            Ok(Applied::Swapped(version)) => {
                self.metrics.config_reloads.inc();
                tracing::info!(version, rules, files = files.len(), "configuration applied");
            }
            Ok(Applied::Unchanged(version)) => tracing::debug!(version, "configuration unchanged"),
            Err(e) => {
                self.metrics.config_reload_failures.inc();
                tracing::error!(error = %e, "the compiled snapshot was rejected; the previous configuration keeps serving");
            }
        }
        self.admin.status.store(Arc::new(json!({
            "version": self.runtime.load().version(),
            "objects": update.output.statuses,
            "problems": update.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })));
        self.admin.ready.store(true, Ordering::Release);
    }

    /// Polls for changes forever.
    pub async fn watch(mut self, interval: Duration) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let forced = match hup.as_mut() {
                Some(h) => tokio::select! {
                    _ = tokio::time::sleep(interval) => false,
                    _ = h.recv() => true,
                },
                None => {
                    tokio::time::sleep(interval).await;
                    false
                }
            };
            #[cfg(not(unix))]
            let forced = {
                tokio::time::sleep(interval).await;
                false
            };
            let root = self.root.clone();
            let now = tokio::task::spawn_blocking(move || fingerprint(&root))
                .await
                .unwrap_or_default();
            if !forced && now == self.fingerprint {
                continue;
            }
            // Let an editor or deploy tool finish writing: load once the files hold still.
            tokio::time::sleep(SETTLE).await;
            let root = self.root.clone();
            let settled = tokio::task::spawn_blocking(move || fingerprint(&root))
                .await
                .unwrap_or_default();
            if !forced && settled != now {
                continue;
            }
            // Reading and compiling is blocking work; keep it off the threads serving traffic.
            self = match tokio::task::spawn_blocking(move || {
                self.load();
                self
            })
            .await
            {
                Ok(this) => this,
                Err(e) => {
                    tracing::error!(error = %e, "the configuration loader panicked; reloads stop");
                    return;
                }
            };
        }
    }
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

fn fingerprint(root: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
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
