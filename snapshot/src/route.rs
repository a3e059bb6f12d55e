//! Compiled routes: what the proxy matches requests against and what it does with them.
//!
//! Plain structs refuse unknown fields, so a proxy older than its controller says so instead
//! of silently ignoring configuration. serde cannot combine that with internally tagged enums
//! or `flatten`, so those (and `ValueMatch`) accept them; `validate()` is the backstop.

use serde::{Deserialize, Serialize};

/// One compiled Route object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    pub namespace: String,
    pub name: String,
    /// Lower-case host names, exact (`api.example.com`) or wildcard (`*.example.com`, one or more
    /// labels). Empty means every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The listener ports it is served on; empty: every port of the gateway. A Gateway API
    /// route attached to some of a Gateway's listeners only is not matched on the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    pub rules: Vec<Rule>,
}

/// One rule: conditions (any of `matches`) and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// `namespace/route/rule`; shows in metrics and logs.
    pub id: String,
    pub matches: Vec<Match>,
    /// Deadline for the upstream response headers, in milliseconds.
    pub timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub request_headers: HeaderOps,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub response_headers: HeaderOps,
    /// Key of the effective policy in `Snapshot::policies`, if the rule has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// How failed tries against the backends are tried again (forwards only); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<crate::Retries>,
    /// REST/JSON to gRPC transcoding to the backends (forwards only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_transcode: Option<crate::GrpcTranscode>,
    /// Backends that get a copy of the requests forwarded (forwards only), their answers
    /// ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Mirror>,
    pub action: Action,
}

/// A backend that gets a copy of some of a rule's requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mirror {
    pub backend: Backend,
    /// The share of requests copied, in millionths (1,000,000: every one).
    pub share_ppm: u32,
}

/// One set of conditions; all must hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    /// Position in the gateway-wide precedence order: when several matches accept a request,
    /// the lowest rank wins. Unique within a snapshot.
    pub rank: u32,
    pub path: PathMatch,
    /// The path is compared without regard to ASCII letter case.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
    /// Upper-case method names; empty means any method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<ValueMatch>,
}

/// How the request path is matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PathMatch {
    /// The whole path, byte for byte.
    Exact { value: String },
    /// Whole leading segments: `/api` matches `/api` and `/api/x`, not `/apix`. Stored without a
    /// trailing slash (`/` is the empty prefix).
    Prefix { value: String },
    /// Segment by segment; a capture matches exactly one non-empty segment.
    Template {
        value: String,
        segments: Vec<Segment>,
    },
    /// A regular expression that must match the whole path (implicitly anchored).
    RegularExpression { value: String },
}

/// A piece of a path template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Segment {
    Literal(String),
    Capture(String),
}

/// A condition on a header or a query parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueMatch {
    /// Header names are lower-case; query parameter names are case-sensitive.
    pub name: String,
    #[serde(flatten)]
    pub kind: ValueMatchKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ValueMatchKind {
    Exact {
        value: String,
    },
    /// Implicitly anchored: the whole value must match.
    RegularExpression {
        value: String,
    },
    Present,
}

/// Rewrites applied to the request before it goes upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// Replaces the Host header (and `:authority`) sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PathRewrite {
    /// Replace the whole path; captures of a Template match are substituted.
    Full { parts: Vec<Segment> },
    /// Replace the matched PathPrefix with `value`, keeping the rest of the path.
    Prefix { value: String },
}

/// Header edits, applied in the order remove, set, add.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderOps {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<Header>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<Header>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A header to set or add. A `sensitive` value (a credential for the backend, a session
/// cookie) travels to the proxy in full but is shown as `<redacted>` wherever a snapshot is
/// shown to a person ([`crate::secret::redacted`], `Debug`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Lower-case.
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub sensitive: bool,
}

