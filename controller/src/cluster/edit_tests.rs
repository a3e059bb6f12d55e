//! One user edit, one compile: the controller's own status writes, which come back as watch
//! events, and other status-only updates compile nothing; a spec or label edit compiles once
//! and publishes one snapshot version.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use super::degrade_tests::{options, push_server, until};
use super::fake_api::*;
use super::*;

#[tokio::test(start_paused = true)]
async fn one_edit_compiles_once_and_status_writes_compile_nothing() {
    let api = FakeApi::start();
    api.slices_served.store(true, Ordering::SeqCst);
    let push = push_server();
    let (_lead, leader) = watch::channel(true);
    let controller = tokio::spawn(serve(api.client.clone(), options(), push.clone(), leader));
    until("a first compile", || push.store.ready().then_some(())).await;
    let status_writes = |api: &FakeApi| {
        api.count(|a| a.method == http::Method::PATCH && a.path.ends_with("/status"))
    };
    // The leader writes the Routes' and the Policy's statuses; each comes back on the watch.
    until("statuses written", || {
        (status_writes(&api) >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let compiles = || push.metrics.reconciles.get();
    let version = || {
        push.store
            .versions()
            .into_iter()
            .find(|(gateway, _, _)| gateway == "default")
            .map(|(_, version, _)| version)
            .unwrap()
    };
    let (settled, settled_version) = (compiles(), version());
    let writes = status_writes(&api);
    let echoed = api.count(|a| a.path == ROUTES && a.watching);
    assert!(
        echoed >= 3,
        "the status writes came back as watch events ({echoed} watches)"
    );

    // Someone else's status-only update (generation unchanged): no compile.
    let mut orders = objects()[ROUTES][0].clone();
    orders["status"] = json!({"conditions": []});
    api.modify(ROUTES, orders.clone());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(compiles(), settled);
    // The wiped status is written again (and comes back, compiling nothing).
    assert!(status_writes(&api) > writes);

    // A spec edit: one compile, one snapshot version, then quiet again.
    let mut edited = objects()[ROUTES][0].clone();
    edited["metadata"]["generation"] = json!(2);
    edited["spec"]["hosts"] = json!(["shop.example", "www.shop.example"]);
    api.modify(ROUTES, edited.clone());
    until("the edit compiled", || (compiles() > settled).then_some(())).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(compiles(), settled + 1);
    assert_eq!(version(), settled_version + 1);
    let snapshot = push.store.output().unwrap().snapshot("default");
    assert!(
        snapshot
            .routes
            .iter()
            .any(|r| r.hosts.iter().any(|h| h == "www.shop.example"))
    );

    // A label change (generation unchanged) may change meaning: one compile.
    edited["metadata"]["labels"] = json!({"team": "shop"});
    api.modify(ROUTES, edited);
    until("the label compiled", || {
        (compiles() > settled + 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(compiles(), settled + 2);
    controller.abort();
}
