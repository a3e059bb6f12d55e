//! The response cache's harder cases, in process against a counting backend on 127.0.0.1:
//! revalidations under concurrency, a 304 whose fields forbid keeping the answer, credentials
//! other than `Authorization`, per-consumer answers that are still not storable, a `HEAD`'s
//! revalidation of a varying answer, and tags kept across revalidations.
// The backend and the shared support time real sockets with the wall clock.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use frontdesk_proxy::runtime::Env;
use http::StatusCode;
use support::cache::*;

const CACHE: &str = "  cache: {ttl: 30s}";

/// Stale on arrival (100 s old, fresh for 60), with a validator.
const STALE: [(&str, &str); 3] = [
    ("cache-control", "max-age=60"),
    ("age", "100"),
    ("etag", "\"v1\""),
];

#[tokio::test]
async fn concurrent_revalidations_answer_every_plain_get_whole() {
    let b = Backend::start().await;
    b.answer(200, &STALE, "body");
    let rt = runtime(&b, CACHE);
    ask(&rt, "GET", "/r", &[]).await;
    b.answer(
        304,
        &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
        "",
    );
    b.delay(Duration::from_millis(300));
    let asks: Vec<_> = (0..10)
        .map(|_| {
            let rt = rt.clone();
            tokio::spawn(async move { ask(&rt, "GET", "/r", &[]).await })
        })
        .collect();
    for a in asks {
        let (status, h, body) = a.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "body"), "{h:?}");
    }
    assert_eq!(b.count(), 2, "one revalidation for all of them");
}

#[tokio::test]
async fn a_304_whose_fields_forbid_keeping_the_answer_reaches_its_client_only() {
    let b = Backend::start().await;
    b.answer(200, &STALE, "body");
    let rt = runtime(&b, CACHE);
    ask(&rt, "GET", "/c", &[]).await;
    b.answer(
        304,
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("set-cookie", "session=alice"),
        ],
        "",
    );
    let (status, h, body) = ask(&rt, "GET", "/c", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "body"));
    assert_eq!(h["set-cookie"], "session=alice");
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=stale; fwd-status=304; detail=set-cookie"
    );
    // Gone from the store: the next client is not handed alice's cookie.
    b.answer(200, &[("cache-control", "max-age=60")], "fresh");
    let (_, h, body) = ask(&rt, "GET", "/c", &[]).await;
    assert_eq!(body, "fresh");
    assert!(!h.contains_key("set-cookie"));
    assert!(cache_status(&h).contains("fwd=uri-miss"), "{h:?}");
}

#[tokio::test]
async fn answers_to_authenticated_requests_are_shared_only_when_they_say_so() {
    let b = Backend::start().await;
    let (policy, secrets) = api_keys(CACHE);
    let rt = runtime_with(
        Arc::new(Env::standalone()),
        b.addr.unwrap(),
        &policy,
        &secrets,
    );
    // An API key is a credential like Authorization: alice's answer is not bob's.
    b.answer(200, &[("cache-control", "max-age=60")], "alice's");
    let (_, h, _) = ask(&rt, "GET", "/me", &ALICE).await;
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=uri-miss; fwd-status=200; detail=authorization"
    );
    b.answer(200, &[("cache-control", "max-age=60")], "bob's");
    let (_, _, body) = ask(&rt, "GET", "/me", &BOB).await;
    assert_eq!(body, "bob's");
    // An answer that says any authenticated client may have it is shared.
    b.answer(200, &[("cache-control", "public, max-age=60")], "catalog");
    ask(&rt, "GET", "/catalog", &ALICE).await;
    let (_, h, body) = ask(&rt, "GET", "/catalog", &BOB).await;
    assert_eq!(body, "catalog");
    assert!(cache_status(&h).starts_with("frontdesk; hit"), "{h:?}");
    assert_eq!(b.count(), 3);
}

#[tokio::test]
async fn per_consumer_answers_are_still_refused_what_nobody_may_keep() {
    let b = Backend::start().await;
    let (policy, secrets) = api_keys("  cache: {ttl: 30s, perConsumer: true}");
    let rt = runtime_with(
        Arc::new(Env::standalone()),
        b.addr.unwrap(),
        &policy,
        &secrets,
    );
    for (status, fields, why) in [
        (500, &[][..], "status"),
        (
            200,
            &[
                ("cache-control", "private, max-age=60"),
                ("set-cookie", "s=1"),
            ],
            "set-cookie",
        ),
        (200, &[("vary", "*")], "vary-any"),
    ] {
        b.answer(status, fields, "x");
        for _ in 0..2 {
            let (_, h, _) = ask(&rt, "GET", "/mine", &ALICE).await;
            assert!(
                cache_status(&h).ends_with(&format!("detail={why}")),
                "{h:?}"
            );
        }
    }
    assert_eq!(b.count(), 6);
}

