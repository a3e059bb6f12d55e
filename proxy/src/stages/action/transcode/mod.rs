//! REST/JSON to gRPC transcoding: the action of a rule with `grpcTranscode`, whose backends
//! are gRPC servers. Built once per snapshot from the rule's descriptors.
//!
//! A request is matched against the `google.api.http` bindings of the rule's services (in
//! declaration order; [`frontdesk_crds::grpc_http`]) and becomes that method's call: the
//! request message is made of the JSON body (the whole message for `body: "*"`, one field for
//! `body: "field"`), the query parameters for the fields neither the body nor the path binds
//! (dotted names reach nested fields; proto names or JSON names), then the path's variables,
//! which nothing else can change, per the proto3 JSON mapping. The call goes to the backends
//! like any forward (`POST /pkg.Service/Method`, `application/grpc`, the client's other fields
//! as metadata but its own `grpc-*` ones).
//!
//! The answer: a unary call's message as JSON (`response_body` picks one field), `200`; a
//! server stream's messages as one JSON array or as newline-delimited JSON, written as they
//! arrive. A gRPC status other than OK is a problem+json answer with the matching HTTP status
//! (NOT_FOUND 404, INVALID_ARGUMENT 400...), the backend's `grpc-message` as its `detail` and
//! the code as `grpcStatus`. A stream's head waits for its first message or its status; one
//! that fails after its first message (or ends without a status) can only be cut short: the
//! body ends with an error.

//!
//! - [`request`]: the call's message from the JSON body, the query and the path;
//! - [`answer`]: the answer's messages as JSON, its status as a problem.

mod answer;
mod request;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use frontdesk_crds::grpc_http::template::Bound;
use frontdesk_crds::grpc_http::{self, Binding, BodyTarget};
use frontdesk_snapshot as snap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};

use super::{Action, Input};
use crate::body::{BoxError, ProxyBody, full};
use crate::exchange::Exchange;
use crate::http1::raw_fields::into_map;
use crate::problem::{Problem, ProblemKind};

use answer::{JsonStream, grpc_error, holds_a_message, next_message, status, to_json};
use request::{frame, request_message};

/// Largest unary answer read to turn into JSON, and most of a stream held at once.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// Largest JSON request body transcoded (gRPC servers take 4 MiB messages by default): a
/// message built from JSON takes many times the JSON's size.
const MAX_REQUEST: usize = 4 * 1024 * 1024;

/// A rule's transcoding.
pub struct Transcoder {
    bindings: Vec<Binding>,
    streaming: snap::TranscodeStreaming,
}

impl Transcoder {
    pub fn build(t: &snap::GrpcTranscode) -> Result<Self, String> {
        let set = base64::engine::general_purpose::STANDARD
            .decode(&t.descriptor_set)
            .map_err(|e| format!("grpcTranscode: the descriptor set is not base64: {e}"))?;
        let pool = grpc_http::descriptor_pool(&set)?;
        Ok(Transcoder {
            bindings: grpc_http::bindings(&pool, &t.services)?,
            streaming: t.streaming,
        })
    }

    /// The binding of `method` and `path`, with its variables.
    fn find(&self, method: &http::Method, path: &str) -> Option<(&Binding, Vec<Bound>)> {
        self.bindings
            .iter()
            .filter(|b| b.http_method == method.as_str())
            .find_map(|b| b.template.matches(path).map(|vars| (b, vars)))
    }

