//! For the resilience tests (circuit breaking, outlier detection, health checks, balancing):
//! a request path built in-process from a Route with a Policy, and backends that misbehave on
//! purpose on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use frontdesk_proxy::runtime::{Env, Runtime};
use frontdesk_snapshot::Action;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::{manifest, snapshot};

pub const CLIENT: &str = "192.0.2.10:50000";

/// A Route `shop` for every path with Policy `breaker` (its spec's `policy` lines) and
/// `retries` if given, forwarding to `backend`.
pub fn manifests(backend: SocketAddr, policy: &str, retries: Option<&str>) -> String {
    let retries = retries.map_or(String::new(), |r| format!("      retries: {r}\n"));
    manifest("Policy", "breaker", policy)
        + &manifest(
            "Route",
            "shop",
            &format!(
                "  policies: [breaker]\n  rules:\n    - timeout: 5s\n{retries}      backends: [{{url: 'http://{backend}'}}]\n"
            ),
        )
}

/// The request path of [`manifests`], its one backend's endpoints set to `endpoints` (as a
/// Service's would be).
pub fn runtime(endpoints: &[SocketAddr], policy: &str, retries: Option<&str>) -> Arc<Runtime> {
    runtime_in(&Arc::new(Env::standalone()), endpoints, policy, retries)
}

/// [`runtime`] in `env`: runtimes built in one `Env` share what a proxy keeps across
/// configurations (connection pools, backend states), as successive snapshots do.
pub fn runtime_in(
    env: &Arc<Env>,
    endpoints: &[SocketAddr],
    policy: &str,
    retries: Option<&str>,
) -> Arc<Runtime> {
    let mut snap = snapshot(&manifests(endpoints[0], policy, retries));
    let Action::Forward { backends } =
        &mut std::sync::Arc::make_mut(&mut snap.routes[0]).rules[0].action
    else {
        panic!("a forward");
    };
    backends[0].endpoints = endpoints.iter().map(|e| e.to_string()).collect();
    Arc::new(Runtime::build(snap, env.clone()).unwrap())
}

/// A GET of `path` with `headers`, from [`CLIENT`] unless `client` is given.
pub async fn call_from(
    rt: &Arc<Runtime>,
    path: &str,
    headers: &[(&str, &str)],
    client: Option<SocketAddr>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::get(path).header("host", "shop.example.com");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = rt
        .clone()
        .handle(
            req.body(Full::new(Bytes::new())).unwrap(),
            client.unwrap_or_else(|| CLIENT.parse().unwrap()),
        )
        .await;
    let (head, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        head.status,
        head.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// A `method` request for `path` with `body` (and its Content-Length) from [`CLIENT`]: the
/// status and the body of the answer.
pub async fn send_body(
    rt: &Arc<Runtime>,
    method: &str,
    path: &str,
    body: &'static str,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "shop.example.com");
    if !body.is_empty() {
        req = req.header("content-length", body.len());
    }
    let resp = rt
        .clone()
        .handle(
            req.body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap(),
            CLIENT.parse::<SocketAddr>().unwrap(),
        )
        .await;
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub async fn call(rt: &Arc<Runtime>, path: &str) -> (StatusCode, HeaderMap, String) {
    call_from(rt, path, &[], None).await
}

/// The value of the first metric line starting with `line_start` (0 when there is none).
pub fn metric(rt: &Runtime, line_start: &str) -> u64 {
    let text = rt.env.metrics.encode();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .map_or(0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

pub const ALWAYS_500: &str = "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n";

/// Answers every request (one per read, keep-alive) with `answer`, counting them.
pub async fn fixed_backend(answer: &'static str) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let hits = counted.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, hits)
}

/// A backend that reads each request and answers 200 only once the gate is opened; counts
/// the requests it holds.
pub async fn gated_backend() -> (SocketAddr, Arc<AtomicU64>, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(AtomicU64::new(0));
    let (open, gate) = watch::channel(false);
    let counted = held.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (held, mut gate) = (counted.clone(), gate.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    held.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if s.write_all(ok.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, held, open)
}

/// A backend that answers 200 with its `name` as the body while it is up; down, it refuses
/// connections and closes the ones it had (a pod that died). Counts requests by path prefix:
/// health checks (`/healthz`) apart from the rest.
pub struct Switchable {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    pub checks: Arc<AtomicU64>,
    up: watch::Sender<bool>,
}

impl Switchable {
    pub async fn start(name: &'static str) -> Self {
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let (up, state) = watch::channel(true);
        let (requests, checks) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (r, c) = (requests.clone(), checks.clone());
        let answer: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{name}",
                name.len()
            )
            .into_boxed_str(),
        );
        tokio::spawn(async move {
            let mut switch = state.clone();
            loop {
                let _ = switch.wait_for(|up| *up).await;
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                loop {
                    tokio::select! {
                        _ = switch.wait_for(|up| !*up) => break,
                        accepted = listener.accept() => {
                            let Ok((mut s, _)) = accepted else { break };
                            let (r, c, mut state) = (r.clone(), c.clone(), state.clone());
                            tokio::spawn(async move {
                                let mut buf = [0u8; 8192];
                                loop {
                                    let n = tokio::select! {
                                        _ = state.wait_for(|up| !*up) => return,
                                        n = s.read(&mut buf) => n,
                                    };
                                    let Ok(n) = n else { return };
                                    if n == 0 {
                                        return;
                                    }
                                    if buf[..n].starts_with(b"GET /healthz") {
                                        c.fetch_add(1, Ordering::SeqCst);
                                    } else {
                                        r.fetch_add(1, Ordering::SeqCst);
                                    }
                                    if s.write_all(answer.as_bytes()).await.is_err() {
                                        return;
                                    }
                                }
                            });
                        }
                    }
                }
            }
        });
        Switchable {
            addr,
            requests,
            checks,
            up,
        }
    }

    pub fn down(&self) {
        self.up.send(false).unwrap();
    }

    pub fn up(&self) {
        self.up.send(true).unwrap();
    }
}

/// Waits until `done`, at most 5 s.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 5s");
}
