//! The leader's status writer: Routes, Policies and Aggregates ([`crate::status`]),
//! GatewayClasses and Gateways ([`crate::gateway_status`]), BackendTLSPolicies
//! ([`crate::policy_status`]) and HTTPRoutes and GRPCRoutes
//! ([`crate::route_parent_status`]) by server-side apply, with the
//! proxies' progress shared between replicas through ConfigMaps. Each pass looks only at the
//! objects whose inputs moved ([`super::status_scope`]); a full pass every [`FULL_PASS_EVERY`].

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
use serde::Deserialize;

use super::status_scope::{Key, Scope, SeenObjects, SeenOutput, SeenProgress};
use crate::progress::{ReplicaProgress, combine, object_key};
use crate::push::PushServer;
use crate::status::{Observed, Reconciler, StatusSink};

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
    let mut pass = StatusPass::default();
    // What the last pass saw: a pass is needed only when something moved (a publish, a proxy,
    // a watch event: the objects' own statuses included); a full one every FULL_PASS_EVERY.
    let mut last: Option<Stamp> = None;
    let mut last_full: Option<tokio::time::Instant> = None;
    let mut last_report = crate::provision::Report::default();
    loop {
        // ACKs arrive without a publish, so look again every second too.
        tokio::select! {
            _ = published.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = leader.changed() => {
                // Another replica may have written in between: forget what we wrote.
                pass = StatusPass::default();
                last = None;
                last_full = None;
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
        let full = last_full.is_none_or(|at| now_instant.duration_since(at) >= FULL_PASS_EVERY);
        // What provisioning found (addresses, refused parameters) comes on its own timer.
        let provisioned = gateway_api.provisioned.has_changed().unwrap_or(false);
        // A failed write is tried again at the next tick, not at the next full pass.
        if !full && !provisioned && last == Some(stamp) && !pass.retrying() {
            continue;
        }
        last = Some(stamp);
        if full {
            last_full = Some(now_instant);
        }
        let stores = gateway_api.stores.borrow().clone();
        let report = gateway_api.provisioned.borrow_and_update().clone();
        // Compared, not flagged: a report that came after `has_changed` is not lost.
        let report_changed = report != last_report;
        last_report = report.clone();
        let inputs = PassInputs {
            output,
            objects: &objects,
            gateway_api: stores.as_ref(),
            provisioned: (&report, report_changed),
            shared: &shared,
            full,
        };
        let done = pass.run(&sink, inputs).await;
        push.metrics.record_status_pass(done.looked_at, full);
        if done.writes > 0 {
            tracing::debug!(
                writes = done.writes,
                looked_at = done.looked_at,
                full,
                "statuses written"
            );
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

/// A pass looks at every object at least this often, even when nothing moved: a safety net
/// under the change sets ([`super::status_scope`]), and the clock by which the replicas'
/// progress summaries go stale.
pub(super) const FULL_PASS_EVERY: Duration = Duration::from_secs(15);

/// What one status pass reads.
pub(super) struct PassInputs<'a> {
    pub output: Arc<Output>,
    /// The watch caches of Routes, Aggregates and Policies, per kind.
    pub objects: &'a [(&'static str, Vec<Store<DynamicObject>>)],
    pub gateway_api: Option<&'a GatewayApiStores>,
    /// What provisioning found, and whether it changed since the last pass.
    pub provisioned: (&'a crate::provision::Report, bool),
    /// The replicas' progress ConfigMaps.
    pub shared: &'a [Store<ConfigMap>],
    /// Look at every object, not only those whose inputs moved.
    pub full: bool,
}

/// What a pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PassDone {
    /// Objects whose status was computed and compared.
    pub looked_at: usize,
    pub writes: usize,
}

/// The leader's status writing, pass after pass: what it wrote and what it saw last.
#[derive(Default)]
pub(super) struct StatusPass {
    reconciler: Reconciler,
    gateway_writer: GatewayStatusWriter,
    objects: SeenObjects,
    output: SeenOutput,
    progress: SeenProgress,
}

impl StatusPass {
    /// Whether a write or an Event failed and waits for the next pass.
    pub(super) fn retrying(&self) -> bool {
        self.reconciler.retrying() || self.gateway_writer.retrying()
    }

    /// Writes the statuses that differ from what the objects have, looking only at the
    /// objects whose inputs moved since the last pass (all of them with `inputs.full`).
    pub(super) async fn run<S: StatusSink + GatewayStatusSink>(
        &mut self,
        sink: &S,
        inputs: PassInputs<'_>,
    ) -> PassDone {
        let mut scope = if inputs.full {
            Scope::everything()
        } else {
            Scope::default()
        };
        let new_output = self.output.update(inputs.output, &mut scope);
        let gateway_api = inputs.gateway_api.cloned().unwrap_or_default();
        let walked = (inputs.objects.iter())
            .map(|(kind, stores)| (*kind, &stores[..]))
            .chain(gateway_api.with_status());
        self.objects.walk(walked, &mut scope);
        let output = self.output.output().expect("just set").clone();
        if inputs.provisioned.1 || scope.keys.iter().any(|k| k.0 == "GatewayClass") {
            // Whether a Gateway is frontdesk's, and what provisioning found for it.
            let gateways = (output.statuses.iter())
                .filter(|s| matches!(s.kind.as_str(), "Gateway" | "GatewayClass"));
            for s in gateways {
                scope.add(&s.kind, &s.namespace, &s.name);
            }
        }
        let now_unix = k8s_openapi::jiff::Timestamp::now().as_second();
        let fresh_after = now_unix - PROGRESS_STALE.as_secs() as i64;
        self.progress.update(inputs.shared, fresh_after, &mut scope);
        for key in self
            .reconciler
            .pending()
            .chain(self.gateway_writer.pending())
        {
            scope.add(&key.0, &key.1, &key.2);
        }
        if new_output || inputs.full {
            let seen_output = &self.output;
            self.reconciler.retain(|k| seen_output.contains(k));
        }
        let summaries: Vec<&ReplicaProgress> = self.progress.fresh().collect();
        let progress = |s: &ObjectStatus| {
            // A rejected generation: how far the one served in its place got.
            let generation = s.served_generation.unwrap_or(s.generation);
            combine(
                &summaries,
                &object_key(&s.kind, &s.namespace, &s.name),
                generation,
                0,
            )
        };
        // The statuses to look at, in the output's order.
        let in_scope: Vec<&ObjectStatus> = if scope.all {
            output.statuses.iter().collect()
        } else {
            let mut keys: Vec<&Key> = scope.keys.iter().collect();
            keys.sort();
            keys.into_iter()
                .filter_map(|k| self.output.get(&k.0, &k.1, &k.2))
                .collect()
        };
        // Per object: its uid and current status, read leniently (a status we cannot parse is
        // simply rewritten).
        let ours: Vec<(&ObjectStatus, Option<&DynamicObject>)> = (in_scope.iter())
            .filter(|s| matches!(s.kind.as_str(), "Route" | "Policy" | "Aggregate"))
            .map(|s| (*s, self.objects.get(&s.kind, &s.namespace, &s.name)))
            .collect();
        let current: Vec<Option<RouteStatus>> = (ours.iter())
            .map(|(_, o)| {
                (o.and_then(|o| o.data.get("status")))
                    .and_then(|s| RouteStatus::deserialize(s).ok())
            })
            .collect();
        let observed: Vec<Observed<'_>> = (ours.iter().zip(&current))
            .map(|((s, o), current)| Observed {
                computed: s,
                progress: progress(s),
                current: current.as_ref(),
                uid: o.and_then(|o| o.metadata.uid.as_deref()),
            })
            .collect();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut writes = self.reconciler.reconcile(sink, &observed, &now).await;
        let mut looked_at = observed.len();
        if inputs.gateway_api.is_some() {
            let gateway_kinds = in_scope.iter().copied().filter(|s| {
                matches!(
                    s.kind.as_str(),
                    "GatewayClass" | "Gateway" | "BackendTLSPolicy" | "HTTPRoute" | "GRPCRoute"
                )
            });
            let unserved = unserved_routes(&self.objects, &self.output, &scope);
            let wanted = wanted_statuses(
                gateway_kinds,
                &unserved,
                &self.objects,
                progress,
                inputs.provisioned.0,
                &now,
            );
            looked_at += wanted.len();
            // Looked at and no longer wanted (gone, another controller's now): forgotten.
            let wanted_keys: std::collections::HashSet<(&str, &str, &str)> = (wanted.iter())
                .map(|w| (w.kind.as_str(), w.namespace.as_str(), w.name.as_str()))
                .collect();
            self.gateway_writer.retain(|k| {
                !scope.contains(k)
                    || wanted_keys.contains(&(k.0.as_str(), k.1.as_str(), k.2.as_str()))
            });
            writes += self.gateway_writer.reconcile(sink, &wanted).await;
        }
        PassDone { looked_at, writes }
    }
}

/// The statuses of frontdesk's GatewayClasses and Gateways (and of the other Gateway API
/// kinds), with those they have now: every one of `output`, over the objects of `stores`.
#[cfg(test)]
pub(super) fn gateway_api_statuses(
    output: &Output,
    stores: &GatewayApiStores,
    progress: impl Fn(&ObjectStatus) -> Vec<crate::status::GatewayProgress>,
    provisioned: &crate::provision::Report,
    now: &Time,
) -> Vec<Wanted> {
    let mut objects = SeenObjects::default();
    objects.walk(stores.with_status(), &mut Scope::everything());
    let mut seen = SeenOutput::default();
    // In key order, as the compiler's outputs are (the tests build theirs by hand).
    let mut sorted = output.clone();
    sorted
        .statuses
        .sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    seen.update(Arc::new(sorted), &mut Scope::everything());
    let everything = Scope::everything();
    let unserved = unserved_routes(&objects, &seen, &everything);
    wanted_statuses(
        output.statuses.iter(),
        &unserved,
        &objects,
        progress,
        provisioned,
        now,
    )
}

/// The HTTPRoutes and GRPCRoutes of `scope` in the caches but not in the output: frontdesk
/// no longer serves them.
fn unserved_routes<'a>(
    objects: &'a SeenObjects,
    output: &SeenOutput,
    scope: &'a Scope,
) -> Vec<(&'a Key, &'a DynamicObject)> {
    let routes: Vec<(&Key, &DynamicObject)> = if scope.all {
        ["HTTPRoute", "GRPCRoute"]
            .into_iter()
            .flat_map(|kind| objects.of_kind(kind))
            .collect()
    } else {
        (scope.keys.iter())
            .filter(|k| matches!(k.0.as_str(), "HTTPRoute" | "GRPCRoute"))
            .filter_map(|k| Some((k, objects.get(&k.0, &k.1, &k.2)?)))
            .collect()
    };
    (routes.into_iter())
        .filter(|(key, _)| !output.contains(key))
        .collect()
}

