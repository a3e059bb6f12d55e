//! One immutable runtime per snapshot, swapped atomically: the request path, built.
//!
//! Everything a request needs is precompiled here (route table, each rule's stage runtimes,
//! balancers with their endpoints' pools), so the request path does no parsing. Requests hold
//! an `Arc` of the runtime they started on and finish on it even when a new one is swapped in;
//! what outlives snapshots ([`Env`]: connection pools, rate-limit counters, key sets, metrics)
//! is shared by every runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use frontdesk_snapshot::{self as snap, Snapshot};
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
    pub routes: RouteTable<RuleRuntime>,
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
            routes,
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

    /// Installs a snapshot whose version was assigned by the controller, keeping that version
    /// even when it is lower than the running one (a restarted controller counts from 1 again).
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
