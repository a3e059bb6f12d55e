//! Whether each watch can list what it watches: degrade, never block.
//!
//! A kind the API server does not serve (404: its CRD is not installed, or an old server
//! without EndpointSlice v1) or that the controller may not list (403: RBAC) must not stop
//! everything else. Each watch reports here; one whose list fails is
//! - logged (a warning on the first failure and whenever the error changes, then at debug),
//!   shown in the admin API's `/status` (`watches`), counted in the metrics
//!   `frontdesk_controller_watches_failing{kind}` and `..._watch_list_failures_total{kind}`,
//!   and named in a `Degraded` condition on the objects that depend on its kind
//!   ([`crate::degraded`]);
//! - waited on no longer: the first compile goes ahead once every watch has either listed or
//!   failed ([`WatchHealth::settled`]), without what the failing watch would have listed (a
//!   watch that listed before and fails later keeps its last list);
//! - retried with exponential backoff from [`FIRST_RETRY`] to [`MAX_RETRY`] ([`Backoff`]).
//!   kube-runtime's own backoff never grows here: its watcher emits `Init` before each
//!   relist, which resets it, so a 404 was asked again about once a second for ever.
//!
//! A kind that appears later (its CRD installed, its RBAC fixed) is listed by the next retry,
//! which wakes the compile loop like any list: no restart needed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use tokio::sync::watch;

use crate::metrics::{KindLabels, Metrics};

/// The first retry of a failed list comes after this long...
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// ...each next one after twice as long, up to this: a CRD installed later is found within it.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// The backoff between list retries (reset only by a list or an event that arrived).
pub fn list_backoff() -> crate::backoff::Backoff {
    crate::backoff::Backoff::new(FIRST_RETRY, MAX_RETRY)
}

/// One watch: of a kind, in a namespace or all, with the selectors of a filtered watch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct WatchId {
    pub kind: String,
    /// Empty: all namespaces (or a cluster-scoped kind).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The field and label selectors of a filtered watch, empty for a whole kind.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Whether the compiler reads what it lists (its failure degrades the objects that depend
    /// on it); the replicas' progress ConfigMaps are watched but not compiled.
    #[serde(skip)]
    pub compiled: bool,
}

/// Why a watch's list fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The API server's answer, e.g. `404 NotFound: the server could not find the requested
    /// resource`.
    pub error: String,
    /// Failed lists in a row.
    pub attempts: u32,
    /// Whether the watch listed before: then the compiler still has that list.
    pub listed_before: bool,
    pub retry_in_seconds: u64,
    /// Whether it holds the first compile back all the same: Policies the controller may not
    /// read (403) could be what protects other objects (attached by `targetRefs`), so
    /// compiling without them could serve unprotected what should not be.
    pub holds_first_compile: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Listing,
    Listed,
    Failing(Failure),
}

impl State {
    /// Whether the first compile still waits for this watch.
    fn pending(&self) -> bool {
        match self {
            State::Listing => true,
            State::Listed => false,
            State::Failing(f) => f.holds_first_compile,
        }
    }
}

/// One watch's entry: its id and the token of this registration (a watch stopped and
/// started again under the same id is another registration, which the old task, still
/// winding down, must not report for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub id: WatchId,
    token: u64,
}

/// What a failed list or watch means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classified {
    /// The API server refuses the list: the kind is not served (404) or the controller may not
    /// list it (403). Reported, waited on no longer.
    Refused { code: u16, error: String },
    /// Anything else (connection, 5xx, 429, a watch that expired or broke): retried, and the
    /// watch stays as it was (still listing, or listed with its last list).
    Transient(String),
}

/// How a failure of a reflector's stream is taken.
pub fn classify(error: &kube::runtime::watcher::Error) -> Classified {
    use kube::runtime::watcher::Error as W;
    match error {
        W::InitialListFailed(kube::Error::Api(s)) | W::WatchStartFailed(kube::Error::Api(s))
            if matches!(s.code, 403 | 404) =>
        {
            Classified::Refused {
                code: s.code,
                error: format!("{} {}: {}", s.code, s.reason, s.message),
            }
        }
        other => Classified::Transient(other.to_string()),
    }
}