#[tokio::test]
async fn a_heads_revalidation_freshens_the_variant_it_asked_for() {
    let b = Backend::start().await;
    let mut fields = STALE.to_vec();
    fields.push(("vary", "accept-encoding"));
    b.answer(200, &fields, "zipped");
    let rt = runtime(&b, CACHE);
    let gzip = [("accept-encoding", "gzip")];
    ask(&rt, "GET", "/v", &gzip).await;
    b.answer(
        304,
        &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
        "",
    );
    let (status, h, body) = ask(&rt, "HEAD", "/v", &gzip).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=stale; fwd-status=304; stored"
    );
    // The gzip variant was freshened, not stored for clients that do not take gzip.
    let (_, h, body) = ask(&rt, "GET", "/v", &gzip).await;
    assert_eq!(body, "zipped");
    assert!(cache_status(&h).starts_with("frontdesk; hit"), "{h:?}");
    b.answer(
        200,
        &[("cache-control", "max-age=60"), ("vary", "accept-encoding")],
        "plain",
    );
    let (_, h, body) = ask(&rt, "GET", "/v", &[]).await;
    assert_eq!(body, "plain");
    assert!(cache_status(&h).contains("fwd=vary-miss"), "{h:?}");
}

#[tokio::test]
async fn tags_are_kept_across_revalidations_and_never_sent_on() {
    let b = Backend::start().await;
    let mut fields = STALE.to_vec();
    fields.push(("cache-tag", "t1"));
    b.answer(200, &fields, "tagged");
    let env = Arc::new(Env::standalone());
    let rt = runtime_in(env.clone(), b.addr.unwrap(), CACHE);
    let (_, h, _) = ask(&rt, "GET", "/t", &[]).await;
    assert!(!h.contains_key("cache-tag"));
    b.answer(
        304,
        &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
        "",
    );
    let (_, h, _) = ask(&rt, "GET", "/t", &[]).await;
    assert!(cache_status(&h).contains("fwd-status=304; stored"), "{h:?}");
    assert_eq!(env.cache.purge_tag("t1"), 1);
    // A 304 that retags: the new tags, still not sent on.
    b.answer(200, &fields, "tagged");
    ask(&rt, "GET", "/t", &[]).await;
    b.answer(
        304,
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("cache-tag", "t2"),
        ],
        "",
    );
    let (_, h, _) = ask(&rt, "GET", "/t", &[]).await;
    assert!(!h.contains_key("cache-tag"), "{h:?}");
    assert_eq!(env.cache.purge_tag("t1"), 0);
    assert_eq!(env.cache.purge_tag("t2"), 1);
    // Answers not stored do not carry them either.
    b.answer(
        200,
        &[("cache-tag", "t3"), ("cache-control", "no-store")],
        "x",
    );
    let (_, h, _) = ask(&rt, "GET", "/n", &[]).await;
    assert!(!h.contains_key("cache-tag"), "{h:?}");
    let (_, h, _) = ask(&rt, "POST", "/n", &[]).await;
    assert!(!h.contains_key("cache-tag"), "{h:?}");
}

#[tokio::test]
async fn a_request_cannot_remove_what_is_stored_and_an_answer_that_forbids_storing_does() {
    let b = Backend::start().await;
    b.answer(200, &STALE, "kept");
    let rt = runtime(&b, "  cache: {ttl: 30s, staleIfError: 10m}");
    ask(&rt, "GET", "/k", &[]).await;
    // A client's `no-store`: its own answer is not kept, and what is stored stays.
    b.answer(
        304,
        &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
        "",
    );
    let (status, h, body) = ask(&rt, "GET", "/k", &[("cache-control", "no-cache, no-store")]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "kept"));
    assert!(cache_status(&h).ends_with("detail=no-store"), "{h:?}");
    b.go_down();
    let (status, h, body) = ask(&rt, "GET", "/k", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "kept"), "{h:?}");
    assert!(cache_status(&h).ends_with("detail=stale-if-error"), "{h:?}");
}

