//! Reflectors: the caches of the Kubernetes objects the compiler reads.
//!
//! One reflector per API handle (per watched namespace, or one for all), every event that may
//! change what is compiled waking the compile loop ([`crate::meaning`]: not status writes). Secrets are the exception: `SecretWatches` runs one filtered watch per
//! Secret reference of the Policies and Gateways ([`crate::secret_refs`]), started and stopped as the
//! references come and go, so the controller never lists Secrets nobody references. The
//! ConfigMaps Gateways name for client certificate validation are watched the same way
//! (`ConfigMapWatches`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::secret_refs::{Changes, WatchKey, changes};
use crate::watch_health::{Registration, WatchHealth, WatchId, list_backoff};

/// One API handle per watched namespace, or one for all namespaces.
pub(crate) fn typed_apis<K>(client: &Client, namespaces: &[String]) -> Vec<Api<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    }
}

/// What every watch reports to: the compile loop to wake, and the health registry its
/// failures go to ([`crate::watch_health`]).
#[derive(Clone)]
pub(crate) struct Watching {
    /// Woken by a change that needs a compile: an event that changes meaning, and a watch
    /// that starts or stops listing.
    pub(crate) changed: Arc<Notify>,
    /// Woken instead of `changed` by the events that change meaning, when set (EndpointSlices:
    /// the endpoint fast path).
    pub(crate) events: Option<Arc<Notify>>,
    pub(crate) health: Arc<WatchHealth>,
    /// Whether the compiler reads what these watches list (see [`WatchId::compiled`]).
    pub(crate) compiled: bool,
}

#[cfg(test)]
impl Default for Watching {
    /// Waking nothing, reporting to a registry of its own (tests).
    fn default() -> Self {
        Watching::new(Default::default(), Default::default())
    }
}

impl Watching {
    pub(crate) fn new(changed: Arc<Notify>, health: Arc<WatchHealth>) -> Self {
        Watching {
            changed,
            events: None,
            health,
            compiled: true,
        }
    }
}

/// One reflector per API handle; every event wakes the compile loop.
pub(crate) fn watch_kind<K>(
    apis: Vec<Api<K>>,
    watching: &Watching,
    dt: K::DynamicType,
    config: watcher::Config,
) -> Vec<Store<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    apis.into_iter()
        .map(|api| spawn_reflector(api, watching, dt.clone(), config.clone()).0)
        .collect()
}

/// A reflector on one API handle, the handle that stops it (its store then stays as it
/// was, and never becomes ready if it was not), and its id in the health registry.
///
/// A failed list or watch is retried after a [`Backoff`] that only a list or an event resets
/// (kube-runtime's `default_backoff` is reset by the `Init` the watcher emits before every
/// relist, so it never grows).
fn spawn_reflector<K>(
    api: Api<K>,
    watching: &Watching,
    dt: K::DynamicType,
    config: watcher::Config,
) -> (Store<K>, AbortHandle, Registration)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dt.clone());
    let reader = writer.as_reader();
    let selectors = [&config.field_selector, &config.label_selector];
    let id = WatchId {
        kind: K::kind(&dt).to_string(),
        namespace: api.namespace().unwrap_or_default().to_string(),
        selector: selectors
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
        compiled: watching.compiled,
    };
    let registration = watching.health.register(id);
    let stream = reflector::reflector(writer, watcher(api, config));
    let (changed, events, health, watch) = (
        watching.changed.clone(),
        watching.events.clone(),
        watching.health.clone(),
        registration.clone(),
    );
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut meanings = crate::meaning::Meanings::default();
        let mut backoff = list_backoff();
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    health.event();
                    // Status writes (the controller's own included) change nothing compiled.
                    let meaningful = meanings.changes(&event);
                    // `Init` (a relist begins) and its pages are no news yet: a failing list
                    // stays failing until it is done.
                    let arrived = matches!(
                        event,
                        watcher::Event::InitDone
                            | watcher::Event::Apply(_)
                            | watcher::Event::Delete(_)
                    );
                    let mut recovered = false;
                    if arrived {
                        backoff.reset();
                        recovered = health.listed(&watch);
                    }
                    if recovered {
                        changed.notify_one();
                    } else if meaningful {
                        events.as_ref().unwrap_or(&changed).notify_one();
                    }
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    let classified = crate::watch_health::classify(&e);
                    if health.failed(&watch, classified, wait) {
                        // What depends on it gets a Degraded condition.
                        changed.notify_one();
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    });
    (reader, task.abort_handle(), registration)
}

