//! Policy spec → snapshot policy, and the merge of the Policies a rule lists.
//!
//! Lowering validates the spec (Accepted) and resolves the Secrets it reads (ResolvedRefs).
//! Secret contents are turned into what the proxy needs and no more: API keys become SHA-256
//! digests, an htpasswd file becomes (user, hash) pairs, a shared secret becomes a JWKS `oct`
//! key. Every problem names its field; Secret contents never appear in a message.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use frontdesk_snapshot as snap;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};

use super::lower::{check_header_value, check_token, is_hop_by_hop, parse_timeout};
use crate::diagnostic::Diagnostics;
use crate::policy::{
    ApiKeysSpec, AuthorizationSpec, BasicSpec, CredentialSourceSpec, ExternalSpec, FailureModeSpec,
    JwtSpec, LimitScopeSpec, PolicySpec, RateLimitSpec,
};

/// Defaults, documented on the CRD fields.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 30;
pub const DEFAULT_JWKS_CACHE_SECS: u64 = 300;
pub const DEFAULT_JWKS_REFETCH_MS: u64 = 10_000;
pub const JWKS_FETCH_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_EXTERNAL_TIMEOUT_MS: u64 = 1_000;

/// Secrets by namespace and name.
#[derive(Default)]
pub struct SecretIndex<'a> {
    by_name: HashMap<(&'a str, &'a str), &'a Secret>,
    by_namespace: HashMap<&'a str, Vec<&'a Secret>>,
}

impl<'a> SecretIndex<'a> {
    pub fn new(secrets: &'a [Secret]) -> Self {
        let mut index = SecretIndex::default();
        let mut sorted: Vec<&Secret> = secrets.iter().collect();
        sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for s in sorted {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            let name = s.metadata.name.as_deref().unwrap_or_default();
            index.by_name.insert((ns, name), s);
            index.by_namespace.entry(ns).or_default().push(s);
        }
        index
    }

    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<&'a Secret> {
        self.by_name.get(&(namespace, name)).copied()
    }

    fn selected(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<&'a Secret> {
        self.by_namespace
            .get(namespace)
            .map(|all| {
                all.iter()
                    .filter(|s| {
                        let have = s.metadata.labels.as_ref();
                        labels
                            .iter()
                            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
                    })
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A Secret's value under `key`, from `data` or (in manifests) `stringData`.
pub(crate) fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.0.clone());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.as_bytes().to_vec())
}

/// The result of lowering one Policy.
pub struct LoweredPolicy {
    /// Its sections, with `sources` = `[namespace/name]`.
    pub policy: snap::Policy,
    /// Problems in the spec (Accepted=False): the Policy is not used.
    pub invalid: Diagnostics,
    /// Problems with what it references (ResolvedRefs=False).
    pub unresolved: Diagnostics,
    /// What a person should know although the Policy is valid (in its Accepted condition).
    pub warnings: Vec<String>,
}

