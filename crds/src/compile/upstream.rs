//! A Policy's sections about backends (`circuitBreaker`, `healthCheck`, `loadBalancer`),
//! lowered: defaults filled in, durations parsed, bounds checked (the proxy checks them again:
//! [`snap::CircuitBreaker::check`], [`snap::HealthCheck::check`], [`snap::LoadBalancer::check`]).

use frontdesk_snapshot as snap;

use super::lower::{check_token, parse_timeout};
use crate::diagnostic::Diagnostics;
use crate::policy::{
    BackendConnectionSpec, CircuitBreakerSpec, HealthCheckSpec, LoadBalancerAlgorithm,
    LoadBalancerSpec,
};

/// A duration field in milliseconds, `default` when absent or wrong (a wrong one is noted).
fn millis(d: &mut Diagnostics, field: String, t: &Option<String>, default: u64) -> u64 {
    match t {
        None => default,
        Some(t) => d
            .check(field, parse_timeout(t))
            .and_then(|t| u64::try_from(t.as_millis()).ok())
            .unwrap_or(default),
    }
}

/// Keeps `lowered` when nothing was noted since `before` and its own check passes.
fn checked<T>(
    p: &str,
    d: &mut Diagnostics,
    before: usize,
    lowered: T,
    check: impl FnOnce(&T) -> Result<(), (&'static str, String)>,
) -> Option<T> {
    if d.0.len() != before {
        return None;
    }
    match check(&lowered) {
        Ok(()) => Some(lowered),
        Err((field, why)) => {
            d.push(format!("{p}.{}", manifest_field(field)), why);
            None
        }
    }
}

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
    checked(p, d, before, lowered, snap::CircuitBreaker::check)
}

/// `p` is the field path of `healthCheck`.
pub(super) fn lower_health_check(
    p: &str,
    h: &HealthCheckSpec,
    d: &mut Diagnostics,
) -> Option<snap::HealthCheck> {
    let before = d.0.len();
    let interval_ms = millis(
        d,
        format!("{p}.interval"),
        &h.interval,
        snap::DEFAULT_HEALTH_CHECK_INTERVAL_MS,
    );
    let timeout_ms = millis(
        d,
        format!("{p}.timeout"),
        &h.timeout,
        snap::DEFAULT_HEALTH_CHECK_TIMEOUT_MS.min(interval_ms),
    );
    let lowered = snap::HealthCheck {
        path: h
            .path
            .clone()
            .unwrap_or_else(|| snap::DEFAULT_HEALTH_CHECK_PATH.into()),
        host: h.host.clone(),
        interval_ms,
        timeout_ms,
        healthy_threshold: h
            .healthy_threshold
            .unwrap_or(snap::DEFAULT_HEALTHY_THRESHOLD),
        unhealthy_threshold: h
            .unhealthy_threshold
            .unwrap_or(snap::DEFAULT_UNHEALTHY_THRESHOLD),
        grpc: h.grpc.as_ref().map(|g| snap::GrpcHealthCheck {
            service: g.service.clone().unwrap_or_default(),
        }),
    };
    if h.grpc.is_some() && h.path.is_some() {
        d.push(
            format!("{p}.grpc"),
            "a gRPC health check asks the health service, not a path: leave out path",
        );
    }
    checked(p, d, before, lowered, snap::HealthCheck::check)
}

/// `p` is the field path of `backendConnection`.
pub(super) fn lower_backend_connection(
    p: &str,
    c: &BackendConnectionSpec,
    d: &mut Diagnostics,
) -> Option<snap::BackendConnection> {
    let before = d.0.len();
    let mut millis = |field: &str, t: &Option<String>| {
        t.as_ref().and_then(|t| {
            d.check(format!("{p}.{field}"), parse_timeout(t))
                .and_then(|t| u64::try_from(t.as_millis()).ok())
        })
    };
    let lowered = snap::BackendConnection {
        connect_timeout_ms: millis("connectTimeout", &c.connect_timeout),
        idle_timeout_ms: millis("idleTimeout", &c.idle_timeout),
    };
    checked(p, d, before, lowered, snap::BackendConnection::check)
}

