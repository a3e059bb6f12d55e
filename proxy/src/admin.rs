//! The admin listener (default 127.0.0.1:9901; keep it off public interfaces):
//! `/metrics` (Prometheus text), `/healthz` (the process is up), `/ready` (a configuration is
//! loaded and the proxy is not overloaded: [`crate::overload`]), `/config` (the snapshot
//! serving, as JSON, secrets redacted), `/status` (what the last load said about each object
//! and file), and `POST /cache/purge` (removes cached answers by URL prefix or tag).

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::overload::Overload;
use crate::runtime::RuntimeHandle;

pub struct Admin {
    pub runtime: RuntimeHandle,
    pub metrics: Arc<Metrics>,
    /// Set by the configuration source after each load.
    pub status: ArcSwap<serde_json::Value>,
    /// True once a first configuration was applied.
    pub ready: std::sync::atomic::AtomicBool,
    /// While overloaded the proxy is not ready: endpoints send new clients elsewhere.
    pub overload: Arc<Overload>,
}

impl Admin {
    pub fn new(runtime: RuntimeHandle, metrics: Arc<Metrics>, overload: Arc<Overload>) -> Self {
        Admin {
            runtime,
            metrics,
            overload,
            status: ArcSwap::from_pointee(serde_json::Value::Null),
            ready: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path() == "/cache/purge" {
            return self.purge(req);
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/ready" => {
                if !self.ready.load(std::sync::atomic::Ordering::Acquire) {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no configuration loaded yet\n",
                    )
                } else if self.overload.overloaded() {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded: memory is past --max-memory\n",
                    )
                } else {
                    text(StatusCode::OK, "ready\n")
                }
            }
            "/metrics" => {
                let mut r = Response::new(Full::new(Bytes::from(self.metrics.encode())));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                r
            }
            "/config" => {
                // Secrets (keys, hashes) print as "<redacted>".
                let snapshot = self.runtime.load().snapshot.clone();
                json(frontdesk_snapshot::secret::redacted(|| {
                    serde_json::to_vec_pretty(&*snapshot).unwrap_or_default()
                }))
            }
            "/status" => json(serde_json::to_vec_pretty(&**self.status.load()).unwrap_or_default()),
            _ => text(
                StatusCode::NOT_FOUND,
                "try /metrics, /healthz, /ready, /config or /status\n",
            ),
        }
    }
}

impl Admin {
    /// `POST /cache/purge?url=URL` removes the cached answers of `URL`
    /// (`scheme://host[:port]/path?query`, as clients addressed it), whatever they vary on;
    /// `?prefix=URL` those of every URL that starts with `URL`; `?tag=T` those whose backend
    /// tagged them `T` (`Cache-Tag`). Answers `{"purged": N}`, N keys.
    fn purge(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        use crate::stages::cache::key::SEP;
        if req.method() != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
        }
        let cache = self.runtime.load().env.cache.clone();
        let asked: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let purged = match asked.as_slice() {
            [(k, prefix)] if k == "prefix" && !prefix.is_empty() => {
                cache.purge_prefix(&format!("GET{}{prefix}", crate::stages::cache::key::SEP))
            }
            [(k, url)] if k == "url" && !url.is_empty() => {
                cache.purge_prefix(&format!("GET{SEP}{url}{SEP}"))
            }
            [(k, tag)] if k == "tag" && !tag.is_empty() => cache.purge_tag(tag),
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "name one of url=URL, prefix=URL or tag=TAG\n",
                );
            }
        };
        json(format!("{{\"purged\": {purged}}}\n").into_bytes())
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

pub async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let resp = admin.answer(&req);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
