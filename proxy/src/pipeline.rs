//! The request path: sequences the [`crate::stages`], and does nothing else.
//!
//! ```text
//! request_target → route → cors → authenticate → authorize → rate_limit → cache →
//!   request_transforms → action (as gRPC for a gRPC-Web client, or a transcoded call) → render →
//!   response_transforms → finish
//! ```
//!
//! A stage that refuses or fails ends the sequence with a problem; every outcome then takes
//! the same respond path ([`crate::stages::respond`]), so the rule's response header edits,
//! the RateLimit headers and the request id are on every answer, the proxy's own included.
//! Generic over the request body, so the whole path runs in tests without sockets.
//!
//! An HTTP/1 request's fields may arrive kept as the client sent them, not as a map
//! ([`crate::http1::raw_fields`]): the path makes them a map as soon as a stage that reads
//! them may run.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;

use crate::body::{BoxError, ProxyBody};
use crate::exchange::{Client, Exchange};
use crate::forwarding::https_by_trusted_proxy;
use crate::http1::raw_fields::{FieldsView, into_map};
use crate::metrics::RouteId;
use crate::problem::{Problem, ProblemKind};
use crate::runtime::{RuleRuntime, Runtime};
use crate::stages::action::Input;
use crate::stages::action::{grpc_web, redirect};
use crate::stages::authenticate::{self, Denied};
use crate::stages::cache::{self, CACHE_STATUS, Lookup};
use crate::stages::route::RequestView;
use crate::stages::{rate_limit, request_target};
use crate::transforms::MatchedPath;
use crate::upstream::AnswerFields;