pub fn lower_policy(
    namespace: &str,
    name: &str,
    spec: &PolicySpec,
    secrets: &SecretIndex<'_>,
    config_maps: &[k8s_openapi::api::core::v1::ConfigMap],
    urls: &super::urls::UrlPolicy,
) -> LoweredPolicy {
    let mut out = LoweredPolicy {
        policy: snap::Policy {
            sources: vec![format!("{namespace}/{name}")],
            ..Default::default()
        },
        invalid: Diagnostics::default(),
        unresolved: Diagnostics::default(),
        warnings: Vec::new(),
    };
    let mut missing = Vec::new();
    let mut ctx = Ctx {
        namespace,
        name,
        secrets,
        config_maps,
        urls,
        d: &mut out.invalid,
        unresolved: &mut out.unresolved,
        missing: &mut missing,
        warnings: &mut out.warnings,
    };
    if let Some(a) = &spec.authentication {
        let p = "spec.authentication";
        let authn = snap::Authentication {
            jwt: a.jwt.as_ref().and_then(|j| ctx.jwt(&format!("{p}.jwt"), j)),
            api_keys: a
                .api_keys
                .as_ref()
                .and_then(|k| ctx.api_keys(&format!("{p}.apiKeys"), k)),
            basic: a
                .basic
                .as_ref()
                .and_then(|b| ctx.basic(&format!("{p}.basic"), b)),
            external: a
                .external
                .as_ref()
                .and_then(|x| ctx.external(&format!("{p}.external"), x)),
            client_certificate: a
                .client_certificate
                .as_ref()
                .map(|c| snap::ClientCertificate {
                    forward_header: c.forward_header.as_ref().and_then(|h| {
                        ctx.header_name(format!("{p}.clientCertificate.forwardHeader"), h)
                    }),
                }),
        };
        if a.jwt.is_none()
            && a.api_keys.is_none()
            && a.basic.is_none()
            && a.external.is_none()
            && a.client_certificate.is_none()
        {
            ctx.d.push(
                p,
                "set at least one of jwt, apiKeys, basic, external and clientCertificate",
            );
        }
        out.policy.authentication = Some(authn);
    }
    if let Some(z) = &spec.authorization {
        out.policy.authorization = ctx.authorization("spec.authorization", z);
    }
    if let Some(r) = &spec.rate_limit {
        out.policy.rate_limit = ctx.rate_limit("spec.rateLimit", r);
    }
    if let Some(l) = &spec.limits {
        out.policy.limits = Some(snap::Limits {
            max_request_body_bytes: l.max_request_body_bytes,
        });
    }
    if let Some(c) = &spec.circuit_breaker {
        out.policy.circuit_breaker =
            super::upstream::lower_circuit_breaker("spec.circuitBreaker", c, ctx.d);
    }
    if let Some(h) = &spec.health_check {
        out.policy.health_check = super::upstream::lower_health_check("spec.healthCheck", h, ctx.d);
    }
    if let Some(c) = &spec.backend_connection {
        out.policy.backend_connection =
            super::upstream::lower_backend_connection("spec.backendConnection", c, ctx.d);
    }
    if let Some(lb) = &spec.load_balancer {
        out.policy.load_balancer =
            super::upstream::lower_load_balancer("spec.loadBalancer", lb, ctx.d);
    }
    if let Some(c) = &spec.cors {
        out.policy.cors = super::cors::lower_cors("spec.cors", c, ctx.d);
    }
    if !missing.is_empty() {
        out.policy.unavailable = Some(missing.join("; "));
    }
    out
}

/// What a Policy's TLS settings may name, for [`super::backend_tls`].
struct PolicyRefs<'a, 'b> {
    secrets: &'a SecretIndex<'b>,
    config_maps: &'a [k8s_openapi::api::core::v1::ConfigMap],
}

impl super::lower::ResolveService for PolicyRefs<'_, '_> {
    fn resolve(&self, _: &str, _: &str, _: u16) -> Result<Vec<String>, String> {
        Err("a Policy names no Service".into())
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets.get(namespace, name)
    }

    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<&k8s_openapi::api::core::v1::ConfigMap> {
        super::gateways::client_validation::find_config_map(self.config_maps, namespace, name)
    }
}

struct Ctx<'a, 'b> {
    namespace: &'a str,
    /// The Policy's name.
    name: &'a str,
    secrets: &'a SecretIndex<'b>,
    /// ConfigMaps TLS settings may name (CA bundles).
    config_maps: &'a [k8s_openapi::api::core::v1::ConfigMap],
    urls: &'a super::urls::UrlPolicy,
    d: &'a mut Diagnostics,
    unresolved: &'a mut Diagnostics,
    /// References whose absence makes the policy unusable.
    missing: &'a mut Vec<String>,
    warnings: &'a mut Vec<String>,
}

