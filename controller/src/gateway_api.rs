//! The Gateway API in a cluster: whether its CRDs are installed, and the watches on
//! GatewayClass, Gateway, ReferenceGrant, BackendTLSPolicy, HTTPRoute and GRPCRoute
//! (`gateway.networking.k8s.io`) when they are.
//!
//! Users install the Gateway API CRDs themselves, and many clusters have none. So the
//! controller asks API discovery at start whether `v1` serves `gatewayclasses` and `gateways`
//! (and `v1beta1` `referencegrants`, `v1` `backendtlspolicies`, `httproutes`, `grpcroutes`).
//! Without them it serves
//! frontdesk's own resources as before, logs one line saying so, and `/status` says so too
//! ([`GatewayApiState`]); it asks
//! again every [`RECHECK`], and once the CRDs appear it starts the watches and, as soon as
//! they listed, compiles with them: installing the CRDs later needs no restart. Once found,
//! they are not asked about again: removing them deletes every Gateway (the watches see the
//! deletions), then the watches retry with backoff until the CRDs come back or the controller
//! restarts; and a ReferenceGrant, BackendTLSPolicy, HTTPRoute or GRPCRoute CRD installed
//! after the Gateway CRDs were found is watched from the next restart. A kind of these the
//! controller may not list (RBAC from an older chart) is left out, with a warning, rather than
//! stopping the others.
//!
//! The objects are watched untyped and read one by one, as frontdesk's own kinds are: one
//! Gateway this version cannot read must not stall the watch of all the others. A Gateway that
//! cannot be read is logged and left out (its class is unknown, so it gets no status).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use frontdesk_crds::gateway_api::{
    BackendTLSPolicy, GROUP, GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant,
};
use frontdesk_crds::manifests::Object;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::watch::{Watching, watch_kind};

/// How often the controller asks again whether the Gateway API CRDs are installed, while they
/// are not.
pub const RECHECK: Duration = Duration::from_secs(60);

/// Which Gateway API kinds the API server serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    /// `v1` `gatewayclasses` and `gateways`: without both, frontdesk watches none.
    pub gateways: bool,
    /// `v1beta1` `referencegrants`: without them, Secrets of other namespaces are refused.
    pub reference_grants: bool,
    /// `v1` `backendtlspolicies` (standard channel since v1.4).
    pub backend_tls_policies: bool,
    /// `v1` `httproutes` and `grpcroutes`.
    pub http_routes: bool,
    pub grpc_routes: bool,
}

