//! The Policy custom resource: what happens to a request on the way to its backend.
//!
//! A Policy is a reusable bundle of sections (`authentication`, `authorization`, ...), attached
//! by name from Routes (`spec.policies`, `spec.rules[].policies`). When a rule lists several,
//! each section comes from the last Policy in the list that has it. Every field carries a doc
//! comment: it becomes the CRD's `description`, which `kubectl explain policy.spec` prints.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::route::RouteStatus;

/// Policy bundles authentication and authorization for the Routes that list it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "frontdesk.dev",
    version = "v1alpha1",
    kind = "Policy",
    namespaced,
    status = "RouteStatus",
    shortname = "pol",
    category = "frontdesk",
    doc = "Policy bundles authentication and authorization for the Routes that list it and the Gateway API objects it targets.",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"ResolvedRefs","type":"string","jsonPath":".status.conditions[?(@.type==\"ResolvedRefs\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// Gateway API objects of this Policy's namespace it applies to (policy attachment,
    /// GEP-713), group `gateway.networking.k8s.io`: a `Gateway` (every route attached to it;
    /// with `sectionName`, those attached to that listener), or an `HTTPRoute` or `GRPCRoute`
    /// (with `sectionName`, that rule). Routes and Aggregates also list Policies by name, and an
    /// HTTPRoute rule names one in an ExtensionRef filter. For each section the more specific
    /// wins: a Gateway's Policy, then a listener's, then a route's, then a rule's, then the
    /// Policies a rule lists; among Policies attached to one object, the oldest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,

    /// Who the client is. The local methods (`jwt`, `apiKeys`, `basic`) are alternatives: the
    /// first of them, in that order, whose credential the request carries decides, and a
    /// credential that is present but wrong is refused (401) without trying the others. A
    /// request with none of them gets 401. `external`, when set, is asked after a local method
    /// succeeded (or alone, when it is the only method) and must allow too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthenticationSpec>,

    /// Who may do what, once authenticated. The request is allowed when any rule holds; a rule
    /// holds when all its conditions do. Otherwise the answer is 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationSpec>,

    /// Request rate limits, checked after authentication and authorization (so a limit can
    /// count by consumer or claim). A refused request gets 429 with Retry-After; every response
    /// of a limited route carries RateLimit-Policy and RateLimit headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,

    /// Bounds on requests. Without them, the proxy's defaults apply
    /// (`--max-request-body-bytes`, 32 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,

    /// Bounds on what each proxy sends one backend at once, and ejection of endpoints that keep
    /// failing, for every backend of the rules this Policy applies to. A request past the
    /// bounds gets 503 (`circuit-open`) without reaching the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerSpec>,

    /// Active health checks: each proxy asks every endpoint of the backends of the rules this
    /// Policy applies to, on its own schedule, and leaves the unhealthy ones out of the
    /// balancer. With every endpoint of a backend unhealthy, all of them get traffic (panic
    /// mode) rather than none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,

    /// How a request picks one endpoint of a backend (round robin without this section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSpec>,

    /// Connections to the backends of the rules this Policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_connection: Option<BackendConnectionSpec>,

    /// Cross-origin requests from browsers (CORS), answered by the proxy before
    /// authentication: a preflight `OPTIONS` gets 204 with the allowed methods and headers (or
    /// 403 for an origin not allowed) and never reaches the backend; an allowed origin's
    /// requests get `Access-Control-Allow-Origin` on every answer, errors included. Every
    /// answer carries `Vary: Origin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,

    /// Answers kept by each proxy and served again (RFC 9111), looked up after the rate limit
    /// (a refused client is never served from the cache). `GET` answers are stored when their
    /// fields allow a shared cache to (`Cache-Control`, `Expires`, `Vary`; never with
    /// `no-store`, `private`, `Set-Cookie` or `Vary: *`), and `HEAD` is answered from them.
    /// Every answer of a cached rule says what the cache did in `Cache-Status` (RFC 9211).
    /// `PUT`, `POST`, `DELETE` and `PATCH` requests that succeed remove what is stored for
    /// their URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
}