/// Every object in the stores.
pub(crate) fn all<K: Resource + Clone>(stores: &[Store<K>]) -> Vec<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    stores
        .iter()
        .flat_map(|s| s.state())
        .map(|o| (*o).clone())
        .collect()
}

/// A kind watched one reference at a time ([`RefWatches`]).
pub(crate) trait Referenced:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The watch of the objects `key` selects, filtered on the server's side.
    fn selected(key: &WatchKey) -> watcher::Config;
}

impl Referenced for Secret {
    fn selected(key: &WatchKey) -> watcher::Config {
        watcher::Config::default()
            .fields(&key.field_selector())
            .labels(&key.label_selector())
    }
}

impl Referenced for ConfigMap {
    /// By name only (CA bundles are named, never selected by labels).
    fn selected(key: &WatchKey) -> watcher::Config {
        watcher::Config::default().fields(&key.name_selector())
    }
}

/// The Secret watches, one per Secret reference of the Policies and Gateways.
pub(crate) type SecretWatches = RefWatches<Secret>;
/// The ConfigMap watches, one per CA bundle a Gateway's client validation names.
pub(crate) type ConfigMapWatches = RefWatches<ConfigMap>;

/// Watches of one kind, one per reference.
pub(crate) struct RefWatches<K: Referenced> {
    client: Client,
    watching: Watching,
    running: BTreeMap<WatchKey, RunningWatch<K>>,
}

struct RunningWatch<K: Referenced> {
    store: Store<K>,
    task: AbortHandle,
    registration: Registration,
    health: Arc<WatchHealth>,
}

impl<K: Referenced> Drop for RunningWatch<K> {
    fn drop(&mut self) {
        self.task.abort();
        self.health.forget(&self.registration);
    }
}

impl<K: Referenced> RefWatches<K> {
    pub(crate) fn new(client: Client, watching: Watching) -> Self {
        RefWatches {
            client,
            watching,
            running: BTreeMap::new(),
        }
    }

    /// Runs the watches `wanted` and no others. Waits until the new ones finished their initial
    /// list, so the compile that follows sees the Secrets a new or edited Policy references
    /// rather than reporting them missing, or failed it (403: the compile goes ahead without
    /// them, [`crate::watch_health`]); for at most `wait` when given (one watch that neither
    /// lists nor fails must not hold every other change back: the compile goes ahead, and the
    /// watch's list, when it comes, wakes the compile loop again).
    pub(crate) async fn follow(&mut self, wanted: &BTreeSet<WatchKey>, wait: Option<Duration>) {
        let Changes { start, stop } = changes(self.running.keys(), wanted);
        let kind = K::kind(&());
        for key in stop {
            tracing::debug!(%kind, namespace = %key.namespace, select = ?key.select, "no Policy or Gateway references these objects any more; stopping their watch");
            self.running.remove(&key);
        }
        let mut lists = Vec::new();
        for key in start {
            tracing::debug!(%kind, namespace = %key.namespace, select = ?key.select, "watching the objects a Policy or Gateway references");
            let api: Api<K> = Api::namespaced(self.client.clone(), &key.namespace);
            let (store, task, registration) =
                spawn_reflector(api, &self.watching, (), K::selected(&key));
            lists.push(registration.id.clone());
            let health = self.watching.health.clone();
            let watch = RunningWatch {
                store,
                task,
                registration,
                health,
            };
            self.running.insert(key, watch);
        }
        let listed = self.watching.health.settled(Some(&lists));
        match wait {
            None => {
                listed.await;
            }
            Some(wait) => {
                if tokio::time::timeout(wait, listed).await.is_err() {
                    tracing::warn!(
                        %kind,
                        ?wait,
                        "some watches have not listed yet; compiling without what they select"
                    );
                }
            }
        }
    }

    /// The watches' stores, for the compiler.
    pub(crate) fn stores(&self) -> Vec<Store<K>> {
        self.running.values().map(|w| w.store.clone()).collect()
    }

