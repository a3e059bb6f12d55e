//! Accept: the client-facing listener. HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on one
//! port, with the limits an edge proxy needs set explicitly (see docs/hardening.md): header
//! read timeout, header count and size, HTTP/2 streams, windows and reset-flood bounds, and a
//! cap on open connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::runtime::RuntimeHandle;

#[derive(Clone, Debug)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub h2_max_concurrent_streams: u32,
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            h2_max_concurrent_streams: 100,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

fn builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(1024 * 1024)
        .max_header_list_size(16 * 1024)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    b
}

/// Serves until `shutdown` resolves, then stops accepting and lets open connections finish
/// their requests for up to `drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    runtime: RuntimeHandle,
    metrics: Arc<Metrics>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(builder(&limits));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let runtime = runtime.clone();
        let metrics = metrics.clone();
        // Each request runs on the runtime current when it arrives, to its end. The request's
        // future is boxed once here: hyper moves the service future into place, and moving a
        // pointer is cheaper than moving the whole pipeline's state (perf showed memmove).
        let service = service_fn(move |req| {
            let current = runtime.load();
            let answer = Box::pin(current.handle(req, peer));
            async move { Ok::<_, std::convert::Infallible>(answer.await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            metrics.active_connections.inc();
            let _ = conn.await;
            metrics.active_connections.dec();
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(limits.drain_timeout) => tracing::warn!("drain timeout reached; closing the remaining connections"),
    }
}
