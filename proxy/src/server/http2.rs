//! HTTP/2 client connections, served by hyper, with what hyper leaves to its user:
//! - an idle timeout: a connection with no open stream for `idle_timeout` gets GOAWAY and
//!   closes, however often the client answers (or sends) pings;
//! - a send timeout: hyper asks an answer's body for its next frame only once the client's
//!   flow-control window has room for it. When a frame has waited `send_timeout` and no
//!   stream of the connection has moved meanwhile, the client stopped reading: the connection
//!   closes (as an HTTP/1.1 one would), releasing what its streams hold, the backend
//!   connections first. A client that holds one stream back on purpose (a paused download)
//!   while it reads others keeps its connection;
//! - the drain: when the proxy drains, GOAWAY, then the open streams finish;
//! - WebSocket over a stream (extended CONNECT, RFC 8441): the request path sees the HTTP/1.1
//!   upgrade request, and a stream whose backend switched is relayed ([`crate::tunnel`]).
//!
//! A stream counts as open from its request until its answer's body is done or dropped.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::body::{BoxError, ProxyBody};
use crate::client_body::IdleTimeout;
use crate::exchange::Client;
use crate::metrics::Metrics;
use crate::runtime::RuntimeHandle;
use crate::tunnel;

/// Open streams of one connection; notified when the count leaves or reaches zero, and when
/// an answer starts waiting for the client while no send timer is armed.
struct Streams {
    open: AtomicUsize,
    changed: Notify,
    waiting: parking_lot::Mutex<Waiting>,
    /// The connection's loop has a timer for the oldest wait: new waits need not wake it.
    armed: AtomicBool,
    next_id: AtomicU64,
}

/// Answers whose last frame the client has not made room for yet, and when it last did.
struct Waiting {
    since: HashMap<u64, Instant>,
    progress: Instant,
}

impl Streams {
    fn new() -> Self {
        Streams {
            open: AtomicUsize::new(0),
            changed: Notify::new(),
            waiting: parking_lot::Mutex::new(Waiting {
                since: HashMap::new(),
                progress: Instant::now(),
            }),
            armed: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
        }
    }

    fn wait_from(&self, id: u64, since: Instant) {
        self.waiting.lock().since.insert(id, since);
        if !self.armed.swap(true, Ordering::AcqRel) {
            self.changed.notify_one();
        }
    }

    /// The stream's frame is no longer waiting; `taken`: because the client made room.
    fn done_waiting(&self, id: u64, taken: bool) {
        let mut waiting = self.waiting.lock();
        waiting.since.remove(&id);
        if taken {
            waiting.progress = Instant::now();
        }
    }

    /// When the connection counts as stalled, if a frame is waiting: `timeout` after both
    /// the oldest wait began and the client last made room on any stream.
    fn stalled_at(&self, timeout: Duration) -> Option<Instant> {
        let waiting = self.waiting.lock();
        let oldest = waiting.since.values().min().copied()?;
        Some(oldest.max(waiting.progress) + timeout)
    }
}

/// One open stream; closes it when dropped.
struct StreamGuard(Arc<Streams>);

impl StreamGuard {
    fn open(streams: &Arc<Streams>) -> Self {
        if streams.open.fetch_add(1, Ordering::AcqRel) == 0 {
            streams.changed.notify_one();
        }
        StreamGuard(streams.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer's body that keeps its stream open until it is done, and notes when the
    /// client's window holds its frames back.
    struct Guarded {
        #[pin]
        inner: ProxyBody,
        guard: Option<StreamGuard>,
        id: u64,
        // A frame was handed to hyper and the body not asked again since.
        handed: bool,
    }

    impl PinnedDrop for Guarded {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.handed && let Some(guard) = this.guard.as_ref() {
                guard.0.done_waiting(*this.id, false);
            }
        }
    }
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if std::mem::take(this.handed)
            && let Some(guard) = this.guard.as_ref()
        {
            guard.0.done_waiting(*this.id, true);
        }
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(None | Some(Err(_))) => {
                this.guard.take();
            }
            Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                if let Some(guard) = this.guard.as_ref() {
                    *this.handed = true;
                    guard.0.wait_from(*this.id, Instant::now());
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether hyper ended the connection with ENHANCE_YOUR_CALM: too many streams reset by the
/// client before they were answered, or too many the proxy had to reset (Rapid Reset).
fn calmed_down(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM);
        }
        source = err.source();
    }
    false
}

/// What an HTTP/2 connection needs from the server.
pub struct Settings {
    pub builder: hyper::server::conn::http2::Builder<TokioExecutor>,
    pub idle_timeout: Duration,
    /// Between two frames of a request body.
    pub body_read_timeout: Duration,
    /// How long an answer's frame may wait for the client's window.
    pub send_timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// Overloaded: GOAWAY, as when draining ([`crate::overload`]).
    pub overload: Arc<crate::overload::Overload>,
    /// The port's settings from its Gateway, read by each stream.
    pub port: Arc<crate::exchange::LivePortSettings>,
    /// The port served (see [`crate::exchange::Client::local_port`]).
    pub local_port: u16,
    /// Bounds of streams relayed after a switch to WebSocket (extended CONNECT).
    pub tunnel: tunnel::Limits,
}

