//! What the HTTP/1.1 server reads from and writes to: a client connection's two halves, a
//! plain TCP socket or a TLS stream.
//!
//! The server is written against these traits so one implementation serves both. A socket
//! keeps its fast path: readiness first and room in the buffer only once bytes are there (an
//! idle keep-alive connection holds no buffer), and writes tried at once without a timer. A TLS
//! stream can only be asked for plaintext by reading it, so it reads into its own buffer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::tls::clients::ClientCertificate;

/// The read half of a client connection.
pub trait ClientRead: Send + Sync + Unpin + 'static {
    /// The connection is encrypted (X-Forwarded-Proto says `https`).
    const TLS: bool;

    /// The client certificate the handshake verified (mutual TLS); none over TCP.
    fn certificate(&self) -> Option<Arc<ClientCertificate>> {
        None
    }

    /// Waits until the connection has something for us: bytes, the end, or an error.
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Once [`ClientRead::poll_wait`] said so: moves what is there into `buf`, making `room`
    /// first. `Ok(Some(0))` at the end; `Ok(None)` when nothing was there after all, and then
    /// `buf`, if empty, gives its memory back.
    fn try_fill(&mut self, buf: &mut BytesMut, room: usize) -> io::Result<Option<usize>>;

    /// Reads more into `buf`, waiting for it; `Ok(0)` at the end.
    fn poll_fill(
        &mut self,
        buf: &mut BytesMut,
        room: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_wait(cx))?;
            if let Some(n) = self.try_fill(buf, room)? {
                return Poll::Ready(Ok(n));
            }
        }
    }

    /// Waits for [`ClientRead::poll_wait`].
    fn wait(&mut self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        std::future::poll_fn(move |cx| self.poll_wait(cx))
    }
}

/// The write half of a client connection.
pub trait ClientWrite: AsyncWrite + Send + Unpin + 'static {
    /// Writes what the connection takes at once; `WouldBlock` when it takes nothing now.
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize>;

    /// Whether what [`ClientWrite::try_write`] took has left for the client, so nothing
    /// waits for a flush.
    fn flushed(&self) -> bool {
        true
    }
}

// === impl for TCP ===

impl ClientRead for OwnedReadHalf {
    const TLS: bool = false;

    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }

    fn try_fill(&mut self, buf: &mut BytesMut, room: usize) -> io::Result<Option<usize>> {
        crate::http1::try_fill(self.as_ref(), buf, room)
    }

    fn poll_fill(
        &mut self,
        buf: &mut BytesMut,
        room: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        crate::http1::poll_fill(self.as_ref(), buf, room, cx)
    }
}

impl ClientWrite for OwnedWriteHalf {
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        OwnedWriteHalf::try_write(self, buf)
    }
}

// === impl for TLS ===

/// The read half of a TLS stream, which yields plaintext only when read (records are
/// decrypted as they are read), so it is read into a buffer of its own.
pub struct TlsRead<R> {
    io: R,
    certificate: Option<Arc<ClientCertificate>>,
    /// Read ahead by [`ClientRead::poll_wait`], not yet taken.
    pending: BytesMut,
    ended: bool,
}

/// Read ahead at a time.
const READ_AHEAD: usize = 16 * 1024;

impl<R> TlsRead<R> {
    pub fn new(io: R, certificate: Option<Arc<ClientCertificate>>) -> Self {
        TlsRead {
            io,
            certificate,
            pending: BytesMut::new(),
            ended: false,
        }
    }
}

impl<R: AsyncRead + Send + Sync + Unpin + 'static> ClientRead for TlsRead<R> {
    const TLS: bool = true;

    fn certificate(&self) -> Option<Arc<ClientCertificate>> {
        self.certificate.clone()
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() || self.ended {
            return Poll::Ready(Ok(()));
        }
        // Read on the stack, left uninitialised: a connection waiting for its next request
        // holds no buffer here, and no read pays for zeroing 16 KiB.
        let mut ahead = [const { std::mem::MaybeUninit::<u8>::uninit() }; READ_AHEAD];
        let mut read = ReadBuf::uninit(&mut ahead);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let filled = read.filled();
        self.ended = filled.is_empty();
        self.pending.extend_from_slice(filled);
        Poll::Ready(Ok(()))
    }

    fn try_fill(&mut self, buf: &mut BytesMut, _room: usize) -> io::Result<Option<usize>> {
        if self.pending.is_empty() {
            if self.ended {
                return Ok(Some(0));
            }
            if buf.is_empty() {
                *buf = BytesMut::new();
            }
            return Ok(None);
        }
        let n = self.pending.len();
        if buf.is_empty() {
            std::mem::swap(buf, &mut self.pending);
        } else {
            buf.extend_from_slice(&self.pending);
            self.pending.clear();
        }
        Ok(Some(n))
    }
}

/// The write half of a TLS stream. A write is first tried at once (polled without a waker:
/// the records go to the socket when it has room, as a TCP write would); only what the socket
/// did not take waits, under the send timeout, and is flushed.
pub struct TlsWrite<W> {
    io: W,
    flushed: bool,
}

impl<W> TlsWrite<W> {
    pub fn new(io: W) -> Self {
        TlsWrite { io, flushed: true }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for TlsWrite<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        self.flushed = matches!(flushed, Poll::Ready(Ok(())));
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<W: AsyncWrite + Send + Unpin + 'static> ClientWrite for TlsWrite<W> {
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut taken = 0;
        while taken < buf.len() {
            match Pin::new(&mut self.io).poll_write(&mut cx, &buf[taken..]) {
                Poll::Ready(Ok(0)) => break,
                Poll::Ready(Ok(n)) => taken += n,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        // Records still buffered (the socket is full, or the flush failed) are pushed by the
        // waiting path, which reports a failure.
        self.flushed = matches!(
            Pin::new(&mut self.io).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        );
        if taken == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    fn flushed(&self) -> bool {
        self.flushed
    }
}
