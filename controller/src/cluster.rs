//! Cluster mode: the Kubernetes API as the source, status written back.
//!
//! - Reflectors ([`crate::watch`]) on Route, Policy, Aggregate, Service and EndpointSlice (all
//!   namespaces, or the `--namespace` list), and on the Secrets Policies and Gateways
//!   reference, and no other: one watch filtered on the server's side per Secret name and per
//!   label selector (API keys by label; htpasswd, JWT keys and Gateways' certificates by name;
//!   [`crate::secret_refs`]), started before the compile that first needs it and stopped after
//!   the one that no longer does. Helm's release records and the channel credentials are left
//!   out even when named.
//!   Nothing is compiled before every reflector finished its initial list, so proxies never
//!   get a half-known cluster. Changes are throttled on the leading edge: a change after a
//!   quiet spell compiles at once (no added latency), and while changes keep coming they are
//!   gathered into one compile per [`MIN_INTERVAL`]: a burst of 1,000 applies compiles a
//!   handful of times, not 1,000.
//! - GatewayClass, Gateway and ReferenceGrant when the Gateway API CRDs are installed, found by
//!   API discovery at start and every minute until they are ([`crate::gateway_api`]).
//! - Every replica compiles and serves snapshots; only the holder of the `frontdesk-controller`
//!   Lease writes status (server-side apply, field manager `frontdesk-controller`) and Events:
//!   Routes, Policies and Aggregates ([`crate::status`]), GatewayClasses and Gateways of
//!   frontdesk's class ([`crate::gateway_status`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use frontdesk_crds::last_accepted::{LastAccepted, Unreadable};
use frontdesk_crds::manifests::{Object, ObjectKey};
use frontdesk_crds::route::{Route, RouteStatus};
use frontdesk_crds::{Aggregate, Policy};
use frontdesk_crds::{ObjectStatus, Output};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};

use crate::gateway_api::GatewayApiStores;
use crate::gateway_status::{GatewayStatusSink, GatewayStatusWriter, Wanted};
use crate::progress::{ReplicaProgress, combine, object_key};
use crate::push::PushServer;
use crate::secret_refs;
use crate::status::{Observed, Reconciler, StatusSink};
use crate::watch::{ConfigMapWatches, SecretWatches, all, typed_apis, watch_kind};

/// Shortest time between two compiles; changes meanwhile are gathered into the next one.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
pub const FIELD_MANAGER: &str = "frontdesk-controller";
pub struct ClusterOptions {
    /// Empty: every namespace.
    pub namespaces: Vec<String>,
    pub lease_namespace: String,
    /// The Lease's name; also names and labels the replicas' progress ConfigMaps, so two
    /// installs in one namespace keep apart.
    pub lease_name: String,
    pub identity: String,
    /// This replica's Pod (name, uid): its progress ConfigMap is owned by it, and deleted
    /// with it by the garbage collector.
    pub pod: Option<(String, String)>,
    /// Let several namespaces serve one host (`--allow-shared-hosts`).
    pub shared_hosts: bool,
    /// The URL hosts manifests may name.
    pub urls: frontdesk_crds::compile::urls::UrlPolicy,
    /// Provision Gateways' proxies, with these settings (`--provision-gateways`).
    pub provision: Option<crate::provision::Settings>,
}

/// Runs the cluster source until the process ends.
pub async fn run(
    client: Client,
    options: ClusterOptions,
    push: Arc<PushServer>,
) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let gateway_api = crate::gateway_api::follow(
        client.clone(),
        options.namespaces.clone(),
        changed.clone(),
        push.gateway_api.clone(),
    )
    .await;
    // Our kinds are watched untyped and read one by one (see `read_objects`): one object this
    // version cannot read must not stall the watch of all the others.
    let ns = &options.namespaces;
    let dynamic_apis = |kind: &str| -> (Vec<Api<DynamicObject>>, ApiResource) {
        let ar = api_resource(kind);
        let apis = if ns.is_empty() {
            vec![Api::all_with(client.clone(), &ar)]
        } else {
            ns.iter()
                .map(|n| Api::namespaced_with(client.clone(), n, &ar))
                .collect()
        };
        (apis, ar)
    };
    let all_objects = watcher::Config::default();
    let (route_apis, route_type) = dynamic_apis("Route");
    let routes = watch_kind(route_apis, &changed, route_type, all_objects.clone());
    let (policy_apis, policy_type) = dynamic_apis("Policy");
    let policies = watch_kind(policy_apis, &changed, policy_type, all_objects.clone());
    let (aggregate_apis, aggregate_type) = dynamic_apis("Aggregate");
    let aggregates = watch_kind(
        aggregate_apis,
        &changed,
        aggregate_type,
        all_objects.clone(),
    );
    // Secrets, and the ConfigMaps Gateways name as CA bundles, are watched one reference at a
    // time, as the compile loop finds the references.
    let watches = RefWatchSet::new(client.clone(), changed.clone());
    let services = watch_kind(
        typed_apis::<Service>(&client, ns),
        &changed,
        (),
        all_objects.clone(),
    );
    let slices = watch_kind(
        typed_apis::<EndpointSlice>(&client, ns),
        &changed,
        (),
        all_objects,
    );
    let published = Arc::new(Notify::new());

    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &options.lease_name)
        .with_namespace(&options.lease_namespace)
        .with_identity(&options.identity)
        .build()
        .await?;
    let (leader, _lease_task) = lease.watch().await;
    let (provision_report, provisioned) = watch::channel(crate::provision::Report::default());
    if let Some(settings) = options.provision.clone() {
        tokio::spawn(crate::provision::run(
            client.clone(),
            settings,
            gateway_api.clone(),
            services.clone(),
            leader.clone(),
            provision_report,
        ));
    }
    let sink = KubeSink {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: Some(options.identity.clone()),
            },
        ),
    };
    // Each replica shares its proxies' progress in a ConfigMap; the leader adds them up.
    let progress_api: Api<ConfigMap> = Api::namespaced(client.clone(), &options.lease_namespace);
    let progress = ProgressShare {
        name: progress_name(&options.lease_name, &options.identity),
        group: options.lease_name.clone(),
        pod: options.pod.clone(),
    };
    let progress_only =
        watcher::Config::default().labels(&format!("{PROGRESS_LABEL}={}", options.lease_name));
    let shared = watch_kind(
        vec![progress_api.clone()],
        &Arc::new(Notify::new()),
        (),
        progress_only,
    );
    tokio::spawn(share_progress(progress_api, progress, push.clone()));
    let sources = Sources {
        routes,
        aggregates,
        policies,
        services,
        slices,
        gateway_api,
        namespaces: options.namespaces.clone(),
    };
    tokio::spawn(status_loop(
        sink,
        vec![
            ("Route", sources.routes.clone()),
            ("Aggregate", sources.aggregates.clone()),
            ("Policy", sources.policies.clone()),
        ],
        GatewayApiInputs {
            stores: sources.gateway_api.clone(),
            provisioned,
        },
        shared,
        push.clone(),
        leader,
        published.clone(),
    ));
    let mut accepted = LastAccepted::default();
    accepted.shared_hosts = options.shared_hosts;
    accepted.urls = options.urls.clone();
    compile_loop(sources, watches, push, changed, published, accepted).await;
    Ok(())
}

