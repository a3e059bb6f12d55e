//! Bounds on a client's request body, the same over HTTP/1.1 and HTTP/2: a maximum size (the
//! route's Policy `limits.maxRequestBodyBytes`, else `--max-request-body-bytes`) and a timeout
//! between two frames of the body (`--body-read-timeout`: [`IdleTimeout`] over HTTP/2,
//! [`crate::server::request_body`] over HTTP/1.1).
//!
//! A body declared larger than the limit is refused with 413 before the backend is called; a
//! body without a length is cut off when it passes the limit. Either error travels as
//! [`ClientBodyError`] inside the body's error, and becomes the client's 413 or 408 wherever
//! the body was being read, never the backend's fault.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;
use crate::problem::ProblemKind;

/// What went wrong with a client's body that is the client's doing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientBodyError {
    #[error("the request body is larger than the {limit} bytes this route accepts")]
    TooLarge { limit: u64 },
    #[error("the request body stopped arriving")]
    TimedOut,
}

/// The problem for a request body that could not be read: 413 and 408 for the bounds above,
/// else 400 (malformed, or the client went away).
pub fn problem_kind(e: &BoxError) -> ProblemKind {
    match e.downcast_ref::<ClientBodyError>() {
        Some(ClientBodyError::TooLarge { .. }) => ProblemKind::BodyTooLarge,
        Some(ClientBodyError::TimedOut) => ProblemKind::BodyTimeout,
        None => ProblemKind::BadRequest,
    }
}

pin_project_lite::pin_project! {
    /// A body that fails with [`ClientBodyError::TooLarge`] once more than `limit` bytes came.
    pub struct Limited<B> {
        #[pin]
        inner: B,
        limit: u64,
        seen: u64,
    }
}

impl<B> Limited<B> {
    pub fn new(inner: B, limit: u64) -> Self {
        Limited {
            inner,
            limit,
            seen: 0,
        }
    }
}

impl<B> Body for Limited<B>
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
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    if *this.seen > *this.limit {
                        let limit = *this.limit;
                        return Poll::Ready(Some(Err(ClientBodyError::TooLarge { limit }.into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A body that fails with [`ClientBodyError::TimedOut`] when it is waited on for `idle`
    /// without a frame. The timer is made the first time the body has nothing ready.
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        idle: Duration,
        timer: Option<Pin<Box<Sleep>>>,
        progressed: bool,
    }
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            timer: None,
            progressed: false,
        }
    }
}

impl<B> Body for IdleTimeout<B>
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
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            *this.progressed = true;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let idle = *this.idle;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        if std::mem::take(this.progressed) {
            timer.as_mut().reset(Instant::now() + idle);
        }
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(ClientBodyError::TimedOut.into())))
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
    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;

    #[tokio::test]
    async fn a_body_past_its_limit_fails_as_too_large() {
        let chunks = ["abc", "def", "g"].map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c))));
        let body = Limited::new(StreamBody::new(futures::stream::iter(chunks)), 6);
        let e = body.collect().await.unwrap_err();
        assert_eq!(problem_kind(&e), ProblemKind::BodyTooLarge);
        assert_eq!(
            e.to_string(),
            "the request body is larger than the 6 bytes this route accepts"
        );
        let body = Limited::new(Full::new(Bytes::from("abcdef")), 6);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcdef");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_times_out_and_progress_pushes_it_back() {
        let (tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let mut body = IdleTimeout::new(StreamBody::new(rx), Duration::from_secs(10));
        let mut tx = tx;
        tokio::spawn(async move {
            use futures::SinkExt;
            tokio::time::sleep(Duration::from_secs(8)).await;
            tx.send(Ok(Frame::data(Bytes::from("a")))).await.unwrap();
            // Then nothing more, and the sender stays.
            std::future::pending::<()>().await;
        });
        let started = Instant::now();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        let e = body.frame().await.unwrap().unwrap_err();
        assert_eq!(problem_kind(&e), ProblemKind::BodyTimeout);
        // 8 s to the first frame, then 10 s of silence.
        assert_eq!(started.elapsed(), Duration::from_secs(18));
    }

    #[test]
    fn other_body_errors_are_bad_requests() {
        let e: BoxError = std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into();
        assert_eq!(problem_kind(&e), ProblemKind::BadRequest);
        let e: BoxError = ClientBodyError::TimedOut.into();
        assert_eq!(problem_kind(&e), ProblemKind::BodyTimeout);
    }
}
