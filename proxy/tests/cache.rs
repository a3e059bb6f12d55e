//! The response cache on the whole request path, in process: a runtime built from manifests
//! with a Policy `cache` section, called with requests, in front of a real backend on
//! 127.0.0.1 whose answers each test scripts and whose requests it counts. Freshness is set
//! by the backend's own fields (`Age` past `max-age` makes an answer stale on arrival), so no
//! test waits for a clock.
// The backend and the shared support time real sockets with the wall clock.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use frontdesk_proxy::runtime::Env;
use http::StatusCode;
use support::cache::*;

const CACHE: &str = "  cache: {ttl: 30s}";

#[tokio::test]
async fn a_miss_is_stored_then_gets_and_heads_are_answered_from_the_cache() {
    let b = Backend::start().await;
    b.answer(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("content-type", "text/plain"),
        ],
        "hello",
    );
    let rt = runtime(&b, CACHE);
    let (status, h, body) = ask(&rt, "GET", "/a", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=uri-miss; fwd-status=200; stored"
    );
    let first_id = h["x-request-id"].clone();

    let (status, h, body) = ask(&rt, "GET", "/a", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    assert_eq!(b.count(), 1, "answered from the cache");
    assert!(
        cache_status(&h).starts_with("frontdesk; hit; ttl="),
        "{h:?}"
    );
    assert_eq!(h["age"], "0");
    assert_eq!(h["content-type"], "text/plain");
    assert_eq!(h["content-length"], "5");
    assert_ne!(
        h["x-request-id"], first_id,
        "the respond path runs for hits"
    );

    let (status, h, body) = ask(&rt, "HEAD", "/a", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert_eq!(h["content-length"], "5");
    assert_eq!(b.count(), 1, "HEAD from the stored GET");

    // The client's conditions are answered from the cache.
    let (status, h, body) = ask(&rt, "GET", "/a", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
    assert_eq!(h["etag"], "\"v1\"");
    assert_eq!(b.count(), 1);

    // Another path, another query: another key.
    ask(&rt, "GET", "/a?page=2", &[]).await;
    ask(&rt, "GET", "/b", &[]).await;
    assert_eq!(b.count(), 3);
    // The canonical path is the key: `/./a` is `/a`.
    ask(&rt, "GET", "/./a", &[]).await;
    assert_eq!(b.count(), 3);
}

#[tokio::test]
async fn answers_a_shared_cache_may_not_keep_are_not_stored_and_say_why() {
    let b = Backend::start().await;
    let rt = runtime(&b, CACHE);
    for (i, (fields, why)) in [
        (&[("cache-control", "no-store")][..], "no-store"),
        (&[("cache-control", "private, max-age=60")], "private"),
        (&[("set-cookie", "session=1")], "set-cookie"),
        (&[("vary", "*")], "vary-any"),
    ]
    .iter()
    .enumerate()
    {
        b.answer(200, fields, "x");
        let path = format!("/n{i}");
        for _ in 0..2 {
            let (_, h, _) = ask(&rt, "GET", &path, &[]).await;
            assert_eq!(
                cache_status(&h),
                format!("frontdesk; fwd=uri-miss; fwd-status=200; detail={why}")
            );
        }
        assert_eq!(b.count(), 2 * (i + 1), "{why}");
    }
    // A request with Authorization: only when the answer allows a shared cache to keep it.
    b.answer(200, &[("cache-control", "max-age=60")], "mine");
    let auth = [("authorization", "Bearer x")];
    let (_, h, _) = ask(&rt, "GET", "/me", &auth).await;
    assert!(cache_status(&h).ends_with("detail=authorization"), "{h:?}");
    b.answer(200, &[("cache-control", "public, max-age=60")], "ours");
    ask(&rt, "GET", "/public", &auth).await;
    let (_, h, body) = ask(&rt, "GET", "/public", &auth).await;
    assert!(cache_status(&h).starts_with("frontdesk; hit"), "{h:?}");
    assert_eq!(body, "ours");
    // A backend error is not stored either (no default lifetime for 500).
    b.answer(500, &[], "boom");
    ask(&rt, "GET", "/error", &[]).await;
    let (status, h, _) = ask(&rt, "GET", "/error", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=uri-miss; fwd-status=500; detail=status"
    );
}

#[tokio::test]
async fn answers_vary_on_the_fields_they_name_and_on_the_policys() {
    let b = Backend::start().await;
    b.answer(
        200,
        &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        "x",
    );
    let rt = runtime(
        &b,
        "  cache:\n    varyHeaders: [x-tenant]\n    queryParameters: {ignore: [utm_source]}",
    );
    let fr = [("accept-language", "fr")];
    let de = [("accept-language", "de")];
    ask(&rt, "GET", "/v", &fr).await;
    let (_, h, _) = ask(&rt, "GET", "/v", &de).await;
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=vary-miss; fwd-status=200; stored"
    );
    let (_, h, _) = ask(&rt, "GET", "/v", &fr).await;
    assert!(cache_status(&h).starts_with("frontdesk; hit"));
    assert_eq!(b.count(), 2);
    // The Policy's varyHeaders are in the key whatever the answer says.
    ask(
        &rt,
        "GET",
        "/v",
        &[("accept-language", "fr"), ("x-tenant", "a")],
    )
    .await;
    assert_eq!(b.count(), 3);
    // Ignored query parameters are not.
    ask(&rt, "GET", "/v?utm_source=mail", &fr).await;
    assert_eq!(b.count(), 3);
    ask(&rt, "GET", "/v?page=1", &fr).await;
    assert_eq!(b.count(), 4);
}

#[tokio::test]
async fn unsafe_methods_that_succeed_remove_their_uri_from_the_cache() {
    let b = Backend::start().await;
    b.answer(200, &[("cache-control", "max-age=60")], "v1");
    let rt = runtime(&b, CACHE);
    ask(&rt, "GET", "/item", &[]).await;
    ask(&rt, "GET", "/item/1", &[]).await;
    b.answer(500, &[], "no");
    let (_, h, _) = ask(&rt, "POST", "/item", &[]).await;
    assert_eq!(cache_status(&h), "frontdesk; fwd=method; fwd-status=500");
    let (_, _, body) = ask(&rt, "GET", "/item", &[]).await;
    assert_eq!(body, "v1", "a failed POST removes nothing");
    b.answer(204, &[], "");
    ask(&rt, "PUT", "/item", &[]).await;
    b.answer(200, &[("cache-control", "max-age=60")], "v2");
    let (_, h, body) = ask(&rt, "GET", "/item", &[]).await;
    assert_eq!(body, "v2");
    assert!(cache_status(&h).contains("fwd=uri-miss"));
    let (_, _, body) = ask(&rt, "GET", "/item/1", &[]).await;
    assert_eq!(body, "v1", "another URI stays");
}

#[tokio::test]
async fn a_stale_answer_is_revalidated_and_a_304_freshens_it() {
    let b = Backend::start().await;
    // Stale on arrival: 100 s old, fresh for 60.
    b.answer(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("age", "100"),
            ("etag", "\"v1\""),
            ("x-version", "1"),
        ],
        "body-1",
    );
    let rt = runtime(&b, CACHE);
    ask(&rt, "GET", "/r", &[]).await;
    b.answer(
        304,
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("x-version", "2"),
        ],
        "",
    );
    let (status, h, body) = ask(&rt, "GET", "/r", &[]).await;
    assert_eq!(b.last().2["if-none-match"], "\"v1\"", "asked conditionally");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "body-1"));
    assert_eq!(h["x-version"], "2", "fields updated by the 304");
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=stale; fwd-status=304; stored"
    );
    let (_, h, body) = ask(&rt, "GET", "/r", &[]).await;
    assert!(cache_status(&h).starts_with("frontdesk; hit"), "{h:?}");
    assert_eq!(body, "body-1");
    assert_eq!(b.count(), 2);
    // A client that wants it revalidated gets it revalidated.
    let (_, h, _) = ask(&rt, "GET", "/r", &[("cache-control", "no-cache")]).await;
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=request; fwd-status=304; stored"
    );
    // A changed answer replaces it.
    b.answer(
        200,
        &[("cache-control", "max-age=60"), ("etag", "\"v2\"")],
        "body-2",
    );
    let (_, _, body) = ask(&rt, "GET", "/r", &[("cache-control", "max-age=0")]).await;
    assert_eq!(body, "body-2");
    let (_, _, body) = ask(&rt, "GET", "/r", &[]).await;
    assert_eq!(body, "body-2");
}

