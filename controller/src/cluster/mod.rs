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
//!   get a half-known cluster, or failed it: a kind the API server refuses (404, 403) is
//!   reported and compiled without, its list retried with a growing backoff
//!   ([`crate::watch_health`]). Changes are throttled on the leading edge: a change after a
//!   quiet spell compiles at once (no added latency), and while changes keep coming they are
//!   gathered into one compile per [`MIN_INTERVAL`]: a burst of 1,000 applies compiles a
//!   handful of times, not 1,000.
//! - GatewayClass, Gateway and ReferenceGrant when the Gateway API CRDs are installed, found by
//!   API discovery at start and every minute until they are ([`crate::gateway_api`]).
//! - Every replica compiles and serves snapshots; only the holder of the `frontdesk-controller`
//!   Lease writes status (server-side apply, field manager `frontdesk-controller`) and Events:
//!   Routes, Policies and Aggregates ([`crate::status`]), GatewayClasses and Gateways of
//!   frontdesk's class ([`crate::gateway_status`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use frontdesk_crds::last_accepted::{Fallback, KEPT_KINDS, LastAccepted, Unreadable};
use frontdesk_crds::manifests::{Object, ObjectKey};
use frontdesk_crds::route::Route;
use frontdesk_crds::{Aggregate, Policy};
use frontdesk_crds::{ObjectStatus, Output};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};

use crate::gateway_api::GatewayApiStores;
use crate::push::PushServer;
use crate::secret_refs;
use crate::watch::{ConfigMapWatches, SecretWatches, Watching, all, typed_apis, watch_kind};
use crate::watch_health::WatchHealth;

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
    /// Turns true when the process stops: leadership ends and the Lease is released, then
    /// `released` is told ([`leadership`]).
    pub stop: watch::Receiver<bool>,
    pub released: Option<tokio::sync::oneshot::Sender<()>>,
    /// Serve the admission webhook ([`crate::webhook`]).
    pub webhook: Option<WebhookServer>,
}

/// Where and with what the admission webhook is served.
pub struct WebhookServer {
    pub listener: tokio::net::TcpListener,
    pub tls: Arc<frontdesk_wire::tls::Reloading<rustls::ServerConfig>>,
}

/// Runs the cluster source until the process ends, leading while this replica holds the
/// Lease.
pub async fn run(
    client: Client,
    mut options: ClusterOptions,
    push: Arc<PushServer>,
) -> anyhow::Result<()> {
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &options.lease_name)
        .with_namespace(&options.lease_namespace)
        .with_identity(&options.identity)
        .build()
        .await?;
    let released = options.released.take();
    let leader = leadership::relay(lease, options.stop.clone(), released).await;
    serve(client, options, push, leader).await;
    Ok(())
}

