//! The idle timeout of HTTP/2 client connections. hyper's server has none, so a client
//! that went quiet (or vanished behind a NAT without a FIN) would hold its connection
//! forever. As Envoy's `idle_timeout`, a connection is idle while it has no open
//! stream: after `idle_timeout` of that it gets a graceful GOAWAY, and if the client
//! has not closed it `drain_timeout` later (a vanished one never answers the GOAWAY's
//! PING), weir closes it. A stream that is open but silent (a long poll, a watch) never
//! makes its connection idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The streams a connection has open, and since when it has had none.
#[derive(Debug, Clone)]
pub(crate) struct OpenStreams(Arc<Counts>);

#[derive(Debug)]
struct Counts {
    since: Instant,
    open: AtomicUsize,
    /// Milliseconds from `since` to the last time `open` went to zero.
    none_since_ms: AtomicU64,
}

impl OpenStreams {
    pub(crate) fn new() -> Self {
        OpenStreams(Arc::new(Counts {
            since: Instant::now(),
            open: AtomicUsize::new(0),
            none_since_ms: AtomicU64::new(0),
        }))
    }

    /// Counts a stream as open until the guard drops (with its response body, or with
    /// the request's future when the client reset the stream).
    pub(crate) fn open(&self) -> StreamGuard {
        self.0.open.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.0.clone())
    }

    /// When the connection becomes idle for `timeout` if no stream opens first;
    /// `None` while a stream is open.
    pub(crate) fn idle_at(&self, timeout: Duration) -> Option<Instant> {
        if self.0.open.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let none_since = Duration::from_millis(self.0.none_since_ms.load(Ordering::Relaxed));
        Some(self.0.since + none_since + timeout)
    }
}

/// One open stream of a connection (see [`OpenStreams::open`]).
#[derive(Debug)]
pub(crate) struct StreamGuard(Arc<Counts>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counts = &self.0;
        if counts.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            let ms = counts.since.elapsed().as_millis() as u64;
            counts.none_since_ms.store(ms, Ordering::Relaxed);
        }
    }
}
