//! Active health checks (a Policy's `healthCheck`): every interval, each proxy sends `GET path`
//! to every endpoint of the backend, over the endpoint's pool; an answer from 200 to 399 within
//! the timeout passes. `unhealthy_threshold` failures in a row take an endpoint out of the
//! balancer, `healthy_threshold` passes in a row bring it back. Endpoints start healthy, so a
//! new configuration never starts with nothing to send to.
//!
//! With every endpoint of the backend unhealthy, the balancer sends to all of them as if none
//! were (panic mode: some requests may succeed, none would otherwise), and
//! `frontdesk_upstream_panic` says so.
//!
//! The checker is one task per backend state, holding it weakly: it ends with the last snapshot
//! that has the backend.

use std::sync::Weak;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use frontdesk_snapshot as snap;
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::backend_state::{BackendState, EndpointHealth};
use super::{AnswerFields, Endpoint, UpstreamBody};
use crate::metrics::{BackendLabels, HealthCheckLabels, Metrics};

/// The most of a check's answer body read (and dropped) to keep its connection.
const MAX_CHECK_BODY: usize = 64 * 1024;

/// One backend's health checks.
pub struct HealthChecks {
    settings: snap::HealthCheck,
    /// Endpoints out now.
    unhealthy: AtomicU32,
    passed: Counter,
    failed: Counter,
    unhealthy_gauge: Gauge,
    panic: Gauge,
    /// For log lines: the rule and the backend.
    name: String,
}

impl HealthChecks {
    pub fn new(
        settings: &snap::HealthCheck,
        name: String,
        labels: &BackendLabels,
        metrics: &Metrics,
    ) -> Self {
        let result = |result| HealthCheckLabels {
            route: labels.route.clone(),
            backend: labels.backend.clone(),
            result,
        };
        // One statement each: a Family's read guard must be gone before the next get_or_create.
        let passed = metrics
            .upstream_health_checks
            .get_or_create(&result("passed"))
            .clone();
        let failed = metrics
            .upstream_health_checks
            .get_or_create(&result("failed"))
            .clone();
        let unhealthy_gauge = metrics
            .upstream_unhealthy_endpoints
            .get_or_create(labels)
            .clone();
        let panic = metrics.upstream_panic.get_or_create(labels).clone();
        HealthChecks {
            settings: settings.clone(),
            unhealthy: AtomicU32::new(0),
            passed,
            failed,
            unhealthy_gauge,
            panic,
            name,
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.settings.interval_ms)
    }

    #[inline]
    pub fn any_unhealthy(&self) -> bool {
        self.unhealthy.load(Relaxed) > 0
    }

    /// An endpoint left the backend: it no longer counts.
    pub(super) fn forget(&self, h: &EndpointHealth) {
        if h.unhealthy.swap(false, SeqCst) {
            self.unhealthy.fetch_sub(1, Relaxed);
            self.unhealthy_gauge.dec();
        }
    }

    /// Notes one check's result, moving the endpoint in or out at its threshold.
    fn note(&self, e: &Endpoint, h: &EndpointHealth, result: Result<(), String>) {
        let passed = result.is_ok();
        if passed {
            self.passed.inc();
        } else {
            self.failed.inc();
        }
        let unhealthy = h.unhealthy.load(SeqCst);
        if h.retired.load(SeqCst) {
            return;
        }
        if passed != unhealthy {
            // Agrees with the endpoint's state.
            h.against.store(0, Relaxed);
            return;
        }
        let against = h.against.fetch_add(1, Relaxed) + 1;
        let threshold = if unhealthy {
            self.settings.healthy_threshold
        } else {
            self.settings.unhealthy_threshold
        };
        if against < threshold {
            return;
        }
        h.against.store(0, Relaxed);
        // Only from the state read: an endpoint forgotten meanwhile stays forgotten.
        if h.unhealthy
            .compare_exchange(unhealthy, !unhealthy, SeqCst, SeqCst)
            .is_err()
        {
            return;
        }
        if !unhealthy && h.retired.load(SeqCst) {
            // It left the backend meanwhile: not counted, and back to how it was forgotten.
            let _ = h.unhealthy.compare_exchange(true, false, SeqCst, SeqCst);
            return;
        }
        if unhealthy {
            self.unhealthy.fetch_sub(1, Relaxed);
            self.unhealthy_gauge.dec();
            tracing::info!(backend = %self.name, endpoint = %e.authority, "an endpoint passes its health checks again and is back in the balancer");
        } else {
            self.unhealthy.fetch_add(1, Relaxed);
            self.unhealthy_gauge.inc();
            tracing::warn!(backend = %self.name, endpoint = %e.authority, error = %result.unwrap_err(), "an endpoint failed its health checks and is out of the balancer");
        }
    }