/// `p` is the field path of `loadBalancer`.
pub(super) fn lower_load_balancer(
    p: &str,
    lb: &LoadBalancerSpec,
    d: &mut Diagnostics,
) -> Option<snap::LoadBalancer> {
    let algorithm = lb.algorithm.unwrap_or_default();
    let lowered = match (algorithm, &lb.hash_on) {
        (LoadBalancerAlgorithm::ConsistentHash, None) => {
            d.push(
                format!("{p}.hashOn"),
                "ConsistentHash needs a key: ClientIP, Header:<name> or Cookie:<name>",
            );
            return None;
        }
        (LoadBalancerAlgorithm::ConsistentHash, Some(key)) => snap::LoadBalancer::ConsistentHash {
            on: d.check(format!("{p}.hashOn"), parse_hash_on(key))?,
        },
        (_, Some(_)) => {
            d.push(format!("{p}.hashOn"), "only ConsistentHash has a key");
            return None;
        }
        (LoadBalancerAlgorithm::RoundRobin, None) => snap::LoadBalancer::RoundRobin,
        (LoadBalancerAlgorithm::LeastRequest, None) => snap::LoadBalancer::LeastRequest,
    };
    checked(p, d, d.0.len(), lowered, snap::LoadBalancer::check)
}

/// A `loadBalancer.slowStart`, lowered.
pub(super) fn lower_slow_start(
    p: &str,
    s: &crate::policy::SlowStartSpec,
    d: &mut Diagnostics,
) -> Option<snap::SlowStart> {
    let before = d.0.len();
    let window = humantime::parse_duration(&s.window)
        .map_err(|e| format!("{:?} is not a duration like 30s: {e}", s.window));
    let window = d.check(format!("{p}.window"), window)?;
    let lowered = snap::SlowStart {
        window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        min_weight_percent: s.min_weight_percent.unwrap_or(10),
    };
    checked(p, d, before, lowered, snap::SlowStart::check)
}

fn parse_hash_on(k: &str) -> Result<snap::HashOn, String> {
    let bad = || format!("{k:?} is not one of ClientIP, Header:<name>, Cookie:<name>");
    Ok(match k.split_once(':') {
        None if k == "ClientIP" => snap::HashOn::ClientIp,
        Some(("Header", name)) => {
            let name = name.trim().to_ascii_lowercase();
            check_token(&name, "header name")?;
            snap::HashOn::Header { name }
        }
        Some(("Cookie", name)) => {
            let name = name.trim().to_string();
            check_token(&name, "cookie name")?;
            snap::HashOn::Cookie { name }
        }
        _ => return Err(bad()),
    })
}

