//! The clocks of an HTTP/2 client connection as a whole.
//!
//! Idle: hyper's server has no idle timeout, so a client that went quiet (or vanished
//! behind a NAT without a FIN) would hold its connection forever. As Envoy's
//! `idle_timeout`, a connection is idle while it has no open stream: after
//! `idle_timeout` of that it gets a graceful GOAWAY, and if the client has not closed
//! it `drain_timeout` later (a vanished one never answers the GOAWAY's PING), weir
//! closes it. A stream that is open but silent (a long poll, a watch) never makes its
//! connection idle.
//!
//! Stalled: a client can open streams and never grant flow-control window for their
//! responses. hyper then never polls those response bodies, so no per-stream clock can
//! run, and each stream holds its upstream connection. When streams stay open and none
//! of them moves (a frame either way) over a whole stream idle timeout, the connection
//! gets the same GOAWAY and close. (Checked once per timeout, so a stall is seen after
//! one to two timeouts.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::telemetry::Activity;

/// The streams a connection has open, since when it has had none, and when any of them
/// last moved.
#[derive(Debug, Clone)]
pub(crate) struct OpenStreams(Arc<Counts>);

#[derive(Debug)]
struct Counts {
    since: Instant,
    open: AtomicUsize,
    /// Milliseconds from `since` to the last time `open` went to zero.
    none_since_ms: AtomicU64,
    activity: Arc<Activity>,
}

impl OpenStreams {
    pub(crate) fn new() -> Self {
        OpenStreams(Arc::new(Counts {
            since: Instant::now(),
            open: AtomicUsize::new(0),
            none_since_ms: AtomicU64::new(0),
            activity: Arc::new(Activity::default()),
        }))
    }

    /// Counts a stream as open until the guard drops (with its response body, or with
    /// the request's future when the client reset the stream).
    pub(crate) fn open(&self) -> StreamGuard {
        self.0.open.fetch_add(1, Ordering::Relaxed);
        self.0.activity.moved();
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

    /// Whether streams are open, and the activity count (compare two readings one
    /// stream idle timeout apart: equal means stalled).
    pub(crate) fn activity(&self) -> Option<u64> {
        (self.0.open.load(Ordering::Relaxed) > 0).then(|| self.0.activity.moves())
    }
}

/// One open stream of a connection (see [`OpenStreams::open`]).
#[derive(Debug)]
pub(crate) struct StreamGuard(Arc<Counts>);

impl StreamGuard {
    /// The connection's activity clock, for what a stream moves.
    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.0.activity
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counts = &self.0;
        counts.activity.moved();
        if counts.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            let ms = counts.since.elapsed().as_millis() as u64;
            counts.none_since_ms.store(ms, Ordering::Relaxed);
        }
    }
}