    /// One check of one endpoint.
    async fn check(&self, e: &Endpoint) -> Result<(), String> {
        let host = match &self.settings.host {
            Some(h) => http::HeaderValue::from_str(h).map_err(|e| e.to_string())?,
            None => e.host.clone(),
        };
        let (req, body) = match &self.settings.grpc {
            None => (
                http::Request::get(self.settings.path.as_str()),
                UpstreamBody::Empty,
            ),
            Some(grpc) => (
                http::Request::post(GRPC_HEALTH_CHECK)
                    .header(http::header::CONTENT_TYPE, "application/grpc")
                    .header(http::header::TE, "trailers"),
                UpstreamBody::full(grpc_health_request(&grpc.service)),
            ),
        };
        let (head, ()) = req
            .header(http::header::HOST, host)
            .header(http::header::USER_AGENT, "frontdesk-health-check")
            .body(())
            .map_err(|e| e.to_string())?
            .into_parts();
        let asked = async {
            let resp = super::exchange(e, &head, body, AnswerFields::Map)
                .await
                .map_err(|failed| failed.problem(&e.authority).detail)?;
            let status = resp.status();
            // A Trailers-Only answer has its gRPC status in its head.
            let head_status = resp.headers().get("grpc-status").cloned();
            // Read to its end so the connection goes back to the pool.
            let read = http_body_util::Limited::new(resp.into_body(), MAX_CHECK_BODY)
                .collect()
                .await;
            if !(200..400).contains(&status.as_u16()) {
                return Err(format!("the check was answered {}", status.as_u16()));
            }
            match (&self.settings.grpc, read) {
                (None, _) => Ok(()),
                (Some(_), Ok(answer)) => {
                    let status = head_status.or_else(|| {
                        answer
                            .trailers()
                            .and_then(|t| t.get("grpc-status"))
                            .cloned()
                    });
                    grpc_serving(status.as_ref().map(|v| v.as_bytes()), &answer.to_bytes())
                }
                (Some(_), Err(e)) => Err(format!("the gRPC health answer broke off: {e}")),
            }
        };
        let timeout = Duration::from_millis(self.settings.timeout_ms);
        tokio::time::timeout(timeout, asked)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer within {}",
                    humantime::format_duration(timeout)
                ))
            })
    }
}

/// Checks the backend's endpoints now and every `interval`, until no snapshot has the backend.
pub(super) async fn check_forever(state: Weak<BackendState>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(state) = state.upgrade() else { return };
        let Some(checks) = &state.checks else { return };
        let endpoints = state.checked.lock().clone();
        let results = futures::future::join_all(endpoints.iter().map(|e| checks.check(e))).await;
        for (e, result) in endpoints.iter().zip(results) {
            if let Some(h) = &e.health {
                checks.note(e, h, result);
            }
        }
        let all_out =
            !endpoints.is_empty() && checks.unhealthy.load(Relaxed) as usize >= endpoints.len();
        checks.panic.set(i64::from(all_out));
    }
}

impl Drop for HealthChecks {
    /// The gauges outlive this state (the next settings of the backend count on them): what
    /// this one added goes.
    fn drop(&mut self) {
        self.unhealthy_gauge
            .dec_by(i64::from(self.unhealthy.load(Relaxed)));
        self.panic.set(0);
    }
}

