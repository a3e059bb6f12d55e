//! File events reload the manifests without waiting for the poll: with polling set to an hour,
//! every change below must still be served, through real inotify events.

use std::path::Path;
use std::time::Duration;

use frontdesk_files::FileSource;
use tokio::sync::mpsc;

fn route(name: &str, host: &str) -> String {
    format!(
        "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: {name}, namespace: shop}}\n\
         spec:\n  hosts: [{host}]\n  rules:\n  - backends: [{{url: 'http://127.0.0.1:9'}}]\n"
    )
}

/// Starts watching `root` with polling practically off; returns each load's route hosts.
fn watch(root: &Path) -> mpsc::UnboundedReceiver<Vec<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut source = FileSource::new(root.to_path_buf());
    source.load().expect("the first load");
    tokio::spawn(source.watch(Duration::from_secs(3600), move |update, _| {
        let mut hosts: Vec<String> = update
            .expect("readable")
            .output
            .snapshot("default")
            .routes
            .iter()
            .flat_map(|r| r.hosts.clone())
            .collect();
        hosts.sort();
        let _ = tx.send(hosts);
    }));
    rx
}

/// Waits for a load that serves exactly `want`.
async fn served(loads: &mut mpsc::UnboundedReceiver<Vec<String>>, want: &[&str]) {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let hosts = loads.recv().await.expect("the watcher runs");
            if hosts == want {
                return;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "no load served {want:?} within 10 s");
}

/// Events need a moment to be set up after `watch` spawns.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn files_written_created_and_removed_in_a_directory_are_reloaded_on_their_event() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("team")).unwrap();
    std::fs::write(dir.path().join("a.yaml"), route("a", "a.example")).unwrap();
    let mut loads = watch(dir.path());
    settle().await;
    // A new file in a subdirectory.
    std::fs::write(dir.path().join("team/b.yaml"), route("b", "b.example")).unwrap();
    served(&mut loads, &["a.example", "b.example"]).await;
    // An edit in place.
    std::fs::write(dir.path().join("a.yaml"), route("a", "a2.example")).unwrap();
    served(&mut loads, &["a2.example", "b.example"]).await;
    // A removal.
    std::fs::remove_file(dir.path().join("team/b.yaml")).unwrap();
    served(&mut loads, &["a2.example"]).await;
}

#[tokio::test]
async fn a_configmap_volume_update_swapping_its_data_symlink_is_reloaded() {
    // A ConfigMap volume: routes.yaml -> ..data/routes.yaml, ..data -> ..v1.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("..v1")).unwrap();
    std::fs::write(root.join("..v1/routes.yaml"), route("r", "v1.example")).unwrap();
    std::os::unix::fs::symlink("..v1", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/routes.yaml", root.join("routes.yaml")).unwrap();
    let mut loads = watch(root);
    settle().await;
    // The kubelet's update: a new directory, a new symlink renamed over ..data, the old
    // directory removed.
    std::fs::create_dir(root.join("..v2")).unwrap();
    std::fs::write(root.join("..v2/routes.yaml"), route("r", "v2.example")).unwrap();
    std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..v1")).unwrap();
    served(&mut loads, &["v2.example"]).await;
}

#[tokio::test]
async fn a_single_file_replaced_by_an_atomic_rename_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, route("r", "old.example")).unwrap();
    let mut loads = watch(&file);
    settle().await;
    let tmp = dir.path().join(".routes.yaml.swp");
    std::fs::write(&tmp, route("r", "new.example")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    served(&mut loads, &["new.example"]).await;
}
