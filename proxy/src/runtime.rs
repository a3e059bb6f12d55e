//! One immutable runtime per snapshot, swapped atomically: the request path, built.
//!
//! Everything a request needs is precompiled here (route table, each rule's stage runtimes,
//! balancers with their endpoints' pools), so the request path does no parsing. Requests hold
//! an `Arc` of the runtime they started on and finish on it even when a new one is swapped in;
//! what outlives snapshots ([`Env`]: connection pools, rate-limit counters, key sets, metrics)
//! is shared by every runtime.
//!
//! An endpoint delta (only some backends' endpoints changed) builds nothing: the next runtime
//! shares the running one's routes, whose endpoint sets move to the new endpoints in place
//! ([`RuntimeHandle::apply_endpoints`]). Requests still on the previous runtime see them too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use frontdesk_snapshot::{self as snap, EndpointChange, Snapshot};
use prometheus_client::metrics::histogram::Histogram;

use crate::access_log::AccessLog;
use crate::client_ip::TrustedProxies;
use crate::metrics::{Metrics, RouteId, RouteLabels, RouteMetrics};
use crate::stages::action::Action;
use crate::stages::authenticate::{AuthShared, Authenticate};
use crate::stages::authorize::Authorize;
use crate::stages::cache::{Cache, CacheShared};
use crate::stages::cors::Cors;
use crate::stages::rate_limit::{RateLimitRuntime, RateLimitShared};
use crate::stages::request_transforms::RequestTransforms;
use crate::stages::respond::Respond;
use crate::stages::response_transforms::ResponseTransforms;
use crate::stages::route::RouteTable;
use crate::upstream::Upstream;
use crate::upstream::backend_state::BackendSettings;
use crate::upstream::pool::PoolConfig;

/// The label used for requests no rule matched.
const NO_ROUTE: &str = "none";

/// What outlives snapshots, shared by every runtime of the process.
pub struct Env {
    pub upstream: Upstream,
    pub auth: AuthShared,
    pub limits: RateLimitShared,
    pub metrics: Arc<Metrics>,
    pub respond: Arc<Respond>,
    pub no_route: RouteId,
    /// Peers whose forwarding headers are believed (`--trusted-proxies`).
    pub trusted: TrustedProxies,
    /// The largest request body a route without its own limit accepts (`u64::MAX`: none).
    pub max_request_body: u64,
    /// The response cache's memory, shared by every cached rule (`--cache-max-bytes`).
    pub cache: Arc<CacheShared>,
}

/// The response cache's size when the proxy is not told (`--cache-max-bytes`).
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl Env {
    pub fn new(
        metrics: Arc<Metrics>,
        access_log: AccessLog,
        limits: RateLimitShared,
        pools: PoolConfig,
    ) -> Self {
        Env {
            auth: AuthShared::new(pools.refuse_internal),
            upstream: Upstream::new(pools),
            trusted: limits.trusted.clone(),
            limits,
            respond: Arc::new(Respond::new(metrics.clone(), access_log)),
            cache: Arc::new(CacheShared::new(DEFAULT_CACHE_BYTES, &metrics)),
            metrics,
            no_route: RouteId(Arc::from(NO_ROUTE)),
            max_request_body: u64::MAX,
        }
    }

    /// Metrics of its own, no access log, no Redis: for tests and tools.
    pub fn standalone() -> Self {
        Env::new(
            Arc::new(Metrics::new()),
            AccessLog::disabled(),
            RateLimitShared::default(),
            PoolConfig::default(),
        )
    }
}

/// The request path of one snapshot.
pub struct Runtime {
    pub snapshot: Arc<Snapshot>,
    /// Shared with the runtimes endpoint deltas make from this one.
    pub routes: Arc<RouteTable<RuleRuntime>>,
    pub env: Arc<Env>,
}

