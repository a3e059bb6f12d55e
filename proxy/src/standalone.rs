//! Standalone mode: configuration from YAML files (`--manifests PATH`), reloaded on change.
//!
//! [`frontdesk_files::FileSource`] reads, watches and compiles the files (a bad edit keeps the
//! last good version of what it touched, and is logged with file, document, line, field and
//! reason); this module applies the snapshot for `--gateway` to the runtime, atomically, and
//! publishes the objects' statuses on the admin port's `/status` and the compile on its
//! `/explain`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use frontdesk_crds::catalog::Update;
use frontdesk_files::FileSource;
use serde_json::json;

use crate::admin::Admin;
use crate::metrics::Metrics;
use crate::runtime::{Applied, RuntimeHandle};

/// Applies file updates to the proxy.
#[derive(Clone)]
pub struct Standalone {
    gateway: String,
    runtime: RuntimeHandle,
    metrics: Arc<Metrics>,
    admin: Arc<Admin>,
}

impl Standalone {
    pub fn new(
        gateway: String,
        runtime: RuntimeHandle,
        metrics: Arc<Metrics>,
        admin: Arc<Admin>,
    ) -> Self {
        Standalone {
            gateway,
            runtime,
            metrics,
            admin,
        }
    }

    /// Loads the files once now, then watches them for changes in the background.
    pub fn start(self, root: PathBuf, interval: Duration) {
        let mut source = FileSource::new(root);
        self.apply(source.load());
        tokio::spawn(source.watch(interval, move |result, _| self.apply(result)));
    }

    fn apply(&self, result: std::io::Result<Update>) {
        let update = match result {
            Ok(update) => update,
            Err(e) => {
                self.metrics.config_reload_failures.inc();
                tracing::error!(error = %e, "cannot read the manifests; the previous configuration keeps serving");
                return;
            }
        };
        if !update.problems.is_empty() {
            self.metrics.config_reload_failures.inc();
        }
        let snapshot = update.output.snapshot(&self.gateway);
        let others: Vec<&String> = update
            .output
            .snapshots
            .keys()
            .filter(|g| **g != self.gateway)
            .collect();
        if !others.is_empty() {
            tracing::info!(serving = %self.gateway, ignored = ?others, "routes for other gateways are not served by this proxy (see --gateway)");
        }
        let rules = snapshot.rule_count();
        // `/explain` moves with the runtime: before the swap (never behind `/config`), and
        // back if the snapshot is refused.
        let output = Arc::new(update.output);
        let previous = self.admin.output.swap(Some(output.clone()));
        match self.runtime.apply(snapshot) {
            Ok(Applied::Swapped(version)) => {
                self.metrics.config_reloads.inc();
                tracing::info!(version, rules, "configuration applied");
            }
            Ok(Applied::Unchanged(version)) => tracing::debug!(version, "configuration unchanged"),
            Err(e) => {
                self.admin.output.store(previous);
                self.metrics.config_reload_failures.inc();
                tracing::error!(error = %e, "the compiled snapshot was rejected; the previous configuration keeps serving");
            }
        }
        self.admin.status.store(Arc::new(json!({
            "version": self.runtime.load().version(),
            "objects": output.statuses,
            "problems": update.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })));
        self.admin.ready.store(true, Ordering::Release);
    }
}