/// How answers are kept, found again and served stale.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheSpec {
    /// How long an answer is fresh when it says nothing itself (no `max-age`, `s-maxage` or
    /// `Expires`), like `30s`; `0s` stores only answers that say. Defaults to 1m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// No answer is fresh for longer, whatever it says. Defaults to 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<String>,
    /// Methods answered from the cache: `GET` and `HEAD` (answered from a stored `GET`).
    /// Defaults to both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Request headers whose values are always part of the cache key (as if every answer
    /// said `Vary` with them), like `accept-language`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vary_headers: Vec<String>,
    /// Which query parameters are part of the key: all of them without this, or all but
    /// `ignore` (tracking parameters such as `utm_source`), or `only` these. Names match
    /// percent-decoded and in any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameters: Option<CacheQuerySpec>,
    /// Keep answers per authenticated consumer (API key, basic user, JWT subject): answers
    /// marked `private`, and answers to requests with `Authorization`, are then stored too,
    /// each served to its own consumer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_consumer: Option<bool>,
    /// Serve a stale answer for this long past its freshness while one request refreshes it
    /// in the background (RFC 5861), unless the answer sets its own `stale-while-revalidate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_while_revalidate: Option<String>,
    /// Serve a stale answer for this long past its freshness when the backend fails, times
    /// out or answers 5xx (RFC 5861), unless the answer sets its own `stale-if-error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_if_error: Option<String>,
    /// Answers larger than this many bytes go to the client uncached. Defaults to 1 MiB;
    /// never more than the proxy's whole cache (`--cache-max-bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entry_bytes: Option<u64>,
    /// `Local` (the default): each proxy keeps its own answers. `Global`: also in Redis
    /// (`--redis-url`, the rate limits' Redis), so the gateway's proxies share them; each
    /// proxy's memory stays the first tier, and when Redis fails the proxies cache on their
    /// own, never failing a request for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<LimitScopeSpec>,
}

/// Query parameters left out of, or alone in, the cache key: set one of the two.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheQuerySpec {
    /// Every parameter but these is part of the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Only these parameters are part of the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<String>,
}

/// Which browser origins may call the rules, with which methods and headers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsSpec {
    /// Origins allowed: exact (`https://shop.example.com`, with its port when not the
    /// scheme's default), any subdomain (`https://*.example.com`), or `*` (any origin; not
    /// with `allowCredentials`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    /// Regular expressions an origin must match whole, such as
    /// `https://shop-[a-z0-9]+\.example\.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin_regexes: Vec<String>,
    /// Methods a preflight may ask for. Defaults to GET, HEAD and POST.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for (case does not matter); `*` allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers the page may read besides the CORS-safelisted ones; `*` for all (not
    /// with `allowCredentials`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Whether the browser sends cookies and credentials and lets the page read the answer.
    /// Needs listed origins, never `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// How long a browser may keep a preflight's answer (`10m`); at most 24h. Without it,
    /// browsers keep it 5 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// Timeouts of connections to backends; each defaults to the proxy's own setting
/// (`--upstream-connect-timeout`, 5s; `--upstream-idle-timeout`, 60s).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendConnectionSpec {
    /// How long connecting to an endpoint may take before the try fails (a connect failure,
    /// which retries may try again elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// A pooled connection idle for longer is closed rather than used. Keep it below the
    /// backend's own keep-alive timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
}

/// An HTTP health check: `GET path` to each endpoint every `interval`; an answer from 200 to
/// 399 within `timeout` passes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// Path (and query) to ask (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Host header of the checks (default: the endpoint's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Time between two checks of an endpoint (default `5s`, at least `50ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// How long a check waits for its answer (default `1s`, at most the interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Checks passed in a row that bring an unhealthy endpoint back (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    /// Checks failed in a row that take an endpoint out (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    /// Ask the standard gRPC health service (`grpc.health.v1.Health/Check`, over HTTP/2)
    /// instead of `GET path`: the check passes when it answers SERVING. Exclusive with `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheckSpec>,
}

