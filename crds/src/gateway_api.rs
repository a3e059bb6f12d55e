//! The Gateway API kinds frontdesk reads: `gateway.networking.k8s.io/v1` GatewayClass, Gateway,
//! HTTPRoute ([`http_route`]), GRPCRoute ([`grpc_route`]) and BackendTLSPolicy
//! ([`backend_tls_policy`]), and `v1beta1` ReferenceGrant.
//!
//! Written here with kube 5 rather than taken from the `gateway-api` crate, which pins another
//! kube major. Only the fields frontdesk uses are typed; users install the upstream CRDs (standard
//! channel, v1.3 or newer), so every other field of a real object is accepted and ignored:
//! nothing here denies unknown fields, and values the upstream schema may grow (protocols, TLS
//! modes) are kept as strings for the compiler to judge. No CRD is generated from these types
//! (`schema = "disabled"`): the upstream ones are the schema.

pub mod backend_tls_policy;
pub mod grpc_route;
pub mod http_route;

pub use backend_tls_policy::BackendTLSPolicy;
pub use grpc_route::GRPCRoute;
pub use http_route::HTTPRoute;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The API group of every kind here.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The `controllerName` of the GatewayClasses frontdesk implements.
pub const CONTROLLER_NAME: &str = "frontdesk.dev/gateway-controller";

/// The conformance features frontdesk claims (conformance/features.txt), sorted by name as
/// GatewayClass `status.supportedFeatures` lists them.
pub fn supported_features() -> Vec<&'static str> {
    let mut features: Vec<&str> = include_str!("../../conformance/features.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    features.sort_unstable();
    features
}

// === GatewayClass ===

/// A class of Gateways and the controller that implements them.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "GatewayClass",
    status = "GatewayClassStatus",
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// Which controller implements the class: frontdesk's is [`CONTROLLER_NAME`].
    pub controller_name: String,
    /// Class-wide parameters (replicas, Service type, ...), read by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<ParametersReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A reference to a parameters object of any kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParametersReference {
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What the class's implementation supports, as conformance feature names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_features: Vec<SupportedFeature>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportedFeature {
    pub name: String,
}

// === Gateway ===

/// Where traffic comes in: listeners (ports, protocols, hostnames, certificates) of one class.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "Gateway",
    namespaced,
    status = "GatewayStatus",
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    pub gateway_class_name: String,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Where the Gateway's own infrastructure parameters are (read by the controller when it
    /// provisions the Gateway's proxies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<GatewayInfrastructure>,
    /// Gateway-wide TLS settings: client certificate validation (GEP-91).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTlsSettings>,
}

/// `spec.tls` of a Gateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTlsSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<FrontendTls>,
}

/// How clients' certificates are validated: `default` for every HTTPS listener, `perPort`
/// for the listeners of one port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<FrontendTlsConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_port: Vec<FrontendTlsPerPort>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTlsPerPort {
    pub port: i32,
    #[serde(default)]
    pub tls: FrontendTlsConfig,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTlsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<FrontendValidation>,
}

/// Client certificate validation: the CAs that clients' certificates must chain to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendValidation {
    /// ConfigMaps (Core) or Secrets with the PEM bundle under `ca.crt`.
    #[serde(default)]
    pub ca_certificate_refs: Vec<CaCertificateReference>,
    /// `AllowValidOnly` (the default): a connection without a valid certificate is refused;
    /// `AllowInsecureFallback`: it is served, without a client identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// A reference to an object holding CA certificates (kind `ConfigMap` or `Secret`, core group).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaCertificateReference {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Infrastructure of one Gateway: labels and annotations for what is provisioned for it, and
/// a reference to parameters in the Gateway's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayInfrastructure {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<LocalParametersReference>,
}

/// A reference to a parameters object in the referrer's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalParametersReference {
    pub group: String,
    pub kind: String,
    pub name: String,
}

