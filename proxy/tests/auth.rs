//! Authentication and authorization against real processes: a proxy on manifests, the demo
//! backend, a JWKS server and an external authorization service on 127.0.0.1.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::*;

const RSA1: &[u8] = include_bytes!("keys/rsa1.pem");
const RSA2: &[u8] = include_bytes!("keys/rsa2.pem");
const EC256: &[u8] = include_bytes!("keys/ec256.pem");
const EC384: &[u8] = include_bytes!("keys/ec384.pem");
const ED25519: &[u8] = include_bytes!("keys/ed25519.pem");
const HS_SECRET: &str = "a-shared-secret-of-at-least-32-bytes!!";
const ISSUER: &str = "https://auth.test/";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn encoding_key(alg: Algorithm, pem: &[u8]) -> EncodingKey {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(HS_SECRET.as_bytes())
        }
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(pem).unwrap(),
    }
}

fn sign(alg: Algorithm, pem: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &encoding_key(alg, pem)).unwrap()
}

/// The public JWK of a private key, without an `alg` when `pinned` is false (so one RSA key
/// serves RS* and PS*).
fn jwk(alg: Algorithm, pem: &[u8], kid: &str, pinned: bool) -> Value {
    let mut v = serde_json::to_value(Jwk::from_encoding_key(&encoding_key(alg, pem), alg).unwrap())
        .unwrap();
    v["kid"] = json!(kid);
    if !pinned {
        v.as_object_mut().unwrap().remove("alg");
    }
    v
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"iss": ISSUER, "aud": "orders-api", "sub": "user-7", "exp": now() + 600, "nbf": now() - 10});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A small HTTP server whose answer the test controls.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<http::HeaderMap>>>,
    accept: tokio::task::JoinHandle<()>,
}

