//! The versions standing in for rejected objects ([`frontdesk_crds::last_accepted`]), kept in
//! a ConfigMap of the release namespace (`<lease>-last-accepted`), so that a restart, say a
//! rollout during a bad edit, does not drop a Route that was serving: every replica reads it
//! before its first compile, and the leader writes it whenever what stands in changes. Only
//! stand-ins are kept (objects whose newest version is rejected), not every accepted object:
//! an accepted object is its own last accepted version.

use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::sync::watch;

use super::FIELD_MANAGER;
use k8s_openapi::api::core::v1::ConfigMap;

/// The ConfigMap's key holding the manifest of stand-ins.
const KEY: &str = "stand-ins.json";
/// Its label, for `kubectl delete configmap -l` after an uninstall (no pod owns it).
pub(super) const LABEL: &str = "frontdesk.dev/controller-state";
/// A ConfigMap holds at most 1 MiB; past this the manifest is not written (the last one written
/// stays) and a warning says so.
const MAX_BYTES: usize = 900 * 1024;

pub(super) fn name(lease: &str) -> String {
    format!("{lease}-last-accepted")
}

/// The manifest written last, if any.
pub(super) async fn read(api: &Api<ConfigMap>, name: &str) -> Option<String> {
    match api.get_opt(name).await {
        Ok(found) => found?.data?.remove(KEY),
        Err(e) => {
            tracing::warn!(configmap = %name, error = %e, "cannot read the versions standing in for rejected objects; starting without them");
            None
        }
    }
}

/// Writes `stand_ins` to the ConfigMap while `leader`, whenever it differs from what was written
/// (`written`, at first what [`read`] found).
pub(super) async fn write(
    api: Api<ConfigMap>,
    name: String,
    group: String,
    mut stand_ins: watch::Receiver<String>,
    mut leader: watch::Receiver<bool>,
    mut written: Option<String>,
) {
    loop {
        tokio::select! {
            changed = stand_ins.changed() => if changed.is_err() { return },
            changed = leader.changed() => if changed.is_err() { return },
        }
        if !*leader.borrow() {
            // Another replica may write meanwhile: compare afresh once leading again.
            written = None;
            continue;
        }
        let manifest = stand_ins.borrow().clone();
        if written.as_ref() == Some(&manifest) {
            continue;
        }
        if manifest.len() > MAX_BYTES {
            tracing::warn!(configmap = %name, bytes = manifest.len(), "the versions standing in for rejected objects do not fit in a ConfigMap; a restart now would not serve them");
            continue;
        }
        let cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {LABEL: group}},
            "data": {KEY: manifest},
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch(&name, &params, &Patch::Apply(&cm)).await {
            Ok(_) => written = Some(manifest),
            Err(e) => {
                tracing::warn!(configmap = %name, error = %e, "cannot write the versions standing in for rejected objects; retried at the next change")
            }
        }
    }
}
