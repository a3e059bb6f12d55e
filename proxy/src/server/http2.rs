//! HTTP/2 client connections, served by hyper, with what hyper leaves to its user:
//! - an idle timeout: a connection with no open stream for `idle_timeout` gets GOAWAY and
//!   closes, however often the client answers (or sends) pings;
//! - the drain: when the proxy drains, GOAWAY, then the open streams finish.
//!
//! A stream counts as open from its request until its answer's body is done or dropped.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Notify, watch};

use crate::body::{BoxError, ProxyBody};
use crate::client_body::IdleTimeout;
use crate::metrics::Metrics;
use crate::runtime::RuntimeHandle;

/// Open streams of one connection; notified when the count leaves or reaches zero.
#[derive(Default)]
struct Streams {
    open: AtomicUsize,
    changed: Notify,
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
    /// An answer's body that keeps its stream open until it is done.
    struct Guarded {
        #[pin]
        inner: ProxyBody,
        guard: Option<StreamGuard>,
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
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = polled {
            this.guard.take();
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

/// What an HTTP/2 connection needs from the server.
pub struct Settings {
    pub builder: hyper::server::conn::http2::Builder<TokioExecutor>,
    pub idle_timeout: Duration,
    /// Between two frames of a request body.
    pub body_read_timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// Serves one HTTP/2 connection until it closes. `io` yields the preface already read first.
pub async fn serve<I>(
    io: I,
    peer: SocketAddr,
    runtime: RuntimeHandle,
    settings: &Settings,
    mut draining: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let streams = Arc::new(Streams::default());
    let counted = streams.clone();
    // Each request runs on the runtime current when it arrives, to its end. The request's
    // future is boxed once here: hyper moves the service future into place, and moving a
    // pointer is cheaper than moving the whole pipeline's state.
    let body_idle = settings.body_read_timeout;
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let guard = StreamGuard::open(&counted);
        let req = req.map(|body| IdleTimeout::new(body, body_idle));
        let current = runtime.load();
        let answer = Box::pin(current.handle(req, peer));
        async move {
            let resp = answer.await.map(|inner| {
                Guarded {
                    inner,
                    guard: Some(guard),
                }
                .boxed()
            });
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = settings.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = *draining.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let idle = streams.open.load(Ordering::Acquire) == 0;
        tokio::select! {
            _ = conn.as_mut() => return,
            // Draining: GOAWAY, and the open streams finish.
            changed = draining.changed(), if !closing => {
                if changed.is_err() || *draining.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = streams.changed.notified() => {}
            () = tokio::time::sleep(settings.idle_timeout), if idle && !closing => {
                settings.metrics.connection_limit("http2-idle-timeout");
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