/// The state of every running watch, shared by the watches, the compile loop and `/status`.
pub struct WatchHealth {
    states: Mutex<BTreeMap<WatchId, (u64, State)>>,
    next_token: std::sync::atomic::AtomicU64,
    /// Bumped on every change, to wake [`WatchHealth::settled`].
    changes: watch::Sender<u64>,
    failing: Family<KindLabels, Gauge>,
    failures: Family<KindLabels, Counter>,
    /// Events received by every watch, status writes included: the status loop looks again
    /// only when it moved.
    events: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
impl Default for WatchHealth {
    /// With metrics nobody exports (tests).
    fn default() -> Self {
        WatchHealth::new(&Metrics::new())
    }
}

impl WatchHealth {
    pub fn new(metrics: &Metrics) -> Self {
        WatchHealth {
            states: Mutex::new(BTreeMap::new()),
            next_token: Default::default(),
            changes: watch::channel(0).0,
            failing: metrics.watches_failing.clone(),
            failures: metrics.watch_list_failures.clone(),
            events: Default::default(),
        }
    }

    /// A watch starts: it is listing.
    pub fn register(&self, id: WatchId) -> Registration {
        let token = (self.next_token).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let registration = Registration { id, token };
        self.update(|states| {
            states.insert(registration.id.clone(), (token, State::Listing));
        });
        registration
    }