#[tokio::test]
async fn a_stale_answer_is_served_when_the_backend_fails() {
    let b = Backend::start().await;
    b.answer(
        200,
        &[
            ("cache-control", "max-age=60, stale-if-error=600"),
            ("age", "100"),
        ],
        "saved",
    );
    let rt = runtime(&b, CACHE);
    ask(&rt, "GET", "/s", &[]).await;
    b.answer(503, &[], "down");
    let (status, h, body) = ask(&rt, "GET", "/s", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "saved"));
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=stale; fwd-status=503; ttl=-40; detail=stale-if-error"
    );
    // Without stale-if-error (answer or Policy), the failure is the answer.
    b.answer(
        200,
        &[("cache-control", "max-age=60"), ("age", "100")],
        "gone",
    );
    ask(&rt, "GET", "/t", &[]).await;
    b.answer(503, &[], "down");
    let (status, _, _) = ask(&rt, "GET", "/t", &[]).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn the_policys_stale_if_error_covers_a_backend_that_is_gone() {
    let b = Backend::start().await;
    b.answer(
        200,
        &[("cache-control", "max-age=60"), ("age", "100")],
        "saved",
    );
    let env = Arc::new(Env::standalone());
    let policy = "  cache: {staleIfError: 10m}";
    let rt = runtime_in(env.clone(), b.addr.unwrap(), policy);
    ask(&rt, "GET", "/s", &[]).await;
    // The cache outlives a snapshot swap; then the backend hangs up on every request.
    let rt = runtime_in(env, b.addr.unwrap(), policy);
    b.go_down();
    let (status, h, body) = ask(&rt, "GET", "/s", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "saved"));
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=stale; fwd-status=502; ttl=-40; detail=stale-if-error"
    );
}

