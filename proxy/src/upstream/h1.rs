//! HTTP/1.1 to backends, inline: the request's own task writes the request and reads the
//! answer on the connection, with no connection task, channel or wake-up in between (hyper's
//! client connections spend all three per request; see docs/benchmarks.md).
//!
//! What is sent: the request line in origin form, the head's headers as given (the request
//! transforms already removed hop-by-hop headers and set Host), and the body framed by the
//! client's Content-Length, or chunked when it had none. What is accepted (RFC 9112): 1xx
//! interim answers are skipped; the body is framed by Transfer-Encoding chunked, else by one
//! Content-Length (repeated values must agree), else until the backend closes; HEAD requests
//! and 204/304 answers have none. A connection is reused only when its exchange ended cleanly:
//! the request body sent in full, the answer read to its end with nothing after it, neither
//! side asking to close, HTTP/1.1, and no Transfer-Encoding other than chunked.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::response::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::UpstreamBody;
use super::pool::EndpointPool;
use crate::body::BoxError;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// Room made in the read buffer before each read.
const READ_ROOM: usize = 16 * 1024;
/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// One connection to a backend endpoint.
pub struct Connection {
    io: TcpStream,
    /// Read but not yet used: the rest of a head, or body bytes that came with it.
    buf: BytesMut,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("writing the request failed: {0}")]
    Write(io::Error),
    #[error("the connection closed before a response")]
    Closed,
    #[error("reading the response failed: {0}")]
    Read(io::Error),
    #[error("the response is not valid HTTP/1.1: {0}")]
    Invalid(&'static str),
    #[error("the client's request body failed: {0}")]
    RequestBody(BoxError),
}

impl ExchangeError {
    /// Nothing of an answer arrived: the backend may have closed an idle connection just
    /// as the request was written, and never seen it.
    pub fn before_any_answer(&self) -> bool {
        matches!(self, ExchangeError::Write(_) | ExchangeError::Closed)
    }
}

