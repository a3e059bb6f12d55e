//! Upgraded connections (WebSocket): bytes relayed both ways once a backend switched
//! protocols.
//!
//! An upgrade request goes through the request path like any other request: the route match,
//! CORS, authentication, authorization and the rate limit run on it, and any of them may
//! refuse it with an ordinary answer. Only WebSocket is passed on:
//! - over HTTP/1.1, a bodiless `GET` whose `Connection` names `upgrade` and whose `Upgrade`
//!   names `websocket` ([`asks_websocket`]); any other `Upgrade` (`h2c` above all: a proxy that
//!   passes it lets a client talk HTTP/2 to the backend past every rule) is dropped as the
//!   hop-by-hop field it is, and the request is served as plain HTTP/1.1;
//! - over HTTP/2, an extended `CONNECT` with `:protocol websocket` (RFC 8441), which the
//!   server turns into the HTTP/1.1 upgrade request a backend expects ([`from_extended_connect`]).
//!
//! The forward action asks the backend to switch ([`ask_backend`]); a backend that answers
//! `101 Switching Protocols` to WebSocket hands its connection over in the answer
//! ([`Switched`]), and the server that wrote the answer then [`relay`]s between the client's
//! connection and the backend's. Any other answer (a 401, a 404, a backend that refuses) goes
//! to the client as it is, and the client's connection stays HTTP.
//!
//! A relayed connection holds no snapshot: configuration reloads never cut it. It ends when
//! both sides have closed (one side's end is passed on as a half close), when no byte has
//! moved either way for the idle timeout, when its maximum lifetime has passed, or when the
//! proxy's drain timeout ends every connection. Its buffers are given back while it is idle.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::server::request_body::ReadSide;
use crate::server::transport::{ClientRead, ClientWrite};
use crate::upstream::h1::Connection;

/// Marks a request that asks to switch to WebSocket (set by the server that read it).
#[derive(Clone, Copy, Debug)]
pub struct Asked;

/// The backend connection that switched protocols, carried in the extensions of its `101`
/// answer to the server that relays it. Dropped with the answer (the client went away, a stage
/// replaced the answer), the connection closes.
#[derive(Clone)]
pub struct Switched(Arc<parking_lot::Mutex<Option<Box<Connection>>>>);

impl Switched {
    pub fn new(conn: Box<Connection>) -> Self {
        Switched(Arc::new(parking_lot::Mutex::new(Some(conn))))
    }

    pub fn take(&self) -> Option<Box<Connection>> {
        self.0.lock().take()
    }
}

/// Whether an HTTP/1 request asks to switch to WebSocket (RFC 6455 §4.1): `GET`, HTTP/1.1,
/// `Connection: upgrade` and `Upgrade: websocket`, without a body.
pub fn asks_websocket(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
    bodiless: bool,
) -> bool {
    let names = |name, token: &[u8]| {
        headers.get_all(name).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    *method == Method::GET
        && version == Version::HTTP_11
        && bodiless
        && names(CONNECTION, b"upgrade")
        && names(UPGRADE, b"websocket")
}

/// The backend's request asks to switch to WebSocket (the request target removed the client's
/// hop-by-hop fields, these among them).
pub fn ask_backend(headers: &mut HeaderMap) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
}

/// Whether a backend's `101` switches to WebSocket, as asked (read before its hop-by-hop
/// fields go).
pub fn switched_to_websocket(headers: &HeaderMap) -> bool {
    headers
        .get_all(UPGRADE)
        .iter()
        .any(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"))
}

/// The client's `101` says what it switches to (the encoder writes `Connection: upgrade`).
pub fn accept_switch(headers: &mut HeaderMap) {
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
}

/// An HTTP/2 extended `CONNECT` for WebSocket (RFC 8441 §4) as the HTTP/1.1 upgrade request
/// the backend expects: a `GET` with a `Sec-WebSocket-Key` of the proxy's (HTTP/2 clients send
/// none, §5); the version, subprotocols and extensions the client asked for are kept. `false`
/// (the request untouched) for any other request.
pub fn from_extended_connect<B>(req: &mut http::Request<B>) -> bool {
    let websocket = req.method() == Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    if !websocket {
        return false;
    }
    *req.method_mut() = Method::GET;
    let key: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key);
    req.headers_mut().insert(
        SEC_WEBSOCKET_KEY,
        HeaderValue::from_str(&key).expect("base64 is a valid field value"),
    );
    req.extensions_mut().insert(Asked);
    true
}

