//! Gateway API status: what the compiler said about GatewayClasses and Gateways, in the
//! Gateway API's shape, written only when it changed.
//!
//! The compiler gives statuses only for objects of frontdesk's classes (`controllerName:
//! frontdesk.dev/gateway-controller`), so nothing here ever writes to another controller's
//! GatewayClass or Gateway.
//!
//! - GatewayClass: `Accepted=True`.
//! - Gateway: the compiler's `Accepted`, and `Programmed` from the proxies' ACKs, as for Routes
//!   ("2/2 proxies of gateway public"); `status.listeners[]` with each listener's
//!   `Accepted`, `ResolvedRefs`, `Conflicted`, and `Programmed` (the Gateway's when the listener
//!   is served, else `Invalid`), `supportedKinds` (frontdesk's Route and Aggregate) and
//!   `attachedRoutes` (the accepted Routes and Aggregates the listener's `allowedRoutes`
//!   admitted, as the compiler counts them).
//! - Every condition carries the object's generation as `observedGeneration`; a condition whose
//!   status did not change keeps its `lastTransitionTime`.
//!
//! With provisioning on ([`crate::provision`]), `status.addresses` is the provisioned
//! Service's address, and a class or Gateway whose parameters cannot be used is
//! `Accepted=False` with reason `InvalidParameters` ([`refuse_parameters`]). Without it,
//! `status.addresses` is left alone.
//! Written by the lease holder with server-side apply ([`crate::cluster`]).

use std::collections::HashMap;
use std::future::Future;

use frontdesk_crds::ObjectStatus;
use frontdesk_crds::gateway_api::{GatewayClassStatus, GatewayStatus, ListenerStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::backoff::Backoff;
use crate::status::{GatewayProgress, PROGRAMMED, Written, condition, programmed};

/// A GatewayClass's status: the compiler's conditions (`Accepted`).
pub fn class_status(
    computed: &ObjectStatus,
    current: Option<&GatewayClassStatus>,
    now: &Time,
) -> GatewayClassStatus {
    let previous = current.map_or(&[][..], |c| c.conditions.as_slice());
    GatewayClassStatus {
        conditions: conditions(&computed.conditions, computed.generation, previous, now),
        supported_features: frontdesk_crds::gateway_api::supported_features()
            .into_iter()
            .map(|name| frontdesk_crds::gateway_api::SupportedFeature { name: name.into() })
            .collect(),
    }
}

/// A Gateway's status: its conditions and its listeners', `Programmed` added from `progress`
/// (how far the proxies of its gateway group got with this generation).
pub fn gateway_status(
    computed: &ObjectStatus,
    progress: &[GatewayProgress],
    current: Option<&GatewayStatus>,
    now: &Time,
) -> GatewayStatus {
    let generation = computed.generation;
    let previous = current.map_or(&[][..], |c| c.conditions.as_slice());
    let (status, reason, message) = programmed(computed, progress);
    // The Gateway API's reasons for Programmed are Programmed, Invalid and Pending.
    let reason = if reason == "NoProxies" {
        "Pending"
    } else {
        reason
    };
    let mut gateway_conditions = conditions(&computed.conditions, generation, previous, now);
    gateway_conditions.push(condition(
        PROGRAMMED, status, reason, &message, generation, previous, now,
    ));
    let listeners = computed
        .listeners
        .iter()
        .map(|l| {
            let previous = current
                .and_then(|c| c.listeners.iter().find(|p| p.name == l.name))
                .map_or(&[][..], |p| p.conditions.as_slice());
            let mut list = conditions(&l.conditions, generation, previous, now);
            list.push(if l.served {
                condition(
                    PROGRAMMED, status, reason, &message, generation, previous, now,
                )
            } else {
                let why = "the listener is not served (see Accepted, ResolvedRefs, Conflicted)";
                condition(PROGRAMMED, false, "Invalid", why, generation, previous, now)
            });
            ListenerStatus {
                name: l.name.clone(),
                supported_kinds: l.supported_kinds.clone(),
                attached_routes: l.attached_routes,
                conditions: list,
            }
        })
        .collect();
    GatewayStatus {
        addresses: Vec::new(),
        conditions: gateway_conditions,
        listeners,
    }
}

/// `computed` with `Accepted=False`, reason `InvalidParameters` and `message`: its
/// parameters cannot be used, so nothing is provisioned for it.
pub fn refuse_parameters(computed: &ObjectStatus, message: &str) -> ObjectStatus {
    let mut refused = computed.clone();
    let condition = frontdesk_crds::status::Condition {
        type_: "Accepted".into(),
        status: false,
        reason: crate::provision::INVALID_PARAMETERS.into(),
        message: message.into(),
    };
    match refused
        .conditions
        .iter_mut()
        .find(|c| c.type_ == "Accepted")
    {
        Some(accepted) => *accepted = condition,
        None => refused.conditions.insert(0, condition),
    }
    refused
}

pub(crate) fn conditions(
    computed: &[frontdesk_crds::status::Condition],
    generation: i64,
    previous: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    computed
        .iter()
        .map(|c| {
            condition(
                &c.type_, c.status, &c.reason, &c.message, generation, previous, now,
            )
        })
        .collect()
}

/// The part of a status frontdesk writes, with transition times blanked: two statuses equal
/// here differ in nothing worth writing. Addresses count only when we write them
/// (`addresses`: provisioning is on and found some).
fn comparable(status: &serde_json::Value, addresses: bool) -> serde_json::Value {
    fn blank(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("lastTransitionTime");
                map.values_mut().for_each(blank);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(blank),
            _ => {}
        }
    }
    let mut v = status.clone();
    if let Some(map) = v.as_object_mut().filter(|_| !addresses) {
        map.remove("addresses");
    }
    blank(&mut v);
    v
}

