//! One immutable runtime per snapshot, swapped atomically.
//!
//! Everything a request needs is precompiled here (route table, header edits, balancers), so
//! the request path does no parsing. Requests hold an `Arc` of the runtime they started on and
//! finish on it even when a new one is swapped in; connections, the upstream connection pool
//! and metrics live outside the runtime and survive swaps.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use frontdesk_snapshot::{self as snap, Action, Snapshot};
use http::{HeaderValue, StatusCode};

use prometheus_client::metrics::histogram::Histogram;

use crate::auth::{AuthShared, PolicyRuntime};
use crate::balancer::{Balancer, EndpointSet};
use crate::metrics::{Metrics, RouteId, RouteLabels};
use crate::ratelimit::RateLimitShared;
use crate::route_table::RouteTable;
use crate::transforms::HeaderEdits;

/// State that outlives snapshots: JWKS fetchers and HTTP client, rate limit counters and Redis.
#[derive(Default)]
pub struct Shared {
    pub auth: AuthShared,
    pub limits: RateLimitShared,
}

pub struct Runtime {
    pub snapshot: Arc<Snapshot>,
    pub table: RouteTable<RuleRuntime>,
}

/// The runtime of one rule.
pub struct RuleRuntime {
    pub id: Arc<str>,
    /// `namespace/route` (the id without the rule): rate limit buckets are per Route.
    route: Box<str>,
    /// This rule's latency histograms, looked up once per snapshot instead of per request.
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    pub timeout: Duration,
    pub rewrite_path: Option<snap::PathRewrite>,
    pub rewrite_host: Option<HeaderValue>,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    /// Authentication and authorization, shared by the rules with the same effective policy.
    pub policy: Option<Arc<PolicyRuntime>>,
    pub action: ActionRuntime,
}

pub enum ActionRuntime {
    Forward(Balancer),
    Redirect {
        redirect: snap::Redirect,
        status: StatusCode,
    },
    Direct {
        status: StatusCode,
        body: Bytes,
        content_type: Option<HeaderValue>,
    },
    Aggregate(crate::aggregate::AggregateRuntime),
}

impl Runtime {
    /// An empty runtime that answers 404 to everything, before any configuration arrives.
    pub fn empty(gateway: &str) -> Self {
        let snapshot = Snapshot {
            gateway: gateway.to_string(),
            ..Default::default()
        };
        Runtime::build(snapshot, &Metrics::new(), &Shared::default())
            .expect("an empty snapshot is valid")
    }

    /// Validates the snapshot and builds everything the request path needs.
    pub fn build(snapshot: Snapshot, metrics: &Metrics, shared: &Shared) -> Result<Self, String> {
        snapshot.validate().map_err(|e| e.to_string())?;
        let mut policies = std::collections::HashMap::new();
        for (key, p) in &snapshot.policies {
            let runtime = PolicyRuntime::build(key, p, shared, metrics)
                .map_err(|e| format!("policies[{key:?}]: {e}"))?;
            policies.insert(key.as_str(), Arc::new(runtime));
        }
        let table = RouteTable::build(&snapshot, |_, rule| {
            let policy = rule
                .policy
                .as_deref()
                .and_then(|k| policies.get(k).cloned());
            RuleRuntime::build(rule, metrics, policy)
        })
        .map_err(|e| e.to_string())?;
        Ok(Runtime {
            snapshot: Arc::new(snapshot),
            table,
        })
    }

    pub fn version(&self) -> u64 {
        self.snapshot.version
    }
}

impl RuleRuntime {
    /// `namespace/route` of the rule's Route (its id is `namespace/route/rule`).
    pub fn route(&self) -> &str {
        &self.route
    }

    fn build(
        rule: &snap::Rule,
        metrics: &Metrics,
        policy: Option<Arc<PolicyRuntime>>,
    ) -> Result<Self, String> {
        let id: Arc<str> = Arc::from(rule.id.as_str());
        let labels = RouteLabels {
            route: RouteId(id.clone()),
        };
        let action = match &rule.action {
            Action::Forward { backends } => ActionRuntime::Forward(Balancer::new(
                backends
                    .iter()
                    .map(|b| Ok((EndpointSet::new(b.name.clone(), &b.endpoints)?, b.weight)))
                    .collect::<Result<_, String>>()?,
            )),
            Action::Redirect(r) => ActionRuntime::Redirect {
                status: StatusCode::from_u16(r.status).map_err(|e| e.to_string())?,
                redirect: r.clone(),
            },
            Action::Aggregate(a) => ActionRuntime::Aggregate(
                crate::aggregate::AggregateRuntime::build(&id, a, metrics)?,
            ),
            Action::DirectResponse(d) => ActionRuntime::Direct {
                status: StatusCode::from_u16(d.status).map_err(|e| e.to_string())?,
                body: Bytes::from(d.body.clone()),
                content_type: d
                    .content_type
                    .as_deref()
                    .map(HeaderValue::from_str)
                    .transpose()
                    .map_err(|e| e.to_string())?,
            },
        };
        let rewrite = rule.rewrite.as_ref();
        Ok(RuleRuntime {
            route: id.rsplit_once('/').map_or(&*id, |(route, _)| route).into(),
            request_duration: metrics.request_duration.get_or_create(&labels).clone(),
            upstream_duration: metrics.upstream_duration.get_or_create(&labels).clone(),
            id,
            timeout: Duration::from_millis(rule.timeout_ms),
            rewrite_path: rewrite.and_then(|r| r.path.clone()),
            rewrite_host: rewrite
                .and_then(|r| r.host.as_deref())
                .map(HeaderValue::from_str)
                .transpose()
                .map_err(|e| e.to_string())?,
            request_headers: HeaderEdits::new(&rule.request_headers)?,
            response_headers: HeaderEdits::new(&rule.response_headers)?,
            policy,
            action,
        })
    }
}

/// The single swap point between configuration sources and the request path.
#[derive(Clone)]
pub struct RuntimeHandle {
    current: Arc<ArcSwap<Runtime>>,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
}

impl RuntimeHandle {
    pub fn new(runtime: Runtime, metrics: Arc<Metrics>, shared: Arc<Shared>) -> Self {
        RuntimeHandle {
            current: Arc::new(ArcSwap::from_pointee(runtime)),
            metrics,
            shared,
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
        let current = self.load();
        if current.version() == snapshot.version && current.snapshot.same_content(&snapshot) {
            return Ok(Applied::Unchanged(snapshot.version));
        }
        self.install(snapshot)
    }

    /// Builds the runtime and swaps it in: the single swap point.
    fn install(&self, snapshot: Snapshot) -> Result<Applied, String> {
        let runtime = Runtime::build(snapshot, &self.metrics, &self.shared)?;
        let version = runtime.version();
        self.current.store(Arc::new(runtime));
        self.metrics
            .config_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        Ok(Applied::Swapped(version))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Swapped(u64),
    Unchanged(u64),
}
