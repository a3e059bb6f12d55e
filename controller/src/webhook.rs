//! The validating admission webhook: at `kubectl apply` time, a Route, Policy, Aggregate,
//! HTTPRoute or GRPCRoute the compiler would reject is refused with the message its `Accepted`
//! condition would carry ([`frontdesk_crds::admission`], the same `compile()`).
//!
//! `POST /validate` takes an `admission.k8s.io/v1` AdmissionReview over HTTPS
//! (`--webhook-listen`, with the controller's own certificate, reloaded when rotated). Every
//! replica answers from its watch caches: the reviewed object is compiled with what can decide
//! its verdict (its namespace's Policies and those targeting its Gateways, the routes claiming
//! one of its hosts, the Gateways it names with the GatewayClasses and its Namespace), so a
//! review costs about the same at 10 objects as at 10,000. The chart registers it with
//! `failurePolicy: Ignore`: when no replica answers, objects are admitted and their status
//! still tells the truth. With `--webhook-configuration`, each replica keeps that
//! ValidatingWebhookConfiguration's `caBundle` equal to its trust bundle ([`keep_ca_bundle`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use frontdesk_crds::Output;
use frontdesk_crds::admission::{Context, Settings, Verdict, review, reviewed};
use frontdesk_crds::gateway_api::{GRPCRoute, Gateway, GatewayClass, HTTPRoute};
use frontdesk_crds::manifests::Object;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::DynamicObject;
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::gateway_api::GatewayApiStores;
use crate::metrics::Metrics;
use crate::push::HANDSHAKE_TIMEOUT;

/// The path the API server posts reviews to.
pub const PATH: &str = "/validate";
/// Larger bodies are refused: an object is at most 1.5 MiB in etcd, its review a little more.
const MAX_BODY: usize = 4 << 20;

/// Reviews objects against the watch caches.
pub struct Reviewer {
    pub routes: Vec<Store<DynamicObject>>,
    pub aggregates: Vec<Store<DynamicObject>>,
    pub policies: Vec<Store<DynamicObject>>,
    /// The Gateway API kinds' caches, once their CRDs are found.
    pub(crate) gateway_api: watch::Receiver<Option<GatewayApiStores>>,
    /// The last compile of the whole cluster (what the proxies serve), which confirms a host
    /// conflict before it is refused.
    pub(crate) served: Arc<dyn Fn() -> Option<Arc<Output>> + Send + Sync>,
    pub settings: Settings,
}

