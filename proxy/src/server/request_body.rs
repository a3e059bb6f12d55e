//! A client's request body on an HTTP/1.1 connection, read as the request path takes it.
//!
//! The body owns the connection's read side while the request is in flight and gives it back
//! to the connection when it is dropped, saying whether it was read to its end: only then can
//! the next request on the connection be read (otherwise the connection closes after the
//! answer).
//!
//! The body read timeout is the connection's to apply ([`crate::client_body::IdleTimeout`], as
//! over HTTP/2): a body that times out was not read to its end, so the connection closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::oneshot;

use super::transport::ClientRead;

use crate::body::BoxError;
use crate::http1::decode::{Decoder, Step};

/// Room made in the read buffer before each read.
const READ_ROOM: usize = 8 * 1024;

/// The read side of a client connection: the socket (or TLS stream) and what was read but not
/// yet used.
pub struct ReadSide<R = OwnedReadHalf> {
    pub io: R,
    pub buf: BytesMut,
}

impl<R: ClientRead> ReadSide<R> {
    /// Reads more into the buffer; `Ok(0)` at EOF.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.io.poll_fill(&mut self.buf, READ_ROOM, cx)
    }
}

/// The read side coming back, and whether the body was read to its end.
pub struct Returned<R = OwnedReadHalf> {
    pub side: ReadSide<R>,
    pub complete: bool,
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is malformed: {0}")]
    Malformed(#[from] crate::http1::decode::DecodeError),
    #[error("reading the request body failed: {0}")]
    Io(#[from] io::Error),
}

/// The request body type of the HTTP/1.1 server.
pub struct RequestBody<R: ClientRead = OwnedReadHalf> {
    inner: Option<Streaming<R>>,
}

struct Streaming<R> {
    side: ReadSide<R>,
    decoder: Decoder,
    back: oneshot::Sender<Returned<R>>,
    failed: bool,
    /// The client sent `Expect: 100-continue`: the first read of the body asks the connection
    /// to send `100 Continue`, so a request refused without reading its body (401, 413) never
    /// invites the upload.
    wants_continue: Option<oneshot::Sender<()>>,
}

impl<R: ClientRead> RequestBody<R> {
    pub fn empty() -> Self {
        RequestBody { inner: None }
    }

    /// A body read from `side` as `decoder` frames it; the side comes back through the
    /// returned receiver when the body is dropped.
    pub fn streaming(
        side: ReadSide<R>,
        decoder: Decoder,
        wants_continue: Option<oneshot::Sender<()>>,
    ) -> (Self, oneshot::Receiver<Returned<R>>) {
        let (back, rx) = oneshot::channel();
        let body = RequestBody {
            inner: Some(Streaming {
                side,
                decoder,
                back,
                failed: false,
                wants_continue,
            }),
        };
        (body, rx)
    }
}

impl<R: ClientRead> Drop for RequestBody<R> {
    fn drop(&mut self) {
        if let Some(s) = self.inner.take() {
            let complete = s.decoder.is_end() && !s.failed;
            let _ = s.back.send(Returned {
                side: s.side,
                complete,
            });
        }
    }
}

impl<R: ClientRead> Body for RequestBody<R> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(s) = self.get_mut().inner.as_mut() else {
            return Poll::Ready(None);
        };
        if s.failed {
            return Poll::Ready(None);
        }
        if let Some(tx) = s.wants_continue.take() {
            let _ = tx.send(());
        }
        loop {
            match s.decoder.decode(&mut s.side.buf) {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::NeedMore) => {}
                Err(e) => {
                    s.failed = true;
                    return Poll::Ready(Some(Err(BodyError::from(e).into())));
                }
            }
            match ready!(s.side.poll_fill(cx)) {
                Ok(0) => {
                    s.failed = true;
                    let e = s.decoder.at_eof().err().map_or_else(
                        || BodyError::Io(io::ErrorKind::UnexpectedEof.into()),
                        BodyError::from,
                    );
                    return Poll::Ready(Some(Err(e.into())));
                }
                Ok(_) => {}
                Err(e) => {
                    s.failed = true;
                    return Poll::Ready(Some(Err(BodyError::from(e).into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|s| s.decoder.is_end())
    }

    fn size_hint(&self) -> SizeHint {
        match self.inner.as_ref().map(|s| s.decoder.remaining()) {
            None => SizeHint::with_exact(0),
            Some(Some(n)) => SizeHint::with_exact(n),
            Some(None) => SizeHint::default(),
        }
    }
}