/// The answer to an extended `CONNECT` for another protocol than WebSocket (`connect-udp`,
/// `webtransport`...), which the proxy does not relay: 501, before any stage.
pub fn refuse_other_protocols<B>(
    req: &http::Request<B>,
) -> Option<http::Response<crate::body::ProxyBody>> {
    let protocol = req.extensions().get::<hyper::ext::Protocol>()?;
    if req.method() != Method::CONNECT || protocol.as_str().eq_ignore_ascii_case("websocket") {
        return None;
    }
    Some(
        crate::problem::Problem::new(
            crate::problem::ProblemKind::NotImplemented,
            "only the websocket protocol can be asked for with an extended CONNECT",
        )
        .into_response(
            crate::forwarding::new_request_id()
                .to_str()
                .unwrap_or_default(),
        ),
    )
}

/// The answer to a WebSocket ask over HTTP/2 whose backend answered with a success other than
/// a switch: a 502, since a 2xx to CONNECT would tell the client its tunnel is open.
pub fn not_switched() -> http::Response<crate::body::ProxyBody> {
    crate::problem::Problem::new(
        crate::problem::ProblemKind::UpstreamUnavailable,
        "the backend did not switch to WebSocket",
    )
    .into_response(
        crate::forwarding::new_request_id()
            .to_str()
            .unwrap_or_default(),
    )
}

/// A `101` for an HTTP/2 client that asked with extended `CONNECT`: `200` (RFC 8441 §5), without
/// the HTTP/1.1 handshake's own fields.
pub fn to_extended_connect_answer(parts: &mut http::response::Parts) {
    parts.status = StatusCode::OK;
    for name in [UPGRADE, CONNECTION, SEC_WEBSOCKET_ACCEPT] {
        parts.headers.remove(name);
    }
}

/// The bounds of a relayed connection (`--websocket-idle-timeout`,
/// `--websocket-max-lifetime`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// No byte moved either way for this long: the connection ends.
    pub idle_timeout: Duration,
    /// The connection ends this long after it switched, whatever moves (`None`: no bound).
    pub max_lifetime: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: Duration::from_secs(3600),
            max_lifetime: None,
        }
    }
}

/// Why a relayed connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Both sides closed.
    Closed,
    IdleTimeout,
    MaxLifetime,
    /// A read or write failed (a reset).
    Failed,
}

impl Ended {
    pub fn label(self) -> &'static str {
        match self {
            Ended::Closed => "closed",
            Ended::IdleTimeout => "idle-timeout",
            Ended::MaxLifetime => "max-lifetime",
            Ended::Failed => "failed",
        }
    }
}

/// One side of a relayed connection.
pub trait End: Unpin {
    /// Reads what there is into `buf`; `Ok(0)` at the end.
    fn poll_fill(&mut self, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<usize>>;
    fn poll_write(&mut self, buf: &[u8], cx: &mut Context<'_>) -> Poll<io::Result<usize>>;
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// What was read past the handshake's head, to be passed on first.
    fn take_read_ahead(&mut self) -> BytesMut;
}

/// Bytes read at a time.
const ROOM: usize = 16 * 1024;

/// An HTTP/1.1 client's connection: the server's read side and write half.
pub struct ClientEnd<R, W> {
    pub side: ReadSide<R>,
    pub wr: W,
}

impl<R: ClientRead, W: ClientWrite> End for ClientEnd<R, W> {
    fn poll_fill(&mut self, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.side.io.poll_fill(buf, ROOM, cx)
    }
    fn poll_write(&mut self, buf: &[u8], cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.wr).poll_write(cx, buf)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.wr).poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.wr).poll_shutdown(cx)
    }
    fn take_read_ahead(&mut self) -> BytesMut {
        std::mem::take(&mut self.side.buf)
    }
}

impl End for Connection {
    fn poll_fill(&mut self, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.io.poll_fill(buf, ROOM, cx)
    }
    fn poll_write(&mut self, buf: &[u8], cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn take_read_ahead(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }
}

/// Any byte stream (an HTTP/2 stream hyper upgraded, a test's pipe).
pub struct Stream<T>(pub T);

impl<T: AsyncRead + AsyncWrite + Unpin> End for Stream<T> {
    fn poll_fill(&mut self, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        buf.reserve(ROOM);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.0), cx, buf)
    }
    fn poll_write(&mut self, buf: &[u8], cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn take_read_ahead(&mut self) -> BytesMut {
        BytesMut::new()
    }
}