impl Header {
    /// The value as it may be shown: itself, or `<redacted>` when sensitive.
    fn shown(&self, redacting: bool) -> &str {
        if self.sensitive && redacting {
            crate::secret::REDACTED
        } else {
            &self.value
        }
    }
}

impl Serialize for Header {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut h = s.serialize_struct("Header", 2 + usize::from(self.sensitive))?;
        h.serialize_field("name", &self.name)?;
        h.serialize_field("value", self.shown(crate::secret::redacting()))?;
        if self.sensitive {
            h.serialize_field("sensitive", &true)?;
        }
        h.end()
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("name", &self.name)
            .field("value", &self.shown(true))
            .finish()
    }
}

/// What a matched rule does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Action {
    /// Proxy to one of the weighted backends.
    Forward {
        backends: Vec<Backend>,
    },
    Redirect(Redirect),
    DirectResponse(DirectResponse),
    /// Call several backends and answer with their merged JSON.
    Aggregate(Aggregate),
}

/// One request, many backends, one answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Aggregate {
    /// Lower-case request headers sent to every call (x-request-id always is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_headers: Vec<String>,
    /// Largest body accepted from one call.
    pub max_call_bytes: u64,
    pub merge: Merge,
    /// In declaration order; `depends_on` orders them into stages.
    pub calls: Vec<Call>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Merge {
    /// `{"<key>": <answer>, ...}`.
    Nested,
    /// The answers' members side by side; on a collision the earlier call keeps the member.
    Flat,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Call {
    pub name: String,
    /// The member of the answer holding this call's result (`rename`, or the name).
    pub key: String,
    pub backend: Backend,
    /// Path and query, with placeholders; every value put in is percent-encoded.
    pub target: Vec<UrlPart>,
    pub required: bool,
    pub timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Dot paths kept (into objects; applied to each element of arrays).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<String>,
    /// A dot path whose value is the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<String>,
    /// How the call's failed tries are tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<crate::Retries>,
}

/// A piece of a call's target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UrlPart {
    /// Copied as it is (checked at compile time).
    Literal(String),
    /// A capture of the request path.
    Capture(String),
    /// A field of an earlier call's (shaped) result: `{call.path}`.
    Field { call: String, path: String },
}

/// A weighted group of endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    /// `service/<namespace>/<name>:<port>` or the URL; for logs and metrics.
    pub name: String,
    pub weight: u32,
    /// `host:port` authorities to balance over, round robin. Empty when nothing is ready; the
    /// proxy then answers 503.
    pub endpoints: Vec<String>,
    /// TLS to the endpoints; `None`: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::BackendTls>,
    /// The HTTP version spoken to the endpoints.
    #[serde(default, skip_serializing_if = "BackendProtocol::is_default")]
    pub protocol: BackendProtocol,
    /// The reference does not name a usable backend (Gateway API: a Service that does not
    /// exist, or may not be referenced): the requests it would get are answered 500, where a
    /// valid backend without ready endpoints is 503. It has no endpoints.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invalid: bool,
}

/// The HTTP version the proxy speaks to a backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendProtocol {
    /// HTTP/1.1, plaintext or over TLS.
    #[default]
    Http1,
    /// HTTP/2 over plaintext, with prior knowledge (RFC 9113 §3.3).
    H2c,
    /// HTTP/2 over TLS, negotiated by ALPN (the backend must pick `h2`).
    H2,
    /// Over TLS, what ALPN picks (`h2` first, else HTTP/1.1); plaintext: HTTP/1.1.
    Auto,
}

impl BackendProtocol {
    pub fn is_default(&self) -> bool {
        *self == BackendProtocol::Http1
    }

    /// Whether it needs (`Some(true)`) or refuses (`Some(false)`) TLS.
    pub fn needs_tls(self) -> Option<bool> {
        match self {
            BackendProtocol::H2 => Some(true),
            BackendProtocol::H2c => Some(false),
            BackendProtocol::Http1 | BackendProtocol::Auto => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redirect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    pub status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectResponse {
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}
