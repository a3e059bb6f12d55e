//! HTTP/1.1 client connections: read a request head, hand the request to the runtime current
//! at that moment, write its answer, and again while the connection is kept alive.
//!
//! What is accepted (RFC 9112): a request head of at most `max_header_bytes` and `max_headers`
//! fields (else 431), well-formed (else 400: a space before a colon, obs-fold, a bad method,
//! target, version, name or value); a body framed by Transfer-Encoding whose only coding is
//! chunked, or by one Content-Length (repeated values must agree); both together, another
//! coding, or a bad length are refused with 400 and the connection closes, so nothing after
//! them can be read as a second request.
//!
//! Resources: a connection holds no buffer while idle between requests, and none of a
//! request's state: what a request holds in flight lives in one allocation per exchange, so an
//! idle connection's task is only what waiting for a head needs. The first request head must be
//! complete within the header read timeout of the accept, later ones within it of their first
//! byte, and an idle keep-alive connection closes after the idle timeout. Answers are framed by
//! their Content-Length, else their known size, else chunked (HTTP/1.0 clients: until close).
//! `Expect: 100-continue` is answered when the request path first reads the body, so a request
//! refused without it never invites the upload.
//! While the proxy drains, each answer says `Connection: close`, and a connection idle between
//! requests is left open rather than closed under a client that may be sending: its next
//! request is answered (with `Connection: close`), or the drain timeout ends it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use futures::FutureExt;
use futures::future::Either;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRANSFER_ENCODING};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::request_body::{ReadSide, RequestBody};
use super::transport::{ClientRead, ClientWrite};
use crate::body::ProxyBody;
use crate::client_body::IdleTimeout;
use crate::exchange::Client;
use crate::forwarding::new_request_id;
use crate::http1::raw_fields::{FieldsView, RawFields};
use crate::http1::{self, BadField, FieldSpans, decode::Decoder};
use crate::metrics::Metrics;
use crate::problem::{Problem, ProblemKind};
use crate::runtime::RuntimeHandle;

/// The limits of the HTTP/1.1 server.
#[derive(Clone)]
pub struct Settings {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub body_read_timeout: Duration,
    pub send_timeout: Duration,
    /// Where the bounds that let a connection go are counted.
    pub metrics: Arc<Metrics>,
    /// While overloaded, answers end their connection ([`crate::overload`]).
    pub overload: Arc<crate::overload::Overload>,
    /// The port's settings from its Gateway (HTTPS redirect, HSTS).
    pub port: Arc<crate::exchange::LivePortSettings>,
    /// The port served (see [`Client::local_port`]).
    pub local_port: u16,
    /// Bounds of connections relayed after a switch to WebSocket.
    pub tunnel: crate::tunnel::Limits,
}

/// Bytes read at a time while waiting for a head.
const HEAD_ROOM: usize = 4096;
/// Most header fields a request head may have (`max_headers` can only lower it).
pub const MAX_HEADERS: usize = 100;
/// Frames at most this large are copied behind the head and sent with it in one write.
const COALESCE: usize = 16 * 1024;

/// Why a connection stops reading requests.
enum Stop {
    /// The client closed or went silent past a timeout: close quietly.
    Quiet,
    /// A malformed or oversized head: answer this, then close.
    Refuse(Problem),
}

/// A request head, read and checked.
struct Head {
    request: http::request::Parts,
    decoder: Decoder,
    keep_alive: bool,
    expect_continue: bool,
    /// It asks to switch to WebSocket ([`crate::tunnel::Asked`] is among its extensions).
    upgrade: bool,
}