/// Between failed discoveries or lists: 1 s, doubling to 30 s.
fn discovery_backoff() -> crate::backoff::Backoff {
    crate::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

/// Asks API discovery which Gateway API kinds are served. A group or version the API server
/// does not know answers 404: not installed. Any other error is returned.
pub async fn discover(client: &Client) -> Result<Presence, kube::Error> {
    let served = |version: &'static str| async move {
        match client
            .list_api_group_resources(&format!("{GROUP}/{version}"))
            .await
        {
            Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    };
    let v1: Vec<String> = served("v1").await?;
    let has = |names: &[String], n: &str| names.iter().any(|r| r == n);
    let gateways = has(&v1, "gatewayclasses") && has(&v1, "gateways");
    let reference_grants = gateways && has(&served("v1beta1").await?, "referencegrants");
    Ok(Presence {
        gateways,
        reference_grants,
        backend_tls_policies: gateways && has(&v1, "backendtlspolicies"),
        http_routes: gateways && has(&v1, "httproutes"),
        grpc_routes: gateways && has(&v1, "grpcroutes"),
    })
}

/// Whether the controller may list the kinds discovery found, where it watches them: a 403
/// (its RBAC predates the Gateway API rules, or was trimmed) means it may not, and watching
/// would block the first compile on lists that never succeed.
pub async fn may_list(
    client: &Client,
    namespaces: &[String],
    presence: Presence,
) -> Result<bool, kube::Error> {
    let params = kube::api::ListParams::default().limit(1);
    let mut apis: Vec<Api<DynamicObject>> = vec![Api::all_with(
        client.clone(),
        &ApiResource::erase::<GatewayClass>(&()),
    )];
    let mut namespaced = vec![ApiResource::erase::<Gateway>(&())];
    if presence.reference_grants {
        namespaced.push(ApiResource::erase::<ReferenceGrant>(&()));
    }
    for ar in &namespaced {
        if namespaces.is_empty() {
            apis.push(Api::all_with(client.clone(), ar));
        }
        for ns in namespaces {
            apis.push(Api::namespaced_with(client.clone(), ns, ar));
        }
    }
    for api in apis {
        match api.list(&params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 403 => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// `presence` without the optional kinds (BackendTLSPolicies, HTTPRoutes, GRPCRoutes) the
/// controller may not list: RBAC from before frontdesk read them must not stop the watches of
/// the other kinds. Logged once per kind.
async fn without_unlistable_kinds(
    client: &Client,
    namespaces: &[String],
    mut presence: Presence,
) -> Presence {
    let optional = [
        (
            presence.backend_tls_policies,
            ApiResource::erase::<BackendTLSPolicy>(&()),
        ),
        (presence.http_routes, ApiResource::erase::<HTTPRoute>(&())),
        (presence.grpc_routes, ApiResource::erase::<GRPCRoute>(&())),
    ];
    for (present, ar) in optional {
        if present && !may_list_kind(client, namespaces, &ar).await {
            match ar.kind.as_str() {
                "BackendTLSPolicy" => presence.backend_tls_policies = false,
                "HTTPRoute" => presence.http_routes = false,
                _ => presence.grpc_routes = false,
            }
        }
    }
    presence
}

/// Whether `ar` may be listed in `namespaces` (empty: all). Only a refusal says no: any other
/// failure is asked again, as discovery is, so a hiccup never leaves, say, the Services a
/// BackendTLSPolicy targets in plaintext.
async fn may_list_kind(client: &Client, namespaces: &[String], ar: &ApiResource) -> bool {
    let params = kube::api::ListParams::default().limit(1);
    let apis: Vec<Api<DynamicObject>> = if namespaces.is_empty() {
        vec![Api::all_with(client.clone(), ar)]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced_with(client.clone(), ns, ar))
            .collect()
    };
    let kind = &ar.kind;
    let mut backoff = discovery_backoff();
    for api in apis {
        loop {
            match api.list(&params).await {
                Ok(_) => break,
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    tracing::warn!(%kind, error = %status.message, "this kind may not be listed: it is not read until the controller restarts with list and watch on it (docs/install.md)");
                    return false;
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(%kind, error = %e, retry_in = ?wait, "listing failed; asking again");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    true
}

/// Whether the controller may list Namespaces (cluster-wide), whose labels listeners'
/// `allowedRoutes` selectors read. When it may not, no namespace is selected, and a log line
/// says why; the Gateways are watched all the same.
pub async fn may_list_namespaces(client: &Client) -> bool {
    let params = kube::api::ListParams::default().limit(1);
    match Api::<Namespace>::all(client.clone())
        .list_metadata(&params)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "Namespaces cannot be listed: listeners' allowedRoutes selectors select no namespace (grant list and watch on namespaces)");
            false
        }
    }
}

/// What `/status` says about the Gateway API: set by the cluster source, read by the admin
/// listener.
#[derive(Debug, Default)]
pub struct GatewayApiState(AtomicU8);

// 0, the default: not asked.
const ABSENT: u8 = 1;
const WATCHED: u8 = 2;
const UNREADABLE: u8 = 3;
const FORBIDDEN: u8 = 4;

impl GatewayApiState {
    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Relaxed);
    }

    /// The `gatewayApi` entry of `/status`.
    pub fn describe(&self) -> serde_json::Value {
        let recheck = RECHECK.as_secs();
        let (installed, message) = match self.0.load(Ordering::Relaxed) {
            ABSENT => (
                serde_json::json!(false),
                format!(
                    "Gateway API CRDs are absent (frontdesk resources only); checked again every {recheck}s"
                ),
            ),
            WATCHED => (
                serde_json::json!(true),
                "watching GatewayClasses, Gateways, ReferenceGrants, BackendTLSPolicies, HTTPRoutes and GRPCRoutes (those installed)".to_string(),
            ),
            FORBIDDEN => (
                serde_json::json!(true),
                format!(
                    "the Gateway API CRDs are installed but this controller may not list them: grant list and watch (docs/install.md); checked again every {recheck}s"
                ),
            ),
            UNREADABLE => (
                serde_json::Value::Null,
                format!(
                    "API discovery failed, so whether the Gateway API CRDs are installed is unknown; asked again every {recheck}s"
                ),
            ),
            _ => (
                serde_json::Value::Null,
                "not asked: the controller does not read the Kubernetes API (--manifests)"
                    .to_string(),
            ),
        };
        serde_json::json!({"installed": installed, "message": message})
    }
}

/// The reflectors' stores of the Gateway API kinds.
#[derive(Clone, Default)]
pub(crate) struct GatewayApiStores {
    pub classes: Vec<Store<DynamicObject>>,
    pub gateways: Vec<Store<DynamicObject>>,
    pub grants: Vec<Store<DynamicObject>>,
    pub backend_tls_policies: Vec<Store<DynamicObject>>,
    pub http_routes: Vec<Store<DynamicObject>>,
    pub grpc_routes: Vec<Store<DynamicObject>>,
    /// Namespaces, for their labels (listeners' `allowedRoutes` selectors); none when the
    /// controller may not list them.
    pub namespaces: Vec<Store<Namespace>>,
}

impl GatewayApiStores {
    /// Starts the watches: GatewayClasses cluster-wide (they are cluster-scoped), Gateways and
    /// ReferenceGrants in `namespaces` (empty: all).
    pub(crate) fn start(
        client: &Client,
        namespaces: &[String],
        watching: &Watching,
        presence: Presence,
        namespace_labels: bool,
    ) -> Self {
        let apis = |ar: &ApiResource| -> Vec<Api<DynamicObject>> {
            if namespaces.is_empty() {
                vec![Api::all_with(client.clone(), ar)]
            } else {
                namespaces
                    .iter()
                    .map(|n| Api::namespaced_with(client.clone(), n, ar))
                    .collect()
            }
        };
        let watch = |apis, ar: ApiResource| watch_kind(apis, watching, ar, Default::default());
        let class = ApiResource::erase::<GatewayClass>(&());
        let gateway = ApiResource::erase::<Gateway>(&());
        let grant = ApiResource::erase::<ReferenceGrant>(&());
        let tls_policy = ApiResource::erase::<BackendTLSPolicy>(&());
        let http_route = ApiResource::erase::<HTTPRoute>(&());
        let grpc_route = ApiResource::erase::<GRPCRoute>(&());
        GatewayApiStores {
            classes: watch(vec![Api::all_with(client.clone(), &class)], class),
            gateways: watch(apis(&gateway), gateway),
            grants: if presence.reference_grants {
                watch(apis(&grant), grant)
            } else {
                Vec::new()
            },
            backend_tls_policies: if presence.backend_tls_policies {
                watch(apis(&tls_policy), tls_policy)
            } else {
                Vec::new()
            },
            http_routes: if presence.http_routes {
                watch(apis(&http_route), http_route)
            } else {
                Vec::new()
            },
            grpc_routes: if presence.grpc_routes {
                watch(apis(&grpc_route), grpc_route)
            } else {
                Vec::new()
            },
            namespaces: if namespace_labels {
                watch_kind(
                    vec![Api::<Namespace>::all(client.clone())],
                    watching,
                    (),
                    Default::default(),
                )
            } else {
                Vec::new()
            },
        }
    }

    /// The stores of the kinds whose status frontdesk writes, with their kind.
    pub(crate) fn with_status(&self) -> [(&'static str, &[Store<DynamicObject>]); 5] {
        [
            ("GatewayClass", &self.classes),
            ("Gateway", &self.gateways),
            ("BackendTLSPolicy", &self.backend_tls_policies),
            ("HTTPRoute", &self.http_routes),
            ("GRPCRoute", &self.grpc_routes),
        ]
    }

    pub(crate) async fn wait_until_ready(&self) {
        for s in self
            .classes
            .iter()
            .chain(&self.gateways)
            .chain(&self.grants)
            .chain(&self.backend_tls_policies)
            .chain(&self.http_routes)
            .chain(&self.grpc_routes)
        {
            let _ = s.wait_until_ready().await;
        }
        for s in &self.namespaces {
            let _ = s.wait_until_ready().await;
        }
    }

    /// Every object the stores hold that can be read; the others are logged and left out.
    pub(crate) fn read(&self) -> Vec<Object> {
        let classes = readable::<GatewayClass>("GatewayClass", &self.classes);
        let gateways = readable::<Gateway>("Gateway", &self.gateways);
        let grants = readable::<ReferenceGrant>("ReferenceGrant", &self.grants);
        let classes = classes.map(|o| Object::GatewayClass(Arc::new(o)));
        let gateways = gateways.map(|o| Object::Gateway(Arc::new(o)));
        let grants = grants.map(|o| Object::ReferenceGrant(Arc::new(o)));
        let tls_policies =
            readable::<BackendTLSPolicy>("BackendTLSPolicy", &self.backend_tls_policies)
                .map(|o| Object::BackendTlsPolicy(Arc::new(o)));
        let http_routes = readable::<HTTPRoute>("HTTPRoute", &self.http_routes)
            .map(|o| Object::HttpRoute(Arc::new(o)));
        let grpc_routes = readable::<GRPCRoute>("GRPCRoute", &self.grpc_routes)
            .map(|o| Object::GrpcRoute(Arc::new(o)));
        let namespaces = crate::watch::all(&self.namespaces)
            .into_iter()
            .map(|o| Object::Namespace(Arc::new(o)));
        classes
            .chain(gateways)
            .chain(grants)
            .chain(tls_policies)
            .chain(http_routes)
            .chain(grpc_routes)
            .chain(namespaces)
            .collect()
    }
}

fn readable<T: DeserializeOwned>(
    kind: &'static str,
    stores: &[Store<DynamicObject>],
) -> impl Iterator<Item = T> {
    stores.iter().flat_map(|s| s.state()).filter_map(move |o| {
        let value = serde_json::to_value(&*o).ok()?;
        match frontdesk_crds::manifests::typed::<T>(value) {
            Ok(typed) => Some(typed),
            Err((field, reason)) => {
                let namespace = o.metadata.namespace.as_deref().unwrap_or_default();
                let name = o.metadata.name.as_deref().unwrap_or_default();
                tracing::warn!(%kind, %namespace, %name, %field, %reason, "a Gateway API object cannot be read; it is left out");
                None
            }
        }
    })
}

/// Finds out whether the Gateway API CRDs are installed and, when they are, starts their
/// watches. The receiver holds the stores once they exist: at once when the CRDs are there at
/// start (the first compile then waits for their lists like every other), or, when they are
/// installed later, after a re-check found them and their watches listed (the compile loop is
/// woken then).
pub(crate) async fn follow(
    client: Client,
    namespaces: Vec<String>,
    watching: Watching,
    state: Arc<GatewayApiState>,
) -> watch::Receiver<Option<GatewayApiStores>> {
    let (tx, rx) = watch::channel(None);
    // Only "not served" means absent: any other failure is asked again (as the watches retry
    // their lists), so a replica starting during an API server hiccup does not publish
    // snapshots without their Gateways' listeners.
    let mut backoff = discovery_backoff();
    let found = loop {
        let asked = match discover(&client).await {
            Ok(p) if p.gateways => may_list(&client, &namespaces, p)
                .await
                .map(|allowed| (p, allowed)),
            other => other.map(|p| (p, true)),
        };
        match asked {
            Ok(found) => break found,
            Err(e) => {
                state.set(UNREADABLE);
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in = ?wait, "API discovery failed; asking again before the first compile");
                tokio::time::sleep(wait).await;
            }
        }
    };
    match found {
        (presence, false) => {
            state.set(FORBIDDEN);
            tracing::warn!(
                reference_grants = presence.reference_grants,
                backend_tls_policies = presence.backend_tls_policies,
                recheck = ?RECHECK,
                "the Gateway API CRDs are installed but this controller may not list them (RBAC); Gateways are not watched"
            );
        }
        (presence, true) if presence.gateways => {
            let presence = without_unlistable_kinds(&client, &namespaces, presence).await;
            tracing::info!(
                reference_grants = presence.reference_grants,
                backend_tls_policies = presence.backend_tls_policies,
                "Gateway API CRDs found; watching GatewayClasses, Gateways, and ReferenceGrants, BackendTLSPolicies, HTTPRoutes and GRPCRoutes where installed"
            );
            state.set(WATCHED);
            let labels = may_list_namespaces(&client).await;
            let _ = tx.send(Some(GatewayApiStores::start(
                &client,
                &namespaces,
                &watching,
                presence,
                labels,
            )));
            return rx;
        }
        _ => {
            state.set(ABSENT);
            tracing::info!(
                recheck = ?RECHECK,
                "Gateway API CRDs are absent (frontdesk resources only); install them to use Gateways"
            );
        }
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RECHECK).await;
            let presence = match discover(&client).await {
                Ok(p) => p,
                Err(e) => {
                    state.set(UNREADABLE);
                    tracing::debug!(error = %e, "API discovery failed; asking again later");
                    continue;
                }
            };
            if !presence.gateways {
                state.set(ABSENT);
                continue;
            }
            match may_list(&client, &namespaces, presence).await {
                Ok(true) => {}
                Ok(false) => {
                    state.set(FORBIDDEN);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "listing Gateway API objects failed; asking again later");
                    continue;
                }
            }
            let presence = without_unlistable_kinds(&client, &namespaces, presence).await;
            tracing::info!(
                reference_grants = presence.reference_grants,
                backend_tls_policies = presence.backend_tls_policies,
                "Gateway API CRDs installed; watching GatewayClasses, Gateways, and ReferenceGrants, BackendTLSPolicies, HTTPRoutes and GRPCRoutes where installed"
            );
            let labels = may_list_namespaces(&client).await;
            let stores = GatewayApiStores::start(&client, &namespaces, &watching, presence, labels);
            stores.wait_until_ready().await;
            state.set(WATCHED);
            let _ = tx.send(Some(stores));
            watching.changed.notify_one();
            return;
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use http::{Request, Response, StatusCode};
    use kube::client::Body;

    use super::*;

    /// A fake API server: discovery answers as if the Gateway API CRDs were installed while
    /// `installed` is true (404 otherwise), lists are empty, watches stay open; every request
    /// is recorded as (path, query).
    /// The requests a fake API server received: (path, query).
    type Requests = Arc<Mutex<Vec<(String, String)>>>;

    fn fake_api(installed: Arc<AtomicBool>) -> (Client, Requests) {
        fake_api_refusing(installed, Arc::new(AtomicBool::new(false)))
    }

    /// [`fake_api`], whose lists answer 403 while `forbidden` is true.
    fn fake_api_refusing(
        installed: Arc<AtomicBool>,
        forbidden: Arc<AtomicBool>,
    ) -> (Client, Requests) {
        fake_api_with(installed, forbidden, false)
    }

    /// [`fake_api_refusing`] that also refuses lists of Namespaces when `no_namespaces`.
    fn fake_api_with(
        installed: Arc<AtomicBool>,
        forbidden: Arc<AtomicBool>,
        no_namespaces: bool,
    ) -> (Client, Requests) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            let mut open_watches = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                record.lock().unwrap().push((path.clone(), query.clone()));
                let resources = |version: &str, names: &[&str]| {
                    serde_json::json!({
                        "kind": "APIResourceList", "groupVersion": format!("{GROUP}/{version}"),
                        "resources": names.iter().map(|n| serde_json::json!({
                            "name": n, "namespaced": *n != "gatewayclasses", "kind": "",
                            "singularName": "", "verbs": ["get", "list", "watch"],
                        })).collect::<Vec<_>>(),
                    })
                };
                let body = match path.as_str() {
                    _ if query.contains("watch=true") => {
                        open_watches.push(send);
                        continue;
                    }
                    p if (forbidden.load(Ordering::Relaxed)
                        && !(p.ends_with("/v1") || p.ends_with("/v1beta1")))
                        || (no_namespaces && p == "/api/v1/namespaces") =>
                    {
                        let status = serde_json::json!({"kind": "Status", "apiVersion": "v1",
                            "status": "Failure", "reason": "Forbidden", "code": 403,
                            "message": "gateways.gateway.networking.k8s.io is forbidden"});
                        let mut r = Response::new(Body::from(serde_json::to_vec(&status).unwrap()));
                        *r.status_mut() = StatusCode::FORBIDDEN;
                        send.send_response(r);
                        continue;
                    }
                    p if p.ends_with("/v1") || p.ends_with("/v1beta1") => {
                        if !installed.load(Ordering::Relaxed) {
                            let mut r = Response::new(Body::from(b"404 page not found".to_vec()));
                            *r.status_mut() = StatusCode::NOT_FOUND;
                            send.send_response(r);
                            continue;
                        }
                        if p.ends_with("/v1") {
                            resources(
                                "v1",
                                &[
                                    "gatewayclasses",
                                    "gateways",
                                    "gateways/status",
                                    "backendtlspolicies",
                                    "httproutes",
                                    "grpcroutes",
                                ],
                            )
                        } else {
                            resources("v1beta1", &["referencegrants"])
                        }
                    }
                    _ => serde_json::json!({
                        "apiVersion": "v1", "kind": "List",
                        "metadata": {"resourceVersion": "1"}, "items": [],
                    }),
                };
                send.send_response(Response::new(Body::from(
                    serde_json::to_vec(&body).unwrap(),
                )));
            }
        });
        (Client::new(service, "default"), seen)
    }

    fn watches(seen: &Mutex<Vec<(String, String)>>) -> Vec<String> {
        let mut paths: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, q)| q.contains("watch=true"))
            .map(|(p, _)| p.clone())
            .collect();
        paths.sort();
        paths
    }

    async fn until_watching(seen: &Mutex<Vec<(String, String)>>, count: usize) -> Vec<String> {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let paths = watches(seen);
                if paths.len() >= count {
                    return paths;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the watch requests")
    }

    #[tokio::test]
    async fn with_the_crds_every_gateway_api_kind_frontdesk_reads_is_watched() {
        let (client, seen) = fake_api(Arc::new(AtomicBool::new(true)));
        let state = Arc::new(GatewayApiState::default());
        let rx = follow(
            client,
            vec!["shop".into()],
            Default::default(),
            state.clone(),
        )
        .await;
        let stores = rx.borrow().clone().expect("the Gateway API stores");
        tokio::time::timeout(Duration::from_secs(5), stores.wait_until_ready())
            .await
            .expect("the initial lists");
        assert_eq!(
            until_watching(&seen, 7).await,
            [
                "/api/v1/namespaces",
                "/apis/gateway.networking.k8s.io/v1/gatewayclasses",
                "/apis/gateway.networking.k8s.io/v1/namespaces/shop/backendtlspolicies",
                "/apis/gateway.networking.k8s.io/v1/namespaces/shop/gateways",
                "/apis/gateway.networking.k8s.io/v1/namespaces/shop/grpcroutes",
                "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes",
                "/apis/gateway.networking.k8s.io/v1beta1/namespaces/shop/referencegrants",
            ]
        );
        assert_eq!(state.describe()["installed"], true);
    }

    /// CRDs installed but lists refused (RBAC from before the Gateway API rules): nothing is
    /// watched, so the first compile is not held on lists that never succeed; `/status` says
    /// why; once RBAC allows it, a re-check starts the watches.
    #[tokio::test(start_paused = true)]
    async fn lists_the_controller_may_not_make_are_not_watched_until_allowed() {
        let forbidden = Arc::new(AtomicBool::new(true));
        let (client, seen) = fake_api_refusing(Arc::new(AtomicBool::new(true)), forbidden.clone());
        let state = Arc::new(GatewayApiState::default());
        let mut rx = follow(client, vec![], Default::default(), state.clone()).await;
        assert!(rx.borrow().is_none(), "watching lists that are refused");
        assert!(watches(&seen).is_empty());
        let status = state.describe();
        assert_eq!(status["installed"], true);
        assert!(
            status["message"].as_str().unwrap().contains("may not list"),
            "{status}"
        );
        forbidden.store(false, Ordering::Relaxed);
        tokio::time::timeout(RECHECK * 2, rx.changed())
            .await
            .expect("the watches start once allowed")
            .unwrap();
        assert_eq!(state.describe()["installed"], true);
        assert_eq!(until_watching(&seen, 7).await.len(), 7);
    }

    /// Namespaces that may not be listed (a controller limited to some namespaces): the
    /// Gateway API kinds are watched all the same, without namespace labels.
    #[tokio::test]
    async fn gateways_are_watched_without_namespace_labels_when_namespaces_may_not_be_listed() {
        let (client, seen) = fake_api_with(
            Arc::new(AtomicBool::new(true)),
            Arc::new(AtomicBool::new(false)),
            true,
        );
        let rx = follow(
            client,
            vec!["shop".into()],
            Default::default(),
            Default::default(),
        )
        .await;
        let stores = rx.borrow().clone().expect("the Gateway API stores");
        assert!(stores.namespaces.is_empty());
        let watched = until_watching(&seen, 3).await;
        assert!(
            !watched.iter().any(|p| p == "/api/v1/namespaces"),
            "{watched:?}"
        );
    }

    /// Log lines written while a test runs on this thread.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_the_crds_nothing_is_watched_one_line_says_so_and_a_later_install_is_picked_up()
    {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let installed = Arc::new(AtomicBool::new(false));
        let (client, seen) = fake_api(installed.clone());
        let push = crate::push::PushServer::new(Default::default());
        let changed = Arc::new(tokio::sync::Notify::new());
        let mut rx = follow(
            client,
            vec![],
            Watching::new(changed.clone(), push.watch_health.clone()),
            push.gateway_api.clone(),
        )
        .await;

        assert!(rx.borrow().is_none());
        let asked: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(
            asked,
            ["/apis/gateway.networking.k8s.io/v1"],
            "discovery only"
        );
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("Gateway API")).collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0].contains("Gateway API CRDs are absent (frontdesk resources only)"),
            "{text}"
        );
        let response = crate::admin::answer(&push, "/status");
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["gatewayApi"]["installed"], false);
        assert_eq!(
            status["gatewayApi"]["message"],
            "Gateway API CRDs are absent (frontdesk resources only); checked again every 60s"
        );

        // Still absent a minute later: asked again, nothing watched, nothing more logged.
        tokio::time::sleep(RECHECK + Duration::from_secs(1)).await;
        assert!(rx.borrow().is_none());
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert!(watches(&seen).is_empty());

        // Installed: the next check starts the watches and hands their stores over, listed.
        installed.store(true, Ordering::Relaxed);
        tokio::time::timeout(RECHECK * 2, rx.changed())
            .await
            .expect("the stores, after the next check")
            .unwrap();
        let stores = rx.borrow().clone().unwrap();
        assert!(stores.gateways.iter().all(|s| s.state().is_empty()));
        assert_eq!(until_watching(&seen, 7).await.len(), 7);
        assert_eq!(push.gateway_api.describe()["installed"], true);
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("Gateway API CRDs installed; watching"),
            "{text}"
        );
        // The compile loop is woken to compile with them.
        tokio::time::timeout(Duration::from_millis(1), changed.notified())
            .await
            .expect("a wake-up for the compile loop");
    }
}
