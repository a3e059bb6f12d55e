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

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use frontdesk_crds::grpc_http::template::Bound;
use frontdesk_crds::grpc_http::{self, Binding, BodyTarget};
use frontdesk_snapshot as snap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use prost::Message;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

use super::{Action, Input};
use crate::body::{BoxError, ProxyBody, full};
use crate::exchange::Exchange;
use crate::http1::raw_fields::into_map;
use crate::problem::{Problem, ProblemKind};

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
            let stream = JsonStream {
                inner: body,
                frames,
                output,
                field: binding.response_body.clone(),
                ndjson,
                written: 0,
                ok: status_seen == Some(true),
                ended: status_seen.is_some(),
                done: false,
            };
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

/// The request message: the body (as the binding says), then the path's variables, then the
/// query for what neither set.
fn request_message(
    binding: &Binding,
    vars: &[Bound],
    query: Option<&str>,
    json: &[u8],
) -> Result<DynamicMessage, String> {
    let input = binding.method.input();
    let json = if json.trim_ascii().is_empty() {
        b"{}".as_slice()
    } else {
        json
    };
    let mut message = match &binding.body {
        BodyTarget::None => DynamicMessage::new(input.clone()),
        BodyTarget::Whole => {
            let mut de = serde_json::Deserializer::from_slice(json);
            let message = DynamicMessage::deserialize(input.clone(), &mut de)
                .map_err(|e| format!("the body is not a {}: {e}", input.full_name()))?;
            de.end()
                .map_err(|e| format!("the body has more than one JSON value: {e}"))?;
            message
        }
        BodyTarget::Field(field) => {
            let value: serde_json::Value =
                serde_json::from_slice(json).map_err(|e| format!("the body is not JSON: {e}"))?;
            let wrapped = serde_json::json!({ field.json_name(): value });
            DynamicMessage::deserialize(input.clone(), wrapped).map_err(|e| {
                format!(
                    "the body is not a {} {}: {e}",
                    field.name(),
                    kind_name(field)
                )
            })?
        }
    };
    if binding.body != BodyTarget::Whole
        && let Some(query) = query
    {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            // Parameters that name no field are left alone (tracking parameters, say); those
            // that name a field the path or the body binds, however spelled, too.
            let Ok(fields) = grpc_http::field_path(&input, &path) else {
                continue;
            };
            if binding
                .bound_fields
                .iter()
                .any(|b| fields.starts_with(b) || b.starts_with(&fields))
                || matches!(&binding.body, BodyTarget::Field(f) if fields[0] == *f)
            {
                continue;
            }
            set_path(&mut message, &path, &value, false)?;
        }
    }
    // The path's variables last: nothing else may change what the path says.
    for (path, value) in vars {
        set_path(&mut message, path, value, true)?;
    }
    Ok(message)
}

