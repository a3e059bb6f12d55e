//! The leader's status writer: Routes, Policies and Aggregates ([`crate::status`]),
//! GatewayClasses and Gateways ([`crate::gateway_status`]), BackendTLSPolicies
//! ([`crate::policy_status`]) and HTTPRoutes and GRPCRoutes
//! ([`crate::route_parent_status`]) by server-side apply, with the
//! proxies' progress shared between replicas through ConfigMaps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use frontdesk_crds::route::RouteStatus;
use frontdesk_crds::{ObjectStatus, Output};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use tokio::sync::{Notify, watch};

use super::{FIELD_MANAGER, api_resource};
use crate::gateway_api::GatewayApiStores;
use crate::gateway_status::{GatewayStatusSink, GatewayStatusWriter, Wanted};
use crate::progress::{ReplicaProgress, combine, object_key};
use crate::push::PushServer;
use crate::status::{Observed, Reconciler, StatusSink};
use crate::watch::all;

/// What the status loop reads of the Gateway API kinds: their stores, once their CRDs are
/// found, and what provisioning found (empty when it is off).
pub(super) struct GatewayApiInputs {
    pub(super) stores: watch::Receiver<Option<GatewayApiStores>>,
    pub(super) provisioned: watch::Receiver<crate::provision::Report>,
}

pub(super) async fn status_loop(
    sink: KubeSink,
    objects: Vec<(&'static str, Vec<Store<DynamicObject>>)>,
    mut gateway_api: GatewayApiInputs,
    shared: Vec<Store<ConfigMap>>,
    push: Arc<PushServer>,
    mut leader: watch::Receiver<bool>,
    published: Arc<Notify>,
) {
    let mut reconciler = Reconciler::default();
    let mut gateway_writer = GatewayStatusWriter::default();
    // What the last pass saw: a pass is needed only when something moved (a publish, a proxy,
    // a watch event: the objects' own statuses included), or after a while (other replicas'
    // progress goes stale without an event).
    let mut last: Option<(Stamp, tokio::time::Instant)> = None;
    loop {
        // ACKs arrive without a publish, so look again every second too.
        tokio::select! {
            _ = published.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = leader.changed() => {
                // Another replica may have written in between: forget what we wrote.
                reconciler = Reconciler::default();
                gateway_writer = GatewayStatusWriter::default();
                last = None;
            }
        }
        if !*leader.borrow() {
            continue;
        }
        // Taken before what it stamps, so that a change while reading is seen by the next pass.
        let stamp = Stamp {
            publishes: push.store.publishes(),
            acks: push.acks.changes(),
            events: push.watch_health.events(),
        };
        let Some(output) = push.store.output() else {
            continue;
        };
        let now_instant = tokio::time::Instant::now();
        // What provisioning found (addresses, refused parameters) comes on its own timer.
        let provisioned = gateway_api.provisioned.has_changed().unwrap_or(false);
        if !provisioned
            && last.as_ref().is_some_and(|(seen, at)| {
                *seen == stamp && now_instant.duration_since(*at) < FULL_PASS_EVERY
            })
        {
            continue;
        }
        last = Some((stamp, now_instant));
        // Per object: its uid and current status, read leniently (a status we cannot parse is
        // simply rewritten).
        let read_current = |kind: &'static str, stores: &[Store<DynamicObject>]| {
            all(stores).into_iter().filter_map(move |o| {
                let status = (o.data.get("status"))
                    .and_then(|s| serde_json::from_value::<RouteStatus>(s.clone()).ok());
                let key = (
                    kind,
                    o.metadata.namespace.clone()?,
                    o.metadata.name.clone()?,
                );
                Some((key, (o.metadata.uid.clone(), status)))
            })
        };
        type Current = (Option<String>, Option<RouteStatus>);
        let current: HashMap<(&str, String, String), Current> = objects
            .iter()
            .flat_map(|(kind, stores)| read_current(kind, stores))
            .collect();
        let now_unix = k8s_openapi::jiff::Timestamp::now().as_second();
        let summaries = shared_progress(&shared);
        let fresh_after = now_unix - PROGRESS_STALE.as_secs() as i64;
        let objects: Vec<Observed<'_>> = output
            .statuses
            .iter()
            .filter(|s| matches!(s.kind.as_str(), "Route" | "Policy" | "Aggregate"))
            .map(|s| {
                let here = current.get(&(s.kind.as_str(), s.namespace.clone(), s.name.clone()));
                Observed {
                    computed: s,
                    progress: combine(
                        &summaries,
                        &object_key(&s.kind, &s.namespace, &s.name),
                        // A rejected generation: how far the one served in its place got.
                        s.served_generation.unwrap_or(s.generation),
                        fresh_after,
                    ),
                    current: here.and_then(|(_, st)| st.as_ref()),
                    uid: here.and_then(|(uid, _)| uid.as_deref()),
                }
            })
            .collect();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut writes = reconciler.reconcile(&sink, &objects, &now).await;
        let stores = gateway_api.stores.borrow().clone();
        if let Some(stores) = stores {
            let progress = |s: &ObjectStatus| {
                let key = object_key(&s.kind, &s.namespace, &s.name);
                // A rejected route's generation: how far the one served in its place got.
                let generation = s.served_generation.unwrap_or(s.generation);
                combine(&summaries, &key, generation, fresh_after)
            };
            let report = gateway_api.provisioned.borrow_and_update().clone();
            let wanted = gateway_api_statuses(&output, &stores, progress, &report, &now);
            writes += gateway_writer.reconcile(&sink, &wanted).await;
        }
        if writes > 0 {
            tracing::debug!(writes, "statuses written");
        }
    }
}

