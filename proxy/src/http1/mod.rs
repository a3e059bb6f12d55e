//! HTTP/1.1 pieces shared by both ends of the proxy: the client-facing server
//! ([`crate::server`]) and the backend connections ([`crate::upstream::h1`]).
//!
//! - [`decode`]: message bodies off a connection (Content-Length, chunked, until close).
//! - this module: the header rules both ends apply (Content-Length values, connection tokens).

pub mod decode;

use std::io;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Once the socket was seen readable: reads what it has into `buf`, making `room` first.
/// `Ok(Some(0))` at EOF; `Ok(None)` when the readiness was stale and nothing came, in which
/// case the room is given back if `buf` holds nothing, so a connection waiting to read keeps
/// no buffer.
pub fn try_fill(io: &TcpStream, buf: &mut BytesMut, room: usize) -> io::Result<Option<usize>> {
    buf.reserve(room);
    match read_draining(io, buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            if buf.is_empty() {
                *buf = BytesMut::new();
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Reads what the socket has into `buf`, making `room` first; `Ok(0)` at EOF. The poll form
/// both ends' bodies read with.
pub fn poll_fill(
    io: &TcpStream,
    buf: &mut BytesMut,
    room: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(io.poll_read_ready(cx))?;
        buf.reserve(room);
        match read_draining(io, buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return Poll::Ready(other),
        }
    }
}

/// One read into the spare room of `buf`. A read that did not fill the room emptied the
/// socket: its readiness is cleared then, so the next wait goes to the reactor at once
/// instead of finding out with a read that fails (`EAGAIN`), one system call per message
/// saved. Edge-triggered readiness makes this safe: bytes that arrive later raise a new
/// event; a seen end of stream or error stays readable.
pub fn read_draining(io: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let offered = buf.capacity() - buf.len();
    let mut read = None;
    let outcome = io.try_io(Interest::READABLE, || {
        let n = io.try_read_buf(buf)?;
        read = Some(n);
        if n > 0 && n < offered {
            // Tells tokio the socket is drained; the count travels in `read`.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match read {
        Some(n) => Ok(n),
        None => outcome,
    }
}

/// Where the header fields of a head httparse parsed at the front of a buffer are, as
/// offsets (name start and length, value start and length), so that once the head is split off
/// the buffer its values can share its bytes. Kept in the caller's frame: no allocation for up
/// to 24 fields, and nothing large moved.
pub type FieldSpans = SmallVec<[[u32; 4]; 24]>;

/// A header field name or value that is not valid.
#[derive(Debug, PartialEq, Eq)]
pub enum BadField {
    Name,
    Value,
}

/// Notes where `fields` (parsed from `buf`) are.
pub fn field_spans(buf: &[u8], fields: &[httparse::Header<'_>], spans: &mut FieldSpans) {
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
    spans.extend(fields.iter().map(|f| {
        [
            at(f.name.as_bytes()),
            f.name.len() as u32,
            at(f.value),
            f.value.len() as u32,
        ]
    }));
}

/// The fields of `head` (the parsed bytes, split off) as a map whose values share its bytes,
/// with room for `room` more fields.
pub fn field_map(head: &Bytes, spans: &FieldSpans, room: usize) -> Result<HeaderMap, BadField> {
    let mut map = HeaderMap::with_capacity(spans.len() + room);
    for &[name_at, name_len, value_at, value_len] in spans {
        let (name_at, value_at) = (name_at as usize, value_at as usize);
        let name = HeaderName::from_bytes(&head[name_at..name_at + name_len as usize])
            .map_err(|_| BadField::Name)?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len as usize))
                .map_err(|_| BadField::Value)?;
        map.append(name, value);
    }
    Ok(map)
}

/// The message's Content-Length: `Ok(None)` without one; an error when a value is not plain
/// digits or values disagree (RFC 9112 §6.3: a recipient must treat that as unrecoverable).
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for v in headers.get_all(CONTENT_LENGTH) {
        for part in v.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 18 || !part.iter().all(u8::is_ascii_digit) {
                return Err("the Content-Length is not a number");
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if length.is_some_and(|l| l != n) {
                return Err("the Content-Length values disagree");
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// The last transfer coding named (`None` without Transfer-Encoding; `Some("")` for a header
/// that names none).
pub fn last_transfer_coding(headers: &HeaderMap) -> Option<&[u8]> {
    if !headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    Some(
        headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .rfind(|t| !t.is_empty())
            .unwrap_or_default(),
    )
}

/// Whether a Connection header of the message names `token` (`close`, `keep-alive`).
pub fn connection_has(headers: &HeaderMap, token: &[u8]) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn content_lengths_must_be_plain_and_agree() {
        assert_eq!(content_length(&headers(&[])), Ok(None));
        assert_eq!(
            content_length(&headers(&[("content-length", "42")])),
            Ok(Some(42))
        );
        let same = headers(&[("content-length", "4"), ("content-length", "4, 4")]);
        assert_eq!(content_length(&same), Ok(Some(4)));
        for bad in ["4, 5", "+4", "0x4", "", "4 4", "-1", "1234567890123456789"] {
            assert!(
                content_length(&headers(&[("content-length", bad)])).is_err(),
                "{bad:?}"
            );
        }
        let split = headers(&[("content-length", "4"), ("content-length", "5")]);
        assert!(content_length(&split).is_err());
    }

    #[test]
    fn codings_and_connection_tokens() {
        let h = headers(&[
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "Chunked "),
        ]);
        assert_eq!(last_transfer_coding(&h), Some(&b"Chunked"[..]));
        assert_eq!(last_transfer_coding(&headers(&[])), None);
        assert_eq!(
            last_transfer_coding(&headers(&[("transfer-encoding", ",")])),
            Some(&b""[..])
        );
        let h = headers(&[("connection", "keep-alive, Close")]);
        assert!(connection_has(&h, b"close") && connection_has(&h, b"keep-alive"));
        assert!(!connection_has(
            &headers(&[("connection", "closed")]),
            b"close"
        ));
    }
}
