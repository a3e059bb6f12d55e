//! Upstream: sending a request to a backend endpoint over pooled HTTP/1.1 connections.
//!
//! One client (and so one connection pool) for the life of the process: snapshots come and go,
//! warm connections stay. The rule's timeout bounds the wait for response headers; the body then
//! streams for as long as the backend sends it.

use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::oneshot;

use crate::body::Observed;
use crate::problem::{Problem, ProblemKind};

/// The request body sent upstream: the client's body, counted as it streams.
pub type UpstreamBody = Observed<Incoming>;

#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, UpstreamBody>,
    /// Bodiless requests (aggregate calls): the same settings, a pool of its own (a pool is
    /// tied to one body type).
    pub calls: Client<HttpConnector, http_body_util::Empty<bytes::Bytes>>,
}

#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_endpoint: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_idle_per_endpoint: 256,
        }
    }
}

impl Upstream {
    pub fn new(cfg: &UpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(cfg.idle_timeout)
            .pool_max_idle_per_host(cfg.max_idle_per_endpoint);
        Upstream {
            client: builder.build(connector.clone()),
            calls: builder.build(connector),
        }
    }

    /// Sends `req` (absolute URI). `timeout` bounds the wait for the response headers and
    /// starts once the request body has been sent (`body_sent`; `None` when there is no body),
    /// so a slow upload is not cut off by it, as with Envoy's route timeout.
    pub async fn send(
        &self,
        req: http::Request<UpstreamBody>,
        timeout: Duration,
        body_sent: Option<oneshot::Receiver<()>>,
    ) -> Result<http::Response<Incoming>, Problem> {
        let endpoint = req.uri().authority().cloned();
        let response = self.client.request(req);
        tokio::pin!(response);
        if let Some(sent) = body_sent {
            tokio::select! {
                // The backend may answer (e.g. 413) before reading the whole body.
                answered = &mut response => return answered.map_err(|e| failure(&e, endpoint.as_ref())),
                _ = sent => {}
            }
        }
        match tokio::time::timeout(timeout, response).await {
            Err(_) => Err(Problem::new(
                ProblemKind::UpstreamTimeout,
                format!(
                    "the backend did not answer within {}",
                    humantime::format_duration(timeout)
                ),
            )),
            Ok(answered) => answered.map_err(|e| failure(&e, endpoint.as_ref())),
        }
    }
}

fn failure(
    e: &hyper_util::client::legacy::Error,
    endpoint: Option<&http::uri::Authority>,
) -> Problem {
    let endpoint = endpoint.map_or("the backend", http::uri::Authority::as_str);
    if e.is_connect() {
        Problem::new(
            ProblemKind::UpstreamUnavailable,
            format!("could not connect to {endpoint}"),
        )
    } else {
        Problem::new(
            ProblemKind::UpstreamUnavailable,
            format!("the connection to {endpoint} failed before a response"),
        )
    }
}
