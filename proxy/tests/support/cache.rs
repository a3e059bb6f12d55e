//! The response cache's tests' parts: a backend on 127.0.0.1 whose answers a test scripts and
//! whose requests it counts, and runtimes with a Policy `cache` section called in process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use frontdesk_proxy::body::ProxyBody;
use frontdesk_proxy::runtime::{Env, Runtime};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::{manifest, snapshot};

const CLIENT: &str = "192.0.2.10:50000";

/// What the backend answers next, and what it was asked.
#[derive(Clone, Default)]
pub struct Backend {
    pub addr: Option<SocketAddr>,
    reply: Arc<Mutex<Reply>>,
    seen: Arc<Mutex<Vec<(String, String, HeaderMap)>>>,
    /// Gone: every request's connection is closed without an answer.
    down: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Default for Reply {
    fn default() -> Self {
        Reply {
            status: 200,
            headers: vec![],
            body: "v1".into(),
            delay: Duration::ZERO,
        }
    }
}

impl Backend {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = Backend {
            addr: Some(listener.local_addr().unwrap()),
            ..Default::default()
        };
        let shared = backend.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let b = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let b = b.clone();
                        async move {
                            if b.down.load(std::sync::atomic::Ordering::SeqCst) {
                                return Err("the backend is down");
                            }
                            b.seen.lock().unwrap().push((
                                req.method().to_string(),
                                req.uri().to_string(),
                                req.headers().clone(),
                            ));
                            let reply = b.reply.lock().unwrap().clone();
                            tokio::time::sleep(reply.delay).await;
                            let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
                            *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap();
                            for (n, v) in reply.headers {
                                resp.headers_mut().append(n, v.parse().unwrap());
                            }
                            Ok::<_, &'static str>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        backend
    }

    pub fn answer(&self, status: u16, headers: &[(&'static str, &str)], body: &str) {
        let mut reply = self.reply.lock().unwrap();
        reply.status = status;
        reply.headers = headers.iter().map(|(n, v)| (*n, v.to_string())).collect();
        reply.body = body.into();
    }

    /// From now on, hangs up on every request.
    pub fn go_down(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn delay(&self, d: Duration) {
        self.reply.lock().unwrap().delay = d;
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> (String, String, HeaderMap) {
        self.seen.lock().unwrap().last().unwrap().clone()
    }
}

/// A runtime whose rules under `/` go to `backend` with a Policy of `policy` (YAML lines
/// under `spec:`).
pub fn runtime(backend: &Backend, policy: &str) -> Arc<Runtime> {
    runtime_in(Arc::new(Env::standalone()), backend.addr.unwrap(), policy)
}

/// The same, on `env` (what outlives snapshots, the cache among it), to `addr`.
pub fn runtime_in(env: Arc<Env>, addr: SocketAddr, policy: &str) -> Arc<Runtime> {
    runtime_with(env, addr, policy, "")
}

/// The same, with more manifests (Secrets).
pub fn runtime_with(env: Arc<Env>, addr: SocketAddr, policy: &str, more: &str) -> Arc<Runtime> {
    let yaml = more.to_string()
        + &manifest("Policy", "cached", policy)
        + &manifest(
            "Route",
            "site",
            &format!(
                "  policies: [cached]\n  rules:\n    - matches: [{{path: {{value: /}}}}]\n      backends: [{{url: 'http://{addr}'}}]\n"
            ),
        );
    Arc::new(Runtime::build(snapshot(&yaml), env).unwrap())
}

pub async fn ask(
    rt: &Arc<Runtime>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "shop.example.com");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp: Response<ProxyBody> = rt
        .clone()
        .handle(
            req.body(Empty::<Bytes>::new()).unwrap(),
            CLIENT.parse::<SocketAddr>().unwrap(),
        )
        .await;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

pub fn cache_status(h: &HeaderMap) -> &str {
    h.get("cache-status").unwrap().to_str().unwrap()
}

/// A Policy of `policy_cache` lines with API key authentication, and the Secrets of two
/// consumers' keys: alice's [`ALICE`] and bob's [`BOB`].
pub fn api_keys(policy_cache: &str) -> (String, String) {
    let secret = |name: &str, key: &str, consumer: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: test, labels: {{frontdesk.dev/api-keys: c}}}}\nstringData: {{key: '{key}', consumer: {consumer}}}\n---\n"
        )
    };
    (
        format!(
            "{policy_cache}\n  authentication:\n    apiKeys: {{secretSelector: {{matchLabels: {{frontdesk.dev/api-keys: c}}}}}}"
        ),
        secret("a", "key-alice-0001", "alice") + &secret("b", "key-bob-00001", "bob"),
    )
}

pub const ALICE: [(&str, &str); 1] = [("x-api-key", "key-alice-0001")];
pub const BOB: [(&str, &str); 1] = [("x-api-key", "key-bob-00001")];
