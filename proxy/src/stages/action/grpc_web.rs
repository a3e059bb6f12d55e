//! gRPC-Web: the action of a rule whose backends speak HTTP/2, run on requests whose
//! `content-type` is `application/grpc-web(+proto)` or `application/grpc-web-text(+proto)`
//! (the pipeline asks [`mode`] once the rule matched); other requests never see it.
//!
//! Browsers cannot speak gRPC (no trailers, no HTTP/2 framing control), so they speak
//! gRPC-Web (grpc/grpc PROTOCOL-WEB.md), which the proxy translates to gRPC for the backend
//! and back:
//! - the request's `content-type` becomes `application/grpc(+proto)`; in text mode its body is
//!   base64, decoded as it streams (padded groups may follow each other);
//! - the answer's `content-type` becomes the request's kind again, and the backend's trailers
//!   (`grpc-status`, `grpc-message`...) become the body's last frame: a flag byte `0x80`, a
//!   4-byte length, and the fields as `name:value\r\n` lines. In text mode the whole body is
//!   one base64 stream, padded only at its end.
//! - a backend's Trailers-Only answer keeps its status in the head, where gRPC-Web clients read
//!   it too; so do the proxy's own refusals ([`crate::grpc`]).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Either};

use super::{Action, Input};
use crate::body::{BoxError, ProxyBody};
use crate::exchange::Exchange;
use crate::http1::raw_fields::{FieldsView, into_map};
use crate::problem::Problem;

/// How a gRPC-Web client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// `grpc-web-text`: bodies in base64.
    pub text: bool,
}

impl Mode {
    /// The content type of the proxy's own answers to such a client.
    pub fn content_type(self) -> &'static str {
        if self.text {
            "application/grpc-web-text+proto"
        } else {
            "application/grpc-web+proto"
        }
    }
}

const GRPC_WEB: &[u8] = b"application/grpc-web";

/// The request's gRPC-Web mode, if it is gRPC-Web.
pub fn mode(fields: FieldsView<'_>) -> Option<Mode> {
    let ct = fields.values(&CONTENT_TYPE).next()?;
    let rest = ct.strip_prefix(GRPC_WEB)?;
    let (text, rest) = match rest.strip_prefix(b"-text") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    (rest.is_empty() || rest[0] == b'+' || rest[0] == b';').then_some(Mode { text })
}

/// `application/grpc-web[-text]<rest>` as `application/grpc<rest>`, and back.
fn to_grpc(ct: &[u8]) -> HeaderValue {
    let rest = ct.strip_prefix(GRPC_WEB).unwrap_or_default();
    let rest = rest.strip_prefix(b"-text").unwrap_or(rest);
    let mut out = b"application/grpc".to_vec();
    out.extend_from_slice(rest);
    HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("application/grpc"))
}

fn to_grpc_web(ct: &[u8], mode: Mode) -> HeaderValue {
    let rest = ct.strip_prefix(b"application/grpc").unwrap_or_default();
    let mut out = GRPC_WEB.to_vec();
    if mode.text {
        out.extend_from_slice(b"-text");
    }
    out.extend_from_slice(rest);
    HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static(mode.content_type()))
}

/// The action, run on the request as gRPC, its answer made gRPC-Web.
pub fn run<'a, B>(
    action: &'a Action,
    mut head: http::request::Parts,
    body: B,
    input: Input<'a>,
    ex: &'a mut Exchange,
    mode: Mode,
) -> impl Future<Output = Result<Response<ProxyBody>, Problem>> + 'a
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    async move {
        into_map(head.extensions.remove(), &mut head.headers);
        if let Some(ct) = head.headers.get(CONTENT_TYPE) {
            let grpc = to_grpc(ct.as_bytes());
            head.headers.insert(CONTENT_TYPE, grpc);
        }
        let body = if mode.text {
            // Decoded, the body is shorter than the client said.
            head.headers.remove(CONTENT_LENGTH);
            Either::Right(TextDecoded::new(body))
        } else {
            Either::Left(body)
        };
        let resp = action
            .run(Request::from_parts(head, body), input, ex)
            .await?;
        Ok(answer(resp, mode))
    }
}