/// The API of one of our kinds, for untyped access.
fn api_resource(kind: &str) -> ApiResource {
    match kind {
        "Policy" => ApiResource::erase::<Policy>(&()),
        "Aggregate" => ApiResource::erase::<Aggregate>(&()),
        _ => ApiResource::erase::<Route>(&()),
    }
}

/// Reads each object of one of our kinds on its own; those that cannot be read are reported
/// with why.
fn read_objects<T: DeserializeOwned>(
    kind: &str,
    stores: &[Store<DynamicObject>],
) -> (Vec<T>, Vec<Unreadable>) {
    let mut objects = Vec::new();
    let mut unreadable = Vec::new();
    for object in stores.iter().flat_map(|s| s.state()) {
        let value = serde_json::to_value(&*object).unwrap_or_default();
        match frontdesk_crds::manifests::typed::<T>(value) {
            Ok(typed) => objects.push(typed),
            Err((field, reason)) => {
                let meta = &object.metadata;
                let namespace = meta.namespace.clone().unwrap_or_default();
                let name = meta.name.clone().unwrap_or_default();
                tracing::warn!(%kind, %namespace, %name, %field, %reason, "an object cannot be read; the others are compiled");
                let generation = meta.generation.unwrap_or(0);
                unreadable.push(Unreadable {
                    status: ObjectStatus::unreadable(
                        kind, &namespace, &name, generation, &field, &reason,
                    ),
                    uid: meta.uid.clone(),
                });
            }
        }
    }
    (objects, unreadable)
}

/// The reflectors' stores the compiler reads.
struct Sources {
    routes: Vec<Store<DynamicObject>>,
    aggregates: Vec<Store<DynamicObject>>,
    policies: Vec<Store<DynamicObject>>,
    services: Vec<Store<Service>>,
    slices: Vec<Store<EndpointSlice>>,
    /// The Gateway API kinds, once their CRDs are found ([`crate::gateway_api::follow`]).
    gateway_api: watch::Receiver<Option<GatewayApiStores>>,
    /// The watched namespaces (`--namespace`; empty: all).
    namespaces: Vec<String>,
}

impl Sources {
    async fn wait_until_ready(&self) {
        for s in self
            .routes
            .iter()
            .chain(&self.policies)
            .chain(&self.aggregates)
        {
            let _ = s.wait_until_ready().await;
        }
        for s in &self.services {
            let _ = s.wait_until_ready().await;
        }
        for s in &self.slices {
            let _ = s.wait_until_ready().await;
        }
        let gateway_api = self.gateway_api.borrow().clone();
        if let Some(stores) = gateway_api {
            stores.wait_until_ready().await;
        }
    }

    /// Every object by key but Secrets (see [`SecretWatches`]), and those of our kinds that
    /// could not be read.
    fn read(&self) -> (BTreeMap<ObjectKey, Object>, Vec<Unreadable>) {
        let (routes, mut unreadable) = read_objects::<Route>("Route", &self.routes);
        let (policies, bad_policies) = read_objects::<Policy>("Policy", &self.policies);
        unreadable.extend(bad_policies);
        let (aggregates, bad_aggregates) = read_objects::<Aggregate>("Aggregate", &self.aggregates);
        unreadable.extend(bad_aggregates);
        let mut objects = BTreeMap::new();
        let mut add = |o: Object| {
            objects.insert(o.key(), o);
        };
        routes
            .into_iter()
            .for_each(|o| add(Object::Route(Box::new(o))));
        policies
            .into_iter()
            .for_each(|o| add(Object::Policy(Box::new(o))));
        aggregates
            .into_iter()
            .for_each(|o| add(Object::Aggregate(Box::new(o))));
        all(&self.services)
            .into_iter()
            .for_each(|o| add(Object::Service(Box::new(o))));
        all(&self.slices)
            .into_iter()
            .for_each(|o| add(Object::EndpointSlice(Box::new(o))));
        let gateway_api = self.gateway_api.borrow().clone();
        gateway_api.iter().flat_map(|s| s.read()).for_each(add);
        (objects, unreadable)
    }
}

/// The watches made one reference at a time, as the compile loop finds the references.
struct RefWatchSet {
    secrets: SecretWatches,
    config_maps: ConfigMapWatches,
}

impl RefWatchSet {
    fn new(client: Client, changed: Arc<Notify>) -> Self {
        RefWatchSet {
            secrets: SecretWatches::new(client.clone(), changed.clone()),
            config_maps: ConfigMapWatches::new(client, changed),
        }
    }
}