/// One rule's stages, in request order.
pub struct RuleRuntime {
    pub id: Arc<str>,
    /// `namespace/route` (the id without the rule): rate limit buckets are per Route.
    pub route: Box<str>,
    /// This rule's request metrics and upstream latency histogram, looked up once per
    /// snapshot instead of per request.
    pub metrics: Arc<RouteMetrics>,
    pub upstream_duration: Histogram,
    pub timeout: Duration,
    /// Policy stages, shared by the rules with the same effective policy.
    pub authenticate: Option<Arc<Authenticate>>,
    pub cors: Option<Arc<Cors>>,
    pub authorize: Option<Arc<Authorize>>,
    pub rate_limit: Option<Arc<RateLimitRuntime>>,
    pub cache: Option<Arc<Cache>>,
    /// Ends this rule's cache keys: its id and a digest of the whole rule, so a changed rule
    /// (another backend, another rewrite) never finds what it stored before (empty without a
    /// cache).
    pub cache_scope: Box<str>,
    /// The Policy's request body bound, when it sets one (`u64::MAX`: none).
    pub max_request_body: Option<u64>,
    pub request_transforms: RequestTransforms,
    pub action: Action,
    pub response_transforms: ResponseTransforms,
    /// The rule forwards, redirects or answers directly, and no stage of it reads or edits the
    /// request's fields but CORS (which reads either form) and the forwarding headers: an
    /// HTTP/1 client's can go to the backend as sent ([`crate::http1::raw_fields`]).
    pub relays_request_fields: bool,
    /// A backend of the rule speaks HTTP/2: gRPC-Web requests are translated for it.
    pub speaks_grpc: bool,
    /// REST/JSON to gRPC, when the rule transcodes.
    pub transcode: Option<crate::stages::action::transcode::Transcoder>,
}

/// A policy's stages, built once per snapshot however many rules share it.
#[derive(Clone, Default)]
struct PolicyStages {
    cors: Option<Arc<Cors>>,
    authenticate: Option<Arc<Authenticate>>,
    authorize: Option<Arc<Authorize>>,
    rate_limit: Option<Arc<RateLimitRuntime>>,
    cache: Option<Arc<Cache>>,
    max_request_body: Option<u64>,
    backends: BackendSettings,
}

impl Runtime {
    /// An empty runtime that answers 404 to everything, before any configuration arrives.
    pub fn empty(gateway: &str, env: Arc<Env>) -> Self {
        let snapshot = Snapshot {
            gateway: gateway.to_string(),
            ..Default::default()
        };
        Runtime::build(snapshot, env).expect("an empty snapshot is valid")
    }

    /// Validates the snapshot and builds everything the request path needs.
    pub fn build(snapshot: Snapshot, env: Arc<Env>) -> Result<Self, String> {
        snapshot.validate().map_err(|e| e.to_string())?;
        let mut policies = HashMap::new();
        for (key, p) in &snapshot.policies {
            let stages =
                policy_stages(key, p, &env).map_err(|e| format!("policies[{key:?}]: {e}"))?;
            policies.insert(key.as_str(), stages);
        }
        let routes = RouteTable::build(&snapshot, |_, rule| {
            let policy = rule
                .policy
                .as_deref()
                .and_then(|k| policies.get(k).cloned())
                .unwrap_or_default();
            RuleRuntime::build(rule, &env, policy)
        })
        .map_err(|e| e.to_string())?;
        Ok(Runtime {
            snapshot: Arc::new(snapshot),
            routes: Arc::new(routes),
            env,
        })
    }

    pub fn version(&self) -> u64 {
        self.snapshot.version
    }
}

fn policy_stages(key: &str, p: &snap::Policy, env: &Env) -> Result<PolicyStages, String> {
    Ok(PolicyStages {
        cors: p.cors.as_ref().map(Cors::build).transpose()?.map(Arc::new),
        authenticate: Authenticate::build(key, p, &env.auth, &env.metrics)?.map(Arc::new),
        authorize: Authorize::build(key, p, &env.metrics).map(Arc::new),
        rate_limit: p
            .rate_limit
            .as_ref()
            .map(|r| RateLimitRuntime::build(key, r, &env.limits, &env.metrics))
            .transpose()?
            .map(Arc::new),
        cache: p
            .cache
            .as_ref()
            .map(|c| Cache::build(c, &env.cache))
            .transpose()?
            .map(Arc::new),
        max_request_body: p
            .limits
            .as_ref()
            .and_then(|l| l.max_request_body_bytes)
            .map(|n| if n == 0 { u64::MAX } else { n }),
        backends: BackendSettings::from_policy(p),
    })
}