impl Connection {
    pub fn new(io: TcpStream) -> Self {
        Connection {
            io,
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle connection can take a request: nothing arrived on it while idle (an
    /// idle HTTP/1.1 connection has nothing to say; EOF means the backend closed it). Reads
    /// the socket only when the reactor saw it readable.
    pub fn reusable_now(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => matches!(
                self.io.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Writes `head` (and the body) and reads the answer's head. On success the connection
    /// travels inside the answer's body, back to `pool` when the body ends cleanly.
    pub async fn exchange(
        mut self: Box<Self>,
        head: &[u8],
        body: UpstreamBody,
        chunked: bool,
        method: &Method,
        pool: &Arc<EndpointPool>,
    ) -> Result<Response<ResponseBody>, ExchangeError> {
        let (parts, sent_all) = match body {
            UpstreamBody::Empty => {
                self.io
                    .write_all(head)
                    .await
                    .map_err(ExchangeError::Write)?;
                (self.read_head().await?, true)
            }
            streaming => self.send_streaming(head, streaming, chunked).await?,
        };
        let framing = framing(&parts, method)?;
        let reusable = sent_all
            && parts.version == Version::HTTP_11
            && !wants_close(&parts.headers)
            && framing.reusable();
        let mut body = ResponseBody {
            conn: Some(self),
            framing: framing.state,
            reusable,
            pool: pool.clone(),
        };
        body.release_if_done();
        Ok(Response::from_parts(parts, body))
    }

    /// A request with a body: the body is written while the answer's head is awaited, since a
    /// backend may answer (413, 401...) before reading all of it. Returns whether the body was
    /// sent in full.
    async fn send_streaming(
        &mut self,
        head: &[u8],
        mut body: UpstreamBody,
        chunked: bool,
    ) -> Result<(Parts, bool), ExchangeError> {
        let Connection { io, buf } = self;
        let (mut rd, mut wr) = io.split();
        wr.write_all(head).await.map_err(ExchangeError::Write)?;
        let write = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(ExchangeError::RequestBody)?;
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not forwarded to HTTP/1.1 backends
                };
                if data.is_empty() {
                    continue;
                }
                if chunked {
                    let size = format!("{:x}\r\n", data.len());
                    wr.write_all(size.as_bytes())
                        .await
                        .map_err(ExchangeError::Write)?;
                    wr.write_all(&data).await.map_err(ExchangeError::Write)?;
                    wr.write_all(b"\r\n").await.map_err(ExchangeError::Write)?;
                } else {
                    wr.write_all(&data).await.map_err(ExchangeError::Write)?;
                }
            }
            if chunked {
                wr.write_all(b"0\r\n\r\n")
                    .await
                    .map_err(ExchangeError::Write)?;
            }
            Ok::<_, ExchangeError>(())
        };
        let read = read_head(&mut rd, buf);
        tokio::pin!(write, read);
        let mut written: Option<Result<(), ExchangeError>> = None;
        loop {
            tokio::select! {
                done = &mut write, if written.is_none() => {
                    if let Err(ExchangeError::RequestBody(e)) = done {
                        // The client's fault, not the backend's: give up on this exchange.
                        return Err(ExchangeError::RequestBody(e));
                    }
                    written = Some(done);
                }
                answered = &mut read => {
                    return match (answered, written) {
                        (Ok(parts), w) => Ok((parts, matches!(w, Some(Ok(()))))),
                        // The backend stopped reading and closed: say why the write failed.
                        (Err(_), Some(Err(w))) => Err(w),
                        (Err(r), _) => Err(r),
                    };
                }
            }
        }
    }

    async fn read_head(&mut self) -> Result<Parts, ExchangeError> {
        let Connection { io, buf } = self;
        read_head(io, buf).await
    }
}

/// Reads until a final (non-1xx) response head is complete; leaves what follows it in `buf`.
async fn read_head<R>(io: &mut R, buf: &mut BytesMut) -> Result<Parts, ExchangeError>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    loop {
        if !buf.is_empty()
            && let Some(parts) = parse_head(buf)?
        {
            return Ok(parts);
        }
        if buf.len() >= MAX_HEAD {
            return Err(ExchangeError::Invalid("the response head is too large"));
        }
        buf.reserve(READ_ROOM);
        let n = io.read_buf(buf).await.map_err(ExchangeError::Read)?;
        if n == 0 {
            return Err(if buf.is_empty() {
                ExchangeError::Closed
            } else {
                ExchangeError::Invalid("the connection closed in the middle of the head")
            });
        }
    }
}

/// Parses one final response head off the front of `buf`, skipping 1xx interim answers.
/// `None`: incomplete. Header values share the head's bytes instead of copying them.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Parts>, ExchangeError> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut slots);
        let len = match r.parse(buf) {
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
        if (100..200).contains(&code) {
            if code == 101 {
                return Err(ExchangeError::Invalid(
                    "protocol upgrades are not supported",
                ));
            }
            buf.advance(len);
            continue;
        }
        let status =
            StatusCode::from_u16(code).map_err(|_| ExchangeError::Invalid("bad status code"))?;
        let base = buf.as_ptr() as usize;
        let spans: Vec<(HeaderName, usize, usize)> = r
            .headers
            .iter()
            .map(|h| {
                let name = HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| ExchangeError::Invalid("bad header name"))?;
                let start = h.value.as_ptr() as usize - base;
                Ok((name, start, start + h.value.len()))
            })
            .collect::<Result<_, ExchangeError>>()?;
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(spans.len());
        for (name, start, end) in spans {
            let value = HeaderValue::from_maybe_shared(head.slice(start..end))
                .map_err(|_| ExchangeError::Invalid("bad header value"))?;
            headers.append(name, value);
        }
        let mut parts = Response::new(()).into_parts().0;
        parts.status = status;
        parts.version = version;
        parts.headers = headers;
        return Ok(Some(parts));
    }
}

fn wants_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"close"))
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// How the answer's body is delimited, and whether that allows reusing the connection.
struct BodyFraming {
    state: Framing,
    /// A Transfer-Encoding with a Content-Length, or a coding other than chunked.
    suspicious: bool,
}

impl BodyFraming {
    fn reusable(&self) -> bool {
        !self.suspicious && !matches!(self.state, Framing::UntilClose)
    }
}