/// What a status pass depends on that can change without the clock: the compile output, the
/// proxies' ACKs, and the watches' events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    publishes: u64,
    acks: u64,
    events: u64,
}

/// A pass runs at least this often even when nothing moved: the replicas' progress summaries
/// go stale on the clock.
const FULL_PASS_EVERY: Duration = Duration::from_secs(15);

/// The statuses of frontdesk's GatewayClasses and Gateways, with those they have now.
pub(super) fn gateway_api_statuses(
    output: &Output,
    stores: &GatewayApiStores,
    progress: impl Fn(&ObjectStatus) -> Vec<crate::status::GatewayProgress>,
    provisioned: &crate::provision::Report,
    now: &Time,
) -> Vec<Wanted> {
    use frontdesk_crds::gateway_api::{GatewayClassStatus, GatewayStatus};
    // The statuses they have now, by (namespace, name); a GatewayClass's namespace is "".
    // The status each object has now, with the version it was read at (one read: a status
    // shared with other controllers is applied to exactly the version it came from).
    let statuses = |stores: &[Store<DynamicObject>]| -> HashMap<(String, String), Read> {
        stores
            .iter()
            .flat_map(|s| s.state())
            .filter_map(|o| {
                let namespace = o.metadata.namespace.clone().unwrap_or_default();
                let key = (namespace, o.metadata.name.clone()?);
                let read = Read {
                    status: o.data.get("status").cloned(),
                    version: o.metadata.resource_version.clone(),
                };
                Some((key, read))
            })
            .collect()
    };
    let (classes, gateways) = (statuses(&stores.classes), statuses(&stores.gateways));
    let tls_policies = statuses(&stores.backend_tls_policies);
    let (http_routes, grpc_routes) = (statuses(&stores.http_routes), statuses(&stores.grpc_routes));
    let current = |map: &HashMap<(String, String), Read>, namespace: &str, name: &str| {
        map.get(&(namespace.to_string(), name.to_string()))
            .and_then(|r| r.status.clone())
    };
    let version = |map: &HashMap<(String, String), Read>, namespace: &str, name: &str| {
        map.get(&(namespace.to_string(), name.to_string()))
            .and_then(|r| r.version.clone())
    };
    // The output may be older than the stores: only objects that are still there, at the
    // generation compiled, and still of frontdesk's class get a status; never another
    // controller's Gateway that just moved class.
    let ours_now = |s: &ObjectStatus| -> bool {
        let find = |stores: &[Store<DynamicObject>], namespace: Option<&str>, name: &str| {
            stores.iter().flat_map(|st| st.state()).find(|o| {
                o.metadata.name.as_deref() == Some(name)
                    && o.metadata.namespace.as_deref() == namespace
            })
        };
        let controller_of = |class: &str| {
            find(&stores.classes, None, class).and_then(|c| {
                c.data
                    .pointer("/spec/controllerName")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
        };
        let ours = frontdesk_crds::gateway_api::CONTROLLER_NAME;
        match s.kind.as_str() {
            "GatewayClass" => find(&stores.classes, None, &s.name).is_some_and(|c| {
                c.metadata.generation.unwrap_or(0) == s.generation
                    && controller_of(&s.name).as_deref() == Some(ours)
            }),
            "Gateway" => find(&stores.gateways, Some(&s.namespace), &s.name).is_some_and(|g| {
                g.metadata.generation.unwrap_or(0) == s.generation
                    && g.data
                        .pointer("/spec/gatewayClassName")
                        .and_then(|v| v.as_str())
                        .and_then(controller_of)
                        .as_deref()
                        == Some(ours)
            }),
            // Another controller's entries are kept ([`crate::policy_status`]).
            "BackendTLSPolicy" => find(&stores.backend_tls_policies, Some(&s.namespace), &s.name)
                .is_some_and(|p| p.metadata.generation.unwrap_or(0) == s.generation),
            "HTTPRoute" => find(&stores.http_routes, Some(&s.namespace), &s.name)
                .is_some_and(|r| r.metadata.generation.unwrap_or(0) == s.generation),
            "GRPCRoute" => find(&stores.grpc_routes, Some(&s.namespace), &s.name)
                .is_some_and(|r| r.metadata.generation.unwrap_or(0) == s.generation),
            _ => false,
        }
    };
    let mut wanted = Vec::new();
    for s in &output.statuses {
        if matches!(
            s.kind.as_str(),
            "GatewayClass" | "Gateway" | "BackendTLSPolicy" | "HTTPRoute" | "GRPCRoute"
        ) && !ours_now(s)
        {
            continue;
        }
        // Parameters that cannot be used make the class or Gateway not accepted.
        let key = (s.kind.clone(), s.namespace.clone(), s.name.clone());
        let refused = provisioned
            .invalid
            .get(&key)
            .map(|message| crate::gateway_status::refuse_parameters(s, message));
        let s = refused.as_ref().unwrap_or(s);
        let (status, current) = match s.kind.as_str() {
            "GatewayClass" => {
                let current = current(&classes, "", &s.name);
                let typed = current
                    .as_ref()
                    .and_then(|c| serde_json::from_value::<GatewayClassStatus>(c.clone()).ok());
                let status = crate::gateway_status::class_status(s, typed.as_ref(), now);
                (serde_json::to_value(status), current)
            }
            "Gateway" => {
                let current = current(&gateways, &s.namespace, &s.name);
                let typed = current
                    .as_ref()
                    .and_then(|c| serde_json::from_value::<GatewayStatus>(c.clone()).ok());
                let mut status =
                    crate::gateway_status::gateway_status(s, &progress(s), typed.as_ref(), now);
                if let Some(addresses) = provisioned
                    .addresses
                    .get(&(s.namespace.clone(), s.name.clone()))
                {
                    status.addresses = addresses.clone();
                }
                (serde_json::to_value(status), current)
            }
            "BackendTLSPolicy" => {
                let current = current(&tls_policies, &s.namespace, &s.name);
                let typed = current.as_ref().and_then(|c| {
                    serde_json::from_value::<
                        frontdesk_crds::gateway_api::backend_tls_policy::PolicyStatus,
                    >(c.clone())
                    .ok()
                });
                let Some(status) = crate::policy_status::policy_status(s, typed.as_ref(), now)
                else {
                    continue;
                };
                (serde_json::to_value(status), current)
            }
            "HTTPRoute" | "GRPCRoute" => {
                let routes = if s.kind == "HTTPRoute" {
                    &http_routes
                } else {
                    &grpc_routes
                };
                let current = current(routes, &s.namespace, &s.name);
                let Some(status) = crate::route_parent_status::route_status(
                    s,
                    &progress(s),
                    current.as_ref(),
                    now,
                ) else {
                    continue;
                };
                (Ok(status), current)
            }
            _ => continue,
        };
        let Ok(status) = status else { continue };
        wanted.push(Wanted {
            kind: s.kind.clone(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            status,
            current,
            // Other controllers write in a policy's ancestors and a route's parents too: apply
            // to what was read.
            resource_version: match s.kind.as_str() {
                "BackendTLSPolicy" => version(&tls_policies, &s.namespace, &s.name),
                "HTTPRoute" => version(&http_routes, &s.namespace, &s.name),
                "GRPCRoute" => version(&grpc_routes, &s.namespace, &s.name),
                _ => None,
            },
        });
    }
    // Routes frontdesk no longer serves (their parentRefs moved to another controller's
    // Gateway) lose the parents entries frontdesk wrote.
    for (kind, routes) in [("HTTPRoute", &http_routes), ("GRPCRoute", &grpc_routes)] {
        for ((namespace, name), read) in routes {
            let compiled = output
                .statuses
                .iter()
                .any(|s| s.kind == kind && s.namespace == *namespace && s.name == *name);
            let Some(status) = (!compiled)
                .then(|| crate::route_parent_status::without_ours(read.status.as_ref()))
                .flatten()
            else {
                continue;
            };
            wanted.push(Wanted {
                kind: kind.into(),
                namespace: namespace.clone(),
                name: name.clone(),
                status,
                current: read.status.clone(),
                resource_version: read.version.clone(),
            });
        }
    }
    wanted
}

/// An object's status as read, and the version it was read at.
struct Read {
    status: Option<serde_json::Value>,
    version: Option<String>,
}

/// Label of the replicas' progress ConfigMaps; its value is the Lease's name.
pub(super) const PROGRESS_LABEL: &str = "frontdesk.dev/controller-progress";
/// A replica that has not refreshed its progress for this long is taken for gone.
const PROGRESS_STALE: Duration = Duration::from_secs(30);

/// The progress summaries in the replicas' ConfigMaps.
fn shared_progress(stores: &[Store<ConfigMap>]) -> Vec<ReplicaProgress> {
    all(stores)
        .into_iter()
        .filter_map(|cm| serde_json::from_str(cm.data?.get("progress.json")?).ok())
        .collect()
}

/// Where a replica shares its progress.
pub(super) struct ProgressShare {
    pub(super) name: String,
    /// The label value the leader selects: the Lease's name.
    pub(super) group: String,
    pub(super) pod: Option<(String, String)>,
}

/// `<lease>-progress-<replica>`, as a DNS name.
pub(super) fn progress_name(lease: &str, identity: &str) -> String {
    format!(
        "{lease}-progress-{}",
        identity
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-")
    )
}

/// Writes this replica's progress to its ConfigMap when it changes (at least every 10 s, so
/// the others can tell it is alive).
pub(super) async fn share_progress(
    api: Api<ConfigMap>,
    share: ProgressShare,
    push: Arc<PushServer>,
) {
    let name = &share.name;
    let mut metadata = serde_json::json!({"name": name, "labels": {PROGRESS_LABEL: share.group}});
    if let Some((pod, uid)) = &share.pod {
        metadata["ownerReferences"] =
            serde_json::json!([{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}]);
    }
    let mut last: Option<ReplicaProgress> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let progress = ReplicaProgress::local(&push.store, &push.acks, now);
        let due = last
            .as_ref()
            .is_none_or(|l| !l.same(&progress) || now - l.updated >= 10);
        if !due {
            continue;
        }
        let cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {"progress.json": serde_json::to_string(&progress).unwrap_or_default()},
        });
        match api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&cm),
            )
            .await
        {
            Ok(_) => last = Some(progress),
            Err(e) => tracing::warn!(error = %e, "cannot share this replica's proxy progress"),
        }
    }
}