impl Runtime {
    /// Answers one request. Never fails: errors become problem+json answers.
    ///
    /// The request path's functions return `async move` blocks rather than being `async fn`s:
    /// an `async fn` keeps its arguments twice in its future (as arguments, and moved into its
    /// body), and every request's future would carry, and copy, both.
    pub fn handle<B>(
        self: Arc<Self>,
        mut req: Request<B>,
        client: impl Into<Client>,
    ) -> impl Future<Output = Response<ProxyBody>>
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let client = client.into();
        async move {
            let env = &self.env;
            let mut ex = Exchange::start(
                &mut req,
                client,
                &env.trusted,
                &env.no_route,
                env.respond.access_log.enabled(),
            );
            let (rule, outcome) = self.run(req, &mut ex).await;
            let mut resp = env.respond.render(outcome, &ex);
            if let Some(rule) = rule {
                rule.response_transforms.apply(resp.headers_mut());
            }
            env.respond.finish(resp, ex)
        }
    }

    /// The stages up to the action. Returns the matched rule, if any, with the outcome.
    fn run<'s, B>(
        self: &'s Arc<Self>,
        mut req: Request<B>,
        ex: &mut Exchange,
    ) -> impl Future<
        Output = (
            Option<&'s RuleRuntime>,
            Result<Response<ProxyBody>, Problem>,
        ),
    >
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        async move {
            let target = match request_target::read(&mut req, ex.peer.trusted) {
                Ok(t) => t,
                Err(p) => return (None, Err(p)),
            };
            // Fields kept as the client sent them (HTTP/1) become a map now when routes match
            // on headers.
            if self.routes.matches_headers() {
                into_map(req.extensions_mut().remove(), req.headers_mut());
            }
            // Not behind a trusted proxy that terminated TLS already (it says so in
            // X-Forwarded-Proto): redirecting its requests would loop. Asked only on ports that
            // redirect.
            if let Some(port) = ex.port.as_ref().and_then(|p| p.redirect_to_https)
                && !https_by_trusted_proxy(FieldsView::of(&req), ex.peer.trusted)
                && let Some(redirect) =
                    redirect::to_https(&target.host, &target.path, req.uri().query(), port)
            {
                return (None, Ok(redirect));
            }
            if let (Some(log), Some(a)) = (&mut ex.log, &target.authority) {
                log.host = a.as_str().to_string();
            }
            let view = RequestView {
                host: &target.host,
                path: &target.path,
                query: req.uri().query(),
                method: req.method(),
                headers: req.headers(),
                port: ex.local_port,
            };
            let Some(matched) = self.routes.lookup(&view) else {
                let what = format!(
                    "no route matches {} {}{}",
                    req.method(),
                    target.host,
                    target.path
                );
                return (None, Err(Problem::new(ProblemKind::NoRoute, what)));
            };
            let rule = matched.target;
            if !rule.relays_request_fields {
                into_map(req.extensions_mut().remove(), req.headers_mut());
            }
            ex.route = RouteId(rule.id.clone());
            ex.metrics = Some(rule.metrics.clone());
            // Asked only of rules with a backend that may speak gRPC.
            if rule.speaks_grpc
                && let Some(mode) = grpc_web::mode(FieldsView::of(&req))
            {
                ex.grpc = true;
                ex.grpc_web = Some(mode);
            }
            let path = MatchedPath {
                path: &target.path,
                captures: &matched.captures,
                prefix: matched.prefix,
            };
            if let Some(cors) = &rule.cors
                && let Some(answered) = cors.check(req.method(), FieldsView::of(&req), ex)
            {
                return (Some(rule), answered);
            }
            let outcome = self.after_match(req, rule, &target, path, ex).await;
            (Some(rule), outcome)
        }
    }

    /// Authenticate → authorize → rate limit → cache → request transforms → action.
    fn after_match<'a, B>(
        self: &'a Arc<Self>,
        req: Request<B>,
        rule: &'a RuleRuntime,
        target: &'a request_target::Target,
        path: MatchedPath<'a>,
        ex: &'a mut Exchange,
    ) -> impl Future<Output = Result<Response<ProxyBody>, Problem>> + 'a
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        async move {
            let (mut head, body) = req.into_parts();
            let identity = match &rule.authenticate {
                None => None,
                Some(stage) => {
                    let asked = authenticate::Request {
                        method: &head.method,
                        uri: &head.uri,
                        path: path.path,
                        host: &target.host,
                        request_id: &ex.request_id,
                        client_certificate: ex.client_certificate.as_deref(),
                    };
                    // Boxed: the authentication futures (key fetches, external calls) are large and
                    // would otherwise be moved with every request's future, policy or not.
                    match Box::pin(stage.check(asked, &mut head.headers)).await {
                        Ok(identity) => identity,
                        Err(Denied::Problem(p)) => return Err(p),
                        Err(Denied::Response(resp)) => return Ok(resp),
                    }
                }
            };
            if let Some(stage) = &rule.authorize {
                stage.check(&head.method, identity.as_ref())?;
            }
            if let Some(stage) = &rule.rate_limit {
                let asked = rate_limit::Request {
                    route: &rule.route,
                    peer: ex.client.ip(),
                    headers: &head.headers,
                    identity: identity.as_ref(),
                };
                let headers = Box::pin(stage.check(asked)).await?;
                ex.response_headers.extend(headers);
            }
            ex.consumer = identity.and_then(|i| i.consumer);
            let mut caching = None;
            // A switch to WebSocket is no answer to keep or to give from the cache.
            if let Some(stage) = &rule.cache
                && head.extensions.get::<crate::tunnel::Asked>().is_none()
            {
                let at = cache::At {
                    tls: ex.peer.tls
                        || https_by_trusted_proxy(
                            FieldsView::of_parts(&head.headers, &head.extensions),
                            ex.peer.trusted,
                        ),
                    authenticated: rule.authenticate.is_some(),
                    host: &target.host,
                    port: target.port,
                    path: path.path,
                    consumer: ex.consumer.as_deref(),
                    rule: &rule.cache_scope,
                };
                // Boxed: a lookup may wait for another request of its key.
                match Box::pin(stage.lookup(&mut head, &at, rule.timeout)).await {
                    Lookup::Answer(answer, status) => {
                        ex.response_headers.push((CACHE_STATUS.clone(), status));
                        return Ok(answer);
                    }
                    Lookup::AnswerAndRefresh(answer, status, refresh, permit) => {
                        ex.response_headers.push((CACHE_STATUS.clone(), status));
                        self.refresh(&head, refresh, permit, ex);
                        return Ok(answer);
                    }
                    Lookup::Forward(pending) => caching = Some(pending),
                    Lookup::NotCached(status) => {
                        ex.response_headers.push((CACHE_STATUS.clone(), status));
                        return Err(Problem::new(
                            ProblemKind::NotCached,
                            "the request asked for a cached answer only, and there is none",
                        ));
                    }
                }
            }
            if rule.action.forwards() {
                rule.request_transforms.apply(
                    &mut head,
                    &path,
                    ex.peer,
                    target.authority.as_ref(),
                )?;
            }
            // The body's bound: refused now when its declared length is over it, else counted as it
            // streams (only forwards send it anywhere).
            let limit = rule.max_request_body.unwrap_or(self.env.max_request_body);
            if rule.action.forwards()
                && !body.is_end_stream()
                && let Ok(Some(declared)) = crate::http1::declared_length(&head)
                && declared > limit
            {
                return Err(Problem::new(
                    ProblemKind::BodyTooLarge,
                    crate::client_body::ClientBodyError::TooLarge { limit }.to_string(),
                ));
            }
            let body = crate::client_body::Limited::new(body, limit);
            // A gRPC client's deadline, when it is shorter than the rule's.
            let timeout = match ex.grpc {
                false => rule.timeout,
                true => FieldsView::of_parts(&head.headers, &head.extensions)
                    .values(&crate::grpc::GRPC_TIMEOUT)
                    .next()
                    .and_then(crate::grpc::timeout)
                    .map_or(rule.timeout, |t| t.min(rule.timeout)),
            };
            let input = Input {
                matched: path,
                host: target.authority.as_ref().map(|_| target.host.as_str()),
                port: target.port,
                timeout,
                upstream: &self.env.upstream,
                upstream_duration: &rule.upstream_duration,
                // Relayed as sent when the server writing the answer knows how (HTTP/1) and the
                // rule edits no response field and caches nothing: the respond path and the
                // HTTP/1 encoder know the raw form, nothing else after the action reads the
                // fields (CORS drops a backend's own CORS fields from the raw form too).
                answer_fields: if ex.relays_raw_fields
                    && rule.response_transforms.is_empty()
                    && caching.is_none()
                {
                    AnswerFields::PassThrough
                } else {
                    AnswerFields::Map
                },
            };
            let outcome = if ex.grpc_web.is_none() && rule.transcode.is_none() {
                rule.action
                    .run(Request::from_parts(head, body), input, ex)
                    .await
            } else {
                // Boxed: only gRPC-Web and transcoded calls carry their state.
                Box::pin(translated(rule, head, body, input, ex)).await
            };
            match caching {
                None => outcome,
                Some(pending) => {
                    let (outcome, status) = pending.complete(outcome);
                    ex.response_headers.push((CACHE_STATUS.clone(), status));
                    outcome
                }
            }
        }
    }

    /// Sends a stale answer's request again in the background, to refresh what is stored
    /// (`stale-while-revalidate`): a `GET` with the client's fields but its conditions, on the
    /// same runtime, from the same client, through every stage.
    fn refresh(
        self: &Arc<Self>,
        head: &http::request::Parts,
        refresh: cache::Refresh,
        permit: tokio::sync::OwnedSemaphorePermit,
        ex: &Exchange,
    ) {
        let mut req = Request::new(http_body_util::Empty::<Bytes>::new());
        *req.method_mut() = http::Method::GET;
        *req.uri_mut() = head.uri.clone();
        *req.version_mut() = head.version;
        *req.headers_mut() = head.headers.clone();
        // The cache's own request: none of the client's conditions or cache directives
        // (`only-if-cached`, `no-store`...).
        for name in [
            http::header::IF_NONE_MATCH,
            http::header::IF_MODIFIED_SINCE,
            http::header::CACHE_CONTROL,
            http::header::PRAGMA,
        ] {
            req.headers_mut().remove(name);
        }
        req.extensions_mut().insert(refresh);
        let client = Client {
            addr: ex.client,
            tls: ex.peer.tls,
            certificate: ex.client_certificate.clone(),
            port: ex.port.clone(),
            local_port: ex.local_port,
            relays_raw_fields: false,
        };
        let runtime = self.clone();
        tokio::spawn(async move {
            // Read to its end (that is when the answer is stored), within a deadline; the
            // permit goes with it.
            let refreshing = async {
                let mut body = runtime.handle(req, client).await.into_body();
                while let Some(Ok(_)) = body.frame().await {}
            };
            let _ = tokio::time::timeout(cache::REFRESH_DEADLINE, refreshing).await;
            drop(permit);
        });
    }
}

/// The action of a gRPC-Web call, or of a rule that transcodes REST/JSON to gRPC.
fn translated<'a, B>(
    rule: &'a RuleRuntime,
    head: http::request::Parts,
    body: B,
    input: Input<'a>,
    ex: &'a mut Exchange,
) -> impl Future<Output = Result<Response<ProxyBody>, Problem>> + 'a
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    async move {
        match (ex.grpc_web, &rule.transcode) {
            (Some(mode), _) => grpc_web::run(&rule.action, head, body, input, ex, mode).await,
            (None, Some(transcoder)) => transcoder.run(&rule.action, head, body, input, ex).await,
            (None, None) => {
                rule.action
                    .run(Request::from_parts(head, body), input, ex)
                    .await
            }
        }
    }
}