    /// A watch received an event.
    pub fn event(&self) {
        self.events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many events every watch received so far.
    pub fn events(&self) -> u64 {
        self.events.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A watch stopped: it is no longer reported, nor waited on.
    pub fn forget(&self, watch: &Registration) {
        self.update(|states| {
            if states
                .get(&watch.id)
                .is_some_and(|(t, _)| *t == watch.token)
            {
                states.remove(&watch.id);
            }
        });
    }

    /// The watch listed (or received an event): it is healthy. Returns whether it was failing.
    pub fn listed(&self, watch: &Registration) -> bool {
        let state = self.state(watch);
        match state {
            None | Some(State::Listed) => return false,
            Some(State::Listing | State::Failing(_)) => {}
        }
        let was_failing = matches!(state, Some(State::Failing(_)));
        self.update(|states| {
            if let Some((token, state)) = states.get_mut(&watch.id)
                && *token == watch.token
            {
                *state = State::Listed;
            }
        });
        if was_failing {
            let id = &watch.id;
            tracing::info!(kind = %id.kind, namespace = %id.namespace, selector = %id.selector, "the watch lists again");
        }
        was_failing
    }

    /// The watch's list or watch failed as `classified`; it is retried in `retry_in`.
    /// Returns whether the objects that depend on it need a new status (it just started being
    /// refused).
    pub fn failed(&self, watch: &Registration, classified: Classified, retry_in: Duration) -> bool {
        let id = &watch.id;
        let (kind, namespace, selector) = (&id.kind, &id.namespace, &id.selector);
        self.failures.get_or_create(&label(kind)).inc();
        let (code, error) = match classified {
            Classified::Refused { code, error } => (code, error),
            Classified::Transient(error) => {
                tracing::warn!(%kind, %namespace, %selector, %error, ?retry_in, "watch error; retrying");
                return false;
            }
        };
        let mut first = false;
        let mut changed_error = false;
        self.update(|states| {
            let Some((token, state)) = states.get_mut(&watch.id) else {
                return;
            };
            if *token != watch.token {
                return;
            }
            let failure = match state {
                State::Failing(f) => {
                    changed_error = f.error != error;
                    Failure {
                        error: error.clone(),
                        attempts: f.attempts + 1,
                        retry_in_seconds: retry_in.as_secs(),
                        ..f.clone()
                    }
                }
                State::Listing | State::Listed => {
                    first = true;
                    let listed_before = *state == State::Listed;
                    Failure {
                        error: error.clone(),
                        attempts: 1,
                        listed_before,
                        retry_in_seconds: retry_in.as_secs(),
                        holds_first_compile: code == 403 && id.kind == "Policy" && !listed_before,
                    }
                }
            };
            *state = State::Failing(failure);
        });
        if first || changed_error {
            tracing::warn!(%kind, %namespace, %selector, %error, ?retry_in, "cannot list; compiling without it and retrying with backoff");
        } else {
            tracing::debug!(%kind, %namespace, %selector, %error, ?retry_in, "still cannot list");
        }
        first
    }

    fn state(&self, watch: &Registration) -> Option<State> {
        let states = self.states.lock().expect("not poisoned");
        let (token, state) = states.get(&watch.id)?;
        (*token == watch.token).then(|| state.clone())
    }

    /// Waits until each of `ids` (every watch when `None`) has listed or been refused (a
    /// refused Policy list excepted, [`Failure::holds_first_compile`]): the compile needs what
    /// they list, but not for ever.
    pub async fn settled(&self, ids: Option<&[WatchId]>) {
        let mut changes = self.changes.subscribe();
        loop {
            let pending = {
                let states = self.states.lock().expect("not poisoned");
                match ids {
                    None => states.values().any(|(_, s)| s.pending()),
                    Some(ids) => ids
                        .iter()
                        .any(|id| states.get(id).is_some_and(|(_, s)| s.pending())),
                }
            };
            if !pending || changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// The watches failing now, by id.
    pub fn failing(&self) -> Vec<(WatchId, Failure)> {
        let states = self.states.lock().expect("not poisoned");
        states
            .iter()
            .filter_map(|(id, (_, s))| match s {
                State::Failing(f) => Some((id.clone(), f.clone())),
                _ => None,
            })
            .collect()
    }

    /// Whether a watch of one of `kinds` is refused and never listed: the compile does not
    /// know those objects at all.
    pub fn never_listed(&self, kinds: &[&str]) -> bool {
        self.failing()
            .iter()
            .any(|(id, f)| !f.listed_before && kinds.contains(&id.kind.as_str()))
    }

    /// For `/status`: the failing watches, and how many watch at all.
    pub fn describe(&self) -> serde_json::Value {
        let running = self.states.lock().expect("not poisoned").len();
        let failing: Vec<serde_json::Value> = self
            .failing()
            .into_iter()
            .map(|(id, failure)| {
                let mut entry = serde_json::to_value(&id).unwrap_or_default();
                if let (Some(entry), serde_json::Value::Object(failure)) = (
                    entry.as_object_mut(),
                    serde_json::to_value(&failure).unwrap_or_default(),
                ) {
                    entry.extend(failure);
                }
                entry
            })
            .collect();
        serde_json::json!({"running": running, "failing": failing})
    }

    /// Applies `change` and refreshes the failing gauge of every kind it concerns (a kind
    /// whose last watch went away drops to 0).
    fn update(&self, change: impl FnOnce(&mut BTreeMap<WatchId, (u64, State)>)) {
        let mut states = self.states.lock().expect("not poisoned");
        let mut per_kind: BTreeMap<String, i64> =
            states.keys().map(|id| (id.kind.clone(), 0)).collect();
        change(&mut states);
        for (id, (_, state)) in states.iter() {
            let count = per_kind.entry(id.kind.clone()).or_default();
            if matches!(state, State::Failing(_)) {
                *count += 1;
            }
        }
        for (kind, count) in per_kind {
            self.failing.get_or_create(&label(&kind)).set(count);
        }
        drop(states);
        self.changes.send_modify(|n| *n += 1);
    }
}

fn label(kind: &str) -> KindLabels {
    KindLabels { kind: kind.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, namespace: &str) -> WatchId {
        WatchId {
            kind: kind.into(),
            namespace: namespace.into(),
            selector: String::new(),
            compiled: true,
        }
    }

    fn refused(code: u16) -> Classified {
        let reason = if code == 404 { "NotFound" } else { "Forbidden" };
        Classified::Refused {
            code,
            error: format!("{code} {reason}: no"),
        }
    }

    #[tokio::test]
    async fn a_watch_is_settled_once_it_listed_or_was_refused() {
        let health = WatchHealth::default();
        let slices = health.register(id("EndpointSlice", ""));
        let routes = health.register(id("Route", ""));
        assert!(health.failed(&slices, refused(404), FIRST_RETRY));
        assert!(!health.failed(&slices, refused(404), FIRST_RETRY * 2));
        // Routes still listing: not settled.
        let wait = tokio::time::timeout(Duration::from_millis(20), health.settled(None));
        assert!(wait.await.is_err());
        health.settled(Some(std::slice::from_ref(&slices.id))).await;
        assert!(!health.listed(&routes));
        health.settled(None).await;
        let failing = health.failing();
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0].1.attempts, 2);
        assert!(!failing[0].1.listed_before);
        let described = health.describe();
        assert_eq!(described["running"], 2);
        assert_eq!(described["failing"][0]["kind"], "EndpointSlice");
        assert_eq!(described["failing"][0]["error"], "404 NotFound: no");
        assert!(health.listed(&slices));
        assert!(health.failing().is_empty());
        health.forget(&slices);
        assert_eq!(health.describe()["running"], 1);
    }

    #[tokio::test]
    async fn transient_errors_and_refused_policies_do_not_settle_the_first_compile() {
        let health = WatchHealth::default();
        let routes = health.register(id("Route", ""));
        let policies = health.register(id("Policy", ""));
        // An API server restarting, throttling: still listing, nothing reported.
        let down = Classified::Transient("connection refused".into());
        assert!(!health.failed(&routes, down.clone(), FIRST_RETRY));
        assert!(!health.failed(&policies, down, FIRST_RETRY));
        assert!(health.failing().is_empty());
        assert!(!health.listed(&routes));
        // Policies forbidden: reported, but the first compile still waits (they could be what
        // protects the Routes).
        assert!(health.failed(&policies, refused(403), FIRST_RETRY));
        assert!(health.failing()[0].1.holds_first_compile);
        let wait = tokio::time::timeout(Duration::from_millis(20), health.settled(None));
        assert!(wait.await.is_err());
        assert!(health.never_listed(&["Policy"]));
        // Listed at last.
        health.listed(&policies);
        health.settled(None).await;
        // A watch of a listed kind that breaks later (410 Gone, a dropped stream) is no news.
        let gone = Classified::Transient("410 Gone".into());
        assert!(!health.failed(&routes, gone, FIRST_RETRY));
        assert!(health.failing().is_empty());
    }

    #[test]
    fn a_stopped_watch_registered_again_is_not_reported_for_by_the_old_one() {
        let health = WatchHealth::default();
        let old = health.register(id("Secret", "shop"));
        health.forget(&old);
        let new = health.register(id("Secret", "shop"));
        // The old task, still winding down, fails and lists: the new registration is untouched.
        assert!(!health.failed(&old, refused(403), FIRST_RETRY));
        assert!(!health.listed(&old));
        assert!(health.failing().is_empty());
        health.forget(&old);
        assert_eq!(health.describe()["running"], 1);
        assert!(health.failed(&new, refused(403), FIRST_RETRY));
    }

    #[test]
    fn the_failing_gauge_counts_failing_watches_per_kind() {
        let metrics = Metrics::new();
        let health = WatchHealth::new(&metrics);
        let a = health.register(id("Secret", "shop"));
        let b = health.register(id("Secret", "partners"));
        health.failed(&a, refused(403), FIRST_RETRY);
        health.failed(&b, refused(403), FIRST_RETRY);
        health.failed(&b, refused(403), FIRST_RETRY);
        let text = metrics.encode();
        assert!(
            text.contains("frontdesk_controller_watches_failing{kind=\"Secret\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("frontdesk_controller_watch_list_failures_total{kind=\"Secret\"} 3"),
            "{text}"
        );
        health.listed(&a);
        health.forget(&a);
        // The last watch of the kind goes while failing: the gauge drops to 0, not stays at 1.
        health.forget(&b);
        assert!(
            metrics
                .encode()
                .contains("frontdesk_controller_watches_failing{kind=\"Secret\"} 0")
        );
    }
}
