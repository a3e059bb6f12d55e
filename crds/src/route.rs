//! The Route custom resource: where a request goes.
//!
//! Every field carries a doc comment because it becomes the `description` in the CRD schema and
//! is what `kubectl explain route.spec.rules` prints.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Route sends requests that match its rules to backends, or answers them with a redirect or a
/// fixed response.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "frontdesk.dev",
    version = "v1alpha1",
    kind = "Route",
    namespaced,
    status = "RouteStatus",
    shortname = "rt",
    category = "frontdesk",
    doc = "Route sends requests that match its rules to backends, or answers them with a redirect or a fixed response.",
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hosts"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Programmed","type":"string","jsonPath":".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    /// Gateways that serve this object: `name` (the Gateway of this namespace, else a gateway
    /// group such as `public`) or `namespace/name`, subject to the Gateway's `allowedRoutes`
    /// (docs/gateways.md). Defaults to `[default]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,

    /// Host names this Route answers for: exact (`api.example.com`) or a wildcard covering one
    /// or more leading labels (`*.example.com` matches `a.example.com` and `a.b.example.com`, not
    /// `example.com`). Compared case-insensitively, without the port. Empty means every host.
    /// A request is matched against the Routes of its exact host first, then the longest
    /// wildcard, then the Routes without hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,

    /// Policies (in this Route's namespace) applied to every rule, in order; a rule's own
    /// `policies` come after them. For each section (authentication, authorization), the last
    /// Policy in the list that has it wins, and the override is reported in the Route's
    /// `Conflicted` condition. A Policy that is missing or invalid makes the Route
    /// ResolvedRefs=False and its rules answer 503: traffic is never let through unchecked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,

    /// Rules, each with conditions and an action. When several rules of any Routes (and
    /// HTTPRoutes) match a request, the most specific wins, in the Gateway API's order: an
    /// Exact path beats a PathPrefix or Template, the one with more characters beats the
    /// shorter, and any of them beats a RegularExpression; then a match with a method
    /// condition; then the one with more header conditions; then more query conditions; then
    /// the older Route; then the Route's namespace/name; then the earlier rule.
    pub rules: Vec<RouteRule>,
}

/// One rule: conditions and an action (`backends`, `redirect` or `directResponse`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteRule {
    /// Name of the rule, unique within the Route; shows in metrics and logs. Defaults to
    /// `rule-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// The request matches the rule when any of these matches it. Empty means every request
    /// (a PathPrefix of `/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,

    /// Policies for this rule alone, applied after the Route's `policies`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,

    /// Rewrites of the path and Host header before the request goes to a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,

    /// Edits of the request headers before the request goes to a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderModifier>,

    /// Edits of the response headers before the response goes to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderModifier>,

    /// How long to wait for a backend's response headers, as a duration (`500ms`, `10s`,
    /// `1m`). Past it the client gets 504. Defaults to 15s. A streamed response body is not cut
    /// off by this timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,

    /// Tries again what failed at a backend: a connection that could not be made or broke, a
    /// response head that did not come in time, or a status named in `on`. Each try goes to
    /// another endpoint when there is one. None by default. Only with `backends`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,

    /// Weighted backends the request is sent to. Exactly one of `backends`, `redirect` and
    /// `directResponse` must be set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendRef>,

    /// REST/JSON to gRPC: the `backends` are gRPC servers (`protocol: h2c` or `h2`), and a
    /// request that matches a method's `google.api.http` annotation is sent as that gRPC call,
    /// its answer coming back as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_transcode: Option<GrpcTranscodeSpec>,

    /// Answer with an HTTP redirect instead of calling a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectAction>,

    /// Answer with a fixed response instead of calling a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<DirectResponseAction>,
}

/// Where a rule's gRPC descriptors come from, and what it serves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcTranscodeSpec {
    /// A `FileDescriptorSet` with its imports (`protoc --include_imports
    /// --descriptor_set_out=...`, or `buf build -o ...`): a key of a ConfigMap's `binaryData`
    /// or of a Secret, in the Route's namespace. Exclusive with `protos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_set_ref: Option<DescriptorSetRef>,

    /// A ConfigMap of the Route's namespace whose `data` keys ending in `.proto` are the
    /// sources, compiled by the controller (imports between them by key name;
    /// `google/api/annotations.proto`, `google/api/http.proto` and `google/protobuf/*` are
    /// known). Exclusive with `descriptorSetRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protos_config_map: Option<String>,

    /// The services served (`package.Service`); every service with an annotated method when
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,

    /// How a server-streaming method answers: `JsonArray` (default: one JSON array, written
    /// as the messages arrive) or `NewlineDelimited` (one JSON object per line,
    /// `application/x-ndjson`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<TranscodeStreamingSpec>,
}

