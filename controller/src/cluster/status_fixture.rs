//! Routes settled in a watch cache with their proxies' progress, for the status pass's tests
//! and its benchmark ([`time_status_passes`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frontdesk_crds::route::RouteStatus;
use frontdesk_crds::{Output, compile, manifests};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

use super::status_writer::{PassDone, PassInputs, StatusPass};
use crate::gateway_status::GatewayStatusSink;
use crate::progress::{GatewaySummary, ObjectSummary, ReplicaProgress};
use crate::status::StatusSink;

/// Records the statuses written.
#[derive(Default)]
pub(crate) struct Recorder {
    statuses: Mutex<Vec<(String, RouteStatus)>>,
}

impl StatusSink for Recorder {
    async fn apply_status(
        &self,
        _kind: &str,
        _namespace: &str,
        name: &str,
        status: &RouteStatus,
    ) -> Result<(), String> {
        (self.statuses.lock().unwrap()).push((name.to_string(), status.clone()));
        Ok(())
    }

    async fn warn(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: &str,
        _: &str,
    ) -> Result<(), String> {
        Ok(())
    }
}

impl GatewayStatusSink for Recorder {
    async fn apply_gateway_status(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &Value,
        _: Option<&str>,
    ) -> Result<(), String> {
        Ok(())
    }
}

impl Recorder {
    pub(crate) fn take(&self) -> Vec<(String, RouteStatus)> {
        std::mem::take(&mut *self.statuses.lock().unwrap())
    }
}

/// Route `i` as the API server serves it, with `status`.
pub(crate) fn route(i: usize, path: &str, status: Option<&RouteStatus>, version: u64) -> Value {
    let mut route = json!({
        "apiVersion": "frontdesk.dev/v1alpha1", "kind": "Route",
        "metadata": {"name": format!("r{i}"), "namespace": "shop", "uid": format!("uid-{i}"),
                     "generation": 1, "resourceVersion": version.to_string()},
        "spec": {"hosts": [format!("h{i}.example")],
                 "rules": [{"matches": [{"path": {"value": path}}],
                            "backends": [{"url": "http://127.0.0.1:1"}]}]},
    });
    if let Some(status) = status {
        route["status"] = serde_json::to_value(status).unwrap();
    }
    route
}

pub(crate) fn compiled(routes: &[Value]) -> Output {
    let objects: Vec<manifests::Object> = (routes.iter())
        .map(|r| manifests::ours("Route", r.clone()).unwrap().unwrap())
        .collect();
    compile(&manifests::resources(objects.iter()))
}

/// This replica's progress ConfigMap: `acked` proxies of 2 serve each route but `r0`, served
/// by `acked_r0`.
pub(crate) fn progress(acked: usize, acked_r0: usize, version: &str, count: usize) -> ConfigMap {
    let objects: BTreeMap<String, ObjectSummary> = (0..count)
        .map(|i| {
            let acked = if i == 0 { acked_r0 } else { acked };
            let summary = ObjectSummary {
                generation: 1,
                acked,
                since_version: 1,
            };
            (format!("Route/shop/r{i}"), summary)
        })
        .collect();
    let mut gateways = BTreeMap::new();
    gateways.insert(
        "default".to_string(),
        GatewaySummary {
            connected: 2,
            objects,
        },
    );
    let updated = k8s_openapi::jiff::Timestamp::now().as_second();
    let summary = ReplicaProgress { updated, gateways };
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "progress-a", "namespace": "frontdesk-system", "resourceVersion": version},
        "data": {"progress.json": serde_json::to_string(&summary).unwrap()},
    }))
    .unwrap()
}