async fn compile_loop(
    sources: Sources,
    mut watches: RefWatchSet,
    push: Arc<PushServer>,
    changed: Arc<Notify>,
    published: Arc<Notify>,
    // A rejected or unreadable generation leaves the last accepted one serving.
    mut accepted: LastAccepted,
) {
    sources.wait_until_ready().await;
    tracing::info!("initial lists complete; compiling");
    changed.notify_one();
    let mut last: Option<tokio::time::Instant> = None;
    // The first compile waits for every Secret list, as for every other list: nothing is
    // published half-known. Later ones wait a while, not for ever.
    let mut wait = None;
    loop {
        changed.notified().await;
        throttle(&mut last).await;
        let (output, took) = compile_once(&sources, &mut watches, &mut accepted, wait).await;
        wait = Some(SECRET_LIST_WAIT);
        crate::record_compile(&push, output, took);
        published.notify_one();
    }
}

/// Longest wait, after the first compile, for new Secret watches to list.
const SECRET_LIST_WAIT: Duration = Duration::from_secs(10);

/// Runs the Secret watches the Policies need, then compiles what the stores hold: a status for
/// every object, the unreadable ones included. Returns how long the compile itself took.
///
/// The Policies last accepted may stand in for rejected or unreadable successors, so their
/// references are watched too; after the compile, a watch that neither the Policies nor what
/// is now kept for them reference is stopped.
async fn compile_once(
    sources: &Sources,
    watches: &mut RefWatchSet,
    accepted: &mut LastAccepted,
    wait: Option<Duration>,
) -> (Output, Duration) {
    let (mut objects, unreadable) = sources.read();
    let ca_bundles = gateway_ca_config_maps(objects.values(), &sources.namespaces);
    watches.config_maps.follow(&ca_bundles, wait).await;
    for map in all(&watches.config_maps.stores()) {
        let map = Object::ConfigMap(Box::new(map));
        objects.insert(map.key(), map);
    }
    let secrets = &mut watches.secrets;
    let mut current = secret_refs::wanted(policies(objects.values()));
    current.extend(gateway_certificates(objects.values(), &sources.namespaces));
    let with_kept = |accepted: &LastAccepted| {
        let mut wanted = current.clone();
        wanted.extend(secret_refs::wanted(policies(accepted.kept())));
        wanted
    };
    secrets.follow(&with_kept(accepted), wait).await;
    let started = Instant::now();
    for secret in all(&secrets.stores()) {
        let secret = Object::Secret(Box::new(secret));
        objects.insert(secret.key(), secret);
    }
    let output = accepted.compile(objects, unreadable).0;
    let took = started.elapsed();
    secrets.follow(&with_kept(accepted), wait).await;
    (output, took)
}

/// The Secret watches the certificates of frontdesk's Gateways among `objects` need.
fn gateway_certificates<'a>(
    objects: impl Iterator<Item = &'a Object> + Clone,
    namespaces: &[String],
) -> std::collections::BTreeSet<secret_refs::WatchKey> {
    with_gateways(objects, namespaces, secret_refs::gateway_certificates)
}

/// The ConfigMap watches the client validation of frontdesk's Gateways among `objects` needs.
fn gateway_ca_config_maps<'a>(
    objects: impl Iterator<Item = &'a Object> + Clone,
    namespaces: &[String],
) -> std::collections::BTreeSet<secret_refs::WatchKey> {
    with_gateways(objects, namespaces, secret_refs::gateway_ca_config_maps)
}

type GatewayRefs = fn(
    &[&frontdesk_crds::gateway_api::Gateway],
    &[frontdesk_crds::gateway_api::GatewayClass],
    &[&frontdesk_crds::gateway_api::ReferenceGrant],
    &[String],
) -> std::collections::BTreeSet<secret_refs::WatchKey>;

/// `refs` of the Gateways, classes and grants among `objects`.
fn with_gateways<'a>(
    objects: impl Iterator<Item = &'a Object> + Clone,
    namespaces: &[String],
    refs: GatewayRefs,
) -> std::collections::BTreeSet<secret_refs::WatchKey> {
    let gateways: Vec<_> = objects
        .clone()
        .filter_map(|o| match o {
            Object::Gateway(g) => Some(&**g),
            _ => None,
        })
        .collect();
    let classes: Vec<_> = objects
        .clone()
        .filter_map(|o| match o {
            Object::GatewayClass(c) => Some((**c).clone()),
            _ => None,
        })
        .collect();
    let grants: Vec<_> = objects
        .filter_map(|o| match o {
            Object::ReferenceGrant(g) => Some(&**g),
            _ => None,
        })
        .collect();
    refs(&gateways, &classes, &grants, namespaces)
}

/// The Policies among `objects`.
fn policies<'a>(objects: impl Iterator<Item = &'a Object>) -> impl Iterator<Item = &'a Policy> {
    objects.filter_map(|o| match o {
        Object::Policy(p) => Some(&**p),
        _ => None,
    })
}

/// Waits until [`MIN_INTERVAL`] has passed since the last compile (not at all after a quiet
/// spell). Changes arriving meanwhile leave a permit on the `Notify`, which triggers the next
/// compile: nothing is lost, and a burst costs one compile per interval.
async fn throttle(last: &mut Option<tokio::time::Instant>) {
    if let Some(at) = *last {
        tokio::time::sleep_until(at + MIN_INTERVAL).await;
    }
    *last = Some(tokio::time::Instant::now());
}

/// What the status loop reads of the Gateway API kinds: their stores, once their CRDs are
/// found, and what provisioning found (empty when it is off).
struct GatewayApiInputs {
    stores: watch::Receiver<Option<GatewayApiStores>>,
    provisioned: watch::Receiver<crate::provision::Report>,
}

