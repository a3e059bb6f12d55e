//! Retries: a failed try at a backend is tried again, at another endpoint, when the rule says
//! so, the method and the body allow it, time is left, and the backend's budget has room.
//!
//! - [`RetryPolicy`]: what a rule retries (from the snapshot's [`snap::Retries`]), pure.
//! - [`RetryBudget`]: per backend, retries at most a share of its recent requests (or a few
//!   per second), so a failing backend never gets a retry storm (Linkerd's and Envoy's idea).
//! - [`Upstream::send_retrying`]: the tries themselves.
//!
//! What may be sent again: a request whose body is empty or was read whole before the first
//! try ([`Replay::Buffered`], small bodies with a declared length); a streamed body only when
//! no connection could be made, since none of it was read then. A method that is not
//! idempotent only after a connect failure (the request never left) unless the rule opts in.
//! The rule's timeout bounds every try together, from when the first try's request was sent
//! in full; `perTryTimeout` bounds each.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use frontdesk_snapshot as snap;
use http::uri::Authority;
use http::{Method, StatusCode};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::balancer::EndpointSet;
use super::h1::{RequestFraming, encode_parts};
use super::response_body::ResponseBody;
pub use super::retry_budget::RetryBudget;
use super::{AnswerFields, Endpoint, TryError, Upstream, UpstreamBody, exchange_on};
use crate::metrics::{Metrics, RetryLabels, RouteId};
use crate::problem::Problem;

/// Bodies at most this large (by their declared length) are read before the first try, so
/// they can be sent again.
pub const REPLAY_LIMIT: u64 = 64 * 1024;

/// Why a try failed, as far as retrying goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: the request never left.
    Connect,
    /// The connection broke before a response head.
    Reset,
    /// No response head within the try's deadline.
    Timeout,
    /// A response with this status.
    Status(StatusCode),
}

impl Failure {
    fn reason(self) -> usize {
        match self {
            Failure::Connect => 0,
            Failure::Reset => 1,
            Failure::Timeout => 2,
            Failure::Status(_) => 3,
        }
    }
}

/// What a rule retries.
#[derive(Debug)]
pub struct RetryPolicy {
    /// Tries after the first.
    pub retries: u32,
    pub per_try_timeout: Option<Duration>,
    connect_failure: bool,
    reset: bool,
    timeout: bool,
    /// Statuses 400..=599 that are retried, one bit each.
    statuses: [u64; 4],
    backoff: Duration,
    non_idempotent: bool,
    pub budget_percent: u32,
    pub budget_min_per_second: u32,
}

impl RetryPolicy {
    pub fn new(r: &snap::Retries) -> Self {
        let mut p = RetryPolicy {
            retries: r.attempts,
            per_try_timeout: r.per_try_timeout_ms.map(Duration::from_millis),
            connect_failure: false,
            reset: false,
            timeout: false,
            statuses: [0; 4],
            backoff: Duration::from_millis(r.backoff_ms),
            non_idempotent: r.non_idempotent,
            budget_percent: r.budget_percent,
            budget_min_per_second: r.budget_min_per_second,
        };
        for on in &r.on {
            match on {
                snap::RetryOn::ConnectFailure => p.connect_failure = true,
                snap::RetryOn::Reset => p.reset = true,
                snap::RetryOn::Timeout => p.timeout = true,
                snap::RetryOn::Any5xx => {
                    (p.connect_failure, p.reset, p.timeout) = (true, true, true);
                    (500..=599).for_each(|code| p.set_status(code));
                }
                snap::RetryOn::GatewayError => {
                    (p.connect_failure, p.reset, p.timeout) = (true, true, true);
                    [502, 503, 504]
                        .into_iter()
                        .for_each(|code| p.set_status(code));
                }
                snap::RetryOn::Retriable4xx => p.set_status(409),
                snap::RetryOn::Status(code) => p.set_status(*code),
            }
        }
        p
    }

    fn set_status(&mut self, code: u16) {
        if let Some(i) = code.checked_sub(400).filter(|i| *i < 200) {
            self.statuses[usize::from(i / 64)] |= 1 << (i % 64);
        }
    }

    /// Whether a response with `status` is a failure worth another try.
    pub fn retries_status(&self, status: StatusCode) -> bool {
        status
            .as_u16()
            .checked_sub(400)
            .filter(|i| *i < 200)
            .is_some_and(|i| self.statuses[usize::from(i / 64)] & (1 << (i % 64)) != 0)
    }