/// A gRPC health check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcHealthCheckSpec {
    /// The service to ask about (`HealthCheckRequest.service`); the server as a whole without
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// How an endpoint is picked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSpec {
    /// `RoundRobin` (default), `LeastRequest` (of two endpoints picked at random, the one with
    /// fewer requests in flight from this proxy) or `ConsistentHash` (the same endpoint for the
    /// same `hashOn` key while it is in the backend; only its keys move when it leaves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<LoadBalancerAlgorithm>,
    /// The key of `ConsistentHash`: `ClientIP`, `Header:<name>` or `Cookie:<name>`. A request
    /// without the header or cookie goes round robin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<String>,
    /// New endpoints (pods that joined the backend after the proxy first built it) get a
    /// growing share of the requests over a window instead of their full share at once.
    /// Round robin and least request; consistent hashing keeps its keys where they belong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStartSpec>,
}

/// How new endpoints warm up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlowStartSpec {
    /// How long a new endpoint takes to reach its full share (`30s`); at most 1h.
    pub window: String,
    /// Its share when it joins, in percent of an established endpoint's (1-100, default 10);
    /// it grows linearly to 100 over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_weight_percent: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LoadBalancerAlgorithm {
    #[default]
    RoundRobin,
    LeastRequest,
    ConsistentHash,
}

/// A backend's bounds and its endpoints' passive outlier detection, per proxy. Every field has
/// a default, so `circuitBreaker: {}` turns both on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerSpec {
    /// Requests in flight to the backend at once (default 1024). With HTTP/1.1 to backends each
    /// holds one connection, so this bounds its connections in use too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,

    /// Requests that wait for one in flight to finish when `maxRequests` are (default 1024);
    /// past this, 503 at once. They wait at most the rule's `timeout`. 0: no waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,

    /// Failures in a row that eject an endpoint from the balancer (default 5): 5xx answers,
    /// connections refused or broken before an answer, and timeouts. 0 turns ejection off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,

    /// How long a first ejection lasts (default `30s`); an endpoint ejected again soon after it
    /// returned stays out twice as long, then three times...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ejection_time: Option<String>,

    /// The longest an ejection lasts (default `300s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_time: Option<String>,

    /// At most this share of a backend's endpoints is out at once, in percent (default 50; one
    /// endpoint may always be ejected when the backend has several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
}

/// Bounds on requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsSpec {
    /// Largest request body in bytes: a larger declared body is refused with 413 before the
    /// backend is called, a longer streamed one is cut off with 413. 0 lifts the bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<u64>,
}

/// Rate limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Limits that must all allow a request (e.g. 10 per second and 1000 per hour). A request
    /// refused by one of them counts against none.
    pub limits: Vec<LimitSpec>,
    /// When Redis cannot decide for a Global limit (unreachable, too slow): `Allow` (default:
    /// the request goes on, logged and counted) or `Deny` (503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_store_failure: Option<FailureModeSpec>,
}

/// One limit: `requests` per `period`, with bursts of up to `burst` requests at once. Counted
/// with GCRA (a continuous token bucket): exact, and no double burst at window boundaries.
/// Buckets are kept per Route and per value of `key`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitSpec {
    /// Name shown in the RateLimit headers and metrics (letters, digits, `-`, `_`, `.`).
    /// Defaults to `limit-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Requests allowed per period, on average.
    pub requests: u64,
    /// The period, as a duration (`1s`, `1m`, `1h`; at most 24h).
    pub period: String,
    /// Requests allowed at once, after a quiet spell. Defaults to `requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// What is counted: `ClientIP` (default; X-Forwarded-For is believed only from the proxy's
    /// `--trusted-proxies`), `Consumer`, `Header:<name>`, `Claim:<name>` (a JWT claim, dot
    /// path) or `Route` (one bucket for the route). Requests without a value share one bucket
    /// per limit: they are limited together, never let through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Local` (default): counters in each proxy's memory, so N proxies allow up to N times the
    /// limit. `Global`: counters in Redis, shared by every proxy of the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<LimitScopeSpec>,
}