impl Reviewer {
    /// A reviewer over these objects (JSON, as the API server serves them, of any kind the
    /// reviews read) rather than watch caches: benchmarks and tests.
    pub fn over(objects: Vec<Value>, settings: Settings) -> Result<Self, serde_json::Error> {
        let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for o in objects {
            let kind = o["kind"].as_str().unwrap_or_default().to_string();
            by_kind.entry(kind).or_default().push(o);
        }
        // What the proxies would serve: these objects compiled whole.
        let served = {
            let objects: Vec<Object> = (by_kind.iter())
                .flat_map(|(kind, docs)| docs.iter().map(move |d| (kind, d)))
                .filter_map(|(kind, doc)| frontdesk_crds::manifests::read(kind, doc.clone())?.ok())
                .collect();
            let mut resources = frontdesk_crds::manifests::resources(objects.iter());
            resources.shared_hosts = settings.shared_hosts;
            resources.urls = settings.urls.clone();
            Arc::new(frontdesk_crds::compile(&resources))
        };
        let mut take = |kind: &str| by_kind.remove(kind).unwrap_or_default();
        fn store<K: kube::Resource<DynamicType = ()>>(
            objects: Vec<Value>,
        ) -> Result<Vec<Store<DynamicObject>>, serde_json::Error> {
            let ar = kube::core::ApiResource::erase::<K>(&());
            let mut writer = kube::runtime::reflector::store::Writer::new(ar);
            for o in objects {
                let o: DynamicObject = serde_json::from_value(o)?;
                writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(o));
            }
            Ok(vec![writer.as_reader()])
        }
        let mut namespaces = kube::runtime::reflector::store::Writer::<Namespace>::default();
        for o in take("Namespace") {
            let o: Namespace = serde_json::from_value(o)?;
            namespaces.apply_watcher_event(&kube::runtime::watcher::Event::Apply(o));
        }
        let gateway_api = GatewayApiStores {
            classes: store::<GatewayClass>(take("GatewayClass"))?,
            gateways: store::<Gateway>(take("Gateway"))?,
            http_routes: store::<HTTPRoute>(take("HTTPRoute"))?,
            grpc_routes: store::<GRPCRoute>(take("GRPCRoute"))?,
            namespaces: vec![namespaces.as_reader()],
            ..Default::default()
        };
        Ok(Reviewer {
            routes: store::<frontdesk_crds::Route>(take("Route"))?,
            aggregates: store::<frontdesk_crds::Aggregate>(take("Aggregate"))?,
            policies: store::<frontdesk_crds::Policy>(take("Policy"))?,
            gateway_api: watch::channel(Some(gateway_api)).1,
            served: Arc::new(move || Some(served.clone())),
            settings,
        })
    }
    /// The AdmissionReview to answer `review` with; `None` when it is not one.
    pub fn answer(&self, review: &Value) -> Option<Value> {
        let request = review.get("request")?;
        let uid = request.get("uid")?.as_str()?;
        let verdict = self.verdict(request);
        let mut response = json!({"uid": uid, "allowed": verdict.allowed});
        if !verdict.allowed {
            response["status"] =
                json!({"code": 422, "reason": "Invalid", "message": verdict.message});
        }
        if !verdict.warnings.is_empty() {
            response["warnings"] = json!(verdict.warnings);
        }
        Some(json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        }))
    }

    /// Whether the object of an AdmissionRequest may be stored.
    pub fn verdict(&self, request: &Value) -> Verdict {
        let operation = request.get("operation").and_then(Value::as_str);
        if !matches!(operation, Some("CREATE" | "UPDATE")) {
            return Verdict::allowed(Vec::new());
        }
        let Some(mut object) = request.get("object").cloned() else {
            return Verdict::allowed(Vec::new());
        };
        // Being deleted (a finalizer removed), or an update that leaves the spec as it was
        // (labels, annotations, a re-apply): the verdict cannot change, and refusing would
        // leave an object stored before the webhook (or past `failurePolicy: Ignore`) stuck.
        let old_spec = request.pointer("/oldObject/spec");
        if object.pointer("/metadata/deletionTimestamp").is_some()
            || (operation == Some("UPDATE") && old_spec.is_some() && old_spec == object.get("spec"))
        {
            return Verdict::allowed(Vec::new());
        }
        // A namespaced object being created may not carry its namespace yet.
        if object.pointer("/metadata/namespace").is_none()
            && let (Some(namespace), Some(meta)) = (
                request.get("namespace").cloned(),
                object.get_mut("metadata").and_then(Value::as_object_mut),
            )
        {
            meta.insert("namespace".into(), namespace);
        }
        let kind = request.pointer("/kind/kind").and_then(Value::as_str);
        // Not ours to check: allowed.
        let Some(candidate) = kind.and_then(|kind| reviewed(kind, object)) else {
            return Verdict::allowed(Vec::new());
        };
        let candidate = match candidate {
            Ok(c) => c,
            Err((field, reason)) => return Verdict::unreadable(&field, &reason),
        };
        let context = self.context(&candidate);
        let served = (self.served)();
        review(candidate, context, &self.settings, served.as_deref())
    }

    /// The objects of the caches that may decide `candidate`'s verdict, read (one that cannot
    /// be read is left out: its own status says why).
    fn context(&self, candidate: &Object) -> Vec<Object> {
        let wanted = Context::of(candidate);
        let gateway_api = self.gateway_api.borrow().clone().unwrap_or_default();
        let mut objects = Vec::new();
        let kinds = [
            ("Route", &self.routes),
            ("Aggregate", &self.aggregates),
            ("Policy", &self.policies),
            ("HTTPRoute", &gateway_api.http_routes),
            ("GRPCRoute", &gateway_api.grpc_routes),
            ("Gateway", &gateway_api.gateways),
            ("GatewayClass", &gateway_api.classes),
        ];
        for (kind, stores) in kinds {
            for o in stores.iter().flat_map(|s| s.state()) {
                let namespace = o.metadata.namespace.as_deref().unwrap_or("default");
                let name = o.metadata.name.as_deref().unwrap_or_default();
                if !wanted.relevant(kind, namespace, name, o.data.get("spec")) {
                    continue;
                }
                let Ok(value) = serde_json::to_value(&*o) else {
                    continue;
                };
                objects.extend(frontdesk_crds::manifests::read(kind, value).and_then(Result::ok));
            }
        }
        for o in gateway_api.namespaces.iter().flat_map(|s| s.state()) {
            let name = o.metadata.name.as_deref().unwrap_or_default();
            if wanted.relevant("Namespace", "", name, None) {
                objects.push(Object::Namespace(Arc::new((*o).clone())));
            }
        }
        objects
    }
}

