//! Test support: a real `frontdesk-proxy` process on 127.0.0.1, real backends, and a small
//! HTTP client. Shared by the integration tests; each test file uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
pub type TestClient = Client<HttpConnector, TestBody>;

pub mod cache;
pub mod h2_backend;
#[path = "../../../e2e/src/ports.rs"]
mod ports;
pub mod resilience;
pub mod tls_backend;
pub mod wire;
pub use ports::free_port;

/// A running proxy process; killed on drop.
pub struct ProxyProcess {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stderr: PathBuf,
    stdout: PathBuf,
}

impl ProxyProcess {
    /// Starts a proxy on the manifests in a new temporary directory holding `files`.
    pub async fn with_files(files: &[(&str, &str)], extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("manifests");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let mut p = Self::start(&dir, extra, tmp.path()).await;
        p._tmp = Some(tmp);
        p
    }

    pub async fn start(manifests: &Path, extra: &[&str], logs: &Path) -> Self {
        let addr = free_port();
        let admin = free_port();
        let stderr = logs.join("proxy.stderr");
        let stdout = logs.join("proxy.stdout");
        let child = Command::new(env!("CARGO_BIN_EXE_frontdesk-proxy"))
            .arg("--manifests")
            .arg(manifests)
            .args([
                "--listen",
                &addr.to_string(),
                "--admin",
                &admin.to_string(),
                "--reload-interval",
                "100ms",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .expect("starting frontdesk-proxy");
        let p = ProxyProcess {
            child,
            addr,
            admin,
            dir: manifests.to_path_buf(),
            _tmp: None,
            stderr,
            stdout,
        };
        p.wait_ready().await;
        p
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match get(&format!("http://{}/ready", self.admin)).await {
                Ok((StatusCode::OK, _, _)) => return,
                // Not ready because overloaded (a test of that): started once it serves a
                // configuration.
                Ok((_, _, body))
                    if String::from_utf8_lossy(&body).contains("overloaded")
                        && self.config_version().await > 0 =>
                {
                    return;
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "the proxy did not become ready:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub async fn config_version(&self) -> u64 {
        let (_, _, body) = get(&format!("http://{}/config", self.admin)).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["version"].as_u64().unwrap()
    }

    pub async fn status(&self) -> serde_json::Value {
        let (_, _, body) = get(&format!("http://{}/status", self.admin)).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    pub async fn metrics(&self) -> String {
        let (_, _, body) = get(&format!("http://{}/metrics", self.admin))
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// Writes a manifest atomically (write + rename), as a deploy tool would.
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.join(name)).unwrap();
    }

    /// Waits until the configuration version is above `version`.
    pub async fn wait_version_above(&self, version: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.config_version().await;
            if v > version {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no reload past version {version}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until stderr contains `needle`.
    pub async fn wait_log(&self, needle: &str) -> String {
        self.wait_output(needle, Self::stderr).await
    }

    /// Waits until stdout (the access log) contains `needle`.
    pub async fn wait_log_stdout(&self, needle: &str) -> String {
        self.wait_output(needle, Self::stdout).await
    }

    async fn wait_output(&self, needle: &str, read: fn(&Self) -> String) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = read(self);
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the log never said {needle:?}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub fn h2_client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

pub fn body(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

pub type Answer = (StatusCode, HeaderMap, Bytes);

pub async fn send(
    client: &Client<HttpConnector, TestBody>,
    req: Request<TestBody>,
) -> Result<Answer, String> {
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status, parts.headers, bytes))
}

pub async fn get(url: &str) -> Result<Answer, String> {
    send(
        &client(),
        Request::get(url).body(body(Bytes::new())).unwrap(),
    )
    .await
}

/// GET with headers, through a shared client.
pub async fn get_with(
    client: &Client<HttpConnector, TestBody>,
    url: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(client, req.body(body(Bytes::new())).unwrap())
        .await
        .unwrap()
}

pub fn json(b: &Bytes) -> serde_json::Value {
    serde_json::from_slice(b)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(b)))
}

/// Which demo backend answered.
pub fn backend(a: &Answer) -> String {
    a.1.get("x-backend")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A backend on 127.0.0.1 that accepts connections and never answers (while the test's
/// runtime lives).
pub async fn silent_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

/// A backend on 127.0.0.1 that answers every request with `answer` (a whole HTTP/1.1
/// response, keep-alive) and records each request line, in order.
pub async fn recording_backend(
    answer: &'static str,
) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let line = head.lines().next().unwrap_or_default().to_string();
                        log.lock().unwrap().push(line);
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// A Route manifest.
pub fn route(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: {name}, namespace: test}}\nspec:\n{spec}\n"
    )
}

/// A real `redis-server` on a free port of 127.0.0.1, without persistence; killed on drop.
/// `make test` installs redis-server (scripts/install-deps.sh); without it the tests that need
/// it fail, they never skip.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    pub async fn start() -> Self {
        let mut r = RedisServer {
            child: None,
            port: free_port().port(),
        };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same port and waits until it answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required by these tests: run scripts/install-deps.sh test (make test does)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The snapshot of gateway `default` compiled from manifests, as the standalone proxy does.
pub fn snapshot(yaml: &str) -> frontdesk_snapshot::Snapshot {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), yaml).unwrap();
    let update = frontdesk_files::FileSource::new(dir.path().to_path_buf())
        .load()
        .unwrap();
    assert!(update.problems.is_empty(), "{:?}", update.problems);
    update.output.snapshot("default")
}

/// A frontdesk manifest of `kind` in namespace `test`, ending with a document separator.
pub fn manifest(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: frontdesk.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}, namespace: test}}\nspec:\n{spec}\n---\n"
    )
}
