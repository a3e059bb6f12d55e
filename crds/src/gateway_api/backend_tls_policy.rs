//! `gateway.networking.k8s.io/v1` BackendTLSPolicy: how the proxies speak TLS to a Service's
//! pods (standard channel since Gateway API v1.4). Only the fields frontdesk reads are typed;
//! the upstream CRD is the schema.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// TLS from the proxies to the Services it targets.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "BackendTLSPolicy",
    plural = "backendtlspolicies",
    namespaced,
    status = "PolicyStatus",
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct BackendTLSPolicySpec {
    /// The Services (group `""`, kind `Service`) of the policy's namespace it applies to, or
    /// one port of one (`sectionName`: the port's name).
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    pub validation: BackendTlsValidation,
    /// Implementation-specific settings; frontdesk defines none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A local object a policy targets, optionally one section (a Service's port name) of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetReference {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// What the proxy verifies of the backend's certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsValidation {
    /// ConfigMaps (or Secrets) of the policy's namespace with the CA bundle under `ca.crt`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificate_refs: Vec<LocalObjectReference>,
    /// `System`: the proxies' own trust (the public web PKI), instead of `caCertificateRefs`.
    #[serde(
        default,
        rename = "wellKnownCACertificates",
        skip_serializing_if = "Option::is_none"
    )]
    pub well_known_ca_certificates: Option<String>,
    /// Sent as SNI, and the name the certificate must carry.
    #[serde(default)]
    pub hostname: String,
    /// Names the certificate must carry instead of `hostname` (not read by this version:
    /// a policy with them is not accepted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<serde_json::Value>,
}

/// A local object by group, kind and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub name: String,
}

/// The status of a policy (GEP-713): per ancestor it takes effect through, its conditions.
///
/// The entries are kept as written: other controllers write theirs in the same list, and one
/// frontdesk cannot read must neither hide the policy nor be lost or rewritten when frontdesk
/// writes its own ([`PolicyAncestorStatus`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    #[serde(default)]
    pub ancestors: Vec<serde_json::Value>,
}

/// A policy's conditions as one controller sees them through one ancestor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    pub ancestor_ref: AncestorReference,
    pub controller_name: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A Gateway (or, for frontdesk's own Routes on a gateway without a Gateway object, the
/// Route) a policy takes effect through.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AncestorReference {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}
