//! Prometheus metrics of the control plane, on the admin listener's `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabels {
    pub gateway: String,
}

/// A subscription refused because the client certificate names another gateway (or none).
/// Labelled by the gateway the certificate names ("" for none), a set the CA bounds; the
/// gateway asked for is in the log only, since any name can be asked for.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub certificate_gateway: String,
}

/// An admission review: the kind reviewed and whether it was allowed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabels {
    pub kind: String,
    pub allowed: String,
}

/// A watched kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Counter,
    pub compile_duration: Histogram,
    pub snapshot_version: Family<GatewayLabels, Gauge>,
    pub snapshot_bytes: Family<GatewayLabels, Gauge>,
    pub connected_proxies: Family<GatewayLabels, Gauge>,
    pub acks: Family<GatewayLabels, Counter>,
    pub nacks: Family<GatewayLabels, Counter>,
    pub push_latency: Family<GatewayLabels, Histogram, fn() -> Histogram>,
    pub refused_subscriptions: Family<RefusedLabels, Counter>,
    /// Watches whose list fails now, by kind ([`crate::watch_health`]).
    pub watches_failing: Family<KindLabels, Gauge>,
    pub watch_list_failures: Family<KindLabels, Counter>,
    /// Admission reviews answered ([`crate::webhook`]).
    pub admission_reviews: Family<ReviewLabels, Counter>,
    pub admission_review_duration: Histogram,
    /// Status passes, full or on what changed ([`crate::cluster`]'s status writer).
    pub status_passes: Family<PassLabels, Counter>,
    /// Objects whose status a pass computed and compared, by pass kind.
    pub status_objects_looked_at: Family<PassLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassLabels {
    /// `full` (every object) or `changed` (those whose inputs moved).
    pub pass: String,
}

fn latency() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("frontdesk_controller");
        let m = Metrics {
            registry: Registry::default(),
            reconciles: Counter::default(),
            compile_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            snapshot_version: Family::default(),
            snapshot_bytes: Family::default(),
            connected_proxies: Family::default(),
            acks: Family::default(),
            nacks: Family::default(),
            push_latency: Family::new_with_constructor(latency as fn() -> Histogram),
            refused_subscriptions: Family::default(),
            watches_failing: Family::default(),
            watch_list_failures: Family::default(),
            admission_reviews: Family::default(),
            // 50 us to ~1.6 s.
            admission_review_duration: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
            status_passes: Family::default(),
            status_objects_looked_at: Family::default(),
        };
        registry.register(
            "reconciles",
            "Compiles of the whole configuration",
            m.reconciles.clone(),
        );
        registry.register(
            "compile_duration_seconds",
            "Time to read and compile the configuration",
            m.compile_duration.clone(),
        );
        registry.register(
            "snapshot_version",
            "Version of each gateway's snapshot",
            m.snapshot_version.clone(),
        );
        registry.register(
            "snapshot_bytes",
            "Encoded size of each gateway's snapshot",
            m.snapshot_bytes.clone(),
        );
        registry.register(
            "connected_proxies",
            "Proxies subscribed, by gateway",
            m.connected_proxies.clone(),
        );
        registry.register(
            "acks",
            "Snapshot versions proxies acknowledged",
            m.acks.clone(),
        );
        registry.register(
            "nacks",
            "Snapshot versions proxies rejected",
            m.nacks.clone(),
        );
        registry.register(
            "push_latency_seconds",
            "Time from sending a snapshot version on a proxy's stream to that proxy acknowledging it",
            m.push_latency.clone(),
        );
        registry.register(
            "refused_subscriptions",
            "Subscriptions refused with 403 because the client certificate is for another gateway, by the gateway it names",
            m.refused_subscriptions.clone(),
        );
        registry.register(
            "watches_failing",
            "Watches whose list the API server refuses now (404: kind not served, 403: forbidden), by kind; compiles go ahead without them",
            m.watches_failing.clone(),
        );
        registry.register(
            "watch_list_failures",
            "Failed lists and watches, by kind; retried with exponential backoff",
            m.watch_list_failures.clone(),
        );
        registry.register(
            "admission_reviews",
            "Admission reviews answered, by kind and whether the object was allowed",
            m.admission_reviews.clone(),
        );
        registry.register(
            "admission_review_duration_seconds",
            "Time to review one object (reading what decides it, compiling)",
            m.admission_review_duration.clone(),
        );
        registry.register(
            "status_passes",
            "Status passes of the leader: full (every object, every 15 s) or changed (the objects whose compiled status, proxy progress or cached object moved)",
            m.status_passes.clone(),
        );
        registry.register(
            "status_objects_looked_at",
            "Objects whose status a pass computed and compared with what they have, by pass",
            m.status_objects_looked_at.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn record_status_pass(&self, looked_at: usize, full: bool) {
        let labels = PassLabels {
            pass: if full { "full" } else { "changed" }.into(),
        };
        self.status_passes.get_or_create(&labels).inc();
        (self.status_objects_looked_at.get_or_create(&labels)).inc_by(looked_at as u64);
    }

    pub fn record_review(&self, kind: &str, allowed: bool, took: std::time::Duration) {
        let labels = ReviewLabels {
            kind: kind.into(),
            allowed: allowed.to_string(),
        };
        self.admission_reviews.get_or_create(&labels).inc();
        self.admission_review_duration.observe(took.as_secs_f64());
    }

    pub fn gateway(name: &str) -> GatewayLabels {
        GatewayLabels {
            gateway: name.to_string(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
