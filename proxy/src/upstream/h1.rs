//! HTTP/1.1 to backends, inline: the request's own task writes the request and reads the
//! answer on the connection, with no connection task, channel or wake-up in between (hyper's
//! client connections spend all three per request; see docs/benchmarks.md).
//!
//! What is sent: the request line in origin form, the head's headers as given (the request
//! transforms already removed hop-by-hop headers and set Host), and the body framed by the
//! client's Content-Length, or chunked when it had none. What is accepted (RFC 9112): 1xx
//! interim answers are skipped, but a `101 Switching Protocols` hands the connection over in
//! the answer ([`crate::tunnel::Switched`]); the body is framed by Transfer-Encoding chunked, else by one
//! Content-Length (repeated values must agree), else until the backend closes; HEAD requests
//! and 204/304 answers have none. A connection is reused only when its exchange ended cleanly:
//! the request body sent in full, the answer read to its end with nothing after it, neither
//! side asking to close, HTTP/1.1, and no Transfer-Encoding other than chunked.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::response::Parts;
use http::{Method, Response, StatusCode, Version};
use http_body::Body;

use super::pool::EndpointPool;
use super::response_body::ResponseBody;
use super::tls::BackendIo;
use super::upload::Upload;
use super::{AnswerFields, UpstreamBody};
use crate::body::BoxError;
use crate::http1::raw_fields::RawFields;
use crate::http1::{self, BadField, FieldSpans, decode::Decoder};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// Room made in the read buffer before each read.
pub(super) const READ_ROOM: usize = 16 * 1024;

/// One connection to a backend endpoint.
pub struct Connection {
    pub(crate) io: BackendIo,
    /// Read but not yet used: the rest of a head, or body bytes that came with it.
    pub(crate) buf: BytesMut,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("writing the request failed: {0}")]
    Write(io::Error),
    /// The head was written; part of the body may have been.
    #[error("writing the request body failed: {0}")]
    WriteBody(io::Error),
    #[error("the connection closed before a response")]
    Closed,
    #[error("reading the response failed: {0}")]
    Read(io::Error),
    #[error("the response is not valid HTTP/1.1: {0}")]
    Invalid(&'static str),
    #[error("the client's request body failed: {0}")]
    RequestBody(BoxError),
    /// An HTTP/2 exchange ([`super::h2`]) failed.
    #[error("the HTTP/2 exchange failed: {0}")]
    Http2(hyper::Error),
}

impl ExchangeError {
    /// Nothing of an answer arrived: the backend may have closed an idle connection just
    /// as the request was written, and never seen it.
    pub fn before_any_answer(&self) -> bool {
        match self {
            ExchangeError::Write(_) | ExchangeError::WriteBody(_) | ExchangeError::Closed => true,
            ExchangeError::Http2(e) => refused_stream(e),
            _ => false,
        }
    }

    /// Writing the request's head failed: the backend cannot have acted on it.
    pub fn never_written(&self) -> bool {
        match self {
            ExchangeError::Write(_) => true,
            ExchangeError::Http2(e) => refused_stream(e),
            _ => false,
        }
    }
}

/// An HTTP/2 request the backend did not process: refused (REFUSED_STREAM, or past a GOAWAY's
/// last stream), or never sent because the connection had closed (RFC 9113 §8.7).
fn refused_stream(e: &hyper::Error) -> bool {
    if e.is_canceled() {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            // Streams past a GOAWAY's last stream id fail with its reason, unprocessed.
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away()
                    && h2.is_remote()
                    && h2.reason() == Some(h2::Reason::NO_ERROR));
        }
        source = err.source();
    }
    false
}

