//! A backend's answer body ([`super::h1`]), decoded off its connection as the client takes it,
//! with the rest of an upload written meanwhile when the backend answered before reading all
//! of it. The connection goes back to its pool only when both ended cleanly.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::h1::{Connection, ExchangeError, READ_ROOM};
use super::pool::EndpointPool;
use super::upload::Upload;
use crate::body::BoxError;
use crate::http1::decode::{Decoder, Step};

/// A backend's answer body: off an HTTP/1.1 connection, or an HTTP/2 stream ([`super::h2`]),
/// whose trailers come along.
pub enum ResponseBody {
    Http1(Http1Body),
    /// Boxed: HTTP/1.1 answers, the common case, are not made larger (and slower to move) by
    /// it.
    Http2(Box<hyper::body::Incoming>),
}

impl ResponseBody {
    pub(super) fn new(
        conn: Box<Connection>,
        decoder: Decoder,
        reusable: bool,
        upload: Option<Upload>,
        pool: Arc<EndpointPool>,
    ) -> Self {
        ResponseBody::Http1(Http1Body::new(conn, decoder, reusable, upload, pool))
    }

    /// No body, and no connection to give back (it switched protocols).
    pub(super) fn empty(pool: Arc<EndpointPool>) -> Self {
        ResponseBody::Http1(Http1Body {
            conn: None,
            decoder: Decoder::length(0),
            reusable: false,
            upload: None,
            pool,
        })
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Http1(b) => Pin::new(b).poll_frame(cx),
            ResponseBody::Http2(b) => Pin::new(&mut **b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Http1(b) => b.is_end_stream(),
            ResponseBody::Http2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Http1(b) => b.size_hint(),
            ResponseBody::Http2(b) => b.size_hint(),
        }
    }
}

/// A backend's answer body, read from its HTTP/1.1 connection as the client takes it. The
/// connection goes back to its pool when the body ended cleanly; dropped earlier, it is closed.
pub struct Http1Body {
    conn: Option<Box<Connection>>,
    decoder: Decoder,
    reusable: bool,
    /// The rest of the request body, when the backend answered before reading all of it.
    upload: Option<Upload>,
    pool: Arc<EndpointPool>,
}

impl Http1Body {
    fn new(
        conn: Box<Connection>,
        decoder: Decoder,
        reusable: bool,
        upload: Option<Upload>,
        pool: Arc<EndpointPool>,
    ) -> Self {
        let mut body = Http1Body {
            conn: Some(conn),
            decoder,
            reusable,
            upload,
            pool,
        };
        // A bodiless answer (HEAD, 204, 304, Content-Length: 0) is complete already.
        body.release_if_done();
        body
    }

    fn release_if_done(&mut self) {
        if self.decoder.is_end()
            && let Some(conn) = self.conn.take()
            && self.reusable
            && self.upload.is_none()
            && conn.buf.is_empty()
        {
            self.pool.put_back(conn);
        }
    }

    /// Writes more of an upload still in progress. The backend stopping to read ends the
    /// upload (the connection is then not reused); the client's body failing is returned:
    /// the backend would wait for the rest forever.
    fn drive_upload(&mut self, cx: &mut Context<'_>) -> Result<(), ExchangeError> {
        if let (Some(upload), Some(conn)) = (self.upload.as_mut(), self.conn.as_mut()) {
            match upload.poll_write(&mut conn.io, cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => self.upload = None,
                Poll::Ready(Err(e @ ExchangeError::RequestBody(_))) => {
                    self.upload = None;
                    return Err(e);
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "the rest of an upload could not be sent");
                    self.upload = None;
                    self.reusable = false;
                }
            }
        }
        Ok(())
    }

    /// Reads more from the connection into its buffer; `Ok(0)` at EOF.
    fn poll_fill(conn: &mut Connection, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        conn.io.poll_fill(&mut conn.buf, READ_ROOM, cx)
    }

    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        self.decoder = Decoder::length(0);
        Poll::Ready(Some(Err(e.into())))
    }
}

impl Body for Http1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Err(e) = this.drive_upload(cx) {
                return this.fail(e);
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut conn.buf) {
                // With the last data the connection goes back to its pool: a slow client
                // holds no backend connection while the answer is written to it.
                Ok(Step::Data(data)) => {
                    this.release_if_done();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::End) => {
                    this.release_if_done();
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
                Err(e) => return this.fail(e),
            }
            match ready!(Self::poll_fill(conn, cx)) {
                Ok(0) => match this.decoder.at_eof() {
                    Ok(_) => {
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    Err(e) => return this.fail(e),
                },
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_end()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