fn framing(parts: &Parts, method: &Method) -> Result<BodyFraming, ExchangeError> {
    let plain = |state| BodyFraming {
        state,
        suspicious: false,
    };
    if *method == Method::HEAD
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
    {
        return Ok(plain(Framing::Length(0)));
    }
    let h = &parts.headers;
    if h.contains_key(TRANSFER_ENCODING) {
        let last = h
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .rfind(|t| !t.is_empty());
        let chunked = last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        return Ok(BodyFraming {
            state: if chunked {
                Framing::Chunked(Chunked::Size)
            } else {
                Framing::UntilClose
            },
            suspicious: !chunked || h.contains_key(CONTENT_LENGTH),
        });
    }
    let mut length = None;
    for v in h.get_all(CONTENT_LENGTH) {
        for part in v.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 18 {
                return Err(ExchangeError::Invalid("bad Content-Length"));
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(ExchangeError::Invalid("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ExchangeError::Invalid("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(plain(match length {
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    }))
}

enum Framing {
    /// Bytes still to come.
    Length(u64),
    Chunked(Chunked),
    /// Until the backend closes the connection.
    UntilClose,
    Done,
}

enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Bytes of the current chunk still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
}

/// A backend's answer body, read from its connection as the client takes it. The connection
/// goes back to its pool when the body ended cleanly; dropped earlier, it is closed.
pub struct ResponseBody {
    conn: Option<Box<Connection>>,
    framing: Framing,
    reusable: bool,
    pool: Arc<EndpointPool>,
}

impl ResponseBody {
    fn release_if_done(&mut self) {
        if matches!(self.framing, Framing::Length(0)) {
            self.framing = Framing::Done;
        }
        if matches!(self.framing, Framing::Done)
            && let Some(conn) = self.conn.take()
            && self.reusable
            && conn.buf.is_empty()
        {
            self.pool.put_back(conn);
        }
    }

    /// Reads more from the connection into its buffer; `Ok(0)` at EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let conn = self
            .conn
            .as_mut()
            .expect("a body being read has its connection");
        loop {
            ready!(conn.io.poll_read_ready(cx))?;
            conn.buf.reserve(READ_ROOM);
            match conn.io.try_read_buf(&mut conn.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn buffered(&mut self) -> &mut BytesMut {
        &mut self
            .conn
            .as_mut()
            .expect("a body being read has its connection")
            .buf
    }

    /// Decodes what the buffer holds of a chunked body: `Some(data)`, or `None` when more
    /// bytes are needed (or the body is done: see `self.framing`).
    fn decode_chunked(&mut self) -> Result<Option<Bytes>, BoxError> {
        loop {
            let Framing::Chunked(state) = &mut self.framing else {
                return Ok(None);
            };
            let buf = &mut self
                .conn
                .as_mut()
                .expect("a body being read has its connection")
                .buf;
            match state {
                Chunked::Size => {
                    let Some(end) = find_crlf(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err("a chunk-size line is too long".into());
                        }
                        return Ok(None);
                    };
                    let line = &buf[..end];
                    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                    let digits = digits.trim_ascii();
                    if digits.is_empty()
                        || digits.len() > 15
                        || !digits.iter().all(u8::is_ascii_hexdigit)
                    {
                        return Err("a chunk size is not valid hex".into());
                    }
                    let size = u64::from_str_radix(std::str::from_utf8(digits)?, 16)?;
                    buf.advance(end + 2);
                    *state = if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(rest) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (*rest).min(buf.len() as u64) as usize;
                    let data = buf.split_to(n).freeze();
                    *rest -= n as u64;
                    if *rest == 0 {
                        *state = Chunked::DataEnd;
                    }
                    return Ok(Some(data));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk data is not followed by CRLF".into());
                    }
                    buf.advance(2);
                    *state = Chunked::Size;
                }
                Chunked::Trailers => {
                    let Some(end) = find_crlf(buf) else {
                        if buf.len() > MAX_HEAD {
                            return Err("the trailers are too large".into());
                        }
                        return Ok(None);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                }
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match &mut this.framing {
                Framing::Done => {
                    this.release_if_done();
                    return Poll::Ready(None);
                }
                Framing::Length(0) => {
                    this.release_if_done();
                    return Poll::Ready(None);
                }
                Framing::Length(rest) => {
                    let rest = *rest;
                    let buf = this.buffered();
                    if !buf.is_empty() {
                        let n = rest.min(buf.len() as u64) as usize;
                        let data = buf.split_to(n).freeze();
                        this.framing = Framing::Length(rest - n as u64);
                        this.release_if_done();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::UntilClose => {
                    let buf = this.buffered();
                    if !buf.is_empty() {
                        let data = buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(_) => match this.decode_chunked() {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(None) if matches!(this.framing, Framing::Done) => continue,
                    Ok(None) => {}
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
            }
            // The buffer holds nothing usable: read.
            match ready!(this.poll_fill(cx)) {
                Ok(0) if matches!(this.framing, Framing::UntilClose) => {
                    this.conn = None;
                    this.framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    this.framing = Framing::Done;
                    return Poll::Ready(Some(Err(
                        "the backend closed the connection before the body ended".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    this.framing = Framing::Done;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// The request head on the wire, and whether its body must be sent chunked (a body of
/// unknown length: the client's was chunked, or came over HTTP/2 without Content-Length).
pub fn encode_head(req: &Request<UpstreamBody>) -> (Bytes, bool) {
    let chunked = !req.body().is_end_stream() && !req.headers().contains_key(CONTENT_LENGTH);
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(req.method().as_str().as_bytes());
    out.put_u8(b' ');
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    if chunked {
        out.put_slice(b"transfer-encoding: chunked\r\n");
    }
    out.put_slice(b"\r\n");
    (out.freeze(), chunked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(head: &str) -> Result<Option<Parts>, ExchangeError> {
        parse_head(&mut BytesMut::from(head))
    }

    #[test]
    fn heads_parse_past_interim_answers_and_keep_what_follows() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nhi",
        );
        let p = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(p.status, 200);
        assert_eq!(p.headers["x-a"], "1");
        assert_eq!(&buf[..], b"hi");
        assert!(parts("HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
        assert!(parts("HTTP/1.1 101 Switching\r\n\r\n").is_err());
        assert!(parts("HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(parts("NOT HTTP\r\n\r\n").is_err());
    }

    fn framing_of(head: &str, method: Method) -> Result<BodyFraming, ExchangeError> {
        framing(&parts(head).unwrap().unwrap(), &method)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::GET).unwrap();
        assert!(matches!(f.state, Framing::Length(5)) && f.reusable());
        let f = framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::HEAD).unwrap();
        assert!(matches!(f.state, Framing::Length(0)));
        let f = framing_of(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            Method::GET,
        )
        .unwrap();
        assert!(matches!(f.state, Framing::Length(0)));
        let f = framing_of(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap();
        assert!(matches!(f.state, Framing::Chunked(_)) && f.reusable());
        // Transfer-Encoding wins over Content-Length, and the connection is not reused.
        let f = framing_of(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            Method::GET,
        )
        .unwrap();
        assert!(matches!(f.state, Framing::Chunked(_)) && !f.reusable());
        let f = framing_of(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            Method::GET,
        )
        .unwrap();
        assert!(matches!(f.state, Framing::UntilClose) && !f.reusable());
        let f = framing_of("HTTP/1.1 200 OK\r\n\r\n", Method::GET).unwrap();
        assert!(matches!(f.state, Framing::UntilClose));
        let f = framing_of(
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
            Method::GET,
        )
        .unwrap();
        assert!(matches!(f.state, Framing::Length(4)));
        for bad in ["4, 5", "+4", "0x4", "", "4 4", "99999999999999999999"] {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert!(framing_of(&head, Method::GET).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn connection_close_is_a_token_of_the_connection_header() {
        let p = parts("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(wants_close(&p.headers));
        let p = parts("HTTP/1.1 200 OK\r\nConnection: closed\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!wants_close(&p.headers));
    }

    #[test]
    fn heads_are_encoded_in_origin_form_with_chunked_only_for_unknown_lengths() {
        let req = Request::builder()
            .method("GET")
            .uri("/a?b=1")
            .header("host", "backend")
            .body(UpstreamBody::Empty)
            .unwrap();
        let (head, chunked) = encode_head(&req);
        assert_eq!(&head[..], b"GET /a?b=1 HTTP/1.1\r\nhost: backend\r\n\r\n");
        assert!(!chunked);
        let body = http_body_util::StreamBody::new(futures::stream::iter([Ok::<_, BoxError>(
            Frame::data(Bytes::from("x")),
        )]));
        let req = Request::builder()
            .method("POST")
            .uri("/up")
            .body(UpstreamBody::from_body(body))
            .unwrap();
        let (head, chunked) = encode_head(&req);
        assert!(chunked);
        assert!(head.ends_with(b"transfer-encoding: chunked\r\n\r\n"));
    }
}