    /// The keys of the watches running.
    #[cfg(test)]
    pub(crate) fn running(&self) -> Vec<WatchKey> {
        self.running.keys().cloned().collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use http::{Request, Response};
    use kube::client::Body;

    use super::*;
    use crate::secret_refs::{WatchKey, wanted};

    /// A request the fake API server received.
    #[derive(Clone, Debug)]
    pub(crate) struct Seen {
        pub path: String,
        pub query: HashMap<String, String>,
    }

    impl Seen {
        fn watching(&self) -> bool {
            self.query.get("watch").is_some_and(|w| w == "true")
        }
    }

    /// A fake API server for Secrets behind a mock client: it answers each list with those of
    /// `secrets` its namespace and selectors match, as the API server would, keeps watches open
    /// without events, and records every request.
    pub(crate) fn fake_secrets_api(secrets: Vec<Secret>) -> (Client, Arc<Mutex<Vec<Seen>>>) {
        fake_objects_api(secrets, Vec::new())
    }

    /// [`fake_secrets_api`] that serves `config_maps` too, selected by name only (the API
    /// server refuses other fields for ConfigMaps).
    pub(crate) fn fake_objects_api(
        secrets: Vec<Secret>,
        config_maps: Vec<ConfigMap>,
    ) -> (Client, Arc<Mutex<Vec<Seen>>>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            let mut open_watches = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let query = request.uri().query().unwrap_or_default().as_bytes();
                let request = Seen {
                    path: request.uri().path().to_string(),
                    query: form_urlencoded::parse(query).into_owned().collect(),
                };
                if request.watching() {
                    open_watches.push(send);
                } else if let Some(namespace) = request
                    .path
                    .strip_prefix("/api/v1/namespaces/")
                    .and_then(|p| p.strip_suffix("/configmaps"))
                {
                    let name = request
                        .query
                        .get("fieldSelector")
                        .map(|f| f.strip_prefix("metadata.name=").expect("by name only"));
                    let items: Vec<&ConfigMap> = config_maps
                        .iter()
                        .filter(|m| m.metadata.namespace.as_deref() == Some(namespace))
                        .filter(|m| name.is_none() || m.metadata.name.as_deref() == name)
                        .collect();
                    let list = serde_json::json!({
                        "apiVersion": "v1", "kind": "ConfigMapList",
                        "metadata": {"resourceVersion": "1"}, "items": items,
                    });
                    send.send_response(Response::new(Body::from(
                        serde_json::to_vec(&list).unwrap(),
                    )));
                } else {
                    let namespace = request
                        .path
                        .strip_prefix("/api/v1/namespaces/")
                        .and_then(|p| p.strip_suffix("/secrets"));
                    let items: Vec<&Secret> = secrets
                        .iter()
                        .filter(|s| s.metadata.namespace.as_deref() == namespace)
                        .filter(|s| selects(&request.query, s))
                        .collect();
                    let list = serde_json::json!({
                        "apiVersion": "v1", "kind": "SecretList",
                        "metadata": {"resourceVersion": "1"}, "items": items,
                    });
                    send.send_response(Response::new(Body::from(
                        serde_json::to_vec(&list).unwrap(),
                    )));
                }
                record.lock().unwrap().push(request);
            }
        });
        (Client::new(service, "default"), seen)
    }

    /// Whether the `fieldSelector` and `labelSelector` of a request select `secret`.
    fn selects(query: &HashMap<String, String>, secret: &Secret) -> bool {
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        let field = |f: &str| match f {
            "metadata.name" => secret.metadata.name.clone(),
            "type" => secret.type_.clone(),
            _ => panic!("the API server refuses field {f} for Secrets"),
        };
        let holds = |term: &str, get: &dyn Fn(&str) -> Option<String>| match term.split_once("!=") {
            Some((k, v)) => get(k).as_deref() != Some(v),
            None => {
                let (k, v) = term.split_once('=').expect("k=v or k!=v");
                get(k).as_deref() == Some(v)
            }
        };
        let terms = |key: &str| {
            query
                .get(key)
                .map(|q| q.split(',').map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        terms("fieldSelector").iter().all(|t| holds(t, &field))
            && terms("labelSelector")
                .iter()
                .all(|t| holds(t, &|k: &str| labels.get(k).cloned()))
    }

    pub(crate) fn secret(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.namespace = Some(namespace.into());
        s.metadata.name = Some(name.into());
        s.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        s.type_ = Some("Opaque".into());
        s
    }

    pub(crate) fn policies(yaml: &str) -> Vec<frontdesk_crds::Policy> {
        let parsed = frontdesk_crds::manifests::parse_file("p.yaml", yaml);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed
            .objects
            .into_iter()
            .filter_map(|(o, _)| match o {
                frontdesk_crds::manifests::Object::Policy(p) => {
                    Some(std::sync::Arc::unwrap_or_clone(p))
                }
                _ => None,
            })
            .collect()
    }

    fn names(watches: &SecretWatches) -> Vec<String> {
        let mut names: Vec<String> = all(&watches.stores())
            .into_iter()
            .filter_map(|s| Some(format!("{}/{}", s.metadata.namespace?, s.metadata.name?)))
            .collect();
        names.sort();
        names
    }

    #[tokio::test(start_paused = true)]
    async fn a_secret_watch_that_cannot_list_holds_the_compile_back_for_a_while_only() {
        // An API server that never answers.
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let silent = tokio::spawn(async move {
            let mut pending = Vec::new();
            while let Some(request) = handle.next_request().await {
                pending.push(request);
            }
        });
        let mut watches = SecretWatches::new(Client::new(service, "default"), Default::default());
        let keys = [WatchKey::name("shop", "users")].into();
        let started = tokio::time::Instant::now();
        watches.follow(&keys, Some(Duration::from_secs(10))).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert_eq!(watches.running(), [WatchKey::name("shop", "users")]);
        silent.abort();
    }

    #[tokio::test]
    async fn secrets_are_asked_for_by_name_or_label_as_policies_reference_them_and_never_all() {
        let yaml = "\
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: shop-auth, namespace: shop}
spec:
  authentication:
    basic: {secretRef: {name: users}}
    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: orders}}}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: partner-auth, namespace: partners}