impl Connection {
    pub fn new(io: BackendIo) -> Self {
        Connection {
            io,
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle connection can take a request: nothing arrived on it while idle (an
    /// idle HTTP/1.1 connection has nothing to say; EOF means the backend closed it). Reads
    /// the socket only when the reactor saw it readable.
    pub fn reusable_now(&mut self) -> bool {
        self.buf.is_empty() && self.io.idle_and_open()
    }

    /// Writes `head` (and the body) and reads the answer's head. On success the connection
    /// travels inside the answer's body, back to `pool` when the body ends cleanly.
    pub async fn exchange(
        mut self: Box<Self>,
        head: &[u8],
        body: UpstreamBody,
        sending: RequestFraming,
        method: &Method,
        pool: &Arc<EndpointPool>,
        fields: AnswerFields,
    ) -> Result<Response<ResponseBody>, ExchangeError> {
        let raw = fields == AnswerFields::PassThrough;
        let (head, upload) = match body {
            UpstreamBody::Empty => {
                self.io.send(head).await.map_err(ExchangeError::Write)?;
                let head = std::future::poll_fn(|cx| self.poll_read_head(cx, raw)).await?;
                (head, UploadState::Done)
            }
            // Boxed: the upload path's future is large, and every request's future would
            // otherwise carry (and move) it.
            streaming => Box::pin(self.send_streaming(head, streaming, sending, raw)).await?,
        };
        if head.parts.status == StatusCode::SWITCHING_PROTOCOLS {
            // The connection is the new protocol's now, never pooled again: it travels in the
            // answer to the server that relays it ([`crate::tunnel`]), which checks it was asked.
            let mut parts = head.parts;
            if matches!(upload, UploadState::Writing(_)) {
                return Err(ExchangeError::Invalid(
                    "a switch of protocols during an upload",
                ));
            }
            parts.extensions.insert(crate::tunnel::Switched::new(self));
            return Ok(Response::from_parts(
                parts,
                ResponseBody::empty(pool.clone()),
            ));
        }
        let framing = response_framing(&head, method)?;
        let mut parts = head.parts;
        if framing.suspicious && head.framing.transfer_encoding.is_some() {
            // Transfer-Encoding wins (RFC 9112 §6.3): a Content-Length beside it must not
            // frame the answer to the client.
            parts.headers.remove(CONTENT_LENGTH);
            if let Some(raw) = parts.extensions.get_mut::<RawFields>() {
                raw.content_length = None;
            }
        }
        let reusable = !matches!(upload, UploadState::Failed)
            && parts.version == Version::HTTP_11
            && !head.framing.close
            && framing.reusable();
        let upload = match upload {
            UploadState::Writing(u) => Some(u),
            _ => None,
        };
        let body = ResponseBody::new(self, framing.decoder, reusable, upload, pool.clone());
        Ok(Response::from_parts(parts, body))
    }

    /// A request with a body: the body is written while the answer's head is awaited, since a
    /// backend may answer (413, 401...) before reading all of it, or stream its answer while it
    /// reads (an echo): then the rest of the upload is written as the answer is read.
    async fn send_streaming(
        &mut self,
        head: &[u8],
        body: UpstreamBody,
        framing: RequestFraming,
        raw: bool,
    ) -> Result<(Head, UploadState), ExchangeError> {
        self.io.send(head).await.map_err(ExchangeError::Write)?;
        let mut upload = Some(Upload::new(body, framing));
        let mut failed: Option<ExchangeError> = None;
        std::future::poll_fn(|cx| {
            if let Some(u) = upload.as_mut() {
                match u.poll_write(&mut self.io, cx) {
                    Poll::Ready(Ok(())) => upload = None,
                    // The client's fault, not the backend's: give up on this exchange.
                    Poll::Ready(Err(e @ ExchangeError::RequestBody(_))) => {
                        return Poll::Ready(Err(e));
                    }
                    // The backend stopped reading; it may still answer (413...).
                    Poll::Ready(Err(e)) => {
                        upload = None;
                        failed = Some(e);
                    }
                    Poll::Pending => {}
                }
            }
            match ready!(self.poll_read_head(cx, raw)) {
                Ok(head) => {
                    let state = match (upload.take(), &failed) {
                        (Some(u), _) => UploadState::Writing(u),
                        (None, Some(_)) => UploadState::Failed,
                        (None, None) => UploadState::Done,
                    };
                    Poll::Ready(Ok((head, state)))
                }
                // The backend closed: say why the write failed, if it did.
                Err(e) => Poll::Ready(Err(failed.take().unwrap_or(e))),
            }
        })
        .await
    }

    /// Reads until a final (non-1xx) response head is complete; leaves what follows it in the
    /// buffer.
    fn poll_read_head(
        &mut self,
        cx: &mut Context<'_>,
        raw: bool,
    ) -> Poll<Result<Head, ExchangeError>> {
        loop {
            if !self.buf.is_empty()
                && let Some(head) = parse_head(&mut self.buf, raw)?
            {
                return Poll::Ready(Ok(head));
            }
            if self.buf.len() >= MAX_HEAD {
                return Poll::Ready(Err(ExchangeError::Invalid(
                    "the response head is too large",
                )));
            }
            match ready!(self.io.poll_fill(&mut self.buf, READ_ROOM, cx)) {
                // A TLS backend closing without close_notify, before its answer is whole: as
                // a close (a pooled connection it closed is then sent on again when it may).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Poll::Ready(Err(if self.buf.is_empty() {
                        ExchangeError::Closed
                    } else {
                        ExchangeError::Invalid("the connection closed in the middle of the head")
                    }));
                }
                Ok(0) => {
                    return Poll::Ready(Err(if self.buf.is_empty() {
                        ExchangeError::Closed
                    } else {
                        ExchangeError::Invalid("the connection closed in the middle of the head")
                    }));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(ExchangeError::Read(e))),
            }
        }
    }
}

