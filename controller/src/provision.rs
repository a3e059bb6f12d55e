//! Provisioning: the controller makes each accepted frontdesk Gateway's proxies itself
//! (Deployment, Service, ServiceAccount, HPA, PDB in the Gateway's namespace, owned by it) and
//! reports the Service's address in the Gateway's `status.addresses`.
//!
//! Opt-in (`--provision-gateways`): without it the controller provisions nothing and proxies
//! come from the chart, as before. Only the lease holder applies, by server-side apply with
//! the field manager `frontdesk-controller`, as it writes status.
//!
//! - [`names`]: how provisioned objects are named and labelled;
//! - [`params`]: the parameters ConfigMap, its schema and how layers merge;
//! - [`objects`]: the pure builder, Gateway + parameters + settings to objects;
//! - [`addresses`]: a Gateway's addresses, from its Service;
//! - [`reconcile`]: one pass, what to apply and what to report;
//! - this module: the kube calls and the loop.
//!
//! Channel credentials: the Deployment mounts the Secret `--proxy-credentials-secret` names
//! (`{gateway}` replaced by the Gateway's name) from the Gateway's namespace. With
//! `--issue-gateway-credentials` the controller issues it ([`credentials`]); without, it is
//! made otherwise: the chart's certificate job makes them for the gateways of its `gateways:`
//! values, in the release namespace.

pub mod addresses;
pub mod credentials;
pub mod names;
pub mod objects;
pub mod params;
pub mod reconcile;
#[cfg(test)]
mod tests;

use std::time::Duration;

use frontdesk_crds::gateway_api::{Gateway, GatewayClass};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::watch;

use crate::cluster::FIELD_MANAGER;
use crate::gateway_api::GatewayApiStores;
pub use objects::Settings;
pub use reconcile::{INVALID_PARAMETERS, Key, ProvisionSink, Provisioner, Report};

/// How often the leader looks at every Gateway again.
const PASS_INTERVAL: Duration = Duration::from_secs(5);

/// Provisioning by the kube client.
pub struct KubeProvisioner {
    pub client: Client,
}

/// The API of a kind provisioning applies.
fn api_resource(kind: &str) -> Option<ApiResource> {
    let (group, version, plural) = match kind {
        "ServiceAccount" => ("", "v1", "serviceaccounts"),
        "Secret" => ("", "v1", "secrets"),
        "Service" => ("", "v1", "services"),
        "Deployment" => ("apps", "v1", "deployments"),
        "HorizontalPodAutoscaler" => ("autoscaling", "v2", "horizontalpodautoscalers"),
        "PodDisruptionBudget" => ("policy", "v1", "poddisruptionbudgets"),
        _ => return None,
    };
    Some(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

impl KubeProvisioner {
    fn api(&self, kind: &str, namespace: &str) -> Result<Api<DynamicObject>, String> {
        let ar = api_resource(kind).ok_or_else(|| format!("{kind} is not provisioned"))?;
        Ok(Api::namespaced_with(self.client.clone(), namespace, &ar))
    }
}

impl ProvisionSink for KubeProvisioner {
    async fn get_config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, String> {
        Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())
    }

    async fn get_secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())
    }

    async fn apply(&self, object: &Value) -> Result<(), String> {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let api = self.api(text("/kind"), text("/metadata/namespace"))?;
        api.patch(
            text("/metadata/name"),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    async fn delete(&self, (kind, namespace, name): &Key) -> Result<(), String> {
        match self
            .api(kind, namespace)?
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Reads the objects of a kind leniently: one that cannot be read is left out (the compiler
/// reports it).
fn typed<T: serde::de::DeserializeOwned>(stores: &[Store<DynamicObject>]) -> Vec<T> {
    stores
        .iter()
        .flat_map(|s| s.state())
        .filter_map(|o| serde_json::to_value(&*o).ok())
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

/// Provisions while this replica leads, publishing each pass's [`Report`] to `report`.
pub(crate) async fn run(
    client: Client,
    settings: Settings,
    gateway_api: watch::Receiver<Option<GatewayApiStores>>,
    services: Vec<Store<Service>>,
    mut leader: watch::Receiver<bool>,
    report: watch::Sender<Report>,
) {
    let sink = KubeProvisioner { client };
    let mut provisioner = Provisioner::new(settings.clone());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PASS_INTERVAL) => {}
            _ = leader.changed() => {
                // Another replica may have applied in between: forget what we applied.
                provisioner = Provisioner::new(settings.clone());
            }
        }
        if !*leader.borrow() {
            continue;
        }
        let stores = gateway_api.borrow().clone();
        let Some(stores) = stores else {
            continue;
        };
        let classes: Vec<GatewayClass> = typed(&stores.classes);
        let gateways: Vec<Gateway> = typed(&stores.gateways);
        let services: Vec<Service> = crate::watch::all(&services);
        let found = provisioner
            .pass(&sink, &classes, &gateways, &services)
            .await;
        report.send_if_modified(|r| {
            let changed = *r != found;
            *r = found;
            changed
        });
    }
}
