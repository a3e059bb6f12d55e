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
            .find(|v| v.gateway == "default")
            .map(|v| v.seq)
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

/// A restart during a bad edit: the version the previous replicas served in place of the
/// rejected one is read back from the ConfigMap before the first compile and keeps serving;
/// the leader writes what stands in now.
#[tokio::test(start_paused = true)]
async fn what_stood_in_before_a_restart_keeps_serving_after_it() {
    let cm = "/api/v1/namespaces/frontdesk/configmaps/frontdesk-controller-last-accepted";
    let mut objects: std::collections::HashMap<String, Vec<serde_json::Value>> =
        super::fake_api::objects()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    // `orders` generation 2 is invalid; generation 1 served /v1.
    let orders = &mut objects.get_mut(ROUTES).unwrap()[0];
    orders["metadata"]["generation"] = json!(2);
    orders["spec"]["rules"] = json!([{"matches": [{"path": {"value": "no-slash"}}],
                                      "backends": [{"url": "http://127.0.0.1:1"}]}]);
    let mut accepted = orders.clone();
    accepted["metadata"]["generation"] = json!(1);
    accepted["spec"]["rules"] = json!([{"matches": [{"path": {"value": "/v1"}}],
                                        "backends": [{"url": "http://127.0.0.1:1"}]}]);
    let stand_ins = accepted.to_string();
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "frontdesk-controller-last-accepted", "namespace": "frontdesk"},
        "data": {"stand-ins.json": stand_ins}});
    let api = FakeApi::start_with(objects, [(cm.to_string(), config_map)].into());
    api.slices_served.store(true, Ordering::SeqCst);
    let push = push_server();
    let (_lead, leader) = watch::channel(true);
    let controller = tokio::spawn(serve(api.client.clone(), options(), push.clone(), leader));
    until("a first compile", || push.store.ready().then_some(())).await;
    let output = push.store.output().unwrap();
    let status = output.status("Route", "shop", "orders").unwrap();
    assert_eq!(
        (status.accepted(), status.served_generation),
        (false, Some(1))
    );
    let paths = serde_json::to_string(&output.snapshot("default")).unwrap();
    assert!(paths.contains("/v1"), "{paths}");

    // The leader keeps the ConfigMap: what stands in now, written again once it changes.
    // The edit is fixed: nothing stands in any more.
    let mut fixed = super::fake_api::objects()[ROUTES][0].clone();
    fixed["metadata"]["generation"] = json!(3);
    api.modify(ROUTES, fixed);
    let written = until("the ConfigMap emptied", || {
        let seen = api.seen.lock().unwrap();
        let last = seen
            .iter()
            .rev()
            .find(|a| a.method == http::Method::PATCH && a.path == cm)?;
        let data = last.body["data"]["stand-ins.json"].as_str()?.to_string();
        data.is_empty().then_some(data)
    })
    .await;
    assert_eq!(written, "");
    controller.abort();
}

/// An EndpointSlice change is published without a compile: the next version carries the new
/// endpoints and its delta from the version before.
#[tokio::test(start_paused = true)]
async fn an_endpoint_slice_change_publishes_a_delta_without_a_compile() {
    let api = FakeApi::start();
    api.slices_served.store(true, Ordering::SeqCst);
    let push = push_server();
    let (_lead, leader) = watch::channel(true);
    let controller = tokio::spawn(serve(api.client.clone(), options(), push.clone(), leader));
    until("a first compile", || push.store.ready().then_some(())).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let compiles = push.metrics.reconciles.get();
    let rx = push.store.subscribe("default").unwrap();
    let (before, before_seq) = (rx.borrow().snapshot.version, rx.borrow().seq);
    let orders = |p: &crate::store::Published| {
        p.snapshot
            .backends()
            .find(|b| b.name == "service/shop/orders:80")
            .map(|b| b.endpoints.clone())
            .unwrap()
    };
    assert_eq!(orders(&rx.borrow()), ["10.0.0.7:8080"]);

    let mut scaled = slice();
    scaled["endpoints"] = json!([{"addresses": ["10.0.0.7"]}, {"addresses": ["10.0.0.8"]}]);
    api.modify(SLICES, scaled);
    let published = until("the new endpoints published", || {
        let p = rx.borrow().clone();
        (p.seq > before_seq).then_some(p)
    })
    .await;
    assert_eq!(published.seq, before_seq + 1);
    assert_eq!(orders(&published), ["10.0.0.7:8080", "10.0.0.8:8080"]);
    assert_eq!(published.delta.as_ref().map(|d| d.base), Some(before));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(push.metrics.reconciles.get(), compiles, "no compile");
    controller.abort();
}
