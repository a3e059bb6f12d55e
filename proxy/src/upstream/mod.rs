//! Upstream: the one machinery every call to a backend goes through, Routes' forwards and
//! Aggregate calls alike.
//!
//! - [`balancer`]: weighted choice between backends, round robin over a backend's endpoints.
//! - [`members`]: a backend's endpoints as they stand, swapped in place by an endpoint delta.
//! - [`pool`]: per-endpoint pools of HTTP/1.1 connections, kept across snapshots.
//! - [`resolve`]: the resolver of the proxy's own HTTP client, with the same address policy.
//! - [`h1`]: one HTTP/1.1 exchange on a connection, inline in the request's task.
//! - [`h2`]: HTTP/2 to backends that speak it (`protocol: h2c | h2 | auto`), multiplexed on
//!   one connection per endpoint.
//! - [`upload`]: a request body written to a backend as the client sends it.
//! - [`response_body`]: a backend's answer body, read as the client takes it.
//! - [`retry`]: failed tries tried again, within a budget per backend.
//! - [`backend_state`]: what a rule's Policy makes the proxy keep about a backend, across
//!   snapshots: its [`breaker`] (bounds on requests in flight and waiting), [`outlier`]
//!   detection (endpoints failing in a row leave the balancer for a while), [`health_check`]s,
//!   and its balancing ([`hash_ring`] for consistent hashing).
//! - this module: one exchange with one endpoint, bounded by timeouts, its failures mapped to
//!   problems.
//!
//! [`Upstream::send`] makes one try at one endpoint; [`Upstream::send_retrying`] makes as many
//! as a rule's retries allow, each on a connection from the endpoint's pool ([`exchange_on`],
//! whose failure says whether the request left). A backend's [`breaker::Bounds`] admit a
//! request before either, and both report each try's outcome to its outlier detection.

pub mod backend_state;
pub mod balancer;
pub mod breaker;
pub mod h1;
pub mod h2;
pub mod hash_ring;
pub mod health_check;
pub mod members;
pub mod outlier;
pub mod pool;
pub mod resolve;
pub mod response_body;
pub mod retry;
mod retry_budget;
pub mod tls;
pub mod upload;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use crate::body::BoxError;
use crate::metrics::{Metrics, RouteId};
use crate::problem::{Problem, ProblemKind};
use crate::shared_by_key::SharedByKey;
use backend_state::{BackendSettings, BackendState};
use frontdesk_snapshot as snap;
use h1::{ExchangeError, encode_parts};
use pool::{ConnectError, EndpointPool, PoolConfig, Pools};
use response_body::ResponseBody;

/// A request body on its way to a backend: nothing, or the client's body as it streams.
pub enum UpstreamBody {
    Empty,
    Streaming(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send + Sync>>),
}

impl UpstreamBody {
    /// A body held whole (one a retry may send again).
    pub fn full(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            return UpstreamBody::Empty;
        }
        UpstreamBody::Streaming(Box::pin(http_body_util::BodyExt::map_err(
            http_body_util::Full::new(bytes),
            |never| match never {},
        )))
    }

    /// The client's body; no allocation when it is already known to be empty.
    pub fn from_body<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        if body.is_end_stream() {
            return UpstreamBody::Empty;
        }
        UpstreamBody::Streaming(Box::pin(http_body_util::BodyExt::map_err(body, Into::into)))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Streaming(b) => b.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Streaming(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Streaming(b) => b.size_hint(),
        }
    }
}

/// One endpoint of a backend, as a snapshot names it, with its (process-wide) pool.
#[derive(Clone)]
pub struct Endpoint {
    pub authority: Authority,
    /// The authority as a Host header value, for requests that have none of their own.
    pub host: http::HeaderValue,
    pub pool: Arc<EndpointPool>,
    /// Its backend's connect and idle timeouts.
    pub timeouts: pool::Timeouts,
    /// Its record (outlier detection, health checks, requests in flight), when its backend
    /// has a [`BackendState`].
    pub health: Option<Arc<backend_state::EndpointHealth>>,
}

