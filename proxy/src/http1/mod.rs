//! HTTP/1.1 pieces shared by both ends of the proxy: the client-facing server
//! ([`crate::server`]) and the backend connections ([`crate::upstream::h1`]).
//!
//! - [`decode`]: message bodies off a connection (Content-Length, chunked, until close).
//! - [`raw_fields`]: a message's fields relayed as sent, without a map (an answer's to an
//!   HTTP/1 client, an HTTP/1 client's request to its backend).
//! - this module: the header rules both ends apply (Content-Length values, connection tokens).

pub mod decode;
pub mod raw_fields;

use std::io;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH};
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

/// What a head's framing fields said. They are read in the one pass over its fields (building
/// the map, or keeping them as sent), so nobody looks them up again; `Transfer-Encoding`, `Keep-Alive` and `Connection` are left out
/// of the map, being this hop's business only (RFC 9110 §7.6.1), except a `Connection` that
/// names other fields: it stays, so the hop-by-hop pass removes those too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// The Content-Length: `Ok(None)` without one; an error when a value is not plain digits
    /// or values disagree (RFC 9112 §6.3: a recipient must treat that as unrecoverable). The
    /// field itself stays in the map.
    pub content_length: Result<Option<u64>, &'static str>,
    /// Transfer-Encoding, when the head had any.
    pub transfer_encoding: Option<TransferEncoding>,
    /// `Connection` names `close` / `keep-alive`.
    pub close: bool,
    pub keep_alive: bool,
}

impl Default for Framing {
    fn default() -> Self {
        Framing {
            content_length: Ok(None),
            transfer_encoding: None,
            close: false,
            keep_alive: false,
        }
    }
}

/// What the Transfer-Encoding lines of a head say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferEncoding {
    /// The last coding named is `chunked` (the message is chunked, RFC 9112 §6.3).
    pub chunked: bool,
    /// One line that says `chunked` and nothing else: the only form a request may use here.
    pub only_chunked: bool,
}

/// The fields of a head: the map, and what its framing fields said.
pub struct Fields {
    pub map: HeaderMap,
    pub framing: Framing,
}

/// What a field is to the framing pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldRole {
    /// `Transfer-Encoding`, `Keep-Alive`, or a `Connection` naming only `close` or
    /// `keep-alive`: read into the [`Framing`], and this hop's business only.
    Framing,
    /// A `Connection` that names other fields, which must go too.
    ConnectionNamingOthers,
    /// A `Content-Length`, read into the [`Framing`].
    ContentLength,
    Other,
}

/// Reads a head's framing fields one by one, on the raw bytes, before any parse or hash.
#[derive(Default)]
pub struct FramingPass<'a> {
    framing: Framing,
    te_lines: u32,
    last_coding: &'a [u8],
}

impl<'a> FramingPass<'a> {
    pub fn visit(&mut self, name: &[u8], value: &'a [u8]) -> FieldRole {
        // Most fields are none of the four: their length says so without a comparison.
        if !matches!(name.len(), 10 | 14 | 17) {
            return FieldRole::Other;
        }
        let framing = &mut self.framing;
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.te_lines += 1;
            if let Some(last) = value
                .split(|b| *b == b',')
                .map(<[u8]>::trim_ascii)
                .rfind(|t| !t.is_empty())
            {
                self.last_coding = last;
            }
            let chunked_line = value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            framing.transfer_encoding = Some(TransferEncoding {
                chunked: false,
                only_chunked: self.te_lines == 1 && chunked_line,
            });
            return FieldRole::Framing;
        }
        if name.eq_ignore_ascii_case(b"keep-alive") {
            return FieldRole::Framing;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            let mut others = false;
            for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    framing.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    framing.keep_alive = true;
                } else if !token.is_empty() {
                    others = true;
                }
            }
            return if others {
                FieldRole::ConnectionNamingOthers
            } else {
                FieldRole::Framing
            };
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            framing.content_length = framing
                .content_length
                .and_then(|known| content_length_value(known, value));
            return FieldRole::ContentLength;
        }
        FieldRole::Other
    }

    pub fn finish(mut self) -> Framing {
        if let Some(te) = &mut self.framing.transfer_encoding {
            te.chunked = self.last_coding.eq_ignore_ascii_case(b"chunked");
        }
        self.framing
    }
}

