//! One provisioning pass: for every Gateway of an accepted frontdesk GatewayClass, read its
//! parameters, build its objects ([`super::objects::build`]) and apply those that changed.
//!
//! A class whose parameters cannot be used is not accepted (`InvalidParameters`) and none of its
//! Gateways is provisioned; a Gateway whose own parameters cannot be used is not accepted either
//! and nothing of it is applied or changed. The other Gateways keep going. A ConfigMap that
//! cannot be fetched (the API server unreachable, no permission) is not a verdict on the
//! parameters: the Gateway waits for the next pass and keeps what it was told last.
//! Parameters ConfigMaps are fetched at most every [`PARAMETERS_TTL`], and at once when the
//! class or Gateway naming them changed (its resourceVersion), so the API server sees one GET
//! per ConfigMap per 30 s, not one per pass.
//!
//! Each object is applied when it differs from what this leader applied last; a failed
//! write is tried again after a wait that doubles, from 1 s up to a minute, as status writes
//! ([`crate::gateway_status`]). An object a Gateway no longer needs (its HPA once autoscaling is
//! off, its Service once it has no HTTP or HTTPS listener) is deleted; everything goes with the
//! Gateway through its owner reference.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use frontdesk_crds::gateway_api::{CONTROLLER_NAME, Gateway, GatewayClass, GatewayStatusAddress};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::ResourceExt;
use serde_json::Value;

use super::addresses::addresses;
use super::credentials::{IssuedSecret, read_state, secret_for};
use super::names::object_name;
use super::objects::{Settings, build};
use super::params::{self, ConfigMapRef, Effective, ParametersError, ProxyParameters};

/// The kind, namespace and name of an object (a GatewayClass's namespace is `""`).
pub type Key = (String, String, String);

/// What a pass found, for the status writer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// GatewayClasses and Gateways whose parameters cannot be used, with why: their `Accepted`
    /// is False, reason `InvalidParameters`.
    pub invalid: BTreeMap<Key, String>,
    /// The addresses of each provisioned Gateway's Service, by (namespace, name).
    pub addresses: BTreeMap<(String, String), Vec<GatewayStatusAddress>>,
}

/// The reason of `Accepted=False` for parameters that cannot be used.
pub const INVALID_PARAMETERS: &str = "InvalidParameters";

/// The API calls of provisioning: the kube client in a cluster, a mock in tests.
pub trait ProvisionSink {
    /// The ConfigMap `namespace/name`; `Ok(None)` when it does not exist.
    fn get_config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMap>, String>> + Send;
    /// The Secret `namespace/name` (only the CA state's, when issuing credentials).
    fn get_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Secret>, String>> + Send;
    /// Server-side apply of `object` (it carries apiVersion, kind, name and namespace).
    fn apply(&self, object: &Value) -> impl Future<Output = Result<(), String>> + Send;
    /// Deletes the `kind` (as in [`Key`]); gone already is fine.
    fn delete(&self, key: &Key) -> impl Future<Output = Result<(), String>> + Send;
}

/// The provisioning state of the leader: what it applied, and the writes waiting to retry.
pub struct Provisioner {
    settings: Settings,
    defaults: Effective,
    /// ConfigMaps fetched, and when: fetched again after [`PARAMETERS_TTL`], or when the class or
    /// Gateway naming them changed.
    config_maps: HashMap<ConfigMapRef, (tokio::time::Instant, Result<Option<ConfigMap>, String>)>,
    /// The resourceVersion of each class and Gateway at the last pass.
    versions: HashMap<Key, String>,
    /// The CA state, when issuing credentials, and when it was fetched.
    ca: Option<(tokio::time::Instant, Result<crate::certs::State, String>)>,
    /// The credentials Secret issued for each Gateway (namespace, name).
    issued: HashMap<(String, String), IssuedSecret>,
    /// What was applied last, by object, and the Gateway it is for.
    applied: HashMap<Key, (Value, (String, String))>,
    failed: HashMap<Key, Failed>,
    last: Report,
}

struct Failed {
    want: Value,
    /// The Gateway it is for.
    owner: (String, String),
    retry_at: tokio::time::Instant,
    backoff: crate::backoff::Backoff,
}

/// How long a fetched parameters ConfigMap is used before it is fetched again: an edit to it
/// applies within this (an edit of the class or Gateway naming it, at once).
pub const PARAMETERS_TTL: Duration = Duration::from_secs(30);