type Handler = Arc<
    dyn Fn(&http::HeaderMap) -> (StatusCode, Vec<(&'static str, String)>, String, u64)
        + Send
        + Sync,
>;

impl Server {
    async fn start(handler: Handler) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (h, d, s) = (hits.clone(), down.clone(), seen.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (h, d, s, handler) = (h.clone(), d.clone(), s.clone(), handler.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (h, d, s, handler) = (h.clone(), d.clone(), s.clone(), handler.clone());
                        async move {
                            if d.load(Ordering::SeqCst) {
                                return Err("down".to_string());
                            }
                            h.fetch_add(1, Ordering::SeqCst);
                            s.lock().unwrap().push(req.headers().clone());
                            let (status, headers, body, delay_ms) = handler(req.headers());
                            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                            let mut resp = Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = status;
                            for (k, v) in headers {
                                resp.headers_mut().insert(k, v.parse().unwrap());
                            }
                            Ok::<_, String>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Server {
            addr,
            hits,
            down,
            seen,
            accept,
        }
    }

    /// Refuses new connections and fails requests on open ones.
    fn stop(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.accept.abort();
    }
}

/// A JWKS server serving whatever `keys` holds.
async fn key_server(keys: Arc<Mutex<Value>>) -> Server {
    Server::start(Arc::new(move |_| {
        let body = keys.lock().unwrap().to_string();
        (
            StatusCode::OK,
            vec![
                ("content-type", "application/json".into()),
                ("cache-control", "max-age=300".into()),
            ],
            body,
            0,
        )
    }))
    .await
}

fn policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: frontdesk.dev/v1alpha1\nkind: Policy\nmetadata: {{name: {name}, namespace: test}}\nspec:\n{spec}\n---\n"
    )
}

fn rule(path: &str, policies: &str, backend: SocketAddr) -> String {
    format!(
        "    - name: r{n}\n      matches: [{{path: {{value: {path}}}}}]\n      policies: [{policies}]\n      backends: [{{url: 'http://{backend}'}}]\n",
        n = path.replace('/', "-")
    )
}

fn routes(rules: &[String]) -> String {
    route("auth", &format!("  rules:\n{}", rules.concat()))
}

async fn call(c: &support::TestClient, url: &str, headers: &[(&str, &str)]) -> Answer {
    get_with(c, url, headers).await
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn assert_problem(a: &Answer, status: u16, slug: &str) {
    assert_eq!(a.0.as_u16(), status, "{}", String::from_utf8_lossy(&a.2));
    assert_eq!(a.1["content-type"], "application/problem+json");
    let v = json(&a.2);
    assert_eq!(
        v["type"],
        format!("https://frontdesk.dev/problems/{slug}"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_every_algorithm_and_every_way_a_token_is_wrong() {
    let backend = frontdesk_demo::spawn("orders").await;
    let keys = Arc::new(Mutex::new(
        json!({"keys": [jwk(Algorithm::RS256, RSA1, "rsa1", true)]}),
    ));
    let jwks = key_server(keys.clone()).await;
    let inline = json!({"keys": [
        jwk(Algorithm::PS256, RSA2, "rsa2", false),
        jwk(Algorithm::ES256, EC256, "ec256", true),
        jwk(Algorithm::ES384, EC384, "ec384", true),
        jwk(Algorithm::EdDSA, ED25519, "ed", true),
    ]});
    let files = [policy(
        "remote",
        &format!(
            "  authentication:\n    jwt:\n      issuer: {ISSUER}\n      audiences: [orders-api]\n      jwksUri: http://{}/jwks.json\n      allowPlaintextJwksUri: true\n      claimsToHeaders: [{{claim: sub, header: x-user-id}}, {{claim: tenant.id, header: x-tenant}}]",
            jwks.addr
        ),
    ) + &policy(
        "inline",
        &format!(
            "  authentication:\n    jwt:\n      issuer: {ISSUER}\n      jwks: '{inline}'\n      from: [{{header: authorization, prefix: 'Bearer '}}, {{cookie: token}}, {{query: access_token}}]"
        ),
    ) + &policy(
        "shared",
        &format!(
            "  authentication:\n    jwt: {{issuer: '{ISSUER}', audiences: [orders-api], secretRef: {{name: hs}}, algorithms: [HS256, HS384, HS512]}}"
        ),
    ) + &format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: hs, namespace: test}}\nstringData: {{secret: '{HS_SECRET}'}}\n---\n"
    ) + &routes(&[
        rule("/remote", "remote", backend),
        rule("/inline", "inline", backend),
        rule("/shared", "shared", backend),
    ])];
    let p = ProxyProcess::with_files(&[("auth.yaml", &files[0])], &[]).await;
    let c = client();

    // Every algorithm, each from its key source.
    let valid = claims(json!({}));
    let cases: Vec<(&str, Algorithm, &[u8], Option<&str>)> = vec![
        ("/remote", Algorithm::RS256, RSA1, Some("rsa1")),
        ("/inline", Algorithm::RS256, RSA2, Some("rsa2")),
        ("/inline", Algorithm::RS384, RSA2, Some("rsa2")),
        ("/inline", Algorithm::RS512, RSA2, None),
        ("/inline", Algorithm::PS256, RSA2, Some("rsa2")),
        ("/inline", Algorithm::PS384, RSA2, Some("rsa2")),
        ("/inline", Algorithm::PS512, RSA2, Some("rsa2")),
        ("/inline", Algorithm::ES256, EC256, Some("ec256")),
        ("/inline", Algorithm::ES384, EC384, Some("ec384")),
        ("/inline", Algorithm::EdDSA, ED25519, Some("ed")),
        ("/shared", Algorithm::HS256, b"", None),
        ("/shared", Algorithm::HS384, b"", None),
        ("/shared", Algorithm::HS512, b"", None),
    ];
    for (path, alg, pem, kid) in &cases {
        let t = sign(*alg, pem, *kid, &valid);
        let a = call(&c, &p.url(path), &[("authorization", &bearer(&t))]).await;
        assert_eq!(
            a.0,
            200,
            "{alg:?} on {path}: {}",
            String::from_utf8_lossy(&a.2)
        );
    }

    // Claims reach the backend; the client's own copies of those headers never do.
    let t = sign(
        Algorithm::RS256,
        RSA1,
        Some("rsa1"),
        &claims(json!({"tenant": {"id": "t-42"}})),
    );
    let a = call(
        &c,
        &p.url("/remote"),
        &[
            ("authorization", &bearer(&t)),
            ("x-user-id", "admin"),
            ("x-tenant", "evil"),
        ],
    )
    .await;
    let echo = json(&a.2);
    assert_eq!(echo["headers"]["x-user-id"], "user-7");
    assert_eq!(echo["headers"]["x-tenant"], "t-42");
    // Naming them in Connection (hop-by-hop) must not strip the headers the policy set.
    let a = call(
        &c,
        &p.url("/remote"),
        &[
            ("authorization", &bearer(&t)),
            ("connection", "x-user-id, x-tenant"),
        ],
    )
    .await;
    assert_eq!(
        json(&a.2)["headers"]["x-user-id"],
        "user-7",
        "{}",
        String::from_utf8_lossy(&a.2)
    );
    let t = sign(
        Algorithm::RS256,
        RSA1,
        Some("rsa1"),
        &claims(json!({"sub": null})),
    );
    let a = call(
        &c,
        &p.url("/remote"),
        &[("authorization", &bearer(&t)), ("x-user-id", "admin")],
    )
    .await;
    assert_eq!(a.0, 200);
    assert!(
        json(&a.2)["headers"].get("x-user-id").is_none(),
        "a forged header went through"
    );

    // Cookie and query sources.
    let t = sign(Algorithm::ES256, EC256, Some("ec256"), &valid);
    assert_eq!(
        call(
            &c,
            &p.url("/inline"),
            &[("cookie", &format!("a=b; token={t}"))]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&c, &p.url(&format!("/inline?access_token={t}")), &[])
            .await
            .0,
        200
    );

    // Every way a token is wrong, against the remote and the shared-secret policies.
    for (path, alg, pem, kid) in [
        ("/remote", Algorithm::RS256, RSA1, Some("rsa1")),
        ("/shared", Algorithm::HS256, &b""[..], None),
    ] {
        let bad: Vec<(&str, String)> = vec![
            (
                "expired",
                sign(alg, pem, kid, &claims(json!({"exp": now() - 120}))),
            ),
            (
                "not yet valid",
                sign(alg, pem, kid, &claims(json!({"nbf": now() + 120}))),
            ),
            (
                "wrong issuer",
                sign(alg, pem, kid, &claims(json!({"iss": "https://evil.test/"}))),
            ),
            (
                "wrong audience",
                sign(alg, pem, kid, &claims(json!({"aud": "billing-api"}))),
            ),
            ("tampered", {
                let t = sign(alg, pem, kid, &valid);
                let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
                let forged = claims(json!({"sub": "admin"}));
                parts[1] =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
                parts.join(".")
            }),
            ("alg none", {
                let b64 = |v: &Value| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
                };
                format!(
                    "{}.{}.",
                    b64(&json!({"alg": "none", "typ": "JWT"})),
                    b64(&valid)
                )
            }),
            ("garbage", "not.a.token".to_string()),
        ];
        for (what, token) in bad {
            let a = call(&c, &p.url(path), &[("authorization", &bearer(&token))]).await;
            assert_problem(&a, 401, "unauthorized");
            let challenge = a.1["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.starts_with("Bearer realm=\"frontdesk\", error=\"invalid_token\""),
                "{what}: {challenge}"
            );
            assert!(
                !String::from_utf8_lossy(&a.2).contains(&token),
                "{what}: the problem echoes the token"
            );
        }
    }
    // Wrong algorithm: an HS256 token where RSA keys are expected (the public key used as an
    // HMAC secret, the classic confusion), and an RS256 token where only HS is accepted.
    let rsa_public_n = jwk(Algorithm::RS256, RSA1, "rsa1", true)["n"]
        .as_str()
        .unwrap()
        .to_string();
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &valid,
        &EncodingKey::from_secret(rsa_public_n.as_bytes()),
    )
    .unwrap();
    let a = call(
        &c,
        &p.url("/remote"),
        &[("authorization", &bearer(&confused))],
    )
    .await;
    assert_problem(&a, 401, "unauthorized");
    assert!(json(&a.2)["detail"].as_str().unwrap().contains("algorithm"));
    let rs = sign(Algorithm::RS256, RSA1, Some("rsa1"), &valid);
    assert_problem(
        &call(&c, &p.url("/shared"), &[("authorization", &bearer(&rs))]).await,
        401,
        "unauthorized",
    );
    // An ES256 token under an RSA key's id: the key type does not fit the algorithm.
    let mismatched = sign(Algorithm::ES256, EC256, Some("rsa2"), &valid);
    assert_problem(
        &call(
            &c,
            &p.url("/inline"),
            &[("authorization", &bearer(&mismatched))],
        )
        .await,
        401,
        "unauthorized",
    );

    // No token at all: a bare challenge.
    let a = call(&c, &p.url("/remote"), &[]).await;
    assert_problem(&a, 401, "unauthorized");
    assert_eq!(a.1["www-authenticate"], "Bearer realm=\"frontdesk\"");

    // Metrics count outcomes per policy; /config never shows the shared secret.
    let m = p.metrics().await;
    assert!(
        m.contains("frontdesk_auth_decisions_total{policy=\"test/remote\",outcome=\"allowed\"}"),
        "{m}"
    );
    assert!(
        m.contains(
            "frontdesk_auth_decisions_total{policy=\"test/shared\",outcome=\"unauthenticated\"}"
        ),
        "{m}"
    );
    let (_, _, config) = get(&format!("http://{}/config", p.admin)).await.unwrap();
    let config = String::from_utf8_lossy(&config);
    let secret_b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(HS_SECRET);
    assert!(
        !config.contains(&secret_b64) && config.contains("<redacted>"),
        "{config}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_is_picked_up_and_an_outage_keeps_the_last_good_keys() {
    let backend = frontdesk_demo::spawn("orders").await;
    let keys = Arc::new(Mutex::new(
        json!({"keys": [jwk(Algorithm::RS256, RSA1, "k1", true)]}),
    ));
    let jwks = key_server(keys.clone()).await;
    let files = policy(
        "remote",
        &format!(
            "  authentication:\n    jwt: {{jwksUri: 'http://{}/jwks.json', allowPlaintextJwksUri: true, jwksRefetchInterval: 500ms}}",
            jwks.addr
        ),
    ) + &routes(&[rule("/r", "remote", backend)]);
    let p = ProxyProcess::with_files(&[("auth.yaml", &files)], &[]).await;
    let c = client();
    let valid = claims(json!({}));
    let t1 = sign(Algorithm::RS256, RSA1, Some("k1"), &valid);
    assert_eq!(
        call(&c, &p.url("/r"), &[("authorization", &bearer(&t1))])
            .await
            .0,
        200
    );
    let fetched = jwks.hits.load(Ordering::SeqCst);
    assert!(fetched >= 1);

    // Rotation: the server now publishes k2 (and still k1). A k2 token triggers one refetch.
    tokio::time::sleep(Duration::from_millis(600)).await;
    *keys.lock().unwrap() = json!({"keys": [jwk(Algorithm::RS256, RSA1, "k1", true), jwk(Algorithm::RS256, RSA2, "k2", true)]});
    let t2 = sign(Algorithm::RS256, RSA2, Some("k2"), &valid);
    let a = call(&c, &p.url("/r"), &[("authorization", &bearer(&t2))]).await;
    assert_eq!(
        a.0,
        200,
        "the rotated key was not picked up: {}",
        String::from_utf8_lossy(&a.2)
    );
    assert_eq!(jwks.hits.load(Ordering::SeqCst), fetched + 1);

    // A flood of unknown key ids is rate-limited: at most one refetch per interval.
    let before = jwks.hits.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    for i in 0..40 {
        let t = sign(
            Algorithm::RS256,
            RSA2,
            Some(&format!("unknown-{i}")),
            &valid,
        );
        assert_problem(
            &call(&c, &p.url("/r"), &[("authorization", &bearer(&t))]).await,
            401,
            "unauthorized",
        );
    }
    let allowed = 1 + started.elapsed().as_millis() as u64 / 500;
    let refetches = jwks.hits.load(Ordering::SeqCst) - before;
    assert!(
        refetches <= allowed,
        "{refetches} refetches for unknown key ids in {:?}",
        started.elapsed()
    );

    // Outage: the key server goes away; the last good keys keep working.
    jwks.stop();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let t9 = sign(Algorithm::RS256, RSA2, Some("k9"), &valid);
    assert_problem(
        &call(&c, &p.url("/r"), &[("authorization", &bearer(&t9))]).await,
        401,
        "unauthorized",
    );
    for t in [&t1, &t2] {
        assert_eq!(
            call(&c, &p.url("/r"), &[("authorization", &bearer(t))])
                .await
                .0,
            200
        );
    }
    // A fresh token (not in the verification cache) still verifies with the kept keys.
    let fresh = sign(
        Algorithm::RS256,
        RSA2,
        Some("k2"),
        &claims(json!({"jti": "fresh"})),
    );
    assert_eq!(
        call(&c, &p.url("/r"), &[("authorization", &bearer(&fresh))])
            .await
            .0,
        200
    );
    p.wait_log("JWKS refetch for an unknown key id failed")
        .await;
}

fn api_key_secret(name: &str, key: &str, consumer: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: test, labels: {{frontdesk.dev/api-keys: orders}}}}\nstringData: {{key: '{key}', consumer: {consumer}}}\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_valid_invalid_and_revoked_by_a_secret_change() {
    let backend = frontdesk_demo::spawn("orders").await;
    let pol = policy(
        "keys",
        "  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: orders}}}",
    );
    let r = routes(&[rule("/k", "keys", backend)]);
    let p = ProxyProcess::with_files(
        &[
            ("auth.yaml", &(pol.clone() + &r)),
            (
                "keys.yaml",
                &(api_key_secret("alice", "alice-key-0001", "alice")
                    + &api_key_secret("bob", "bob-key-0002", "bob")),
            ),
        ],
        &[],
    )
    .await;
    let c = client();
    assert_eq!(
        call(&c, &p.url("/k"), &[("x-api-key", "alice-key-0001")])
            .await
            .0,
        200
    );
    assert_eq!(
        call(&c, &p.url("/k"), &[("x-api-key", "bob-key-0002")])
            .await
            .0,
        200
    );
    let a = call(&c, &p.url("/k"), &[("x-api-key", "alice-key-0002")]).await;
    assert_problem(&a, 401, "unauthorized");
    assert_eq!(
        a.1["www-authenticate"],
        "ApiKey realm=\"frontdesk\", header=\"x-api-key\""
    );
    assert!(!String::from_utf8_lossy(&a.2).contains("alice-key"));
    assert_problem(&call(&c, &p.url("/k"), &[]).await, 401, "unauthorized");

    // The consumer shows in the access log; the key never does.
    let log = p.wait_log_stdout("\"consumer\":\"bob\"").await;
    assert!(!log.contains("bob-key-0002") && !p.stderr().contains("bob-key-0002"));

    // Revoke bob (his Secret is deleted), add carol: the reload picks both up.
    let v = p.config_version().await;
    p.write(
        "keys.yaml",
        &(api_key_secret("alice", "alice-key-0001", "alice")
            + &api_key_secret("carol", "carol-key-0003", "carol")),
    );
    p.wait_version_above(v).await;
    assert_problem(
        &call(&c, &p.url("/k"), &[("x-api-key", "bob-key-0002")]).await,
        401,
        "unauthorized",
    );
    assert_eq!(
        call(&c, &p.url("/k"), &[("x-api-key", "carol-key-0003")])
            .await
            .0,
        200
    );
    assert_eq!(
        call(&c, &p.url("/k"), &[("x-api-key", "alice-key-0001")])
            .await
            .0,
        200
    );
    let (_, _, config) = get(&format!("http://{}/config", p.admin)).await.unwrap();
    assert!(!String::from_utf8_lossy(&config).contains("carol-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_bcrypt_sha_crypt_and_sha1_hashes() {
    let backend = frontdesk_demo::spawn("orders").await;
    let sha1 = format!(
        "{{SHA}}{}",
        base64::engine::general_purpose::STANDARD
            .encode(<sha1::Sha1 as sha1::Digest>::digest(b"dave-pass"))
    );
    let htpasswd = format!(
        "ann:{}\ncarol:{}\ndave:{sha1}\n",
        bcrypt::hash("ann-pass", 5).unwrap(),
        // `openssl passwd -6 -salt saltsalt s3cret`
        "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1",
    );
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: users, namespace: test}}\ndata: {{htpasswd: {}}}\n---\n",
        base64::engine::general_purpose::STANDARD.encode(htpasswd)
    );
    let files = secret
        + &policy(
            "basic",
            "  authentication:\n    basic: {secretRef: {name: users}, realm: shop}",
        )
        + &routes(&[rule("/b", "basic", backend)]);
    let p = ProxyProcess::with_files(&[("auth.yaml", &files)], &[]).await;
    let c = client();
    let basic = |u: &str, pw: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{pw}"))
        )
    };
    for (u, pw) in [
        ("ann", "ann-pass"),
        ("carol", "s3cret"),
        ("dave", "dave-pass"),
    ] {
        let a = call(&c, &p.url("/b"), &[("authorization", &basic(u, pw))]).await;
        assert_eq!(a.0, 200, "{u}: {}", String::from_utf8_lossy(&a.2));
        // Again: served from the verified cache.
        assert_eq!(
            call(&c, &p.url("/b"), &[("authorization", &basic(u, pw))])
                .await
                .0,
            200
        );
    }
    for (u, pw) in [("ann", "wrong"), ("nobody", "ann-pass"), ("dave", "")] {
        let a = call(&c, &p.url("/b"), &[("authorization", &basic(u, pw))]).await;
        assert_problem(&a, 401, "unauthorized");
        assert_eq!(
            a.1["www-authenticate"],
            "Basic realm=\"shop\", charset=\"UTF-8\""
        );
    }
    assert_problem(
        &call(&c, &p.url("/b"), &[("authorization", "Basic !!!")]).await,
        401,
        "unauthorized",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_authorization_allow_deny_timeout_and_failure_mode() {
    let backend = frontdesk_demo::spawn("orders").await;
    let authz = Server::start(Arc::new(|h: &http::HeaderMap| {
        match h.get("authorization").and_then(|v| v.to_str().ok()) {
            Some("allow") => (
                StatusCode::OK,
                vec![
                    ("x-user-id", "u-1".into()),
                    ("x-other", "not copied".into()),
                ],
                String::new(),
                0,
            ),
            Some("slow") => (StatusCode::OK, vec![], String::new(), 2_000),
            _ => (
                StatusCode::FORBIDDEN,
                vec![
                    ("content-type", "application/json".into()),
                    ("www-authenticate", "Custom".into()),
                ],
                r#"{"reason":"nope"}"#.into(),
                0,
            ),
        }
    }))
    .await;
    let ext = |name: &str, mode: &str| {
        policy(
            name,
            &format!(
                "  authentication:\n    external: {{url: 'http://{}/check', forwardHeaders: [authorization], copyHeaders: [x-user-id], timeout: 300ms, failureMode: {mode}}}",
                authz.addr
            ),
        )
    };
    let files = ext("ext", "Deny")
        + &ext("ext-open", "Allow")
        + &routes(&[
            rule("/e", "ext", backend),
            rule("/open", "ext-open", backend),
        ]);
    let p = ProxyProcess::with_files(&[("auth.yaml", &files)], &[]).await;
    let c = client();

    let a = call(
        &c,
        &p.url("/e?x=1"),
        &[("authorization", "allow"), ("x-user-id", "forged")],
    )
    .await;
    assert_eq!(a.0, 200);
    let echo = json(&a.2);
    assert_eq!(echo["headers"]["x-user-id"], "u-1");
    assert!(echo["headers"].get("x-other").is_none());
    let asked = authz.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(asked["x-forwarded-uri"], "/e?x=1");
    assert_eq!(asked["x-forwarded-method"], "GET");
    assert_eq!(asked["authorization"], "allow");
    assert!(asked.get("x-request-id").is_some());
    assert!(
        asked.get("x-user-id").is_none(),
        "only the listed headers are forwarded"
    );
    // The service judges the path routing and the backend see, not the raw target.
    assert_eq!(
        call(&c, &p.url("/z/../e?x=2"), &[("authorization", "allow")])
            .await
            .0,
        200
    );
    let asked = authz.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(asked["x-forwarded-uri"], "/e?x=2");

    let a = call(&c, &p.url("/e"), &[("authorization", "deny")]).await;
    assert_eq!(a.0, 403);
    assert_eq!(a.2, Bytes::from_static(br#"{"reason":"nope"}"#));
    assert_eq!(a.1["www-authenticate"], "Custom");

    let started = std::time::Instant::now();
    let a = call(&c, &p.url("/e"), &[("authorization", "slow")]).await;
    assert_problem(&a, 503, "auth-unavailable");
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    // failureMode Allow lets the request through when the service fails.
    assert_eq!(
        call(&c, &p.url("/open"), &[("authorization", "slow")])
            .await
            .0,
        200
    );
    authz.stop();
    assert_problem(
        &call(&c, &p.url("/e"), &[("authorization", "allow")]).await,
        503,
        "auth-unavailable",
    );
    assert_eq!(
        call(&c, &p.url("/open"), &[("authorization", "allow")])
            .await
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_by_claim_scope_method_and_consumer_and_missing_policies() {
    let backend = frontdesk_demo::spawn("orders").await;
    let inline = json!({"keys": [jwk(Algorithm::ES256, EC256, "ec", true)]});
    let files = policy(
        "jwt",
        &format!("  authentication:\n    jwt: {{jwks: '{inline}'}}"),
    ) + &policy(
        "read",
        "  authorization:\n    rules:\n      - {claims: {scope: ['orders:read']}, methods: [GET]}\n      - {claims: {roles: [admin]}}",
    ) + &policy(
        "keys",
        "  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: orders}}}\n  authorization:\n    rules: [{consumers: [alice]}]",
    ) + &api_key_secret("alice", "alice-key-0001", "alice")
        + &api_key_secret("bob", "bob-key-0002", "bob")
        + &route(
            "authz",
            &format!(
                "  policies: [jwt]\n  rules:\n{}{}{}",
                rule("/z", "read", backend),
                rule("/missing", "does-not-exist", backend),
                rule("/plain", "", backend),
            ),
        )
        + "---\n"
        + &routes(&[rule("/k", "keys", backend)]);
    let p = ProxyProcess::with_files(&[("auth.yaml", &files)], &[]).await;
    let c = client();
    let tok = |extra: Value| sign(Algorithm::ES256, EC256, Some("ec"), &claims(extra));
    let send = |method: &'static str, path: &str, token: String| {
        let c = c.clone();
        let url = p.url(path);
        async move {
            support::send(
                &c,
                Request::builder()
                    .method(method)
                    .uri(url)
                    .header("authorization", bearer(&token))
                    .body(body(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(
        send("GET", "/z", tok(json!({"scope": "profile orders:read"})))
            .await
            .0,
        200
    );
    assert_problem(
        &send("GET", "/z", tok(json!({"scope": "profile"}))).await,
        403,
        "forbidden",
    );
    assert_problem(
        &send("POST", "/z", tok(json!({"scope": "orders:read"}))).await,
        403,
        "forbidden",
    );
    assert_eq!(
        send("POST", "/z", tok(json!({"roles": ["user", "admin"]})))
            .await
            .0,
        200
    );
    assert_problem(
        &send("GET", "/z", tok(json!({"roles": ["user"]}))).await,
        403,
        "forbidden",
    );
    // The Route-level policy applies to every rule.
    assert_eq!(send("GET", "/plain", tok(json!({}))).await.0, 200);
    assert_problem(&call(&c, &p.url("/plain"), &[]).await, 401, "unauthorized");
    // Consumers.
    assert_eq!(
        call(&c, &p.url("/k"), &[("x-api-key", "alice-key-0001")])
            .await
            .0,
        200
    );
    assert_problem(
        &call(&c, &p.url("/k"), &[("x-api-key", "bob-key-0002")]).await,
        403,
        "forbidden",
    );

    // A missing policy: 503, never the backend, and the Route says why.
    let (_, _, before) = get(&format!("http://{backend}/connections")).await.unwrap();
    let a = send("GET", "/missing", tok(json!({"scope": "orders:read"}))).await;
    assert_problem(&a, 503, "policy-unavailable");
    // The answer does not name the namespace or the missing Policy; the log and /status do.
    let text = String::from_utf8_lossy(&a.2).into_owned();
    assert!(
        !text.contains("test/") && !text.contains("does-not-exist"),
        "{text}"
    );
    p.wait_log("test/does-not-exist not found").await;
    let (_, _, after) = get(&format!("http://{backend}/connections")).await.unwrap();
    assert_eq!(
        json(&after)["accepted"].as_u64().unwrap(),
        json(&before)["accepted"].as_u64().unwrap() + 1
    );
    let status = p.status().await.to_string();
    assert!(status.contains("PolicyNotResolved"), "{status}");
}