impl RuleRuntime {
    fn build(rule: &snap::Rule, env: &Env, policy: PolicyStages) -> Result<Self, String> {
        let id: Arc<str> = Arc::from(rule.id.as_str());
        let labels = RouteLabels {
            route: RouteId(id.clone()),
        };
        let metrics = &env.metrics;
        let request_transforms = RequestTransforms::build(rule)?;
        let action = Action::build(&id, rule, &policy.backends, metrics, &env.upstream)?;
        // Authorization reads only who authenticated, and the method; CORS reads either form.
        let relays_request_fields = policy.authenticate.is_none()
            && policy.rate_limit.is_none()
            && policy.cache.is_none()
            && !request_transforms.edits_fields()
            && action.relays_fields();
        let speaks_grpc = action.speaks_h2();
        Ok(RuleRuntime {
            route: id.rsplit_once('/').map_or(&*id, |(route, _)| route).into(),
            metrics: Arc::new(RouteMetrics::new(labels.route.clone(), metrics)),
            upstream_duration: metrics.upstream_duration.get_or_create(&labels).clone(),
            timeout: Duration::from_millis(rule.timeout_ms),
            cors: policy.cors,
            authenticate: policy.authenticate,
            authorize: policy.authorize,
            rate_limit: policy.rate_limit,
            cache_scope: match &policy.cache {
                Some(_) => crate::stages::cache::rule_scope(&id, rule).into(),
                None => "".into(),
            },
            cache: policy.cache,
            max_request_body: policy.max_request_body,
            request_transforms,
            action,
            response_transforms: ResponseTransforms::build(rule)?,
            relays_request_fields,
            speaks_grpc,
            transcode: rule
                .grpc_transcode
                .as_ref()
                .map(crate::stages::action::transcode::Transcoder::build)
                .transpose()?,
            id,
        })
    }
}

/// The single swap point between configuration sources and the request path.
#[derive(Clone)]
pub struct RuntimeHandle {
    current: Arc<ArcSwap<Runtime>>,
    env: Arc<Env>,
}

impl RuntimeHandle {
    pub fn new(runtime: Runtime) -> Self {
        RuntimeHandle {
            env: runtime.env.clone(),
            current: Arc::new(ArcSwap::from_pointee(runtime)),
        }
    }