    /// Whether `failure` of a `method` request may be tried again (the body aside).
    pub fn retries(&self, failure: Failure, method: &Method) -> bool {
        let named = match failure {
            Failure::Connect => self.connect_failure,
            Failure::Reset => self.reset,
            Failure::Timeout => self.timeout,
            Failure::Status(s) => self.retries_status(s),
        };
        // A request that never left may be sent anywhere; one that did, only if sending it
        // twice is harmless or the rule says so.
        named && (failure == Failure::Connect || self.resends(method))
    }

    /// Whether a `method` request that left may be sent again (for some condition).
    pub fn resends(&self, method: &Method) -> bool {
        self.non_idempotent || method.is_idempotent()
    }

    /// The wait before retry `n` (1 for the first): between half and all of base × 2^(n-1),
    /// at most 10 × base.
    pub fn backoff(&self, n: u32) -> Duration {
        let ceiling = self
            .backoff
            .saturating_mul(1 << n.saturating_sub(1).min(10))
            .min(self.backoff * 10);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// A rule's retry counters, found once per snapshot: `upstream_retries{route, reason}` and
/// `upstream_retry_budget_exhausted{route}`.
pub struct RetryMetrics {
    by_reason: [Counter; 4],
    pub budget_exhausted: Counter,
}

impl RetryMetrics {
    pub fn new(route: &RouteId, metrics: &Metrics) -> Self {
        let counter = |reason: &'static str| {
            metrics
                .upstream_retries
                .get_or_create(&RetryLabels {
                    route: route.clone(),
                    reason,
                })
                .clone()
        };
        RetryMetrics {
            by_reason: [
                counter("connect-failure"),
                counter("reset"),
                counter("timeout"),
                counter("status"),
            ],
            budget_exhausted: metrics
                .upstream_retry_budget_exhausted
                .get_or_create(&crate::metrics::RouteLabels {
                    route: route.clone(),
                })
                .clone(),
        }
    }
}

/// How the request's body can be sent again.
pub enum Replay {
    /// Read whole before the first try: every try sends a copy.
    Buffered(Bytes),
    /// Streamed (or empty): it goes with the first try that connects, so a non-empty body is
    /// tried again only when no connection could be made. `sent` fires once it has been sent
    /// in full (`None`: no body).
    Streaming(UpstreamBody, Option<oneshot::Receiver<()>>),
}

/// What each try after the first sends as its body.
enum Again {
    Copy(Bytes),
    Empty,
    /// Only what a connect failure gave back.
    Unsent,
}

/// A retried call's outcome and how many tries it took.
pub struct Tried<'a> {
    pub outcome: Result<http::Response<ResponseBody>, Problem>,
    pub tries: u32,
    /// The endpoint of the last try.
    pub endpoint: TriedAt<'a>,
}

/// The endpoint of a retried call's try: the caller's first, or one a retry moved on to (held
/// by the call, since the backend's endpoints may change meanwhile). Derefs to the endpoint.
pub enum TriedAt<'a> {
    First(&'a Endpoint),
    Retry(Arc<Endpoint>),
}

impl std::ops::Deref for TriedAt<'_> {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        match self {
            TriedAt::First(e) => e,
            TriedAt::Retry(e) => e,
        }
    }
}

/// What a retried call needs besides the request.
pub struct RetryPlan<'a> {
    pub policy: &'a RetryPolicy,
    pub budget: &'a RetryBudget,
    pub metrics: &'a RetryMetrics,
    /// The rule's timeout: every try together, from when the request was sent in full.
    pub timeout: Duration,
    pub fields: AnswerFields,
}