#[tokio::test]
async fn a_stale_answer_is_served_while_one_request_refreshes_it() {
    let b = Backend::start().await;
    b.answer(
        200,
        &[
            ("cache-control", "max-age=60, stale-while-revalidate=600"),
            ("age", "100"),
        ],
        "old",
    );
    let rt = runtime(&b, CACHE);
    ask(&rt, "GET", "/w", &[]).await;
    b.answer(200, &[("cache-control", "max-age=60")], "new");
    b.delay(Duration::from_millis(200));
    let (_, h, body) = ask(&rt, "GET", "/w", &[]).await;
    assert_eq!(body, "old", "served stale at once");
    assert_eq!(
        cache_status(&h),
        "frontdesk; hit; ttl=-40; detail=stale-while-revalidate"
    );
    // While the refresh is at the backend, others get the stale answer too, and no second
    // refresh starts.
    let asks: Vec<_> = (0..20)
        .map(|_| {
            let rt = rt.clone();
            tokio::spawn(async move { ask(&rt, "GET", "/w", &[]).await })
        })
        .collect();
    for a in asks {
        assert_eq!(a.await.unwrap().2, "old");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(b.count(), 2, "one refresh");
    let (_, h, body) = ask(&rt, "GET", "/w", &[]).await;
    assert_eq!(body, "new");
    assert!(cache_status(&h).starts_with("frontdesk; hit; ttl="));
    assert_eq!(b.count(), 2);
}

#[tokio::test]
async fn concurrent_misses_for_one_key_make_one_backend_request() {
    let b = Backend::start().await;
    b.answer(200, &[("cache-control", "max-age=60")], "once");
    b.delay(Duration::from_millis(300));
    let rt = runtime(&b, CACHE);
    let asks: Vec<_> = (0..100)
        .map(|_| {
            let rt = rt.clone();
            tokio::spawn(async move { ask(&rt, "GET", "/c", &[]).await })
        })
        .collect();
    let mut collapsed = 0;
    for a in asks {
        let (status, h, body) = a.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "once"));
        collapsed += usize::from(cache_status(&h).contains("collapsed"));
    }
    assert_eq!(b.count(), 1);
    assert_eq!(collapsed, 99);
}

#[tokio::test]
async fn answers_larger_than_the_entry_limit_pass_through_uncached() {
    let b = Backend::start().await;
    b.answer(200, &[("cache-control", "max-age=60")], &"x".repeat(100));
    let rt = runtime(&b, "  cache: {maxEntryBytes: 64}");
    for _ in 0..2 {
        let (_, h, body) = ask(&rt, "GET", "/big", &[]).await;
        assert_eq!(body.len(), 100);
        assert_eq!(
            cache_status(&h),
            "frontdesk; fwd=uri-miss; fwd-status=200; detail=too-large"
        );
    }
    assert_eq!(b.count(), 2);
}

