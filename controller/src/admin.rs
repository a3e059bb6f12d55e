//! The controller's admin listener: `/metrics`, `/healthz`, `/ready` (a first configuration is
//! compiled), `/status` (object statuses, gateway versions, connected proxies and their ACKs,
//! whether the Gateway API CRDs are installed, the watches whose lists fail).

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;

use crate::push::PushServer;

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

pub(crate) fn answer(push: &PushServer, path: &str) -> Response<Full<Bytes>> {
    match path {
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n"),
        "/ready" if push.store.ready() => respond(StatusCode::OK, "text/plain", "ready\n"),
        "/ready" => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "no configuration compiled yet\n",
        ),
        "/metrics" => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            push.metrics.encode(),
        ),
        "/status" => {
            let output = push.store.output();
            let gateways: Vec<_> = push
                .store
                .versions()
                .into_iter()
                .map(|(gateway, version, bytes)| {
                    let (acked, connected) = push.acks.programmed(&gateway, version);
                    json!({"gateway": gateway, "version": version, "bytes": bytes,
                           "programmed": format!("{acked}/{connected} proxies of gateway {gateway} at version {version}")})
                })
                .collect();
            let body = json!({
                "objects": output.map(|o| o.statuses).unwrap_or_default(),
                "gateways": gateways,
                "proxies": push.acks.snapshot(),
                "gatewayApi": push.gateway_api.describe(),
                "watches": push.watch_health.describe(),
            });
            respond(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec_pretty(&body).unwrap_or_default(),
            )
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /healthz, /ready or /status\n",
        ),
    }
}

pub async fn serve(listener: TcpListener, push: Arc<PushServer>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let push = push.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let resp = answer(&push, req.uri().path());
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