    /// The request as its gRPC call, sent by `action`, and the answer as JSON.
    pub fn run<'a, B>(
        &'a self,
        action: &'a Action,
        mut head: http::request::Parts,
        body: B,
        input: Input<'a>,
        ex: &'a mut Exchange,
    ) -> impl Future<Output = Result<Response<ProxyBody>, Problem>> + 'a
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        async move {
            let (binding, vars) = self.find(&head.method, head.uri.path()).ok_or_else(|| {
                Problem::new(
                    ProblemKind::NoRoute,
                    format!(
                        "no gRPC method of this route maps {} {}",
                        head.method,
                        head.uri.path()
                    ),
                )
            })?;
            let json = match binding.body {
                BodyTarget::None => Bytes::new(),
                _ => read_body(body).await?,
            };
            let message = request_message(binding, &vars, head.uri.query(), &json)
                .map_err(|why| Problem::new(ProblemKind::BadRequest, why))?;
            into_map(head.extensions.remove(), &mut head.headers);
            head.method = http::Method::POST;
            head.uri = binding
                .grpc_path
                .parse()
                .map_err(|_| Problem::new(ProblemKind::Internal, "a gRPC path is not a URI"))?;
            head.headers.remove(CONTENT_LENGTH);
            // The call's gRPC fields are the proxy's (a JSON client's `grpc-accept-encoding`
            // could have the backend compress what the proxy must read), but the deadline.
            let grpc_fields: Vec<_> = head
                .headers
                .keys()
                .filter(|k| k.as_str().starts_with("grpc-") && k.as_str() != "grpc-timeout")
                .cloned()
                .collect();
            for name in grpc_fields {
                head.headers.remove(name);
            }
            head.headers.insert(
                http::HeaderName::from_static("grpc-accept-encoding"),
                HeaderValue::from_static("identity"),
            );
            head.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            head.headers
                .insert(TE, HeaderValue::from_static("trailers"));
            let call = Request::from_parts(head, Full::new(frame(&message)));
            let resp = action.run(call, input, ex).await?;
            self.answer(binding, resp).await
        }
    }

    async fn answer(
        &self,
        binding: &Binding,
        resp: Response<ProxyBody>,
    ) -> Result<Response<ProxyBody>, Problem> {
        let (mut parts, body) = resp.into_parts();
        let grpc = parts
            .headers
            .get(CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
        if !grpc {
            return Err(Problem::new(
                ProblemKind::UpstreamUnavailable,
                format!(
                    "the backend did not answer as a gRPC server ({})",
                    parts.status
                ),
            ));
        }
        // A Trailers-Only answer: its status in the head.
        if let Some(code) = status(&parts.headers)
            && code != 0
        {
            return Ok(grpc_error(code, &parts.headers));
        }
        for name in [
            "grpc-status",
            "grpc-message",
            "grpc-encoding",
            "grpc-accept-encoding",
        ] {
            parts.headers.remove(name);
        }
        parts.headers.remove(CONTENT_LENGTH);
        let output = binding.method.output();
        if binding.method.is_server_streaming() {
            let ndjson = self.streaming == snap::TranscodeStreaming::NewlineDelimited;
            // The head waits for the first message or the status: a stream that fails before
            // its first message is a problem answer, not a 200 cut short.
            let mut body = body;
            let mut frames = BytesMut::new();
            let mut status_seen = None;
            while status_seen.is_none() && !holds_a_message(&frames) {
                match body.frame().await {
                    None => break,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "a gRPC stream broke off");
                        return Err(Problem::new(
                            ProblemKind::UpstreamUnavailable,
                            "the backend's answer broke off",
                        ));
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) if frames.len() + data.len() <= MAX_ANSWER => frames.put(data),
                        Ok(_) => {
                            return Err(Problem::new(
                                ProblemKind::UpstreamUnavailable,
                                "a message of the backend's stream is larger than 16 MiB",
                            ));
                        }
                        Err(frame) => {
                            let trailers = frame.into_trailers().unwrap_or_default();
                            match status(&trailers) {
                                Some(0) => status_seen = Some(true),
                                Some(code) => return Ok(grpc_error(code, &trailers)),
                                None => status_seen = Some(false),
                            }
                        }
                    },
                }
            }
            parts.headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(if ndjson {
                    "application/x-ndjson"
                } else {
                    "application/json"
                }),
            );
            let stream = JsonStream::new(
                body,
                frames,
                output,
                binding.response_body.clone(),
                ndjson,
                status_seen,
            );
            return Ok(Response::from_parts(parts, stream.boxed()));
        }
        let (mut data, trailers) = read_answer(body).await.ok_or_else(|| {
            Problem::new(
                ProblemKind::UpstreamUnavailable,
                "the backend's answer broke off, or is larger than 16 MiB",
            )
        })?;
        match status(&trailers) {
            Some(0) => {}
            Some(code) => return Ok(grpc_error(code, &trailers)),
            None => {
                return Err(Problem::new(
                    ProblemKind::UpstreamUnavailable,
                    "the backend's answer ended without a gRPC status",
                ));
            }
        }
        let message = next_message(&mut data)
            .map_err(|why| Problem::new(ProblemKind::UpstreamUnavailable, why))?
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::UpstreamUnavailable,
                    "the backend answered OK without a message",
                )
            })?;
        let json = to_json(&output, binding.response_body.as_ref(), &message)
            .map_err(|why| Problem::new(ProblemKind::UpstreamUnavailable, why))?;
        parts.status = StatusCode::OK;
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Response::from_parts(parts, full(json)))
    }
}

/// A unary answer's body and trailers; `None` when it broke off or passed [`MAX_ANSWER`].
async fn read_answer(mut body: ProxyBody) -> Option<(Bytes, http::HeaderMap)> {
    let mut data = BytesMut::new();
    let mut trailers = http::HeaderMap::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                tracing::debug!(error = %e, "a gRPC answer broke off");
                return None;
            }
        };
        match frame.into_data() {
            Ok(d) if data.len() + d.len() <= MAX_ANSWER => data.put(d),
            Ok(_) => return None,
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = t;
                }
            }
        }
    }
    Some((data.freeze(), trailers))
}

/// The client's whole body (the route's body limit bounds it).
async fn read_body<B>(body: B) -> Result<Bytes, Problem>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                let e: BoxError = e.into();
                return Err(Problem::new(
                    crate::client_body::problem_kind(&e),
                    "the request body could not be read",
                ));
            }
        };
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > MAX_REQUEST {
                return Err(Problem::new(
                    ProblemKind::BodyTooLarge,
                    format!("a transcoded request body is at most {MAX_REQUEST} bytes"),
                ));
            }
            read.put(data);
        }
    }
    Ok(read.freeze())
}
