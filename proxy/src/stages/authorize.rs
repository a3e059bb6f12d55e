//! Authorize: runs after authenticate, before the rate limit. Decides whether the identity the
//! policy authenticated (or an anonymous client, for a policy with rules but no
//! authentication) may make this request: rules on claims, methods and consumers, any one of
//! which allows it. A policy without rules allows every authenticated request. Counts the
//! policy's final decision (`allowed` or `forbidden`) in `frontdesk_auth_decisions_total`.
//! Refusal: 403 problem+json.

use frontdesk_snapshot::{self as snap, AuthorizationRule};
use http::Method;
use prometheus_client::metrics::counter::Counter;
use serde_json::Value;

use crate::identity::{Identity, lookup};
use crate::metrics::{AuthLabels, AuthOutcome, Metrics, RouteId};
use crate::problem::{Problem, ProblemKind};

/// The authorize stage of one policy.
pub struct Authorize {
    rules: Option<Vec<AuthorizationRule>>,
    allowed: Counter,
    forbidden: Counter,
}

impl Authorize {
    /// `None` when the policy neither authenticates nor authorizes: nothing to decide.
    pub fn build(key: &str, p: &snap::Policy, metrics: &Metrics) -> Option<Self> {
        let authenticates = p.unavailable.is_some()
            || p.authentication.as_ref().is_some_and(|a| {
                a.jwt.is_some() || a.api_keys.is_some() || a.basic.is_some() || a.external.is_some()
            });
        if !authenticates && p.authorization.is_none() {
            return None;
        }
        let counter = |outcome| {
            metrics
                .auth_decisions
                .get_or_create(&AuthLabels {
                    policy: RouteId(key.into()),
                    outcome,
                })
                .clone()
        };
        Some(Authorize {
            rules: p.authorization.as_ref().map(|z| z.rules.clone()),
            allowed: counter(AuthOutcome::allowed),
            forbidden: counter(AuthOutcome::forbidden),
        })
    }

    /// Allows or refuses (403) the request of `who` (`None`: not authenticated).
    pub fn check(&self, method: &Method, who: Option<&Identity>) -> Result<(), Problem> {
        if let Some(rules) = &self.rules
            && !allows(rules, method, who.unwrap_or(&Identity::ANONYMOUS))
        {
            self.forbidden.inc();
            return Err(Problem::new(
                ProblemKind::Forbidden,
                "the credentials do not allow this request",
            ));
        }
        self.allowed.inc();
        Ok(())
    }
}

/// True when any rule holds; a rule holds when each of its conditions does.
pub fn allows(rules: &[AuthorizationRule], method: &Method, who: &Identity) -> bool {
    rules.iter().any(|r| {
        (r.methods.is_empty() || r.methods.iter().any(|m| m == method.as_str()))
            && (r.consumers.is_empty()
                || who
                    .consumer
                    .as_deref()
                    .is_some_and(|c| r.consumers.iter().any(|x| x == c)))
            && r.claims.iter().all(|(claim, accepted)| {
                who.claims
                    .as_deref()
                    .and_then(|claims| lookup(claims, claim))
                    .is_some_and(|v| contains_any(v, accepted, is_scope(claim)))
            })
    })
}

/// OAuth scopes (`scope`, `scp`) are space-separated lists (RFC 8693 §4.2); no other string
/// claim is split, so `"name": "x admin"` never counts as `admin`.
fn is_scope(claim: &str) -> bool {
    matches!(claim.rsplit('.').next(), Some("scope" | "scp"))
}

/// Whether a claim value holds one of `accepted`: equal as a string, an element of an array,
/// or a word of a space-separated string (OAuth `scope`). Numbers and booleans compare by their
/// JSON text.
fn contains_any(v: &Value, accepted: &[String], words: bool) -> bool {
    let one = |v: &Value| match v {
        Value::String(s) => accepted
            .iter()
            .any(|a| a == s || (words && s.split(' ').any(|w| w == a))),
        Value::Number(_) | Value::Bool(_) => {
            let text = v.to_string();
            accepted.contains(&text)
        }
        _ => false,
    };
    match v {
        Value::Array(items) => items.iter().any(one),
        _ => one(v),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn who(claims: Value, consumer: Option<&str>) -> Identity {
        Identity {
            method: "jwt",
            consumer: consumer.map(Arc::from),
            claims: claims.as_object().cloned().map(Arc::new),
        }
    }

    fn rule(claims: &[(&str, &[&str])], methods: &[&str], consumers: &[&str]) -> AuthorizationRule {
        AuthorizationRule {
            claims: claims
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<BTreeMap<_, _>>(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            consumers: consumers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn scopes_arrays_nested_claims_and_methods() {
        let rules = [rule(&[("scope", &["orders:read"])], &["GET"], &[])];
        let get = Method::GET;
        assert!(allows(
            &rules,
            &get,
            &who(json!({"scope": "profile orders:read"}), None)
        ));
        assert!(!allows(
            &rules,
            &get,
            &who(json!({"scope": "orders:readx"}), None)
        ));
        assert!(!allows(
            &rules,
            &Method::POST,
            &who(json!({"scope": "orders:read"}), None)
        ));
        assert!(!allows(&rules, &get, &who(json!({}), None)));

        let rules = [rule(&[("realm.roles", &["admin"])], &[], &[])];
        assert!(allows(
            &rules,
            &get,
            &who(json!({"realm": {"roles": ["user", "admin"]}}), None)
        ));
        assert!(!allows(
            &rules,
            &get,
            &who(json!({"realm": {"roles": ["user"]}}), None)
        ));

        let rules = [
            rule(&[], &[], &["alice"]),
            rule(&[("admin", &["true"])], &[], &[]),
        ];
        assert!(allows(&rules, &get, &who(json!({}), Some("alice"))));
        assert!(!allows(&rules, &get, &who(json!({}), Some("bob"))));
        assert!(allows(
            &rules,
            &get,
            &who(json!({"admin": true}), Some("bob"))
        ));
    }

    fn policy(yaml: serde_json::Value) -> snap::Policy {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn the_stage_counts_decisions_and_refuses_with_403() {
        let metrics = Metrics::new();
        let p = policy(json!({"sources": [], "authorization": {"rules": [{"methods": ["GET"]}]}}));
        let stage = Authorize::build("ns/reads", &p, &metrics).unwrap();
        assert!(
            stage.check(&Method::GET, None).is_ok(),
            "anonymous GET allowed"
        );
        let refused = stage.check(&Method::DELETE, None).unwrap_err();
        assert_eq!(refused.kind, ProblemKind::Forbidden);
        let text = metrics.encode();
        assert!(
            text.contains("policy=\"ns/reads\",outcome=\"allowed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("policy=\"ns/reads\",outcome=\"forbidden\"} 1"),
            "{text}"
        );

        // Nothing to decide: no stage at all.
        assert!(Authorize::build("ns/limits", &policy(json!({"sources": []})), &metrics).is_none());
        // Authentication alone: every authenticated request is allowed (and counted).
        let basic = policy(
            json!({"sources": [], "authentication": {"basic": {"realm": "r", "users": []}}}),
        );
        let stage = Authorize::build("ns/basic", &basic, &metrics).unwrap();
        assert!(
            stage
                .check(&Method::POST, Some(&who(json!({}), Some("bob"))))
                .is_ok()
        );
    }
}