/// Status by server-side apply on the status subresource; Events through the events API.
pub struct KubeSink {
    pub client: Client,
    pub recorder: Recorder,
}

impl StatusSink for KubeSink {
    async fn apply_status(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        status: &RouteStatus,
    ) -> Result<(), String> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &api_resource(kind));
        apply_status(&api, name, "frontdesk.dev/v1alpha1", kind, status, None).await
    }

    async fn warn(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        uid: Option<&str>,
        reason: &str,
        note: &str,
    ) -> Result<(), String> {
        let reference = ObjectReference {
            api_version: Some("frontdesk.dev/v1alpha1".into()),
            kind: Some(kind.into()),
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            uid: uid.map(String::from),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.chars().take(1024).collect()),
            action: "Compile".into(),
            secondary: None,
        };
        self.recorder
            .publish(&event, &reference)
            .await
            .map_err(|e| e.to_string())
    }
}

impl GatewayStatusSink for KubeSink {
    async fn apply_gateway_status(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        status: &serde_json::Value,
        resource_version: Option<&str>,
    ) -> Result<(), String> {
        use frontdesk_crds::gateway_api::{
            BackendTLSPolicy, GRPCRoute, Gateway, GatewayClass, HTTPRoute,
        };
        let (api, ar) = if kind == "GatewayClass" {
            let ar = ApiResource::erase::<GatewayClass>(&());
            (Api::<DynamicObject>::all_with(self.client.clone(), &ar), ar)
        } else {
            let ar = match kind {
                "BackendTLSPolicy" => ApiResource::erase::<BackendTLSPolicy>(&()),
                "HTTPRoute" => ApiResource::erase::<HTTPRoute>(&()),
                "GRPCRoute" => ApiResource::erase::<GRPCRoute>(&()),
                _ => ApiResource::erase::<Gateway>(&()),
            };
            let api = Api::namespaced_with(self.client.clone(), namespace, &ar);
            (api, ar)
        };
        apply_status(&api, name, &ar.api_version, kind, status, resource_version).await
    }
}

/// Writes `status` on an object's status subresource by server-side apply, as the
/// controller's field manager; with `resource_version`, only to that version of the object.
async fn apply_status(
    api: &Api<DynamicObject>,
    name: &str,
    api_version: &str,
    kind: &str,
    status: &impl serde::Serialize,
    resource_version: Option<&str>,
) -> Result<(), String> {
    let mut patch = serde_json::json!({
        "apiVersion": api_version,
        "kind": kind,
        "status": status,
    });
    if let Some(version) = resource_version {
        // Server-side apply with a resourceVersion: refused (409) when the object changed
        // since; the writer tries again with what it reads next.
        patch["metadata"] = serde_json::json!({"resourceVersion": version});
    }
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}