impl Upstream {
    /// Sends the request (`head` and `body`) to `first`, and again to the backend's other
    /// endpoints as `plan` allows. The answer of the last try is the call's, failure or not.
    ///
    /// The common call, a bodiless request whose first endpoint has a warm pooled connection,
    /// makes its first try inline; only calls whose first try failed, that carry a body or
    /// that must connect first pay for the retries' machinery (boxed). Both keep the same
    /// clocks (see the module docs).
    pub fn send_retrying<'a>(
        &'a self,
        backend: &'a EndpointSet,
        first: &'a Endpoint,
        head: &'a http::request::Parts,
        body: Replay,
        plan: RetryPlan<'a>,
    ) -> impl Future<Output = Tried<'a>> + 'a {
        async move {
            let started = Instant::now();
            plan.budget.request(started);
            let warm = match body {
                Replay::Streaming(UpstreamBody::Empty, _) => {
                    first.pool.idle_connection(first.timeouts.idle)
                }
                _ => None,
            };
            let Some(checkout) = warm else {
                return Box::pin(self.send_cold(backend, first, head, body, started, plan)).await;
            };
            // Connected at once, with nothing to send but the head: the rule's timeout, and
            // the try's, run from now.
            let limit = plan
                .policy
                .per_try_timeout
                .map_or(plan.timeout, |t| t.min(plan.timeout));
            let (wire, framing) = encode_parts(head, &UpstreamBody::Empty);
            let attempt = exchange_on(
                checkout,
                first,
                &wire,
                framing,
                &head.method,
                UpstreamBody::Empty,
                plan.fields,
            );
            let made = match tokio::time::timeout(limit, attempt).await {
                Ok(Ok(resp)) if !plan.policy.retries_status(resp.status()) => {
                    backend.record(first, !resp.status().is_server_error());
                    return tried(Ok(resp), 1, TriedAt::First(first));
                }
                Ok(Ok(resp)) => TryOutcome::Answered(resp),
                Ok(Err(e)) => failed(&e, &first.authority),
                Err(_) => TryOutcome::Failed(Failure::Timeout, super::timed_out(limit), None),
            };
            let deadline = later(started, plan.timeout);
            let clock = Clock {
                sent: None,
                deadline: Some(deadline),
                give_up: deadline,
            };
            let next = Next {
                backend,
                head,
                wire: &wire,
                framing,
                again: Again::Empty,
            };
            Box::pin(next.tries(first, made, clock, &plan)).await
        }
    }

    /// [`Upstream::send_retrying`] of a request with a body (streamed or read whole), or
    /// without one but whose first endpoint has no warm connection.
    async fn send_cold<'a>(
        &'a self,
        backend: &'a EndpointSet,
        first: &'a Endpoint,
        head: &'a http::request::Parts,
        body: Replay,
        started: Instant,
        plan: RetryPlan<'a>,
    ) -> Tried<'a> {
        let (again, body, sent) = match body {
            Replay::Buffered(b) => (Again::Copy(b.clone()), UpstreamBody::full(b), None),
            Replay::Streaming(UpstreamBody::Empty, _) => (Again::Empty, UpstreamBody::Empty, None),
            Replay::Streaming(b, sent) => (Again::Unsent, b, sent),
        };
        let (wire, framing) = encode_parts(head, &body);
        let mut clock = Clock {
            sent,
            deadline: None,
            // Until a request has been sent in full, no try starts past this.
            give_up: later(started, plan.timeout),
        };
        let at = Try {
            endpoint: first,
            head,
            wire: &wire,
            framing,
        };
        let made = at.make(body, &mut clock, &plan).await;
        let next = Next {
            backend,
            head,
            wire: &wire,
            framing,
            again,
        };
        next.tries(first, made, clock, &plan).await
    }
}

/// What the tries after the first need.
struct Next<'a, 'w> {
    backend: &'a EndpointSet,
    head: &'a http::request::Parts,
    wire: &'w [u8],
    framing: RequestFraming,
    again: Again,
}

impl<'a> Next<'a, '_> {
    /// From the first try's outcome (`made` at `first`), tries again as the plan allows.
    async fn tries(
        self,
        first: &'a Endpoint,
        mut made: TryOutcome,
        mut clock: Clock,
        plan: &RetryPlan<'_>,
    ) -> Tried<'a> {
        let mut endpoint = TriedAt::First(first);
        let mut tries = 1;
        loop {
            match &made {
                TryOutcome::Answered(resp) => self
                    .backend
                    .record(&endpoint, !resp.status().is_server_error()),
                TryOutcome::Failed(..) => self.backend.record(&endpoint, false),
                TryOutcome::Final(_) => {}
            }
            let (failure, outcome, back) = match made {
                TryOutcome::Answered(resp) if !plan.policy.retries_status(resp.status()) => {
                    return tried(Ok(resp), tries, endpoint);
                }
                TryOutcome::Answered(resp) => (Failure::Status(resp.status()), Ok(resp), None),
                TryOutcome::Failed(failure, problem, back) => (failure, Err(problem), back),
                TryOutcome::Final(problem) => return tried(Err(problem), tries, endpoint),
            };
            let next_body = match &self.again {
                Again::Copy(b) => Some(UpstreamBody::full(b.clone())),
                Again::Empty => Some(UpstreamBody::Empty),
                Again::Unsent => back,
            };
            let backoff = plan.policy.backoff(tries);
            let retry = tries <= plan.policy.retries
                && plan.policy.retries(failure, &self.head.method)
                && next_body.is_some()
                && Instant::now() + backoff < clock.deadline.unwrap_or(clock.give_up);
            let Some(body) = next_body.filter(|_| retry) else {
                return tried(outcome, tries, endpoint);
            };
            if !plan.budget.try_retry() {
                plan.metrics.budget_exhausted.inc();
                return tried(outcome, tries, endpoint);
            }
            plan.metrics.by_reason[failure.reason()].inc();
            tracing::debug!(endpoint = %endpoint.authority, ?failure, try_ = tries, "retrying at a backend");
            // A response not taken is dropped with its connection.
            drop(outcome);
            tokio::time::sleep(backoff).await;
            // The endpoint after it; when the backend no longer has it (its endpoints changed
            // meanwhile: the pod is likely gone), the next one round robin; the same again when
            // the backend has none left.
            let after = self.backend.next_after(&endpoint.authority);
            if let Some(next) = after.or_else(|| self.backend.next()) {
                endpoint = TriedAt::Retry(next);
            }
            tries += 1;
            let at = Try {
                endpoint: &endpoint,
                head: self.head,
                wire: self.wire,
                framing: self.framing,
            };
            made = at.make(body, &mut clock, plan).await;
        }
    }
}