/// Serves one connection until it closes: `rd` and `wr` are its halves (a socket's, or a TLS
/// stream's). `buf` holds what detection already read; the first request's head is due by
/// `first_deadline` (the header timeout from the accept).
#[allow(clippy::too_many_arguments)]
pub async fn serve<R: ClientRead, W: ClientWrite>(
    rd: R,
    mut wr: W,
    buf: BytesMut,
    peer: SocketAddr,
    runtime: RuntimeHandle,
    settings: &Settings,
    draining: watch::Receiver<bool>,
    first_deadline: Instant,
) {
    // The read side is lent to a request's body while the request is in flight.
    let mut side = Some(ReadSide { io: rd, buf });
    let mut first = Some(first_deadline);
    while let Some(reader) = side.as_mut() {
        let head = match read_head(reader, settings, first).await {
            Ok(head) => head,
            Err(Stop::Quiet) => return,
            Err(Stop::Refuse(problem)) => {
                let written = Box::pin(write_response(
                    &mut wr,
                    refusal(problem, settings),
                    false,
                    Version::HTTP_11,
                    true,
                    settings,
                ))
                .await;
                if written.is_ok() {
                    close_and_linger(&mut wr, &mut side, settings).await;
                }
                return;
            }
        };
        first = None;
        // Boxed: what a request holds while in flight (its head, the request path's future,
        // the answer being written) lives only as long as the exchange, so an idle
        // connection's task is only what waiting for the next head needs.
        let next = Box::pin(exchange(
            head, &mut side, &mut wr, peer, &runtime, settings, &draining,
        ))
        .await;
        match next {
            AfterExchange::ReadAnother => {}
            AfterExchange::Close => return,
            AfterExchange::Relay(mut backend) => {
                if let Some(side) = side.take() {
                    let mut client = crate::tunnel::ClientEnd { side, wr };
                    // Boxed: only relayed connections carry its state.
                    let ended = Box::pin(crate::tunnel::relay(
                        &mut client,
                        &mut *backend,
                        settings.tunnel,
                        &settings.metrics,
                    ))
                    .await;
                    tracing::debug!(%peer, ended = ended.label(), "a relayed connection ended");
                }
                return;
            }
            // After the exchange's state is gone: it may be large, and lingering takes seconds.
            AfterExchange::CloseAndLinger => {
                return close_and_linger(&mut wr, &mut side, settings).await;
            }
        }
        // Nothing kept while idle: the buffer goes unless a pipelined request is in it.
        if let Some(reader) = side.as_mut()
            && reader.buf.is_empty()
        {
            reader.buf = BytesMut::new();
        }
    }
}

/// Whether the connection goes on to read another request after an exchange.
enum AfterExchange {
    ReadAnother,
    /// The client cannot be written to: close now.
    Close,
    /// The answer was written and the connection ends: close it gracefully.
    CloseAndLinger,
    /// A `101` was written: the connection is relayed to the backend's ([`crate::tunnel`]).
    Relay(Box<crate::upstream::h1::Connection>),
}

