//! The effective policy of a rule: each section from the last Policy of its list that has it,
//! and the overrides that makes (for `Conflicted`).

use super::*;

/// One compiled Policy, as the merge sees it.
pub enum Compiled {
    Usable(Box<snap::Policy>),
    Invalid,
}

/// The effective policy of a rule listing `names` (in the Route's namespace, or
/// `namespace/name` for Policies attached by `targetRefs` from elsewhere): each section from the
/// last Policy that has it. Returns the policy and the overrides (for `Conflicted`).
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
    let mut cache_from: Option<String> = None;
    for name in names {
        let (policy_ns, name) = name.split_once('/').unwrap_or((namespace, name));
        let id = format!("{policy_ns}/{name}");
        out.sources.push(id.clone());
        match compiled.get(&(policy_ns.to_string(), name.to_string())) {
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
                // Slow start is part of the loadBalancer section: it comes with it.
                if p.load_balancer.is_some() {
                    out.slow_start = p.slow_start.clone();
                }
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
                take(
                    "cache",
                    &id,
                    p.cache.as_ref(),
                    &mut out.cache,
                    &mut cache_from,
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

/// The sections a compiled Policy has, by the names the merge (and `Conflicted`) uses.
pub fn sections(p: &snap::Policy) -> Vec<&'static str> {
    [
        ("authentication", p.authentication.is_some()),
        ("authorization", p.authorization.is_some()),
        ("rateLimit", p.rate_limit.is_some()),
        ("limits", p.limits.is_some()),
        ("circuitBreaker", p.circuit_breaker.is_some()),
        ("healthCheck", p.health_check.is_some()),
        ("loadBalancer", p.load_balancer.is_some()),
        ("backendConnection", p.backend_connection.is_some()),
        ("cors", p.cors.is_some()),
        ("cache", p.cache.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, has)| has.then_some(name))
    .collect()
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