/// The time limits of a retried call.
struct Clock {
    /// Fires once the request's streamed body has been sent in full.
    sent: Option<oneshot::Receiver<()>>,
    /// The rule's timeout, from when the request was first sent in full: every try's wait.
    deadline: Option<Instant>,
    /// The rule's timeout from the first try: no try starts past it while nothing was sent.
    give_up: Instant,
}

/// How one try ended.
enum TryOutcome {
    Answered(http::Response<ResponseBody>),
    /// The try failed; the body is back when none of it was read.
    Failed(Failure, Problem, Option<UpstreamBody>),
    /// The client's own body failed: no other try would do better.
    Final(Problem),
}

/// One try at one endpoint.
struct Try<'a> {
    endpoint: &'a Endpoint,
    head: &'a http::request::Parts,
    /// The head as HTTP/1.1 sends it.
    wire: &'a [u8],
    framing: RequestFraming,
}

impl Try<'_> {
    /// Connects (within the pool's connect timeout and the call's time), sends, and waits for
    /// the response head within the try's deadline. Everything the try holds is gone when it
    /// returns, so a retry's backoff keeps no connection.
    async fn make(
        &self,
        body: UpstreamBody,
        clock: &mut Clock,
        plan: &RetryPlan<'_>,
    ) -> TryOutcome {
        let pool = &self.endpoint.pool;
        let connect_failed = |e: &super::ConnectError, body| {
            let problem = super::connect_failure(e, &self.endpoint.authority);
            TryOutcome::Failed(Failure::Connect, problem, Some(body))
        };
        let h2 = match super::speaks_h2(self.endpoint).await {
            Ok(h2) => h2,
            Err(e) => return connect_failed(&e, body),
        };
        if h2 {
            let attempt = Box::pin(super::h2::exchange(self.endpoint, self.head, body));
            return self.wait(attempt, clock, plan).await;
        }
        // A warm connection at once (the common case) needs no deadline to be had.
        let warm = pool.idle_connection(self.endpoint.timeouts.idle);
        let checkout = match warm {
            Some(checkout) => Ok(Ok(checkout)),
            None => {
                tokio::time::timeout_at(
                    clock.deadline.unwrap_or(clock.give_up),
                    pool.connection(self.endpoint.timeouts),
                )
                .await
            }
        };
        let checkout = match checkout {
            Ok(Ok(checkout)) => checkout,
            Ok(Err(e)) => return connect_failed(&e, body),
            Err(_) => {
                let problem = super::timed_out(plan.timeout);
                return TryOutcome::Failed(Failure::Connect, problem, Some(body));
            }
        };
        let attempt = exchange_on(
            checkout,
            self.endpoint,
            self.wire,
            self.framing,
            &self.head.method,
            body,
            plan.fields,
        );
        self.wait(attempt, clock, plan).await
    }

    /// Waits for the try's answer: its body sent, then its head within the try's deadline.
    async fn wait(
        &self,
        attempt: impl Future<Output = Result<http::Response<ResponseBody>, TryError>>,
        clock: &mut Clock,
        plan: &RetryPlan<'_>,
    ) -> TryOutcome {
        tokio::pin!(attempt);
        if let Some(rx) = clock.sent.as_mut() {
            tokio::select! {
                // The backend answered before the whole body (a 413, say).
                answered = &mut attempt => return self.classify(answered),
                _ = rx => clock.sent = None,
            }
        }
        let now = Instant::now();
        let total = *clock
            .deadline
            .get_or_insert_with(|| later(now, plan.timeout));
        let (limit, waited) = match plan.policy.per_try_timeout.map(|t| (later(now, t), t)) {
            Some((at, t)) if at < total => (at, t),
            _ => (total, plan.timeout),
        };
        match tokio::time::timeout_at(limit, attempt).await {
            Ok(answered) => self.classify(answered),
            Err(_) => TryOutcome::Failed(Failure::Timeout, super::timed_out(waited), None),
        }
    }

    fn classify(&self, answered: Result<http::Response<ResponseBody>, TryError>) -> TryOutcome {
        match answered {
            Ok(resp) => TryOutcome::Answered(resp),
            Err(e) => failed(&e, &self.endpoint.authority),
        }
    }
}