/// The backend's gRPC answer as gRPC-Web.
fn answer(resp: Response<ProxyBody>, mode: Mode) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    let grpc = parts
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        // Not a gRPC answer (a proxy in front of the backend failed, say): as it is.
        return Response::from_parts(parts, body);
    }
    let ct = to_grpc_web(parts.headers[CONTENT_TYPE].as_bytes(), mode);
    parts.headers.insert(CONTENT_TYPE, ct);
    parts.headers.remove(CONTENT_LENGTH);
    let body = Encoded {
        inner: body,
        text: mode.text,
        carry: BytesMut::new(),
        done: false,
    };
    Response::from_parts(parts, body.boxed())
}

/// The trailers as gRPC-Web's last frame.
fn trailer_frame(trailers: &HeaderMap) -> Bytes {
    let mut block = Vec::new();
    for (name, value) in trailers {
        block.extend_from_slice(name.as_str().as_bytes());
        block.push(b':');
        block.extend_from_slice(value.as_bytes());
        block.extend_from_slice(b"\r\n");
    }
    let mut frame = BytesMut::with_capacity(5 + block.len());
    frame.put_u8(0x80);
    frame.put_u32(block.len() as u32);
    frame.put_slice(&block);
    frame.freeze()
}

pin_project_lite::pin_project! {
    /// A gRPC answer's body as gRPC-Web's: trailers as the last frame, base64 in text mode.
    struct Encoded {
        #[pin]
        inner: ProxyBody,
        text: bool,
        // Text mode: bytes not yet encoded (fewer than 3, so no padding is needed until the
        // end).
        carry: BytesMut,
        done: bool,
    }
}

impl Encoded {
    /// `bytes` for the client: as they are, or as base64 with what is left over kept back
    /// (`last`: everything, padded).
    fn out(carry: &mut BytesMut, text: bool, bytes: &[u8], last: bool) -> Bytes {
        if !text {
            return Bytes::copy_from_slice(bytes);
        }
        carry.extend_from_slice(bytes);
        let whole = if last {
            carry.len()
        } else {
            carry.len() / 3 * 3
        };
        let encoded = STANDARD.encode(&carry[..whole]);
        let _ = carry.split_to(whole);
        Bytes::from(encoded)
    }
}