/// One exchange on the connection: the request whose head was read goes through the request
/// path of the runtime current now, and its answer is written. The read side is lent to the
/// request's body and is back in `side` when the connection can read another request.
fn exchange<R: ClientRead, W: ClientWrite>(
    head: Head,
    side: &mut Option<ReadSide<R>>,
    wr: &mut W,
    peer: SocketAddr,
    runtime: &RuntimeHandle,
    settings: &Settings,
    draining: &watch::Receiver<bool>,
) -> impl Future<Output = AfterExchange> {
    async move {
        let client = Client {
            addr: peer,
            tls: R::TLS,
            certificate: side.as_ref().and_then(|s| s.io.certificate()),
            port: settings.port.load_full(),
            local_port: settings.local_port,
            relays_raw_fields: true,
        };
        let head_request = head.request.method == Method::HEAD;
        let asked = head.upgrade;
        let version = head.request.version;
        let mut continue_asked = None;
        let (body, returned) = match side.take() {
            Some(reader) if !head.decoder.is_end() => {
                let wants_continue = head.expect_continue.then(|| {
                    let (tx, rx) = oneshot::channel();
                    continue_asked = Some(rx);
                    tx
                });
                let (body, rx) = RequestBody::streaming(reader, head.decoder, wants_continue);
                (body, Some(rx))
            }
            reader => {
                *side = reader;
                (RequestBody::empty(), None)
            }
        };
        // A body that stops arriving is a 408 (and, not read to its end, closes the connection).
        let body = IdleTimeout::new(body, settings.body_read_timeout);
        let req = Request::from_parts(head.request, body);
        let handling = runtime.load().handle(req, client);
        let answer = match continue_asked {
            None => handling.await,
            // Boxed: only requests that expect 100-continue carry this state.
            Some(asked) => {
                match Box::pin(answer_with_continue(handling, asked, wr, settings)).await {
                    Some(answer) => answer,
                    None => return AfterExchange::Close,
                }
            }
        };
        // The request path is usually done with the request: its body (if any) is back, read
        // to its end or not. A body left unread means the next request cannot be found: close.
        // A body still being uploaded (the backend answered while it reads) comes back once
        // the answer is written.
        let mut reusable =
            head.keep_alive && !*draining.borrow() && !settings.overload.overloaded();
        let mut still_uploading = None;
        if let Some(mut rx) = returned {
            match rx.try_recv() {
                Ok(back) => {
                    reusable &= back.complete;
                    *side = Some(back.side);
                }
                Err(oneshot::error::TryRecvError::Empty) => still_uploading = Some(rx),
                Err(oneshot::error::TryRecvError::Closed) => reusable = false,
            }
        }
        let mut answer = answer;
        if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Only the forward action of a request that asked answers so, with the backend's
            // connection; the read side is here (the ask had no body).
            let backend = answer
                .extensions_mut()
                .remove::<crate::tunnel::Switched>()
                .and_then(|s| s.take())
                .filter(|_| asked && side.is_some());
            let Some(backend) = backend else {
                return AfterExchange::Close;
            };
            return match write_response(wr, answer, false, version, false, settings).await {
                Ok(_) => AfterExchange::Relay(backend),
                Err(_) => AfterExchange::Close,
            };
        }
        let written = write_response(wr, answer, head_request, version, !reusable, settings).await;
        let mut closing = match written {
            Ok(closing) => closing,
            Err(_) => return AfterExchange::Close,
        };
        if let Some(mut rx) = still_uploading {
            // The answer, and the upload inside it, are gone by now.
            match rx.try_recv() {
                Ok(back) => {
                    closing |= !back.complete;
                    *side = Some(back.side);
                }
                Err(_) => closing = true,
            }
        }
        if closing {
            AfterExchange::CloseAndLinger
        } else {
            AfterExchange::ReadAnother
        }
    }
}

/// The answer to a request that expects `100 Continue`: sent once the request path reads the
/// body, not before, so a request refused without its body (401, 413) does not invite the
/// upload. `None` when the client cannot be written to.
async fn answer_with_continue<
    F: std::future::Future<Output = Response<ProxyBody>>,
    W: ClientWrite,
>(
    handling: F,
    mut asked: oneshot::Receiver<()>,
    wr: &mut W,
    settings: &Settings,
) -> Option<Response<ProxyBody>> {
    tokio::pin!(handling);
    tokio::select! {
        biased;
        answer = &mut handling => Some(answer),
        read = &mut asked => {
            if read.is_ok() {
                send(wr, b"HTTP/1.1 100 Continue\r\n\r\n", settings).await.ok()?;
            }
            Some(handling.await)
        }
    }
}

/// Reads and checks the next request head.
async fn read_head<R: ClientRead>(
    side: &mut ReadSide<R>,
    settings: &Settings,
    first: Option<Instant>,
) -> Result<Head, Stop> {
    // The first request's head is due by `first` (the header timeout from the accept); later
    // ones within the idle timeout to start and the header timeout from their first byte.
    // A head already begun (pipelined behind the last request) is due like a first one.
    let mut started = first.is_some() || !side.buf.is_empty();
    let mut deadline = match first {
        Some(deadline) => deadline,
        None if started => Instant::now() + settings.header_read_timeout,
        None => Instant::now() + settings.idle_timeout,
    };
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    loop {
        if !side.buf.is_empty() {
            if let Some(head) = parse_head(&mut side.buf, settings)? {
                return Ok(head);
            }
            if side.buf.len() >= settings.max_header_bytes {
                return Err(Stop::Refuse(too_large()));
            }
            // A head begun and not complete: the rest is due within the header timeout. (A
            // head that came whole, the usual case, never moves the timer.)
            if !started {
                started = true;
                deadline = Instant::now() + settings.header_read_timeout;
                timer.as_mut().reset(deadline);
            }
        }
        // Room is made only once there is something to read: a connection waiting for its
        // next request holds no buffer.
        let read = tokio::select! {
            r = side.io.wait() => r,
            () = &mut timer => {
                if started {
                    settings.metrics.connection_limit("header-read-timeout");
                }
                return Err(Stop::Quiet);
            }
        };
        if read.is_err() {
            return Err(Stop::Quiet);
        }
        match side.io.try_fill(&mut side.buf, HEAD_ROOM) {
            Ok(Some(0)) | Err(_) => return Err(Stop::Quiet),
            Ok(_) => {}
        }
    }
}