/// How an answer's header fields come back from [`Upstream::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerFields {
    /// In the response's map, for a caller that reads or edits them.
    Map,
    /// As the backend sent them, in a [`crate::http1::raw_fields::RawFields`] extension, with
    /// an empty map: for an answer relayed to an HTTP/1 client that no stage edits.
    PassThrough,
}

/// Process-wide: the connection pools. Snapshots come and go, warm connections stay.
pub struct Upstream {
    pools: Pools,
    /// Backend states by rule, backend and settings, kept across snapshots.
    states: SharedByKey<String, BackendState>,
    /// TLS clients by setting, kept across snapshots.
    tls_clients: SharedByKey<String, tls::TlsClient>,
}

impl Upstream {
    pub fn new(config: PoolConfig) -> Self {
        Upstream {
            pools: Pools::new(config),
            states: SharedByKey::default(),
            tls_clients: SharedByKey::default(),
        }
    }

    /// The state of `backend` of the rule `route` under `settings` (`None` when they are
    /// plain round robin), the running one when an earlier snapshot had the same; called when a
    /// snapshot is built.
    pub fn backend_state(
        &self,
        route: &RouteId,
        backend: &str,
        settings: &BackendSettings,
        metrics: &Metrics,
    ) -> Option<Arc<BackendState>> {
        if settings.is_plain() {
            return None;
        }
        let key = format!(
            "{}\n{backend}\n{:?}\n{:?}\n{:?}\n{:?}",
            route.0,
            settings.circuit_breaker,
            settings.health_check,
            settings.load_balancer,
            settings.slow_start
        );
        Some(self.states.get_or_make(&key, || {
            BackendState::new(route, backend, settings, metrics)
        }))
    }

    /// The TLS client of a backend TLS setting, the running one when an earlier snapshot had
    /// the same; called when a snapshot is built. Fails on certificates that do not parse.
    pub fn tls_client(
        &self,
        t: &snap::BackendTls,
        protocol: snap::BackendProtocol,
    ) -> Result<Arc<tls::TlsClient>, String> {
        self.tls_clients
            .try_get_or_make(&tls::tls_key(t, protocol), || {
                tls::TlsClient::build(t, protocol).map(Arc::new)
            })
    }

    /// The endpoint `host:port`, with its pool (the one of its TLS setting, when it has one,
    /// and of its protocol); called when a snapshot is built.
    pub fn endpoint(
        &self,
        endpoint: &str,
        tls: Option<&Arc<tls::TlsClient>>,
        protocol: snap::BackendProtocol,
    ) -> Result<Endpoint, String> {
        let authority = endpoint
            .parse::<Authority>()
            .map_err(|_| format!("endpoint {endpoint:?} is not host:port"))?;
        Ok(Endpoint {
            pool: self.pools.get(&authority, tls, protocol),
            host: http::HeaderValue::from_str(authority.as_str())
                .map_err(|_| format!("endpoint {endpoint:?} is not a valid Host"))?,
            authority,
            timeouts: self.pools.timeouts(),
            health: None,
        })
    }

    /// Sends a request (`head`, origin-form URI with Host, and `body`) to `endpoint`.
    /// `timeout` bounds the wait for the response headers and starts once the request body
    /// has been sent (`body_sent`; `None` when there is no body), so a slow upload is not cut
    /// off by it, as with Envoy's route timeout. A request that never left because a pooled
    /// connection turned out to be closed is sent again on a new connection.
    pub fn send<'a>(
        &self,
        endpoint: &'a Endpoint,
        head: &'a http::request::Parts,
        body: UpstreamBody,
        timeout: Duration,
        body_sent: Option<oneshot::Receiver<()>>,
        fields: AnswerFields,
    ) -> impl Future<Output = Result<http::Response<ResponseBody>, TryError>> + 'a {
        async move {
            let exchange = exchange(endpoint, head, body, fields);
            tokio::pin!(exchange);
            if let Some(sent) = body_sent {
                tokio::select! {
                    // The backend may answer (e.g. 413) before reading the whole body.
                    answered = &mut exchange => return answered,
                    _ = sent => {}
                }
            }
            match tokio::time::timeout(timeout, exchange).await {
                Err(_) => Err(TryError::Timeout(timeout)),
                Ok(answered) => answered,
            }
        }
    }
}

