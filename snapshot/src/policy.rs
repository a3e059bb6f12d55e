//! Compiled policies: what the proxy checks before a request reaches a backend.
//!
//! A rule refers to one effective policy by key (`Rule::policy`). The compiler merges the
//! Policies a rule lists (Route-level, then rule-level; a later policy's section replaces an
//! earlier one's) into one [`Policy`] and resolves every Secret it reads, so the proxy never
//! sees a reference it would have to look up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// One effective policy: the merge of the Policies a rule lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// `namespace/name` of the Policies merged, in order; for status, metrics and logs.
    pub sources: Vec<String>,
    /// Set when a listed Policy or a Secret it reads is missing or invalid: the rule then
    /// answers 503 instead of serving traffic unchecked. Says what is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Bounds on requests to each backend and ejection of failing endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<crate::CircuitBreaker>,
    /// Active health checks of each backend's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<crate::HealthCheck>,
    /// How each backend's endpoint is chosen; `None`: round robin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<crate::LoadBalancer>,
    /// New endpoints' growing share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<crate::SlowStart>,
    /// Connect and idle timeouts of each backend's connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_connection: Option<crate::BackendConnection>,
    /// Cross-origin requests from browsers: preflights answered, CORS headers added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<crate::Cors>,
    /// Answers kept and served again (RFC 9111).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::Cache>,
}

/// Bounds on requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Largest request body in bytes; `None` leaves the proxy's default, 0 lifts the bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<u64>,
}

/// Request rate limits, checked after authentication (so keys can be consumers and claims).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Every limit must allow a request; a refused request counts against none of them.
    pub limits: Vec<Limit>,
    /// What happens when the shared store (Redis) cannot decide for a Global limit.
    #[serde(default = "allow")]
    pub on_store_failure: FailureMode,
}

fn allow() -> FailureMode {
    FailureMode::Allow
}

/// `requests` per `period_ms`, with up to `burst` at once (GCRA: exact, no window boundaries).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limit {
    /// `namespace/policy/name`: two Policies never share counters, even with equal limits.
    pub id: String,
    /// Shown in the RateLimit-Policy / RateLimit headers.
    pub name: String,
    pub requests: u64,
    pub period_ms: u64,
    pub burst: u64,
    pub key: LimitKey,
    pub scope: LimitScope,
}

/// What a limit counts by. Requests without a value for the key share one bucket per limit
/// (they never bypass it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum LimitKey {
    /// The client address (X-Forwarded-For only from the proxy's trusted ranges).
    ClientIp,
    /// The authenticated consumer (API key consumer, basic-auth user, JWT `sub`).
    Consumer,
    /// A request header (lower-case name).
    Header { name: String },
    /// A JWT claim (dot path).
    Claim { name: String },
    /// The route as a whole: one bucket.
    Route,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LimitScope {
    /// Counters in each proxy's memory.
    Local,
    /// Counters shared by every proxy of the gateway, in Redis.
    Global,
}

/// Who the client is. The local methods (jwt, apiKeys, basic) are alternatives: the first whose
/// credential the request carries decides. `external`, when set, is asked afterwards (or alone)
/// and must allow too.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Authentication {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Jwt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeys>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<Basic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<External>,
    /// The connection's verified client certificate (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificate>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientCertificate {
    /// The header that carries the certificate's identity to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_header: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Jwt {
    /// Accepted `iss` values; empty accepts any issuer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<String>,
    /// Accepted `aud` values (one must be in the token's `aud`); empty accepts any audience.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Accepted `alg` values (`RS256`, `ES256`, `EdDSA`, ...). Never empty, never `none`.
    pub algorithms: Vec<String>,
    /// Tolerance on `exp` and `nbf`, in seconds.
    pub clock_skew_secs: u64,
    /// Keys known in advance (inline or from a Secret), as a JWKS document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Secret>,
    /// Keys the proxy fetches and keeps fresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_jwks: Option<RemoteJwks>,
    /// Where the token is looked for, in order.
    pub from: Vec<CredentialSource>,
    /// Claims copied to request headers; the client's headers of those names are removed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims_to_headers: Vec<ClaimToHeader>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteJwks {
    /// `http://` or `https://` URL of the JWKS document.
    pub uri: String,
    /// How long a fetched key set is fresh when the server sends no `Cache-Control: max-age`.
    pub cache_secs: u64,
    /// Shortest time between two fetches caused by tokens with an unknown `kid`.
    pub refetch_interval_ms: u64,
    /// Deadline of one fetch.
    pub timeout_ms: u64,
    /// What an `https://` URI's certificate is verified against (its host is the name);
    /// `None`: the web PKI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::BackendTls>,
}