/// The answer to a request head refused before the request path: the problem, with the
/// port's HSTS (which every answer of the port carries).
fn refusal(problem: Problem, settings: &Settings) -> Response<ProxyBody> {
    let mut resp = problem.into_response(new_request_id().to_str().unwrap_or_default());
    if let Some(hsts) = settings.port.load().as_ref().and_then(|p| p.hsts.clone()) {
        resp.headers_mut()
            .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    resp
}

fn too_large() -> Problem {
    Problem::new(
        ProblemKind::HeadersTooLarge,
        "the request head is larger than this gateway accepts",
    )
}

fn bad(why: &'static str) -> Stop {
    Stop::Refuse(Problem::new(ProblemKind::BadRequest, why))
}

/// Parses a complete head off the front of `buf`; `Ok(None)` when more is needed.
fn parse_head(buf: &mut BytesMut, settings: &Settings) -> Result<Option<Head>, Stop> {
    // Empty lines before a request are allowed (RFC 9112 §2.2).
    while buf.starts_with(b"\r\n") {
        let _ = buf.split_to(2);
    }
    if buf.is_empty() {
        return Ok(None);
    }
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let limit = settings.max_headers.min(MAX_HEADERS);
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots[..limit]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Stop::Refuse(too_large())),
        Err(_) => return Err(bad("the request head is malformed")),
    };
    if len > settings.max_header_bytes {
        return Err(Stop::Refuse(too_large()));
    }
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| bad("the request method is not valid"))?;
    let version = match req.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Err(bad("the HTTP version is not supported")),
    };
    let base = buf.as_ptr() as usize;
    let path = req.path.unwrap_or_default();
    let path_span = (path.as_ptr() as usize - base, path.len());
    let bad_field = |e| match e {
        BadField::Name => bad("a header name is not valid"),
        BadField::Value => bad("a header value is not valid"),
    };
    let mut spans = FieldSpans::new();
    http1::field_spans(buf, req.headers, &mut spans);
    let bytes = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(bytes.slice(path_span.0..path_span.0 + path_span.1))
        .map_err(|_| bad("the request target is not valid"))?;
    let mut request = Request::new(()).into_parts().0;
    // The fields as sent, for the request path to relay or make a map of
    // ([`crate::http1::raw_fields`]); a map now when a `Connection` names some of them.
    let framing = match RawFields::read(&bytes, &spans) {
        Some((raw, framing)) => {
            // What the request path adds goes among them too: the map stays empty (and
            // unallocated) unless a stage makes them a map.
            request.extensions.insert(raw);
            framing
        }
        None => {
            // Room for what the request path adds (request id, X-Forwarded-*, policy edits),
            // so adding them never re-hashes the map.
            let fields = http1::field_map(&bytes, &spans, 8).map_err(bad_field)?;
            request.headers = fields.map;
            fields.framing
        }
    };
    let decoder = match framing.transfer_encoding {
        Some(te) => {
            if framing.content_length != Ok(None) {
                return Err(bad(
                    "Transfer-Encoding and Content-Length together are refused",
                ));
            }
            if !te.only_chunked || version == Version::HTTP_10 {
                return Err(bad("only Transfer-Encoding: chunked is accepted"));
            }
            Decoder::chunked()
        }
        None => Decoder::length(framing.content_length.map_err(bad)?.unwrap_or(0)),
    };
    let keep_alive = match version {
        Version::HTTP_11 => !framing.close,
        _ => framing.keep_alive,
    };
    let expect_continue = version == Version::HTTP_11
        && FieldsView::of_parts(&request.headers, &request.extensions)
            .values(&EXPECT)
            .next()
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    // A `Connection` that names `upgrade` always takes the map path.
    let upgrade = !request.headers.is_empty()
        && crate::tunnel::asks_websocket(&method, version, &request.headers, decoder.is_end());
    if upgrade {
        request.extensions.insert(crate::tunnel::Asked);
    }
    request.method = method;
    request.uri = uri;
    request.version = version;
    Ok(Some(Head {
        request,
        decoder,
        keep_alive,
        expect_continue,
        upgrade,
    }))
}