/// Sends a copy of a request (its head, without a body) to `endpoint` in the background; its
/// answer is read to the end (so the connection is used again) and dropped, all within
/// `timeout`. `permit` is held until then.
pub fn mirror(
    endpoint: Arc<Endpoint>,
    head: http::request::Parts,
    timeout: Duration,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        let copy = async {
            let answer = exchange(&endpoint, &head, UpstreamBody::Empty, AnswerFields::Map)
                .await
                .map_err(|_| "failed")?;
            http_body_util::BodyExt::collect(answer.into_body())
                .await
                .map_err(|_| "failed while its answer was read")?;
            Ok::<_, &str>(())
        };
        let outcome = tokio::time::timeout(timeout, copy).await;
        if let Err(why) = outcome.unwrap_or(Err("timed out")) {
            tracing::debug!(endpoint = %endpoint.authority, "a mirrored request {why}");
        }
        drop(permit);
    });
}

fn exchange<'a>(
    endpoint: &'a Endpoint,
    parts: &'a http::request::Parts,
    body: UpstreamBody,
    fields: AnswerFields,
) -> impl Future<Output = Result<http::Response<ResponseBody>, TryError>> + 'a {
    async move {
        let pool = &endpoint.pool;
        // Known without a wait but for an `auto` endpoint's first request.
        let h2 = match pool.known_h2() {
            Some(known) => known,
            None => speaks_h2(endpoint).await.map_err(TryError::Connect)?,
        };
        if h2 {
            return Box::pin(h2::exchange(endpoint, parts, body)).await;
        }
        let (head, framing) = encode_parts(parts, &body);
        let bodiless = matches!(body, UpstreamBody::Empty);
        let checkout = pool
            .connection(endpoint.timeouts)
            .await
            .map_err(TryError::Connect)?;
        let answered = checkout
            .conn
            .exchange(&head, body, framing, &parts.method, pool, fields)
            .await;
        match answered {
            Err(e) if checkout.reused && bodiless && stale(&e, &parts.method) => {
                tracing::debug!(endpoint = %pool.authority, error = %e, "a pooled connection was closed; sending again on a new one");
                let conn = Box::pin(pool.dial(endpoint.timeouts.connect))
                    .await
                    .map_err(TryError::Connect)?;
                conn.exchange(
                    &head,
                    UpstreamBody::Empty,
                    framing,
                    &parts.method,
                    pool,
                    fields,
                )
                .await
                .map_err(TryError::Exchange)
            }
            Err(e) => Err(TryError::Exchange(e)),
            Ok(resp) => Ok(resp),
        }
    }
}

/// Whether `endpoint` is spoken to in HTTP/2 (for `auto`, asked by connecting the first time).
pub async fn speaks_h2(endpoint: &Endpoint) -> Result<bool, ConnectError> {
    match endpoint.pool.known_h2() {
        Some(known) => Ok(known),
        // Boxed: only the first request of an `auto` endpoint connects here.
        None => Box::pin(endpoint.pool.speaks_h2(endpoint.timeouts)).await,
    }
}

/// Why one try at an endpoint failed.
pub enum TryError {
    /// No connection could be made: the request never left.
    Connect(ConnectError),
    /// The exchange on a connection failed.
    Exchange(ExchangeError),
    /// No response head within this long.
    Timeout(Duration),
}

impl TryError {
    /// The answer to the client, logged with the endpoint `at` (never put in the answer).
    pub fn problem(&self, at: &Authority) -> Problem {
        match self {
            TryError::Connect(e) => connect_failure(e, at),
            TryError::Exchange(e) => exchange_failure(e, at),
            TryError::Timeout(waited) => timed_out(*waited),
        }
    }