const GRPC_HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// A `HealthCheckRequest { service }`, framed: field 1 (a string), after the flag byte and
/// the length.
fn grpc_health_request(service: &str) -> bytes::Bytes {
    let mut message = Vec::with_capacity(service.len() + 2);
    if !service.is_empty() {
        message.push(0x0a);
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed.into()
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Whether a gRPC health answer says SERVING: its `grpc-status` (from the trailers, or the head
/// of a Trailers-Only answer) is 0 and its `HealthCheckResponse`'s field 1 is 1.
fn grpc_serving(status: Option<&[u8]>, body: &[u8]) -> Result<(), String> {
    if status != Some(b"0") {
        return Err(format!(
            "the gRPC health service answered grpc-status {}",
            status.map_or("(none)".into(), |s| String::from_utf8_lossy(s).into_owned())
        ));
    }
    let message = body
        .get(5..)
        .filter(|m| {
            body[0] == 0
                && m.len() == u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize
        })
        .ok_or("the gRPC health answer is not one message")?;
    match health_status(message) {
        Some(1) => Ok(()),
        Some(other) => Err(format!(
            "the gRPC health service says status {other}, not SERVING"
        )),
        None => Err("the gRPC health answer has no status".into()),
    }
}

/// Field 1 (a varint) of a protobuf message, skipping others.
fn health_status(mut m: &[u8]) -> Option<u64> {
    let mut status = None;
    while !m.is_empty() {
        let key = varint(&mut m)?;
        match key & 7 {
            0 => {
                let v = varint(&mut m)?;
                if key >> 3 == 1 {
                    status = Some(v);
                }
            }
            2 => {
                let len = usize::try_from(varint(&mut m)?).ok()?;
                m = m.get(len..)?;
            }
            1 => m = m.get(8..)?,
            5 => m = m.get(4..)?,
            _ => return None,
        }
    }
    // proto3 leaves a 0 (UNKNOWN) out.
    Some(status.unwrap_or(0))
}

fn varint(m: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = m.split_first()?;
        *m = rest;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Upstream;

    #[test]
    fn grpc_health_requests_and_answers_follow_the_health_protocol() {
        assert_eq!(&grpc_health_request("")[..], [0, 0, 0, 0, 0]);
        assert_eq!(
            &grpc_health_request("demo.Catalog")[..],
            b"\0\0\0\0\x0e\x0a\x0cdemo.Catalog"
        );
        let serving = [0, 0, 0, 0, 2, 0x08, 1];
        assert_eq!(grpc_serving(Some(b"0"), &serving), Ok(()));
        let not_serving = [0, 0, 0, 0, 2, 0x08, 2];
        assert!(
            grpc_serving(Some(b"0"), &not_serving)
                .unwrap_err()
                .contains("status 2")
        );
        // An unknown field before the status is skipped; no status is UNKNOWN (0).
        let with_other = [0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 1];
        assert_eq!(grpc_serving(Some(b"0"), &with_other), Ok(()));
        assert!(
            grpc_serving(Some(b"0"), &[0, 0, 0, 0, 0])
                .unwrap_err()
                .contains("status 0")
        );
        assert!(
            grpc_serving(Some(b"14"), &serving)
                .unwrap_err()
                .contains("grpc-status 14")
        );
        assert!(grpc_serving(None, &serving).is_err());
        assert!(grpc_serving(Some(b"0"), b"HTTP/2.0 ").is_err());
    }

    fn checks(healthy: u32, unhealthy: u32) -> HealthChecks {
        let s = snap::HealthCheck {
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            ..Default::default()
        };
        let labels = BackendLabels {
            route: crate::metrics::RouteId("r".into()),
            backend: "b".into(),
        };
        HealthChecks::new(&s, "r: b".into(), &labels, &Metrics::new())
    }

    #[test]
    fn thresholds_move_an_endpoint_out_and_back() {
        let c = checks(2, 3);
        let e = Upstream::new(Default::default())
            .endpoint("10.0.0.1:80", None, Default::default())
            .unwrap();
        let h = EndpointHealth::default();
        let fail = || Err("down".to_string());
        c.note(&e, &h, fail());
        c.note(&e, &h, fail());
        c.note(&e, &h, Ok(()));
        c.note(&e, &h, fail());
        c.note(&e, &h, fail());
        assert!(
            !c.any_unhealthy(),
            "a pass in between starts the count again"
        );
        c.note(&e, &h, fail());
        assert!(c.any_unhealthy() && h.unhealthy.load(Relaxed));
        c.note(&e, &h, Ok(()));
        c.note(&e, &h, fail());
        c.note(&e, &h, Ok(()));
        assert!(h.unhealthy.load(Relaxed));
        c.note(&e, &h, Ok(()));
        assert!(!c.any_unhealthy() && !h.unhealthy.load(Relaxed));
        assert_eq!((c.passed.get(), c.failed.get()), (4, 6));
        c.note(&e, &h, fail());
        c.note(&e, &h, fail());
        c.note(&e, &h, fail());
        c.forget(&h);
        assert!(!c.any_unhealthy() && c.unhealthy_gauge.get() == 0);
    }
}