/// After an answer that closes the connection: ends the write side, then lingers. A body the
/// request path left unread may still be arriving: closing with unread data would reset the
/// connection and could lose the answer just sent.
async fn close_and_linger<R: ClientRead, W: ClientWrite>(
    wr: &mut W,
    side: &mut Option<ReadSide<R>>,
    settings: &Settings,
) {
    if close_within(wr, settings).await
        && let Some(reader) = side.as_mut()
    {
        Box::pin(linger(reader)).await;
    }
}

/// Reads and drops what the client still sends, for a short while, so its unread bytes do not
/// make the kernel reset the connection before the client read the answer (nginx's lingering
/// close).
async fn linger<R: ClientRead>(side: &mut ReadSide<R>) {
    const LINGER: Duration = Duration::from_secs(2);
    const MAX_DRAINED: usize = 1 << 20;
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    while drained < MAX_DRAINED {
        side.buf.clear();
        let read = tokio::select! {
            r = side.io.wait() => r,
            () = tokio::time::sleep_until(deadline) => return,
        };
        if read.is_err() {
            return;
        }
        match side.io.try_fill(&mut side.buf, HEAD_ROOM) {
            Ok(Some(0)) | Err(_) => return,
            Ok(Some(n)) => drained += n,
            Ok(None) => {}
        }
    }
}

/// Writes an answer: the head (with the framing this connection needs), then the body.
/// `closing`: the connection closes after it. Returns whether it must close (asked to, or
/// the body's end can only be told by closing).
fn write_response<'a, W: ClientWrite>(
    wr: &'a mut W,
    resp: Response<ProxyBody>,
    head_request: bool,
    version: Version,
    closing: bool,
    settings: &'a Settings,
) -> impl std::future::Future<Output = std::io::Result<bool>> + 'a {
    // The head is encoded before the future: neither the response nor its parts live in it
    // (an async fn keeps its arguments twice), and every connection's task carries its size.
    let (out, framing, body) = encode(resp, head_request, version, closing);
    write_encoded(wr, out, framing, body, settings)
}

/// The head of `resp` with the framing this connection needs, and its body.
fn encode(
    resp: Response<ProxyBody>,
    head_request: bool,
    version: Version,
    closing: bool,
) -> (BytesMut, Framing, ProxyBody) {
    let (parts, body) = resp.into_parts();
    let exact = body.size_hint().exact();
    let (out, framing) = encode_head(parts, exact, head_request, version, closing);
    (out, framing, body)
}