/// Watches, compiles and publishes until the process ends; writes status while `leader` is
/// true.
async fn serve(
    client: Client,
    mut options: ClusterOptions,
    push: Arc<PushServer>,
    leader: watch::Receiver<bool>,
) {
    let changed = Arc::new(Notify::new());
    let watching = Watching::new(changed.clone(), push.watch_health.clone());
    let gateway_api = crate::gateway_api::follow(
        client.clone(),
        options.namespaces.clone(),
        watching.clone(),
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
    let routes = watch_kind(route_apis, &watching, route_type, all_objects.clone());
    let (policy_apis, policy_type) = dynamic_apis("Policy");
    let policies = watch_kind(policy_apis, &watching, policy_type, all_objects.clone());
    let (aggregate_apis, aggregate_type) = dynamic_apis("Aggregate");
    let aggregates = watch_kind(
        aggregate_apis,
        &watching,
        aggregate_type,
        all_objects.clone(),
    );
    // Secrets, and the ConfigMaps Gateways name as CA bundles, are watched one reference at a
    // time, as the compile loop finds the references.
    let watches = RefWatchSet::new(client.clone(), watching.clone());
    let services = watch_kind(
        typed_apis::<Service>(&client, ns),
        &watching,
        (),
        all_objects.clone(),
    );
    // EndpointSlice events take the endpoint fast path; their lists starting or failing, and
    // Service events, are compiled.
    let endpoints = Arc::new(Notify::new());
    let slice_watching = Watching {
        events: Some(endpoints.clone()),
        ..watching.clone()
    };
    let slices = watch_kind(
        typed_apis::<EndpointSlice>(&client, ns),
        &slice_watching,
        (),
        all_objects,
    );
    let published = Arc::new(Notify::new());
    if let Some(server) = options.webhook.take() {
        let reviewer = crate::webhook::Reviewer {
            routes: routes.clone(),
            aggregates: aggregates.clone(),
            policies: policies.clone(),
            gateway_api: gateway_api.clone(),
            served: {
                let push = push.clone();
                Arc::new(move || push.store.output())
            },
            settings: frontdesk_crds::admission::Settings {
                shared_hosts: options.shared_hosts,
                urls: options.urls.clone(),
            },
        };
        tokio::spawn(crate::webhook::serve(
            server.listener,
            server.tls,
            Arc::new(reviewer),
            push.metrics.clone(),
        ));
    }
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
    // Watched for the status writer, not compiled: its changes wake nothing.
    let progress_watching = Watching {
        changed: Arc::new(Notify::new()),
        compiled: false,
        ..watching.clone()
    };
    let shared = watch_kind(
        vec![progress_api.clone()],
        &progress_watching,
        (),
        progress_only,
    );
    tokio::spawn(share_progress(progress_api.clone(), progress, push.clone()));
    let sources = Sources {
        routes,
        aggregates,
        policies,
        services,
        slices,
        gateway_api,
        namespaces: options.namespaces.clone(),
        health: push.watch_health.clone(),
    };
    let leader_for_state = leader.clone();
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
    // What stood in for rejected objects before this replica started serves again.
    let state_name = stand_ins::name(&options.lease_name);
    let restored = stand_ins::read(&progress_api, &state_name).await;
    for problem in accepted.restore(restored.as_deref().unwrap_or_default()) {
        tracing::warn!(%problem, "a version standing in before the restart cannot be read");
    }
    let (stand_ins_tx, stand_ins_rx) = watch::channel(restored.clone().unwrap_or_default());
    tokio::spawn(stand_ins::write(
        progress_api,
        state_name,
        options.lease_name.clone(),
        stand_ins_rx,
        leader_for_state,
        restored,
    ));
    let loop_ = CompileLoop {
        push,
        changed,
        endpoints,
        published,
        stand_ins: stand_ins_tx,
    };
    compile_loop(sources, watches, loop_, accepted).await;
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
    /// Whether each watch lists.
    health: Arc<WatchHealth>,
}

impl Sources {
    /// Until every watch has listed, or failed: a kind that cannot be listed is compiled
    /// without ([`crate::watch_health`]) rather than holding everything back.
    async fn wait_until_settled(&self) {
        self.health.settled(None).await;
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
            .for_each(|o| add(Object::Route(Arc::new(o))));
        policies
            .into_iter()
            .for_each(|o| add(Object::Policy(Arc::new(o))));
        aggregates
            .into_iter()
            .for_each(|o| add(Object::Aggregate(Arc::new(o))));
        all(&self.services)
            .into_iter()
            .for_each(|o| add(Object::Service(Arc::new(o))));
        all(&self.slices)
            .into_iter()
            .for_each(|o| add(Object::EndpointSlice(Arc::new(o))));
        let gateway_api = self.gateway_api.borrow().clone();
        gateway_api.iter().flat_map(|s| s.read()).for_each(add);
        (objects, unreadable)
    }
}

impl Sources {
    /// The endpoint fast path: publishes what the EndpointSlices now say about the published
    /// snapshots' Service backends, without a compile; `false` when a compile is needed.
    fn publish_endpoints(&self, push: &PushServer) -> bool {
        // Read in place: nothing is copied per event.
        let services: Vec<_> = self.services.iter().flat_map(Store::state).collect();
        let slices: Vec<_> = self.slices.iter().flat_map(Store::state).collect();
        let index = frontdesk_crds::compile::ServiceIndex::new(
            services.iter().map(|s| &**s),
            slices.iter().map(|s| &**s),
        );
        crate::publish_endpoints(push, |name| index.backend_endpoints(name))
    }
}

/// The watches made one reference at a time, as the compile loop finds the references.
struct RefWatchSet {
    secrets: SecretWatches,
    config_maps: ConfigMapWatches,
}

impl RefWatchSet {
    fn new(client: Client, watching: Watching) -> Self {
        RefWatchSet {
            secrets: SecretWatches::new(client.clone(), watching.clone()),
            config_maps: ConfigMapWatches::new(client, watching),
        }
    }
}

/// Where the compile loop's results go.
struct CompileLoop {
    push: Arc<PushServer>,
    /// Woken by every change that may matter.
    changed: Arc<Notify>,
    /// Woken by EndpointSlice changes: published without a compile where they can be.
    endpoints: Arc<Notify>,
    /// Told after each publish (the status loop).
    published: Arc<Notify>,
    /// The versions standing in for rejected objects, to persist ([`stand_ins`]).
    stand_ins: watch::Sender<String>,
}

async fn compile_loop(
    sources: Sources,
    mut watches: RefWatchSet,
    to: CompileLoop,
    // A rejected or unreadable generation leaves the last accepted one serving.
    mut accepted: LastAccepted,
) {
    let CompileLoop {
        push,
        changed,
        endpoints,
        published,
        stand_ins,
    } = to;
    sources.wait_until_settled().await;
    let failing = sources.health.failing();
    if failing.is_empty() {
        tracing::info!("initial lists complete; compiling");
    } else {
        let kinds: Vec<&str> = failing.iter().map(|(id, _)| id.kind.as_str()).collect();
        tracing::warn!(
            ?kinds,
            "initial lists complete but for kinds that cannot be listed; compiling without them"
        );
    }
    changed.notify_one();
    let mut last: Option<tokio::time::Instant> = None;
    // The first compile waits for every Secret list, as for every other list: nothing is
    // published half-known. Later ones wait a while, not for ever.
    let mut wait = None;
    loop {
        tokio::select! {
            biased;
            () = changed.notified() => {}
            () = endpoints.notified() => {
                if sources.publish_endpoints(&push) {
                    continue;
                }
            }
        }
        throttle(&mut last).await;
        let (output, took, fallbacks) =
            compile_once(&sources, &mut watches, &mut accepted, wait).await;
        wait = Some(SECRET_LIST_WAIT);
        // A kind of ours never listed (refused) was compiled as if empty: what stands in for
        // its objects is unknown now, so what was persisted stays.
        if sources.health.never_listed(&KEPT_KINDS) {
            continue;
        }
        let now_standing = accepted.stand_ins(&fallbacks);
        stand_ins.send_if_modified(|s| {
            let changed = *s != now_standing;
            *s = now_standing;
            changed
        });
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
) -> (Output, Duration, Vec<Fallback>) {
    let (mut objects, unreadable) = sources.read();
    // Backends' TLS references, of the objects and of the accepted versions standing in for
    // rejected ones.
    let (mut tls_secrets, mut tls_config_maps) =
        secret_refs::backend_tls(backends(objects.values().chain(accepted.kept())));
    let (policy_secrets, policy_config_maps) =
        secret_refs::policy_tls(policies(objects.values().chain(accepted.kept())));
    tls_secrets.extend(policy_secrets);
    tls_config_maps.extend(policy_config_maps);
    let (policy_secrets, policy_config_maps) =
        secret_refs::backend_tls_policies(objects.values().filter_map(|o| match o {
            Object::BackendTlsPolicy(p) => Some(&**p),
            _ => None,
        }));
    tls_secrets.extend(policy_secrets);
    tls_config_maps.extend(policy_config_maps);
    let mut ca_bundles = gateway_ca_config_maps(objects.values(), &sources.namespaces);
    ca_bundles.extend(tls_config_maps);
    watches.config_maps.follow(&ca_bundles, wait).await;
    for map in all(&watches.config_maps.stores()) {
        let map = Object::ConfigMap(Arc::new(map));
        objects.insert(map.key(), map);
    }
    let secrets = &mut watches.secrets;
    let mut current = secret_refs::wanted(policies(objects.values()));
    current.extend(gateway_certificates(objects.values(), &sources.namespaces));
    current.extend(tls_secrets);
    let with_kept = |accepted: &LastAccepted| {
        let mut wanted = current.clone();
        wanted.extend(secret_refs::wanted(policies(accepted.kept())));
        wanted.extend(secret_refs::backend_tls(backends(accepted.kept())).0);
        wanted.extend(secret_refs::policy_tls(policies(accepted.kept())).0);
        wanted
    };
    secrets.follow(&with_kept(accepted), wait).await;
    let started = Instant::now();
    for secret in all(&secrets.stores()) {
        let secret = Object::Secret(Arc::new(secret));
        objects.insert(secret.key(), secret);
    }
    let (mut output, fallbacks) = accepted.compile(objects, unreadable);
    crate::degraded::mark_degraded(&mut output.statuses, &sources.health.failing());
    let took = started.elapsed();
    secrets.follow(&with_kept(accepted), wait).await;
    (output, took, fallbacks)
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
/// The backend references of the Routes and Aggregates among `objects`, with their namespace.
fn backends<'a>(
    objects: impl Iterator<Item = &'a Object>,
) -> impl Iterator<Item = (&'a str, &'a frontdesk_crds::route::BackendRef)> {
    objects.flat_map(|o| {
        let (namespace, refs): (Option<&str>, Vec<&frontdesk_crds::route::BackendRef>) = match o {
            Object::Route(r) => (
                r.metadata.namespace.as_deref(),
                r.spec
                    .rules
                    .iter()
                    .flat_map(|rule| &rule.backends)
                    .collect(),
            ),
            Object::Aggregate(a) => (
                a.metadata.namespace.as_deref(),
                a.spec.calls.iter().map(|c| &c.backend).collect(),
            ),
            _ => (None, Vec::new()),
        };
        let namespace = namespace.unwrap_or("default");
        refs.into_iter().map(move |b| (namespace, b))
    })
}

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

pub mod leadership;
mod stand_ins;
mod status_fixture;
mod status_scope;
mod status_writer;
pub use status_fixture::time_status_passes;
pub use status_writer::KubeSink;
use status_writer::{
    GatewayApiInputs, PROGRESS_LABEL, ProgressShare, progress_name, share_progress, status_loop,
};
#[cfg(test)]
mod degrade_tests;
#[cfg(test)]
mod edit_tests;
#[cfg(test)]
mod fake_api;
#[cfg(test)]
mod status_pass_tests;
#[cfg(test)]
mod tests;