/// Bytes on their way from one side to the other.
struct Direction {
    /// Read and not yet written.
    buf: BytesMut,
    /// Written and not yet flushed.
    unflushed: bool,
    /// The source ended: the sink is shut down once `buf` is written.
    ended: bool,
    done: bool,
}

impl Direction {
    fn new(read_ahead: BytesMut) -> Self {
        Direction {
            buf: read_ahead,
            unflushed: false,
            ended: false,
            done: false,
        }
    }

    /// Moves what `from` has to `to` until either must wait; `moved` is set when a byte moved.
    fn poll(
        &mut self,
        from: &mut impl End,
        to: &mut impl End,
        moved: &mut bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            while !self.buf.is_empty() {
                let n = ready!(to.poll_write(&self.buf, cx))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.buf.advance(n);
                self.unflushed = true;
                *moved = true;
            }
            if self.unflushed {
                ready!(to.poll_flush(cx))?;
                self.unflushed = false;
            }
            if self.ended {
                // The other side's write half ends; its read half may go on (a half close).
                let _ = ready!(to.poll_shutdown(cx));
                self.done = true;
                continue;
            }
            match from.poll_fill(&mut self.buf, cx) {
                Poll::Ready(Ok(0)) => self.ended = true,
                Poll::Ready(Ok(_)) => *moved = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Idle: nothing held while waiting.
                    if self.buf.capacity() > 0 {
                        self.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Relays between `client` and `backend` until the connection ends (see the module's doc),
/// counted in the `upgraded_connections` metrics. Returns how it ended.
pub async fn relay(
    client: &mut impl End,
    backend: &mut impl End,
    limits: Limits,
    metrics: &Metrics,
) -> Ended {
    // Counted open until the relay ends or is dropped (the drain timeout aborts it).
    struct Open<'a>(&'a Metrics);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            self.0.upgraded_connections.dec();
        }
    }
    metrics.upgraded_connections.inc();
    let open = Open(metrics);
    let ended = relay_bounded(client, backend, limits).await;
    drop(open);
    metrics
        .upgraded_connection_ends
        .get_or_create(&crate::metrics::UpgradeEndLabels {
            reason: ended.label(),
        })
        .inc();
    ended
}

async fn relay_bounded(client: &mut impl End, backend: &mut impl End, limits: Limits) -> Ended {
    let mut up = Direction::new(client.take_read_ahead());
    let mut down = Direction::new(backend.take_read_ahead());
    let started = Instant::now();
    let mut last_moved = started;
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let lifetime = limits.max_lifetime.map(|max| started + max);
    let end_of_life = tokio::time::sleep_until(lifetime.unwrap_or(started));
    tokio::pin!(end_of_life);
    std::future::poll_fn(|cx| {
        let mut moved = false;
        let up_done = match up.poll(client, backend, &mut moved, cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(_)) => return Poll::Ready(Ended::Failed),
            Poll::Pending => false,
        };
        let down_done = match down.poll(backend, client, &mut moved, cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(_)) => return Poll::Ready(Ended::Failed),
            Poll::Pending => false,
        };
        if up_done && down_done {
            return Poll::Ready(Ended::Closed);
        }
        if lifetime.is_some() && end_of_life.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ended::MaxLifetime);
        }
        if moved {
            last_moved = Instant::now();
        }
        // The timer is moved only when it fires: a busy connection pays no timer per message.
        while idle.as_mut().poll(cx).is_ready() {
            let due = last_moved + limits.idle_timeout;
            if due <= Instant::now() {
                return Poll::Ready(Ended::IdleTimeout);
            }
            idle.as_mut().reset(due);
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (n.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn only_bodiless_http11_gets_asking_for_websocket_ask() {
        let asks = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        assert!(asks_websocket(&Method::GET, Version::HTTP_11, &asks, true));
        assert!(!asks_websocket(
            &Method::POST,
            Version::HTTP_11,
            &asks,
            true
        ));
        assert!(!asks_websocket(&Method::GET, Version::HTTP_10, &asks, true));
        assert!(!asks_websocket(
            &Method::GET,
            Version::HTTP_11,
            &asks,
            false
        ));
        // h2c, or an Upgrade the Connection field does not name, is no ask.
        let h2c = headers(&[("connection", "upgrade"), ("upgrade", "h2c")]);
        assert!(!asks_websocket(&Method::GET, Version::HTTP_11, &h2c, true));
        let unnamed = headers(&[("upgrade", "websocket")]);
        assert!(!asks_websocket(
            &Method::GET,
            Version::HTTP_11,
            &unnamed,
            true
        ));
    }

    #[test]
    fn extended_connect_becomes_an_http11_upgrade_and_its_answer_a_200() {
        let mut req = http::Request::connect("https://example.com/chat")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-protocol", "chat")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        assert!(from_extended_connect(&mut req));
        assert_eq!(req.method(), Method::GET);
        assert!(req.extensions().get::<Asked>().is_some());
        let key = req.headers()[SEC_WEBSOCKET_KEY].to_str().unwrap();
        assert_eq!(key.len(), 24, "16 bytes in base64: {key}");
        assert_eq!(req.headers()["sec-websocket-protocol"], "chat");

        let mut plain = http::Request::connect("example.com:443").body(()).unwrap();
        assert!(!from_extended_connect(&mut plain));
        assert_eq!(plain.method(), Method::CONNECT);

        let mut answer = http::Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "x")
            .header("sec-websocket-protocol", "chat")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        to_extended_connect_answer(&mut answer);
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.headers.len(), 1);
    }