/// Where Gateway API statuses go: server-side apply in a cluster, a recorder in tests.
pub trait GatewayStatusSink {
    /// Applies `status` to the `kind` (GatewayClass, Gateway or BackendTLSPolicy)
    /// `namespace/name` (`namespace` empty for a GatewayClass); with `resource_version`, only
    /// to that version of the object (a status shared with other controllers must not
    /// overwrite what one wrote since it was read).
    fn apply_gateway_status(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        status: &serde_json::Value,
        resource_version: Option<&str>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// One object to write: its computed status, and the status it has in the cluster now.
pub struct Wanted {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub status: serde_json::Value,
    pub current: Option<serde_json::Value>,
    /// The version `current` was read at, when the write must not apply to a later one.
    pub resource_version: Option<String>,
}

/// Writes the Gateway API statuses that changed.
#[derive(Default)]
pub struct GatewayStatusWriter {
    /// Statuses written (as compared) whose watch event has not come back yet, with the
    /// status the object had when they were written.
    written: HashMap<(String, String, String), Written<serde_json::Value>>,
    /// Writes that failed: the status wanted, when to try again, and the wait after that.
    failed: HashMap<(String, String, String), Failed>,
}

struct Failed {
    want: serde_json::Value,
    retry_at: tokio::time::Instant,
    backoff: Backoff,
}

impl GatewayStatusWriter {
    /// Forgets what it holds of objects `keep` says are no longer wanted.
    pub fn retain(&mut self, keep: impl Fn(&(String, String, String)) -> bool) {
        self.written.retain(|k, _| keep(k));
        self.failed.retain(|k, _| keep(k));
    }

    /// Whether a write failed and waits to be tried again (after its backoff).
    pub fn retrying(&self) -> bool {
        !self.failed.is_empty()
    }

    /// The objects it still has something to do for: a write not seen back yet, a failed
    /// write to try again.
    pub fn pending(&self) -> impl Iterator<Item = &(String, String, String)> {
        self.written.keys().chain(self.failed.keys())
    }

    /// Returns how many statuses were written. A write that failed (no permission, the object
    /// gone) is tried again after a growing wait, not on every pass; [`Self::retain`] forgets
    /// objects no longer wanted.
    pub async fn reconcile<S: GatewayStatusSink>(&mut self, sink: &S, wanted: &[Wanted]) -> usize {
        let now = tokio::time::Instant::now();
        let mut writes = 0;
        for w in wanted {
            let key = (w.kind.clone(), w.namespace.clone(), w.name.clone());
            let addresses = w.status.get("addresses").is_some();
            let want = comparable(&w.status, addresses);
            // A status shared with other controllers (written to a version) is compared with
            // what the object has now only: another writer may have dropped our entries since.
            let current = w.current.as_ref().map(|c| comparable(c, addresses));
            // What this replica wrote covers only the time the write takes to come back through
            // the watch: a status wiped or changed since is written again.
            let already = if current.as_ref() == Some(&want) {
                self.written.remove(&key);
                true
            } else {
                let second = k8s_openapi::jiff::Timestamp::now().as_second();
                w.resource_version.is_none()
                    && (self.written.get(&key))
                        .is_some_and(|w| w.covers(PartialEq::eq, &want, current.as_ref(), second))
            };
            if already {
                self.failed.remove(&key);
                continue;
            }
            let waiting = self
                .failed
                .get(&key)
                .is_some_and(|f| f.want == want && now < f.retry_at);
            if waiting {
                continue;
            }
            match sink
                .apply_gateway_status(
                    &w.kind,
                    &w.namespace,
                    &w.name,
                    &w.status,
                    w.resource_version.as_deref(),
                )
                .await
            {
                Ok(()) => {
                    writes += 1;
                    self.failed.remove(&key);
                    let second = k8s_openapi::jiff::Timestamp::now().as_second();
                    self.written
                        .insert(key, Written::new(want, current, second));
                }
                Err(e) => {
                    let mut backoff = (self.failed.remove(&key))
                        .filter(|f| f.want == want)
                        .map_or_else(Backoff::for_writes, |f| f.backoff);
                    let wait = backoff.next_wait();
                    tracing::warn!(kind = %w.kind, namespace = %w.namespace, name = %w.name, error = %e, retry_in = ?wait, "writing status failed");
                    let retry_at = now + wait;
                    self.failed.insert(
                        key,
                        Failed {
                            want,
                            retry_at,
                            backoff,
                        },
                    );
                }
            }
        }
        writes
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use frontdesk_crds::manifests::{parse_file, resources};

    /// A certificate and its key, as the compiler checks them.
    const PEM_CERT: &str = frontdesk_crds::certificate::testing::CERT;
    const PEM_KEY: &str = frontdesk_crds::certificate::testing::KEY;

    /// GatewayClass `frontdesk`; Gateway `edge/good` with one HTTPS listener whose Secret
    /// exists; `edge/broken`, whose Secret does not; `edge/theirs` of another class.
    pub(crate) fn compiled() -> Vec<ObjectStatus> {
        let yaml = format!(
            "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: frontdesk, generation: 1}}
spec: {{controllerName: frontdesk.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: other}}
spec: {{controllerName: example.com/other}}
---
apiVersion: v1
kind: Secret
metadata: {{name: good-tls, namespace: edge}}
type: kubernetes.io/tls
stringData: {{tls.crt: {cert:?}, tls.key: {key:?}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: good, namespace: edge, generation: 3}}
spec:
  gatewayClassName: frontdesk
  listeners:
    - {{name: https, port: 443, protocol: HTTPS, hostname: api.example.com, tls: {{certificateRefs: [{{name: good-tls}}]}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: broken, namespace: edge, generation: 2}}
spec:
  gatewayClassName: frontdesk
  listeners:
    - {{name: https, port: 8443, protocol: HTTPS, tls: {{certificateRefs: [{{name: missing-tls}}]}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: theirs, namespace: edge}}
spec: {{gatewayClassName: other, listeners: [{{name: http, port: 80, protocol: HTTP}}]}}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {{name: api, namespace: edge}}
spec:
  gateways: [good]
  rules: [{{backends: [{{url: 'http://api.internal:8080'}}]}}]
",
            cert = PEM_CERT,
            key = PEM_KEY,
        );
        let parsed = parse_file("g.yaml", &yaml);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        frontdesk_crds::compile(&resources(parsed.objects.iter().map(|(o, _)| o))).statuses
    }

    pub(crate) fn now(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    fn find<'a>(conditions: &'a [Condition], t: &str) -> &'a Condition {
        conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn only_our_class_and_its_gateways_get_a_status() {
        let statuses = compiled();
        let mut ours: Vec<(&str, &str)> = statuses
            .iter()
            .filter(|s| matches!(s.kind.as_str(), "GatewayClass" | "Gateway"))
            .map(|s| (s.kind.as_str(), s.name.as_str()))
            .collect();
        ours.sort();
        assert_eq!(
            ours,
            [
                ("Gateway", "broken"),
                ("Gateway", "good"),
                ("GatewayClass", "frontdesk")
            ]
        );
    }

    #[test]
    fn a_programmed_gateway_and_a_gateway_missing_its_secret() {
        let statuses = compiled();
        let by = |n: &str| statuses.iter().find(|s| s.name == n).unwrap();
        let acked = [GatewayProgress {
            gateway: "good".into(),
            acked: 2,
            connected: 2,
        }];
        let good = gateway_status(by("good"), &acked, None, &now(100));
        assert_eq!(find(&good.conditions, "Accepted").status, "True");
        let p = find(&good.conditions, PROGRAMMED);
        assert_eq!(
            (p.status.as_str(), p.message.as_str()),
            ("True", "2/2 proxies of gateway good")
        );
        let https = &good.listeners[0];
        // The Route of the Gateway's namespace that names it.
        assert_eq!((https.name.as_str(), https.attached_routes), ("https", 1));
        assert_eq!(find(&https.conditions, "ResolvedRefs").status, "True");
        assert_eq!(find(&https.conditions, PROGRAMMED).status, "True");
        assert!(
            https
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );

        let broken = gateway_status(by("broken"), &[], None, &now(100));
        let accepted = find(&broken.conditions, "Accepted");
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("False", "ListenersNotValid")
        );
        let refs = find(&broken.listeners[0].conditions, "ResolvedRefs");
        assert_eq!(
            (refs.status.as_str(), refs.reason.as_str()),
            ("False", "InvalidCertificateRef")
        );
        assert!(refs.message.contains("Secret edge/missing-tls not found"));
        let p = find(&broken.listeners[0].conditions, PROGRAMMED);
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "Invalid"));

        // No proxy connected yet: Pending, a reason the Gateway API knows.
        let none = [GatewayProgress {
            gateway: "good".into(),
            acked: 0,
            connected: 0,
        }];
        let waiting = gateway_status(by("good"), &none, None, &now(100));
        let p = find(&waiting.conditions, PROGRAMMED);
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "Pending"));
    }

    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<(String, serde_json::Value)>>);

    impl GatewayStatusSink for Recorder {
        async fn apply_gateway_status(
            &self,
            _: &str,
            _: &str,
            name: &str,
            status: &serde_json::Value,
            _: Option<&str>,
        ) -> Result<(), String> {
            self.0.lock().unwrap().push((name.into(), status.clone()));
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_unchanged_status_is_not_rewritten_and_addresses_are_not_ours() {
        let statuses = compiled();
        let class = statuses.iter().find(|s| s.kind == "GatewayClass").unwrap();
        let first = serde_json::to_value(class_status(class, None, &now(100))).unwrap();
        // The features claimed (conformance/features.txt), sorted, as `{name}` objects.
        let features: Vec<&str> = first["supportedFeatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert!(
            features.is_sorted() && features.contains(&"HTTPRoute"),
            "{features:?}"
        );
        assert!(features.contains(&"GRPCRoute") && !features.contains(&"HTTPRouteRequestMirror"));
        let wanted = |status: &serde_json::Value, current: Option<serde_json::Value>| Wanted {
            kind: "GatewayClass".into(),
            namespace: String::new(),
            name: "frontdesk".into(),
            status: status.clone(),
            current,
            resource_version: None,
        };
        let sink = Recorder::default();
        let mut writer = GatewayStatusWriter::default();
        assert_eq!(writer.reconcile(&sink, &[wanted(&first, None)]).await, 1);
        // Later, the same verdict, and the server's copy carries someone else's addresses.
        let typed: GatewayClassStatus = serde_json::from_value(first.clone()).unwrap();
        let later = serde_json::to_value(class_status(class, Some(&typed), &now(200))).unwrap();
        assert_eq!(later, first, "the transition time is kept");
        let mut current = first.clone();
        current["addresses"] = serde_json::json!([{"value": "203.0.113.7"}]);
        let mut fresh = GatewayStatusWriter::default();
        assert_eq!(
            fresh
                .reconcile(&sink, &[wanted(&later, Some(current))])
                .await,
            0
        );
        assert_eq!(sink.0.lock().unwrap().len(), 1);
        // The write has not come back yet: waited for. Back, then wiped: written again.
        assert_eq!(writer.reconcile(&sink, &[wanted(&first, None)]).await, 0);
        let back = Some(first.clone());
        assert_eq!(writer.reconcile(&sink, &[wanted(&first, back)]).await, 0);
        assert_eq!(writer.reconcile(&sink, &[wanted(&first, None)]).await, 1);
        assert_eq!(sink.0.lock().unwrap().len(), 2);
    }

    /// With provisioning, addresses are ours: a status that differs only in them is written.
    #[tokio::test]
    async fn addresses_count_once_we_write_them() {
        let status = serde_json::json!({"conditions": [],
            "addresses": [{"type": "IPAddress", "value": "203.0.113.9"}]});
        let current = serde_json::json!({"conditions": []});
        let wanted = Wanted {
            kind: "Gateway".into(),
            namespace: "edge".into(),
            name: "public".into(),
            status: status.clone(),
            current: Some(current),
            resource_version: None,
        };
        let sink = Recorder::default();
        let mut writer = GatewayStatusWriter::default();
        assert_eq!(
            writer.reconcile(&sink, std::slice::from_ref(&wanted)).await,
            1
        );
        let mut written = GatewayStatusWriter::default();
        let same = Wanted {
            current: Some(status),
            ..wanted
        };
        assert_eq!(written.reconcile(&sink, &[same]).await, 0);
    }

    /// Answers every write with a refusal, counting them.
    #[derive(Default)]
    struct Refusing(std::sync::atomic::AtomicUsize);

    impl GatewayStatusSink for Refusing {
        async fn apply_gateway_status(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &serde_json::Value,
            _: Option<&str>,
        ) -> Result<(), String> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err("forbidden".into())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_write_waits_longer_each_time_and_is_forgotten_with_its_object() {
        let wanted = Wanted {
            kind: "Gateway".into(),
            namespace: "edge".into(),
            name: "public".into(),
            status: serde_json::json!({"conditions": []}),
            current: None,
            resource_version: None,
        };
        let sink = Refusing::default();
        let calls = || sink.0.load(std::sync::atomic::Ordering::Relaxed);
        let mut writer = GatewayStatusWriter::default();
        writer.reconcile(&sink, std::slice::from_ref(&wanted)).await;
        // The status loop passes every second: nothing more until the wait is over.
        writer.reconcile(&sink, std::slice::from_ref(&wanted)).await;
        assert_eq!(calls(), 1);
        tokio::time::advance(std::time::Duration::from_millis(1100)).await;
        writer.reconcile(&sink, std::slice::from_ref(&wanted)).await;
        assert_eq!(calls(), 2);
        // Then two seconds.
        tokio::time::advance(std::time::Duration::from_millis(1100)).await;
        writer.reconcile(&sink, std::slice::from_ref(&wanted)).await;
        assert_eq!(calls(), 2);
        tokio::time::advance(std::time::Duration::from_millis(1000)).await;
        writer.reconcile(&sink, std::slice::from_ref(&wanted)).await;
        assert_eq!(calls(), 3);
        assert_eq!(
            writer.pending().count(),
            1,
            "the failed write is still to do"
        );
        // A status no longer wanted (the object gone) is forgotten.
        writer.retain(|_| false);
        assert!(writer.failed.is_empty() && writer.written.is_empty());
    }

    /// The exact server-side apply requests for the class and both Gateways, as the API server
    /// receives them from the leader.
    #[tokio::test]
    async fn statuses_go_by_server_side_apply_to_the_status_subresource_of_our_objects_only() {
        use http::{Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let sink = crate::cluster::KubeSink {
            client: client.clone(),
            recorder: kube::runtime::events::Recorder::new(
                client,
                kube::runtime::events::Reporter {
                    controller: crate::cluster::FIELD_MANAGER.into(),
                    instance: None,
                },
            ),
        };
        let server = tokio::spawn(async move {
            let mut patches = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                assert_eq!(request.method(), http::Method::PATCH);
                assert_eq!(
                    request.headers()["content-type"],
                    "application/apply-patch+yaml"
                );
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let body = request.into_body().collect_bytes().await.unwrap();
                let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let mut echo = sent.clone();
                echo["metadata"] = serde_json::json!({"name": "x"});
                send.send_response(Response::new(Body::from(
                    serde_json::to_vec(&echo).unwrap(),
                )));
                patches.push((path, query, sent));
                if patches.len() == 4 {
                    return patches;
                }
            }
            patches
        });
        let statuses = compiled();
        let wanted: Vec<Wanted> = statuses
            .iter()
            .filter_map(|s| {
                let status = match s.kind.as_str() {
                    "GatewayClass" => serde_json::to_value(class_status(s, None, &now(100))),
                    "Gateway" => serde_json::to_value(gateway_status(s, &[], None, &now(100))),
                    _ => return None,
                };
                Some(Wanted {
                    kind: s.kind.clone(),
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                    status: status.unwrap(),
                    current: None,
                    resource_version: None,
                })
            })
            .chain([Wanted {
                kind: "BackendTLSPolicy".into(),
                namespace: "edge".into(),
                name: "orders-tls".into(),
                status: serde_json::json!({"ancestors": []}),
                current: None,
                resource_version: Some("42".into()),
            }])
            .collect();
        let mut writer = GatewayStatusWriter::default();
        assert_eq!(writer.reconcile(&sink, &wanted).await, 4);
        let patches = server.await.unwrap();
        let by_path = |p: &str| {
            let (_, query, body) = patches
                .iter()
                .find(|(path, _, _)| path == p)
                .unwrap_or_else(|| panic!("no PATCH of {p}: {patches:?}"));
            assert!(
                query.contains("fieldManager=frontdesk-controller") && query.contains("force=true"),
                "{query}"
            );
            body.clone()
        };
        let time = serde_json::to_value(now(100)).unwrap();

        // A status shared with other controllers applies only to the version it was read at.
        let policy = by_path(
            "/apis/gateway.networking.k8s.io/v1/namespaces/edge/backendtlspolicies/orders-tls/status",
        );
        assert_eq!(policy["metadata"]["resourceVersion"], "42", "{policy}");
        assert_eq!(policy["kind"], "BackendTLSPolicy");

        let class = by_path("/apis/gateway.networking.k8s.io/v1/gatewayclasses/frontdesk/status");
        assert_eq!(
            class,
            serde_json::json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                "status": {"conditions": [{
                    "type": "Accepted", "status": "True", "reason": "Accepted",
                    "message": "frontdesk implements frontdesk.dev/gateway-controller",
                    "observedGeneration": 1, "lastTransitionTime": time,
                }], "supportedFeatures": frontdesk_crds::gateway_api::supported_features()
                    .iter()
                    .map(|name| serde_json::json!({"name": name}))
                    .collect::<Vec<_>>()},
            })
        );

        let kinds = serde_json::json!([
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
            {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"},
            {"group": "frontdesk.dev", "kind": "Route"},
            {"group": "frontdesk.dev", "kind": "Aggregate"},
        ]);
        let good =
            by_path("/apis/gateway.networking.k8s.io/v1/namespaces/edge/gateways/good/status");
        assert_eq!(good["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(good["kind"], "Gateway");
        assert!(good["status"].get("addresses").is_none(), "{good}");
        let conditions = |v: &serde_json::Value| -> Vec<(String, String, String, i64)> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    assert_eq!(c["lastTransitionTime"], time);
                    (
                        c["type"].as_str().unwrap().into(),
                        c["status"].as_str().unwrap().into(),
                        c["reason"].as_str().unwrap().into(),
                        c["observedGeneration"].as_i64().unwrap(),
                    )
                })
                .collect()
        };
        let c = |t: &str, s: &str, r: &str, g: i64| (t.into(), s.into(), r.into(), g);
        assert_eq!(
            conditions(&good["status"]["conditions"]),
            [
                c("Accepted", "True", "Accepted", 3),
                c("Programmed", "False", "Pending", 3)
            ]
        );
        let listener = &good["status"]["listeners"][0];
        assert_eq!(listener["name"], "https");
        assert_eq!(listener["attachedRoutes"], 1);
        assert_eq!(listener["supportedKinds"], kinds);
        assert_eq!(
            conditions(&listener["conditions"]),
            [
                c("Accepted", "True", "Accepted", 3),
                c("ResolvedRefs", "True", "ResolvedRefs", 3),
                c("Conflicted", "False", "NoConflicts", 3),
                c("Programmed", "False", "Pending", 3),
            ]
        );

        let broken =
            by_path("/apis/gateway.networking.k8s.io/v1/namespaces/edge/gateways/broken/status");
        assert_eq!(
            conditions(&broken["status"]["conditions"]),
            [
                c("Accepted", "False", "ListenersNotValid", 2),
                c("Programmed", "False", "Invalid", 2)
            ]
        );
        let listener = &broken["status"]["listeners"][0];
        assert_eq!(listener["attachedRoutes"], 0);
        assert_eq!(listener["supportedKinds"], kinds);
        assert_eq!(
            conditions(&listener["conditions"]),
            [
                c("Accepted", "True", "Accepted", 2),
                c("ResolvedRefs", "False", "InvalidCertificateRef", 2),
                c("Conflicted", "False", "NoConflicts", 2),
                c("Programmed", "False", "Invalid", 2),
            ]
        );
        let message = listener["conditions"][1]["message"].as_str().unwrap();
        assert!(
            message.contains("spec.listeners[0].tls.certificateRefs[0]")
                && message.contains("Secret edge/missing-tls not found"),
            "{message}"
        );
        // Nothing was written for the Gateway of another class.
        assert!(patches.iter().all(|(p, _, _)| !p.contains("/theirs/")));
    }
}
