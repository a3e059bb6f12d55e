//! Bounds on a client's request body, the same over HTTP/1.1 and HTTP/2: a maximum size (the
//! route's Policy `limits.maxRequestBodyBytes`, else `--max-request-body-bytes`) and, over
//! HTTP/1.1, a timeout between two reads of the body (`--body-read-timeout`, applied by
//! [`crate::server::request_body`]).
//!
//! A body declared larger than the limit is refused with 413 before the backend is called; a
//! body without a length is cut off when it passes the limit. Either error travels as
//! [`ClientBodyError`] inside the body's error, and becomes the client's 413 or 408 wherever
//! the body was being read, never the backend's fault.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

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

    #[test]
    fn other_body_errors_are_bad_requests() {
        let e: BoxError = std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into();
        assert_eq!(problem_kind(&e), ProblemKind::BadRequest);
        let e: BoxError = ClientBodyError::TimedOut.into();
        assert_eq!(problem_kind(&e), ProblemKind::BodyTimeout);
    }
}