/// Where a limit's counters live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LimitScopeSpec {
    /// In each proxy.
    #[default]
    Local,
    /// In Redis, shared by the gateway's proxies.
    Global,
}

/// Authentication methods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticationSpec {
    /// JSON Web Tokens (RFC 7519) signed with RS/PS/ES/EdDSA or HS algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
    /// API keys held in Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeysSpec>,
    /// HTTP Basic authentication (RFC 7617) against an htpasswd file in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicSpec>,
    /// An HTTP call to an authorization service that decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalSpec>,
    /// The client certificate a mutual-TLS listener verified (a Gateway's client certificate
    /// validation). The consumer is the certificate's first URI SAN, else its first DNS SAN,
    /// else its subject's common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificateSpec>,
}

/// Authentication by the verified client certificate of the connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientCertificateSpec {
    /// A header that carries the certificate's identity (the consumer) to the backend; a
    /// client's own copies of it are always removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_header: Option<String>,
}

/// JWT validation. Exactly one key source among `jwksUri`, `jwks` and `secretRef` is usually
/// enough; `jwks`/`secretRef` and `jwksUri` may be combined (keys are looked up in both).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtSpec {
    /// Required `iss` claim. When unset any issuer is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accepted audiences: the token's `aud` must contain one of them. When empty the
    /// audience is not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Accepted signature algorithms: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384,
    /// PS512, ES256, ES384, EdDSA. Defaults to every asymmetric one, plus the HS ones when the
    /// keys come from `secretRef`. `none` is never accepted, and a key is only used with the
    /// algorithms of its own type (an RSA key never verifies an HS256 token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// URL (`https://` or `http://`) of a JSON Web Key Set the proxies fetch, keep fresh in the
    /// background (honouring Cache-Control max-age), refetch when a token names an unknown
    /// `kid`, and keep using when the server is unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Accept an `http://` `jwksUri`: anyone between the proxies and the key server could
    /// replace the keys, and so sign any token. Refused without this; with it, the Policy's
    /// Accepted condition carries a warning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_plaintext_jwks_uri: bool,
    /// TLS to an `https://` `jwksUri`: CA certificates to trust instead of the public web PKI
    /// (ConfigMaps or Secrets of the Policy's namespace, `ca.crt`) and a client certificate
    /// (`kubernetes.io/tls` Secret). The name verified is the URI's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_tls: Option<crate::route::BackendTlsSpec>,
    /// How long a fetched key set stays fresh when the server sends no max-age. Defaults to 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_cache_duration: Option<String>,
    /// Shortest time between two fetches caused by tokens with an unknown `kid`, so a flood of
    /// forged tokens cannot hammer the key server. Defaults to 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_refetch_interval: Option<String>,
    /// An inline JSON Web Key Set, as JSON text (public keys only; put shared secrets in a
    /// Secret and use `secretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// A Secret in the Policy's namespace holding the keys: under `key` (default: `jwks` when
    /// present, else `secret`) either a JSON Web Key Set or, for HS algorithms, the raw shared
    /// secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// Tolerance on `exp` and `nbf` for clocks that disagree. Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew: Option<String>,
    /// Where the token is looked for, in order. Defaults to the Authorization header with the
    /// `Bearer ` prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<CredentialSourceSpec>,
    /// Claims copied to request headers for the backend. A header of the same name sent by the
    /// client is always removed first, so it cannot be forged. String claims are copied as
    /// they are; other values as JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims_to_headers: Vec<ClaimToHeaderSpec>,
}