/// Where the request body stands when the answer's head arrives.
enum UploadState {
    Done,
    /// The backend stopped reading it: the connection is not reused.
    Failed,
    /// Still being written, now from the answer's body.
    Writing(Upload),
}

/// A response head as read: the parts (without the framing fields) and what those said.
struct Head {
    parts: Parts,
    framing: http1::Framing,
}

/// Parses one final response head off the front of `buf`, skipping 1xx interim answers (but
/// `101 Switching Protocols`, which ends HTTP on the connection).
/// `None`: incomplete. Header values share the head's bytes instead of copying them; with
/// `raw`, the fields are kept as sent ([`RawFields`]) unless a `Connection` names some.
fn parse_head(buf: &mut BytesMut, raw: bool) -> Result<Option<Head>, ExchangeError> {
    loop {
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut r, buf, &mut slots)
        {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ExchangeError::Invalid("more than 100 header fields"));
            }
            Err(_) => return Err(ExchangeError::Invalid("malformed response head")),
        };
        let code = r.code.unwrap_or(0);
        let version = match r.version {
            Some(1) => Version::HTTP_11,
            _ => Version::HTTP_10,
        };
        // A switch of protocols is final: what follows is the new protocol's.
        if (100..200).contains(&code) && code != 101 {
            buf.advance(len);
            continue;
        }
        let status =
            StatusCode::from_u16(code).map_err(|_| ExchangeError::Invalid("bad status code"))?;
        let bad = |e| {
            ExchangeError::Invalid(match e {
                BadField::Name => "bad header name",
                BadField::Value => "bad header value",
            })
        };
        let mut spans = FieldSpans::new();
        http1::field_spans(buf, r.headers, &mut spans);
        let head = buf.split_to(len).freeze();
        let mut parts = Response::new(()).into_parts().0;
        parts.status = status;
        parts.version = version;
        if raw && let Some((fields, framing)) = RawFields::read(&head, &spans) {
            parts.extensions.insert(fields);
            return Ok(Some(Head { parts, framing }));
        }
        // Room for what the respond path adds (request id, RateLimit, edits).
        let fields = http1::field_map(&head, &spans, 6).map_err(bad)?;
        parts.headers = fields.map;
        return Ok(Some(Head {
            parts,
            framing: fields.framing,
        }));
    }
}

/// How the answer's body is delimited, and whether that allows reusing the connection.
struct BodyFraming {
    decoder: Decoder,
    /// A Transfer-Encoding with a Content-Length, or a coding other than chunked.
    suspicious: bool,
}

impl BodyFraming {
    fn reusable(&self) -> bool {
        !self.suspicious && !self.decoder.ends_at_close()
    }
}

fn response_framing(head: &Head, method: &Method) -> Result<BodyFraming, ExchangeError> {
    let plain = |decoder| BodyFraming {
        decoder,
        suspicious: false,
    };
    let status = head.parts.status;
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(plain(Decoder::length(0)));
    }
    // A 2xx to CONNECT makes the connection a tunnel (RFC 9112 §6.3): never read as HTTP
    // again, never pooled.
    if *method == Method::CONNECT && status.is_success() {
        return Ok(plain(Decoder::until_close()));
    }
    let declared = head.framing.content_length;
    if let Some(te) = head.framing.transfer_encoding {
        return Ok(BodyFraming {
            decoder: if te.chunked {
                Decoder::chunked()
            } else {
                Decoder::until_close()
            },
            suspicious: !te.chunked || declared != Ok(None),
        });
    }
    Ok(plain(match declared.map_err(ExchangeError::Invalid)? {
        Some(n) => Decoder::length(n),
        None => Decoder::until_close(),
    }))
}

