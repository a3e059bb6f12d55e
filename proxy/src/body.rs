//! Body types: what the proxy sends to clients and backends, streamed, never buffered whole.
//!
//! [`Observed`] wraps a body to count its bytes and to run a completion hook exactly once, when
//! the body ends or is dropped (client gone): that is where the access-log line and the
//! request-duration metric are recorded, so they cover the whole streamed response.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, combinators::BoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body type of the proxy.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> ProxyBody {
    full(Bytes::new())
}

/// Called once when an observed body is finished or dropped, with the bytes that went through.
pub trait OnComplete: Send + Sync + 'static {
    fn complete(&self, bytes: u64, finished: bool);
}

pin_project_lite::pin_project! {
    /// Counts the bytes of `inner`, optionally into a shared counter, and calls `hook` at the end.
    pub struct Observed<B> {
        #[pin]
        inner: B,
        bytes: u64,
        counter: Option<Arc<AtomicU64>>,
        hook: Option<Box<dyn OnComplete>>,
        // Complete at the next poll or the drop when the end shows with the last data.
        after_last: bool,
        ended: bool,
    }

    impl<B> PinnedDrop for Observed<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(hook) = this.hook.take() {
                hook.complete(*this.bytes, *this.ended);
            }
        }
    }
}

impl<B> Observed<B> {
    /// The hook runs as soon as the end shows: what waits for a body to be sent (a request
    /// body's upload) learns it then.
    pub fn new(
        inner: B,
        counter: Option<Arc<AtomicU64>>,
        hook: Option<Box<dyn OnComplete>>,
    ) -> Self {
        Observed::with(inner, counter, hook, false)
    }

    fn with(
        inner: B,
        counter: Option<Arc<AtomicU64>>,
        hook: Option<Box<dyn OnComplete>>,
        after_last: bool,
    ) -> Self {
        Observed {
            inner,
            bytes: 0,
            counter,
            hook,
            after_last,
            ended: false,
        }
    }

    /// The hook runs after the last data was taken (at the next poll, or the drop: writers
    /// stop polling a body that says it ended), so an answer's last bytes reach the client
    /// before its metrics and log line are recorded.
    pub fn after_last_data(
        inner: B,
        counter: Option<Arc<AtomicU64>>,
        hook: Option<Box<dyn OnComplete>>,
    ) -> Self {
        Observed::with(inner, counter, hook, true)
    }
}

impl<B: Body<Data = Bytes>> Body for Observed<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    *this.bytes += n;
                    if let Some(c) = this.counter {
                        c.fetch_add(n, Ordering::Relaxed);
                    }
                }
                // hyper stops polling once a body says it has ended (e.g. Content-Length
                // reached), so the end is noticed here rather than by a final `None`.
                if this.inner.is_end_stream() {
                    *this.ended = true;
                    if !*this.after_last
                        && let Some(hook) = this.hook.take()
                    {
                        hook.complete(*this.bytes, true);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(hook) = this.hook.take() {
                    hook.complete(*this.bytes, true);
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

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;

    /// What a hook was told, in order.
    #[derive(Clone, Default)]
    struct Told(Arc<Mutex<Vec<(u64, bool)>>>);

    impl OnComplete for Told {
        fn complete(&self, bytes: u64, finished: bool) {
            self.0.lock().push((bytes, finished));
        }
    }

    fn told(t: &Told) -> Vec<(u64, bool)> {
        t.0.lock().clone()
    }

    /// A three-byte body observed by a new hook, completing at once or after its last data.
    fn observed(after_last: bool) -> (Observed<Full<Bytes>>, Told) {
        let t = Told::default();
        let hook: Option<Box<dyn OnComplete>> = Some(Box::new(t.clone()));
        let body = Full::new(Bytes::from("abc"));
        let body = if after_last {
            Observed::after_last_data(body, None, hook)
        } else {
            Observed::new(body, None, hook)
        };
        (body, t)
    }

    #[tokio::test]
    async fn the_hook_runs_once_at_the_end_or_after_the_last_data_was_taken() {
        // A request body's upload: known to be sent with its last data.
        let (mut body, t) = observed(false);
        body.frame().await.unwrap().unwrap();
        assert_eq!(told(&t), [(3, true)]);
        drop(body);
        assert_eq!(told(&t), [(3, true)], "once");

        // An answer: its writer sends the last data before the hook runs, at the drop...
        let (mut body, t) = observed(true);
        body.frame().await.unwrap().unwrap();
        assert!(told(&t).is_empty());
        drop(body);
        assert_eq!(told(&t), [(3, true)]);
        // ...or at the next poll.
        let (mut body, t) = observed(true);
        body.frame().await.unwrap().unwrap();
        assert!(body.frame().await.is_none());
        assert_eq!(told(&t), [(3, true)]);

        // Dropped before its end: the client went away.
        let (body, t) = observed(true);
        drop(body);
        assert_eq!(told(&t), [(0, false)]);
    }
}
