//! Finds where a chunked body (RFC 9112 §7.1) ends while its bytes pass through
//! unchanged, and hands out the data inside the chunks for the rare peer that needs it
//! decoded (an HTTP/1.0 client).

/// A chunked body that cannot be followed: weir answers 400 (request) or 502 (response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub(super) struct ChunkError(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

#[derive(Debug, Clone)]
pub(super) struct ChunkedScanner {
    state: State,
    /// The current chunk's size, then what is left of it.
    size: u64,
    digits: u8,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner {
            state: State::Size,
            size: 0,
            digits: 0,
        }
    }
}

impl ChunkedScanner {
    /// True once the last chunk and the trailers went by.
    pub(super) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `input`, calling `on_data` with each piece of chunk data, and returns how
    /// many bytes of `input` belong to the body: all of them, or fewer when the body
    /// ends inside `input` (what follows is the next message).
    pub(super) fn scan(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let n = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                on_data(&input[i..i + n]);
                i += n;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
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
                    None => match b {
                        b'\r' => State::SizeLf,
                        b';' | b' ' | b'\t' => State::Extension,
                        _ => return Err(ChunkError("invalid byte after chunk size")),
                    },
                },
                State::Extension => match b {
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(ChunkError("bare LF in chunk extension")),
                    _ => State::Extension,
                },
                State::SizeLf => match (b, self.size) {
                    (b'\n', 0) => State::TrailerStart,
                    (b'\n', _) => State::Data,
                    _ => return Err(ChunkError("CRLF expected after chunk size")),
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
                    _ => State::TrailerLine,
                },
                State::TrailerLine => match b {
                    b'\r' => State::TrailerLf,
                    _ => State::TrailerLine,
                },
                State::TrailerLf => match b {
                    b'\n' => State::TrailerStart,
                    _ => return Err(ChunkError("CRLF expected after a trailer")),
                },
                State::EndLf => match b {
                    b'\n' => State::Done,
                    _ => return Err(ChunkError("CRLF expected at the end")),
                },
                State::Data | State::Done => unreachable!("handled above"),
            };
        }
        Ok(i)
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

    fn scan_all(pieces: &[&[u8]]) -> (Vec<u8>, usize, bool) {
        let mut s = ChunkedScanner::default();
        let mut data = Vec::new();
        let mut used = 0;
        for p in pieces {
            used += s.scan(p, |d| data.extend_from_slice(d)).unwrap();
        }
        (data, used, s.is_done())
    }

    #[test]
    fn finds_the_end_and_the_data_across_any_split() {
        let body = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for cut in 0..body.len() {
            let (data, used, done) = scan_all(&[&body[..cut], &body[cut..]]);
            assert_eq!(data, b"hello0123456789", "cut at {cut}");
            assert_eq!(used, end, "cut at {cut}");
            assert!(done);
        }
    }

    #[test]
    fn refuses_malformed_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"5\nhello",
            b"2\r\nabX",
            b"0\r\n\r\r",
            b"1234567890abcdef0\r\n",
        ] {
            let mut s = ChunkedScanner::default();
            assert!(
                s.scan(bad, |_| {}).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
