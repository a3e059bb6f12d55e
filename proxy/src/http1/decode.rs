//! Message bodies off an HTTP/1.1 connection (RFC 9112 §6–7): by Content-Length, chunked, or
//! until the peer closes. Pure: it takes what was read and says what it found, so the client
//! side (request bodies) and the backend side (response bodies) decode the same way, and the
//! framing rules are tested without sockets.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Most bytes of trailer fields accepted (they are read and dropped).
const MAX_TRAILERS: usize = 64 * 1024;
/// Largest chunk size: 15 hex digits.
const MAX_SIZE_DIGITS: usize = 15;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a chunk size is not valid hex")]
    ChunkSize,
    #[error("a chunk-size line is too long")]
    ChunkLineTooLong,
    #[error("chunk data is not followed by CRLF")]
    ChunkEnd,
    #[error("the trailer section is too large")]
    Trailers,
    #[error("the connection closed before the body ended")]
    Truncated,
}

/// What the buffer held.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Data(Bytes),
    /// Read more, then decode again.
    NeedMore,
    /// The body is complete; bytes after it (a next message) stay in the buffer.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Bytes of the current chunk still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// The decoding state of one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoder {
    framing: Framing,
}

impl Decoder {
    /// A body of `n` bytes (0: none).
    pub fn length(n: u64) -> Self {
        Decoder {
            framing: if n == 0 {
                Framing::Done
            } else {
                Framing::Length(n)
            },
        }
    }

    pub fn chunked() -> Self {
        Decoder {
            framing: Framing::Chunked(Chunked::Size),
        }
    }

    /// A body that ends when the peer closes (responses only).
    pub fn until_close() -> Self {
        Decoder {
            framing: Framing::UntilClose,
        }
    }

    pub fn is_end(&self) -> bool {
        self.framing == Framing::Done
    }

    /// Whether the end is only known when the peer closes.
    pub fn ends_at_close(&self) -> bool {
        self.framing == Framing::UntilClose
    }

    /// Bytes still to come, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            Framing::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next piece of body off the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, DecodeError> {
        loop {
            match &mut self.framing {
                Framing::Done => return Ok(Step::End),
                Framing::Length(rest) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = (*rest).min(buf.len() as u64) as usize;
                    *rest -= n as u64;
                    if *rest == 0 {
                        self.framing = Framing::Done;
                    }
                    return Ok(Step::Data(buf.split_to(n).freeze()));
                }
                Framing::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                Framing::Chunked(state) => match *state {
                    Chunked::Size => {
                        let Some(end) = find_crlf(buf) else {
                            if buf.len() > MAX_CHUNK_LINE {
                                return Err(DecodeError::ChunkLineTooLong);
                            }
                            return Ok(Step::NeedMore);
                        };
                        if end > MAX_CHUNK_LINE {
                            return Err(DecodeError::ChunkLineTooLong);
                        }
                        let size = chunk_size(&buf[..end])?;
                        buf.advance(end + 2);
                        *state = if size == 0 {
                            Chunked::Trailers(0)
                        } else {
                            Chunked::Data(size)
                        };
                    }
                    Chunked::Data(rest) => {
                        if buf.is_empty() {
                            return Ok(Step::NeedMore);
                        }
                        let n = rest.min(buf.len() as u64) as usize;
                        let rest = rest - n as u64;
                        *state = if rest == 0 {
                            Chunked::DataEnd
                        } else {
                            Chunked::Data(rest)
                        };
                        return Ok(Step::Data(buf.split_to(n).freeze()));
                    }
                    Chunked::DataEnd => {
                        if buf.len() < 2 {
                            return Ok(Step::NeedMore);
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(DecodeError::ChunkEnd);
                        }
                        buf.advance(2);
                        *state = Chunked::Size;
                    }
                    Chunked::Trailers(seen) => {
                        let Some(end) = find_crlf(buf) else {
                            if seen + buf.len() > MAX_TRAILERS {
                                return Err(DecodeError::Trailers);
                            }
                            return Ok(Step::NeedMore);
                        };
                        buf.advance(end + 2);
                        if end == 0 {
                            self.framing = Framing::Done;
                        } else {
                            *state = Chunked::Trailers(seen + end + 2);
                        }
                    }
                },
            }
        }
    }

    /// The peer closed the connection: the end of an until-close body, else a truncation.
    pub fn at_eof(&mut self) -> Result<Step, DecodeError> {
        match self.framing {
            Framing::UntilClose | Framing::Done => {
                self.framing = Framing::Done;
                Ok(Step::End)
            }
            _ => Err(DecodeError::Truncated),
        }
    }
}

/// The size of a chunk-size line (`1a;name=value`): hex digits only, extensions ignored.
fn chunk_size(line: &[u8]) -> Result<u64, DecodeError> {
    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
    // RFC 9112 allows whitespace only before extensions (BWS before ';'), never inside.
    let digits = digits.trim_ascii_end();
    if digits.is_empty()
        || digits.len() > MAX_SIZE_DIGITS
        || !digits.iter().all(u8::is_ascii_hexdigit)
    {
        return Err(DecodeError::ChunkSize);
    }
    Ok(digits.iter().fold(0u64, |n, d| {
        n * 16 + u64::from((*d as char).to_digit(16).unwrap_or(0))
    }))
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|b| *b == b'\r') {
        let at = from + i;
        if buf.get(at + 1) == Some(&b'\n') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the body and what is left.
    fn run(mut d: Decoder, input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Step::Data(b) => body.extend_from_slice(&b),
                Step::End => {
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&input[fed..]);
                    return Ok((body, rest));
                }
                Step::NeedMore if fed < input.len() => {
                    let n = step.min(input.len() - fed);
                    buf.extend_from_slice(&input[fed..fed + n]);
                    fed += n;
                }
                Step::NeedMore => {
                    d.at_eof()?;
                    return Ok((body, buf.to_vec()));
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_in_any_pieces_and_leave_the_next_message() {
        let wire = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-t: 1\r\n\r\nGET / HTTP/1.1\r\n";
        for step in [1, 2, 7, 1000] {
            let (body, rest) = run(Decoder::chunked(), wire, step).unwrap();
            assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert_eq!(rest, b"GET / HTTP/1.1\r\n", "step {step}");
        }
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"x\r\nhello\r\n0\r\n\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5 5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"fffffffffffffffff\r\n",
            b"\r\n",
        ] {
            assert!(
                run(Decoder::chunked(), bad, 3).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Truncated: the peer closed in the middle.
        assert_eq!(
            run(Decoder::chunked(), b"5\r\nhel", 100),
            Err(DecodeError::Truncated)
        );
        let long = format!("{}\r\n", "1".repeat(5000));
        assert_eq!(
            run(Decoder::chunked(), long.as_bytes(), 100),
            Err(DecodeError::ChunkLineTooLong)
        );
    }

    #[test]
    fn lengths_stop_exactly_and_until_close_takes_everything() {
        let (body, rest) = run(Decoder::length(5), b"helloGET", 3).unwrap();
        assert_eq!((&body[..], &rest[..]), (&b"hello"[..], &b"GET"[..]));
        assert!(Decoder::length(0).is_end());
        assert_eq!(
            run(Decoder::length(10), b"short", 100),
            Err(DecodeError::Truncated)
        );
        let (body, _) = run(Decoder::until_close(), b"all of it", 4).unwrap();
        assert_eq!(body, b"all of it");
    }
}
