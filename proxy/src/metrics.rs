//! Prometheus metrics of the data plane, served on the admin listener's `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A rule id as a label value, shared with the runtime without copying.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteId(pub Arc<str>);

impl EncodeLabelValue for RouteId {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: RouteId,
    pub status: u16,
}

/// One rule's request metrics, found once per snapshot: its latency histogram, and its
/// counters by status, kept as they are first used so that counting an answer hashes no
/// labels (most rules see a handful of statuses).
pub struct RouteMetrics {
    route: RouteId,
    pub duration: Histogram,
    statuses: parking_lot::RwLock<Vec<(u16, Counter)>>,
}

impl RouteMetrics {
    /// Statuses kept per rule; more are counted through the family.
    const KEPT: usize = 16;

    pub fn new(route: RouteId, metrics: &Metrics) -> Self {
        let labels = RouteLabels {
            route: route.clone(),
        };
        RouteMetrics {
            duration: metrics.request_duration.get_or_create(&labels).clone(),
            route,
            statuses: parking_lot::RwLock::new(Vec::new()),
        }
    }

    /// Counts one answer in `requests{route, status}`.
    pub fn count(&self, requests: &Family<RequestLabels, Counter>, status: u16) {
        if let Some((_, c)) = self.statuses.read().iter().find(|(s, _)| *s == status) {
            c.inc();
            return;
        }
        let counter = requests
            .get_or_create(&RequestLabels {
                route: self.route.clone(),
                status,
            })
            .clone();
        counter.inc();
        let mut kept = self.statuses.write();
        if kept.len() < Self::KEPT && !kept.iter().any(|(s, _)| *s == status) {
            kept.push((status, counter));
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    pub route: RouteId,
    /// connect-failure, reset, timeout or status.
    pub reason: &'static str,
}

/// One backend of one rule.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub route: RouteId,
    pub backend: String,
}

/// One backend of one rule, and how a health check went: `passed` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthCheckLabels {
    pub route: RouteId,
    pub backend: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpgradeEndLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLimitLabels {
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: RouteId,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LocalReplyLabels {
    pub route: RouteId,
    /// The problem's `type` slug (`no-endpoints`, `upstream-timeout`...).
    pub r#type: &'static str,
}

/// How an authentication/authorization check ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum AuthOutcome {
    allowed,
    unauthenticated,
    forbidden,
    error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    pub policy: RouteId,
    pub outcome: AuthOutcome,
}

/// How a rate limit check ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum LimitDecision {
    allowed,
    limited,
    /// Redis could not decide; onStoreFailure Allow let the request through.
    store_failed_open,
    /// Redis could not decide; onStoreFailure Deny refused the request.
    store_failed_closed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub policy: RouteId,
    pub decision: LimitDecision,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CallOutcome {
    ok,
    failed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub aggregate: RouteId,
    pub call: RouteId,
    pub outcome: CallOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AggregateCallLabels {
    pub aggregate: RouteId,
    pub call: RouteId,
}

/// What the response cache did for a request: hit, miss, stale (served stale), revalidated
/// (a backend's 304 freshened it), coalesced (waited for another request of its key).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~33 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 17,
    ))
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub local_replies: Family<LocalReplyLabels, Counter>,
    pub request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub upstream_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub upstream_retries: Family<RetryLabels, Counter>,
    pub upstream_retry_budget_exhausted: Family<RouteLabels, Counter>,
    /// Requests a backend's circuit breaker refused (503 `circuit-open`).
    pub upstream_overflow: Family<BackendLabels, Counter>,
    pub upstream_ejections: Family<BackendLabels, Counter>,
    pub upstream_ejected_endpoints: Family<BackendLabels, Gauge>,
    pub upstream_health_checks: Family<HealthCheckLabels, Counter>,
    pub upstream_unhealthy_endpoints: Family<BackendLabels, Gauge>,
    /// 1 while every endpoint of a backend fails its health checks (and all get traffic).
    pub upstream_panic: Family<BackendLabels, Gauge>,
    pub active_connections: Gauge,
    /// Connections relayed after switching protocols (WebSocket), open now.
    pub upgraded_connections: Gauge,
    /// Relayed connections that ended, by how ([`crate::tunnel::Ended`]).
    pub upgraded_connection_ends: Family<UpgradeEndLabels, Counter>,
    /// A client connection let go by a bound: `connections-per-client`, `memory`,
    /// `http2-reset-flood`, `header-read-timeout`, `send-timeout`, `http2-idle-timeout` (body-too-large and
    /// body-timeout answers are local replies instead).
    pub connection_limits: Family<ConnectionLimitLabels, Counter>,
    /// 1 while memory is past `--max-memory` ([`crate::overload`]).
    pub overloaded: Gauge,
    pub config_version: Gauge,
    pub config_reloads: Counter,
    pub config_reload_failures: Counter,
    pub access_log_dropped: Counter,
    pub controller_connected: Gauge,
    pub auth_decisions: Family<AuthLabels, Counter>,
    pub limit_decisions: Family<LimitLabels, Counter>,
    pub redis_duration: Histogram,
    pub aggregate_calls: Family<CallLabels, Counter>,
    pub aggregate_call_duration: Family<AggregateCallLabels, Histogram, fn() -> Histogram>,
    pub cache_requests: Family<CacheLabels, Counter>,
    pub cache_bytes: Gauge,
    pub cache_keys: Gauge,
    pub cache_evictions: Counter,
}