impl Provisioner {
    pub fn new(settings: Settings) -> Provisioner {
        let defaults = Effective::defaults(&settings.image);
        Provisioner {
            settings,
            defaults,
            config_maps: HashMap::new(),
            versions: HashMap::new(),
            ca: None,
            issued: HashMap::new(),
            applied: HashMap::new(),
            failed: HashMap::new(),
            last: Report::default(),
        }
    }

    /// One pass over every class and Gateway known; `services` are the cluster's Services
    /// (for the Gateways' addresses).
    pub async fn pass<S: ProvisionSink>(
        &mut self,
        sink: &S,
        classes: &[GatewayClass],
        gateways: &[Gateway],
        services: &[Service],
    ) -> Report {
        let mut report = Report::default();
        let now = tokio::time::Instant::now();
        // What the last pass fetched, unless stale or named by an object that changed since.
        let mut changed_refs: HashSet<ConfigMapRef> = HashSet::new();
        let mut versions = HashMap::new();
        let class_objects = classes.iter().map(|c| {
            let key = ("GatewayClass".to_string(), String::new(), c.name_any());
            let at = c.spec.parameters_ref.as_ref().and_then(|r| {
                params::config_map_ref(&r.group, &r.kind, &r.name, r.namespace.as_deref(), None)
                    .ok()
            });
            (key, c.resource_version(), at)
        });
        let gateway_objects = gateways.iter().map(|g| {
            let namespace = g.namespace().unwrap_or_default();
            let key = ("Gateway".to_string(), namespace.clone(), g.name_any());
            let at = g
                .spec
                .infrastructure
                .as_ref()
                .and_then(|i| i.parameters_ref.as_ref())
                .and_then(|r| {
                    params::config_map_ref(&r.group, &r.kind, &r.name, None, Some(&namespace)).ok()
                });
            (key, g.resource_version(), at)
        });
        for (key, version, at) in class_objects.chain(gateway_objects) {
            let version = version.unwrap_or_default();
            if self.versions.get(&key) != Some(&version) {
                changed_refs.extend(at);
            }
            versions.insert(key, version);
        }
        self.versions = versions;
        let mut fetched: HashMap<ConfigMapRef, Result<Option<ConfigMap>, String>> = self
            .config_maps
            .iter()
            .filter(|(at, (when, _))| {
                now.duration_since(*when) < PARAMETERS_TTL && !changed_refs.contains(*at)
            })
            .map(|(at, (_, got))| (at.clone(), got.clone()))
            .collect();
        let before: HashSet<ConfigMapRef> = fetched.keys().cloned().collect();
        // Each of our classes: its parameters, or why there are none to use.
        let mut class_parameters: HashMap<String, Option<(ConfigMapRef, ProxyParameters)>> =
            HashMap::new();
        for class in classes
            .iter()
            .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
        {
            let name = class.name_any();
            let key = ("GatewayClass".to_string(), String::new(), name.clone());
            let resolved = match &class.spec.parameters_ref {
                None => Ok(None),
                Some(r) => match params::config_map_ref(
                    &r.group,
                    &r.kind,
                    &r.name,
                    r.namespace.as_deref(),
                    None,
                ) {
                    Err(e) => Err(e),
                    Ok(at) => load(sink, &mut fetched, &at).await.map(|p| Some((at, p))),
                },
            };
            match resolved {
                Ok(p) => {
                    class_parameters.insert(name, p);
                }
                Err(e) => self.refused(&mut report, key, e),
            }
        }
        let ca = self.ca_state(sink, now).await;
        let mut provisioned: HashSet<(String, String)> = HashSet::new();
        // A Gateway whose name an older one of another namespace has is not served
        // (NameConflict), so it gets no proxies and no credentials naming that gateway.
        let ours: Vec<&Gateway> = gateways
            .iter()
            .filter(|g| class_parameters.contains_key(&g.spec.gateway_class_name))
            .collect();
        let namesakes = frontdesk_crds::compile::gateways::younger_namesakes(&ours);
        for gateway in gateways {
            let Some(class) = class_parameters.get(&gateway.spec.gateway_class_name) else {
                continue; // another controller's class, or ours not accepted
            };
            let id = (gateway.namespace().unwrap_or_default(), gateway.name_any());
            if namesakes.contains(&id) {
                tracing::warn!(namespace = %id.0, name = %id.1, "a Gateway of an older Gateway's name is not provisioned (NameConflict)");
                continue;
            }
            if gateway.uid().is_none() || gateway.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let (namespace, name) = (gateway.namespace().unwrap_or_default(), gateway.name_any());
            let key = ("Gateway".to_string(), namespace.clone(), name.clone());
            let own = gateway
                .spec
                .infrastructure
                .as_ref()
                .and_then(|i| i.parameters_ref.as_ref());
            let own = match own {
                None => Ok(None),
                Some(r) => {
                    match params::config_map_ref(&r.group, &r.kind, &r.name, None, Some(&namespace))
                    {
                        Err(e) => Err(e),
                        Ok(at) => load(sink, &mut fetched, &at).await.map(|p| Some((at, p))),
                    }
                }
            };
            let own = match own {
                Ok(own) => own,
                Err(e) => {
                    self.refused(&mut report, key, e);
                    provisioned.insert((namespace, name)); // keep what it has
                    continue;
                }
            };
            let layers: Vec<&(ConfigMapRef, ProxyParameters)> =
                class.iter().chain(own.iter()).collect();
            let parameters: Vec<&ProxyParameters> = layers.iter().map(|(_, p)| p).collect();
            let effective = match params::merge(&self.defaults, &parameters) {
                Ok(e) => e,
                Err((field, reason)) => {
                    let from: Vec<String> = layers
                        .iter()
                        .map(|(at, _)| format!("ConfigMap {}/{}", at.namespace, at.name))
                        .collect();
                    let message = format!(
                        "parameters ({}, key {}), {field}: {reason}",
                        from.join(" then "),
                        params::CONFIG_MAP_KEY
                    );
                    tracing::warn!(%namespace, %name, %message, "a Gateway's parameters are invalid; it is not provisioned");
                    report.invalid.insert(key, message);
                    provisioned.insert((namespace, name));
                    continue;
                }
            };
            let mut objects = build(gateway, &effective, &self.settings);
            if let Some(ca) = &ca {
                let owner = (namespace.clone(), name.clone());
                let secret = super::objects::credentials_secret(&self.settings, &name);
                let unix = k8s_openapi::jiff::Timestamp::now().as_second();
                let previous = self.issued.get(&owner);
                let issued = ca
                    .as_ref()
                    .map_err(String::clone)
                    .and_then(|state| secret_for(gateway, &secret, state, unix, previous));
                match issued {
                    Ok(issued) => {
                        objects.push(issued.secret.clone());
                        self.issued.insert(owner, issued);
                    }
                    Err(e) => {
                        tracing::warn!(%namespace, %name, error = %e, "cannot issue the Gateway's channel credentials; its proxies wait for them");
                        // Keep what was issued: no Secret deleted for a CA state read badly.
                        objects.extend(previous.map(|p| p.secret.clone()));
                    }
                }
            }
            self.apply(sink, &namespace, &name, objects).await;
            let service = object_name(&name);
            if let Some(s) = services.iter().find(|s| {
                s.metadata.namespace.as_deref() == Some(namespace.as_str())
                    && s.metadata.name.as_deref() == Some(service.as_str())
            }) {
                report
                    .addresses
                    .insert((namespace.clone(), name.clone()), addresses(s));
            }
            provisioned.insert((namespace, name));
        }
        // Keep what was fetched this pass (a failed fetch is tried again next pass).
        self.config_maps.retain(|at, _| fetched.contains_key(at));
        for (at, got) in fetched {
            if got.is_ok() && !before.contains(&at) {
                self.config_maps.insert(at, (now, got));
            }
        }
        // Gateways gone or no longer ours: forget them (their objects go with the Gateway).
        self.applied.retain(|_, (_, g)| provisioned.contains(g));
        self.issued.retain(|g, _| provisioned.contains(g));
        self.failed.retain(|_, f| provisioned.contains(&f.owner));
        self.last = report.clone();
        report
    }

