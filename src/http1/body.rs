//! Where a message body ends: counts down a `Content-Length`, follows chunked framing,
//! or runs until the connection closes, while the bytes themselves pass through as is.

use super::buffer::Buffer;
use super::chunked::{ChunkError, ChunkedScanner};
use super::head::Framing;

#[derive(Debug, Clone)]
pub(super) enum BodyState {
    Done,
    Length(u64),
    Chunked(ChunkedScanner),
    UntilClose,
}

impl BodyState {
    pub(super) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(ChunkedScanner::default()),
            Framing::UntilClose => BodyState::UntilClose,
        }
    }

    pub(super) fn is_done(&self) -> bool {
        matches!(self, BodyState::Done)
    }

    /// How many bytes at the start of `bytes` belong to the body (the rest is the next
    /// message), moving past them; `on_data` receives the payload within them.
    pub(super) fn take(
        &mut self,
        bytes: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        match self {
            BodyState::Done => Ok(0),
            BodyState::Length(left) => {
                let n = bytes
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                on_data(&bytes[..n]);
                *left -= n as u64;
                if *left == 0 {
                    *self = BodyState::Done;
                }
                Ok(n)
            }
            BodyState::Chunked(scanner) => {
                let n = scanner.scan(bytes, on_data)?;
                if scanner.is_done() {
                    *self = BodyState::Done;
                }
                Ok(n)
            }
            BodyState::UntilClose => {
                on_data(bytes);
                Ok(bytes.len())
            }
        }
    }

    /// Drops whatever of the body is already buffered; true when that was all of it,
    /// so the connection can go on to the next request.
    pub(super) fn skip_buffered(&mut self, buf: &mut Buffer) -> bool {
        match self.take(buf.filled(), |_| {}) {
            Ok(n) => buf.consume(n),
            Err(_) => return false,
        }
        self.is_done()
    }
}
