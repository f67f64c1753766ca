//! The idle timeout of HTTP/2 client connections. hyper's server has none, so a client
//! that went quiet (or vanished behind a NAT without a FIN) would hold its connection
//! forever. The connection's I/O is wrapped to note when bytes last moved either way;
//! after `idle_timeout` without any, the connection gets a graceful GOAWAY, which lets
//! a stream still open finish (as a drain does) and closes the connection after it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When a connection's bytes last moved, shared between its I/O and its server loop.
#[derive(Debug, Clone)]
pub(super) struct Activity {
    since: Instant,
    /// Milliseconds from `since` to the last read or write.
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            since: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = self.since.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// The instant the connection becomes idle for `timeout`, unless bytes move first.
    pub(super) fn idle_at(&self, timeout: Duration) -> Instant {
        self.since + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + timeout
    }

    /// Wraps `io` so that its reads and writes count as activity.
    pub(super) fn watch<I>(&self, io: I) -> Watched<I> {
        Watched {
            inner: io,
            activity: self.clone(),
        }
    }
}

/// An I/O stream whose reads and writes are noted in an [`Activity`].
#[derive(Debug)]
pub(super) struct Watched<I> {
    inner: I,
    activity: Activity,
}

impl<I> Watched<I> {
    fn note_written(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_written(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_written(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
