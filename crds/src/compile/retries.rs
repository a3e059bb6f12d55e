//! A rule's `retries`, lowered: defaults filled in, durations and conditions parsed, bounds
//! checked (the proxy checks them again, [`snap::Retries::check`]).

use frontdesk_snapshot as snap;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::lower::parse_timeout;
use crate::diagnostic::Diagnostics;
use crate::route::Retries;

/// What is retried when a rule names nothing.
const DEFAULT_ON: [snap::RetryOn; 3] = [
    snap::RetryOn::ConnectFailure,
    snap::RetryOn::Reset,
    snap::RetryOn::Status(503),
];

/// `p` is the field path of `retries`.
pub(super) fn lower_retries(p: &str, r: &Retries, d: &mut Diagnostics) -> Option<snap::Retries> {
    let before = d.0.len();
    let millis = |d: &mut Diagnostics, field: &str, t: &str| {
        d.check(format!("{p}.{field}"), parse_timeout(t))
            .and_then(|t| u64::try_from(t.as_millis()).ok())
    };
    let per_try_timeout_ms = r
        .per_try_timeout
        .as_ref()
        .and_then(|t| millis(d, "perTryTimeout", t));
    let backoff_ms = match &r.backoff {
        None => Some(snap::DEFAULT_BACKOFF_MS),
        Some(t) => millis(d, "backoff", t),
    };
    let on = if r.on.is_empty() {
        DEFAULT_ON.to_vec()
    } else {
        r.on.iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let parsed = match c {
                    IntOrString::Int(code) => u16::try_from(*code)
                        .map(snap::RetryOn::Status)
                        .map_err(|_| format!("{code} is not a status code")),
                    IntOrString::String(s) => snap::RetryOn::parse(s),
                };
                d.check(format!("{p}.on[{i}]"), parsed)
            })
            .collect()
    };
    let budget = r.budget.clone().unwrap_or_default();
    let lowered = snap::Retries {
        attempts: r.attempts,
        per_try_timeout_ms,
        on,
        backoff_ms: backoff_ms.unwrap_or(snap::DEFAULT_BACKOFF_MS),
        non_idempotent: r.non_idempotent,
        budget_percent: budget.percent.unwrap_or(snap::DEFAULT_BUDGET_PERCENT),
        budget_min_per_second: budget
            .min_per_second
            .unwrap_or(snap::DEFAULT_BUDGET_MIN_PER_SECOND),
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

/// The manifest's name of a snapshot field [`snap::Retries::check`] names.
fn manifest_field(snapshot_field: &str) -> &str {
    match snapshot_field {
        "perTryTimeoutMs" => "perTryTimeout",
        "backoffMs" => "backoff",
        "budgetPercent" => "budget.percent",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(yaml: &str) -> Result<snap::Retries, Vec<String>> {
        let r: Retries = serde_saphyr::from_str(yaml).unwrap();
        let mut d = Diagnostics::default();
        lower_retries("spec.rules[0].retries", &r, &mut d).ok_or_else(|| {
            d.0.iter()
                .map(|x| format!("{}: {}", x.field, x.message))
                .collect()
        })
    }

    #[test]
    fn defaults_are_filled_in() {
        let r = lower("attempts: 2").unwrap();
        assert_eq!(r.on, DEFAULT_ON);
        assert_eq!(r.backoff_ms, 25);
        assert_eq!(r.per_try_timeout_ms, None);
        assert_eq!((r.budget_percent, r.budget_min_per_second), (20, 3));
        assert!(!r.non_idempotent);
    }

    #[test]
    fn conditions_and_durations_are_read() {
        let r = lower(
            "{attempts: 3, perTryTimeout: 250ms, backoff: 10ms, on: [5xx, '429', 409, reset], \
             nonIdempotent: true, budget: {percent: 50, minPerSecond: 1}}",
        )
        .unwrap();
        assert_eq!(
            r.on,
            [
                snap::RetryOn::Any5xx,
                snap::RetryOn::Status(429),
                snap::RetryOn::Status(409),
                snap::RetryOn::Reset
            ]
        );
        assert_eq!((r.per_try_timeout_ms, r.backoff_ms), (Some(250), 10));
        assert_eq!((r.budget_percent, r.budget_min_per_second), (50, 1));
        assert!(r.non_idempotent);
    }

    #[test]
    fn mistakes_name_their_field() {
        let errors = lower("{attempts: 0, on: [sometimes, 200], perTryTimeout: soon}").unwrap_err();
        assert!(
            errors[0].starts_with("spec.rules[0].retries.perTryTimeout:"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("spec.rules[0].retries.on[0]:"),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        let errors = lower("{attempts: 0}").unwrap_err();
        assert_eq!(
            errors,
            ["spec.rules[0].retries.attempts: must be from 1 to 10"]
        );
        let errors = lower("{attempts: 1, budget: {percent: 0}}").unwrap_err();
        assert_eq!(
            errors,
            ["spec.rules[0].retries.budget.percent: must be from 1 to 100"]
        );
        let errors = lower("{attempts: 1, on: [200]}").unwrap_err();
        assert_eq!(
            errors,
            ["spec.rules[0].retries.on: 200 is not an error status (400 to 599)"]
        );
    }
}