    pub fn load(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Builds and installs `snapshot` unless its content equals the running one. Returns the
    /// version now serving, or why the snapshot was rejected (the old one keeps serving).
    pub fn apply(&self, mut snapshot: Snapshot) -> Result<Applied, String> {
        let current = self.load();
        if current.snapshot.same_content(&snapshot) && current.version() > 0 {
            return Ok(Applied::Unchanged(current.version()));
        }
        if snapshot.version <= current.version() {
            snapshot.version = current.version() + 1;
        }
        self.install(snapshot)
    }

    /// Installs a snapshot whose version was assigned by the controller (its content id, in no
    /// order), keeping that version.
    pub fn apply_exact(&self, snapshot: Snapshot) -> Result<Applied, String> {
        self.apply_exact_then(snapshot, |_| {})
    }

    /// [`Self::apply_exact`], running `before_swap` on a snapshot that built, before it
    /// serves: what it does (persisting the snapshot, say) is done by the time anyone can see
    /// the new version served.
    pub fn apply_exact_then(
        &self,
        snapshot: Snapshot,
        before_swap: impl FnOnce(&Snapshot),
    ) -> Result<Applied, String> {
        let current = self.load();
        if current.version() == snapshot.version && current.snapshot.same_content(&snapshot) {
            return Ok(Applied::Unchanged(snapshot.version));
        }
        let runtime = Runtime::build(snapshot, self.env.clone())?;
        before_swap(&runtime.snapshot);
        Ok(self.swap(runtime))
    }

    /// Applies an endpoint delta: version `version` of `gateway` is version `base` with only
    /// `changes`' backends' endpoints changed. Nothing is built: every endpoint set of each
    /// changed backend (in every rule, mirror and Aggregate call) moves to its new endpoints in
    /// place, and a runtime with the patched snapshot and the running routes is swapped in.
    /// `before_swap` runs on the patched snapshot before anything changes (persisting it, say).
    ///
    /// Refused, changing nothing, when the proxy serves another gateway or another version
    /// than `base` (the controller then sends the whole snapshot), when a change names no
    /// backend, or when an endpoint is not a `host:port` authority.
    pub fn apply_endpoints(
        &self,
        gateway: &str,
        base: u64,
        version: u64,
        changes: &[EndpointChange],
        before_swap: impl FnOnce(&Snapshot),
    ) -> Result<Applied, String> {
        let current = self.load();
        if current.snapshot.gateway != gateway {
            return Err(format!(
                "the endpoint change is for gateway {gateway:?}, this proxy serves {:?}",
                current.snapshot.gateway
            ));
        }
        if current.version() != base {
            return Err(format!(
                "this proxy serves version {}, not the delta's base {base}: it needs the whole \
                 snapshot of version {version}",
                current.version()
            ));
        }
        let patched = current.snapshot.with_endpoints(version, changes)?;
        // Every set's new endpoints are made before any is stored: a change that cannot be
        // made stores nothing. Invalid backends have no endpoints, whatever a change says.
        let by_name: HashMap<&str, &[String]> = changes
            .iter()
            .map(|c| (c.backend.as_str(), c.endpoints.as_slice()))
            .collect();
        let mut prepared = Vec::new();
        let mut failed = None;
        for rule in current.routes.targets() {
            rule.action.endpoint_sets(&mut |set| {
                let Some(endpoints) = by_name.get(set.name.as_str()) else {
                    return;
                };
                if set.invalid || failed.is_some() {
                    return;
                }
                match set.prepare(endpoints, &self.env.upstream) {
                    Ok(members) => prepared.push((set, members)),
                    Err(e) => failed = Some(format!("{} ({}): {e}", rule.id, set.name)),
                }
            });
        }
        if let Some(e) = failed {
            return Err(e);
        }
        before_swap(&patched);
        for (set, members) in prepared {
            set.store(members);
        }
        Ok(self.swap(Runtime {
            snapshot: Arc::new(patched),
            routes: current.routes.clone(),
            env: current.env.clone(),
        }))
    }

    /// Builds the runtime and swaps it in: the single swap point.
    fn install(&self, snapshot: Snapshot) -> Result<Applied, String> {
        let runtime = Runtime::build(snapshot, self.env.clone())?;
        Ok(self.swap(runtime))
    }

    fn swap(&self, runtime: Runtime) -> Applied {
        let version = runtime.version();
        self.current.store(Arc::new(runtime));
        self.env
            .metrics
            .config_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        Applied::Swapped(version)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Swapped(u64),
    Unchanged(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "service/ns/web:80";

    /// Version 3 of gateway `g`: `WEB` forwarded to and mirrored to by one rule and called by
    /// an Aggregate, another backend forwarded to by another rule.
    fn snapshot() -> Snapshot {
        fn backend(name: &str, endpoint: &str) -> serde_json::Value {
            serde_json::json!({"name": name, "weight": 1, "endpoints": [endpoint]})
        }
        fn matches(rank: u32, prefix: &str) -> serde_json::Value {
            serde_json::json!([{"rank": rank, "path": {"type": "prefix", "value": prefix}}])
        }
        serde_json::from_value(serde_json::json!({
            "gateway": "g",
            "version": 3,
            "routes": [{"namespace": "ns", "name": "r", "rules": [
                {
                    "id": "ns/r/0", "matches": matches(1, "/web"), "timeoutMs": 1000,
                    "action": {"type": "forward", "backends": [backend(WEB, "10.0.0.1:80")]},
                    "mirrors": [{"backend": backend(WEB, "10.0.0.1:80"), "sharePpm": 1_000_000}]
                },
                {
                    "id": "ns/r/1", "matches": matches(2, "/other"), "timeoutMs": 1000,
                    "action": {"type": "forward", "backends": [backend("service/ns/other:80", "10.0.0.9:80")]}
                },
                {
                    "id": "ns/r/2", "matches": matches(3, "/all"), "timeoutMs": 1000,
                    "action": {"type": "aggregate", "maxCallBytes": 1024, "merge": "Nested", "calls": [{
                        "name": "web", "key": "web", "target": [], "required": true,
                        "timeoutMs": 100, "backend": backend(WEB, "10.0.0.1:80")
                    }]}
                }
            ]}]
        }))
        .unwrap()
    }

    /// The endpoints of each set named `name` in `rt`'s routes, in the routes' order.
    fn endpoints(rt: &Runtime, name: &str) -> Vec<Vec<String>> {
        let mut found: Vec<Vec<String>> = Vec::new();
        for rule in rt.routes.targets() {
            rule.action.endpoint_sets(&mut |set| {
                if set.name == name {
                    let members = set.members();
                    found.push(
                        members
                            .endpoints
                            .iter()
                            .map(|e| e.authority.to_string())
                            .collect(),
                    );
                }
            });
        }
        found
    }

    fn change(backend: &str, endpoints: &[&str]) -> Vec<EndpointChange> {
        vec![EndpointChange {
            backend: backend.into(),
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        }]
    }

    #[tokio::test]
    async fn an_endpoint_delta_moves_the_running_routes_endpoints_in_place() {
        let env = Arc::new(Env::standalone());
        let handle = RuntimeHandle::new(Runtime::build(snapshot(), env).unwrap());
        let before = handle.load();
        let both = ["10.0.0.1:80", "10.0.0.2:80"];
        let mut persisted = None;
        let applied = handle
            .apply_endpoints("g", 3, 4, &change(WEB, &both), |s| {
                persisted = Some(s.version)
            })
            .unwrap();
        assert_eq!(applied, Applied::Swapped(4));
        assert_eq!(
            persisted,
            Some(4),
            "the patched snapshot is persisted first"
        );
        let after = handle.load();
        assert_eq!(after.version(), 4);
        assert!(
            Arc::ptr_eq(&before.routes, &after.routes),
            "nothing rebuilt"
        );
        assert!(
            after
                .snapshot
                .backends()
                .filter(|b| b.name == WEB)
                .all(|b| b.endpoints == both)
        );
        // The forward's, the mirror's and the call's sets all moved; the other backend's not.
        let moved: Vec<String> = both.iter().map(|e| e.to_string()).collect();
        assert_eq!(endpoints(&after, WEB), vec![moved.clone(); 3]);
        assert_eq!(
            endpoints(&after, "service/ns/other:80"),
            vec![vec!["10.0.0.9:80".to_string()]]
        );
        // Requests still on the previous runtime see the new endpoints too.
        assert_eq!(before.version(), 3);
        assert_eq!(endpoints(&before, WEB), vec![moved.clone(); 3]);

        // On another version, for another gateway, or naming no backend: refused, and nothing
        // changes (nothing persisted either).
        let e = handle
            .apply_endpoints("g", 3, 5, &change(WEB, &["10.0.0.3:80"]), |_| {
                panic!("persisted")
            })
            .unwrap_err();
        assert!(
            e.contains("serves version 4, not the delta's base 3"),
            "{e}"
        );
        let e = handle
            .apply_endpoints("h", 4, 5, &change(WEB, &["10.0.0.3:80"]), |_| {
                panic!("persisted")
            })
            .unwrap_err();
        assert!(e.contains("gateway"), "{e}");
        let e = handle
            .apply_endpoints("g", 4, 5, &change("service/ns/nope:80", &[]), |_| {
                panic!("persisted")
            })
            .unwrap_err();
        assert!(e.contains("names no backend"), "{e}");
        assert_eq!(handle.load().version(), 4);
        assert_eq!(endpoints(&handle.load(), WEB), vec![moved; 3]);
    }
}