impl<'b> Ctx<'_, 'b> {
    /// The Secret `name`, or a recorded reason why it is unusable.
    fn secret(&mut self, field: String, name: &str) -> Option<&'b Secret> {
        match self.secrets.get(self.namespace, name) {
            Some(s) => Some(s),
            None => {
                let why = format!("Secret {}/{name} not found", self.namespace);
                self.unresolved.push(field, why.clone());
                self.missing.push(why);
                None
            }
        }
    }

    fn jwt(&mut self, p: &str, j: &JwtSpec) -> Option<snap::Jwt> {
        let before = self.d.0.len();
        if j.jwks_uri.is_none() && j.jwks.is_none() && j.secret_ref.is_none() {
            self.d.push(
                p,
                "set jwksUri, jwks or secretRef: a token cannot be checked without keys",
            );
        }
        let mut algorithms = Vec::new();
        for (i, a) in j.algorithms.iter().enumerate() {
            match snap::JWT_ALGORITHMS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(a))
            {
                Some(k) => algorithms.push((*k).to_string()),
                None if a.eq_ignore_ascii_case("none") => self.d.push(
                    format!("{p}.algorithms[{i}]"),
                    "unsigned tokens (alg none) are never accepted",
                ),
                None => self.d.push(
                    format!("{p}.algorithms[{i}]"),
                    format!("{a:?} is not one of {}", snap::JWT_ALGORITHMS.join(", ")),
                ),
            }
        }
        if j.algorithms.is_empty() {
            algorithms = snap::JWT_ALGORITHMS
                .iter()
                .filter(|a| j.secret_ref.is_some() || !a.starts_with("HS"))
                .map(|a| (*a).to_string())
                .collect();
        }
        algorithms.sort();
        algorithms.dedup();

        let mut keys: Vec<serde_json::Value> = Vec::new();
        if let Some(text) = &j.jwks
            && let Some(set) = self.d.check(format!("{p}.jwks"), parse_jwks(text))
        {
            {
                if set
                    .keys
                    .iter()
                    .any(|k| matches!(k.algorithm, AlgorithmParameters::OctetKey(_)))
                {
                    self.d.push(
                        format!("{p}.jwks"),
                        "an inline key set must not hold shared secrets (kty oct); put them in a Secret and use secretRef",
                    );
                }
                keys.extend(set.keys.iter().filter_map(|k| serde_json::to_value(k).ok()));
            }
        }
        if let Some(r) = &j.secret_ref
            && let Some(secret) = self.secret(format!("{p}.secretRef.name"), &r.name)
        {
            let field = format!("{p}.secretRef");
            let key = r.key.clone().unwrap_or_else(|| {
                if secret_value(secret, "jwks").is_some() {
                    "jwks"
                } else {
                    "secret"
                }
                .to_string()
            });
            match secret_value(secret, &key) {
                None => {
                    let why = format!("Secret {}/{} has no key {key:?}", self.namespace, r.name);
                    self.unresolved.push(field, why.clone());
                    self.missing.push(why);
                }
                Some(bytes) if key == "jwks" || bytes.first() == Some(&b'{') => {
                    match std::str::from_utf8(&bytes)
                        .map_err(|e| e.to_string())
                        .and_then(parse_jwks)
                    {
                        Ok(set) => keys
                            .extend(set.keys.iter().filter_map(|k| serde_json::to_value(k).ok())),
                        Err(e) => {
                            let why =
                                format!("Secret {}/{} key {key:?}: {e}", self.namespace, r.name);
                            self.unresolved.push(field, why.clone());
                            self.missing.push(why);
                        }
                    }
                }
                Some(bytes) if bytes.is_empty() => {
                    let why = format!("Secret {}/{} key {key:?} is empty", self.namespace, r.name);
                    self.unresolved.push(field, why.clone());
                    self.missing.push(why);
                }
                Some(bytes) => keys.push(serde_json::json!({
                    "kty": "oct",
                    "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
                })),
            }
        }
        if j.jwks_tls.is_some() && j.jwks_uri.is_none() {
            self.d.push(
                format!("{p}.jwksTls"),
                "TLS settings need a jwksUri to apply to",
            );
        }
        let remote_jwks = j.jwks_uri.as_ref().and_then(|uri| {
            let mut ok = self.d.check(
                format!("{p}.jwksUri"),
                check_fetch_url(uri, true, self.urls),
            );
            if ok.is_some() && uri.starts_with("http://") {
                if j.allow_plaintext_jwks_uri {
                    self.warnings.push(format!(
                        "{p}.jwksUri is plaintext http://: anyone between the proxies and the \
                         key server could replace the keys (allowed by allowPlaintextJwksUri)"
                    ));
                } else {
                    self.d.push(
                        format!("{p}.jwksUri"),
                        "plaintext http:// lets anyone between the proxies and the key server \
                         replace the keys, and so sign any token: use https://, or set \
                         allowPlaintextJwksUri: true to accept it",
                    );
                    ok = None;
                }
            }
            let cache = self.duration(
                &format!("{p}.jwksCacheDuration"),
                j.jwks_cache_duration.as_deref(),
                DEFAULT_JWKS_CACHE_SECS * 1000,
            );
            let refetch = self.duration(
                &format!("{p}.jwksRefetchInterval"),
                j.jwks_refetch_interval.as_deref(),
                DEFAULT_JWKS_REFETCH_MS,
            );
            ok?;
            let missing = self.missing.len();
            let tls = self.fetch_tls(&format!("{p}.jwksTls"), uri, j.jwks_tls.as_ref());
            if self.missing.len() != missing {
                // The Policy is unusable: no fetch with a trust it did not ask for.
                return None;
            }
            Some(snap::RemoteJwks {
                tls,
                uri: uri.clone(),
                cache_secs: cache?.div_ceil(1000),
                refetch_interval_ms: refetch?,
                timeout_ms: JWKS_FETCH_TIMEOUT_MS,
            })
        });
        let skew = self.duration(
            &format!("{p}.clockSkew"),
            j.clock_skew.as_deref(),
            DEFAULT_CLOCK_SKEW_SECS * 1000,
        );
        let from = self.sources(&format!("{p}.from"), &j.from, || {
            snap::CredentialSource::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            }
        });
        let mut claims_to_headers = Vec::new();
        for (i, c) in j.claims_to_headers.iter().enumerate() {
            let f = format!("{p}.claimsToHeaders[{i}]");
            if c.claim.is_empty() {
                self.d.push(format!("{f}.claim"), "must not be empty");
            }
            if let Some(h) = self.header_name(format!("{f}.header"), &c.header) {
                claims_to_headers.push(snap::ClaimToHeader {
                    claim: c.claim.clone(),
                    header: h,
                });
            }
        }
        let mut issuers: Vec<String> = j.issuer.iter().cloned().collect();
        issuers.retain(|i| !i.is_empty());
        if self.d.0.len() != before {
            return None;
        }
        Some(snap::Jwt {
            issuers,
            audiences: j.audiences.clone(),
            algorithms,
            clock_skew_secs: skew? / 1000,
            jwks: (!keys.is_empty())
                .then(|| snap::Secret::new(serde_json::json!({ "keys": keys }).to_string())),
            remote_jwks,
            from: from?,
            claims_to_headers,
        })
    }

    fn api_keys(&mut self, p: &str, k: &ApiKeysSpec) -> Option<snap::ApiKeys> {
        let from = match &k.location {
            None => Some(vec![snap::CredentialSource::Header {
                name: "x-api-key".into(),
                prefix: String::new(),
            }]),
            Some(l) if l.cookie.is_some() => {
                self.d.push(
                    format!("{p}.in.cookie"),
                    "an API key is read from a header or a query parameter",
                );
                None
            }
            Some(l) => self.sources(
                &format!("{p}.in"),
                std::slice::from_ref(l),
                || unreachable!(),
            ),
        };
        if k.secret_selector.match_labels.is_empty() {
            self.d.push(
                format!("{p}.secretSelector.matchLabels"),
                "select the Secrets by at least one label",
            );
            return None;
        }
        let mut keys: Vec<snap::ApiKey> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for secret in self
            .secrets
            .selected(self.namespace, &k.secret_selector.match_labels)
        {
            let name = secret.metadata.name.clone().unwrap_or_default();
            let Some(key) = secret_value(secret, "key").filter(|k| !k.is_empty()) else {
                self.unresolved.push(
                    format!("{p}.secretSelector"),
                    format!(
                        "Secret {}/{name} has no data key \"key\"; it is skipped",
                        self.namespace
                    ),
                );
                continue;
            };
            let consumer = secret_value(secret, "consumer")
                .and_then(|c| String::from_utf8(c).ok())
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| name.clone());
            let digest = sha256_hex(&key);
            if let Some(first) = seen.get(&digest) {
                self.unresolved.push(
                    format!("{p}.secretSelector"),
                    format!(
                        "Secret {}/{name} holds the same key as Secret {first}; it is skipped",
                        self.namespace
                    ),
                );
                continue;
            }
            seen.insert(digest.clone(), name);
            keys.push(snap::ApiKey {
                sha256: snap::Secret::new(digest),
                consumer,
            });
        }
        Some(snap::ApiKeys { from: from?, keys })
    }

    fn basic(&mut self, p: &str, b: &BasicSpec) -> Option<snap::Basic> {
        let realm = b.realm.clone().unwrap_or_else(|| "frontdesk".into());
        if realm.contains(['"', '\\']) || check_header_value(&realm).is_err() {
            self.d.push(
                format!("{p}.realm"),
                "must not contain quotes, backslashes or control characters",
            );
            return None;
        }
        let key = b
            .secret_ref
            .key
            .clone()
            .unwrap_or_else(|| "htpasswd".into());
        let mut users = Vec::new();
        if let Some(secret) = self.secret(format!("{p}.secretRef.name"), &b.secret_ref.name) {
            let secret_name = format!("{}/{}", self.namespace, b.secret_ref.name);
            match secret_value(secret, &key).map(String::from_utf8) {
                None => {
                    let why = format!("Secret {secret_name} has no key {key:?}");
                    self.unresolved.push(format!("{p}.secretRef"), why.clone());
                    self.missing.push(why);
                }
                Some(Err(_)) => {
                    let why = format!("Secret {secret_name} key {key:?} is not UTF-8 text");
                    self.unresolved.push(format!("{p}.secretRef"), why.clone());
                    self.missing.push(why);
                }
                Some(Ok(text)) => {
                    let (parsed, problems) = parse_htpasswd(&text);
                    for problem in problems {
                        self.unresolved.push(
                            format!("{p}.secretRef"),
                            format!("Secret {secret_name}: {problem}"),
                        );
                    }
                    users = parsed;
                }
            }
        }
        Some(snap::Basic { realm, users })
    }

    fn external(&mut self, p: &str, x: &ExternalSpec) -> Option<snap::External> {
        let before = self.d.0.len();
        let url_ok = self
            .d
            .check(format!("{p}.url"), check_fetch_url(&x.url, true, self.urls))
            .is_some();
        let tls = if url_ok {
            self.fetch_tls(&format!("{p}.tls"), &x.url, x.tls.as_ref())
        } else {
            None
        };
        let timeout = self.duration(
            &format!("{p}.timeout"),
            x.timeout.as_deref(),
            DEFAULT_EXTERNAL_TIMEOUT_MS,
        );
        let names = |ctx: &mut Self, f: &str, list: &[String]| -> Vec<String> {
            list.iter()
                .enumerate()
                .filter_map(|(i, h)| ctx.header_name(format!("{p}.{f}[{i}]"), h))
                .collect()
        };
        let forward_headers = names(self, "forwardHeaders", &x.forward_headers);
        let copy_headers = names(self, "copyHeaders", &x.copy_headers);
        if self.d.0.len() != before {
            return None;
        }
        Some(snap::External {
            url: x.url.clone(),
            forward_headers,
            copy_headers,
            timeout_ms: timeout?,
            failure_mode: match x.failure_mode.unwrap_or_default() {
                FailureModeSpec::Deny => snap::FailureMode::Deny,
                FailureModeSpec::Allow => snap::FailureMode::Allow,
            },
            tls,
        })
    }

    /// The TLS of a service the proxies fetch from or call (`url`): an `https://` URL's,
    /// verified against its host, with what `tls` (at field path `p`) names. References that do
    /// not resolve make the Policy unusable (refusing, not trusting what cannot be verified).
    fn fetch_tls(
        &mut self,
        p: &str,
        url: &str,
        tls: Option<&crate::route::BackendTlsSpec>,
    ) -> Option<snap::BackendTls> {
        let host = url.strip_prefix("https://").map(|rest| {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            super::urls::authority_host(authority)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        });
        if let Some(t) = tls {
            if host.is_none() {
                self.d.push(p.to_string(), "TLS needs an https:// URL");
                return None;
            }
            if t.hostname.is_some() {
                self.d.push(
                    format!("{p}.hostname"),
                    "the name verified is the URL's host; leave hostname out",
                );
                return None;
            }
        }
        let refs = PolicyRefs {
            secrets: self.secrets,
            config_maps: self.config_maps,
        };
        let before = self.unresolved.0.len();
        match super::backend_tls::lower_backend_tls(
            p,
            self.namespace,
            host,
            tls,
            &refs,
            self.d,
            self.unresolved,
        ) {
            Ok(tls) => tls,
            Err(()) => {
                if self.unresolved.0.len() != before {
                    self.missing
                        .push(format!("{p}: {}", self.unresolved.0[before].message));
                }
                None
            }
        }
    }

    fn authorization(&mut self, p: &str, z: &AuthorizationSpec) -> Option<snap::Authorization> {
        let before = self.d.0.len();
        if z.rules.is_empty() {
            self.d.push(
                format!("{p}.rules"),
                "list at least one rule (no rule would refuse every request)",
            );
        }
        let mut rules = Vec::new();
        for (i, r) in z.rules.iter().enumerate() {
            let rp = format!("{p}.rules[{i}]");
            for (claim, values) in &r.claims {
                if claim.is_empty() || values.is_empty() {
                    self.d.push(
                        format!("{rp}.claims"),
                        format!("claim {claim:?} needs a name and at least one value"),
                    );
                }
            }
            let mut methods = Vec::new();
            for (mi, m) in r.methods.iter().enumerate() {
                let upper = m.to_ascii_uppercase();
                if self
                    .d
                    .check(
                        format!("{rp}.methods[{mi}]"),
                        check_token(&upper, "HTTP method"),
                    )
                    .is_some()
                {
                    methods.push(upper);
                }
            }
            rules.push(snap::AuthorizationRule {
                claims: r.claims.clone(),
                methods,
                consumers: r.consumers.clone(),
            });
        }
        (self.d.0.len() == before).then_some(snap::Authorization { rules })
    }

    fn rate_limit(&mut self, p: &str, r: &RateLimitSpec) -> Option<snap::RateLimit> {
        let before = self.d.0.len();
        if r.limits.is_empty() {
            self.d
                .push(format!("{p}.limits"), "list at least one limit");
        }
        let mut limits: Vec<snap::Limit> = Vec::new();
        for (i, l) in r.limits.iter().enumerate() {
            let f = format!("{p}.limits[{i}]");
            let name = l.name.clone().unwrap_or_else(|| format!("limit-{i}"));
            let name_ok = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                self.d.push(
                    format!("{f}.name"),
                    format!("{name:?}: use letters, digits, '-', '_' and '.' (at most 63)"),
                );
            } else if limits.iter().any(|x| x.name == name) {
                self.d
                    .push(format!("{f}.name"), format!("{name:?} is used twice"));
            }
            if l.requests == 0 {
                self.d
                    .push(format!("{f}.requests"), "must be greater than 0");
            }
            let burst = l.burst.unwrap_or(l.requests);
            if l.burst == Some(0) {
                self.d.push(format!("{f}.burst"), "must be greater than 0");
            }
            if burst > 1_000_000_000 || l.requests > 1_000_000_000 {
                self.d
                    .push(f.clone(), "requests and burst are at most 1,000,000,000");
            }
            let period = self.d.check(format!("{f}.period"), parse_period(&l.period));
            if let Some(ms) = period
                && l.requests > 0
                && ms.saturating_mul(1000) / l.requests == 0
            {
                self.d.push(
                    format!("{f}.requests"),
                    "more than one request per microsecond cannot be limited; use a longer period",
                );
            }
            let key = self.d.check(
                format!("{f}.key"),
                parse_limit_key(l.key.as_deref().unwrap_or("ClientIP")),
            );
            if let (Some(period_ms), Some(key)) = (period, key) {
                limits.push(snap::Limit {
                    id: format!("{}/{}/{name}", self.namespace, self.name),
                    name,
                    requests: l.requests,
                    period_ms,
                    burst,
                    key,
                    scope: match l.scope.unwrap_or_default() {
                        LimitScopeSpec::Local => snap::LimitScope::Local,
                        LimitScopeSpec::Global => snap::LimitScope::Global,
                    },
                });
            }
        }
        (self.d.0.len() == before).then_some(snap::RateLimit {
            limits,
            on_store_failure: match r.on_store_failure.unwrap_or(FailureModeSpec::Allow) {
                FailureModeSpec::Deny => snap::FailureMode::Deny,
                FailureModeSpec::Allow => snap::FailureMode::Allow,
            },
        })
    }

    fn sources(
        &mut self,
        p: &str,
        list: &[CredentialSourceSpec],
        default: impl FnOnce() -> snap::CredentialSource,
    ) -> Option<Vec<snap::CredentialSource>> {
        if list.is_empty() {
            return Some(vec![default()]);
        }
        let before = self.d.0.len();
        let mut out = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let f = format!("{p}[{i}]");
            let set = usize::from(s.header.is_some())
                + usize::from(s.cookie.is_some())
                + usize::from(s.query.is_some());
            if set != 1 {
                self.d
                    .push(f, "set exactly one of header, cookie and query");
                continue;
            }
            if s.prefix.is_some() && s.header.is_none() {
                self.d
                    .push(format!("{f}.prefix"), "only a header has a prefix");
            }
            if let Some(h) = &s.header {
                if let Some(name) = self.header_name(format!("{f}.header"), h) {
                    let prefix = s.prefix.clone().unwrap_or_default();
                    self.d
                        .check(format!("{f}.prefix"), check_header_value(&prefix));
                    out.push(snap::CredentialSource::Header { name, prefix });
                }
            } else if let Some(c) = &s.cookie {
                self.d
                    .check(format!("{f}.cookie"), check_token(c, "cookie name"));
                out.push(snap::CredentialSource::Cookie { name: c.clone() });
            } else if let Some(q) = &s.query {
                if q.is_empty() {
                    self.d.push(format!("{f}.query"), "must not be empty");
                }
                out.push(snap::CredentialSource::Query { name: q.clone() });
            }
        }
        (self.d.0.len() == before).then_some(out)
    }

    fn header_name(&mut self, field: String, name: &str) -> Option<String> {
        let lower = name.to_ascii_lowercase();
        self.d
            .check(field.clone(), check_token(&lower, "header name"))?;
        if lower == "host" || is_hop_by_hop(&lower) {
            self.d.push(field, format!("{lower} cannot be used here"));
            return None;
        }
        Some(lower)
    }

    /// A duration field in milliseconds, or its default.
    fn duration(&mut self, field: &str, value: Option<&str>, default_ms: u64) -> Option<u64> {
        match value {
            None => Some(default_ms),
            Some(v) => self
                .d
                .check(field.to_string(), parse_timeout(v))
                .and_then(|d| u64::try_from(d.as_millis()).ok()),
        }
    }
}