/// One port, protocol and (optional) hostname of a Gateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub name: String,
    /// Exact (`api.example.com`) or one leading wildcard label (`*.example.com`); absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// 1-65535 upstream; kept wide so an out-of-range value is reported, not unreadable.
    pub port: i32,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP` or a domain-prefixed name: frontdesk serves the
    /// first two.
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTlsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<AllowedRoutes>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTlsConfig {
    /// `Terminate` (the default) or `Passthrough`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<SecretObjectReference>,
    /// The listener-level client validation of Gateway API v1.2 to v1.4 (experimental), read
    /// when the Gateway's `spec.tls.frontend` says nothing for this listener's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend_validation: Option<FrontendValidation>,
}

/// A reference to a Secret (by default: group `""`, kind `Secret`, the Gateway's namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Which Routes may attach to a listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<RouteNamespaces>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<RouteGroupKind>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteNamespaces {
    /// `Same` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<FromNamespaces>,
    /// For `from: Selector`: the labels of the namespaces allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromNamespaces {
    All,
    #[default]
    Same,
    Selector,
}

/// A kind of Route (group defaults to the Gateway API's own).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteGroupKind {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub kind: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Where the Gateway is reachable (the provisioned Service's address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewayStatusAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatusAddress {
    /// `IPAddress` or `Hostname`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    #[serde(default)]
    pub supported_kinds: Vec<RouteGroupKind>,
    #[serde(default)]
    pub attached_routes: i32,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

// === ReferenceGrant ===

/// Lets objects of other namespaces refer to objects of this one (here: Gateways to Secrets).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1beta1",
    kind = "ReferenceGrant",
    namespaced,
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantSpec {
    pub from: Vec<ReferenceGrantFrom>,
    pub to: Vec<ReferenceGrantTo>,
}

/// Who may refer: objects of `group`/`kind` in `namespace`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

/// To what: objects of `group`/`kind` in the grant's namespace, all of them or the one `name`d.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantTo {
    pub group: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ReferenceGrant {
    /// Whether this grant lets a `from_kind` of `from_namespace` refer to the `to_kind` named
    /// `to_name` in the grant's own namespace.
    pub fn permits(
        &self,
        (from_group, from_kind, from_namespace): (&str, &str, &str),
        (to_group, to_kind, to_name): (&str, &str, &str),
    ) -> bool {
        let from =
            self.spec.from.iter().any(|f| {
                f.group == from_group && f.kind == from_kind && f.namespace == from_namespace
            });
        let to = self.spec.to.iter().any(|t| {
            t.group == to_group
                && t.kind == to_kind
                && t.name.as_deref().is_none_or(|n| n == to_name)
        });
        from && to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        let value: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
        crate::manifests::typed(value).unwrap_or_else(|(f, e)| panic!("{f}: {e}"))
    }

    /// The spec's own examples (gateway-api.sigs.k8s.io guides), with the fields and status an
    /// API server adds, read as they are and written back without losing what we type.
    #[test]
    fn the_specs_examples_read_and_round_trip() {
        let class: GatewayClass = read(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
             metadata: {name: frontdesk}\n\
             spec:\n  controllerName: frontdesk.dev/gateway-controller\n  \
             description: frontdesk's gateways\n  \
             parametersRef: {group: frontdesk.dev, kind: GatewayParameters, name: default, namespace: frontdesk}\n\
             status:\n  conditions:\n    - {type: Accepted, status: 'True', reason: Accepted, message: '', \
             lastTransitionTime: '2026-11-30T00:00:00Z', observedGeneration: 1}\n  \
             supportedFeatures: [{name: Gateway}, {name: HTTPRoute}]\n",
        );
        assert_eq!(class.spec.controller_name, CONTROLLER_NAME);
        assert_eq!(
            class.spec.parameters_ref.as_ref().unwrap().kind,
            "GatewayParameters"
        );
        assert_eq!(
            class.status.as_ref().unwrap().conditions[0].type_,
            "Accepted"
        );

        let gateway: Gateway = read(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
             metadata: {name: public, namespace: edge, generation: 2}\n\
             spec:\n  gatewayClassName: frontdesk\n  \
             infrastructure: {labels: {team: edge}}\n  \
             addresses: [{type: IPAddress, value: 10.0.0.1}]\n  \
             listeners:\n    \
             - {name: http, port: 80, protocol: HTTP}\n    \
             - name: https\n      port: 443\n      protocol: HTTPS\n      hostname: '*.example.com'\n      \
             tls:\n        mode: Terminate\n        \
             certificateRefs: [{kind: Secret, group: '', name: example-com-tls, namespace: certs}]\n        \
             options: {example.com/ciphers: modern}\n      \
             allowedRoutes:\n        namespaces:\n          from: Selector\n          \
             selector: {matchLabels: {shared-gateway-access: 'true'}}\n        \
             kinds: [{kind: HTTPRoute}]\n\
             status:\n  addresses: [{type: IPAddress, value: 203.0.113.7}]\n  conditions: []\n  \
             listeners:\n    - name: https\n      attachedRoutes: 3\n      \
             supportedKinds: [{group: gateway.networking.k8s.io, kind: HTTPRoute}]\n      conditions: []\n",
        );
        let https = &gateway.spec.listeners[1];
        assert_eq!(https.hostname.as_deref(), Some("*.example.com"));
        let tls = https.tls.as_ref().unwrap();
        assert_eq!(tls.mode.as_deref(), Some("Terminate"));
        assert_eq!(tls.certificate_refs[0].namespace.as_deref(), Some("certs"));
        let allowed = https.allowed_routes.as_ref().unwrap();
        assert_eq!(
            allowed.namespaces.as_ref().unwrap().from,
            Some(FromNamespaces::Selector)
        );
        assert_eq!(allowed.kinds[0].kind, "HTTPRoute");
        let status = gateway.status.as_ref().unwrap();
        assert_eq!(status.listeners[0].attached_routes, 3);
        assert_eq!(status.addresses[0].value, "203.0.113.7");

        let grant: ReferenceGrant = read(
            "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n\
             metadata: {name: edge-gateways, namespace: certs}\n\
             spec:\n  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: edge}]\n  \
             to: [{group: '', kind: Secret, name: example-com-tls}]\n",
        );
        let gw = (GROUP, "Gateway", "edge");
        assert!(grant.permits(gw, ("", "Secret", "example-com-tls")));
        assert!(!grant.permits(gw, ("", "Secret", "other")));
        assert!(!grant.permits((GROUP, "Gateway", "web"), ("", "Secret", "example-com-tls")));

        // What we write back reads back the same, and says what it is.
        for json in [
            serde_json::to_value(&class).unwrap(),
            serde_json::to_value(&gateway).unwrap(),
            serde_json::to_value(&grant).unwrap(),
        ] {
            assert!(
                json["apiVersion"].as_str().unwrap().starts_with(GROUP),
                "{json}"
            );
        }
        assert_eq!(
            read::<Gateway>(&serde_json::to_string(&gateway).unwrap()),
            gateway
        );
        assert_eq!(
            read::<GatewayClass>(&serde_json::to_string(&class).unwrap()),
            class
        );
        assert_eq!(
            read::<ReferenceGrant>(&serde_json::to_string(&grant).unwrap()),
            grant
        );
    }

    #[test]
    fn protocols_and_modes_frontdesk_does_not_serve_still_read() {
        let gateway: Gateway = read(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n\
             spec:\n  gatewayClassName: other\n  listeners:\n    \
             - {name: tcp, port: 5432, protocol: TCP}\n    \
             - {name: tls, port: 8443, protocol: TLS, tls: {mode: Passthrough}}\n    \
             - {name: custom, port: 9000, protocol: example.com/quic}\n",
        );
        let protocols: Vec<&str> = gateway
            .spec
            .listeners
            .iter()
            .map(|l| l.protocol.as_str())
            .collect();
        assert_eq!(protocols, ["TCP", "TLS", "example.com/quic"]);
    }
}
