//! The controller's admin listener: `/metrics`, `/healthz`, `/ready` (a first configuration is
//! compiled), `/status` (object statuses, gateway versions, connected proxies and their ACKs,
//! whether the Gateway API CRDs are installed, the watches whose lists fail), and
//! `/explain/KIND/NAMESPACE/NAME` (what an object became, [`frontdesk_crds::explain`]).

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
                .map(|v| {
                    let (acked, connected) = push.acks.programmed(&v.gateway, v.seq);
                    let (gateway, version) = (v.gateway, v.version);
                    json!({"gateway": gateway, "version": version, "published": v.seq,
                           "bytes": v.bytes,
                           "programmed": format!("{acked}/{connected} proxies of gateway {gateway} at version {version}")})
                })
                .collect();
            let body = json!({
                "objects": output.as_ref().map(|o| o.statuses.as_slice()).unwrap_or_default(),
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
        _ if path.starts_with("/explain/") => explain(push, path),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /healthz, /ready, /status or /explain/KIND/NAMESPACE/NAME\n",
        ),
    }
}

/// `/explain/KIND/NAMESPACE/NAME`: what the object became ([`frontdesk_crds::explain`]), and
/// per gateway which of this replica's proxies serve its generation.
fn explain(push: &PushServer, path: &str) -> Response<Full<Bytes>> {
    let (kind, namespace, name) = match frontdesk_crds::explain::parse_path(path) {
        Ok(asked) => asked,
        Err(why) => return respond(StatusCode::NOT_FOUND, "text/plain", why),
    };
    let explained = push
        .store
        .output()
        .and_then(|o| frontdesk_crds::explain::explain(&o, kind, namespace, name));
    let Some(mut explained) = explained else {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no {kind} {namespace}/{name} in the last compile\n"),
        );
    };
    // Endpoints as published: the endpoint fast path moves them without a compile. A backend
    // the compile left without any stays so (it may be held back).
    for on in &mut explained.gateways {
        let Some(snapshot) = push.store.published(&on.gateway) else {
            continue;
        };
        let mut now: std::collections::HashMap<&str, &Vec<String>> = Default::default();
        for b in snapshot.backends().filter(|b| !b.invalid) {
            let e = now.entry(b.name.as_str()).or_insert(&b.endpoints);
            if e.is_empty() {
                *e = &b.endpoints;
            }
        }
        for b in on.rules.iter_mut().flat_map(|r| &mut r.backends) {
            if let Some(endpoints) = now.get(b.name.as_str()).filter(|_| !b.endpoints.is_empty()) {
                b.endpoints.clone_from(endpoints);
            }
        }
    }
    // Per gateway: the version since which this replica's snapshots carry the object's
    // generation, and its proxies with whether they acknowledged that far.
    let carried = push.store.carried_all();
    let acks = push.acks.snapshot();
    let proxies: Vec<serde_json::Value> = carried
        .iter()
        .filter_map(|(gateway, objects)| {
            let (_, carried) = objects.iter().find(|((k, ns, n), _)| {
                (k.as_str(), ns.as_str(), n.as_str()) == (kind, namespace, name)
            })?;
            let proxies: Vec<serde_json::Value> = acks
                .get(gateway)
                .into_iter()
                .flatten()
                .map(|(proxy, state)| {
                    json!({"proxy": proxy, "acked": state.acked,
                           "serves": state.serves(carried.since_seq)})
                })
                .collect();
            // No version it is carried since: that depends on what this replica published
            // before, and would read differently from another replica.
            Some(json!({"gateway": gateway, "generation": carried.generation,
                        "proxies": proxies}))
        })
        .collect();
    let mut body = serde_json::to_value(&explained).unwrap_or_default();
    body["replicaProxies"] = json!(proxies);
    respond(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec_pretty(&body).unwrap_or_default(),
    )
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
