//! The Aggregate custom resource: one request, many backends, one answer.
//!
//! Every field carries a doc comment: it becomes the CRD's `description`, which
//! `kubectl explain aggregate.spec` prints.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::route::{BackendRef, RouteStatus};

/// Aggregate answers one request by calling several backends (in parallel unless `dependsOn`
/// orders them) and merging their JSON answers.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "frontdesk.dev",
    version = "v1alpha1",
    kind = "Aggregate",
    namespaced,
    status = "RouteStatus",
    shortname = "agg",
    category = "frontdesk",
    doc = "Aggregate answers one request by calling several backends and merging their JSON answers.",
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".spec.path"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Programmed","type":"string","jsonPath":".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AggregateSpec {
    /// Gateways that serve this object: `name` (the Gateway of this namespace, else a gateway
    /// group such as `public`) or `namespace/name`, subject to the Gateway's `allowedRoutes`
    /// (docs/gateways.md). Defaults to `[default]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,

    /// Host names it answers for, as in a Route. Empty means every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,

    /// Path template, e.g. `/api/product-details/{id}`: each `{name}` captures one segment,
    /// usable in the calls' paths. Ranked with Routes as a Template path.
    pub path: String,

    /// HTTP methods accepted. Defaults to `[GET]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,

    /// Policies (authentication, authorization, rate limits) applied before any call is made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,

    /// Deadline for the whole answer (`2s`). Defaults to 5s. Optional calls still running at
    /// the deadline are reported as failed; a required one makes the answer 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,

    /// Request headers sent along to every call. `x-request-id` always is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_headers: Vec<String>,

    /// Largest answer accepted from one call (e.g. `1Mi`, `512Ki`, or bytes). Defaults to 1Mi.
    /// A larger answer is a failed call ("too large"), never truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_call_bytes: Option<String>,

    /// The backend calls. Names are unique; calls run in parallel unless `dependsOn` says
    /// otherwise.
    pub calls: Vec<CallSpec>,

    /// How the answers are merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseSpec>,
}

/// One backend call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallSpec {
    /// Name of the call (a DNS label): its key in the answer unless `rename` is set, and how
    /// other calls refer to it.
    pub name: String,
    /// The backend: a Service and port, or a url (`http://host:port`), as in a Route.
    pub backend: BackendRef,
    /// Path and query sent, with placeholders: `{id}` (a capture of `path`) or
    /// `{call.field.path}` (a field of a call listed in `dependsOn`, as it appears in the
    /// answer). Every value is percent-encoded, so it can never add a segment, a parameter or
    /// a fragment.
    pub path: String,
    /// When true, a failure of this call fails the whole answer (502, or 504 on a timeout) and
    /// cancels the calls still running. Otherwise its key is `null` and the failure is listed
    /// in `_errors` and the `frontdesk-aggregate-errors` header.
    #[serde(default)]
    pub required: bool,
    /// Deadline of this call. Defaults to the Aggregate's `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Calls that must succeed first; their results can be used in `path`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Keep only these fields (dot paths into objects; applied to every element of an array).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<String>,
    /// Use this field (dot path) as the result instead of the whole answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<String>,
    /// Key of the result in the answer. Defaults to `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
    /// Tries again when the call fails, as a Route rule's `retries` do (the call's `timeout`
    /// bounds every try together). Calls are GETs, so every condition applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<crate::route::Retries>,
}

/// How the answer is built.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseSpec {
    /// `Nested` (default): `{"<key>": <result>, ...}`. `Flat`: the members of every result
    /// (objects) side by side; on a collision the call declared first keeps the member and the
    /// collision is listed in `_errors`; a result that is not an object stays under its key.
    #[serde(default)]
    pub merge: MergeSpec,
}

/// Merge modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MergeSpec {
    /// One member per call.
    #[default]
    Nested,
    /// The results' members side by side.
    Flat,
}
