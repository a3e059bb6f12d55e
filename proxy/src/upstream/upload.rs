//! A request body on its way to a backend, written as the client sends it. Driven by polling
//! from whoever holds the connection: first while the answer's head is awaited, then, when a
//! backend answers before it has read the whole body (an echo, a streaming API), from the
//! answer's body, so the upload goes on while the answer streams back.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::Body;
use tokio::io::AsyncWrite;

use super::UpstreamBody;
use super::h1::{ExchangeError, RequestFraming};
use super::tls::BackendIo;

pub struct Upload {
    body: UpstreamBody,
    chunked: bool,
    declared: Option<u64>,
    read: u64,
    /// Bytes taken from the body (with chunk framing) not yet written.
    pending: Bytes,
    /// The body ended and its last bytes are in `pending`.
    ended: bool,
}

impl Upload {
    pub fn new(body: UpstreamBody, framing: RequestFraming) -> Self {
        Upload {
            body,
            chunked: framing == RequestFraming::Chunked,
            declared: match framing {
                RequestFraming::Length(n) => Some(n),
                _ => None,
            },
            read: 0,
            pending: Bytes::new(),
            ended: false,
        }
    }

    /// Writes what the body has; `Ready(Ok)` once all of it is written.
    pub fn poll_write(
        &mut self,
        io: &mut BackendIo,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ExchangeError>> {
        loop {
            while !self.pending.is_empty() {
                let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.pending))
                    .map_err(ExchangeError::WriteBody)?;
                if n == 0 {
                    return Poll::Ready(Err(ExchangeError::WriteBody(
                        io::ErrorKind::WriteZero.into(),
                    )));
                }
                self.pending.advance(n);
            }
            if self.ended {
                // Nothing may stay in a TLS stream's buffer while the backend is waited for.
                return Pin::new(&mut *io)
                    .poll_flush(cx)
                    .map_err(ExchangeError::WriteBody);
            }
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    // The client pauses: what a TLS stream holds goes out meanwhile (a plain
                    // socket holds nothing; its flush is free).
                    ready!(Pin::new(&mut *io).poll_flush(cx)).map_err(ExchangeError::WriteBody)?;
                    return Poll::Pending;
                }
            };
            match frame {
                Some(Ok(frame)) => {
                    // Trailers are not forwarded to HTTP/1.1 backends.
                    if let Ok(data) = frame.into_data() {
                        self.take(data)?;
                    }
                }
                Some(Err(e)) => return Poll::Ready(Err(ExchangeError::RequestBody(e))),
                None => {
                    if self.declared.is_some_and(|n| self.read != n) {
                        return Poll::Ready(Err(ExchangeError::RequestBody(
                            "the request body ended before its Content-Length".into(),
                        )));
                    }
                    self.ended = true;
                    if self.chunked {
                        self.pending = Bytes::from_static(b"0\r\n\r\n");
                    }
                }
            }
        }
    }

    fn take(&mut self, data: Bytes) -> Result<(), ExchangeError> {
        if data.is_empty() {
            return Ok(());
        }
        self.read += data.len() as u64;
        if self.declared.is_some_and(|n| self.read > n) {
            return Err(ExchangeError::RequestBody(
                "the request body is longer than its Content-Length".into(),
            ));
        }
        // All the declared bytes are in: done, without waiting for the body to say so (an
        // HTTP/2 client's end of stream may come later).
        if self.declared == Some(self.read) {
            self.ended = true;
        }
        self.pending = if self.chunked {
            let mut framed = Vec::with_capacity(data.len() + 20);
            framed.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            framed.extend_from_slice(&data);
            framed.extend_from_slice(b"\r\n");
            Bytes::from(framed)
        } else {
            data
        };
        Ok(())
    }
}
