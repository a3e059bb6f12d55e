//! A gRPC answer as JSON: its messages (one, or a stream as it arrives), or its status as a
//! problem+json answer (see the module above).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use frontdesk_crds::grpc_http;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use prost_reflect::{DynamicMessage, FieldDescriptor, MessageDescriptor};

use super::MAX_ANSWER;
use crate::body::{BoxError, ProxyBody, full};

/// The next whole message of a gRPC body, if `buf` holds one.
pub(super) fn next_message(buf: &mut Bytes) -> Result<Option<Bytes>, String> {
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
pub(super) fn to_json(
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

pub(super) fn status(headers: &http::HeaderMap) -> Option<u32> {
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
pub(super) fn grpc_error(code: u32, fields: &http::HeaderMap) -> Response<ProxyBody> {
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
    pub(super) struct JsonStream {
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
pub(super) fn holds_a_message(frames: &[u8]) -> bool {
    frames.len() >= 5
        && (frames[0] != 0
            || frames.len()
                >= 5 + u32::from_be_bytes([frames[1], frames[2], frames[3], frames[4]]) as usize)
}

impl JsonStream {
    /// The stream of `body`, with `frames` read before its head went out and the status, if
    /// that came already (`Some(ok)`).
    pub(super) fn new(
        inner: ProxyBody,
        frames: BytesMut,
        output: MessageDescriptor,
        field: Option<FieldDescriptor>,
        ndjson: bool,
        status: Option<bool>,
    ) -> Self {
        JsonStream {
            inner,
            frames,
            output,
            field,
            ndjson,
            written: 0,
            ok: status == Some(true),
            ended: status.is_some(),
            done: false,
        }
    }

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