impl Metrics {
    /// Counts a client connection let go by `limit`.
    pub fn connection_limit(&self, limit: &'static str) {
        self.connection_limits
            .get_or_create(&ConnectionLimitLabels { limit })
            .inc();
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("frontdesk");
        let m = Metrics {
            requests: Family::default(),
            local_replies: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            upstream_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            upstream_retries: Family::default(),
            upstream_retry_budget_exhausted: Family::default(),
            upstream_overflow: Family::default(),
            upstream_ejections: Family::default(),
            upstream_ejected_endpoints: Family::default(),
            upstream_health_checks: Family::default(),
            upstream_unhealthy_endpoints: Family::default(),
            upstream_panic: Family::default(),
            active_connections: Gauge::default(),
            upgraded_connections: Gauge::default(),
            upgraded_connection_ends: Family::default(),
            connection_limits: Family::default(),
            overloaded: Gauge::default(),
            config_version: Gauge::default(),
            config_reloads: Counter::default(),
            config_reload_failures: Counter::default(),
            access_log_dropped: Counter::default(),
            controller_connected: Gauge::default(),
            auth_decisions: Family::default(),
            limit_decisions: Family::default(),
            aggregate_calls: Family::default(),
            aggregate_call_duration: Family::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            ),
            // 50 µs to ~0.8 s.
            redis_duration: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 15),
            ),
            cache_requests: Family::default(),
            cache_bytes: Gauge::default(),
            cache_keys: Gauge::default(),
            cache_evictions: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "cache_requests",
            "Requests of cached rules, by what the cache did (hit, miss, stale, revalidated, coalesced)",
            m.cache_requests.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes the response cache holds (answers, fields and bookkeeping)",
            m.cache_bytes.clone(),
        );
        registry.register(
            "cache_keys",
            "Keys the response cache holds",
            m.cache_keys.clone(),
        );
        registry.register(
            "cache_evictions",
            "Stored answers removed to make room for others",
            m.cache_evictions.clone(),
        );
        registry.register(
            "aggregate_calls",
            "Backend calls of Aggregates, by aggregate rule, call and outcome (ok, failed)",
            m.aggregate_calls.clone(),
        );
        registry.register(
            "aggregate_call_duration_seconds",
            "Duration of Aggregate backend calls, by aggregate rule and call",
            m.aggregate_call_duration.clone(),
        );
        registry.register(
            "ratelimit_decisions",
            "Rate limit checks, by effective policy and decision: allowed, limited (429), store_failed_open / store_failed_closed (Redis could not decide; onStoreFailure applied)",
            m.limit_decisions.clone(),
        );
        registry.register(
            "ratelimit_redis_duration_seconds",
            "Round trip of one global rate limit decision to Redis, failures included",
            m.redis_duration.clone(),
        );
        registry.register(
            "auth_decisions",
            "Policy checks, by effective policy (its Policies, comma-separated) and outcome: allowed, unauthenticated (401), forbidden (403), error (503: policy unavailable, keys or external service unreachable)",
            m.auth_decisions.clone(),
        );
        registry.register(
            "upstream_retries",
            "Tries at a backend made again, by rule and reason: connect-failure, reset, timeout, status (a status the rule retries)",
            m.upstream_retries.clone(),
        );
        registry.register(
            "upstream_retry_budget_exhausted",
            "Retries not made because the backend's retry budget was spent, by rule",
            m.upstream_retry_budget_exhausted.clone(),
        );
        registry.register(
            "upstream_overflow",
            "Requests refused with 503 circuit-open because a backend had as many in flight and waiting as its circuit breaker allows, by rule and backend",
            m.upstream_overflow.clone(),
        );
        registry.register(
            "upstream_ejections",
            "Endpoints ejected from a backend's balancer after failing in a row (outlier detection), by rule and backend",
            m.upstream_ejections.clone(),
        );
        registry.register(
            "upstream_ejected_endpoints",
            "Endpoints out of a backend's balancer now, by rule and backend",
            m.upstream_ejected_endpoints.clone(),
        );
        registry.register(
            "upstream_health_checks",
            "Active health checks of a backend's endpoints, by rule, backend and result: passed, failed",
            m.upstream_health_checks.clone(),
        );
        registry.register(
            "upstream_unhealthy_endpoints",
            "Endpoints out of a backend's balancer because they fail their health checks, by rule and backend",
            m.upstream_unhealthy_endpoints.clone(),
        );
        registry.register(
            "upstream_panic",
            "1 while every endpoint of a backend fails its health checks, so all of them get traffic (panic mode), by rule and backend",
            m.upstream_panic.clone(),
        );
        registry.register(
            "requests",
            "Requests answered, by rule (`none` when no rule matched) and status",
            m.requests.clone(),
        );
        registry.register(
            "local_replies",
            "Answers the proxy made itself (problem+json), by rule and problem type; the rest of `requests` came from backends",
            m.local_replies.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request received to response body sent, by rule",
            m.request_duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from sending a request upstream to its response headers, by rule",
            m.upstream_duration.clone(),
        );
        registry.register(
            "active_connections",
            "Client connections open",
            m.active_connections.clone(),
        );
        registry.register(
            "upgraded_connections",
            "Client connections relayed to a backend after switching protocols (WebSocket), open now",
            m.upgraded_connections.clone(),
        );
        registry.register(
            "upgraded_connection_ends",
            "Relayed (WebSocket) connections that ended, by reason: closed, idle-timeout, max-lifetime, failed",
            m.upgraded_connection_ends.clone(),
        );
        registry.register(
            "connection_limits",
            "Client connections let go by a bound, by limit (connections-per-client, memory, header-read-timeout, send-timeout, http2-idle-timeout, http2-reset-flood, tls-handshake-failed)",
            m.connection_limits.clone(),
        );
        registry.register(
            "overloaded",
            "1 while the process's memory is past --max-memory and new connections are turned away",
            m.overloaded.clone(),
        );
        registry.register(
            "config_version",
            "Version of the configuration serving",
            m.config_version.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration updates applied",
            m.config_reloads.clone(),
        );
        registry.register(
            "config_reload_failures",
            "Configuration updates with problems (bad files or objects; the last good version of each kept)",
            m.config_reload_failures.clone(),
        );
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because stdout was too slow",
            m.access_log_dropped.clone(),
        );
        registry.register(
            "controller_connected",
            "1 while subscribed to the controller's snapshot stream (cluster mode)",
            m.controller_connected.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_answers_are_counted_by_status_through_its_kept_counters() {
        let metrics = Metrics::new();
        let rule = RouteMetrics::new(RouteId("default/orders/0".into()), &metrics);
        for status in [200, 200, 404, 200] {
            rule.count(&metrics.requests, status);
        }
        // More statuses than are kept still count.
        for status in 500..520 {
            rule.count(&metrics.requests, status);
        }
        rule.count(&metrics.requests, 519);
        let text = metrics.encode();
        for line in [
            "frontdesk_requests_total{route=\"default/orders/0\",status=\"200\"} 3",
            "frontdesk_requests_total{route=\"default/orders/0\",status=\"404\"} 1",
            "frontdesk_requests_total{route=\"default/orders/0\",status=\"519\"} 2",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