/// Serves one HTTP/2 connection until it closes. `io` yields the preface already read first.
pub async fn serve<I>(
    io: I,
    peer: Client,
    runtime: RuntimeHandle,
    settings: &Settings,
    mut draining: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let streams = Arc::new(Streams::new());
    let counted = streams.clone();
    // Each request runs on the runtime current when it arrives, to its end. The request's
    // future is boxed once here: hyper moves the service future into place, and moving a
    // pointer is cheaper than moving the whole pipeline's state.
    let body_idle = settings.body_read_timeout;
    let port = settings.port.clone();
    let tunnel_limits = settings.tunnel;
    let metrics = settings.metrics.clone();
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let guard = StreamGuard::open(&counted);
        let refused = tunnel::refuse_other_protocols(&req);
        // A WebSocket over this stream (RFC 8441): the request path sees the HTTP/1.1 ask.
        let upgrade = tunnel::from_extended_connect(&mut req).then(|| hyper::upgrade::on(&mut req));
        // A gRPC stream may stay silent for long (a client-streaming call between messages):
        // its body gets the WebSocket idle bound, not the body read timeout.
        let idle = if crate::grpc::is_grpc(crate::http1::raw_fields::FieldsView::of(&req)) {
            tunnel_limits.idle_timeout
        } else {
            body_idle
        };
        let req = req.map(|body| IdleTimeout::new(body, idle));
        let current = runtime.load();
        let client = Client {
            port: port.load_full(),
            ..peer.clone()
        };
        let answer = Box::pin(current.handle(req, client));
        let metrics = metrics.clone();
        async move {
            if let Some(refused) = refused {
                return Ok(refused);
            }
            let mut resp = answer.await;
            let switched = resp
                .extensions_mut()
                .remove::<tunnel::Switched>()
                .and_then(|s| s.take());
            let asked = upgrade.is_some();
            if let Some(upgrade) = upgrade
                && let Some(backend) = switched
            {
                let (mut parts, _) = resp.into_parts();
                tunnel::to_extended_connect_answer(&mut parts);
                // The stream stays open (and the connection not idle) while it is relayed.
                tokio::spawn(async move {
                    let _open = guard;
                    let mut backend = backend;
                    if let Ok(upgraded) = upgrade.await {
                        let mut client = tunnel::Stream(TokioIo::new(upgraded));
                        tunnel::relay(&mut client, &mut *backend, tunnel_limits, &metrics).await;
                    }
                });
                return Ok(http::Response::from_parts(parts, crate::body::empty()));
            }
            // An ask that did not switch must not read as a tunnel open (a 2xx to CONNECT).
            if asked && resp.status().is_success() {
                resp = tunnel::not_switched();
            }
            let resp = resp.map(|inner| {
                Guarded {
                    inner,
                    id: guard.0.next_id.fetch_add(1, Ordering::Relaxed),
                    guard: Some(guard),
                    handed: false,
                }
                .boxed()
            });
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = settings.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut overloaded = settings.overload.subscribe();
    let mut overload_watched = true;
    let mut closing = *draining.borrow() || *overloaded.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let idle = streams.open.load(Ordering::Acquire) == 0;
        let stalled_at = streams.stalled_at(settings.send_timeout);
        if stalled_at.is_none() {
            // A wait that begins from now on wakes the loop (its notification is kept).
            streams.armed.store(false, Ordering::Release);
        }
        tokio::select! {
            ended = conn.as_mut() => {
                if ended.as_ref().is_err_and(calmed_down) {
                    settings.metrics.connection_limit("http2-reset-flood");
                }
                return;
            }
            // Draining: GOAWAY, and the open streams finish.
            changed = draining.changed(), if !closing => {
                if changed.is_err() || *draining.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            changed = overloaded.changed(), if !closing && overload_watched => {
                match changed {
                    Ok(()) if *overloaded.borrow() => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Ok(()) => {}
                    Err(_) => overload_watched = false,
                }
            }
            () = streams.changed.notified() => {}
            // The client stopped reading: everything its streams hold goes with it.
            () = tokio::time::sleep_until(stalled_at.unwrap_or_else(Instant::now)), if stalled_at.is_some() => {
                if streams.stalled_at(settings.send_timeout).is_some_and(|at| at <= Instant::now()) {
                    settings.metrics.connection_limit("send-timeout");
                    return;
                }
            }
            () = tokio::time::sleep(settings.idle_timeout), if idle && !closing => {
                settings.metrics.connection_limit("http2-idle-timeout");
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