/// How a request body is delimited on the wire to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    None,
    /// Exactly this many bytes: the writer fails the exchange on any other count.
    Length(u64),
    Chunked,
}

/// The request head on the wire (a request held as its parts, some of its fields perhaps kept
/// as sent: [`RawFields`]), with framing derived from the
/// body itself: whatever Content-Length or Transfer-Encoding the head carries (a client's, or
/// set by a header edit) is never sent, so what the backend reads as the body is always what
/// is written.
pub fn encode_parts(parts: &http::request::Parts, body: &UpstreamBody) -> (Bytes, RequestFraming) {
    let http::request::Parts {
        method,
        uri,
        headers,
        ..
    } = parts;
    let framing = if body.is_end_stream() {
        RequestFraming::None
    } else {
        match body.size_hint().exact() {
            Some(n) => RequestFraming::Length(n),
            None => RequestFraming::Chunked,
        }
    };
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    // The client's fields as it sent them (their framing and hop-by-hop fields left out when
    // they were read), then the map's.
    if let Some(raw) = parts.extensions.get::<RawFields>() {
        // The proxy's own fields join them; the map holds at most the Host of a request
        // that named none.
        debug_assert!(headers.keys().all(|k| k == http::header::HOST));
        debug_assert!(headers.is_empty() || !raw.contains(&http::header::HOST));
        raw.write(&mut out);
    }
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    match framing {
        RequestFraming::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
        RequestFraming::Length(n) => {
            out.put_slice(format!("content-length: {n}\r\n").as_bytes());
        }
        // A method whose request usually has a body says it has none.
        RequestFraming::None
            if !matches!(
                *method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::DELETE
                    | Method::TRACE
                    | Method::CONNECT
            ) =>
        {
            out.put_slice(b"content-length: 0\r\n");
        }
        RequestFraming::None => {}
    }
    out.put_slice(b"\r\n");
    (out.freeze(), framing)
}

#[cfg(test)]
mod tests {
    use http::Request;
    use http_body::Frame;

    use super::*;

    fn encode_head(req: Request<UpstreamBody>) -> (Bytes, RequestFraming) {
        let (parts, body) = req.into_parts();
        encode_parts(&parts, &body)
    }

    fn parts(head: &str) -> Result<Option<Head>, ExchangeError> {
        parse_head(&mut BytesMut::from(head), false)
    }

