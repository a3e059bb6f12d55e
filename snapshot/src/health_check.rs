//! A Policy's `healthCheck`: the proxy asks each endpoint of a backend, on its own, whether it
//! is well, and leaves out of the balancer those that are not.
//!
//! The compiler fills in every default; [`HealthCheck::check`] holds the bounds both sides
//! enforce.

use serde::{Deserialize, Serialize};

pub const DEFAULT_HEALTH_CHECK_PATH: &str = "/";
pub const DEFAULT_HEALTH_CHECK_INTERVAL_MS: u64 = 5_000;
pub const DEFAULT_HEALTH_CHECK_TIMEOUT_MS: u64 = 1_000;
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;
/// The shortest interval: a check a second per endpoint and proxy would be plenty.
pub const MIN_HEALTH_CHECK_INTERVAL_MS: u64 = 50;

/// Active HTTP health checks of every endpoint of the backends of the rules a Policy applies
/// to. An answer from 200 to 399 within the timeout passes; anything else fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// Origin-form target of the `GET` (path and query).
    pub path: String,
    /// The Host header; `None`: the endpoint's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Checks passed in a row that bring an unhealthy endpoint back.
    pub healthy_threshold: u32,
    /// Checks failed in a row that take a healthy endpoint out.
    pub unhealthy_threshold: u32,
    /// Ask the gRPC health service (`grpc.health.v1.Health/Check`) instead of `GET path`: the
    /// check passes when it answers SERVING. The backend must speak HTTP/2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheck>,
}

/// A gRPC health check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcHealthCheck {
    /// The service asked about (`HealthCheckRequest.service`); empty: the server as a whole.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
}

impl HealthCheck {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.path.starts_with('/')
            || self
                .path
                .bytes()
                .any(|b| !(0x21..0x7f).contains(&b) || b == b'#')
        {
            return Err((
                "path",
                format!("{:?} is not an origin-form path like /healthz", self.path),
            ));
        }
        if let Some(host) = &self.host
            && (host.is_empty() || host.bytes().any(|b| !(0x21..0x7f).contains(&b)))
        {
            return Err(("host", format!("{host:?} is not a valid Host")));
        }
        if let Some(grpc) = &self.grpc
            && grpc.service.bytes().any(|b| !(0x21..0x7f).contains(&b))
        {
            return Err((
                "grpc.service",
                format!("{:?} is not a gRPC service name", grpc.service),
            ));
        }
        if self.interval_ms < MIN_HEALTH_CHECK_INTERVAL_MS {
            return Err((
                "intervalMs",
                format!("must be at least {MIN_HEALTH_CHECK_INTERVAL_MS}ms"),
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > self.interval_ms {
            return Err((
                "timeoutMs",
                "must be more than 0 and at most the interval".into(),
            ));
        }
        if self.healthy_threshold == 0 || self.unhealthy_threshold == 0 {
            return Err((
                "healthyThreshold",
                "both thresholds must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: DEFAULT_HEALTH_CHECK_PATH.into(),
            host: None,
            interval_ms: DEFAULT_HEALTH_CHECK_INTERVAL_MS,
            timeout_ms: DEFAULT_HEALTH_CHECK_TIMEOUT_MS,
            healthy_threshold: DEFAULT_HEALTHY_THRESHOLD,
            unhealthy_threshold: DEFAULT_UNHEALTHY_THRESHOLD,
            grpc: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_name_their_field() {
        assert_eq!(HealthCheck::default().check(), Ok(()));
        let bad = |h: HealthCheck| h.check().unwrap_err().0;
        let d = HealthCheck::default;
        for path in ["healthz", "/a b", "/a#b", ""] {
            assert_eq!(
                bad(HealthCheck {
                    path: path.into(),
                    ..d()
                }),
                "path"
            );
        }
        assert_eq!(
            bad(HealthCheck {
                host: Some("a b".into()),
                ..d()
            }),
            "host"
        );
        assert_eq!(
            bad(HealthCheck {
                interval_ms: 10,
                ..d()
            }),
            "intervalMs"
        );
        assert_eq!(
            bad(HealthCheck {
                timeout_ms: 6_000,
                ..d()
            }),
            "timeoutMs"
        );
        assert_eq!(
            bad(HealthCheck {
                unhealthy_threshold: 0,
                ..d()
            }),
            "healthyThreshold"
        );
    }
}
