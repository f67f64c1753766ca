//! Where an HTTP/1.1 message body ends and where its data is: counts down a
//! `Content-Length`, decodes chunked framing, or runs until the connection closes.

use super::buffer::Buffer;
use super::chunked::{ChunkError, ChunkedDecoder};
use super::head::Framing;

#[derive(Debug, Clone)]
pub(crate) enum BodyState {
    Done,
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// What [`BodyState::step`] found at the front of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Framing bytes to skip first.
    pub skip: usize,
    /// Data bytes after them, to take with [`BodyState::advance`].
    pub data: usize,
}

impl BodyState {
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => BodyState::UntilClose,
        }
    }

    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, BodyState::Done)
    }

    /// Reads the framing at the front of `input` up to the next data (see [`Step`]).
    /// A step with no data and nothing to skip needs more input (or the body ended).
    #[inline]
    pub(crate) fn step(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        match self {
            BodyState::Done => Ok(Step { skip: 0, data: 0 }),
            BodyState::Length(left) => Ok(Step {
                skip: 0,
                data: input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX)),
            }),
            BodyState::Chunked(decoder) => {
                let (skip, data) = decoder.step(input)?;
                Ok(Step { skip, data })
            }
            BodyState::UntilClose => Ok(Step {
                skip: 0,
                data: input.len(),
            }),
        }
    }

    /// `n` data bytes found by the last step were taken. A chunked body is done only
    /// once a later step read its last chunk and trailers.
    #[inline]
    pub(crate) fn advance(&mut self, n: usize) {
        match self {
            BodyState::Length(left) => {
                *left -= n as u64;
                if *left == 0 {
                    *self = BodyState::Done;
                }
            }
            BodyState::Chunked(decoder) => decoder.advance(n),
            BodyState::Done | BodyState::UntilClose => {}
        }
    }

    /// Notes that a step found the end of a chunked body (the decoder is done).
    #[inline]
    pub(crate) fn settle(&mut self) -> Option<Vec<u8>> {
        if let BodyState::Chunked(decoder) = self
            && decoder.is_done()
        {
            let trailers = std::mem::take(decoder).into_trailers();
            *self = BodyState::Done;
            return Some(trailers);
        }
        None
    }

    /// Takes everything of the body in `buf` (data and framing), calling `on_data` with
    /// each piece of data; stops at the body's end, leaving what follows. Returns the
    /// trailer fields when the body ended chunked with some.
    pub(crate) fn drain(
        &mut self,
        buf: &mut Buffer,
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<Option<Vec<u8>>, ChunkError> {
        loop {
            let step = self.step(buf.filled())?;
            buf.consume(step.skip);
            if step.data > 0 {
                on_data(&buf.filled()[..step.data]);
                buf.consume(step.data);
                self.advance(step.data);
            }
            if let Some(trailers) = self.settle() {
                return Ok(Some(trailers).filter(|t| !t.is_empty()));
            }
            if self.is_done() || (step.skip == 0 && step.data == 0) {
                return Ok(None);
            }
        }
    }

    /// Drops whatever of the body is already buffered; true when that was all of it,
    /// so the connection can go on to the next message.
    pub(crate) fn skip_buffered(&mut self, buf: &mut Buffer) -> bool {
        self.drain(buf, |_| {}).is_ok() && self.is_done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(bytes: &[u8]) -> Buffer {
        let mut buf = Buffer::with_capacity(bytes.len().max(1));
        buf.extend_from(bytes);
        buf
    }

    #[test]
    fn length_and_chunked_bodies_end_where_they_say() {
        let mut buf = buffer(b"hello, worldNEXT");
        let mut body = BodyState::new(Framing::Length(12));
        let mut data = Vec::new();
        assert_eq!(
            body.drain(&mut buf, |d| data.extend_from_slice(d)),
            Ok(None)
        );
        assert!(body.is_done());
        assert_eq!(
            (&data[..], buf.filled()),
            (&b"hello, world"[..], &b"NEXT"[..])
        );

        let mut buf = buffer(b"3\r\nabc\r\n0\r\nx-t: 1\r\n\r\nNEXT");
        let mut body = BodyState::new(Framing::Chunked);
        let mut data = Vec::new();
        let trailers = body.drain(&mut buf, |d| data.extend_from_slice(d));
        assert_eq!(trailers, Ok(Some(b"x-t: 1\r\n".to_vec())));
        assert!(body.is_done());
        assert_eq!((&data[..], buf.filled()), (&b"abc"[..], &b"NEXT"[..]));
    }

    #[test]
    fn a_partial_body_waits_for_more() {
        let mut buf = buffer(b"5\r\nhe");
        let mut body = BodyState::new(Framing::Chunked);
        assert!(!body.skip_buffered(&mut buf));
        assert!(buf.is_empty());
        assert!(!body.is_done());
    }
}