/// Longest rate-limit period.
pub const MAX_PERIOD: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn parse_period(t: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(t)
        .map_err(|e| format!("{t:?} is not a duration like 1s, 1m or 1h: {e}"))?;
    if d.as_millis() == 0 || d > MAX_PERIOD {
        return Err("must be at least 1ms and at most 24h".into());
    }
    u64::try_from(d.as_millis()).map_err(|e| e.to_string())
}

fn parse_limit_key(k: &str) -> Result<snap::LimitKey, String> {
    let bad =
        || format!("{k:?} is not one of ClientIP, Consumer, Header:<name>, Claim:<name>, Route");
    Ok(match k.split_once(':') {
        None if k == "ClientIP" => snap::LimitKey::ClientIp,
        None if k == "Consumer" => snap::LimitKey::Consumer,
        None if k == "Route" => snap::LimitKey::Route,
        Some(("Header", name)) => {
            let name = name.trim().to_ascii_lowercase();
            check_token(&name, "header name")?;
            snap::LimitKey::Header { name }
        }
        Some(("Claim", name)) if !name.trim().is_empty() => snap::LimitKey::Claim {
            name: name.trim().to_string(),
        },
        _ => return Err(bad()),
    })
}

fn parse_jwks(text: &str) -> Result<JwkSet, String> {
    let set: JwkSet =
        serde_json::from_str(text).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    if set.keys.is_empty() {
        return Err("the key set has no keys".into());
    }
    for (i, k) in set.keys.iter().enumerate() {
        jsonwebtoken::DecodingKey::from_jwk(k)
            .map_err(|e| format!("key {i} cannot be used: {e}"))?;
        // What the proxies' verifier (ring) accepts.
        match &k.algorithm {
            AlgorithmParameters::RSA(r) => {
                let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(r.n.trim_end_matches('='))
                    .map_err(|_| format!("key {i}: n is not base64url"))?;
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if bits < 2048 {
                    return Err(format!(
                        "key {i}: an RSA key of {bits} bits; at least 2048 are required"
                    ));
                }
            }
            AlgorithmParameters::EllipticCurve(ec)
                if !matches!(
                    ec.curve,
                    jsonwebtoken::jwk::EllipticCurve::P256 | jsonwebtoken::jwk::EllipticCurve::P384
                ) =>
            {
                return Err(format!(
                    "key {i}: only the P-256 and P-384 curves are supported"
                ));
            }
            _ => {}
        }
    }
    // The proxy skips encryption keys; a set of nothing else would verify nothing.
    let signing = set.keys.iter().any(|k| {
        !matches!(
            k.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        )
    });
    if !signing {
        return Err("the key set has only encryption keys (use: enc)".into());
    }
    Ok(set)
}

