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

mod authentication;
mod merge;
mod rate_limit;
pub mod targets;

pub use authentication::{parse_htpasswd, sha256_hex};
pub use merge::{Compiled, merge, sections};
pub use rate_limit::MAX_PERIOD;

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
    targets::check_targets(&spec.target_refs, &mut out.invalid);
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
        out.policy.slow_start = lb.slow_start.as_ref().and_then(|s| {
            super::upstream::lower_slow_start("spec.loadBalancer.slowStart", s, ctx.d)
        });
    }
    if let Some(c) = &spec.cors {
        out.policy.cors = super::cors::lower_cors("spec.cors", c, ctx.d);
    }
    if let Some(c) = &spec.cache {
        out.policy.cache = super::cache::lower_cache("spec.cache", c, ctx.d);
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
