//! How a request picks an endpoint of its backend, against real backends on 127.0.0.1:
//! consistent hashing on a header, a cookie or the client address, least request, and active
//! health checks taking dead endpoints out (and all of them back in, in panic mode). The request
//! path runs in-process, the backend's endpoints set in the snapshot as a Service's would be.
// Real sockets, timed by the wall clock: the paused-time ban (clippy.toml) is for the proxy's
// own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use http::StatusCode;
use support::resilience::*;

const BY_USER: &str = "  loadBalancer: {algorithm: ConsistentHash, hashOn: 'Header:X-User'}";

async fn demo_backends(n: usize) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(frontdesk_demo::spawn(&format!("e{i}")).await);
    }
    out
}

/// Which backend answered.
fn backend(answer: &(StatusCode, http::HeaderMap, String)) -> String {
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.2);
    answer.1["x-backend"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn consistent_hashing_keeps_a_client_on_one_endpoint_and_moves_only_its_share_when_one_leaves()
 {
    let four = demo_backends(4).await;
    // One proxy: the second configuration takes over the first one's backend state.
    let env = std::sync::Arc::new(frontdesk_proxy::runtime::Env::standalone());
    let rt = runtime_in(&env, &four, BY_USER, None);
    let first = backend(&call_from(&rt, "/p", &[("x-user", "alice")], None).await);
    for _ in 0..1_000 {
        let again = backend(&call_from(&rt, "/p", &[("x-user", "alice")], None).await);
        assert_eq!(again, first);
    }
    let users: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
    let mut before = HashMap::new();
    for u in &users {
        before.insert(
            u,
            backend(&call_from(&rt, "/p", &[("x-user", u)], None).await),
        );
    }
    let mut shares = HashMap::<&str, usize>::new();
    for b in before.values() {
        *shares.entry(b).or_default() += 1;
    }
    assert_eq!(shares.len(), 4, "every endpoint has users: {shares:?}");

    // e2 leaves the backend (its pod went away): only its users move.
    let three: Vec<SocketAddr> = [0, 1, 3].iter().map(|i| four[*i]).collect();
    let rt = runtime_in(&env, &three, BY_USER, None);
    for u in &users {
        let now = backend(&call_from(&rt, "/p", &[("x-user", u)], None).await);
        if before[u] == "e2" {
            assert_ne!(now, "e2");
        } else {
            assert_eq!(now, before[u], "{u} moved though its endpoint stayed");
        }
    }
    // A request without the header goes round robin.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        seen.insert(backend(&call(&rt, "/p").await));
    }
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn consistent_hashing_reads_a_cookie_or_the_client_address() {
    let three = demo_backends(3).await;
    let by_cookie = runtime(
        &three,
        "  loadBalancer: {algorithm: ConsistentHash, hashOn: 'Cookie:session'}",
        None,
    );
    let by_ip = runtime(
        &three,
        "  loadBalancer: {algorithm: ConsistentHash, hashOn: ClientIP}",
        None,
    );
    let mut cookie_owners = std::collections::HashSet::new();
    let mut ip_owners = std::collections::HashSet::new();
    for i in 0..30 {
        let cookie = format!("theme=dark; session=s{i}");
        let headers = [("cookie", cookie.as_str())];
        let owner = backend(&call_from(&by_cookie, "/p", &headers, None).await);
        for _ in 0..5 {
            assert_eq!(
                backend(&call_from(&by_cookie, "/p", &headers, None).await),
                owner
            );
        }
        cookie_owners.insert(owner);
        // The port is not part of the key: a client's new connections stay too.
        let ip = |port| Some(SocketAddr::from(([198, 51, 100, i as u8], port)));
        let owner = backend(&call_from(&by_ip, "/p", &[], ip(40_000)).await);
        for port in 40_001..40_006 {
            assert_eq!(
                backend(&call_from(&by_ip, "/p", &[], ip(port)).await),
                owner
            );
        }
        ip_owners.insert(owner);
    }
    assert_eq!((cookie_owners.len(), ip_owners.len()), (3, 3));
}

#[tokio::test]
async fn least_request_avoids_the_endpoint_holding_requests() {
    let (slow, held, open) = gated_backend().await;
    let fast = frontdesk_demo::spawn("fast").await;
    let rt = runtime(
        &[slow, fast],
        "  loadBalancer: {algorithm: LeastRequest}",
        None,
    );
    // Requests until one is held at the slow endpoint (a tie goes either way).
    // Each request is done (answered by the fast one) or held before the next is sent, so
    // the counts the balancer compares are settled.
    let mut waiting = Vec::new();
    while held.load(Ordering::SeqCst) == 0 {
        let rt = rt.clone();
        let t = tokio::spawn(async move { call(&rt, "/p").await });
        until("an answer or a held request", || {
            t.is_finished() || held.load(Ordering::SeqCst) > 0
        })
        .await;
        if !t.is_finished() {
            waiting.push(t);
        }
    }
    // With one in flight there and none at the other, every request goes to the other
    // (round robin would send every other one to wait).
    for _ in 0..20 {
        assert_eq!(backend(&call(&rt, "/p").await), "fast");
    }
    assert_eq!(held.load(Ordering::SeqCst), 1);
    open.send(true).unwrap();
    for t in waiting {
        assert_eq!(t.await.unwrap().0, StatusCode::OK);
    }
}

const CHECKED: &str = "  healthCheck: {path: /healthz, interval: 100ms, timeout: 100ms, unhealthyThreshold: 1, healthyThreshold: 2}";

#[tokio::test]
async fn health_checks_take_a_dead_endpoint_out_before_any_client_request_fails_and_bring_it_back()
{
    let a = Switchable::start("a").await;
    let b = Switchable::start("b").await;
    let rt = runtime(&[a.addr, b.addr], CHECKED, None);
    until("checks of both endpoints", || {
        a.checks.load(Ordering::SeqCst) > 0 && b.checks.load(Ordering::SeqCst) > 0
    })
    .await;
    a.down();
    let unhealthy = "frontdesk_upstream_unhealthy_endpoints{";
    until("a's failed check", || metric(&rt, unhealthy) == 1).await;
    for _ in 0..20 {
        assert_eq!(backend_name(&call(&rt, "/p").await), "b");
    }
    assert_eq!(a.requests.load(Ordering::SeqCst), 0);
    assert!(metric(&rt, "frontdesk_upstream_health_checks_total{") > 0);

    // Back up: two passed checks in a row bring it back.
    a.up();
    until("a's passed checks", || metric(&rt, unhealthy) == 0).await;
    for _ in 0..4 {
        call(&rt, "/p").await;
    }
    assert_eq!(a.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn with_every_endpoint_unhealthy_all_of_them_get_traffic_and_the_panic_shows() {
    let a = Switchable::start("a").await;
    let b = Switchable::start("b").await;
    let rt = runtime(&[a.addr, b.addr], CHECKED, None);
    a.down();
    b.down();
    until("panic mode", || {
        metric(&rt, "frontdesk_upstream_panic{") == 1
    })
    .await;
    // Not a 503 for want of endpoints: the request was tried at one (which is down).
    assert_eq!(call(&rt, "/p").await.0, StatusCode::BAD_GATEWAY);
    b.up();
    until("b back", || metric(&rt, "frontdesk_upstream_panic{") == 0).await;
    for _ in 0..6 {
        assert_eq!(backend_name(&call(&rt, "/p").await), "b");
    }
}

/// Which [`Switchable`] answered (its body).
fn backend_name(answer: &(StatusCode, http::HeaderMap, String)) -> String {
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.2);
    answer.2.clone()
}

#[tokio::test]
async fn an_aggregate_call_keeps_a_client_on_one_endpoint_by_consistent_hash() {
    use frontdesk_proxy::runtime::{Env, Runtime};
    let three = demo_backends(3).await;
    let m = support::manifest("Policy", "sticky", BY_USER)
        + &support::manifest(
            "Aggregate",
            "who",
            &format!(
                "  path: /who\n  policies: [sticky]\n  calls:\n    - {{name: echo, backend: {{url: 'http://{}'}}, path: /echo, required: true}}\n",
                three[0]
            ),
        );
    let mut snap = support::snapshot(&m);
    let frontdesk_snapshot::Action::Aggregate(a) =
        &mut std::sync::Arc::make_mut(&mut snap.routes[0]).rules[0].action
    else {
        panic!("an aggregate");
    };
    a.calls[0].backend.endpoints = three.iter().map(|e| e.to_string()).collect();
    let rt =
        std::sync::Arc::new(Runtime::build(snap, std::sync::Arc::new(Env::standalone())).unwrap());
    let mut owners = std::collections::HashSet::new();
    for u in 0..12 {
        let user = format!("user-{u}");
        let who = |answer: (StatusCode, http::HeaderMap, String)| {
            assert_eq!(answer.0, StatusCode::OK, "{}", answer.2);
            support::json(&bytes::Bytes::from(answer.2))["echo"]["backend"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let first = who(call_from(&rt, "/who", &[("x-user", &user)], None).await);
        for _ in 0..5 {
            assert_eq!(
                who(call_from(&rt, "/who", &[("x-user", &user)], None).await),
                first
            );
        }
        owners.insert(first);
    }
    assert!(
        owners.len() > 1,
        "users spread over the endpoints: {owners:?}"
    );
}
