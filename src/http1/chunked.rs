//! Decoding chunked framing (RFC 9112 §7.1), strictly.
//!
//! weir never forwards chunked framing as it came: it decodes it here and writes the
//! data again in canonical framing (`upstream::h1`, `codec::h1`). The decoder accepts
//! only what every HTTP/1.1 implementation reads the same way: CRLF line ends (a bare
//! LF or CR is an error, not a line end), hex sizes, chunk extensions of visible
//! characters, and trailer fields that are valid header fields (no obs-fold, no control
//! bytes). A peer that ends a body where weir would not, or the other way round, is what
//! request smuggling is made of; refusing the ambiguous cases closes that class.

/// A chunked body that cannot be followed: weir answers 400 (request) or 502 (response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub(crate) struct ChunkError(pub &'static str);

/// The largest trailer section weir keeps (as the head limit keeps heads bounded).
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    /// Spaces or tabs after the size (BWS before a `;`).
    SizeSpace,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// The current chunk's size, then what is left of it.
    size: u64,
    digits: u8,
    /// The trailer fields read so far, each as `name: value\r\n`.
    trailers: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            trailers: Vec::new(),
        }
    }
}

/// `tchar` (RFC 9110 §5.6.2): the bytes a field name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte that may appear in a field value or a chunk extension: visible characters,
/// space, tab and obs-text.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

impl ChunkedDecoder {
    /// True once the last chunk and the trailers went by.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer fields, each `name: value\r\n`, once the body ended.
    #[cfg(test)]
    fn trailers(&self) -> &[u8] {
        &self.trailers
    }

    /// The trailer fields, each `name: value\r\n`.
    pub(crate) fn into_trailers(self) -> Vec<u8> {
        self.trailers
    }

    /// Reads framing at the front of `input` up to the next chunk data. Returns how many
    /// framing bytes it read, and how many data bytes follow them in `input` (the
    /// caller takes them with [`ChunkedDecoder::advance`]). `(n, 0)` means the input
    /// ran out, or the body ended.
    pub(crate) fn step(&mut self, input: &[u8]) -> Result<(usize, usize), ChunkError> {
        let mut i = 0;
        loop {
            match self.state {
                State::Data => {
                    let left = usize::try_from(self.size).unwrap_or(usize::MAX);
                    return Ok((i, left.min(input.len() - i)));
                }
                State::Done => return Ok((i, 0)),
                _ if i == input.len() => return Ok((i, 0)),
                _ => {}
            }
            let b = input[i];
            i += 1;
            self.state = self.next(b)?;
        }
    }

    /// `n` data bytes of the current chunk were taken.
    pub(crate) fn advance(&mut self, n: usize) {
        debug_assert!(self.state == State::Data && n as u64 <= self.size);
        self.size -= n as u64;
        if self.size == 0 {
            self.state = State::DataCr;
        }
    }