/// Serves reviews on `listener` over TLS until the process ends.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<frontdesk_wire::tls::Reloading<rustls::ServerConfig>>,
    reviewer: Arc<Reviewer>,
    metrics: Arc<Metrics>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "webhook accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = TlsAcceptor::from(tls.for_connection());
        let (reviewer, metrics) = (reviewer.clone(), metrics.clone());
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let service = service_fn(move |req: Request<Incoming>| {
                let (reviewer, metrics) = (reviewer.clone(), metrics.clone());
                async move { Ok::<_, Infallible>(handle(req, &reviewer, &metrics).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    reviewer: &Reviewer,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    if req.method() != Method::POST || req.uri().path() != PATH {
        return text(
            StatusCode::NOT_FOUND,
            "POST an AdmissionReview to /validate\n",
        );
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "the review is too large\n"),
    };
    let started = Instant::now();
    let answer = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|review| Some((reviewer.answer(&review)?, review)));
    let Some((answer, review)) = answer else {
        return text(
            StatusCode::BAD_REQUEST,
            "not an admission.k8s.io/v1 AdmissionReview\n",
        );
    };
    let kind = review
        .pointer("/request/kind/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let allowed = answer["response"]["allowed"].as_bool().unwrap_or(true);
    metrics.record_review(kind, allowed, started.elapsed());
    if !allowed {
        let name = review
            .pointer("/request/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let namespace = review
            .pointer("/request/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        tracing::info!(%kind, %namespace, %name, reason = answer["response"]["status"]["message"].as_str().unwrap_or_default(), "refused at admission");
    }
    let mut response = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(&answer).unwrap_or_default(),
    )));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Keeps every webhook of the ValidatingWebhookConfiguration `name` trusting `ca_file` (the
/// trust bundle, which rotation changes), checking every [`CA_CHECK`]. A configuration not
/// installed (yet) is looked for again; so is one another writer changed.
pub async fn keep_ca_bundle(client: Client, name: String, ca_file: PathBuf) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client);
    loop {
        match std::fs::read(&ca_file) {
            Err(e) => {
                tracing::warn!(file = %ca_file.display(), error = %e, "cannot read the trust bundle for the webhook's caBundle")
            }
            Ok(bundle) => match set_ca_bundle(&api, &name, bundle).await {
                Ok(true) => {
                    tracing::info!(configuration = %name, "the admission webhook's caBundle was updated")
                }
                Ok(false) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    tracing::debug!(configuration = %name, "no such ValidatingWebhookConfiguration (yet)")
                }
                Err(e) => {
                    tracing::warn!(configuration = %name, error = %e, "cannot update the admission webhook's caBundle")
                }
            },
        }
        tokio::time::sleep(CA_CHECK).await;
    }
}

/// How often the webhook's caBundle is compared with the trust bundle.
pub const CA_CHECK: Duration = Duration::from_secs(60);

/// Sets the caBundle of every webhook of `name` to `bundle`; whether anything changed.
async fn set_ca_bundle(
    api: &Api<ValidatingWebhookConfiguration>,
    name: &str,
    bundle: Vec<u8>,
) -> Result<bool, kube::Error> {
    let mut configuration = api.get(name).await?;
    let bundle = k8s_openapi::ByteString(bundle);
    let mut changed = false;
    for webhook in configuration.webhooks.iter_mut().flatten() {
        if webhook.client_config.ca_bundle.as_ref() != Some(&bundle) {
            webhook.client_config.ca_bundle = Some(bundle.clone());
            changed = true;
        }
    }
    if changed {
        api.replace(name, &Default::default(), &configuration)
            .await?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests;
