//! A Policy's `circuitBreaker`, lowered: defaults filled in, durations parsed, bounds checked
//! (the proxy checks them again, [`snap::CircuitBreaker::check`]).

use frontdesk_snapshot as snap;

use super::lower::parse_timeout;
use crate::diagnostic::Diagnostics;
use crate::policy::CircuitBreakerSpec;

/// `p` is the field path of `circuitBreaker`.
pub(super) fn lower_circuit_breaker(
    p: &str,
    c: &CircuitBreakerSpec,
    d: &mut Diagnostics,
) -> Option<snap::CircuitBreaker> {
    let before = d.0.len();
    let mut millis = |field: &str, t: &Option<String>, default: u64| match t {
        None => default,
        Some(t) => d
            .check(format!("{p}.{field}"), parse_timeout(t))
            .and_then(|t| u64::try_from(t.as_millis()).ok())
            .unwrap_or(default),
    };
    let ejection_time_ms = millis(
        "ejectionTime",
        &c.ejection_time,
        snap::DEFAULT_EJECTION_TIME_MS,
    );
    let max_ejection_time_ms = millis(
        "maxEjectionTime",
        &c.max_ejection_time,
        snap::DEFAULT_MAX_EJECTION_TIME_MS.max(ejection_time_ms),
    );
    let lowered = snap::CircuitBreaker {
        max_requests: c.max_requests.unwrap_or(snap::DEFAULT_MAX_REQUESTS),
        max_pending_requests: c
            .max_pending_requests
            .unwrap_or(snap::DEFAULT_MAX_PENDING_REQUESTS),
        consecutive_failures: c
            .consecutive_failures
            .unwrap_or(snap::DEFAULT_CONSECUTIVE_FAILURES),
        ejection_time_ms,
        max_ejection_time_ms,
        max_ejection_percent: c
            .max_ejection_percent
            .unwrap_or(snap::DEFAULT_MAX_EJECTION_PERCENT),
    };
    if d.0.len() != before {
        return None;
    }
    match lowered.check() {
        Ok(()) => Some(lowered),
        Err((field, why)) => {
            d.push(format!("{p}.{}", manifest_field(field)), why);
            None
        }
    }
}

/// The manifest's name of a snapshot field [`snap::CircuitBreaker::check`] names.
fn manifest_field(snapshot_field: &str) -> &str {
    match snapshot_field {
        "ejectionTimeMs" => "ejectionTime",
        "maxEjectionTimeMs" => "maxEjectionTime",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(yaml: &str) -> Result<snap::CircuitBreaker, Vec<String>> {
        let c: CircuitBreakerSpec = serde_saphyr::from_str(yaml).unwrap();
        let mut d = Diagnostics::default();
        lower_circuit_breaker("spec.circuitBreaker", &c, &mut d).ok_or_else(|| {
            d.0.iter()
                .map(|x| format!("{}: {}", x.field, x.message))
                .collect()
        })
    }

    #[test]
    fn an_empty_section_takes_every_default() {
        assert_eq!(lower("{}").unwrap(), snap::CircuitBreaker::default());
    }

    #[test]
    fn settings_are_read_and_a_long_ejection_raises_the_default_maximum() {
        let c = lower(
            "{maxRequests: 10, maxPendingRequests: 0, consecutiveFailures: 3, \
             ejectionTime: 10m, maxEjectionPercent: 100}",
        )
        .unwrap();
        assert_eq!((c.max_requests, c.max_pending_requests), (10, 0));
        assert_eq!(c.consecutive_failures, 3);
        assert_eq!(
            (c.ejection_time_ms, c.max_ejection_time_ms),
            (600_000, 600_000)
        );
        assert_eq!(c.max_ejection_percent, 100);
    }

    #[test]
    fn mistakes_name_their_field() {
        let e = lower("{ejectionTime: soon}").unwrap_err();
        assert!(
            e[0].starts_with("spec.circuitBreaker.ejectionTime: "),
            "{e:?}"
        );
        let e = lower("{ejectionTime: 1m, maxEjectionTime: 10s}").unwrap_err();
        assert_eq!(
            e,
            ["spec.circuitBreaker.maxEjectionTime: must be at least the ejection time"]
        );
        let e = lower("{maxRequests: 0}").unwrap_err();
        assert_eq!(e, ["spec.circuitBreaker.maxRequests: must be at least 1"]);
        let e = lower("{maxEjectionPercent: 120}").unwrap_err();
        assert_eq!(
            e,
            ["spec.circuitBreaker.maxEjectionPercent: must be from 0 to 100"]
        );
    }
}