/// One place a credential can be read from; set exactly one of `header`, `cookie`, `query`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialSourceSpec {
    /// A request header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// With `header`: a prefix the value must start with, removed before use (compared
    /// case-insensitively), e.g. `Bearer `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A cookie name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// A query parameter name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// A claim to copy to a request header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeaderSpec {
    /// Claim name; a dot path (`realm_access.roles`) reaches into nested objects.
    pub claim: String,
    /// Header name set on the request to the backend.
    pub header: String,
}

/// A key of a Secret in the Policy's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key in the Secret's data; each use documents its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// API keys: each Secret selected holds one key (data `key`) and names its consumer (data
/// `consumer`, defaulting to the Secret's name). The proxies compare SHA-256 digests in
/// constant time and never log a key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeysSpec {
    /// Where the key is read from (one of `header`, `query`). Defaults to the `x-api-key`
    /// header.
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub location: Option<CredentialSourceSpec>,
    /// Labels that select the Secrets, in the Policy's namespace, holding the keys.
    pub secret_selector: LabelSelector,
}

/// Selects objects by their labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Every label listed must be present with this value.
    pub match_labels: BTreeMap<String, String>,
}

/// Basic authentication.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicSpec {
    /// Secret holding an htpasswd file under `key` (default `htpasswd`). Hashes made by
    /// `htpasswd -B` (bcrypt), `-2`/`-5` (SHA-256/512 crypt) and `-s` ({SHA}) are accepted;
    /// MD5 (`$apr1$`, htpasswd's old default) and plain text are refused.
    pub secret_ref: SecretKeyRef,
    /// Realm announced in `WWW-Authenticate`. Defaults to `frontdesk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
}

/// External authorization: the proxy sends `GET url` with the listed request headers plus
/// `x-forwarded-method`, `x-forwarded-uri`, `x-forwarded-host` and `x-request-id`. A 2xx
/// answer allows the request (and may copy headers to it); any other status is returned to the
/// client as it is (status, body, `WWW-Authenticate`, `Location`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalSpec {
    /// `http://` or `https://` URL of the authorization service. An `https://` service is
    /// verified against its host name and the public web PKI unless `tls` names CA
    /// certificates.
    pub url: String,
    /// Request headers sent to the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_headers: Vec<String>,
    /// Headers of an allowing answer copied to the request for the backend; a client's header
    /// of the same name is removed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_headers: Vec<String>,
    /// Deadline of the call. Defaults to 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// When the service cannot be reached, fails or times out: `Deny` (default, 503) or
    /// `Allow` (the request goes on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<FailureModeSpec>,
    /// TLS to an `https://` service: CA certificates to trust (ConfigMaps or Secrets of the
    /// Policy's namespace, `ca.crt`) and a client certificate (`kubernetes.io/tls` Secret).
    /// The name verified is the URL's host (leave `hostname` out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::route::BackendTlsSpec>,
}

/// What to do when an external dependency fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FailureModeSpec {
    /// Refuse the request.
    #[default]
    Deny,
    /// Let the request through.
    Allow,
}

/// Authorization rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationSpec {
    /// The request is allowed when any of these holds.
    pub rules: Vec<AuthorizationRuleSpec>,
}

/// Conditions that must all hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationRuleSpec {
    /// JWT claims (dot paths) and accepted values: the claim must contain one of the values,
    /// whether it is a string, an array, or a space-separated string such as `scope`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Vec<String>>,
    /// HTTP methods allowed. Empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Consumers allowed: API key consumers, basic-auth user names, or the JWT `sub`. Empty
    /// means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<String>,
}

/// A Gateway API object of the Policy's namespace the Policy applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    /// `gateway.networking.k8s.io`.
    pub group: String,
    /// `Gateway`, `HTTPRoute` or `GRPCRoute`.
    pub kind: String,
    /// The object's name, in the Policy's namespace.
    pub name: String,
    /// A Gateway's listener, or a route's rule, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}