fn kind_name(field: &FieldDescriptor) -> String {
    match field.kind() {
        Kind::Message(m) => m.full_name().to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Sets the field at `path` from its text (`replace`: a path variable, which wins over the
/// body; else a query parameter, appended to a repeated field).
fn set_path(
    message: &mut DynamicMessage,
    path: &[String],
    text: &str,
    replace: bool,
) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("an empty field path")?;
    let desc = message.descriptor();
    let field = desc
        .get_field_by_name(first)
        .or_else(|| desc.get_field_by_json_name(first))
        .ok_or_else(|| format!("{first:?} is not a field of {}", desc.full_name()))?;
    if !rest.is_empty() {
        let Value::Message(inner) = message.get_field_mut(&field) else {
            return Err(format!("{first:?} is not a message field"));
        };
        return set_path(inner, rest, text, replace);
    }
    let value = scalar(&field, text).map_err(|why| format!("{}: {why}", path.join(".")))?;
    if field.is_list() {
        match message.get_field_mut(&field) {
            Value::List(list) if !replace => list.push(value),
            slot => *slot = Value::List(vec![value]),
        }
    } else {
        message.set_field(&field, value);
    }
    Ok(())
}

/// A path variable's or query parameter's text as the field's value.
fn scalar(field: &FieldDescriptor, s: &str) -> Result<Value, String> {
    let number = |what| format!("{s:?} is not {what}");
    Ok(match field.kind() {
        Kind::String => Value::String(s.to_string()),
        Kind::Bytes => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
                .map_err(|_| number("base64"))?
                .into(),
        ),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(s.parse().map_err(|_| number("an integer"))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(s.parse().map_err(|_| number("an integer"))?)
        }
        Kind::Uint32 | Kind::Fixed32 => {
            Value::U32(s.parse().map_err(|_| number("an unsigned integer"))?)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            Value::U64(s.parse().map_err(|_| number("an unsigned integer"))?)
        }
        Kind::Float => Value::F32(s.parse().map_err(|_| number("a number"))?),
        Kind::Double => Value::F64(s.parse().map_err(|_| number("a number"))?),
        Kind::Bool => Value::Bool(match s {
            "true" => true,
            "false" => false,
            _ => return Err(number("true or false")),
        }),
        Kind::Enum(e) => Value::EnumNumber(match e.get_value_by_name(s) {
            Some(v) => v.number(),
            None => s
                .parse()
                .map_err(|_| format!("{s:?} is not a value of {}", e.full_name()))?,
        }),
        Kind::Message(m) => {
            return Err(format!(
                "a {} cannot be given in a path or query",
                m.full_name()
            ));
        }
    })
}

/// A message framed for gRPC (uncompressed).
fn frame(message: &DynamicMessage) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.put_u8(0);
    out.put_u32(len as u32);
    message.encode_raw(&mut out);
    out.freeze()
}

/// The next whole message of a gRPC body, if `buf` holds one.
fn next_message(buf: &mut Bytes) -> Result<Option<Bytes>, String> {
    if buf.len() < 5 {
        return Ok(None);
    }
    if buf[0] != 0 {
        return Err("the backend sent a compressed message, which was not asked for".into());
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return Ok(None);
    }
    buf.advance(5);
    Ok(Some(buf.split_to(len)))
}

/// An answer message as JSON (proto3 JSON mapping), or its `field` alone.
fn to_json(
    output: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let decoded = DynamicMessage::decode(output.clone(), message).map_err(|e| {
        tracing::debug!(message = %output.full_name(), error = %e, "a gRPC answer did not decode");
        "the backend's answer is not the method's message".to_string()
    })?;
    let value = match field {
        None => serde_json::to_value(&decoded).map_err(|e| e.to_string())?,
        // The field alone, its default value included (`[]`, `""`...), not left out.
        Some(f) => {
            let options = prost_reflect::SerializeOptions::new().skip_default_fields(false);
            let mut out = serde_json::Serializer::new(Vec::new());
            decoded
                .serialize_with_options(&mut out, &options)
                .map_err(|e| e.to_string())?;
            let whole: serde_json::Value =
                serde_json::from_slice(&out.into_inner()).map_err(|e| e.to_string())?;
            whole
                .get(f.json_name())
                .cloned()
                .unwrap_or(serde_json::Value::Null)
        }
    };
    serde_json::to_vec(&value).map_err(|e| e.to_string())
}

