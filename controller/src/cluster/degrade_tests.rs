//! The controller against an API server that serves no EndpointSlices (404) and forbids
//! Secrets (403): everything else is compiled and its status written, the failures are
//! reported, retried with a growing backoff, and a kind served later is picked up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::fake_api::*;
use super::*;
use crate::degraded::DEGRADED;

pub(super) fn options() -> ClusterOptions {
    ClusterOptions {
        namespaces: Vec::new(),
        lease_namespace: "frontdesk".into(),
        lease_name: "frontdesk-controller".into(),
        identity: "replica-a".into(),
        pod: None,
        shared_hosts: false,
        urls: Default::default(),
        provision: None,
        stop: watch::channel(false).1,
        released: None,
        webhook: None,
    }
}

pub(super) async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "never: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A push server whose watch health reports to its metrics.
pub(super) fn push_server() -> Arc<PushServer> {
    Arc::new(PushServer::new(Default::default()))
}

fn degraded(output: &Output, kind: &str, name: &str) -> Option<String> {
    let status = output.status(kind, "shop", name)?;
    Some(status.condition(DEGRADED)?.message.clone())
}

#[tokio::test(start_paused = true)]
async fn kinds_that_cannot_be_listed_degrade_what_depends_on_them_and_block_nothing() {
    let api = FakeApi::start();
    let (client, seen, slices_served) = (
        api.client.clone(),
        api.seen.clone(),
        api.slices_served.clone(),
    );
    let push = push_server();
    let (_lead, leader) = watch::channel(true);
    let started = Instant::now();
    let controller = tokio::spawn(serve(client, options(), push.clone(), leader));

    // The first compile comes as soon as the lists answered, failures included.
    until("a first compile", || push.store.ready().then_some(())).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let output = push.store.output().unwrap();
    let orders = output.status("Route", "shop", "orders").unwrap();
    assert!(orders.accepted(), "{orders:?}");
    assert_eq!(
        degraded(&output, "Route", "orders").unwrap(),
        "the controller cannot list EndpointSlices (404 NotFound: the server could not find the requested resource): what this Route uses of them is unknown or stale until a retry lists them"
    );
    let policy = degraded(&output, "Policy", "auth").unwrap();
    assert!(
        policy.starts_with("the controller cannot list Secrets in namespace shop (403 Forbidden: secrets is forbidden"),
        "{policy}"
    );
    // Everything else is in the snapshot: both Routes.
    let snapshot = output.snapshot("default");
    let mut served: Vec<&str> = snapshot.routes.iter().map(|r| r.name.as_str()).collect();
    served.sort();
    assert_eq!(served, ["admin", "orders"]);

    // The leader writes the statuses, Degraded included.
    let written = until("the Route's status written", || {
        let seen = seen.lock().unwrap();
        seen.iter()
            .find(|a| a.path == "/apis/frontdesk.dev/v1alpha1/namespaces/shop/routes/orders/status")
            .map(|a| a.body["status"]["conditions"].clone())
    })
    .await;
    let types: Vec<&str> = written
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&DEGRADED) && types.contains(&"Accepted"),
        "{types:?}"
    );

    // Reported in /status and the metrics.
    let status = crate::admin::answer(&push, "/status");
    let body = http_body_util::BodyExt::collect(status.into_body())
        .await
        .unwrap()
        .to_bytes();
    let status: Value = serde_json::from_slice(&body).unwrap();
    let mut failing: Vec<(String, String)> = status["watches"]["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["kind"].as_str().unwrap().into(),
                w["error"].as_str().unwrap()[..13].into(),
            )
        })
        .collect();
    failing.sort();
    assert_eq!(
        failing,
        [
            ("EndpointSlice".to_string(), "404 NotFound:".to_string()),
            ("Secret".to_string(), "403 Forbidden".to_string())
        ]
    );
    let metrics = push.metrics.encode();
    assert!(
        metrics.contains("frontdesk_controller_watches_failing{kind=\"EndpointSlice\"} 1"),
        "{metrics}"
    );

    // Retries back off: 1 s, 2 s, 4 s... to a minute, not once a second for ever.
    tokio::time::sleep(Duration::from_secs(240)).await;
    let lists: Vec<Instant> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.path == "/apis/discovery.k8s.io/v1/endpointslices" && !a.watching)
        .map(|a| a.at)
        .collect();
    let gaps: Vec<u64> = lists
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis().div_ceil(1000) as u64)
        .collect();
    assert_eq!(gaps[..8], [1, 2, 4, 8, 16, 32, 60, 60], "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 60), "{gaps:?}");
    let secret_lists = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.path == "/api/v1/namespaces/shop/secrets" && !a.watching)
        .count();
    assert!(
        secret_lists <= 12,
        "{secret_lists} Secret lists in 4 minutes"
    );

    // EndpointSlices served at last (say, the cluster was upgraded): the next retry lists them,
    // the endpoints are compiled in, and the Route is no longer degraded.
    slices_served.store(true, Ordering::SeqCst);
    let output = until("a compile with the endpoints", || {
        let output = push.store.output()?;
        let json = serde_json::to_string(&output.snapshot("default")).ok()?;
        json.contains("10.0.0.7:8080").then_some(output)
    })
    .await;
    assert_eq!(degraded(&output, "Route", "orders"), None);
    assert!(degraded(&output, "Policy", "auth").is_some());
    let failing = push.watch_health.failing();
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(failing[0].0.kind, "Secret");
    // And the Route's status is rewritten without Degraded.
    until("the Route's status rewritten", || {
        let seen = seen.lock().unwrap();
        let last = seen.iter().rev().find(|a| {
            a.path == "/apis/frontdesk.dev/v1alpha1/namespaces/shop/routes/orders/status"
        })?;
        let conditions = last.body["status"]["conditions"].as_array()?;
        conditions
            .iter()
            .all(|c| c["type"] != DEGRADED)
            .then_some(())
    })
    .await;

    let unexpected: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.method == http::Method::GET && !a.watching)
        .filter(|a| {
            !objects().contains_key(a.path.as_str())
                && ![
                    "/apis/gateway.networking.k8s.io/v1",
                    "/apis/discovery.k8s.io/v1/endpointslices",
                    "/api/v1/namespaces/shop/secrets",
                    // Read once at start: what stood in for rejected objects (none here).
                    "/api/v1/namespaces/frontdesk/configmaps/frontdesk-controller-last-accepted",
                ]
                .contains(&a.path.as_str())
        })
        .map(|a| a.path.clone())
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    controller.abort();
}