/// `http://host[:port]/path` (or `https://` when `tls`).
fn check_fetch_url(url: &str, tls: bool, urls: &super::urls::UrlPolicy) -> Result<(), String> {
    let shown = super::urls::redact_url(url);
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://").filter(|_| tls))
        .ok_or_else(|| {
            if tls {
                format!("{shown:?} must start with https:// or http://")
            } else {
                format!("{shown:?} must start with http://")
            }
        })?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || url.contains(['#', ' ']) {
        return Err(format!(
            "{shown:?} needs a host and no credentials, fragment or spaces"
        ));
    }
    urls.check(super::urls::authority_host(authority))
}

/// htpasswd lines → users; lines that cannot be used are reported (without their hash) and
/// skipped.
pub fn parse_htpasswd(text: &str) -> (Vec<snap::BasicUser>, Vec<String>) {
    let mut users: Vec<snap::BasicUser> = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            problems.push(format!("line {} is not user:hash; skipped", n + 1));
            continue;
        };
        let supported = hash.starts_with("$2y$")
            || hash.starts_with("$2a$")
            || hash.starts_with("$2b$")
            || hash.starts_with("$5$")
            || hash.starts_with("$6$")
            || hash.starts_with("{SHA}");
        if !supported {
            let what = if hash.starts_with("$apr1$") {
                "an MD5 ($apr1$) hash"
            } else {
                "not a supported hash"
            };
            problems.push(format!(
                "line {} (user {user:?}) is {what}; use htpasswd -B (bcrypt); skipped",
                n + 1
            ));
            continue;
        }
        if users.iter().any(|u| u.user == user) {
            problems.push(format!(
                "line {}: user {user:?} appears twice; the first is used",
                n + 1
            ));
            continue;
        }
        users.push(snap::BasicUser {
            user: user.to_string(),
            hash: snap::Secret::new(hash),
        });
    }
    (users, problems)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex SHA-256, as API key digests are stored.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// One compiled Policy, as the merge sees it.
