//! frontdesk's HTTP/1 server in this process, on real sockets, with a scripted backend:
//! raw client bytes in, raw backend bytes out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use frontdesk_proxy::metrics::Metrics;
use frontdesk_proxy::runtime::{Env, Runtime, RuntimeHandle};
use frontdesk_proxy::server::{self, ServerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, oneshot};

use super::{manifest, snapshot};

/// The proxy's server in this process, on a free port, serving `yaml`. Stops when the sender
/// is dropped or fired.
pub async fn proxy(yaml: &str) -> (SocketAddr, oneshot::Sender<()>) {
    proxy_draining_for(yaml, Duration::from_secs(5)).await
}

/// [`proxy`] whose drain gives connections `drain_timeout` to finish.
pub async fn proxy_draining_for(
    yaml: &str,
    drain_timeout: Duration,
) -> (SocketAddr, oneshot::Sender<()>) {
    let env = Arc::new(Env::standalone());
    let runtime = RuntimeHandle::new(Runtime::build(snapshot(yaml), env).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let limits = ServerLimits {
        drain_timeout,
        ..ServerLimits::default()
    };
    tokio::spawn(server::serve(
        listener,
        runtime,
        Arc::new(Metrics::new()),
        limits,
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

pub fn route_to(backend: SocketAddr, extra: &str) -> String {
    manifest(
        "Route",
        "r",
        &format!("  rules:\n    - backends: [{{url: 'http://{backend}'}}]\n{extra}"),
    )
}

/// A backend that answers each request on a connection with the next of `answers` (raw
/// bytes), recording every request head and body it read; `None` closes the connection
/// without answering.
pub struct ScriptedBackend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<String>>>,
    pub connections: Arc<AtomicUsize>,
}

pub async fn scripted(answers: Vec<Option<&'static str>>) -> ScriptedBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let (s, c) = (seen.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let (seen, answers) = (s.clone(), answers.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(request) = read_request(&mut stream, &mut buf).await else {
                        return;
                    };
                    seen.lock().await.push(request);
                    let next = answers.lock().await.next().flatten();
                    match next {
                        Some(answer) => {
                            if stream.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            });
        }
    });
    ScriptedBackend {
        addr,
        seen,
        connections,
    }
}

/// Reads one request (head and a Content-Length or chunked body) as text.
pub async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    let body_end = loop {
        let have = &buf[head_end..];
        if let Some(n) = length {
            if have.len() >= n {
                break head_end + n;
            }
        } else if chunked {
            if let Some(i) = have.windows(5).position(|w| w == b"0\r\n\r\n") {
                break head_end + i + 5;
            }
        } else {
            break head_end;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..body_end]).into_owned();
    buf.drain(..body_end);
    Some(text)
}

/// Sends raw bytes on a new connection; returns everything read until the proxy closes (or
/// `wait` passes), and how long that took.
pub async fn exchange(proxy: SocketAddr, raw: &str, wait: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

pub fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = &answer[..answer.find("\r\n\r\n").unwrap_or(answer.len())];
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