spec:
  authentication:
    jwt: {secretRef: {name: hmac}}
";
        let mut helm = secret(
            "shop",
            "sh.helm.release.v1.shop.v1",
            &[("frontdesk.dev/api-keys", "orders")],
        );
        helm.type_ = Some("helm.sh/release.v1".into());
        let (client, seen) = fake_secrets_api(vec![
            secret("shop", "users", &[]),
            secret("shop", "alice-key", &[("frontdesk.dev/api-keys", "orders")]),
            secret("shop", "unrelated", &[]),
            secret(
                "shop",
                "frontdesk-ca",
                &[
                    ("frontdesk.dev/api-keys", "orders"),
                    ("app.kubernetes.io/managed-by", "frontdesk-certs"),
                ],
            ),
            helm,
            secret("partners", "hmac", &[]),
            secret("partners", "users", &[]),
        ]);
        let mut watches = SecretWatches::new(client, Watching::default());
        let both = policies(yaml);
        let keys = wanted(&both);
        tokio::time::timeout(Duration::from_secs(10), watches.follow(&keys, None))
            .await
            .expect("the initial lists");
        assert_eq!(
            names(&watches),
            ["partners/hmac", "shop/alice-key", "shop/users"]
        );

        // Each watch lists, then watches, with its selectors.
        let requests = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let seen = seen.lock().unwrap().clone();
                if seen.iter().filter(|r| r.watching()).count() == 3 {
                    return seen;
                }
                drop(seen);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("three watch requests");
        let mut asked: Vec<(bool, &str, &str, &str)> = requests
            .iter()
            .map(|r| {
                (
                    r.watching(),
                    r.path.as_str(),
                    r.query["fieldSelector"].as_str(),
                    r.query["labelSelector"].as_str(),
                )
            })
            .collect();
        asked.sort();
        let not_theirs = "app.kubernetes.io/managed-by!=frontdesk-certs";
        let no_helm = "type!=helm.sh/release.v1";
        let api_keys =
            "frontdesk.dev/api-keys=orders,app.kubernetes.io/managed-by!=frontdesk-certs";
        let partners = "/api/v1/namespaces/partners/secrets";
        let shop = "/api/v1/namespaces/shop/secrets";
        let by_name = |n| format!("metadata.name={n},type!=helm.sh/release.v1");
        let (hmac, users) = (by_name("hmac"), by_name("users"));
        let mut expected = Vec::new();
        for watching in [false, true] {
            expected.push((watching, partners, hmac.as_str(), not_theirs));
            expected.push((watching, shop, users.as_str(), not_theirs));
            expected.push((watching, shop, no_helm, api_keys));
        }
        expected.sort();
        assert_eq!(asked, expected);
        // No request could return a Secret nobody references.
        for r in &requests {
            let named = r.query["fieldSelector"].starts_with("metadata.name=");
            let labelled = r.query["labelSelector"]
                .split(',')
                .any(|t| t.contains('=') && !t.contains("!="));
            assert!(named || labelled, "an unfiltered Secret request: {r:?}");
        }

        // The partners' Policy is gone: its watch stops, its Secret leaves the compiler's view.
        let shop_only = wanted(&both[..1]);
        watches.follow(&shop_only, None).await;
        assert_eq!(watches.running(), shop_only.into_iter().collect::<Vec<_>>());
        assert_eq!(names(&watches), ["shop/alice-key", "shop/users"]);
        assert!(
            !watches
                .running()
                .contains(&WatchKey::name("partners", "hmac"))
        );
    }
}