/// A key of a ConfigMap's `binaryData` or of a Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DescriptorSetRef {
    /// `ConfigMap` (default) or `Secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the ConfigMap or Secret.
    pub name: String,
    /// The key holding the `FileDescriptorSet`.
    pub key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TranscodeStreamingSpec {
    JsonArray,
    NewlineDelimited,
}

/// How a rule's failed tries are tried again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retries {
    /// How many times a request may be tried again after its first try (1 to 10).
    pub attempts: u32,

    /// Deadline of each try for the backend's response headers (`500ms`, `2s`). Defaults to the
    /// rule's `timeout`, which bounds all tries together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,

    /// What is tried again: `connect-failure` (no connection could be made), `reset` (the
    /// connection broke before a response head), `timeout` (no response head within
    /// `perTryTimeout`), `5xx` (any 5xx response, and the three before), `gateway-error` (502,
    /// 503 or 504, and the three before), `retriable-4xx` (409), or a status code. Defaults to
    /// `[connect-failure, reset, 503]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<IntOrString>,

    /// Base of the exponential backoff between tries, with jitter (`25ms`, the default): the
    /// n-th retry waits between half and all of base × 2^(n-1), at most 10 × base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,

    /// Retry methods that are not idempotent (POST, PATCH) too. Off by default: they are
    /// tried again only when no connection could be made, as the request never left.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_idempotent: bool,

    /// Bounds retries per backend so a failing backend never gets a retry storm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RetryBudget>,
}

/// A bound on a backend's retries: at most `percent` of its requests over the last 10
/// seconds, or `minPerSecond` per second, whichever allows more.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Share of the backend's requests that may be retries, in percent (1 to 100; default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,

    /// Retries per second allowed whatever the share (default 3), so a backend with little
    /// traffic can still be retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_per_second: Option<u32>,
}

/// Conditions on the request; all that are given must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    /// Condition on the path. Defaults to a PathPrefix of `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,

    /// HTTP methods accepted (`GET`, `POST`, ...). Empty means any method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,

    /// Conditions on request headers; header names are case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,

    /// Conditions on query parameters; names are case-sensitive. A parameter given several
    /// times matches when any of its values does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<ValueMatch>,

    /// A gRPC service, or one of its methods: shorthand for a `POST` to `/<service>/<method>`
    /// (Exact), or to every method of the service (`/<service>` as a PathPrefix, whole
    /// segments). Exclusive with `path` and `methods`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcMatch>,
}

/// A gRPC service and method, as in `/package.Service/Method`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMatch {
    /// The fully qualified service name: `package.Service` (`grpc.health.v1.Health`).
    pub service: String,
    /// The method (`Check`); every method of the service without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// A condition on the request path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathMatch {
    /// How `value` is compared with the path. Defaults to PathPrefix.
    #[serde(default, rename = "type")]
    pub kind: PathMatchType,

    /// The path, prefix, template or regular expression. Starts with `/` except for a
    /// RegularExpression. Written naturally: it is put in the canonical form request paths
    /// are matched in (percent-escapes decoded where that keeps the path's structure, dot
    /// segments resolved, repeated slashes merged; see docs/routes.md).
    pub value: String,

    /// Compare letter case-insensitively, for a case-insensitive backend (IIS, some
    /// frameworks) that serves `/Admin` as `/admin`: a Policy on this match then covers every
    /// spelling. Defaults to false (paths are case-sensitive).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
}

/// How a path is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PathMatchType {
    /// The whole path, byte for byte (the query string is not part of the path).
    Exact,
    /// Leading whole segments: `/api/orders` matches `/api/orders` and `/api/orders/7`, not
    /// `/api/ordersX`. A trailing `/` in the value is ignored.
    #[default]
    PathPrefix,
    /// Segments with captures: `/orders/{id}` matches `/orders/7` (one non-empty segment per
    /// capture). Captures can be used in `rewrite.path` and `redirect.path`.
    Template,
    /// A regular expression (RE2 syntax) that must match the whole path.
    RegularExpression,
}

/// A condition on one header or query parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueMatch {
    /// Name of the header or query parameter.
    pub name: String,

    /// How `value` is compared. Defaults to Exact.
    #[serde(default, rename = "type")]
    pub kind: ValueMatchType,

    /// The value or regular expression; not used with Present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// How a header or query value is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ValueMatchType {
    /// The whole value, byte for byte.
    #[default]
    Exact,
    /// A regular expression (RE2 syntax) that must match the whole value.
    RegularExpression,
    /// The header or parameter is present, whatever its value.
    Present,
}