async fn status_loop(
    sink: KubeSink,
    objects: Vec<(&'static str, Vec<Store<DynamicObject>>)>,
    gateway_api: GatewayApiInputs,
    shared: Vec<Store<ConfigMap>>,
    push: Arc<PushServer>,
    mut leader: watch::Receiver<bool>,
    published: Arc<Notify>,
) {
    let mut reconciler = Reconciler::default();
    let mut gateway_writer = GatewayStatusWriter::default();
    loop {
        // ACKs arrive without a publish, so look again every second too.
        tokio::select! {
            _ = published.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = leader.changed() => {
                // Another replica may have written in between: forget what we wrote.
                reconciler = Reconciler::default();
                gateway_writer = GatewayStatusWriter::default();
            }
        }
        if !*leader.borrow() {
            continue;
        }
        let Some(output) = push.store.output() else {
            continue;
        };
        // Current statuses, read leniently: a status we cannot parse is simply rewritten.
        let read_current = |kind: &'static str, stores: &[Store<DynamicObject>]| {
            all(stores).into_iter().filter_map(move |o| {
                let status =
                    serde_json::from_value::<RouteStatus>(o.data.get("status")?.clone()).ok()?;
                Some((
                    (
                        kind,
                        o.metadata.namespace.clone()?,
                        o.metadata.name.clone()?,
                    ),
                    status,
                ))
            })
        };
        let current: Vec<((&str, String, String), RouteStatus)> = objects
            .iter()
            .flat_map(|(kind, stores)| read_current(kind, stores))
            .collect();
        let now_unix = k8s_openapi::jiff::Timestamp::now().as_second();
        let local = ReplicaProgress::local(&push.store, &push.acks, now_unix);
        let summaries = shared_progress(&shared);
        let fresh_after = now_unix - PROGRESS_STALE.as_secs() as i64;
        let objects: Vec<Observed<'_>> = output
            .statuses
            .iter()
            .filter(|s| matches!(s.kind.as_str(), "Route" | "Policy" | "Aggregate"))
            .map(|s| Observed {
                computed: s,
                progress: combine(
                    &summaries,
                    &local,
                    &object_key(&s.kind, &s.namespace, &s.name),
                    // A rejected generation: how far the one served in its place got.
                    s.served_generation.unwrap_or(s.generation),
                    fresh_after,
                ),
                current: current
                    .iter()
                    .find(|((k, ns, n), _)| *k == s.kind && *ns == s.namespace && *n == s.name)
                    .map(|(_, st)| st),
            })
            .collect();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut writes = reconciler.reconcile(&sink, &objects, &now).await;
        let stores = gateway_api.stores.borrow().clone();
        if let Some(stores) = stores {
            let progress = |s: &ObjectStatus| {
                let key = object_key(&s.kind, &s.namespace, &s.name);
                combine(&summaries, &local, &key, s.generation, fresh_after)
            };
            let report = gateway_api.provisioned.borrow().clone();
            let wanted = gateway_api_statuses(&output, &stores, progress, &report, &now);
            writes += gateway_writer.reconcile(&sink, &wanted).await;
        }
        if writes > 0 {
            tracing::debug!(writes, "statuses written");
        }
    }
}

/// The statuses of frontdesk's GatewayClasses and Gateways, with those they have now.
fn gateway_api_statuses(
    output: &Output,
    stores: &GatewayApiStores,
    progress: impl Fn(&ObjectStatus) -> Vec<crate::status::GatewayProgress>,
    provisioned: &crate::provision::Report,
    now: &Time,
) -> Vec<Wanted> {
    use frontdesk_crds::gateway_api::{GatewayClassStatus, GatewayStatus};
    // The statuses they have now, by (namespace, name); a GatewayClass's namespace is "".
    let statuses =
        |stores: &[Store<DynamicObject>]| -> HashMap<(String, String), serde_json::Value> {
            stores
                .iter()
                .flat_map(|s| s.state())
                .filter_map(|o| {
                    let namespace = o.metadata.namespace.clone().unwrap_or_default();
                    let key = (namespace, o.metadata.name.clone()?);
                    Some((key, o.data.get("status")?.clone()))
                })
                .collect()
        };
    let (classes, gateways) = (statuses(&stores.classes), statuses(&stores.gateways));
    let current =
        |map: &HashMap<(String, String), serde_json::Value>, namespace: &str, name: &str| {
            map.get(&(namespace.to_string(), name.to_string())).cloned()
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
            _ => false,
        }
    };
    let mut wanted = Vec::new();
    for s in &output.statuses {
        if matches!(s.kind.as_str(), "GatewayClass" | "Gateway") && !ours_now(s) {
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
            _ => continue,
        };
        let Ok(status) = status else { continue };
        wanted.push(Wanted {
            kind: s.kind.clone(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            status,
            current,
        });
    }
    wanted
}

/// Label of the replicas' progress ConfigMaps; its value is the Lease's name.
const PROGRESS_LABEL: &str = "frontdesk.dev/controller-progress";
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
struct ProgressShare {
    name: String,
    /// The label value the leader selects: the Lease's name.
    group: String,
    pod: Option<(String, String)>,
}

/// `<lease>-progress-<replica>`, as a DNS name.
fn progress_name(lease: &str, identity: &str) -> String {
    format!(
        "{lease}-progress-{}",
        identity
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-")
    )
}

/// Writes this replica's progress to its ConfigMap when it changes (at least every 10 s, so
/// the others can tell it is alive).
async fn share_progress(api: Api<ConfigMap>, share: ProgressShare, push: Arc<PushServer>) {
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
        apply_status(&api, name, "frontdesk.dev/v1alpha1", kind, status).await
    }

    async fn warn(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        reason: &str,
        note: &str,
    ) -> Result<(), String> {
        let reference = ObjectReference {
            api_version: Some("frontdesk.dev/v1alpha1".into()),
            kind: Some(kind.into()),
            namespace: Some(namespace.into()),
            name: Some(name.into()),
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
    ) -> Result<(), String> {
        use frontdesk_crds::gateway_api::{Gateway, GatewayClass};
        let (api, ar) = if kind == "GatewayClass" {
            let ar = ApiResource::erase::<GatewayClass>(&());
            (Api::<DynamicObject>::all_with(self.client.clone(), &ar), ar)
        } else {
            let ar = ApiResource::erase::<Gateway>(&());
            let api = Api::namespaced_with(self.client.clone(), namespace, &ar);
            (api, ar)
        };
        apply_status(&api, name, &ar.api_version, kind, status).await
    }
}

