//! Rate limits against real processes: exactness, refill, keys, trusted proxies, reloads, and
//! global limits shared by two proxies through a real redis-server, including an outage.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use support::*;

fn policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: frontdesk.dev/v1alpha1\nkind: Policy\nmetadata: {{name: {name}, namespace: test}}\nspec:\n{spec}\n---\n"
    )
}

/// A Route `name` with one rule per (path, policies).
fn limited_route(name: &str, backend: SocketAddr, rules: &[(&str, &str)]) -> String {
    let rules: String = rules
        .iter()
        .map(|(path, policies)| {
            format!(
                "    - name: r{}\n      matches: [{{path: {{value: {path}}}}}]\n      policies: [{policies}]\n      backends: [{{url: 'http://{backend}'}}]\n",
                path.replace('/', "-")
            )
        })
        .collect();
    route(name, &format!("  rules:\n{rules}")) + "---\n"
}

async fn status(c: &TestClient, url: &str, headers: &[(&str, &str)]) -> u16 {
    get_with(c, url, headers).await.0.as_u16()
}

async fn statuses(c: &TestClient, url: &str, headers: &[(&str, &str)], n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(status(c, url, headers).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_limits_are_exact_refill_and_keep_keys_and_routes_apart() {
    let backend = frontdesk_demo::spawn("b").await;
    let files = policy(
        "per-user",
        "  rateLimit:\n    limits: [{name: per-user, requests: 2, period: 1s, burst: 5, key: 'Header:x-user'}]",
    ) + &limited_route("one", backend, &[("/a", "per-user")])
        + &limited_route("two", backend, &[("/b", "per-user")]);
    let p = ProxyProcess::with_files(&[("limits.yaml", &files)], &[]).await;
    let c = client();
    let alice = [("x-user", "alice")];

    // Burst 5: of the first 6 requests at once, exactly 5 pass.
    let first = get_with(&c, &p.url("/a"), &alice).await;
    assert_eq!(first.0, 200);
    assert_eq!(first.1["ratelimit-policy"], "\"per-user\";q=2;w=1");
    assert_eq!(first.1["ratelimit"], "\"per-user\";r=4;t=1");
    assert_eq!(statuses(&c, &p.url("/a"), &alice, 4).await, [200; 4]);
    let refused = get_with(&c, &p.url("/a"), &alice).await;
    assert_eq!(refused.0, 429);
    assert_eq!(
        json(&refused.2)["type"],
        "https://frontdesk.dev/problems/rate-limited"
    );
    assert_eq!(refused.1["retry-after"], "1");
    assert!(refused.1["ratelimit"].to_str().unwrap().contains("r=0"));

    // Refill: one request per 500 ms.
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(statuses(&c, &p.url("/a"), &alice, 2).await, [200, 429]);

    // Other keys, the same key on another Route, and requests without the header (one shared
    // bucket, limited too) are counted apart.
    assert_eq!(
        statuses(&c, &p.url("/a"), &[("x-user", "bob")], 5).await,
        [200; 5]
    );
    assert_eq!(statuses(&c, &p.url("/b"), &alice, 5).await, [200; 5]);
    assert_eq!(
        statuses(&c, &p.url("/a"), &[], 6).await,
        [200, 200, 200, 200, 200, 429]
    );
    assert_eq!(status(&c, &p.url("/a"), &[("x-user", "carol")]).await, 200);

    let m = p.metrics().await;
    assert!(
        m.contains(
            "frontdesk_ratelimit_decisions_total{policy=\"test/per-user\",decision=\"limited\"} 3"
        ),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_believes_forwarded_for_only_from_trusted_proxies() {
    let backend = frontdesk_demo::spawn("b").await;
    let files = policy(
        "per-ip",
        "  rateLimit:\n    limits: [{requests: 1, period: 1m, burst: 2}]",
    ) + &limited_route("r", backend, &[("/ip", "per-ip")]);
    let trusting = ProxyProcess::with_files(
        &[("l.yaml", &files)],
        &["--trusted-proxies", "10.0.0.0/8,127.0.0.1"],
    )
    .await;
    let c = client();
    let xff = |v: &'static str| [("x-forwarded-for", v)];
    assert_eq!(
        statuses(&c, &trusting.url("/ip"), &xff("1.1.1.1"), 3).await,
        [200, 200, 429]
    );
    assert_eq!(status(&c, &trusting.url("/ip"), &xff("2.2.2.2")).await, 200);
    // A client cannot hide behind a forged left-most entry: the right-most untrusted counts.
    assert_eq!(
        status(&c, &trusting.url("/ip"), &xff("9.9.9.9, 1.1.1.1")).await,
        429
    );
    // Trusted hops are skipped.
    assert_eq!(
        status(&c, &trusting.url("/ip"), &xff("1.1.1.1, 10.1.2.3")).await,
        429
    );

    // Without --trusted-proxies the header is ignored: every request is 127.0.0.1's.
    let plain = ProxyProcess::with_files(&[("l.yaml", &files)], &[]).await;
    assert_eq!(status(&c, &plain.url("/ip"), &xff("3.3.3.3")).await, 200);
    assert_eq!(status(&c, &plain.url("/ip"), &xff("4.4.4.4")).await, 200);
    assert_eq!(status(&c, &plain.url("/ip"), &xff("5.5.5.5")).await, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_by_consumer_and_by_claim() {
    let backend = frontdesk_demo::spawn("b").await;
    let secret = "a-shared-secret-of-at-least-32-bytes!!";
    let key = |name: &str, k: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: test, labels: {{frontdesk.dev/api-keys: t}}}}\nstringData: {{key: {k}, consumer: {name}}}\n---\n"
        )
    };
    let files = policy(
        "keys",
        "  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: t}}}\n  rateLimit:\n    limits: [{requests: 1, period: 1m, burst: 2, key: Consumer}]",
    ) + &policy(
        "tenants",
        "  authentication:\n    jwt: {secretRef: {name: hs}}\n  rateLimit:\n    limits: [{requests: 1, period: 1m, burst: 2, key: 'Claim:org.tenant'}]",
    ) + &format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: hs, namespace: test}}\nstringData: {{secret: '{secret}'}}\n---\n"
    ) + &key("alice", "alice-key-01")
        + &key("bob", "bob-key-0002")
        + &limited_route("r", backend, &[("/k", "keys"), ("/t", "tenants")]);
    let p = ProxyProcess::with_files(&[("l.yaml", &files)], &[]).await;
    let c = client();
    assert_eq!(
        statuses(&c, &p.url("/k"), &[("x-api-key", "alice-key-01")], 3).await,
        [200, 200, 429]
    );
    assert_eq!(
        status(&c, &p.url("/k"), &[("x-api-key", "bob-key-0002")]).await,
        200
    );
    // A refused credential never reaches the limiter.
    assert_eq!(
        status(&c, &p.url("/k"), &[("x-api-key", "nope")]).await,
        401
    );

    let token = |sub: &str, tenant: &str| {
        let claims =
            serde_json::json!({"sub": sub, "org": {"tenant": tenant}, "exp": 4_000_000_000u64});
        let t = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        format!("Bearer {t}")
    };
    let (u1, u2, other) = (
        token("u1", "acme"),
        token("u2", "acme"),
        token("u3", "globex"),
    );
    assert_eq!(
        status(&c, &p.url("/t"), &[("authorization", &u1)]).await,
        200
    );
    assert_eq!(
        status(&c, &p.url("/t"), &[("authorization", &u2)]).await,
        200
    );
    // Same tenant, another user: the tenant's bucket is empty.
    assert_eq!(
        status(&c, &p.url("/t"), &[("authorization", &u1)]).await,
        429
    );
    assert_eq!(
        status(&c, &p.url("/t"), &[("authorization", &other)]).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_counters_of_unchanged_limits() {
    let backend = frontdesk_demo::spawn("b").await;
    let files = |burst: u32| {
        policy(
            "l",
            &format!(
                "  rateLimit:\n    limits: [{{requests: 1, period: 1m, burst: {burst}, key: Route}}]"
            ),
        ) + &limited_route("r", backend, &[("/x", "l")])
    };
    let p = ProxyProcess::with_files(&[("l.yaml", &files(3))], &[]).await;
    let c = client();
    assert_eq!(
        statuses(&c, &p.url("/x"), &[], 4).await,
        [200, 200, 200, 429]
    );
    // An unrelated change: the limit is the same, its bucket stays empty.
    let v = p.config_version().await;
    p.write("other.yaml", &route("other", &format!("  rules:\n    - matches: [{{path: {{value: /other}}}}]\n      backends: [{{url: 'http://{backend}'}}]")));
    let v = p.wait_version_above(v).await;
    assert_eq!(status(&c, &p.url("/x"), &[]).await, 429);
    // A changed limit starts afresh.
    p.write("l.yaml", &files(4));
    p.wait_version_above(v).await;
    assert_eq!(
        statuses(&c, &p.url("/x"), &[], 5).await,
        [200, 200, 200, 200, 429]
    );
}

/// Sends paced GETs from `tasks` clients for `run`, counting 200s and other answers.
async fn drive(
    url: String,
    tasks: usize,
    every: Duration,
    run: Duration,
    ok: Arc<AtomicU64>,
    other: Arc<AtomicU64>,
    codes: Arc<std::sync::Mutex<Vec<u16>>>,
) {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (url, ok, other, codes) = (url.clone(), ok.clone(), other.clone(), codes.clone());
        handles.push(tokio::spawn(async move {
            let c = client();
            let end = Instant::now() + run;
            let mut next = Instant::now();
            while Instant::now() < end {
                let req = Request::get(&url).body(body(Bytes::new())).unwrap();
                match send(&c, req).await {
                    Ok((s, _, _)) if s == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((s, _, _)) => {
                        other.fetch_add(1, Ordering::SeqCst);
                        codes.lock().unwrap().push(s.as_u16());
                    }
                    Err(_) => {
                        other.fetch_add(1, Ordering::SeqCst);
                    }
                }
                next += every;
                tokio::time::sleep_until(next.into()).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_share_a_global_limit_through_redis_within_one_percent() {
    let redis = RedisServer::start().await;
    let backend = frontdesk_demo::spawn("b").await;
    let files = policy(
        "g",
        "  rateLimit:\n    limits: [{name: shared, requests: 100, period: 1s, burst: 100, key: Route, scope: Global}]",
    ) + &limited_route("r", backend, &[("/g", "g")]);
    let args = ["--redis-url", &redis.url(), "--access-log", "off"];
    let p1 = ProxyProcess::with_files(&[("g.yaml", &files)], &args).await;
    let p2 = ProxyProcess::with_files(&[("g.yaml", &files)], &args).await;

    // About 400 requests a second (4x the limit) over 10 s, half through each proxy.
    let (ok, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let codes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let run = Duration::from_secs(10);
    let every = Duration::from_millis(10);
    tokio::join!(
        drive(
            p1.url("/g"),
            2,
            every,
            run,
            ok.clone(),
            other.clone(),
            codes.clone()
        ),
        drive(
            p2.url("/g"),
            2,
            every,
            run,
            ok.clone(),
            other.clone(),
            codes.clone()
        ),
    );
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = ok.load(Ordering::SeqCst) as f64;
    let refused = other.load(Ordering::SeqCst);
    let expected = 100.0 + 100.0 * elapsed;
    eprintln!(
        "global limit: {allowed} allowed, {refused} refused in {elapsed:.2} s; expected {expected:.0}"
    );
    assert!(
        (allowed - expected).abs() <= expected * 0.01,
        "{allowed} allowed in {elapsed:.2} s, expected {expected:.0} (±1%); {refused} refused"
    );
    assert!(
        codes.lock().unwrap().iter().all(|c| *c == 429),
        "only 429s expected"
    );
    assert!(
        refused as f64 > allowed,
        "the load was not above the limit: {refused} refused"
    );
    let m = p1.metrics().await;
    assert!(
        m.contains("frontdesk_ratelimit_redis_duration_seconds_count"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_applies_the_failure_mode_and_limits_return_with_redis() {
    let mut redis = RedisServer::start().await;
    let backend = frontdesk_demo::spawn("b").await;
    let files = policy(
        "open",
        "  rateLimit:\n    limits: [{requests: 1, period: 1m, burst: 3, key: Route, scope: Global}]",
    ) + &policy(
        "closed",
        "  rateLimit:\n    onStoreFailure: Deny\n    limits: [{requests: 1, period: 1m, burst: 3, key: Route, scope: Global}]",
    ) + &limited_route("r", backend, &[("/open", "open"), ("/closed", "closed")]);
    let p = ProxyProcess::with_files(
        &[("o.yaml", &files)],
        &["--redis-url", &redis.url(), "--redis-timeout", "200ms"],
    )
    .await;
    let c = client();
    assert_eq!(
        statuses(&c, &p.url("/open"), &[], 4).await,
        [200, 200, 200, 429]
    );

    redis.kill();
    // Allow: requests go through, counted and logged. Deny: 503 problem.
    assert_eq!(statuses(&c, &p.url("/open"), &[], 5).await, [200; 5]);
    let a = get_with(&c, &p.url("/closed"), &[]).await;
    assert_eq!(a.0, 503);
    assert_eq!(
        json(&a.2)["type"],
        "https://frontdesk.dev/problems/rate-limit-unavailable"
    );
    let m = p.metrics().await;
    assert!(m.contains("decision=\"store_failed_open\""), "{m}");
    assert!(m.contains("decision=\"store_failed_closed\""), "{m}");
    p.wait_log("global rate limit undecided").await;

    // Redis returns (empty: no persistence): the limit is enforced again, no proxy restart.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        let s = status(&c, &p.url("/open"), &[]).await;
        seen.push(s);
        if s == 429 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "limits never came back: {seen:?}\n{}",
            p.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        statuses(&c, &p.url("/closed"), &[], 4).await,
        [200, 200, 200, 429]
    );
}

/// A `redis-server` that speaks TLS only, with a certificate for `localhost` that `ca`
/// issued; killed on drop.
struct TlsRedis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    async fn start(ca: &frontdesk_demo::certs::Authority) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cert = ca.issue(&["localhost"], 1, 30);
        std::fs::write(dir.path().join("cert.pem"), &cert.chain).unwrap();
        std::fs::write(dir.path().join("key.pem"), &cert.key).unwrap();
        let port = free_port().port();
        let path = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--tls-cert-file",
                &path("cert.pem"),
                "--tls-key-file",
                &path("key.pem"),
            ])
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/install-deps.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TlsRedis {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_over_tls_decides_global_limits_and_one_it_cannot_verify_does_not() {
    let ca = frontdesk_demo::certs::Authority::new();
    let redis = TlsRedis::start(&ca).await;
    let backend = frontdesk_demo::spawn("b").await;
    let files = policy(
        "shared",
        "  rateLimit:\n    limits: [{requests: 1, period: 1m, burst: 2, key: Route, scope: Global}]",
    ) + &limited_route("r", backend, &[("/limited", "shared")]);
    let dir = tempfile::tempdir().unwrap();
    let trusted = dir.path().join("ca.pem");
    std::fs::write(&trusted, ca.pem()).unwrap();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, frontdesk_demo::certs::Authority::new().pem()).unwrap();
    let url = format!("rediss://localhost:{}", redis.port);
    let start = |ca: &std::path::Path| {
        let args = [
            "--redis-url".to_string(),
            url.clone(),
            "--redis-ca-file".to_string(),
            ca.to_string_lossy().into_owned(),
            "--redis-timeout".to_string(),
            "1s".to_string(),
        ];
        let files = files.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ProxyProcess::with_files(&[("l.yaml", &files)], &args).await
        }
    };
    let c = client();
    let p = start(&trusted).await;
    assert_eq!(
        statuses(&c, &p.url("/limited"), &[], 3).await,
        [200, 200, 429],
        "{}",
        p.stderr()
    );
    drop(p);
    // Trusting another CA: Redis cannot be verified, so it never decides (onStoreFailure:
    // Allow lets requests through, counted as such).
    let p = start(&other).await;
    assert_eq!(statuses(&c, &p.url("/limited"), &[], 3).await, [200; 3]);
    let m = p.metrics().await;
    assert!(m.contains("decision=\"store_failed_open\""), "{m}");
}
