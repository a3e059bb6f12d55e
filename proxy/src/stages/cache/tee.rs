//! An answer's body streamed to the client while it is kept for the store: stored when it
//! ends whole and within the entry limit; past the limit, ending in an error or with
//! trailers, or dropped before its end (client gone), it is not, and the client gets it all
//! the same.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, ProxyBody};

/// What to do with the whole body.
pub trait Keep: Send + Sync + 'static {
    fn keep(self: Box<Self>, body: Bytes);
}

pin_project_lite::pin_project! {
    pub struct Storing {
        #[pin]
        inner: ProxyBody,
        chunks: Vec<Bytes>,
        len: usize,
        limit: usize,
        keep: Option<Box<dyn Keep>>,
    }
}

impl Storing {
    /// `inner`, kept by `keep` when whole and at most `limit` bytes.
    pub fn new(inner: ProxyBody, limit: usize, keep: Box<dyn Keep>) -> Self {
        let mut storing = Storing {
            inner,
            chunks: Vec::new(),
            len: 0,
            limit,
            keep: Some(keep),
        };
        // An empty body may never be polled.
        if storing.inner.is_end_stream() {
            storing.finish();
        }
        storing
    }

    fn finish(&mut self) {
        if let Some(keep) = self.keep.take() {
            keep.keep(concat(std::mem::take(&mut self.chunks), self.len));
        }
    }
}

/// The chunks in one buffer of its own: they are slices of the connection's read buffers,
/// which a stored answer must not keep alive.
fn concat(chunks: Vec<Bytes>, len: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(len);
    for c in chunks {
        out.extend_from_slice(&c);
    }
    out.freeze()
}

impl Body for Storing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if this.keep.is_some() {
                    match frame.data_ref() {
                        Some(data) if *this.len + data.len() <= *this.limit => {
                            *this.len += data.len();
                            this.chunks.push(data.clone());
                        }
                        // Too large, or trailers (which a stored answer cannot replay).
                        _ => {
                            *this.keep = None;
                            this.chunks.clear();
                        }
                    }
                }
                if this.inner.is_end_stream()
                    && let Some(keep) = this.keep.take()
                {
                    keep.keep(concat(std::mem::take(this.chunks), *this.len));
                }
            }
            Poll::Ready(None) => {
                if let Some(keep) = this.keep.take() {
                    keep.keep(concat(std::mem::take(this.chunks), *this.len));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                *this.keep = None;
                this.chunks.clear();
            }
            Poll::Pending => {}
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
    use std::sync::Arc;

    use http_body_util::{BodyExt, StreamBody};
    use parking_lot::Mutex;

    use super::*;

    struct Into(Arc<Mutex<Option<Bytes>>>);

    impl Keep for Into {
        fn keep(self: Box<Self>, body: Bytes) {
            *self.0.lock() = Some(body);
        }
    }

    fn streamed(frames: Vec<Result<Frame<Bytes>, BoxError>>) -> ProxyBody {
        StreamBody::new(futures::stream::iter(frames)).boxed()
    }

    fn data(s: &'static str) -> Result<Frame<Bytes>, BoxError> {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    async fn run(body: ProxyBody, limit: usize) -> (Result<Bytes, BoxError>, Option<Bytes>) {
        let kept = Arc::new(Mutex::new(None));
        let storing = Storing::new(body, limit, Box::new(Into(kept.clone())));
        let got = storing.collect().await.map(|c| c.to_bytes());
        let kept = kept.lock().take();
        (got, kept)
    }

    #[tokio::test]
    async fn a_whole_body_within_the_limit_is_kept_and_the_client_gets_it_all() {
        let (got, kept) = run(streamed(vec![data("hel"), data("lo")]), 5).await;
        assert_eq!(got.unwrap(), "hello");
        assert_eq!(kept.unwrap(), "hello");
        let (_, kept) = run(crate::body::full("one"), 5).await;
        assert_eq!(kept.unwrap(), "one");
        let (_, kept) = run(crate::body::empty(), 5).await;
        assert_eq!(kept.unwrap(), "");
    }

    #[tokio::test]
    async fn too_large_failed_or_trailed_bodies_are_not_kept() {
        let (got, kept) = run(streamed(vec![data("hel"), data("lo!")]), 5).await;
        assert_eq!(got.unwrap(), "hello!", "the client still gets all of it");
        assert_eq!(kept, None);
        let failed = streamed(vec![data("hel"), Err("backend gone".into())]);
        let (got, kept) = run(failed, 5).await;
        assert!(got.is_err());
        assert_eq!(kept, None);
        let trailers = Ok(Frame::trailers(http::HeaderMap::new()));
        let (_, kept) = run(streamed(vec![data("hel"), trailers]), 5).await;
        assert_eq!(kept, None);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_is_not_kept() {
        let kept = Arc::new(Mutex::new(None));
        let mut storing = Storing::new(
            streamed(vec![data("hel"), data("lo")]),
            5,
            Box::new(Into(kept.clone())),
        );
        let first = storing.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "hel");
        drop(storing);
        assert_eq!(*kept.lock(), None);
    }
}
