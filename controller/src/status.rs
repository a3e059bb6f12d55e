//! Status: computed apart from writing it (only the leader writes).
//!
//! [`desired`] turns the compiler's verdict (Accepted, ResolvedRefs) and the proxies'
//! acknowledgements into the status a Route should carry, with `Programmed` saying how many
//! proxies of each gateway serve a snapshot containing this generation ("2/2 proxies of gateway
//! public"). [`Reconciler`] writes only what changed through a [`StatusSink`]
//! (server-side apply and Events in a cluster, a recording fake in tests) and raises one
//! Warning Event per rejected generation.

use std::collections::HashMap;
use std::future::Future;

use frontdesk_crds::ObjectStatus;
use frontdesk_crds::route::{PolicyAncestorRef, PolicyAncestorStatus, RouteStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub use crate::progress::GatewayProgress;

pub const PROGRAMMED: &str = "Programmed";

/// The status an object should have. `current` supplies transition times of conditions whose
/// status did not change, so rewriting the same verdict does not look like a transition.
pub fn desired(
    computed: &ObjectStatus,
    progress: &[GatewayProgress],
    current: Option<&RouteStatus>,
    now: &Time,
) -> RouteStatus {
    let generation = computed.generation;
    let previous = current.map_or(&[][..], |c| c.conditions.as_slice());
    let mut conditions: Vec<Condition> = computed
        .conditions
        .iter()
        .map(|c| {
            condition(
                &c.type_, c.status, &c.reason, &c.message, generation, previous, now,
            )
        })
        .collect();
    let (status, reason, message) = programmed(computed, progress);
    conditions.push(condition(
        PROGRAMMED, status, reason, &message, generation, previous, now,
    ));
    // A Policy's ancestors carry its verdict (Accepted, ResolvedRefs).
    let ancestors = computed
        .ancestors
        .iter()
        .map(|a| {
            let previous = current
                .and_then(|c| {
                    c.ancestors.iter().find(|p| {
                        p.ancestor_ref.name == a.name
                            && p.ancestor_ref.namespace == a.namespace
                            && p.ancestor_ref.kind == a.kind
                    })
                })
                .map_or(&[][..], |p| p.conditions.as_slice());
            PolicyAncestorStatus {
                ancestor_ref: PolicyAncestorRef {
                    group: a.group.clone(),
                    kind: a.kind.clone(),
                    namespace: a.namespace.clone(),
                    name: a.name.clone(),
                },
                controller_name: frontdesk_crds::gateway_api::CONTROLLER_NAME.into(),
                conditions: crate::gateway_status::conditions(
                    &computed.conditions,
                    generation,
                    previous,
                    now,
                ),
            }
        })
        .collect();
    RouteStatus {
        observed_generation: Some(generation),
        conditions,
        ancestors,
    }
}

/// `Programmed` from the proxies' ACKs: `(status, reason, message)`.
pub(crate) fn programmed(
    computed: &ObjectStatus,
    progress: &[GatewayProgress],
) -> (bool, &'static str, String) {
    if !computed.accepted() {
        // `progress` then concerns the generation served in its place, if any.
        let message = match computed.served_generation {
            Some(served) if progress.is_empty() => {
                format!("not accepted; proxies keep serving generation {served}")
            }
            Some(served) => format!(
                "not accepted; proxies keep serving generation {served}: {}",
                progress_message(progress)
            ),
            None => "not accepted, so no proxy serves it".into(),
        };
        return (false, "Invalid", message);
    }
    if progress.is_empty() {
        return (
            false,
            "Pending",
            "no snapshot carries this generation yet".into(),
        );
    }
    let message = progress_message(progress);
    if progress.iter().any(|p| p.connected == 0) {
        (false, "NoProxies", message)
    } else if progress.iter().all(|p| p.acked == p.connected) {
        (true, "Programmed", message)
    } else {
        (false, "Pending", message)
    }
}

/// "2/2 proxies of gateway public; 1/1 proxies of gateway partner": no snapshot version, which
/// each replica numbers on its own, so that the message reads the same whichever replica leads.
fn progress_message(progress: &[GatewayProgress]) -> String {
    progress
        .iter()
        .map(|p| {
            format!(
                "{}/{} proxies of gateway {}",
                p.acked, p.connected, p.gateway
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A condition at `generation`; its transition time is kept from `previous` when its status
/// did not change.
pub(crate) fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: i64,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let since = previous
        .iter()
        .find(|c| c.type_ == type_)
        .filter(|c| c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: Some(generation),
        last_transition_time: since,
    }
}

/// Equal but for transition times: nothing worth writing.
fn same(a: &RouteStatus, b: &RouteStatus) -> bool {
    let strip = |s: &RouteStatus| {
        let mut s = s.clone();
        let ancestors = s.ancestors.iter_mut().flat_map(|a| a.conditions.iter_mut());
        for c in s.conditions.iter_mut().chain(ancestors) {
            c.last_transition_time = Time(Default::default());
        }
        s
    };
    strip(a) == strip(b)
}

/// Where statuses and Events go.
pub trait StatusSink {
    fn apply_status(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        status: &RouteStatus,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// A Warning Event about an object; `uid` (when known) lets `kubectl describe` show it.
    fn warn(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        uid: Option<&str>,
        reason: &str,
        note: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Writes statuses that changed and Events for rejected generations.
#[derive(Default)]
pub struct Reconciler {
    /// Statuses written whose watch event has not come back yet.
    written: HashMap<(String, String, String), Written<RouteStatus>>,
    /// The generation (and uid: a recreated object is another) each Event was sent for.
    evented: HashMap<(String, String, String), (i64, Option<String>)>,
    /// Objects whose status write or Event failed: tried again at the next pass.
    retry: std::collections::HashSet<(String, String, String)>,
}

/// A status this replica wrote, until the watch cache shows it (Routes here, the Gateway API
/// kinds in [`crate::gateway_status`]).
pub(crate) struct Written<T> {
    want: T,
    /// The status the cache showed when it was written.
    before: Option<T>,
    /// When, in Unix seconds.
    at: i64,
}

/// How long a write may take to come back through the watch before it is written again.
pub(crate) const WATCH_LAG_SECONDS: i64 = 30;

impl<T: PartialEq> Written<T> {
    pub(crate) fn new(want: T, before: Option<T>, at: i64) -> Self {
        Written { want, before, at }
    }

    /// Whether `want` (compared by `same`) was written and the cache, still showing what it
    /// showed before, has just not caught up yet. A status that changed otherwise since
    /// (wiped, or edited by someone else) is not covered: it is written again.
    pub(crate) fn covers(
        &self,
        same: impl Fn(&T, &T) -> bool,
        want: &T,
        current: Option<&T>,
        now: i64,
    ) -> bool {
        same(&self.want, want)
            && current == self.before.as_ref()
            && now - self.at < WATCH_LAG_SECONDS
    }
}

/// One object to reconcile: what the compiler said, how far its gateways got, and the status it
/// has in the cluster now.
pub struct Observed<'a> {
    pub computed: &'a ObjectStatus,
    pub progress: Vec<GatewayProgress>,
    pub current: Option<&'a RouteStatus>,
    /// The object's uid in the cluster, for its Events.
    pub uid: Option<&'a str>,
}

impl Reconciler {
    /// Forgets what it holds of objects `keep` says are gone.
    pub fn retain(&mut self, keep: impl Fn(&(String, String, String)) -> bool) {
        self.written.retain(|k, _| keep(k));
        self.evented.retain(|k, _| keep(k));
        self.retry.retain(|k| keep(k));
    }

    /// Whether a write or an Event failed and is to be tried again.
    pub fn retrying(&self) -> bool {
        !self.retry.is_empty()
    }

    /// The objects it still has something to do for: a write not seen back yet, a write or
    /// an Event that failed.
    pub fn pending(&self) -> impl Iterator<Item = &(String, String, String)> {
        self.written.keys().chain(&self.retry)
    }

    /// Writes the statuses of `objects` that differ from what they have, and the Events of
    /// their rejected generations; returns how many statuses were written.
    pub async fn reconcile<S: StatusSink>(
        &mut self,
        sink: &S,
        objects: &[Observed<'_>],
        now: &Time,
    ) -> usize {
        let mut writes = 0;
        for o in objects {
            let key = (
                o.computed.kind.clone(),
                o.computed.namespace.clone(),
                o.computed.name.clone(),
            );
            let want = desired(o.computed, &o.progress, o.current, now);
            // Looked at now: pending again only if something below fails.
            self.retry.remove(&key);
            // The object's status as the watch cache has it is the truth; what this replica
            // wrote covers only the time the write takes to come back.
            let already = if o.current.is_some_and(|c| same(c, &want)) {
                self.written.remove(&key);
                true
            } else {
                let now = now.0.as_second();
                (self.written.get(&key)).is_some_and(|w| w.covers(same, &want, o.current, now))
            };
            if !already {
                match sink.apply_status(&key.0, &key.1, &key.2, &want).await {
                    Ok(()) => {
                        writes += 1;
                        let written = Written::new(want, o.current.cloned(), now.0.as_second());
                        self.written.insert(key.clone(), written);
                    }
                    Err(e) => {
                        tracing::warn!(kind = %key.0, namespace = %key.1, name = %key.2, error = %e, "writing status failed; retried at the next pass");
                        self.retry.insert(key.clone());
                    }
                }
            }
            let sent_for = (o.computed.generation, o.uid.map(String::from));
            if !o.computed.accepted() && self.evented.get(&key) != Some(&sent_for) {
                let mut note = o
                    .computed
                    .diagnostics
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                if let Some(served) = o.computed.served_generation {
                    note.push_str(&format!(" (generation {served} keeps serving)"));
                }
                if sink
                    .warn(&key.0, &key.1, &key.2, o.uid, "Invalid", &note)
                    .await
                    .is_ok()
                {
                    self.evented.insert(key, sent_for);
                } else {
                    self.retry.insert(key);
                }
            }
        }
        writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use frontdesk_crds::manifests::{parse_file, resources};

    #[derive(Default)]
    struct Recorder {
        statuses: Mutex<Vec<(String, RouteStatus)>>,
        events: Mutex<Vec<(String, String, String)>>,
    }

    impl StatusSink for Recorder {
        async fn apply_status(
            &self,
            _: &str,
            _: &str,
            name: &str,
            status: &RouteStatus,
        ) -> Result<(), String> {
            self.statuses
                .lock()
                .unwrap()
                .push((name.to_string(), status.clone()));
            Ok(())
        }
        async fn warn(
            &self,
            _: &str,
            _: &str,
            name: &str,
            _: Option<&str>,
            reason: &str,
            note: &str,
        ) -> Result<(), String> {
            self.events.lock().unwrap().push((
                name.to_string(),
                reason.to_string(),
                note.to_string(),
            ));
            Ok(())
        }
    }

    /// Refuses every write and Event while `down`.
    #[derive(Default)]
    struct Flaky {
        down: std::sync::atomic::AtomicBool,
        inner: Recorder,
    }

    impl StatusSink for Flaky {
        async fn apply_status(
            &self,
            kind: &str,
            namespace: &str,
            name: &str,
            status: &RouteStatus,
        ) -> Result<(), String> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("unavailable".into());
            }
            self.inner.apply_status(kind, namespace, name, status).await
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
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("unavailable".into());
            }
            self.inner
                .warn(kind, namespace, name, uid, reason, note)
                .await
        }
    }

    #[tokio::test]
    async fn failed_writes_and_events_stay_pending_until_they_go_through() {
        let statuses = compiled();
        let objects: Vec<Observed<'_>> = (statuses.iter())
            .map(|s| Observed {
                computed: s,
                progress: progress(1, 1),
                current: None,
                uid: Some("u"),
            })
            .collect();
        let sink = Flaky::default();
        sink.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut r = Reconciler::default();
        assert_eq!(r.reconcile(&sink, &objects, &now(100)).await, 0);
        assert_eq!(r.pending().count(), statuses.len(), "every write failed");
        assert!(r.retrying());
        sink.down.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            r.reconcile(&sink, &objects, &now(101)).await,
            statuses.len()
        );
        // Written (pending until seen back), and the rejected one's Event sent.
        assert_eq!(r.pending().count(), statuses.len());
        assert_eq!(sink.inner.events.lock().unwrap().len(), 1);
        r.retain(|_| false);
        assert_eq!(r.pending().count(), 0);
    }

    fn compiled() -> Vec<ObjectStatus> {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: shop}\nspec: {ports: [{port: 80}]}\n---\n\
            apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: good, namespace: shop, generation: 3}\n\
            spec: {gateways: [public], rules: [{backends: [{service: svc, port: 80}]}]}\n---\n\
            apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: bad, namespace: shop, generation: 2}\n\
            spec: {rules: [{matches: [{path: {value: no-slash}}], backends: [{service: svc, port: 80}]}]}\n---\n\
            apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: dangling, namespace: shop, generation: 1}\n\
            spec: {gateways: [public], rules: [{backends: [{service: missing, port: 80}]}]}\n";
        let parsed = parse_file("t.yaml", text);
        frontdesk_crds::compile(&resources(parsed.objects.iter().map(|(o, _)| o))).statuses
    }

    fn progress(acked: usize, connected: usize) -> Vec<GatewayProgress> {
        vec![GatewayProgress {
            gateway: "public".into(),
            acked,
            connected,
        }]
    }

    fn find<'a>(s: &'a RouteStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn now(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn a_policy_attached_by_target_refs_lists_its_ancestors_with_its_verdict() {
        let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
            metadata: {name: public, namespace: edge}\n\
            spec: {gatewayClassName: frontdesk, listeners: [{name: web, port: 80, protocol: HTTP}]}\n---\n\
            apiVersion: frontdesk.dev/v1alpha1\nkind: Policy\nmetadata: {name: limit, namespace: edge, generation: 2}\n\
            spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: public}], \
                   rateLimit: {limits: [{requests: 5, period: 1s}]}}\n";
        let parsed = parse_file("t.yaml", text);
        let mut r = resources(parsed.objects.iter().map(|(o, _)| o));
        r.gateway_class_optional = true;
        let statuses = frontdesk_crds::compile(&r).statuses;
        let policy = statuses.iter().find(|s| s.kind == "Policy").unwrap();
        let first = desired(policy, &[], None, &now(10));
        assert_eq!(first.ancestors.len(), 1);
        let ancestor = &first.ancestors[0];
        assert_eq!(
            (
                ancestor.ancestor_ref.kind.as_str(),
                ancestor.ancestor_ref.name.as_str()
            ),
            ("Gateway", "public")
        );
        assert_eq!(ancestor.controller_name, "frontdesk.dev/gateway-controller");
        let accepted = ancestor
            .conditions
            .iter()
            .find(|c| c.type_ == "Accepted")
            .unwrap();
        assert_eq!(
            (accepted.status.as_str(), accepted.observed_generation),
            ("True", Some(2))
        );
        // The same verdict later: nothing to write, and the transition time stays.
        let again = desired(policy, &[], Some(&first), &now(20));
        assert!(same(&first, &again));
        assert_eq!(
            again.ancestors[0].conditions[0].last_transition_time,
            now(10)
        );
    }

    #[tokio::test]
    async fn accepted_rejected_and_unresolved_routes_get_the_right_status_and_events() {
        let statuses = compiled();
        let by = |n: &str| statuses.iter().find(|s| s.name == n).unwrap();
        let sink = Recorder::default();
        let mut r = Reconciler::default();
        let objects = vec![
            Observed {
                computed: by("good"),
                progress: progress(2, 2),
                current: None,
                uid: None,
            },
            Observed {
                computed: by("bad"),
                progress: vec![],
                current: None,
                uid: None,
            },
            Observed {
                computed: by("dangling"),
                progress: progress(1, 2),
                current: None,
                uid: None,
            },
        ];
        assert_eq!(r.reconcile(&sink, &objects, &now(100)).await, 3);

        let written = sink.statuses.lock().unwrap().clone();
        let good = &written.iter().find(|(n, _)| n == "good").unwrap().1;
        assert_eq!(good.observed_generation, Some(3));
        assert_eq!(find(good, "Accepted").status, "True");
        assert_eq!(find(good, "ResolvedRefs").status, "True");
        let p = find(good, PROGRAMMED);
        assert_eq!(
            (p.status.as_str(), p.message.as_str()),
            ("True", "2/2 proxies of gateway public")
        );

        let bad = &written.iter().find(|(n, _)| n == "bad").unwrap().1;
        assert_eq!(
            (
                find(bad, "Accepted").status.as_str(),
                find(bad, "Accepted").reason.as_str()
            ),
            ("False", "Invalid")
        );
        assert!(
            find(bad, "Accepted")
                .message
                .contains("spec.rules[0].matches[0].path.value")
        );
        assert_eq!(find(bad, PROGRAMMED).status, "False");

        let dangling = &written.iter().find(|(n, _)| n == "dangling").unwrap().1;
        assert_eq!(find(dangling, "ResolvedRefs").reason, "BackendNotFound");
        assert!(
            find(dangling, "ResolvedRefs")
                .message
                .contains("Service shop/missing not found")
        );
        assert_eq!(find(dangling, PROGRAMMED).reason, "Pending");

        let events = sink.events.lock().unwrap().clone();
        assert_eq!(
            events.len(),
            1,
            "one Warning Event, for the rejected Route only"
        );
        assert_eq!(
            (events[0].0.as_str(), events[0].1.as_str()),
            ("bad", "Invalid")
        );
        assert!(events[0].2.contains("must start with '/'"));
        // The same generation again: no second Event. Deleted and recreated (another uid),
        // invalid again at the same generation: the new object gets its own.
        let again = |uid| Observed {
            computed: by("bad"),
            progress: vec![],
            current: None,
            uid,
        };
        r.reconcile(&sink, &[again(None)], &now(101)).await;
        assert_eq!(sink.events.lock().unwrap().len(), 1);
        r.reconcile(&sink, &[again(Some("recreated"))], &now(102))
            .await;
        assert_eq!(sink.events.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn unchanged_verdicts_are_not_rewritten_and_transition_times_survive() {
        let statuses = compiled();
        let good = statuses.iter().find(|s| s.name == "good").unwrap();
        let sink = Recorder::default();
        let mut r = Reconciler::default();
        let pending = [Observed {
            computed: good,
            progress: progress(1, 2),
            current: None,
            uid: None,
        }];
        r.reconcile(&sink, &pending, &now(100)).await;
        let first = sink.statuses.lock().unwrap()[0].1.clone();
        // The same verdict later: no write, no Event.
        let again = [Observed {
            computed: good,
            progress: progress(1, 2),
            current: Some(&first),
            uid: None,
        }];
        assert_eq!(r.reconcile(&sink, &again, &now(200)).await, 0);
        // Programmed flips: one write; Accepted keeps its transition time.
        let done = [Observed {
            computed: good,
            progress: progress(2, 2),
            current: Some(&first),
            uid: None,
        }];
        assert_eq!(r.reconcile(&sink, &done, &now(300)).await, 1);
        let second = sink.statuses.lock().unwrap()[1].1.clone();
        assert_eq!(find(&second, "Accepted").last_transition_time, now(100));
        assert_eq!(find(&second, PROGRAMMED).last_transition_time, now(300));
        assert!(sink.events.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_wiped_status_is_written_again_but_a_lagging_cache_is_waited_for() {
        let statuses = compiled();
        let good = statuses.iter().find(|s| s.name == "good").unwrap();
        let sink = Recorder::default();
        let mut r = Reconciler::default();
        let seen = |current| {
            [Observed {
                computed: good,
                progress: progress(2, 2),
                current,
                uid: None,
            }]
        };
        assert_eq!(r.reconcile(&sink, &seen(None), &now(100)).await, 1);
        let written = sink.statuses.lock().unwrap()[0].1.clone();
        // The write has not come back through the watch yet: not written again.
        assert_eq!(r.reconcile(&sink, &seen(None), &now(101)).await, 0);
        // It came back; then someone wiped the status (or the object was recreated without
        // one): the cache is the truth, so it is written again.
        assert_eq!(
            r.reconcile(&sink, &seen(Some(&written)), &now(102)).await,
            0
        );
        assert_eq!(r.reconcile(&sink, &seen(None), &now(103)).await, 1);
        // Another writer changed it to something else: written again too.
        let mut edited = written.clone();
        edited.conditions.retain(|c| c.type_ != PROGRAMMED);
        assert_eq!(
            r.reconcile(&sink, &seen(Some(&written)), &now(104)).await,
            0
        );
        assert_eq!(r.reconcile(&sink, &seen(Some(&edited)), &now(105)).await, 1);
        // A write that never comes back is made again after a while.
        assert_eq!(r.reconcile(&sink, &seen(Some(&edited)), &now(106)).await, 0);
        let later = now(105 + WATCH_LAG_SECONDS);
        assert_eq!(r.reconcile(&sink, &seen(Some(&edited)), &later).await, 1);
        assert_eq!(r.pending().count(), 1, "the write not seen back yet");
        // Objects gone are forgotten.
        r.retain(|_| false);
        assert!(r.written.is_empty() && r.evented.is_empty());
        assert_eq!(r.pending().count(), 0);
    }

    #[tokio::test]
    async fn a_rejected_generation_says_which_one_keeps_serving_and_how_far() {
        let statuses = compiled();
        let mut bad = statuses.iter().find(|s| s.name == "bad").unwrap().clone();
        bad.served_generation = Some(1);
        let sink = Recorder::default();
        let mut r = Reconciler::default();
        let objects = [Observed {
            computed: &bad,
            progress: progress(2, 2),
            current: None,
            uid: None,
        }];
        r.reconcile(&sink, &objects, &now(100)).await;
        let written = sink.statuses.lock().unwrap()[0].1.clone();
        assert_eq!(written.observed_generation, Some(2));
        assert_eq!(find(&written, "Accepted").status, "False");
        let p = find(&written, PROGRAMMED);
        assert_eq!(
            (p.status.as_str(), p.reason.as_str(), p.message.as_str()),
            (
                "False",
                "Invalid",
                "not accepted; proxies keep serving generation 1: \
                 2/2 proxies of gateway public"
            )
        );
        let events = sink.events.lock().unwrap().clone();
        assert!(
            events[0].2.ends_with("(generation 1 keeps serving)"),
            "{}",
            events[0].2
        );
    }
}
