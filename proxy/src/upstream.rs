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

use crate::body::Observed;
use crate::problem::{Problem, ProblemKind};

/// The request body sent upstream: the client's body, counted as it streams.
pub type UpstreamBody = Observed<Incoming>;

#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, UpstreamBody>,
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
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(cfg.idle_timeout)
            .pool_max_idle_per_host(cfg.max_idle_per_endpoint)
            .build(connector);
        Upstream { client }
    }

    /// Sends `req` (absolute URI) and waits at most `timeout` for the response headers.
    pub async fn send(
        &self,
        req: http::Request<UpstreamBody>,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, Problem> {
        let endpoint = req
            .uri()
            .authority()
            .map(ToString::to_string)
            .unwrap_or_default();
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(Problem::new(
                ProblemKind::UpstreamTimeout,
                format!(
                    "the backend did not answer within {}",
                    humantime::format_duration(timeout)
                ),
            )),
            Ok(Err(e)) if e.is_connect() => Err(Problem::new(
                ProblemKind::UpstreamUnavailable,
                format!("could not connect to {endpoint}"),
            )),
            Ok(Err(_)) => Err(Problem::new(
                ProblemKind::UpstreamUnavailable,
                format!("the connection to {endpoint} failed before a response"),
            )),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}
