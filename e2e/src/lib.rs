//! Support for end-to-end scenarios: the workspace's own binaries run as real processes on
//! 127.0.0.1, a throwaway PKI for mutual TLS, and small HTTP helpers.
//!
//! The binaries are the ones cargo built next to the test executable (`cargo test --workspace`
//! builds every binary first); a missing one fails the test with a message, never skips it.
#![forbid(unsafe_code)]

pub mod ports;
pub mod target;

pub use ports::free_port;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A workspace binary next to the running test (`target/<profile>/NAME`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --workspace` (make test does)",
        path.display()
    );
    path
}

/// A child process, killed on drop, its stderr kept in a file.
pub struct Process {
    child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, args: &[String], log: PathBuf) -> Self {
        let child = Command::new(bin(name))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident memory now, in bytes (Linux: `VmRSS` of /proc/PID/status).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status, if it exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The gateway whose proxies [`Pki`]'s client certificate is for: the controller serves a proxy
/// only the gateway its certificate names (`spiffe://frontdesk/gateway/<name>`).
pub const PKI_GATEWAY: &str = "public";

/// A CA with a server certificate for the controller (localhost, 127.0.0.1) and a client
/// certificate for the proxies of gateway [`PKI_GATEWAY`], as PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path, name: &str) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let leaf = |mut params: CertificateParams, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            params.extended_key_usages = vec![usage];
            (
                params.signed_by(&key, &issuer).unwrap().pem(),
                key.serialize_pem(),
            )
        };
        let (server_cert, server_key) = leaf(
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap(),
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let mut client = CertificateParams::default();
        let uri = format!("spiffe://frontdesk/gateway/{PKI_GATEWAY}");
        client.subject_alt_names = vec![rcgen::SanType::URI(uri.as_str().try_into().unwrap())];
        let (client_cert, client_key) = leaf(client, ExtendedKeyUsagePurpose::ClientAuth);
        let write = |file: &str, text: &str| {
            let path = dir.join(format!("{name}-{file}"));
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            ca: write("ca.crt", &ca.pem()),
            server_cert: write("server.crt", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.crt", &client_cert),
            client_key: write("client.key", &client_key),
        }
    }
}

pub type Answer = (StatusCode, HeaderMap, Bytes);

pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// An HTTP/2 prior-knowledge client, as proxies speak to an `--insecure` controller.
pub fn h2_client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// GET through `client`; any failure is an `Err` with the reason.
pub async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Result<Answer, String> {
    send(client, Method::GET, url, &[]).await
}

/// A request without a body, with `headers`, answered within 5 s; any failure is an `Err`.
pub async fn send(
    client: &Client<HttpConnector, Empty<Bytes>>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// Polls `check` every 5 ms until it returns `Some`, or fails after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writes a file atomically (write, then rename), as deploy tools do.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The p-th percentile (0-100) of durations, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