/// Where a credential is read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum CredentialSource {
    /// A request header (lower-case name); `prefix` (e.g. `Bearer `) is stripped and required,
    /// compared case-insensitively.
    Header {
        name: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        prefix: String,
    },
    Cookie {
        name: String,
    },
    Query {
        name: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// Claim name; a dot path (`realm.roles`) reaches into nested objects.
    pub claim: String,
    /// Lower-case header name.
    pub header: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeys {
    pub from: Vec<CredentialSource>,
    /// The keys, as digests: the proxy compares the SHA-256 of what it receives.
    pub keys: Vec<ApiKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKey {
    /// Lower-case hex SHA-256 of the key.
    pub sha256: Secret,
    pub consumer: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Basic {
    pub realm: String,
    pub users: Vec<BasicUser>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicUser {
    pub user: String,
    /// The htpasswd hash: bcrypt (`$2y$`), SHA-256/512-crypt (`$5$`, `$6$`) or `{SHA}`.
    pub hash: Secret,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct External {
    /// `http://` or `https://` URL the proxy calls (GET) for each request.
    pub url: String,
    /// Lower-case request headers sent along.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_headers: Vec<String>,
    /// Lower-case headers of an allowing answer copied to the upstream request (replacing the
    /// client's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_headers: Vec<String>,
    pub timeout_ms: u64,
    /// What happens when the service cannot be reached or times out.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// What an `https://` URL's certificate is verified against (its `server_name` is the
    /// URL's host) and the client certificate; `None`: the web PKI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::BackendTls>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureMode {
    /// Refuse the request (503).
    #[default]
    Deny,
    /// Let the request through, unauthenticated by this method.
    Allow,
}

/// Who may do what: the request is allowed when any rule holds (a rule holds when all its
/// conditions do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Authorization {
    pub rules: Vec<AuthorizationRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationRule {
    /// Claim (dot path) → accepted values: the claim must contain one of them. A claim that is
    /// a space-separated string (`scope`) counts as the list of its words.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Vec<String>>,
    /// Upper-case methods; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Consumer names (API key consumers, basic-auth users, JWT `sub`); empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<String>,
}

/// Algorithms a JWT may be signed with. `none` is not one of them.
pub const JWT_ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// Invariants of one policy: `Err((field, reason))`.
pub(crate) fn check(p: &Policy) -> Result<(), (String, String)> {
    use crate::validate::check_header_name;
    let e = |f: &str, r: String| (f.to_string(), r);
    if let Some(cb) = &p.circuit_breaker {
        cb.check()
            .map_err(|(field, why)| (format!("circuitBreaker.{field}"), why))?;
    }
    if let Some(h) = &p.health_check {
        h.check()
            .map_err(|(field, why)| (format!("healthCheck.{field}"), why))?;
    }
    if let Some(c) = &p.backend_connection {
        c.check()
            .map_err(|(field, why)| (format!("backendConnection.{field}"), why))?;
    }
    if let Some(lb) = &p.load_balancer {
        lb.check()
            .map_err(|(field, why)| (format!("loadBalancer.{field}"), why))?;
    }
    if let Some(s) = &p.slow_start {
        s.check()
            .map_err(|(field, why)| (format!("slowStart.{field}"), why))?;
    }
    if let Some(c) = &p.cors {
        c.check()
            .map_err(|(field, why)| (format!("cors.{field}"), why))?;
    }
    if let Some(c) = &p.cache {
        c.check()
            .map_err(|(field, why)| (format!("cache.{field}"), why))?;
    }
    if let Some(rl) = &p.rate_limit {
        for (i, l) in rl.limits.iter().enumerate() {
            let f = format!("rateLimit.limits[{i}]");
            if l.requests == 0 || l.burst == 0 || l.period_ms == 0 {
                return Err(e(
                    &f,
                    "requests, burst and periodMs must be greater than 0".into(),
                ));
            }
            if let LimitKey::Header { name } = &l.key {
                check_header_name(name).map_err(|r| e(&f, r))?;
            }
        }
    }
    let Some(authn) = &p.authentication else {
        return Ok(());
    };
    if let Some(jwt) = &authn.jwt {
        if jwt.algorithms.is_empty() {
            return Err(e(
                "authentication.jwt.algorithms",
                "must not be empty".into(),
            ));
        }
        for a in &jwt.algorithms {
            if !JWT_ALGORITHMS.contains(&a.as_str()) {
                return Err(e(
                    "authentication.jwt.algorithms",
                    format!("{a:?} is not a supported algorithm"),
                ));
            }
        }
        if let Some(r) = &jwt.remote_jwks
            && let Some(tls) = &r.tls
        {
            if !r.uri.starts_with("https://") {
                return Err(e(
                    "authentication.jwt.remoteJwks.tls",
                    "needs an https:// URI".into(),
                ));
            }
            tls.check().map_err(|(field, why)| {
                e(&format!("authentication.jwt.remoteJwks.tls.{field}"), why)
            })?;
        }
        if jwt.jwks.is_none() && jwt.remote_jwks.is_none() && p.unavailable.is_none() {
            return Err(e("authentication.jwt", "needs jwks or remoteJwks".into()));
        }
        if jwt.from.is_empty() {
            return Err(e("authentication.jwt.from", "must not be empty".into()));
        }
        for c in &jwt.claims_to_headers {
            check_header_name(&c.header).map_err(|r| e("authentication.jwt.claimsToHeaders", r))?;
        }
    }
    if let Some(k) = &authn.api_keys
        && k.from.is_empty()
    {
        return Err(e("authentication.apiKeys.from", "must not be empty".into()));
    }
    if let Some(x) = &authn.external {
        if !x.url.starts_with("http://") && !x.url.starts_with("https://") {
            return Err(e(
                "authentication.external.url",
                "must be an http:// or https:// URL".into(),
            ));
        }
        if let Some(tls) = &x.tls {
            if !x.url.starts_with("https://") {
                return Err(e(
                    "authentication.external.tls",
                    "needs an https:// URL".into(),
                ));
            }
            tls.check()
                .map_err(|(field, why)| e(&format!("authentication.external.tls.{field}"), why))?;
        }
        if x.timeout_ms == 0 {
            return Err(e(
                "authentication.external.timeoutMs",
                "must be greater than 0".into(),
            ));
        }
        for h in x.forward_headers.iter().chain(&x.copy_headers) {
            check_header_name(h).map_err(|r| e("authentication.external", r))?;
        }
    }
    Ok(())
}