/// The manifest's name of a snapshot field a `check` names.
fn manifest_field(snapshot_field: &str) -> &str {
    match snapshot_field {
        "ejectionTimeMs" => "ejectionTime",
        "maxEjectionTimeMs" => "maxEjectionTime",
        "intervalMs" => "interval",
        "timeoutMs" => "timeout",
        "on.name" => "hashOn",
        "connectTimeoutMs" => "connectTimeout",
        "idleTimeoutMs" => "idleTimeout",
        "windowMs" => "window",
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

    fn lower_checks(yaml: &str) -> Result<snap::HealthCheck, Vec<String>> {
        let h: HealthCheckSpec = serde_saphyr::from_str(yaml).unwrap();
        let mut d = Diagnostics::default();
        lower_health_check("spec.healthCheck", &h, &mut d).ok_or_else(|| {
            d.0.iter()
                .map(|x| format!("{}: {}", x.field, x.message))
                .collect()
        })
    }

    #[test]
    fn health_checks_take_defaults_and_name_their_mistakes() {
        assert_eq!(lower_checks("{}").unwrap(), snap::HealthCheck::default());
        let h = lower_checks("{path: /healthz, interval: 200ms, unhealthyThreshold: 1}").unwrap();
        assert_eq!((h.interval_ms, h.timeout_ms), (200, 200));
        assert_eq!((h.path.as_str(), h.unhealthy_threshold), ("/healthz", 1));
        assert_eq!(
            lower_checks("{interval: 1s, timeout: 2s}").unwrap_err(),
            ["spec.healthCheck.timeout: must be more than 0 and at most the interval"]
        );
        assert!(
            lower_checks("{path: healthz}").unwrap_err()[0].starts_with("spec.healthCheck.path: ")
        );
    }

    #[test]
    fn backend_connection_timeouts_are_read() {
        let c: BackendConnectionSpec =
            serde_saphyr::from_str("{connectTimeout: 250ms, idleTimeout: 10s}").unwrap();
        let mut d = Diagnostics::default();
        let lowered = lower_backend_connection("spec.backendConnection", &c, &mut d).unwrap();
        assert_eq!(
            (lowered.connect_timeout_ms, lowered.idle_timeout_ms),
            (Some(250), Some(10_000))
        );
        let c: BackendConnectionSpec = serde_saphyr::from_str("{connectTimeout: never}").unwrap();
        assert!(lower_backend_connection("spec.backendConnection", &c, &mut d).is_none());
        assert!(
            d.0[0]
                .field
                .starts_with("spec.backendConnection.connectTimeout")
        );
    }

    fn lower_lb(yaml: &str) -> Result<snap::LoadBalancer, Vec<String>> {
        let lb: LoadBalancerSpec = serde_saphyr::from_str(yaml).unwrap();
        let mut d = Diagnostics::default();
        lower_load_balancer("spec.loadBalancer", &lb, &mut d).ok_or_else(|| {
            d.0.iter()
                .map(|x| format!("{}: {}", x.field, x.message))
                .collect()
        })
    }

    #[test]
    fn balancers_read_their_key() {
        assert_eq!(lower_lb("{}").unwrap(), snap::LoadBalancer::RoundRobin);
        assert_eq!(
            lower_lb("{algorithm: LeastRequest}").unwrap(),
            snap::LoadBalancer::LeastRequest
        );
        assert_eq!(
            lower_lb("{algorithm: ConsistentHash, hashOn: 'Header:X-User'}").unwrap(),
            snap::LoadBalancer::ConsistentHash {
                on: snap::HashOn::Header {
                    name: "x-user".into()
                }
            }
        );
        assert_eq!(
            lower_lb("{algorithm: ConsistentHash, hashOn: 'Cookie:session'}").unwrap(),
            snap::LoadBalancer::ConsistentHash {
                on: snap::HashOn::Cookie {
                    name: "session".into()
                }
            }
        );
        assert_eq!(
            lower_lb("{algorithm: ConsistentHash, hashOn: ClientIP}").unwrap(),
            snap::LoadBalancer::ConsistentHash {
                on: snap::HashOn::ClientIp
            }
        );
        assert!(
            lower_lb("{algorithm: ConsistentHash}").unwrap_err()[0]
                .starts_with("spec.loadBalancer.hashOn: ")
        );
        assert!(
            lower_lb("{algorithm: ConsistentHash, hashOn: Moon}").unwrap_err()[0]
                .contains("ClientIP")
        );
        assert_eq!(
            lower_lb("{hashOn: ClientIP}").unwrap_err(),
            ["spec.loadBalancer.hashOn: only ConsistentHash has a key"]
        );
    }

    #[test]
    fn slow_start_reads_its_window_and_names_its_mistakes() {
        let slow = |yaml: &str| {
            let spec: crate::policy::SlowStartSpec = serde_saphyr::from_str(yaml).unwrap();
            let mut d = Diagnostics::default();
            let out = lower_slow_start("spec.loadBalancer.slowStart", &spec, &mut d);
            (
                out,
                d.0.iter()
                    .map(|x| format!("{}: {}", x.field, x.message))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            slow("{window: 30s}").0,
            Some(snap::SlowStart {
                window_ms: 30_000,
                min_weight_percent: 10
            })
        );
        assert_eq!(
            slow("{window: 2h}").1,
            ["spec.loadBalancer.slowStart.window: must be more than 0 and at most an hour"]
        );
        assert_eq!(
            slow("{window: 1m, minWeightPercent: 0}").1,
            ["spec.loadBalancer.slowStart.minWeightPercent: must be 1 to 100"]
        );
        assert!(slow("{window: soon}").1[0].starts_with("spec.loadBalancer.slowStart.window: "));
    }
}