    /// What failed, as far as retries and outlier detection go; `None` when it was the
    /// client's own body, which no other try would do better with and which is not the
    /// backend's fault.
    pub fn failure(&self) -> Option<retry::Failure> {
        Some(match self {
            TryError::Connect(_) => retry::Failure::Connect,
            TryError::Exchange(ExchangeError::RequestBody(_)) => return None,
            // Writing its head failed (a pooled connection closed under it): it never left.
            TryError::Exchange(e) if e.never_written() => retry::Failure::Connect,
            TryError::Exchange(_) => retry::Failure::Reset,
            TryError::Timeout(_) => retry::Failure::Timeout,
        })
    }
}

/// The exchange of a retried call's try, on a connection checked out of `pool`. A pooled
/// connection the backend had closed while idle ([`stale`]) is not a failure of the try:
/// bodiless requests are sent once more on a new connection (there is nothing to replay), as
/// `exchange` does for a single send. The two are kept apart so the single send, every
/// request without retries, stays one future with nothing of the retries in it.
pub fn exchange_on<'a>(
    checkout: pool::Checkout,
    endpoint: &'a Endpoint,
    head: &'a [u8],
    framing: h1::RequestFraming,
    method: &'a http::Method,
    body: UpstreamBody,
    fields: AnswerFields,
) -> impl Future<Output = Result<http::Response<ResponseBody>, TryError>> + 'a {
    async move {
        let pool = &endpoint.pool;
        let bodiless = matches!(body, UpstreamBody::Empty);
        let answered = checkout
            .conn
            .exchange(head, body, framing, method, pool, fields)
            .await;
        match answered {
            Err(e) if checkout.reused && bodiless && stale(&e, method) => {
                tracing::debug!(endpoint = %pool.authority, error = %e, "a pooled connection was closed; sending again on a new one");
                let conn = match Box::pin(pool.dial(endpoint.timeouts.connect)).await {
                    Ok(conn) => conn,
                    Err(e) => return Err(TryError::Connect(e)),
                };
                conn.exchange(head, UpstreamBody::Empty, framing, method, pool, fields)
                    .await
                    .map_err(TryError::Exchange)
            }
            Err(e) => Err(TryError::Exchange(e)),
            Ok(resp) => Ok(resp),
        }
    }
}

/// Whether a failure on a reused pooled connection is the backend having closed it while idle:
/// the request never left (the write failed), or it left and the backend closed without a
/// byte of answer, which for an idempotent method may be sent again (RFC 9110 §9.2.2).
fn stale(e: &ExchangeError, method: &http::Method) -> bool {
    e.never_written() || (e.before_any_answer() && method.is_idempotent())
}

fn timed_out(waited: Duration) -> Problem {
    Problem::new(
        ProblemKind::UpstreamTimeout,
        format!(
            "the backend did not answer within {}",
            humantime::format_duration(waited)
        ),
    )
}

fn connect_failure(e: &ConnectError, endpoint: &Authority) -> Problem {
    tracing::debug!(%endpoint, error = %e, "connecting to a backend failed");
    Problem::new(
        ProblemKind::UpstreamUnavailable,
        // Never the address: answers do not reveal the inside (the log and access log do).
        match e {
            ConnectError::Tls(e) => tls::handshake_failure(e),
            _ => "the backend could not be reached",
        },
    )
}

fn exchange_failure(e: &ExchangeError, endpoint: &Authority) -> Problem {
    tracing::debug!(%endpoint, error = %e, "a backend exchange failed");
    match e {
        // The client's body broke off (a malformed chunk, a reset), stopped arriving or passed
        // the route's limit: not the backend's fault.
        ExchangeError::RequestBody(e) => match crate::client_body::problem_kind(e) {
            ProblemKind::BadRequest => Problem::new(
                ProblemKind::BadRequest,
                "the request body could not be read",
            ),
            kind => Problem::new(kind, e.to_string()),
        },
        _ => Problem::new(
            ProblemKind::UpstreamUnavailable,
            "the backend's connection failed before a response",
        ),
    }
}