/// The statuses the Gateway API objects of `statuses` should have, with those they have now
/// (in `objects`); and for the routes of `unserved` (no longer frontdesk's), their status
/// without frontdesk's entries.
fn wanted_statuses<'a>(
    statuses: impl Iterator<Item = &'a ObjectStatus>,
    unserved: &[(&Key, &DynamicObject)],
    objects: &SeenObjects,
    progress: impl Fn(&ObjectStatus) -> Vec<crate::status::GatewayProgress>,
    provisioned: &crate::provision::Report,
    now: &Time,
) -> Vec<Wanted> {
    use frontdesk_crds::gateway_api::{GatewayClassStatus, GatewayStatus};
    let current = |kind: &str, namespace: &str, name: &str| {
        (objects.get(kind, namespace, name)).and_then(|o| o.data.get("status").cloned())
    };
    let version = |kind: &str, namespace: &str, name: &str| {
        (objects.get(kind, namespace, name)).and_then(|o| o.metadata.resource_version.clone())
    };
    // The output may be older than the caches: only objects that are still there, at the
    // generation compiled, and still of frontdesk's class get a status; never another
    // controller's Gateway that just moved class.
    let controller_of = |class: &str| {
        (objects.get("GatewayClass", "", class))
            .and_then(|c| c.data.pointer("/spec/controllerName"))
            .and_then(|v| v.as_str())
    };
    let ours = frontdesk_crds::gateway_api::CONTROLLER_NAME;
    let ours_now = |s: &ObjectStatus| -> bool {
        let Some(object) = objects.get(&s.kind, &s.namespace, &s.name) else {
            return false;
        };
        let at_generation = object.metadata.generation.unwrap_or(0) == s.generation;
        match s.kind.as_str() {
            "GatewayClass" => at_generation && controller_of(&s.name) == Some(ours),
            "Gateway" => {
                at_generation
                    && (object.data.pointer("/spec/gatewayClassName"))
                        .and_then(|v| v.as_str())
                        .and_then(controller_of)
                        == Some(ours)
            }
            // Another controller's entries are kept ([`crate::policy_status`]).
            "BackendTLSPolicy" | "HTTPRoute" | "GRPCRoute" => at_generation,
            _ => false,
        }
    };
    let mut wanted = Vec::new();
    for s in statuses {
        if !ours_now(s) {
            continue;
        }
        // Parameters that cannot be used make the class or Gateway not accepted.
        let key = (s.kind.clone(), s.namespace.clone(), s.name.clone());
        let refused = provisioned
            .invalid
            .get(&key)
            .map(|message| crate::gateway_status::refuse_parameters(s, message));
        let s = refused.as_ref().unwrap_or(s);
        let current = current(&s.kind, &s.namespace, &s.name);
        let status = match s.kind.as_str() {
            "GatewayClass" => {
                let typed =
                    (current.as_ref()).and_then(|c| GatewayClassStatus::deserialize(c).ok());
                let status = crate::gateway_status::class_status(s, typed.as_ref(), now);
                serde_json::to_value(status)
            }
            "Gateway" => {
                let typed = current
                    .as_ref()
                    .and_then(|c| GatewayStatus::deserialize(c).ok());
                let mut status =
                    crate::gateway_status::gateway_status(s, &progress(s), typed.as_ref(), now);
                if let Some(addresses) = provisioned
                    .addresses
                    .get(&(s.namespace.clone(), s.name.clone()))
                {
                    status.addresses = addresses.clone();
                }
                serde_json::to_value(status)
            }
            "BackendTLSPolicy" => {
                let typed = current.as_ref().and_then(|c| {
                    frontdesk_crds::gateway_api::backend_tls_policy::PolicyStatus::deserialize(c)
                        .ok()
                });
                let Some(status) = crate::policy_status::policy_status(s, typed.as_ref(), now)
                else {
                    continue;
                };
                serde_json::to_value(status)
            }
            "HTTPRoute" | "GRPCRoute" => {
                let Some(status) = crate::route_parent_status::route_status(
                    s,
                    &progress(s),
                    current.as_ref(),
                    now,
                ) else {
                    continue;
                };
                Ok(status)
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
                "BackendTLSPolicy" | "HTTPRoute" | "GRPCRoute" => {
                    version(&s.kind, &s.namespace, &s.name)
                }
                _ => None,
            },
        });
    }
    // Routes frontdesk no longer serves (their parentRefs moved to another controller's
    // Gateway) lose the parents entries frontdesk wrote.
    for ((kind, namespace, name), object) in unserved {
        let current = object.data.get("status");
        let Some(status) = crate::route_parent_status::without_ours(current) else {
            continue;
        };
        wanted.push(Wanted {
            kind: kind.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
            status,
            current: current.cloned(),
            resource_version: object.metadata.resource_version.clone(),
        });
    }
    wanted
}

/// Label of the replicas' progress ConfigMaps; its value is the Lease's name.
pub(super) const PROGRESS_LABEL: &str = "frontdesk.dev/controller-progress";
/// A replica that has not refreshed its progress for this long is taken for gone.
const PROGRESS_STALE: Duration = Duration::from_secs(30);

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
