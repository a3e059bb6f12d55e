//! The admin listener (default 127.0.0.1:9901; keep it off public interfaces):
//! `/metrics` (Prometheus text), `/healthz` (the process is up), `/ready` (a configuration is
//! loaded and the proxy is not overloaded: [`crate::overload`]), `/config` (the snapshot
//! serving, as JSON, secrets redacted), `/status` (what the last load said about each object
//! and file), `/explain/KIND/NAMESPACE/NAME` (in standalone mode: what an object became, as
//! the controller's admin API and `kubectl frontdesk explain` show it) and `POST /cache/purge`
//! (removes cached answers by URL prefix or tag).

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
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
    /// Standalone mode's last compile, for `/explain`; none when a controller configures the
    /// proxy (the controller explains).
    pub output: ArcSwapOption<frontdesk_crds::Output>,
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
            output: ArcSwapOption::empty(),
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
            path if path.starts_with("/explain/") => self.explain(path),
            _ => text(
                StatusCode::NOT_FOUND,
                "try /metrics, /healthz, /ready, /config, /status or /explain/KIND/NAMESPACE/NAME\n",
            ),
        }
    }
}

impl Admin {
    /// `/explain/KIND/NAMESPACE/NAME`: what the object became in the last load of the
    /// manifests ([`frontdesk_crds::explain`]).
    fn explain(&self, path: &str) -> Response<Full<Bytes>> {
        let (kind, namespace, name) = match frontdesk_crds::explain::parse_path(path) {
            Ok(asked) => asked,
            Err(why) => return text(StatusCode::NOT_FOUND, why),
        };
        let Some(output) = self.output.load_full() else {
            return text(
                StatusCode::NOT_FOUND,
                "nothing to explain: no manifests loaded yet, or this proxy is configured by a \
                 controller (ask the controller's admin port: kubectl frontdesk explain)\n",
            );
        };
        match frontdesk_crds::explain::explain(&output, kind, namespace, name) {
            Some(explained) => json(serde_json::to_vec_pretty(&explained).unwrap_or_default()),
            None => text(
                StatusCode::NOT_FOUND,
                format!("no {kind} {namespace}/{name} in the last load of the manifests\n"),
            ),
        }
    }

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

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
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