    /// The CA state when issuing credentials (`None` when not), fetched at most every
    /// [`PARAMETERS_TTL`]; a failed fetch is tried again next pass.
    async fn ca_state<S: ProvisionSink>(
        &mut self,
        sink: &S,
        now: tokio::time::Instant,
    ) -> Option<Result<crate::certs::State, String>> {
        let (namespace, name) = self.settings.issue_credentials.clone()?;
        if let Some((when, Ok(state))) = &self.ca
            && now.duration_since(*when) < PARAMETERS_TTL
        {
            return Some(Ok(state.clone()));
        }
        let state = match sink.get_secret(&namespace, &name).await {
            Ok(Some(secret)) => read_state(&secret),
            Ok(None) => Err(format!(
                "the CA Secret {namespace}/{name} does not exist (yet): the certs job makes it"
            )),
            Err(e) => Err(format!("reading the CA Secret {namespace}/{name}: {e}")),
        };
        self.ca = Some((now, state.clone()));
        Some(state)
    }

    /// Records why `key`'s parameters are refused; a fetch that failed keeps the last verdict.
    fn refused(&self, report: &mut Report, key: Key, error: ParametersError) {
        if let ParametersError::Unreadable { .. } = error {
            tracing::warn!(kind = %key.0, namespace = %key.1, name = %key.2, error = %error, "parameters cannot be fetched; trying again");
            if let Some(previous) = self.last.invalid.get(&key) {
                report.invalid.insert(key, previous.clone());
            }
            return;
        }
        tracing::warn!(kind = %key.0, namespace = %key.1, name = %key.2, error = %error, "parameters cannot be used");
        report.invalid.insert(key, error.to_string());
    }