impl Body for Encoded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !*this.text => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(data) => {
                        let out = Self::out(this.carry, true, &data, false);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            *this.done = true;
                            let last = trailer_frame(&trailers);
                            let out = Self::out(this.carry, *this.text, &last, true);
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    *this.done = true;
                    if this.carry.is_empty() {
                        return Poll::Ready(None);
                    }
                    let out = Self::out(this.carry, true, &[], true);
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

pin_project_lite::pin_project! {
    /// A `grpc-web-text` request body, decoded from base64 as it streams.
    struct TextDecoded<B> {
        #[pin]
        inner: B,
        // Base64 characters not yet decoded (an incomplete group).
        carry: Vec<u8>,
    }
}

impl<B> TextDecoded<B> {
    fn new(inner: B) -> Self {
        TextDecoded {
            inner,
            carry: Vec::new(),
        }
    }
}

/// Decodes the complete 4-character groups of `text` (a padded group may be followed by
/// more), leaving an incomplete one in `carry`.
fn decode_groups(carry: &mut Vec<u8>, text: &[u8]) -> Result<Bytes, base64::DecodeError> {
    carry.extend(text.iter().copied().filter(|b| !b.is_ascii_whitespace()));
    let whole = carry.len() / 4 * 4;
    let mut out = Vec::with_capacity(whole / 4 * 3);
    let mut start = 0;
    // Runs of unpadded groups decode at once; a padded group ends a run.
    for group in (0..whole).step_by(4) {
        if carry[group + 3] == b'=' {
            STANDARD.decode_vec(&carry[start..group + 4], &mut out)?;
            start = group + 4;
        }
    }
    STANDARD.decode_vec(&carry[start..whole], &mut out)?;
    carry.drain(..whole);
    Ok(out.into())
}

impl<B> Body for TextDecoded<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let decoded = decode_groups(this.carry, &data).map_err(|e| {
                            BoxError::from(format!("the grpc-web-text body is not base64: {e}"))
                        })?;
                        if !decoded.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(decoded))));
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None if this.carry.is_empty() => return Poll::Ready(None),
                None => {
                    this.carry.clear();
                    return Poll::Ready(Some(Err(
                        "the grpc-web-text body ends in the middle of a base64 group".into(),
                    )));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream() && self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::StreamBody;

    use super::*;

    fn ct(v: &str) -> Option<Mode> {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, v.parse().unwrap());
        mode(FieldsView::Map(&h))
    }

    #[test]
    fn modes_and_content_types_map_both_ways() {
        assert_eq!(ct("application/grpc-web"), Some(Mode { text: false }));
        assert_eq!(ct("application/grpc-web+proto"), Some(Mode { text: false }));
        assert_eq!(ct("application/grpc-web-text"), Some(Mode { text: true }));
        assert_eq!(
            ct("application/grpc-web-text+proto"),
            Some(Mode { text: true })
        );
        assert_eq!(ct("application/grpc"), None);
        assert_eq!(ct("application/grpc-webby"), None);
        assert_eq!(
            to_grpc(b"application/grpc-web-text+proto"),
            "application/grpc+proto"
        );
        assert_eq!(to_grpc(b"application/grpc-web"), "application/grpc");
        let text = Mode { text: true };
        assert_eq!(
            to_grpc_web(b"application/grpc+proto", text),
            "application/grpc-web-text+proto"
        );
        assert_eq!(
            to_grpc_web(b"application/grpc", Mode { text: false }),
            "application/grpc-web"
        );
    }

    #[test]
    fn text_bodies_decode_across_chunks_and_padded_groups() {
        let mut carry = Vec::new();
        // "hello" + "!" encoded separately (padded), then split mid-group.
        let text = format!("{}{}", STANDARD.encode("hello"), STANDARD.encode("!"));
        let (a, b) = text.split_at(3);
        assert_eq!(decode_groups(&mut carry, a.as_bytes()).unwrap(), "");
        assert_eq!(decode_groups(&mut carry, b.as_bytes()).unwrap(), "hello!");
        assert!(carry.is_empty());
        assert!(decode_groups(&mut Vec::new(), b"@@@@").is_err());
    }

    async fn encoded(frames: Vec<Frame<Bytes>>, text: bool) -> Bytes {
        let inner = StreamBody::new(futures::stream::iter(
            frames.into_iter().map(Ok::<_, BoxError>),
        ))
        .boxed();
        let body = Encoded {
            inner,
            text,
            carry: BytesMut::new(),
            done: false,
        };
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn answers_end_with_their_trailers_as_a_frame_and_text_is_one_base64_stream() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let message = Bytes::from_static(b"\x00\x00\x00\x00\x01A");
        let binary = encoded(
            vec![
                Frame::data(message.clone()),
                Frame::trailers(trailers.clone()),
            ],
            false,
        )
        .await;
        let mut expected = message.to_vec();
        expected.extend_from_slice(b"\x80\x00\x00\x00\x0fgrpc-status:0\r\n");
        assert_eq!(binary, expected);

        let text = encoded(
            vec![
                Frame::data(message.slice(..2)),
                Frame::data(message.slice(2..)),
                Frame::trailers(trailers),
            ],
            true,
        )
        .await;
        // One base64 stream: padding at its end only.
        assert_eq!(STANDARD.decode(&text).unwrap(), expected);
        let unpadded = text.iter().rposition(|b| *b != b'=').unwrap();
        assert!(!text[..unpadded].contains(&b'='), "{text:?}");

        // No trailers (a Trailers-Only answer's body is empty): nothing added.
        assert_eq!(encoded(vec![], true).await, "");
    }
}