/// Routes (and their progress ConfigMap) in watch caches.
pub(crate) struct Cache {
    routes: Writer<DynamicObject>,
    progress: Writer<ConfigMap>,
    objects: Vec<(&'static str, Vec<Store<DynamicObject>>)>,
    shared: Vec<Store<ConfigMap>>,
}

impl Cache {
    /// `routes` cached, with a summary of `count` Routes served by 2 proxies of 2.
    pub(crate) fn new(routes: &[Value], count: usize) -> Self {
        let routes_writer =
            Writer::<DynamicObject>::new(ApiResource::erase::<frontdesk_crds::Route>(&()));
        let progress_writer = Writer::<ConfigMap>::default();
        let mut cache = Cache {
            objects: vec![("Route", vec![routes_writer.as_reader()])],
            shared: vec![progress_writer.as_reader()],
            routes: routes_writer,
            progress: progress_writer,
        };
        for r in routes {
            cache.apply(r);
        }
        cache.set_progress(progress(2, 2, "1", count));
        cache
    }

    /// A watch event for `route`.
    pub(crate) fn apply(&mut self, route: &Value) {
        let object: DynamicObject = serde_json::from_value(route.clone()).unwrap();
        self.routes.apply_watcher_event(&Event::Apply(object));
    }

    pub(crate) fn set_progress(&mut self, configmap: ConfigMap) {
        self.progress.apply_watcher_event(&Event::Apply(configmap));
    }

    /// One pass over these caches with `output` (no Gateway API kinds, no provisioning).
    pub(crate) async fn pass(
        &self,
        pass: &mut StatusPass,
        sink: &Recorder,
        output: &Arc<Output>,
        full: bool,
    ) -> PassDone {
        let report = crate::provision::Report::default();
        let inputs = PassInputs {
            output: output.clone(),
            objects: &self.objects,
            gateway_api: None,
            provisioned: (&report, false),
            shared: &self.shared,
            full,
        };
        pass.run(sink, inputs).await
    }
}

/// Median times of status passes over `count` Routes whose statuses are settled (written and
/// come back through the watch): a full pass, a pass when nothing moved, a pass after one
/// object's status was wiped in the cache, and one after a compile changed one object's
/// status. For `make bench-controller` (`BENCH_ONLY=status`).
#[doc(hidden)]
pub async fn time_status_passes(count: usize) -> [Duration; 4] {
    let mut routes: Vec<Value> = (0..count).map(|i| route(i, "/", None, 1)).collect();
    let mut cache = Cache::new(&routes, count);
    let settled = Arc::new(compiled(&routes));
    let sink = Recorder::default();
    let mut pass = StatusPass::default();
    let run = async |cache: &Cache, pass: &mut StatusPass, output: &Arc<Output>, full: bool| {
        let started = Instant::now();
        cache.pass(pass, &sink, output, full).await;
        started.elapsed()
    };
    run(&cache, &mut pass, &settled, true).await;
    let written = sink.take();
    let mut statuses: BTreeMap<String, RouteStatus> = written.into_iter().collect();
    for (i, r) in routes.iter_mut().enumerate() {
        *r = route(i, "/", statuses.get(&format!("r{i}")), 2);
        cache.apply(r);
    }
    run(&cache, &mut pass, &settled, false).await;
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (mut full, mut quiet, mut wiped, mut compiled_one) = (vec![], vec![], vec![], vec![]);
    let mut edited = routes.clone();
    edited[1] = route(1, "no-slash", None, 3);
    let edited = Arc::new(compiled(&edited));
    for round in 0..5 {
        full.push(run(&cache, &mut pass, &settled, true).await);
        quiet.push(run(&cache, &mut pass, &settled, false).await);
        // One status wiped by someone, then written back and seen.
        let i = 2 + round;
        cache.apply(&route(i, "/", None, 10 + round as u64));
        wiped.push(run(&cache, &mut pass, &settled, false).await);
        let rewritten = sink.take().remove(0).1;
        statuses.insert(format!("r{i}"), rewritten);
        cache.apply(&route(
            i,
            "/",
            statuses.get(&format!("r{i}")),
            20 + round as u64,
        ));
        run(&cache, &mut pass, &settled, false).await;
        // A compile that changes one status, and back.
        compiled_one.push(run(&cache, &mut pass, &edited, false).await);
        run(&cache, &mut pass, &settled, false).await;
        sink.take();
    }
    [
        median(full),
        median(quiet),
        median(wiped),
        median(compiled_one),
    ]
}
