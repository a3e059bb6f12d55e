//! Demo and test backends: small HTTP servers that serve product, review and inventory JSON for
//! `make demo`, plus endpoints that the proxy's tests drive (echo, status, delay, large and slow
//! bodies). Every response carries `x-backend: <name>` so a test can tell who answered.
//!
//! | path | answer |
//! |---|---|
//! | `/products`, `/products/{id}` | product JSON |
//! | `/reviews?productId={id}` | reviews JSON |
//! | `/inventory/{id}` | stock JSON |
//! | `/status/{code}[?delay={ms}]` | that status, JSON body (after `ms` milliseconds) |
//! | `/delay/{ms}` | 200 after `ms` milliseconds |
//! | `/bytes/{n}` | `n` bytes, streamed in 64 KiB chunks |
//! | `/stream/{chunks}/{ms}` | `chunks` lines, one every `ms` milliseconds (chunked) |
//! | `/upload` | reads the body, answers `{"bytes": n}` |
//! | `/connections` | how many TCP connections this backend has accepted so far |
//! | `/requests` | how many requests this backend has answered so far (this one not counted) |
//! | `/ws` | a WebSocket echo (each message comes back as sent) |
//! | `/demo.Catalog/*`, `/grpc.health.v1.Health/Check` | gRPC over HTTP/2 ([`grpc`], `demo/proto/catalog.proto`) |
//! | `/flaky/{n}` | 503 to every n-th `/flaky` request this backend gets, 200 to the others; reads the body, answers its size |
//! | anything else | echo: backend, method, path, query, headers, body size |
//!
//! [`certs`]: a certificate authority for HTTPS listeners in demos and tests.
#![forbid(unsafe_code)]

pub mod certs;
pub mod grpc;
mod websocket;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

/// What a backend counts, for tests that ask it.
#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    requests: AtomicU64,
    flaky: AtomicU64,
}

/// Serves forever on `listener` as backend `name`.
pub async fn serve(listener: TcpListener, name: String) {
    let counts = Arc::new(Counts::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        counts.accepted.fetch_add(1, Ordering::Relaxed);
        let name = name.clone();
        let counts = counts.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let name = name.clone();
                let counts = counts.clone();
                async move { Ok::<_, Infallible>(handle(req, &name, &counts).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Starts a backend on a free 127.0.0.1 port, for tests.
pub async fn spawn(name: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a test backend");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, name.to_string()));
    addr
}

/// Reads the request's body; its length (0 when it broke off).
async fn body_len(req: Request<Incoming>) -> usize {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0)
}

fn json_response(status: StatusCode, v: &Value, backend: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r.headers_mut().insert(
        "x-backend",
        backend
            .parse()
            .unwrap_or_else(|_| "backend".parse().unwrap()),
    );
    r
}

fn products() -> Vec<Value> {
    vec![
        json!({"id": "1", "name": "Espresso machine", "price": 249.0, "trackingId": "TRK-1001"}),
        json!({"id": "2", "name": "Burr grinder", "price": 129.5, "trackingId": "TRK-1002"}),
        json!({"id": "3", "name": "Milk jug", "price": 19.9, "trackingId": "TRK-1003"}),
    ]
}

async fn handle(req: Request<Incoming>, name: &str, counts: &Counts) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let query = req.uri().query().unwrap_or("").to_string();
    let ok = |v: Value| json_response(StatusCode::OK, &v, name);
    if segs != ["requests"] {
        counts.requests.fetch_add(1, Ordering::Relaxed);
    }
    if grpc::serves(&path) {
        return grpc::handle(req, name).await;
    }
    match segs.as_slice() {
        ["ws"] => websocket::echo(req, name),
        ["connections"] => ok(json!({"accepted": counts.accepted.load(Ordering::Relaxed)})),
        ["requests"] => ok(json!({"requests": counts.requests.load(Ordering::Relaxed)})),
        ["flaky", every] => {
            let n = counts.flaky.fetch_add(1, Ordering::Relaxed) + 1;
            let status = match every.parse::<u64>() {
                Ok(every) if every > 0 && n.is_multiple_of(every) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::OK,
            };
            let body = body_len(req).await;
            json_response(
                status,
                &json!({"status": status.as_u16(), "n": n, "bodyBytes": body}),
                name,
            )
        }
        ["products"] => ok(json!({"items": products()})),
        ["products", id] => match products().into_iter().find(|p| p["id"] == *id) {
            Some(p) => ok(p),
            None => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "no such product"}),
                name,
            ),
        },
        ["reviews"] => {
            let id = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("productId="))
                .unwrap_or("");
            ok(json!({"productId": id, "average": 4.5, "items": [
                {"author": "ana", "stars": 5, "text": "Great"},
                {"author": "bo", "stars": 4, "text": "Good value"}
            ]}))
        }
        ["inventory", id] => {
            ok(json!({"productId": id, "quantity": id.len() * 7, "warehouse": "north"}))
        }
        ["status", code] => {
            if let Some(ms) = query.split('&').find_map(|kv| kv.strip_prefix("delay=")) {
                tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            }
            let status = code
                .parse()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::OK);
            json_response(status, &json!({"status": status.as_u16()}), name)
        }
        ["delay", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            ok(json!({"delayedMs": ms}))
        }
        ["bytes", n] => stream_bytes(n.parse().unwrap_or(0), name),
        ["stream", chunks, ms] => {
            stream_lines(chunks.parse().unwrap_or(1), ms.parse().unwrap_or(0), name)
        }
        ["upload"] => {
            let mut body = req.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => break,
                }
            }
            ok(json!({"bytes": n}))
        }
        _ => {
            let headers: serde_json::Map<String, Value> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Value::String(String::from_utf8_lossy(v.as_bytes()).into()),
                    )
                })
                .collect();
            let method = req.method().to_string();
            let version = format!("{:?}", req.version());
            let body = body_len(req).await;
            ok(
                json!({"backend": name, "method": method, "path": path, "query": query,
                      "headers": headers, "bodyBytes": body, "version": version}),
            )
        }
    }
}

fn streaming(
    body: impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + 'static,
    name: &str,
) -> Response<Body> {
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(body)));
    r.headers_mut()
        .insert("content-type", "application/octet-stream".parse().unwrap());
    r.headers_mut().insert(
        "x-backend",
        name.parse().unwrap_or_else(|_| "backend".parse().unwrap()),
    );
    r
}

fn stream_bytes(total: u64, name: &str) -> Response<Body> {
    const CHUNK: u64 = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK as usize]);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        let mut left = total;
        while left > 0 {
            let n = left.min(CHUNK);
            if tx
                .send(Ok(Frame::data(chunk.slice(..n as usize))))
                .await
                .is_err()
            {
                return;
            }
            left -= n;
        }
    });
    let mut r = streaming(ReceiverStream(rx), name);
    r.headers_mut().insert("content-length", total.into());
    r
}

fn stream_lines(chunks: u32, ms: u64, name: &str) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    tokio::spawn(async move {
        for i in 0..chunks {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if tx
                .send(Ok(Frame::data(Bytes::from(format!("chunk {i}\n")))))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    streaming(ReceiverStream(rx), name)
}

/// A stream over an mpsc receiver (tokio-stream's, without the dependency); tests use it to
/// build slow request bodies.
pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
