//! A connection's read buffer: bytes read from a socket and not yet handled, kept in
//! one allocation reused for every request of the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// What a connection starts with; enough for a typical request or response head and a
/// small body, so most exchanges take one read each way.
pub(crate) const INITIAL: usize = 8 * 1024;

#[derive(Debug)]
pub(crate) struct Buffer {
    /// Always fully initialised, so reads need no unsafe code.
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buffer {
    pub(crate) fn new() -> Self {
        Self::with_capacity(INITIAL)
    }

    pub(crate) fn with_capacity(n: usize) -> Self {
        Buffer {
            data: vec![0; n],
            start: 0,
            end: 0,
        }
    }

    /// The bytes read and not yet consumed.
    #[inline]
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes as handled.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops everything unread.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Gives back memory a large head made the buffer grow to, once it is empty.
    pub(crate) fn shrink_when_empty(&mut self) {
        if self.is_empty() && self.data.len() > INITIAL {
            self.data = vec![0; INITIAL];
        }
    }

    /// Makes room for more bytes: moves the unread ones to the front, or grows the
    /// buffer up to `limit`. False when it is full at `limit`.
    fn make_room(&mut self, limit: usize) -> bool {
        if self.end < self.data.len() {
            return true;
        }
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            return true;
        }
        if self.data.len() < limit {
            let grown = (self.data.len() * 2).max(1024).min(limit);
            self.data.resize(grown, 0);
            return true;
        }
        false
    }

    /// Reads once from `io`, keeping at most `limit` unread bytes. `Ok(0)` means the
    /// peer closed; a full buffer is an `InvalidData` error.
    pub(crate) async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        limit: usize,
    ) -> io::Result<usize> {
        if !self.make_room(limit) {
            return Err(io::ErrorKind::InvalidData.into());
        }
        let n = io.read(&mut self.data[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// [`Buffer::read_from`] for code that polls.
    pub(crate) fn poll_read_from<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
        limit: usize,
    ) -> Poll<io::Result<usize>> {
        if !self.make_room(limit) {
            return Poll::Ready(Err(io::ErrorKind::InvalidData.into()));
        }
        let mut buf = ReadBuf::new(&mut self.data[self.end..]);
        match Pin::new(io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                self.end += n;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Appends `bytes` read elsewhere (the first bytes of a connection).
    pub(crate) fn extend_from(&mut self, bytes: &[u8]) {
        let end = self.end + bytes.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[self.end..end].copy_from_slice(bytes);
        self.end = end;
    }

    /// True when there is no room left below `limit` (a read would fail).
    pub(crate) fn is_full(&self, limit: usize) -> bool {
        self.start == 0 && self.end == self.data.len() && self.data.len() >= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_consumes_compacts_and_grows_to_the_limit() {
        let mut b = Buffer::new();
        let input = vec![b'x'; INITIAL + 100];
        let mut src: &[u8] = &input;
        assert_eq!(b.read_from(&mut src, 2 * INITIAL).await.unwrap(), INITIAL);
        b.consume(10);
        assert_eq!(b.len(), INITIAL - 10);
        // Full at the end: the unread bytes move to the front.
        assert_eq!(b.read_from(&mut src, 2 * INITIAL).await.unwrap(), 10);
        assert_eq!(b.len(), INITIAL);
        // Full from the front: the buffer grows.
        assert_eq!(b.read_from(&mut src, 2 * INITIAL).await.unwrap(), 90);
        b.consume(b.len());
        assert!(b.is_empty());
        b.shrink_when_empty();
        let mut more: &[u8] = &input;
        while b.read_from(&mut more, INITIAL).await.unwrap() > 0 {
            if b.is_full(INITIAL) {
                break;
            }
        }
        assert!(b.is_full(INITIAL));
        let err = b.read_from(&mut more, INITIAL).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