#[tokio::test]
async fn a_full_answer_to_a_revalidation_that_forbids_storing_removes_the_stored_one() {
    let b = Backend::start().await;
    b.answer(200, &STALE, "old");
    let rt = runtime(&b, "  cache: {ttl: 30s, staleIfError: 10m}");
    ask(&rt, "GET", "/f", &[]).await;
    b.answer(200, &[("cache-control", "no-store")], "now private");
    let (_, h, body) = ask(&rt, "GET", "/f", &[]).await;
    assert_eq!(body, "now private");
    assert!(cache_status(&h).ends_with("detail=no-store"), "{h:?}");
    // Nothing stale left to serve when the backend then fails.
    b.answer(503, &[], "down");
    let (status, h, _) = ask(&rt, "GET", "/f", &[]).await;
    assert_eq!(status, 503);
    assert!(cache_status(&h).contains("fwd=uri-miss"), "{h:?}");
}

#[tokio::test]
async fn only_if_cached_is_answered_from_the_cache_or_504() {
    let b = Backend::start().await;
    b.answer(200, &[("cache-control", "max-age=60")], "cached");
    let rt = runtime(&b, CACHE);
    let only = [("cache-control", "only-if-cached")];
    let (status, h, body) = ask(&rt, "GET", "/o", &only).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("/problems/not-cached"), "{body}");
    assert_eq!(
        cache_status(&h),
        "frontdesk; fwd=miss; detail=only-if-cached"
    );
    assert_eq!(b.count(), 0, "never to the backend");
    ask(&rt, "GET", "/o", &[]).await;
    let (status, _, body) = ask(&rt, "GET", "/o", &only).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "cached"));
    assert_eq!(b.count(), 1);
}

#[tokio::test]
async fn an_unsafe_methods_location_and_content_location_of_the_same_origin_go_too() {
    let b = Backend::start().await;
    b.answer(200, &[("cache-control", "max-age=60")], "v1");
    let rt = runtime(&b, CACHE);
    for path in ["/items/7", "/items/8", "/items/9"] {
        ask(&rt, "GET", path, &[]).await;
    }
    assert_eq!(b.count(), 3);
    b.answer(
        201,
        &[
            ("location", "/items/7"),
            ("content-location", "http://shop.example.com/items/8"),
        ],
        "",
    );
    ask(&rt, "POST", "/items", &[]).await;
    b.answer(200, &[("cache-control", "max-age=60")], "v2");
    let (_, _, seven) = ask(&rt, "GET", "/items/7", &[]).await;
    let (_, _, eight) = ask(&rt, "GET", "/items/8", &[]).await;
    let (_, _, nine) = ask(&rt, "GET", "/items/9", &[]).await;
    assert_eq!(
        (seven.as_str(), eight.as_str(), nine.as_str()),
        ("v2", "v2", "v1")
    );
    // Another origin's URL is not this cache's to remove, however it is spelled.
    for elsewhere in [
        "http://elsewhere.example/items/9",
        "//elsewhere.example/items/9",
        "https://shop.example.com/items/9",
        "http://shop.example.com:8080/items/9",
    ] {
        b.answer(201, &[("location", elsewhere)], "");
        ask(&rt, "POST", "/items", &[]).await;
        let (_, _, nine) = ask(&rt, "GET", "/items/9", &[]).await;
        assert_eq!(nine, "v1", "{elsewhere}");
    }
}

#[tokio::test]
async fn what_a_clients_own_conditions_or_a_failure_bring_back_removes_nothing() {
    let b = Backend::start().await;
    b.answer(
        200,
        &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
        "kept",
    );
    let rt = runtime(&b, CACHE);
    ask(&rt, "GET", "/k", &[]).await;
    // A reload: the client's own validator, answered 304 by the backend, is the client's.
    b.answer(304, &[("etag", "\"v1\"")], "");
    let reload = [("cache-control", "max-age=0"), ("if-none-match", "\"v1\"")];
    let (status, _, _) = ask(&rt, "GET", "/k", &reload).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // A failure the client asked for by saying no-cache.
    b.answer(503, &[], "down");
    let (status, _, _) = ask(&rt, "GET", "/k", &[("cache-control", "no-cache")]).await;
    assert_eq!(status, 503);
    let (status, h, body) = ask(&rt, "GET", "/k", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "kept"));
    assert!(cache_status(&h).starts_with("frontdesk; hit"), "{h:?}");
    assert_eq!(b.count(), 3);
}
