//! The cache's shared tier: proxies whose Policy caches `Global` share answers through a real
//! `redis-server` on 127.0.0.1, in front of one counting backend; an unsafe method's
//! invalidation reaches Redis; Redis stopped mid-run fails no request. Once with two proxy
//! processes over HTTP/1, and in detail with runtimes holding an `Env` each (what separate
//! processes have).
// The backend, redis-server and the waits are timed by the wall clock.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use frontdesk_proxy::redis_client::Redis;
use frontdesk_proxy::runtime::{Env, Runtime};
use frontdesk_proxy::stages::cache::CacheShared;
use frontdesk_proxy::stages::cache::shared_tier::SharedTier;
use http::StatusCode;
use support::cache::*;
use support::{ProxyProcess, RedisServer, get_with, manifest, recording_backend};

const GLOBAL: &str = "  cache: {ttl: 1m, scope: Global}";

/// A proxy's runtime whose cache has a shared tier in `redis`.
fn proxy(backend: &Backend, redis: &RedisServer) -> (Arc<Runtime>, Arc<Env>) {
    let mut env = Env::standalone();
    let client = Redis::new(&redis.url(), Duration::from_millis(200), 1, None).unwrap();
    env.cache = Arc::new(CacheShared::with_tier(
        1 << 20,
        &env.metrics,
        Some(SharedTier::new(Arc::new(client), "default")),
    ));
    let env = Arc::new(env);
    (runtime_in(env.clone(), backend.addr.unwrap(), GLOBAL), env)
}

/// The cache's entries in Redis.
async fn entries(redis: &RedisServer) -> Vec<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg("frontdesk:cache:default:e:*")
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Waits until Redis holds `n` entries (writes to the shared tier are in the background).
async fn wait_entries(redis: &RedisServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while entries(redis).await.len() != n {
        assert!(Instant::now() < deadline, "{:?}", entries(redis).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn metric(env: &Env, result: &str) -> String {
    let text = env.metrics.encode();
    let line = format!("frontdesk_cache_requests_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or("0")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_share_answers_through_redis_and_invalidations_reach_it() {
    let mut redis = RedisServer::start().await;
    let b = Backend::start().await;
    b.answer(
        200,
        &[("etag", "\"v1\""), ("vary", "accept-language")],
        "shared",
    );
    let (a, env_a) = proxy(&b, &redis);
    let (c, env_c) = proxy(&b, &redis);
    let fr = [("accept-language", "fr")];

    let (_, h, _) = ask(&a, "GET", "/s", &fr).await;
    assert!(cache_status(&h).contains("stored"), "{h:?}");
    wait_entries(&redis, 1).await;
    // Another proxy: from Redis to its memory, without the backend.
    let (status, h, body) = ask(&c, "GET", "/s", &fr).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "shared"));
    assert!(cache_status(&h).starts_with("frontdesk; hit"), "{h:?}");
    assert_eq!(h["etag"], "\"v1\"");
    assert_eq!(b.count(), 1);
    assert_eq!(metric(&env_c, "shared-hit"), "1");
    // `only-if-cached` finds it in Redis too.
    let (fourth, _) = proxy(&b, &redis);
    let only = [
        ("accept-language", "fr"),
        ("cache-control", "only-if-cached"),
    ];
    let (status, _, body) = ask(&fourth, "GET", "/s", &only).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "shared"));
    // Redis's answer varies as stored: another language is not it.
    ask(&c, "GET", "/s", &[("accept-language", "de")]).await;
    assert_eq!(b.count(), 2);
    assert_eq!(metric(&env_a, "shared-hit"), "0");

    // A PUT through one proxy removes the URI's answers from Redis: a proxy that never saw
    // them goes to the backend.
    b.answer(204, &[], "");
    ask(&a, "PUT", "/s", &[]).await;
    wait_entries(&redis, 0).await;
    b.answer(200, &[], "new");
    let (third, _) = proxy(&b, &redis);
    let (_, _, body) = ask(&third, "GET", "/s", &fr).await;
    assert_eq!(body, "new");
    assert_eq!(b.count(), 4);

    // Redis stopped mid-run: every request is still answered, from memory or the backend.
    redis.kill();
    for (i, rt) in [&a, &c, &third].into_iter().enumerate() {
        for path in ["/s", "/other"] {
            let started = Instant::now();
            let (status, _, _) = ask(rt, "GET", path, &fr).await;
            assert_eq!(status, StatusCode::OK, "proxy {i} {path}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
        }
    }
    let (_, h, _) = ask(&c, "GET", "/other", &fr).await;
    assert!(
        cache_status(&h).starts_with("frontdesk; hit"),
        "cached in memory: {h:?}"
    );
    assert_ne!(metric(&env_c, "shared-error"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxy_processes_share_an_answer_and_outlive_redis() {
    let mut redis = RedisServer::start().await;
    let (backend, seen) = recording_backend(
        "HTTP/1.1 200 OK\r\ncontent-length: 6\r\ncache-control: max-age=60\r\n\r\nshared",
    )
    .await;
    let manifests = manifest("Policy", "cached", GLOBAL)
        + &manifest(
            "Route",
            "shop",
            &format!(
                "  policies: [cached]\n  rules:\n    - matches: [{{path: {{value: /}}}}]\n      backends: [{{url: 'http://{backend}'}}]\n"
            ),
        );
    let url = redis.url();
    let args = ["--redis-url", url.as_str()];
    let one = ProxyProcess::with_files(&[("m.yaml", &manifests)], &args).await;
    let two = ProxyProcess::with_files(&[("m.yaml", &manifests)], &args).await;
    let c = support::client();
    let host = [("host", "shop.example.com")];
    let (status, h, _) = get_with(&c, &one.url("/p/1"), &host).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h["cache-status"].to_str().unwrap().contains("stored"),
        "{h:?}"
    );
    wait_entries(&redis, 1).await;
    let (status, h, body) = get_with(&c, &two.url("/p/1"), &host).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"shared"[..]));
    assert!(
        h["cache-status"]
            .to_str()
            .unwrap()
            .starts_with("frontdesk; hit"),
        "{h:?}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the second proxy asked Redis, not the backend"
    );

    redis.kill();
    for i in 0..20 {
        for p in [&one, &two] {
            let (status, _, _) = get_with(&c, &p.url(&format!("/q/{i}")), &host).await;
            assert_eq!(status, StatusCode::OK, "no request fails for Redis");
            let (status, _, _) = get_with(&c, &p.url("/p/1"), &host).await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    let metrics = two.metrics().await;
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("frontdesk_cache_requests_total{result=\"shared-error\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(errors > 0, "Redis's failures are counted:\n{metrics}");
}