#[tokio::test]
async fn a_client_the_rate_limit_refuses_is_never_served_from_the_cache() {
    let b = Backend::start().await;
    b.answer(200, &[("cache-control", "max-age=60")], "x");
    let rt = runtime(
        &b,
        "  cache: {}\n  rateLimit:\n    limits: [{requests: 1, period: 1m, burst: 1, key: ClientIP, scope: Local}]",
    );
    let (status, _, _) = ask(&rt, "GET", "/l", &[]).await;
    assert_eq!(status, 200);
    let (status, h, _) = ask(&rt, "GET", "/l", &[]).await;
    assert_eq!(status, 429);
    assert!(!h.contains_key("cache-status"));
}

#[tokio::test]
async fn a_fresh_answer_expires_and_stale_if_error_ends_with_its_window() {
    let b = Backend::start().await;
    // Fresh for one more second, then served on errors for one more.
    b.answer(
        200,
        &[
            ("cache-control", "max-age=60, stale-if-error=1"),
            ("age", "59"),
        ],
        "short",
    );
    let rt = runtime(&b, CACHE);
    ask(&rt, "GET", "/e", &[]).await;
    let (_, h, _) = ask(&rt, "GET", "/e", &[]).await;
    assert!(
        cache_status(&h).starts_with("frontdesk; hit; ttl="),
        "{h:?}"
    );
    assert_eq!(b.count(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.answer(503, &[], "down");
    let (status, h, body) = ask(&rt, "GET", "/e", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "short"), "{h:?}");
    assert!(cache_status(&h).ends_with("detail=stale-if-error"), "{h:?}");
    assert_eq!(b.count(), 2, "expired: asked the backend");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, h, _) = ask(&rt, "GET", "/e", &[]).await;
    assert_eq!(status, 503, "past the window the failure is the answer");
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=stale; fwd-status=503; detail=status"
    );
}

#[tokio::test]
async fn per_consumer_caching_keeps_private_answers_apart() {
    let b = Backend::start().await;
    b.answer(200, &[("cache-control", "private, max-age=60")], "alice's");
    let (policy, secrets) = api_keys("  cache: {perConsumer: true}");
    let rt = runtime_with(
        Arc::new(Env::standalone()),
        b.addr.unwrap(),
        &policy,
        &secrets,
    );
    let (alice, bob) = (ALICE, BOB);
    ask(&rt, "GET", "/me", &alice).await;
    let (_, h, body) = ask(&rt, "GET", "/me", &alice).await;
    assert_eq!(body, "alice's");
    assert!(cache_status(&h).starts_with("frontdesk; hit"), "{h:?}");
    b.answer(200, &[("cache-control", "private, max-age=60")], "bob's");
    let (_, h, body) = ask(&rt, "GET", "/me", &bob).await;
    assert_eq!(body, "bob's", "never another consumer's answer");
    assert!(cache_status(&h).contains("fwd=uri-miss"), "{h:?}");
    let (status, _, _) = ask(&rt, "GET", "/me", &[]).await;
    assert_eq!(status, 401, "the cache is after authentication");
    assert_eq!(b.count(), 2);
}

#[tokio::test]
async fn memory_stays_under_the_bound_with_ten_times_its_size_in_answers() {
    let b = Backend::start().await;
    b.answer(200, &[("cache-control", "max-age=60")], &"x".repeat(1000));
    let mut env = Env::standalone();
    let bound = 32 * 1024;
    env.cache = Arc::new(frontdesk_proxy::stages::cache::CacheShared::new(
        bound,
        &env.metrics,
    ));
    let env = Arc::new(env);
    let rt = runtime_in(env.clone(), b.addr.unwrap(), CACHE);
    for i in 0..320 {
        let (status, _, _) = ask(&rt, "GET", &format!("/m/{i}"), &[]).await;
        assert_eq!(status, 200);
        assert!(env.cache.stats().bytes <= bound, "{:?}", env.cache.stats());
    }
    let stats = env.cache.stats();
    assert!(stats.keys >= 10 && stats.evictions >= 290, "{stats:?}");
    // The most recent answers are the ones kept.
    ask(&rt, "GET", "/m/319", &[]).await;
    assert_eq!(b.count(), 320);
    let metrics = env.metrics.encode();
    assert!(
        metrics.contains(&format!("frontdesk_cache_keys {}", stats.keys)),
        "{metrics}"
    );
}