/// Writes `status` on an object's status subresource by server-side apply, as the
/// controller's field manager.
async fn apply_status(
    api: &Api<DynamicObject>,
    name: &str,
    api_version: &str,
    kind: &str,
    status: &impl serde::Serialize,
) -> Result<(), String> {
    let patch = serde_json::json!({
        "apiVersion": api_version,
        "kind": kind,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use kube::runtime::reflector;

    /// A reflector store holding `objects` (JSON) of the kind `ar`.
    fn store(ar: ApiResource, objects: Vec<serde_json::Value>) -> Vec<Store<DynamicObject>> {
        let mut writer = reflector::store::Writer::new(ar.clone());
        for o in objects {
            let mut d: DynamicObject = serde_json::from_value(o).unwrap();
            d.types = Some(kube::core::TypeMeta {
                api_version: ar.api_version.clone(),
                kind: ar.kind.clone(),
            });
            writer.apply_watcher_event(&watcher::Event::Apply(d));
        }
        vec![writer.as_reader()]
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_a_thousand_changes_compiles_a_handful_of_times_and_a_lone_change_at_once() {
        let changed = Arc::new(Notify::new());
        let compiles = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, n) = (changed.clone(), compiles.clone());
        tokio::spawn(async move {
            let mut last = None;
            loop {
                c.notified().await;
                throttle(&mut last).await;
                n.lock().unwrap().push(tokio::time::Instant::now());
            }
        });
        // 1,000 applies over 3 s, then quiet.
        for _ in 0..1000 {
            changed.notify_one();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let count = compiles.lock().unwrap().len();
        assert!(
            (4..=9).contains(&count),
            "{count} compiles for 1,000 changes"
        );
        // After a quiet spell, one change compiles without waiting.
        let before = tokio::time::Instant::now();
        changed.notify_one();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let all = compiles.lock().unwrap().clone();
        assert_eq!(all.len(), count + 1);
        assert!(
            all[count] - before < Duration::from_millis(1),
            "a lone change waited"
        );
    }

    #[test]
    fn an_unreadable_route_is_reported_and_the_others_still_compile() {
        let ar = ApiResource::erase::<Route>(&());
        let mut writer = reflector::store::Writer::new(ar.clone());
        let object = |name: &str, spec: serde_json::Value| {
            let mut o = DynamicObject::new(name, &ar).within("shop");
            o.metadata.generation = Some(2);
            o.data = serde_json::json!({"spec": spec});
            o
        };
        let good = object(
            "good",
            serde_json::json!({"rules": [{"backends": [{"url": "http://127.0.0.1:1"}]}]}),
        );
        let newer = object(
            "newer",
            serde_json::json!({"rules": [{"backends": [{"url": "http://127.0.0.1:1"}], "mirror": {}}]}),
        );
        writer.apply_watcher_event(&watcher::Event::InitApply(good));
        writer.apply_watcher_event(&watcher::Event::InitApply(newer));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let (routes, unreadable) = read_objects::<Route>("Route", &[writer.as_reader()]);
        assert_eq!(routes.len(), 1);
        assert_eq!(unreadable.len(), 1);
        let u = &unreadable[0].status;
        assert_eq!((u.kind.as_str(), u.namespace.as_str()), ("Route", "shop"));
        assert_eq!(
            (u.name.as_str(), u.generation, u.accepted()),
            ("newer", 2, false)
        );
        assert_eq!(u.diagnostics[0].field, "spec.rules[0].mirror");
    }

    #[test]
    fn a_rejected_or_unreadable_generation_leaves_the_accepted_one_serving() {
        let ar = ApiResource::erase::<Route>(&());
        let mut writer = reflector::store::Writer::new(ar.clone());
        let sources = Sources {
            routes: vec![writer.as_reader()],
            aggregates: vec![],
            policies: vec![],
            services: vec![],
            slices: vec![],
            gateway_api: watch::channel(None).1,
            namespaces: vec![],
        };
        let compile_sources = |sources: &Sources, accepted: &mut LastAccepted| {
            let (objects, unreadable) = sources.read();
            accepted.compile(objects, unreadable).0
        };
        let route = |generation: i64, rules: serde_json::Value| {
            let mut o = DynamicObject::new("r", &ar).within("shop");
            o.metadata.uid = Some("u1".into());
            o.metadata.generation = Some(generation);
            o.data = serde_json::json!({"spec": {"rules": rules}});
            watcher::Event::Apply(o)
        };
        let path = |p: &str| {
            serde_json::json!([{"matches": [{"path": {"value": p}}],
                                "backends": [{"url": "http://127.0.0.1:1"}]}])
        };
        let served = |out: &Output| {
            let routes = out.snapshot("default").routes;
            routes
                .iter()
                .flat_map(|r| &r.rules)
                .flat_map(|r| &r.matches)
                .map(|m| format!("{:?}", m.path))
                .collect::<String>()
        };
        let mut accepted = LastAccepted::default();

        writer.apply_watcher_event(&route(1, path("/v1")));
        let out = compile_sources(&sources, &mut accepted);
        assert!(served(&out).contains("\"/v1\""), "{}", served(&out));

        // Generation 2 is invalid: reported, and generation 1 keeps serving.
        writer.apply_watcher_event(&route(2, path("no-slash")));
        let out = compile_sources(&sources, &mut accepted);
        let status = out.status("Route", "shop", "r").unwrap();
        assert_eq!(
            (
                status.generation,
                status.accepted(),
                status.served_generation
            ),
            (2, false, Some(1))
        );
        assert!(served(&out).contains("\"/v1\""), "{}", served(&out));

        // Generation 3 cannot even be read: the same.
        let unknown =
            serde_json::json!([{"backends": [{"url": "http://127.0.0.1:1"}], "mirror": {}}]);
        writer.apply_watcher_event(&route(3, unknown));
        let out = compile_sources(&sources, &mut accepted);
        let status = out.status("Route", "shop", "r").unwrap();
        assert_eq!((status.generation, status.served_generation), (3, Some(1)));
        assert!(served(&out).contains("\"/v1\""), "{}", served(&out));

        // Fixed: generation 4 serves.
        writer.apply_watcher_event(&route(4, path("/v4")));
        let out = compile_sources(&sources, &mut accepted);
        assert!(out.status("Route", "shop", "r").unwrap().accepted());
        assert!(served(&out).contains("/v4") && !served(&out).contains("/v1"));
    }

    #[tokio::test(start_paused = true)]
    async fn each_replica_shares_its_progress_in_a_labelled_configmap() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "frontdesk");
        let push = Arc::new(PushServer {
            store: crate::store::SnapshotStore::default(),
            acks: crate::acks::AckTracker::default(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            gateway_api: Default::default(),
        });
        let share = ProgressShare {
            name: progress_name("fd-controller", "Ctl_0"),
            group: "fd-controller".into(),
            pod: Some(("ctl_0".into(), "uid-1".into())),
        };
        let task = tokio::spawn(share_progress(
            Api::namespaced(client, "frontdesk"),
            share,
            push,
        ));
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(
            request.uri().path(),
            "/api/v1/namespaces/frontdesk/configmaps/fd-controller-progress-ctl-0"
        );
        let query = request.uri().query().unwrap_or_default().to_string();
        assert!(
            query.contains("fieldManager=frontdesk-controller"),
            "{query}"
        );
        let body = request.into_body().collect_bytes().await.unwrap();
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            sent["metadata"]["labels"]["frontdesk.dev/controller-progress"],
            "fd-controller"
        );
        assert_eq!(sent["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        let progress: ReplicaProgress =
            serde_json::from_str(sent["data"]["progress.json"].as_str().unwrap()).unwrap();
        assert!(progress.gateways.is_empty());
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&sent).unwrap(),
        )));
        task.abort();
    }

    #[tokio::test]
    async fn a_policy_compiles_with_the_secret_its_watch_lists_and_a_stand_in_keeps_its_own() {
        use crate::secret_refs::WatchKey;
        use crate::watch::tests::{fake_secrets_api, secret};
        let mut users = secret("shop", "users", &[]);
        let htpasswd = b"dave:{SHA}6ZvKOGrLWBzWMhX7BDvf9vZP2BM=\n".to_vec();
        users.data = Some([("htpasswd".into(), k8s_openapi::ByteString(htpasswd))].into());
        let (client, seen) = fake_secrets_api(vec![users]);
        let mut secrets = RefWatchSet::new(client, Arc::new(Notify::new()));
        let (route_type, policy_type) = (api_resource("Route"), api_resource("Policy"));
        let mut routes = reflector::store::Writer::new(route_type.clone());
        let mut policies = reflector::store::Writer::new(policy_type.clone());
        let sources = Sources {
            routes: vec![routes.as_reader()],
            aggregates: vec![],
            policies: vec![policies.as_reader()],
            services: vec![],
            slices: vec![],
            gateway_api: watch::channel(None).1,
            namespaces: vec![],
        };
        let mut route = DynamicObject::new("orders", &route_type).within("shop");
        route.data = serde_json::json!({"spec": {"policies": ["auth"],
            "rules": [{"backends": [{"url": "http://127.0.0.1:1"}]}]}});
        routes.apply_watcher_event(&watcher::Event::Apply(route));
        let policy = |generation: i64, basic: serde_json::Value| {
            let mut o = DynamicObject::new("auth", &policy_type).within("shop");
            o.metadata.uid = Some("p1".into());
            o.metadata.generation = Some(generation);
            o.data = serde_json::json!({"spec": {"authentication": {"basic": basic}}});
            o
        };
        let users_served = |out: &Output| -> Vec<String> {
            let snapshot = out.snapshot("default");
            let basic = snapshot
                .policies
                .into_values()
                .flat_map(|p| p.authentication?.basic);
            basic.flat_map(|b| b.users).map(|u| u.user).collect()
        };
        let mut accepted = LastAccepted::default();

        // A new Policy: its Secret is listed before the compile that reads it.
        let first = policy(1, serde_json::json!({"secretRef": {"name": "users"}}));
        policies.apply_watcher_event(&watcher::Event::Apply(first));
        let (out, _) = compile_once(&sources, &mut secrets, &mut accepted, None).await;
        let status = out.status("Policy", "shop", "auth").unwrap();
        let resolved = status
            .condition(frontdesk_crds::status::RESOLVED_REFS)
            .unwrap();
        assert!(status.accepted() && resolved.status, "{status:?}");
        assert_eq!(users_served(&out), ["dave"]);

        // Generation 2 is rejected: generation 1 stands in, its Secret still watched and read.
        let rejected = serde_json::json!({"secretRef": {"name": "other"}, "realm": "\"x\""});
        let second = policy(2, rejected);
        policies.apply_watcher_event(&watcher::Event::Apply(second.clone()));
        let (out, _) = compile_once(&sources, &mut secrets, &mut accepted, None).await;
        let status = out.status("Policy", "shop", "auth").unwrap();
        assert_eq!(
            (status.accepted(), status.served_generation),
            (false, Some(1))
        );
        assert_eq!(users_served(&out), ["dave"]);
        assert_eq!(
            secrets.secrets.running(),
            [
                WatchKey::name("shop", "other"),
                WatchKey::name("shop", "users")
            ]
        );

        // Deleted: nothing references a Secret any more, no watch is left.
        policies.apply_watcher_event(&watcher::Event::Delete(second));
        compile_once(&sources, &mut secrets, &mut accepted, None).await;
        assert_eq!(secrets.secrets.running(), []);
        let seen = seen.lock().unwrap();
        assert!(!seen.is_empty());
        assert!(
            seen.iter()
                .all(|r| r.query["fieldSelector"].starts_with("metadata.name=")),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn a_gateways_certificate_secrets_are_watched_by_name_and_compiled_into_its_listener() {
        use crate::secret_refs::WatchKey;
        use crate::watch::tests::secret;
        use frontdesk_crds::certificate::testing;
        use frontdesk_crds::gateway_api::{Gateway, GatewayClass, ReferenceGrant};
        // A CA bundle's shape (the compiler checks the PEM shape; the proxy parses it).
        let pem =
            |label: &str| format!("-----BEGIN {label}-----\nMIIBfake\n-----END {label}-----\n");
        let tls = |namespace: &str, name: &str| {
            let mut s = secret(namespace, name, &[]);
            s.type_ = Some("kubernetes.io/tls".into());
            s.data = Some(
                [
                    (
                        "tls.crt".to_string(),
                        k8s_openapi::ByteString(testing::CERT.as_bytes().to_vec()),
                    ),
                    (
                        "tls.key".to_string(),
                        k8s_openapi::ByteString(testing::KEY.as_bytes().to_vec()),
                    ),
                ]
                .into(),
            );
            s
        };
        let ca = |name: &str| {
            let mut m = ConfigMap::default();
            m.metadata.namespace = Some("edge".into());
            m.metadata.name = Some(name.into());
            m.data = Some([("ca.crt".to_string(), pem("CERTIFICATE"))].into());
            m
        };
        let (client, seen) = crate::watch::tests::fake_objects_api(
            vec![tls("edge", "own-tls"), tls("certs", "shared-tls")],
            vec![ca("partners-ca"), ca("unrelated")],
        );
        let mut secrets = RefWatchSet::new(client, Arc::new(Notify::new()));
        let stores = GatewayApiStores {
            classes: store(
                ApiResource::erase::<GatewayClass>(&()),
                vec![serde_json::json!({"metadata": {"name": "frontdesk"},
                    "spec": {"controllerName": "frontdesk.dev/gateway-controller"}})],
            ),
            gateways: store(
                ApiResource::erase::<Gateway>(&()),
                vec![
                    serde_json::json!({"metadata": {"name": "public", "namespace": "edge", "generation": 1},
                    "spec": {"gatewayClassName": "frontdesk",
                        "tls": {"frontend": {"default": {"validation": {"caCertificateRefs": [
                            {"group": "", "kind": "ConfigMap", "name": "partners-ca"}]}}}},
                        "listeners": [{"name": "https", "port": 443,
                        "protocol": "HTTPS", "tls": {"certificateRefs": [
                            {"name": "own-tls"}, {"name": "shared-tls", "namespace": "certs"}]}}]}}),
                ],
            ),
            grants: store(
                ApiResource::erase::<ReferenceGrant>(&()),
                vec![
                    serde_json::json!({"metadata": {"name": "edge", "namespace": "certs"},
                    "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "edge"}],
                             "to": [{"group": "", "kind": "Secret"}]}}),
                ],
            ),
            namespaces: vec![],
        };
        let sources = Sources {
            routes: vec![],
            aggregates: vec![],
            policies: vec![],
            services: vec![],
            slices: vec![],
            gateway_api: watch::channel(Some(stores)).1,
            namespaces: vec![],
        };
        let (out, _) =
            compile_once(&sources, &mut secrets, &mut LastAccepted::default(), None).await;
        assert_eq!(
            secrets.secrets.running(),
            [
                WatchKey::name("certs", "shared-tls"),
                WatchKey::name("edge", "own-tls")
            ]
        );
        let status = out.status("Gateway", "edge", "public").unwrap();
        let listener = &status.listeners[0];
        assert!(listener.served, "{status:?}");
        assert!(
            listener
                .condition(frontdesk_crds::status::RESOLVED_REFS)
                .unwrap()
                .status
        );
        let served = out.snapshot("public").listeners;
        let certificates: Vec<&str> = served[0]
            .certificates
            .iter()
            .map(|c| c.source.as_str())
            .collect();
        assert_eq!(certificates, ["edge/own-tls", "certs/shared-tls"]);
        // The CA bundle its client validation names: watched by name, compiled in.
        assert_eq!(
            secrets.config_maps.running(),
            [WatchKey::name("edge", "partners-ca")]
        );
        let validation = served[0].client_validation.as_ref().expect("mutual TLS");
        let sources: Vec<&str> = validation
            .ca_certificates
            .iter()
            .map(|c| c.source.as_str())
            .collect();
        assert_eq!(sources, ["ConfigMap edge/partners-ca"]);
        assert!(
            seen.lock()
                .unwrap()
                .iter()
                .all(|r| r.query["fieldSelector"].starts_with("metadata.name=")),
        );
    }

    #[tokio::test]
    async fn statuses_are_written_by_server_side_apply_on_the_status_subresource() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let sink = KubeSink {
            client: client.clone(),
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: FIELD_MANAGER.into(),
                    instance: None,
                },
            ),
        };
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!(request.method(), http::Method::PATCH);
            assert_eq!(
                request.uri().path(),
                "/apis/frontdesk.dev/v1alpha1/namespaces/shop/routes/orders/status"
            );
            let query = request.uri().query().unwrap_or_default().to_string();
            assert!(
                query.contains("fieldManager=frontdesk-controller") && query.contains("force=true"),
                "{query}"
            );
            assert_eq!(
                request.headers()["content-type"],
                "application/apply-patch+yaml"
            );
            let body = request.into_body().collect_bytes().await.unwrap();
            let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(sent["status"]["observedGeneration"], 4);
            assert_eq!(sent["kind"], "Route");
            let route = serde_json::json!({
                "apiVersion": "frontdesk.dev/v1alpha1", "kind": "Route",
                "metadata": {"name": "orders", "namespace": "shop"},
                "spec": {"rules": []}, "status": sent["status"],
            });
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&route).unwrap(),
            )));
        });
        let status = RouteStatus {
            observed_generation: Some(4),
            conditions: vec![],
        };
        sink.apply_status("Route", "shop", "orders", &status)
            .await
            .unwrap();
        server.await.unwrap();
    }

    /// The compile output may be older than the stores: a Gateway that has just moved to
    /// another controller's class, or that changed generation, gets no status from us.
    #[test]
    fn statuses_go_only_to_objects_still_ours_at_the_generation_compiled() {
        use frontdesk_crds::gateway_api::{Gateway, GatewayClass};
        let gateway = |name: &str, class: &str, generation: i64| {
            serde_json::json!({"metadata": {"name": name, "namespace": "edge", "generation": generation},
                "spec": {"gatewayClassName": class, "listeners": []}})
        };
        let stores = GatewayApiStores {
            classes: store(
                ApiResource::erase::<GatewayClass>(&()),
                vec![
                    serde_json::json!({"metadata": {"name": "frontdesk", "generation": 1},
                        "spec": {"controllerName": "frontdesk.dev/gateway-controller"}}),
                    serde_json::json!({"metadata": {"name": "theirs", "generation": 1},
                        "spec": {"controllerName": "example.com/other"}}),
                ],
            ),
            gateways: store(
                ApiResource::erase::<Gateway>(&()),
                vec![
                    gateway("kept", "frontdesk", 2),
                    gateway("moved", "theirs", 2),
                    gateway("edited", "frontdesk", 3),
                ],
            ),
            grants: vec![],
            namespaces: vec![],
        };
        let status = |kind: &str, namespace: &str, name: &str| -> ObjectStatus {
            serde_json::from_value(serde_json::json!({"kind": kind, "namespace": namespace,
                "name": name, "generation": if kind == "Gateway" { 2 } else { 1 }, "conditions": []}))
            .unwrap()
        };
        let output = Output {
            snapshots: Default::default(),
            statuses: vec![
                status("GatewayClass", "", "frontdesk"),
                status("GatewayClass", "", "theirs"),
                status("Gateway", "edge", "kept"),
                status("Gateway", "edge", "moved"),
                status("Gateway", "edge", "edited"),
                status("Gateway", "edge", "deleted"),
            ],
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let wanted =
            gateway_api_statuses(&output, &stores, |_| Vec::new(), &Default::default(), &now);
        let names: Vec<(&str, &str)> = wanted
            .iter()
            .map(|w| (w.kind.as_str(), w.name.as_str()))
            .collect();
        assert_eq!(names, [("GatewayClass", "frontdesk"), ("Gateway", "kept")]);
    }

    /// What provisioning found reaches the statuses: a Gateway's Service address, and
    /// `Accepted=False, InvalidParameters` for a class or Gateway whose parameters cannot be
    /// used; a Gateway provisioning says nothing about keeps the compiler's verdict.
    #[test]
    fn provisioning_gives_gateways_their_address_and_refuses_invalid_parameters() {
        use frontdesk_crds::gateway_api::{Gateway, GatewayClass, GatewayStatusAddress};
        let gateway = |name: &str| {
            serde_json::json!({"metadata": {"name": name, "namespace": "edge", "generation": 1},
                "spec": {"gatewayClassName": "frontdesk", "listeners": []}})
        };
        let stores = GatewayApiStores {
            classes: store(
                ApiResource::erase::<GatewayClass>(&()),
                vec![
                    serde_json::json!({"metadata": {"name": "frontdesk", "generation": 1},
                    "spec": {"controllerName": "frontdesk.dev/gateway-controller"}}),
                ],
            ),
            gateways: store(
                ApiResource::erase::<Gateway>(&()),
                vec![gateway("public"), gateway("broken")],
            ),
            grants: vec![],
            namespaces: vec![],
        };
        let status = |kind: &str, namespace: &str, name: &str| -> ObjectStatus {
            serde_json::from_value(serde_json::json!({"kind": kind, "namespace": namespace,
                "name": name, "generation": 1, "conditions": [
                    {"type": "Accepted", "status": true, "reason": "Accepted", "message": ""}]}))
            .unwrap()
        };
        let output = Output {
            snapshots: Default::default(),
            statuses: vec![
                status("GatewayClass", "", "frontdesk"),
                status("Gateway", "edge", "public"),
                status("Gateway", "edge", "broken"),
            ],
        };
        let address = GatewayStatusAddress {
            type_: Some("IPAddress".into()),
            value: "203.0.113.9".into(),
        };
        let mut report = crate::provision::Report::default();
        report.addresses.insert(
            ("edge".to_string(), "public".to_string()),
            vec![address.clone()],
        );
        let message = "ConfigMap edge/p (parametersRef) not found";
        report.invalid.insert(
            (
                "Gateway".to_string(),
                "edge".to_string(),
                "broken".to_string(),
            ),
            message.to_string(),
        );
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let wanted = gateway_api_statuses(&output, &stores, |_| Vec::new(), &report, &now);
        let by = |name: &str| &wanted.iter().find(|w| w.name == name).unwrap().status;
        assert_eq!(by("public")["addresses"], serde_json::json!([address]));
        assert_eq!(by("public")["conditions"][0]["status"], "True");
        let broken = &by("broken")["conditions"][0];
        assert_eq!(
            (&broken["status"], &broken["reason"], &broken["message"]),
            (
                &serde_json::json!("False"),
                &serde_json::json!("InvalidParameters"),
                &serde_json::json!(message)
            )
        );
        assert!(by("broken").get("addresses").is_none());
        assert_eq!(by("frontdesk")["conditions"][0]["status"], "True");
    }
}
