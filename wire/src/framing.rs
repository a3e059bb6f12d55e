//! NDJSON framing: one JSON message per line, bounded in size.

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a message is longer than {0} bytes")]
    TooLong(usize),
    #[error("a message is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// One message as a line.
pub fn encode<T: Serialize>(message: &T) -> bytes::Bytes {
    let mut line = serde_json::to_vec(message).expect("wire messages always serialize");
    line.push(b'\n');
    line.into()
}

/// Reassembles lines from arbitrary chunks of a byte stream. A bad line (too long, not
/// valid) is reported on its own and skipped: the stream stays usable.
pub struct LineDecoder {
    buf: Vec<u8>,
    max: usize,
    /// Inside a line that is already too long: dropping bytes until its end.
    discarding: bool,
    /// Bytes of that line dropped so far, so its size is reported whole.
    dropped: usize,
}

impl LineDecoder {
    pub fn new(max: usize) -> Self {
        LineDecoder {
            buf: Vec::new(),
            max,
            discarding: false,
            dropped: 0,
        }
    }

    /// Adds a chunk and returns each line it finished, decoded or not, with its size in bytes.
    pub fn push<T: DeserializeOwned>(
        &mut self,
        chunk: &[u8],
    ) -> Vec<(Result<T, FrameError>, usize)> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = rest.split_at(i);
            rest = &after[1..];
            let size = self.dropped + self.buf.len() + line.len();
            if self.discarding || size > self.max {
                self.discarding = false;
                self.dropped = 0;
                self.buf.clear();
                out.push((Err(FrameError::TooLong(self.max)), size));
                continue;
            }
            let message = if self.buf.is_empty() {
                serde_json::from_slice(line)
            } else {
                self.buf.extend_from_slice(line);
                let m = serde_json::from_slice(&self.buf);
                self.buf.clear();
                m
            };
            out.push((message.map_err(FrameError::from), size));
        }
        if self.discarding || self.buf.len() + rest.len() > self.max {
            self.discarding = true;
            self.dropped += self.buf.len() + rest.len();
            self.buf.clear();
        } else {
            self.buf.extend_from_slice(rest);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToController;

    #[test]
    fn lines_split_across_chunks_are_reassembled() {
        let mut d = LineDecoder::new(1024);
        let a = encode(&ToController::Ack { version: 1 });
        let b = encode(&ToController::Ack { version: 2 });
        let all = [a.as_ref(), b.as_ref()].concat();
        let (first, second) = all.split_at(5);
        assert!(d.push::<ToController>(first).is_empty());
        let got: Vec<ToController> = d
            .push(second)
            .into_iter()
            .map(|(m, _)| m.unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                ToController::Ack { version: 1 },
                ToController::Ack { version: 2 }
            ]
        );
    }

    #[test]
    fn bad_lines_are_reported_alone_and_the_stream_goes_on() {
        let mut d = LineDecoder::new(32);
        let mut got = d.push::<ToController>(&[b'x'; 40]);
        got.extend(d.push::<ToController>(b"yyy\n{\"type\":\"hello\"}\n"));
        got.extend(d.push::<ToController>(&encode(&ToController::Ack { version: 9 })));
        assert!(matches!(got[0].0, Err(FrameError::TooLong(32))));
        assert!(matches!(got[1].0, Err(FrameError::Invalid(_))));
        assert_eq!(
            got[2].0.as_ref().unwrap(),
            &ToController::Ack { version: 9 }
        );
    }
}