/// Rewrites applied before the request goes to a backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rewrite {
    /// Replace the whole path. May use the captures of Template matches: `/v2/orders/{id}`.
    /// The query string is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// Replace the matched PathPrefix, keeping the rest of the path: with a match on
    /// `/api/orders` and `pathPrefix: /orders`, `/api/orders/7` goes upstream as `/orders/7`.
    /// Only with PathPrefix matches; exclusive with `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,

    /// Replace the Host header sent to the backend. By default the client's Host is kept (and
    /// also sent as X-Forwarded-Host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Header edits, applied in the order remove, set, add.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderModifier {
    /// Headers to set, replacing any values already present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,

    /// Headers to append, keeping values already present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,

    /// Names of headers to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,

    /// Names among `set` and `add` whose values are credentials (an upstream token, say): sent
    /// as written, shown as `<redacted>` in the proxy's `/config` and in logs. Authorization,
    /// Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key and names containing `token`,
    /// `secret`, `password`, `credential`, `session`, `api-key`, `apikey`, `auth` or
    /// `signature` are treated so unlisted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
}

/// A backend: a Kubernetes Service port, or a URL.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendRef {
    /// Name of a Service in the Route's namespace. Requests go straight to its ready endpoints
    /// (from its EndpointSlices), balanced round robin. Exclusive with `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,

    /// The Service port (its `port`, not the target port). Required with `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,

    /// An `http://host:port` or `https://host:port` address, for backends outside the cluster
    /// or in standalone mode. No path, query or credentials. Exclusive with `service`. An
    /// `https://` backend is verified against the public web PKI and the URL's host unless
    /// `tls` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Relative share of the requests this backend gets. Defaults to 1; 0 sends it nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,

    /// TLS to the backend (a Service whose pods speak HTTPS, or an `https://` url): the name to
    /// verify, what to trust, and a client certificate for mutual TLS. Shaped like the Gateway
    /// API's BackendTLSPolicy validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTlsSpec>,

    /// The HTTP version spoken to the backend: `http1` (the default), `h2c` (HTTP/2 in
    /// plaintext, with prior knowledge: gRPC servers without TLS), `h2` (HTTP/2 over TLS; the
    /// backend must pick `h2` by ALPN), or `auto` (over TLS, `h2` when the backend picks it by
    /// ALPN, else HTTP/1.1; in plaintext, HTTP/1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<BackendProtocol>,
}

/// The HTTP version spoken to a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendProtocol {
    Http1,
    H2c,
    H2,
    Auto,
}

impl From<BackendProtocol> for frontdesk_snapshot::BackendProtocol {
    fn from(p: BackendProtocol) -> Self {
        match p {
            BackendProtocol::Http1 => Self::Http1,
            BackendProtocol::H2c => Self::H2c,
            BackendProtocol::H2 => Self::H2,
            BackendProtocol::Auto => Self::Auto,
        }
    }
}

/// How the proxy speaks TLS to a backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTlsSpec {
    /// Sent as SNI, and the name the certificate must carry. Required for a Service backend;
    /// an `https://` url's host by default (and always, for a Policy's services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,

    /// ConfigMaps or Secrets of the object's own namespace holding the CA certificates to
    /// trust (PEM, under `ca.crt`). Without them, the public web PKI is trusted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificate_refs: Vec<LocalCaReference>,

    /// A `kubernetes.io/tls` Secret of the object's own namespace (`tls.crt`, `tls.key`) the
    /// proxy presents when the server asks for a client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_ref: Option<LocalSecretName>,
}

/// A ConfigMap (the default) or Secret of the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalCaReference {
    /// `ConfigMap` (default) or `Secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the ConfigMap or Secret.
    pub name: String,
}

/// A Secret of the same namespace, by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalSecretName {
    /// Name of the Secret.
    pub name: String,
}

/// An HTTP redirect. Parts not given keep the request's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectAction {
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,

    /// Host name of the Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,

    /// Port of the Location; omitted from it when it is the scheme's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,

    /// Path of the Location; may use Template captures like `rewrite.path`. The query string
    /// is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// Replace the matched PathPrefix, as `rewrite.pathPrefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,

    /// 301, 302 (default), 303, 307 or 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

/// A fixed response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectResponseAction {
    /// HTTP status, 200 to 599.
    pub status: u16,

    /// Response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,

    /// Content-Type of the body. Defaults to `text/plain; charset=utf-8` when there is a body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// Observed state of a Route, written by the controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Accepted` (the Route is valid), `ResolvedRefs` (every Service it names was found) and
    /// `Programmed` (the proxies of its gateways serve this generation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Policies only: the Gateways (or, on a gateway without a Gateway object, the routes) the
    /// Policy takes effect through by its `targetRefs`, each with frontdesk's conditions, as
    /// Gateway API policy attachment (GEP-713) writes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// Where a Policy takes effect, and frontdesk's verdict there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The Gateway (group `gateway.networking.k8s.io`), or the route.
    pub ancestor_ref: PolicyAncestorRef,
    /// `frontdesk.dev/gateway-controller`.
    pub controller_name: String,
    /// `Accepted`, and `ResolvedRefs` when the Policy names Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A Gateway or route, by group, kind, namespace and name.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorRef {
    /// `gateway.networking.k8s.io`, or `frontdesk.dev` for a Route.
    pub group: String,
    /// `Gateway`, or the route's kind.
    pub kind: String,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}