    #[test]
    fn heads_parse_past_interim_answers_and_keep_what_follows() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nhi",
        );
        let p = parse_head(&mut buf, false).unwrap().unwrap().parts;
        assert_eq!(p.status, 200);
        assert_eq!(p.headers["x-a"], "1");
        assert_eq!(&buf[..], b"hi");
        assert!(parts("HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
        // A switch is final, and what follows it is the new protocol's.
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\n\x81\x00"[..]);
        let p = parse_head(&mut buf, false).unwrap().unwrap().parts;
        assert_eq!(p.status, 101);
        assert_eq!(&buf[..], b"\x81\x00");
        assert!(parts("HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(parts("NOT HTTP\r\n\r\n").is_err());
    }

    /// Relayed as sent or parsed into a map, a head is refused alike when its fields are folded
    /// or spaced from their colon: nothing httparse lets through could split the client's
    /// answer when relayed verbatim.
    #[test]
    fn heads_that_no_map_would_take_are_not_relayed_either() {
        for bad in [
            "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A : a\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX\u{1}A: a\r\n\r\n",
        ] {
            for raw in [false, true] {
                assert!(
                    parse_head(&mut BytesMut::from(bad), raw).is_err(),
                    "{bad:?} (raw: {raw})"
                );
            }
        }
        let relayed = parse_head(
            &mut BytesMut::from("HTTP/1.1 200 OK\r\nX-A:a\r\n\r\n"),
            true,
        )
        .unwrap()
        .unwrap();
        assert!(relayed.parts.headers.is_empty());
        assert!(relayed.parts.extensions.get::<RawFields>().is_some());
    }

    fn framing_of(head: &str, method: Method) -> Result<BodyFraming, ExchangeError> {
        response_framing(&parts(head).unwrap().unwrap(), &method)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::GET).unwrap();
        assert!(f.decoder == Decoder::length(5) && f.reusable());
        let f = framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::HEAD).unwrap();
        assert!(f.decoder.is_end());
        let f = framing_of(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            Method::GET,
        )
        .unwrap();
        assert!(f.decoder.is_end());
        let f = framing_of(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap();
        assert!(f.decoder == Decoder::chunked() && f.reusable());
        // Transfer-Encoding wins over Content-Length, and the connection is not reused.
        let f = framing_of(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            Method::GET,
        )
        .unwrap();
        assert!(f.decoder == Decoder::chunked() && !f.reusable());
        let f = framing_of(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            Method::GET,
        )
        .unwrap();
        assert!(f.decoder.ends_at_close() && !f.reusable());
        let f = framing_of("HTTP/1.1 200 OK\r\n\r\n", Method::GET).unwrap();
        assert!(f.decoder.ends_at_close());
        let f = framing_of(
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
            Method::GET,
        )
        .unwrap();
        assert!(f.decoder == Decoder::length(4));
        for bad in ["4, 5", "+4", "0x4", "", "4 4", "99999999999999999999"] {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert!(framing_of(&head, Method::GET).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn heads_are_encoded_in_origin_form_with_chunked_only_for_unknown_lengths() {
        let req = Request::builder()
            .method("GET")
            .uri("/a?b=1")
            .header("host", "backend")
            .body(UpstreamBody::Empty)
            .unwrap();
        let (head, framing) = encode_head(req);
        assert_eq!(&head[..], b"GET /a?b=1 HTTP/1.1\r\nhost: backend\r\n\r\n");
        assert_eq!(framing, RequestFraming::None);
        // A Content-Length in the head (a header edit, say) is never what frames the body.
        let req = Request::builder()
            .method("POST")
            .uri("/a")
            .header("content-length", "0")
            .header("transfer-encoding", "chunked")
            .body(UpstreamBody::from_body(http_body_util::Full::new(
                Bytes::from("abc"),
            )))
            .unwrap();
        let (head, framing) = encode_head(req);
        assert_eq!(&head[..], b"POST /a HTTP/1.1\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(framing, RequestFraming::Length(3));
        let req = Request::builder()
            .method("POST")
            .uri("/a")
            .header("content-length", "10")
            .body(UpstreamBody::Empty)
            .unwrap();
        let (head, _) = encode_head(req);
        assert_eq!(&head[..], b"POST /a HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        let body = http_body_util::StreamBody::new(futures::stream::iter([Ok::<_, BoxError>(
            Frame::data(Bytes::from("x")),
        )]));
        let req = Request::builder()
            .method("POST")
            .uri("/up")
            .body(UpstreamBody::from_body(body))
            .unwrap();
        let (head, framing) = encode_head(req);
        assert_eq!(framing, RequestFraming::Chunked);
        assert!(head.ends_with(b"transfer-encoding: chunked\r\n\r\n"));
    }

    #[test]
    fn fields_kept_as_sent_are_written_before_the_proxys() {
        // An HTTP/1.0 client that named no host: the backend's authority is in the map.
        let mut req = Request::builder()
            .method("POST")
            .uri("/a")
            .header("host", "backend:80")
            .body(UpstreamBody::from_body(http_body_util::Full::new(
                Bytes::from("abc"),
            )))
            .unwrap();
        let (mut raw, _) = crate::http1::raw_fields::tests::read(
            "Content-Length: 3\r\nUser-Agent: curl\r\nConnection: keep-alive\r\nAccept: */*\r\n",
        )
        .unwrap();
        raw.add(
            http::HeaderName::from_static("x-forwarded-for"),
            http::HeaderValue::from_static("192.0.2.1"),
        );
        req.extensions_mut().insert(raw);
        let (head, framing) = encode_head(req);
        assert_eq!(
            &head[..],
            b"POST /a HTTP/1.1\r\nUser-Agent: curl\r\nAccept: */*\r\nx-forwarded-for: 192.0.2.1\r\n\
              host: backend:80\r\ncontent-length: 3\r\n\r\n"
        );
        assert_eq!(framing, RequestFraming::Length(3));
    }
}
