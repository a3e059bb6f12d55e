//! The action: runs after the request transforms, for every request that got this far. What a
//! rule does with the request:
//!
//! - [`forward`]: send it to one of the rule's weighted backends and stream the answer back,
//!   a copy to its [`mirror`]s;
//! - [`aggregate`]: call several backends and answer with their merged JSON;
//! - [`redirect`]: answer with a Location;
//! - [`direct`]: answer with a fixed status and body;
//! - [`grpc_web`]: any of them for a gRPC-Web client, translated to gRPC and back;
//! - [`transcode`]: a forward to gRPC servers of a REST/JSON request, as its gRPC call.
//!
//! Failures are problems (502, 503, 504...) answered by the respond path like every answer.

pub mod aggregate;
pub mod direct;
pub mod forward;
pub mod grpc_web;
pub mod mirror;
pub mod redirect;
pub mod transcode;

use std::time::Duration;

use bytes::Bytes;
use frontdesk_snapshot::{self as snap};
use http::Request;
use http_body::Body;
use prometheus_client::metrics::histogram::Histogram;

use crate::body::{BoxError, ProxyBody};
use crate::exchange::Exchange;
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::transforms::MatchedPath;
use crate::upstream::balancer::EndpointSet;
use crate::upstream::{AnswerFields, Upstream};

/// The action of one rule.
pub enum Action {
    Forward(forward::Forward),
    Aggregate(aggregate::AggregateRuntime),
    Redirect(redirect::Redirect),
    Direct(direct::Direct),
}

/// What the action needs besides the request.
pub struct Input<'a> {
    pub matched: MatchedPath<'a>,
    /// The host the client addressed (`None` for an HTTP/1.0 request without one) and port.
    pub host: Option<&'a str>,
    pub port: Option<u16>,
    /// The rule's deadline for the backend's response headers (or the Aggregate's answer).
    pub timeout: Duration,
    pub upstream: &'a Upstream,
    pub upstream_duration: &'a Histogram,
    /// How a backend's answer comes back: as sent when nothing after the action reads or edits
    /// its fields (see [`crate::http1::raw_fields`]).
    pub answer_fields: AnswerFields,
}

impl Action {
    pub fn build(
        rule_id: &std::sync::Arc<str>,
        rule: &snap::Rule,
        backend_settings: &crate::upstream::backend_state::BackendSettings,
        metrics: &Metrics,
        upstream: &Upstream,
    ) -> Result<Self, String> {
        Ok(match &rule.action {
            snap::Action::Forward { backends } => Action::Forward(forward::Forward::build(
                backends,
                rule.retries.as_ref(),
                &rule.mirrors,
                backend_settings,
                &crate::metrics::RouteId(rule_id.clone()),
                metrics,
                upstream,
            )?),
            snap::Action::Aggregate(a) => Action::Aggregate(aggregate::AggregateRuntime::build(
                rule_id,
                a,
                backend_settings,
                metrics,
                upstream,
            )?),
            snap::Action::Redirect(r) => Action::Redirect(redirect::Redirect::build(r)?),
            snap::Action::DirectResponse(d) => Action::Direct(direct::Direct::build(d)?),
        })
    }

    /// Whether the action reads none of the request's fields (an Aggregate passes some on to
    /// its calls; a forward may hash on one): a forward's can go to the backend as the
    /// client sent them ([`crate::http1::raw_fields`]).
    pub fn relays_fields(&self) -> bool {
        match self {
            Action::Forward(f) => !f.reads_fields(),
            Action::Aggregate(_) => false,
            Action::Redirect(_) | Action::Direct(_) => true,
        }
    }

    /// Whether a backend of the action speaks HTTP/2 (and so may be a gRPC server).
    pub fn speaks_h2(&self) -> bool {
        match self {
            Action::Forward(f) => f.speaks_h2(),
            _ => false,
        }
    }

    /// Calls `f` with each endpoint set of the action: a forward's backends and mirrors, an
    /// Aggregate's calls (none for a redirect or a direct answer). An endpoint delta finds the
    /// sets of the backends it changes this way, to change them in place.
    pub fn endpoint_sets<'a>(&'a self, f: &mut impl FnMut(&'a EndpointSet)) {
        match self {
            Action::Forward(forward) => forward.endpoint_sets(f),
            Action::Aggregate(aggregate) => aggregate.endpoint_sets(f),
            Action::Redirect(_) | Action::Direct(_) => {}
        }
    }

    /// Whether the request itself goes to a backend (and so through the request transforms).
    pub fn forwards(&self) -> bool {
        matches!(self, Action::Forward(_))
    }

    pub fn run<B>(
        &self,
        req: Request<B>,
        input: Input<'_>,
        ex: &mut Exchange,
    ) -> impl Future<Output = Result<http::Response<ProxyBody>, Problem>>
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        async move {
            match self {
                Action::Forward(f) => f.run(req, &input, ex).await,
                Action::Aggregate(a) => {
                    let mut log = Vec::new();
                    // Boxed: an Aggregate's future is large and only its requests should carry it.
                    let answer = Box::pin(a.answer(
                        input.upstream,
                        input.matched.captures,
                        aggregate::Asking {
                            headers: req.headers(),
                            request_id: &ex.request_id,
                            client: ex.client.ip(),
                        },
                        input.timeout,
                        &mut log,
                    ))
                    .await;
                    if let Some(l) = &mut ex.log {
                        l.calls = Some(log);
                    }
                    answer
                }
                Action::Redirect(r) => r.answer(&input, req.uri().query()),
                Action::Direct(d) => Ok(d.answer()),
            }
        }
    }
}