    fn pair() -> (Stream<DuplexStream>, DuplexStream) {
        let (a, b) = duplex(64 * 1024);
        (Stream(a), b)
    }

    #[tokio::test]
    async fn bytes_go_both_ways_and_a_half_close_is_passed_on() {
        let (mut client, mut client_far) = pair();
        let (mut backend, mut backend_far) = pair();
        let relaying = tokio::spawn(async move {
            relay_bounded(&mut client, &mut backend, Limits::default()).await
        });
        client_far.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        backend_far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        backend_far.write_all(b"pong").await.unwrap();
        client_far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        // The client ends its side: the backend reads the end, and may still answer.
        client_far.shutdown().await.unwrap();
        assert_eq!(backend_far.read(&mut got).await.unwrap(), 0);
        backend_far.write_all(b"last").await.unwrap();
        client_far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"last");
        backend_far.shutdown().await.unwrap();
        assert_eq!(relaying.await.unwrap(), Ended::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_ends_after_the_idle_timeout_and_any_after_its_lifetime() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(60),
            max_lifetime: Some(Duration::from_secs(300)),
        };
        let (mut client, mut client_far) = pair();
        let (mut backend, _backend_far) = pair();
        let relaying = tokio::spawn(async move {
            let started = Instant::now();
            let ended = relay_bounded(&mut client, &mut backend, limits).await;
            (ended, started.elapsed())
        });
        // Traffic at 40 s keeps it open past the first 60 s.
        tokio::time::sleep(Duration::from_secs(40)).await;
        client_far.write_all(b"x").await.unwrap();
        let (ended, after) = relaying.await.unwrap();
        assert_eq!(ended, Ended::IdleTimeout);
        assert_eq!(after.as_secs(), 100);

        let (mut client, mut client_far) = pair();
        let (mut backend, mut backend_far) = pair();
        let relaying = tokio::spawn(async move {
            let started = Instant::now();
            let ended = relay_bounded(&mut client, &mut backend, limits).await;
            (ended, started.elapsed())
        });
        // A busy connection still ends at its lifetime.
        let chatter = tokio::spawn(async move {
            let mut got = [0u8; 1];
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                if client_far.write_all(b"y").await.is_err()
                    || backend_far.read_exact(&mut got).await.is_err()
                {
                    return;
                }
            }
        });
        let (ended, after) = relaying.await.unwrap();
        assert_eq!(ended, Ended::MaxLifetime);
        assert_eq!(after.as_secs(), 300);
        chatter.abort();
    }

    #[tokio::test]
    async fn bytes_read_past_the_handshake_go_first() {
        struct Ahead(Stream<DuplexStream>, Option<BytesMut>);
        impl End for Ahead {
            fn poll_fill(
                &mut self,
                b: &mut BytesMut,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<usize>> {
                self.0.poll_fill(b, cx)
            }
            fn poll_write(&mut self, b: &[u8], cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
                self.0.poll_write(b, cx)
            }
            fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.0.poll_flush(cx)
            }
            fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.0.poll_shutdown(cx)
            }
            fn take_read_ahead(&mut self) -> BytesMut {
                self.1.take().unwrap_or_default()
            }
        }
        let (a, _client_far) = pair();
        let mut client = Ahead(a, Some(BytesMut::from(&b"early"[..])));
        let (mut backend, mut backend_far) = pair();
        tokio::spawn(
            async move { relay_bounded(&mut client, &mut backend, Limits::default()).await },
        );
        let mut got = [0u8; 5];
        backend_far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"early");
    }
}
