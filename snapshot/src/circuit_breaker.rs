//! A Policy's `circuitBreaker`: bounds on what one proxy sends a backend at once, and passive
//! outlier detection of its endpoints.
//!
//! The compiler fills in every default, so the proxy reads plain numbers;
//! [`CircuitBreaker::check`] holds the bounds both sides enforce.

use serde::{Deserialize, Serialize};

/// Consecutive failures that eject an endpoint, when a Policy sets none (Envoy's default).
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
/// How long a first ejection lasts, when a Policy sets none.
pub const DEFAULT_EJECTION_TIME_MS: u64 = 30_000;
/// The longest an ejection lasts, however often the endpoint was ejected before.
pub const DEFAULT_MAX_EJECTION_TIME_MS: u64 = 300_000;
/// No ejection lasts longer than this, whatever a snapshot says (the compiler's bound on any
/// duration).
pub const MAX_EJECTION_TIME_MS: u64 = 3_600_000;
/// The most of a backend's endpoints that are ejected at once, in percent.
pub const DEFAULT_MAX_EJECTION_PERCENT: u32 = 50;
/// Requests in flight to one backend from one proxy, when a Policy sets none (Envoy's).
pub const DEFAULT_MAX_REQUESTS: u32 = 1024;
/// Requests waiting for one of them, when a Policy sets none (Envoy's).
pub const DEFAULT_MAX_PENDING_REQUESTS: u32 = 1024;

/// Bounds and ejections for each backend of the rules a Policy applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Requests in flight to the backend at once, from one proxy. With HTTP/1.1 each holds a
    /// connection, so this bounds the backend's connections in use too.
    pub max_requests: u32,
    /// Requests waiting for one in flight to finish; past this, 503 at once. 0: no waiting.
    pub max_pending_requests: u32,
    /// Failures in a row (5xx answers, refused or broken connections, timeouts) that eject an
    /// endpoint from the balancer. 0: no ejections.
    pub consecutive_failures: u32,
    /// A first ejection's length; the n-th in a row lasts n times as long.
    pub ejection_time_ms: u64,
    /// ... but never longer than this.
    pub max_ejection_time_ms: u64,
    /// At most this share of the backend's endpoints is ejected at once (at least one endpoint
    /// may always be).
    pub max_ejection_percent: u32,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            max_requests: DEFAULT_MAX_REQUESTS,
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
            consecutive_failures: DEFAULT_CONSECUTIVE_FAILURES,
            ejection_time_ms: DEFAULT_EJECTION_TIME_MS,
            max_ejection_time_ms: DEFAULT_MAX_EJECTION_TIME_MS,
            max_ejection_percent: DEFAULT_MAX_EJECTION_PERCENT,
        }
    }
}

impl CircuitBreaker {
    /// The bounds a circuit breaker must keep; a failure names the field (as this type spells
    /// it) and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.max_requests == 0 {
            return Err(("maxRequests", "must be at least 1".into()));
        }
        if self.consecutive_failures > 0 {
            if self.ejection_time_ms == 0 {
                return Err(("ejectionTimeMs", "must be more than 0".into()));
            }
            if self.max_ejection_time_ms > MAX_EJECTION_TIME_MS {
                return Err(("maxEjectionTimeMs", "must be at most 1h".into()));
            }
            if self.max_ejection_time_ms < self.ejection_time_ms {
                return Err((
                    "maxEjectionTimeMs",
                    "must be at least the ejection time".into(),
                ));
            }
            if self.max_ejection_percent > 100 {
                return Err(("maxEjectionPercent", "must be from 0 to 100".into()));
            }
        }
        Ok(())
    }
}

/// How long the proxy waits to connect to a backend's endpoints, and keeps idle connections
/// to them; `None` leaves the proxy's own settings (`--upstream-connect-timeout`,
/// `--upstream-idle-timeout`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendConnection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
}

impl BackendConnection {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.connect_timeout_ms == Some(0) {
            return Err(("connectTimeoutMs", "must be more than 0".into()));
        }
        if self.idle_timeout_ms == Some(0) {
            return Err(("idleTimeoutMs", "must be more than 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_keep_the_bounds_and_bad_values_name_their_field() {
        assert_eq!(CircuitBreaker::default().check(), Ok(()));
        let bad = |c: CircuitBreaker| c.check().unwrap_err().0;
        let d = CircuitBreaker::default;
        assert_eq!(
            bad(CircuitBreaker {
                max_requests: 0,
                ..d()
            }),
            "maxRequests"
        );
        assert_eq!(
            bad(CircuitBreaker {
                ejection_time_ms: 0,
                ..d()
            }),
            "ejectionTimeMs"
        );
        assert_eq!(
            bad(CircuitBreaker {
                max_ejection_time_ms: 1,
                ..d()
            }),
            "maxEjectionTimeMs"
        );
        assert_eq!(
            bad(CircuitBreaker {
                max_ejection_percent: 101,
                ..d()
            }),
            "maxEjectionPercent"
        );
        // Without ejections, their settings do not matter.
        let off = CircuitBreaker {
            consecutive_failures: 0,
            ejection_time_ms: 0,
            ..d()
        };
        assert_eq!(off.check(), Ok(()));
        let zero = BackendConnection {
            connect_timeout_ms: Some(0),
            idle_timeout_ms: None,
        };
        assert_eq!(zero.check().unwrap_err().0, "connectTimeoutMs");
    }
}