fn status(headers: &http::HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The HTTP status and problem slug of a gRPC code (google.rpc.Code's HTTP mapping).
fn http_of(code: u32) -> (StatusCode, &'static str) {
    match code {
        1 => (
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            "cancelled",
        ),
        3 => (StatusCode::BAD_REQUEST, "invalid-argument"),
        4 => (StatusCode::GATEWAY_TIMEOUT, "deadline-exceeded"),
        5 => (StatusCode::NOT_FOUND, "not-found"),
        6 => (StatusCode::CONFLICT, "already-exists"),
        7 => (StatusCode::FORBIDDEN, "permission-denied"),
        8 => (StatusCode::TOO_MANY_REQUESTS, "resource-exhausted"),
        9 => (StatusCode::BAD_REQUEST, "failed-precondition"),
        10 => (StatusCode::CONFLICT, "aborted"),
        11 => (StatusCode::BAD_REQUEST, "out-of-range"),
        12 => (StatusCode::NOT_IMPLEMENTED, "unimplemented"),
        14 => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        16 => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        13 => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        15 => (StatusCode::INTERNAL_SERVER_ERROR, "data-loss"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "unknown"),
    }
}

/// A gRPC error as problem+json: the backend's answer, not the proxy's (it is not counted as
/// a local reply).
fn grpc_error(code: u32, fields: &http::HeaderMap) -> Response<ProxyBody> {
    let (status, slug) = http_of(code);
    let message = fields
        .get("grpc-message")
        .map(|m| grpc_http::template::percent_decode(m.as_bytes(), false))
        .unwrap_or_default();
    let body = serde_json::json!({
        "type": format!("https://frontdesk.dev/problems/grpc-{slug}"),
        "title": format!("The gRPC call failed: {}", slug.replace('-', " ")),
        "status": status.as_u16(),
        "detail": message,
        "grpcStatus": code,
    });
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

pin_project_lite::pin_project! {
    /// A server stream's messages as JSON, written as they arrive.
    struct JsonStream {
        #[pin]
        inner: ProxyBody,
        // gRPC bytes not yet a whole message.
        frames: BytesMut,
        output: MessageDescriptor,
        field: Option<FieldDescriptor>,
        ndjson: bool,
        written: usize,
        // The stream's status said OK.
        ok: bool,
        // Its trailers came: nothing more to read.
        ended: bool,
        done: bool,
    }
}

/// Whether `frames` holds a whole message (or the start of one that is not uncompressed, which
/// [`next_message`] refuses).
fn holds_a_message(frames: &[u8]) -> bool {
    frames.len() >= 5
        && (frames[0] != 0
            || frames.len()
                >= 5 + u32::from_be_bytes([frames[1], frames[2], frames[3], frames[4]]) as usize)
}

impl JsonStream {
    /// Every whole message at hand, as JSON.
    fn drain(self: Pin<&mut Self>) -> Result<Vec<u8>, BoxError> {
        let this = self.project();
        let mut out = Vec::new();
        let mut pending = this.frames.split().freeze();
        while let Some(message) = next_message(&mut pending)? {
            let json = to_json(this.output, this.field.as_ref(), &message)?;
            if *this.ndjson {
                out.extend_from_slice(&json);
                out.push(b'\n');
            } else {
                out.push(if *this.written == 0 { b'[' } else { b',' });
                out.extend_from_slice(&json);
            }
            *this.written += 1;
        }
        this.frames.put(pending);
        Ok(out)
    }
}

impl Body for JsonStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let out = match this.as_mut().drain() {
                Ok(out) => out,
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            };
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out.into()))));
            }
            let polled = if this.ended {
                None
            } else {
                ready!(this.as_mut().project().inner.poll_frame(cx))
            };
            let me = this.as_mut().project();
            match polled {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if me.frames.len() + data.len() <= MAX_ANSWER => me.frames.put(data),
                    Ok(_) => {
                        *me.done = true;
                        return Poll::Ready(Some(Err(
                            "a message of the gRPC stream is larger than 16 MiB".into(),
                        )));
                    }
                    Err(frame) => {
                        *me.ended = true;
                        let trailers = frame.into_trailers().unwrap_or_default();
                        *me.ok = status(&trailers) == Some(0);
                        if !*me.ok {
                            *me.done = true;
                            return Poll::Ready(Some(Err(format!(
                                "the gRPC stream failed with status {}",
                                status(&trailers).map_or("(none)".into(), |c| c.to_string())
                            )
                            .into())));
                        }
                    }
                },
                Some(Err(e)) => {
                    *me.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    *me.done = true;
                    if !me.frames.is_empty() {
                        return Poll::Ready(Some(Err("the gRPC stream ended mid-message".into())));
                    }
                    // A stream that ends without its status did not end well.
                    if !*me.ok {
                        return Poll::Ready(Some(Err(
                            "the gRPC stream ended without a status".into()
                        )));
                    }
                    if *me.ndjson {
                        return Poll::Ready(None);
                    }
                    let end: &'static [u8] = if *me.written == 0 { b"[]" } else { b"]" };
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(end)))));
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
