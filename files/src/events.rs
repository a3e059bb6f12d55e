//! File-system events on the manifest paths (inotify on Linux, through the notify crate), so
//! that a saved file is served at once rather than at the next poll.
//!
//! A directory is watched recursively, symlinks followed; a single file through its directory,
//! so that the atomic renames editors and deploy tools make are seen, and so is a ConfigMap
//! volume's update (its `..data` symlink swapped for one to a new directory). Any event but a
//! read only says "look again": what changed is found by comparing the files' fingerprint, as
//! polling does, which stays on as the fallback (and is all there is when events cannot be had,
//! e.g. out of inotify watches).

use std::path::Path;
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// How long events must have stopped before the files are read: one save is often several
/// events (truncate, write, close; or create, write, rename).
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(20);
/// The longest wait for events to stop.
pub const QUIET_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) struct Events {
    /// Dropping it stops the events.
    watcher: Option<notify::RecommendedWatcher>,
    signal: Arc<Notify>,
}

impl Events {
    /// Events for `root`, or none (logged) when the system cannot give them.
    pub(crate) fn watch(root: &Path) -> Self {
        let signal = Arc::new(Notify::new());
        let tx = signal.clone();
        let handler = move |event: notify::Result<notify::Event>| match event {
            Ok(event) if changes(&event.kind) => tx.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "file event error"),
        };
        let watched = notify::recommended_watcher(handler).and_then(|mut watcher| {
            if root.is_dir() {
                watcher.watch(root, RecursiveMode::Recursive)?;
            } else {
                let dir = root.parent().filter(|d| !d.as_os_str().is_empty());
                watcher.watch(dir.unwrap_or(Path::new(".")), RecursiveMode::NonRecursive)?;
            }
            Ok(watcher)
        });
        let watcher = match watched {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                tracing::warn!(path = %root.display(), error = %e, "cannot watch the manifests for changes; polling only");
                None
            }
        };
        Events { watcher, signal }
    }

    /// Resolves at the next event (never, without events).
    pub(crate) async fn next(&self) {
        if self.watcher.is_some() {
            self.signal.notified().await
        } else {
            std::future::pending().await
        }
    }

    /// Resolves once no event came for [`QUIET`], or after [`QUIET_AT_MOST`] of events that
    /// do not stop (a log file written next to the manifests): the fingerprint then tells
    /// whether the manifests changed.
    pub(crate) async fn quiet(&self) {
        let deadline = tokio::time::Instant::now() + QUIET_AT_MOST;
        while tokio::time::Instant::now() < deadline
            && tokio::time::timeout(QUIET, self.next()).await.is_ok()
        {}
    }
}

/// Whether an event may change the files: anything but opening, reading and closing unwritten
/// (the loader's own reads among them).
fn changes(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RenameMode};

    #[test]
    fn reads_are_not_changes_and_everything_else_is() {
        assert!(!changes(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!changes(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(changes(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes(&EventKind::Create(CreateKind::File)));
        assert!(changes(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(changes(&EventKind::Any));
    }
}