pub enum Compiled {
    Usable(Box<snap::Policy>),
    Invalid,
}

/// The effective policy of a rule listing `names` (in the Route's namespace): each section
/// from the last Policy that has it. Returns the policy and the overrides (for `Conflicted`).
pub fn merge(
    namespace: &str,
    names: &[String],
    compiled: &BTreeMap<(String, String), Compiled>,
) -> (snap::Policy, Vec<String>) {
    let mut out = snap::Policy::default();
    let mut unavailable = Vec::new();
    let mut conflicts = Vec::new();
    let mut authn_from: Option<String> = None;
    let mut authz_from: Option<String> = None;
    let mut limits_from: Option<String> = None;
    let mut bounds_from: Option<String> = None;
    let mut breaker_from: Option<String> = None;
    let mut checks_from: Option<String> = None;
    let mut balancer_from: Option<String> = None;
    let mut connection_from: Option<String> = None;
    let mut cors_from: Option<String> = None;
    for name in names {
        let id = format!("{namespace}/{name}");
        out.sources.push(id.clone());
        match compiled.get(&(namespace.to_string(), name.clone())) {
            None => unavailable.push(format!("Policy {id} not found")),
            Some(Compiled::Invalid) => {
                unavailable.push(format!("Policy {id} is invalid (see its status)"))
            }
            Some(Compiled::Usable(p)) => {
                let p = &**p;
                if let Some(why) = &p.unavailable {
                    unavailable.push(format!("Policy {id}: {why}"));
                }
                take(
                    "authentication",
                    &id,
                    p.authentication.as_ref(),
                    &mut out.authentication,
                    &mut authn_from,
                    &mut conflicts,
                );
                take(
                    "authorization",
                    &id,
                    p.authorization.as_ref(),
                    &mut out.authorization,
                    &mut authz_from,
                    &mut conflicts,
                );
                take(
                    "rateLimit",
                    &id,
                    p.rate_limit.as_ref(),
                    &mut out.rate_limit,
                    &mut limits_from,
                    &mut conflicts,
                );
                take(
                    "limits",
                    &id,
                    p.limits.as_ref(),
                    &mut out.limits,
                    &mut bounds_from,
                    &mut conflicts,
                );
                take(
                    "circuitBreaker",
                    &id,
                    p.circuit_breaker.as_ref(),
                    &mut out.circuit_breaker,
                    &mut breaker_from,
                    &mut conflicts,
                );
                take(
                    "healthCheck",
                    &id,
                    p.health_check.as_ref(),
                    &mut out.health_check,
                    &mut checks_from,
                    &mut conflicts,
                );
                take(
                    "loadBalancer",
                    &id,
                    p.load_balancer.as_ref(),
                    &mut out.load_balancer,
                    &mut balancer_from,
                    &mut conflicts,
                );
                take(
                    "backendConnection",
                    &id,
                    p.backend_connection.as_ref(),
                    &mut out.backend_connection,
                    &mut connection_from,
                    &mut conflicts,
                );
                take(
                    "cors",
                    &id,
                    p.cors.as_ref(),
                    &mut out.cors,
                    &mut cors_from,
                    &mut conflicts,
                );
            }
        }
    }
    if !unavailable.is_empty() {
        out.unavailable = Some(unavailable.join("; "));
    }
    (out, conflicts)
}

/// Puts one Policy's section in the merge, noting the one it overrides.
fn take<T: Clone>(
    section: &str,
    id: &str,
    mine: Option<&T>,
    slot: &mut Option<T>,
    from: &mut Option<String>,
    conflicts: &mut Vec<String>,
) {
    let Some(v) = mine else { return };
    if let Some(previous) = from.replace(id.to_string())
        && previous != id
    {
        conflicts.push(format!(
            "{section} of Policy {previous} is overridden by Policy {id}"
        ));
    }
    *slot = Some(v.clone());
}
