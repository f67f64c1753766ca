//! Telling HTTP/2 with prior knowledge (h2c) from HTTP/1.1 on a plaintext connection by
//! its first bytes. The bytes are read, not peeked: a client that sends a byte and
//! stalls, or closes, is seen at once, and what was read is handed to the codec chosen.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The HTTP/2 connection preface a prior-knowledge client sends first (RFC 9113 §3.4).
pub(crate) const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A GOAWAY frame on stream 0, last stream 0, error PROTOCOL_ERROR (RFC 9113 §6.8).
const GOAWAY_PROTOCOL_ERROR: [u8; 17] = [
    0, 0, 8, // length
    7, // type GOAWAY
    0, // flags
    0, 0, 0, 0, // stream 0
    0, 0, 0, 0, // last stream id
    0, 0, 0, 1, // PROTOCOL_ERROR
];

/// What the first bytes say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Detected {
    /// HTTP/1.1; these bytes were read already, the first of them at this instant
    /// (the request-header timeout counts from it).
    Http1(Vec<u8>, Instant),
    /// The HTTP/2 preface (and whatever followed it in the same reads).
    Http2(Vec<u8>),
    /// A client that begins like HTTP/2 (`PRI `) but does not send its preface, or an
    /// HTTP/1.1 request with the `PRI` method, which only HTTP/2 may use.
    BadPreface,
    /// The client closed before sending anything.
    Closed,
}

/// Reads until the first bytes decide: the first byte within `first_byte` (the idle
/// timeout: a connection may be opened ahead of its first request), the rest within
/// `rest` of it (the request-header timeout). `Closed` when either runs out.
pub(crate) async fn detect<R: AsyncRead + Unpin>(
    io: &mut R,
    first_byte: Duration,
    rest: Duration,
) -> io::Result<Detected> {
    let mut buf = Vec::with_capacity(1024);
    let mut deadline = Instant::now() + first_byte;
    let mut first_at = None;
    loop {
        let Ok(read) = tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await else {
            return Ok(Detected::Closed);
        };
        if read? == 0 {
            return Ok(match first_at {
                Some(at) => Detected::Http1(buf, at),
                None => Detected::Closed,
            });
        }
        let first = *first_at.get_or_insert_with(Instant::now);
        deadline = deadline.min(first + rest);
        if let Some(decided) = decide(&buf) {
            return Ok(match decided {
                Kind::Http1 => Detected::Http1(buf, first),
                Kind::Http2 => Detected::Http2(buf),
                Kind::Bad => Detected::BadPreface,
            });
        }
        if buf.len() == buf.capacity() {
            buf.reserve(1024);
        }
    }
}

enum Kind {
    Http1,
    Http2,
    Bad,
}

/// `None` while the bytes so far are the start of both an HTTP/2 preface and a
/// request line.
fn decide(buf: &[u8]) -> Option<Kind> {
    const PRI: &[u8] = b"PRI ";
    let n = buf.len().min(PRI.len());
    if buf[..n] != PRI[..n] {
        return Some(Kind::Http1);
    }
    if buf.len() < PRI.len() {
        return None;
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] != H2_PREFACE[..n] {
        return Some(Kind::Bad);
    }
    (n == H2_PREFACE.len()).then_some(Kind::Http2)
}

/// Answers a bad preface as HTTP/2 does (a connection error of type PROTOCOL_ERROR)
/// and closes.
pub(crate) async fn refuse<W: AsyncWrite + Unpin>(io: &mut W) {
    use tokio::io::AsyncWriteExt;
    let _ = io.write_all(&GOAWAY_PROTOCOL_ERROR).await;
    let _ = io.shutdown().await;
}

/// A connection whose first bytes were read already: they are read again first.
#[derive(Debug)]
pub(crate) struct Prefixed<I> {
    prefix: Vec<u8>,
    at: usize,
    io: I,
}

impl<I> Prefixed<I> {
    pub(crate) fn new(prefix: Vec<u8>, io: I) -> Self {
        Prefixed { prefix, at: 0, io }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn detect_all(pieces: &[&[u8]]) -> Detected {
        let mut builder = tokio_test_io(pieces);
        let second = Duration::from_secs(1);
        match detect(&mut builder, second, second).await.unwrap() {
            Detected::Http1(bytes, _) => Detected::Http1(bytes, epoch()),
            other => other,
        }
    }

    /// One instant for every `Http1` result, so results compare by their bytes.
    fn epoch() -> Instant {
        static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *EPOCH.get_or_init(Instant::now)
    }

    /// A reader that hands out `pieces` one read at a time, then EOF.
    fn tokio_test_io(pieces: &[&[u8]]) -> impl AsyncRead + Unpin {
        let chunks: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        Pieces(chunks.into_iter().rev().collect())
    }

    struct Pieces(Vec<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(p) = self.get_mut().0.pop() {
                buf.put_slice(&p);
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn first_bytes_decide() {
        let get = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(
            detect_all(&[get]).await,
            Detected::Http1(get.to_vec(), epoch())
        );
        // `POST` shares its first letter with `PRI`.
        assert_eq!(
            detect_all(&[b"P", b"OST / HTTP/1.1\r\n"]).await,
            Detected::Http1(b"POST / HTTP/1.1\r\n".to_vec(), epoch())
        );
        let mut preface = H2_PREFACE.to_vec();
        preface.extend_from_slice(b"\x00\x00\x00\x04");
        assert_eq!(
            detect_all(&[&preface[..3], &preface[3..20], &preface[20..]]).await,
            Detected::Http2(preface.clone())
        );
        assert_eq!(
            detect_all(&[b"PRI * HTTP/1.1\r\n\r\n"]).await,
            Detected::BadPreface
        );
        assert_eq!(
            detect_all(&[b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"]).await,
            Detected::BadPreface
        );
        assert_eq!(detect_all(&[]).await, Detected::Closed);
        assert_eq!(
            detect_all(&[b"PR"]).await,
            Detected::Http1(b"PR".to_vec(), epoch())
        );
    }

    #[tokio::test]
    async fn a_prefixed_stream_reads_its_prefix_first() {
        let mut io = Prefixed::new(b"abc".to_vec(), tokio_test_io(&[b"def"]));
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "abcdef");
    }
}