    /// Applies the objects of one Gateway that changed, and deletes those it no longer has.
    async fn apply<S: ProvisionSink>(
        &mut self,
        sink: &S,
        namespace: &str,
        gateway: &str,
        objects: Vec<Value>,
    ) {
        let owner = (namespace.to_string(), gateway.to_string());
        let now = tokio::time::Instant::now();
        let mut keys = HashSet::new();
        for object in objects {
            let key = key_of(&object);
            keys.insert(key.clone());
            if self.applied.get(&key).is_some_and(|(v, _)| *v == object) {
                continue;
            }
            let waiting = self
                .failed
                .get(&key)
                .is_some_and(|f| f.want == object && now < f.retry_at);
            if waiting {
                continue;
            }
            match sink.apply(&object).await {
                Ok(()) => {
                    tracing::info!(kind = %key.0, namespace = %key.1, name = %key.2, %gateway, "provisioned");
                    self.failed.remove(&key);
                    self.applied.insert(key, (object, owner.clone()));
                }
                Err(e) => {
                    let mut backoff = (self.failed.remove(&key))
                        .filter(|f| f.want == object)
                        .map_or_else(crate::backoff::Backoff::for_writes, |f| f.backoff);
                    let wait = backoff.next_wait();
                    tracing::warn!(kind = %key.0, namespace = %key.1, name = %key.2, error = %e, retry_in = ?wait, "provisioning failed");
                    self.failed.insert(
                        key,
                        Failed {
                            want: object,
                            owner: owner.clone(),
                            retry_at: now + wait,
                            backoff,
                        },
                    );
                }
            }
        }
        let stale: Vec<Key> = self
            .applied
            .iter()
            .filter(|(k, (_, g))| *g == owner && !keys.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            match sink.delete(&key).await {
                Ok(()) => {
                    self.applied.remove(&key);
                }
                Err(e) => {
                    tracing::warn!(kind = %key.0, namespace = %key.1, name = %key.2, error = %e, "deleting what a Gateway no longer needs failed")
                }
            }
        }
    }
}

/// Fetches (once per pass) and reads the ConfigMap `at`.
async fn load<S: ProvisionSink>(
    sink: &S,
    fetched: &mut HashMap<ConfigMapRef, Result<Option<ConfigMap>, String>>,
    at: &ConfigMapRef,
) -> Result<ProxyParameters, ParametersError> {
    if !fetched.contains_key(at) {
        let got = sink.get_config_map(&at.namespace, &at.name).await;
        fetched.insert(at.clone(), got);
    }
    match &fetched[at] {
        Err(reason) => Err(ParametersError::Unreadable {
            namespace: at.namespace.clone(),
            name: at.name.clone(),
            reason: reason.clone(),
        }),
        Ok(config_map) => params::read(at, config_map.as_ref()),
    }
}

fn key_of(object: &Value) -> Key {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (
        text("/kind"),
        text("/metadata/namespace"),
        text("/metadata/name"),
    )
}