/// Writes an encoded head, then the body.
async fn write_encoded<W: ClientWrite>(
    wr: &mut W,
    out: BytesMut,
    framing: Framing,
    mut body: ProxyBody,
    settings: &Settings,
) -> std::io::Result<bool> {
    let Framing {
        bodiless,
        length,
        chunked,
        closing,
    } = framing;
    if bodiless {
        send(wr, &out, settings).await?;
        return Ok(closing);
    }

    // The body: a first frame that is ready now rides with the head; otherwise the head goes
    // at once (a client of a slow or event-stream backend sees the head when the backend
    // sends it).
    let mut sent: u64 = 0;
    let limit = length.unwrap_or(u64::MAX);
    let mut pending = Some(out);
    let mut first = body.frame().now_or_never().map(next_data);
    loop {
        let next = match first.take() {
            Some(next) => next,
            // Before waiting for the body, the head goes out.
            None => {
                if let Some(out) = pending.take() {
                    send(wr, &out, settings).await?;
                }
                next_data(body.frame().await)
            }
        };
        let mut data = match next {
            Next::End => break,
            Next::Skip => continue,
            Next::Failed => {
                // The client cannot be told in-band: closing makes the truncation visible.
                if let Some(out) = pending.take() {
                    send(wr, &out, settings).await?;
                }
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            Next::Data(data) => data,
        };
        if sent + data.len() as u64 > limit {
            data.truncate((limit - sent) as usize);
        }
        sent += data.len() as u64;
        let mut out = pending.take().unwrap_or_default();
        if chunked {
            out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
        }
        if out.len() + data.len() <= COALESCE + 512 {
            out.put_slice(&data);
            if chunked {
                out.put_slice(b"\r\n");
            }
            send(wr, &out, settings).await?;
        } else {
            send(wr, &out, settings).await?;
            send(wr, &data, settings).await?;
            if chunked {
                send(wr, b"\r\n", settings).await?;
            }
        }
        if sent == limit {
            break;
        }
    }
    let mut out = pending.take().unwrap_or_default();
    if chunked {
        out.put_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        send(wr, &out, settings).await?;
    }
    if length.is_some_and(|l| sent < l) {
        // Shorter than announced: only closing tells the client.
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(closing)
}

/// What the answer's body gave next, kept small: it is held across writes.
enum Next {
    Data(Bytes),
    /// Trailers or an empty frame: nothing to write.
    Skip,
    End,
    Failed,
}

fn next_data(frame: Option<Result<http_body::Frame<Bytes>, crate::body::BoxError>>) -> Next {
    match frame {
        None => Next::End,
        Some(Err(e)) => {
            tracing::debug!(error = %e, "the answer's body broke off");
            Next::Failed
        }
        Some(Ok(frame)) => match frame.into_data() {
            Ok(data) if !data.is_empty() => Next::Data(data),
            _ => Next::Skip,
        },
    }
}

/// How an answer's body is delimited on this connection.
struct Framing {
    bodiless: bool,
    /// The body's length, declared or known.
    length: Option<u64>,
    chunked: bool,
    /// The connection closes after the answer.
    closing: bool,
}

/// The status line and header section of an answer, with the framing this connection needs.
fn encode_head(
    parts: http::response::Parts,
    exact: Option<u64>,
    head_request: bool,
    version: Version,
    closing: bool,
) -> (BytesMut, Framing) {
    let status = parts.status;
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // A backend's fields relayed as sent (the map then holds what the proxy added).
    let raw = parts.extensions.get::<RawFields>();
    let declared = match raw {
        Some(raw) => raw.content_length,
        None => http1::content_length(&parts.headers).ok().flatten(),
    };
    let length = declared.or(exact);
    let chunked = !bodiless && length.is_none() && version == Version::HTTP_11;
    let closing = closing || (!bodiless && length.is_none() && !chunked);

    let mut out = BytesMut::with_capacity(512);
    out.put_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.put_slice(b"\r\n");
    let mut dated = false;
    if let Some(raw) = raw {
        raw.write(&mut out);
        dated = raw.dated;
        if let Some(n) = declared.filter(|_| status != StatusCode::NO_CONTENT) {
            put_header(
                &mut out,
                b"content-length",
                itoa::Buffer::new().format(n).as_bytes(),
            );
        }
    }
    for (name, value) in &parts.headers {
        if name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        // A map's Content-Length is written only when it declares the length (with relayed
        // fields the length is written above), and a Date beside the backend's never.
        if name == CONTENT_LENGTH
            && (raw.is_some() || declared.is_none() || status == StatusCode::NO_CONTENT)
            || (name == DATE && raw.is_some_and(|r| r.dated))
        {
            continue;
        }
        dated |= name == DATE;
        put_header(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !dated {
        put_header(&mut out, b"date", &date());
    }
    if declared.is_none()
        && status != StatusCode::NO_CONTENT
        && !status.is_informational()
        && let Some(n) = exact.filter(|n| !bodiless || (head_request && *n > 0))
    {
        put_header(
            &mut out,
            b"content-length",
            itoa::Buffer::new().format(n).as_bytes(),
        );
    }
    if chunked {
        put_header(&mut out, b"transfer-encoding", b"chunked");
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        put_header(&mut out, b"connection", b"upgrade");
    } else if closing {
        put_header(&mut out, b"connection", b"close");
    } else if version == Version::HTTP_10 {
        put_header(&mut out, b"connection", b"keep-alive");
    }
    out.put_slice(b"\r\n");
    let framing = Framing {
        bodiless,
        length,
        chunked,
        closing,
    };
    (out, framing)
}

/// Writes `buf` to the client, giving up when the write has waited `timeout`: a client that
/// stops reading is let go (its socket buffers are the kernel's, and the connection holds at
/// most one frame of the answer meanwhile). The usual write, taken at once by the socket, arms
/// no timer.
fn send<'a, W: ClientWrite>(wr: &'a mut W, buf: &'a [u8], settings: &'a Settings) -> Sending<'a> {
    let rest = match wr.try_write(buf) {
        Ok(n) => &buf[n..],
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => buf,
        Err(e) => return Either::Left(std::future::ready(Err(e))),
    };
    if rest.is_empty() && wr.flushed() {
        return Either::Left(std::future::ready(Ok(())));
    }
    // Boxed: only a client that does not keep up pays for the timer, and the futures that
    // send (every connection's task carries them) hold a pointer, not the wait.
    Either::Right(Box::pin(send_waiting(wr, rest, settings)))
}

/// A write: done at once (the usual case), or waiting for the client.
type Sending<'a> = Either<
    std::future::Ready<std::io::Result<()>>,
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send + 'a>>,
>;

/// The rest of a write the socket did not take at once, within the send timeout; flushed too
/// (a TLS stream keeps records back until flushed; a socket's flush is free).
async fn send_waiting<W: ClientWrite>(
    wr: &mut W,
    rest: &[u8],
    settings: &Settings,
) -> std::io::Result<()> {
    match tokio::time::timeout(settings.send_timeout, async {
        wr.write_all(rest).await?;
        wr.flush().await
    })
    .await
    {
        Ok(written) => written,
        Err(_) => {
            tracing::debug!("a client stopped reading its answer; closing");
            settings.metrics.connection_limit("send-timeout");
            Err(std::io::ErrorKind::TimedOut.into())
        }
    }
}

/// Ends the write side (for TLS: what is still buffered, then close_notify), within the send
/// timeout; whether it ended in time.
async fn close_within<W: ClientWrite>(wr: &mut W, settings: &Settings) -> bool {
    matches!(
        tokio::time::timeout(settings.send_timeout, wr.shutdown()).await,
        Ok(Ok(()))
    )
}

fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// The Date header value, formatted once a second.
fn date() -> Bytes {
    thread_local! {
        static CACHE: std::cell::RefCell<(u64, Bytes)> = const { std::cell::RefCell::new((0, Bytes::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs || c.1.is_empty() {
            *c = (secs, Bytes::from(httpdate::fmt_http_date(now)));
        }
        c.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend's fields relayed as sent, with what the proxy added after them.
    #[test]
    fn relayed_fields_are_written_as_sent_with_the_proxys_own() {
        let (raw, _) = crate::http1::raw_fields::tests::read(
            "Server: nginx\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Length: 2\r\n\
             Connection: keep-alive\r\n",
        )
        .unwrap();
        let mut parts = Response::new(()).into_parts().0;
        parts.extensions.insert(raw);
        parts
            .headers
            .insert("x-request-id", http::HeaderValue::from_static("id"));
        let (out, framing) = encode_head(parts, None, false, Version::HTTP_11, false);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\n\
             content-length: 2\r\nx-request-id: id\r\n\r\n"
        );
        assert_eq!(framing.length, Some(2));
        assert!(!framing.chunked && !framing.closing);
    }
}
