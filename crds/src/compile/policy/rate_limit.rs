//! A Policy's `rateLimit`, lowered: limits, their periods and keys, and where their counts
//! live (this proxy's memory or Redis).

use super::*;

impl<'b> Ctx<'_, 'b> {
    pub(super) fn rate_limit(&mut self, p: &str, r: &RateLimitSpec) -> Option<snap::RateLimit> {
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
