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

/// Reassembles lines from arbitrary chunks of a byte stream.
pub struct LineDecoder {
    buf: Vec<u8>,
    max: usize,
}

impl LineDecoder {
    pub fn new(max: usize) -> Self {
        LineDecoder {
            buf: Vec::new(),
            max,
        }
    }

    /// Adds a chunk and returns the complete messages it finished, with their sizes in bytes.
    pub fn push<T: DeserializeOwned>(
        &mut self,
        chunk: &[u8],
    ) -> Result<Vec<(T, usize)>, FrameError> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = rest.split_at(i);
            rest = &after[1..];
            if self.buf.len() + line.len() > self.max {
                return Err(FrameError::TooLong(self.max));
            }
            let size = self.buf.len() + line.len();
            let message = if self.buf.is_empty() {
                serde_json::from_slice(line)?
            } else {
                self.buf.extend_from_slice(line);
                let m = serde_json::from_slice(&self.buf)?;
                self.buf.clear();
                m
            };
            out.push((message, size));
        }
        if self.buf.len() + rest.len() > self.max {
            return Err(FrameError::TooLong(self.max));
        }
        self.buf.extend_from_slice(rest);
        Ok(out)
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
        assert!(d.push::<ToController>(first).unwrap().is_empty());
        let got: Vec<(ToController, usize)> = d.push(second).unwrap();
        assert_eq!(
            got,
            vec![
                (ToController::Ack { version: 1 }, a.len() - 1),
                (ToController::Ack { version: 2 }, b.len() - 1)
            ]
        );
    }

    #[test]
    fn oversized_and_invalid_messages_are_errors() {
        let mut d = LineDecoder::new(8);
        assert!(matches!(
            d.push::<ToController>(b"0123456789"),
            Err(FrameError::TooLong(8))
        ));
        let mut d = LineDecoder::new(1024);
        assert!(matches!(
            d.push::<ToController>(b"{\"type\":\"hello\"}\n"),
            Err(FrameError::Invalid(_))
        ));
    }
}