/// A failed try's outcome. Only a connect failure gives the body back: the request never
/// left, and the only body a connection is made for after the try took it is none (a
/// bodiless request sent again on a new connection). Any other failure took the body along.
fn failed(e: &TryError, at: &Authority) -> TryOutcome {
    let problem = e.problem(at);
    match e.failure() {
        None => TryOutcome::Final(problem),
        Some(failure) => {
            let back = matches!(e, TryError::Connect(_)).then_some(UpstreamBody::Empty);
            TryOutcome::Failed(failure, problem, back)
        }
    }
}

/// `d` after `now`; durations past a day count as a day (no overflow from a hostile snapshot).
fn later(now: Instant, d: Duration) -> Instant {
    now + d.min(Duration::from_secs(24 * 3600))
}

fn tried(
    outcome: Result<http::Response<ResponseBody>, Problem>,
    tries: u32,
    endpoint: TriedAt<'_>,
) -> Tried<'_> {
    Tried {
        outcome,
        tries,
        endpoint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on: &[snap::RetryOn], non_idempotent: bool) -> RetryPolicy {
        RetryPolicy::new(&snap::Retries {
            attempts: 2,
            per_try_timeout_ms: None,
            on: on.to_vec(),
            backoff_ms: 20,
            non_idempotent,
            budget_percent: 20,
            budget_min_per_second: 1,
        })
    }

    fn status(code: u16) -> Failure {
        Failure::Status(StatusCode::from_u16(code).unwrap())
    }

    #[test]
    fn conditions_expand_as_documented() {
        let get = Method::GET;
        let p = policy(&[snap::RetryOn::GatewayError], false);
        for f in [
            Failure::Connect,
            Failure::Reset,
            Failure::Timeout,
            status(502),
            status(503),
            status(504),
        ] {
            assert!(p.retries(f, &get), "{f:?}");
        }
        for f in [status(500), status(429), status(409)] {
            assert!(!p.retries(f, &get), "{f:?}");
        }
        let p = policy(&[snap::RetryOn::Any5xx], false);
        assert!(p.retries(status(500), &get) && p.retries(status(599), &get));
        assert!(!p.retries(status(499), &get));
        let p = policy(
            &[snap::RetryOn::Status(429), snap::RetryOn::Retriable4xx],
            false,
        );
        assert!(p.retries(status(429), &get) && p.retries(status(409), &get));
        assert!(!p.retries(Failure::Reset, &get) && !p.retries(status(503), &get));
        let p = policy(&[snap::RetryOn::Reset], false);
        assert!(
            !p.retries(Failure::Connect, &get),
            "connect failures are their own condition"
        );
    }

    #[test]
    fn methods_that_are_not_idempotent_are_retried_only_when_they_never_left() {
        let p = policy(&[snap::RetryOn::Any5xx], false);
        assert!(p.retries(Failure::Connect, &Method::POST));
        assert!(!p.retries(Failure::Reset, &Method::POST));
        assert!(!p.retries(status(503), &Method::PATCH));
        assert!(p.retries(status(503), &Method::PUT), "PUT is idempotent");
        let p = policy(&[snap::RetryOn::Any5xx], true);
        assert!(p.retries(Failure::Reset, &Method::POST) && p.retries(status(503), &Method::POST));
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_ceiling() {
        let p = policy(&[snap::RetryOn::Reset], false);
        for _ in 0..100 {
            let first = p.backoff(1);
            assert!((10..=20).contains(&first.as_millis()), "{first:?}");
            let third = p.backoff(3);
            assert!((40..=80).contains(&third.as_millis()), "{third:?}");
            let late = p.backoff(30);
            assert!((100..=200).contains(&late.as_millis()), "{late:?}");
        }
    }
}