/// The fields of `head` (the parsed bytes, split off) as a map whose values share its bytes,
/// with room for `room` more fields, and the framing they declare.
pub fn field_map(head: &Bytes, spans: &FieldSpans, room: usize) -> Result<Fields, BadField> {
    let mut map = HeaderMap::with_capacity(spans.len() + room);
    let mut pass = FramingPass::default();
    for &[name_at, name_len, value_at, value_len] in spans {
        let (name_at, value_at) = (name_at as usize, value_at as usize);
        let raw_name = &head[name_at..name_at + name_len as usize];
        let raw_value = &head[value_at..value_at + value_len as usize];
        let name = match pass.visit(raw_name, raw_value) {
            FieldRole::Framing => continue,
            FieldRole::ConnectionNamingOthers => CONNECTION,
            FieldRole::ContentLength => CONTENT_LENGTH,
            FieldRole::Other => HeaderName::from_bytes(raw_name).map_err(|_| BadField::Name)?,
        };
        let value =
            HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len as usize))
                .map_err(|_| BadField::Value)?;
        map.append(name, value);
    }
    Ok(Fields {
        map,
        framing: pass.finish(),
    })
}

/// Folds one Content-Length field value into what the earlier ones said.
fn content_length_value(known: Option<u64>, value: &[u8]) -> Result<Option<u64>, &'static str> {
    let mut length = known;
    for part in value.split(|b| *b == b',') {
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
    Ok(length)
}

/// The request's Content-Length, its fields kept as sent (see [`raw_fields`]) or in its map.
pub fn declared_length(head: &http::request::Parts) -> Result<Option<u64>, &'static str> {
    match head.extensions.get::<raw_fields::RawFields>() {
        // Read, and checked, with the head.
        Some(raw) => Ok(raw.content_length),
        None => content_length(&head.headers),
    }
}

/// The message's Content-Length, for maps built by hand or edited (see [`Framing`]).
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for v in headers.get_all(CONTENT_LENGTH) {
        length = content_length_value(length, v.as_bytes())?;
    }
    Ok(length)
}

#[cfg(test)]
pub(crate) mod tests {
    use http::header::TRANSFER_ENCODING;

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

    /// A response head with `fields` (lines ending in CRLF), parsed: its bytes and where its
    /// fields are, as the client reads them.
    pub(crate) fn parsed(fields: &str) -> (Bytes, FieldSpans) {
        let raw = format!("HTTP/1.1 200 OK\r\n{fields}\r\n");
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut slots);
        let len = match r.parse(raw.as_bytes()).unwrap() {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial => panic!("partial head"),
        };
        let mut spans = FieldSpans::new();
        field_spans(raw.as_bytes(), r.headers, &mut spans);
        (Bytes::copy_from_slice(&raw.as_bytes()[..len]), spans)
    }

    /// The fields of a raw head, as the server and the client read them.
    fn fields(raw: &str) -> Fields {
        let (head, spans) = parsed(raw);
        field_map(&head, &spans, 0).unwrap()
    }

    #[test]
    fn the_length_shortcut_misses_no_framing_field() {
        for name in [
            "Transfer-Encoding",
            "Keep-Alive",
            "Connection",
            "Content-Length",
        ] {
            let mut pass = FramingPass::default();
            assert_ne!(
                pass.visit(name.as_bytes(), b"1"),
                FieldRole::Other,
                "{name}"
            );
        }
    }

    #[test]
    fn framing_is_read_in_the_field_pass() {
        let f = fields("Content-Length: 4\r\ncontent-length: 4, 4\r\nX-A: 1\r\n");
        assert_eq!(f.framing.content_length, Ok(Some(4)));
        assert_eq!(f.map.get_all(CONTENT_LENGTH).iter().count(), 2);
        assert!(
            fields("Content-Length: 4\r\nContent-Length: 5\r\n")
                .framing
                .content_length
                .is_err()
        );
        assert_eq!(fields("X-A: 1\r\n").framing, Framing::default());

        let f = fields("Transfer-Encoding: gzip\r\nTransfer-Encoding: Chunked \r\n");
        let te = f.framing.transfer_encoding.unwrap();
        assert!(te.chunked && !te.only_chunked);
        assert!(!f.map.contains_key(TRANSFER_ENCODING));
        let te = fields("transfer-encoding: chunked\r\n")
            .framing
            .transfer_encoding
            .unwrap();
        assert!(te.chunked && te.only_chunked);
        let te = fields("Transfer-Encoding: chunked, gzip\r\n")
            .framing
            .transfer_encoding
            .unwrap();
        assert!(!te.chunked && !te.only_chunked);
        // A later line naming nothing leaves the last coding named as it was.
        let te = fields("Transfer-Encoding: chunked\r\nTransfer-Encoding: ,\r\n")
            .framing
            .transfer_encoding;
        assert!(te.unwrap().chunked);

        let f = fields("Connection: keep-alive, Close\r\nKeep-Alive: timeout=5\r\n");
        assert!(f.framing.close && f.framing.keep_alive);
        assert!(f.map.is_empty(), "{:?}", f.map);
        assert!(!fields("Connection: closed\r\n").framing.close);
        // A Connection naming another field stays, for the hop-by-hop pass to act on.
        let f = fields("Connection: close, X-Secret\r\nX-Secret: 1\r\n");
        assert!(f.framing.close);
        assert_eq!(f.map[CONNECTION], "close, X-Secret");
    }
}