    fn next(&mut self, b: u8) -> Result<State, ChunkError> {
        Ok(match self.state {
            State::Size => match hex(b) {
                Some(d) => {
                    self.digits += 1;
                    if self.digits > 15 {
                        return Err(ChunkError("chunk size too large"));
                    }
                    self.size = self.size * 16 + u64::from(d);
                    State::Size
                }
                None if self.digits == 0 => return Err(ChunkError("chunk size expected")),
                None => self.after_size(b)?,
            },
            State::SizeSpace => self.after_size(b)?,
            State::Extension => match b {
                b'\r' => State::SizeLf,
                b if is_field_byte(b) => State::Extension,
                _ => return Err(ChunkError("invalid byte in a chunk extension")),
            },
            State::SizeLf => match (b, self.size) {
                (b'\n', 0) => State::TrailerStart,
                (b'\n', _) => State::Data,
                _ => return Err(ChunkError("CRLF expected after the chunk size")),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(ChunkError("CRLF expected after chunk data")),
            },
            State::DataLf => match b {
                b'\n' => {
                    self.digits = 0;
                    State::Size
                }
                _ => return Err(ChunkError("CRLF expected after chunk data")),
            },
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                b if is_tchar(b) => {
                    self.keep(b)?;
                    State::TrailerName
                }
                b' ' | b'\t' => return Err(ChunkError("obs-fold in the trailer section")),
                _ => return Err(ChunkError("invalid trailer field")),
            },
            State::TrailerName => match b {
                b':' => {
                    self.keep(b':')?;
                    self.keep(b' ')?;
                    State::TrailerValue
                }
                b if is_tchar(b) => {
                    self.keep(b)?;
                    State::TrailerName
                }
                _ => return Err(ChunkError("invalid trailer field name")),
            },
            State::TrailerValue => match b {
                b'\r' => State::TrailerLf,
                // Leading spaces are not part of the value.
                b' ' | b'\t' if self.trailers.ends_with(b": ") => State::TrailerValue,
                b if is_field_byte(b) => {
                    self.keep(b)?;
                    State::TrailerValue
                }
                _ => return Err(ChunkError("invalid byte in a trailer field")),
            },
            State::TrailerLf => match b {
                b'\n' => {
                    self.keep_trimmed_end();
                    self.trailers.extend_from_slice(b"\r\n");
                    State::TrailerStart
                }
                _ => return Err(ChunkError("CRLF expected after a trailer field")),
            },
            State::EndLf => match b {
                b'\n' => State::Done,
                _ => return Err(ChunkError("CRLF expected at the end of the body")),
            },
            State::Data | State::Done => unreachable!("handled by step"),
        })
    }

    /// After the size's digits: a chunk extension, spaces before one, or the line end.
    fn after_size(&self, b: u8) -> Result<State, ChunkError> {
        Ok(match b {
            b'\r' => State::SizeLf,
            b';' => State::Extension,
            b' ' | b'\t' => State::SizeSpace,
            _ => return Err(ChunkError("invalid byte after the chunk size")),
        })
    }

    fn keep(&mut self, b: u8) -> Result<(), ChunkError> {
        if self.trailers.len() >= MAX_TRAILERS {
            return Err(ChunkError("trailer section too large"));
        }
        self.trailers.push(b);
        Ok(())
    }

    /// Trailing spaces are not part of a field value either.
    fn keep_trimmed_end(&mut self) {
        while self.trailers.ends_with(b" ") || self.trailers.ends_with(b"\t") {
            if self.trailers.ends_with(b": ") {
                break;
            }
            self.trailers.pop();
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `pieces` in turn; returns the data, the bytes used and whether it ended.
    fn decode(pieces: &[&[u8]]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = ChunkedDecoder::default();
        let mut data = Vec::new();
        let mut used = 0;
        for p in pieces {
            let mut at = 0;
            loop {
                let (skip, n) = d.step(&p[at..])?;
                at += skip;
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&p[at..at + n]);
                d.advance(n);
                at += n;
            }
            used += at;
        }
        Ok((data, used, d.is_done()))
    }

    #[test]
    fn finds_the_end_and_the_data_across_any_split() {
        let body = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for cut in 0..body.len() {
            let (data, used, done) = decode(&[&body[..cut], &body[cut..]]).unwrap();
            assert_eq!(data, b"hello0123456789", "cut at {cut}");
            assert_eq!(used, end, "cut at {cut}");
            assert!(done);
        }
    }

    #[test]
    fn keeps_trailers_canonical() {
        let mut d = ChunkedDecoder::default();
        let body = b"0\r\nGrpc-Status:  0 \r\nx-b:1\r\n\r\n";
        assert_eq!(d.step(body).unwrap(), (body.len(), 0));
        assert!(d.is_done());
        assert_eq!(d.trailers(), b"Grpc-Status: 0\r\nx-b: 1\r\n");
    }

    #[test]
    fn refuses_ambiguous_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"5\nhello",
            b"2\r\nabX",
            b"0\r\n\r\r",
            b"1234567890abcdef0\r\n",
            // A bare LF ends the trailer section for some peers: never for weir.
            b"0\r\n\n",
            b"0\r\nx: 1\n\r\n",
            b"0\r\nx: a\rb\r\n\r\n",
            b"0\r\nx: 1\r\n y\r\n\r\n",
            b"0\r\nx : 1\r\n\r\n",
            b"0\r\nx: \x00\r\n\r\n",
            b"5;a=\x01\r\nhello\r\n",
            b"5\r\r\nhello\r\n",
            b"0x5\r\nhello\r\n",
        ] {
            assert!(
                decode(&[bad]).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
