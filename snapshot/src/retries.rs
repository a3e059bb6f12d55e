//! Retries of a rule's requests: when a try may be repeated, how often, and how fast.
//!
//! The compiler fills in every default, so the proxy reads plain numbers; [`Retries::check`]
//! holds the bounds both sides enforce.

use serde::{Deserialize, Serialize};

/// Most retries after the first try.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// The backoff base when a rule sets none (Envoy's default).
pub const DEFAULT_BACKOFF_MS: u64 = 25;
/// The share of a backend's recent requests that may be retries, when a rule sets none.
pub const DEFAULT_BUDGET_PERCENT: u32 = 20;
/// Retries per second a backend may always get, whatever its traffic, when a rule sets none.
pub const DEFAULT_BUDGET_MIN_PER_SECOND: u32 = 3;

/// How a rule's failed tries are tried again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retries {
    /// Tries after the first (1..=10).
    pub attempts: u32,
    /// Deadline of one try for the response head; `None`: the rule's timeout, which bounds all
    /// tries together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout_ms: Option<u64>,
    /// What makes a try worth repeating.
    pub on: Vec<RetryOn>,
    /// Base of the exponential backoff between tries.
    pub backoff_ms: u64,
    /// Methods that are not idempotent (POST, PATCH) are retried too, not only when the
    /// connection could not be made.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_idempotent: bool,
    /// Retries may be at most this percentage of a backend's requests over the last 10 seconds.
    pub budget_percent: u32,
    /// ... or this many per second, whichever is more.
    pub budget_min_per_second: u32,
}

/// A reason to try again. In manifests: `connect-failure`, `reset`, `timeout`, `5xx`,
/// `gateway-error`, `retriable-4xx`, or a status code (`503`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// No connection to the endpoint could be made (the request never left).
    ConnectFailure,
    /// The connection broke before a response head arrived.
    Reset,
    /// No response head within the per-try timeout.
    Timeout,
    /// Any 5xx response, and the three above.
    #[serde(rename = "5xx")]
    Any5xx,
    /// A 502, 503 or 504 response, and the first three above.
    GatewayError,
    /// A 409 response (a conflict another try may not meet).
    #[serde(rename = "retriable-4xx")]
    Retriable4xx,
    /// A response with this status.
    #[serde(untagged)]
    Status(u16),
}

impl RetryOn {
    /// The condition a manifest names (`503` as text included).
    pub fn parse(s: &str) -> Result<RetryOn, String> {
        if let Ok(code) = s.parse::<u16>() {
            return Ok(RetryOn::Status(code));
        }
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            format!(
                "{s:?} is not a retry condition: use connect-failure, reset, timeout, 5xx, \
                 gateway-error, retriable-4xx or a status code"
            )
        })
    }
}

impl Retries {
    /// The bounds a rule's retries must keep; a failure names the field (as this type spells
    /// it) and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=MAX_RETRY_ATTEMPTS).contains(&self.attempts) {
            return Err((
                "attempts",
                format!("must be from 1 to {MAX_RETRY_ATTEMPTS}"),
            ));
        }
        if self.per_try_timeout_ms == Some(0) {
            return Err(("perTryTimeoutMs", "must be more than 0".into()));
        }
        if self.on.is_empty() {
            return Err(("on", "name at least one condition".into()));
        }
        if let Some(RetryOn::Status(code)) = self
            .on
            .iter()
            .find(|c| matches!(c, RetryOn::Status(c) if !(400..=599).contains(c)))
        {
            return Err(("on", format!("{code} is not an error status (400 to 599)")));
        }
        if self.backoff_ms == 0 || self.backoff_ms > 60_000 {
            return Err(("backoffMs", "must be more than 0 and at most 1m".into()));
        }
        if !(1..=100).contains(&self.budget_percent) {
            return Err(("budgetPercent", "must be from 1 to 100".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_read_as_names_or_codes() {
        assert_eq!(RetryOn::parse("503"), Ok(RetryOn::Status(503)));
        assert_eq!(RetryOn::parse("5xx"), Ok(RetryOn::Any5xx));
        assert_eq!(
            RetryOn::parse("connect-failure"),
            Ok(RetryOn::ConnectFailure)
        );
        assert_eq!(RetryOn::parse("retriable-4xx"), Ok(RetryOn::Retriable4xx));
        assert!(
            RetryOn::parse("sometimes")
                .unwrap_err()
                .contains("connect-failure")
        );
        let on: Vec<RetryOn> = serde_json::from_str(r#"["gateway-error", 503]"#).unwrap();
        assert_eq!(on, [RetryOn::GatewayError, RetryOn::Status(503)]);
        assert_eq!(
            serde_json::to_string(&on).unwrap(),
            r#"["gateway-error",503]"#
        );
    }

    #[test]
    fn bounds_are_checked() {
        let ok = Retries {
            attempts: 2,
            per_try_timeout_ms: Some(500),
            on: vec![RetryOn::Reset],
            backoff_ms: 25,
            non_idempotent: false,
            budget_percent: 20,
            budget_min_per_second: 3,
        };
        assert_eq!(ok.check(), Ok(()));
        let bad = |f: fn(&mut Retries)| {
            let mut r = ok.clone();
            f(&mut r);
            r.check().unwrap_err().0
        };
        assert_eq!(bad(|r| r.attempts = 0), "attempts");
        assert_eq!(bad(|r| r.attempts = 11), "attempts");
        assert_eq!(bad(|r| r.per_try_timeout_ms = Some(0)), "perTryTimeoutMs");
        assert_eq!(bad(|r| r.on.clear()), "on");
        assert_eq!(bad(|r| r.on = vec![RetryOn::Status(200)]), "on");
        assert_eq!(bad(|r| r.backoff_ms = 0), "backoffMs");
        assert_eq!(bad(|r| r.budget_percent = 0), "budgetPercent");
    }
}
