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
//! run, and each stream holds its upstream connection. So every stream counts what it
//! moves (frames either way), and every half stream idle timeout the connection looks
//! at its streams: one that has not moved for a timeout and a half (by then its own
//! clock would have ended it, had it been polled) is stalled, and the connection gets
//! the same GOAWAY and close as an idle one. hyper offers no way to reset one stream
//! from outside its body, so the connection goes, not the stream; the client's other
//! streams have the drain timeout to finish.
//!
//! Shed: the stream idle timeout is minutes, and until it runs out stalled streams keep
//! their destination's places: a few clients that grant no window could leave every
//! other client with 503s that long. So when a destination is full (every place taken:
//! the upstream limiter raises its pressure signal) each connection looks at its
//! streams, and again a second later; a stream whose response waited on the client's
//! window all that time costs its connection a GOAWAY and a close at once (as Envoy's
//! overload manager resets the streams that cost most).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::telemetry::Activity;

/// The streams a connection has open, since when it has had none, and what each of them
/// has moved.
#[derive(Debug, Clone)]
pub(crate) struct OpenStreams(Arc<Counts>);

#[derive(Debug)]
struct Counts {
    since: Instant,
    open: AtomicUsize,
    /// Milliseconds from `since` to the last time `open` went to zero.
    none_since_ms: AtomicU64,
    /// The open streams' activity. Short-lived: an entry whose
    /// stream ended is dropped at the next sweep, or when the list outgrows the
    /// streams open.
    watched: Mutex<Vec<Watched>>,
}

#[derive(Debug)]
struct Watched {
    activity: Weak<Activity>,
    /// The count at the last sweep, and for how many sweeps it has not changed.
    seen: u64,
    still: u8,
    /// The count at the last look under pressure, and whether the stream was then
    /// waiting on its client.
    pressure_seen: u64,
    pressure_waiting: bool,
}

/// What a look under pressure found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shed {
    /// No stream waits on the client.
    Nothing,
    /// Some wait on the client: look again after [`crate::upstream::PRESSURE_EVERY`].
    LookAgain,
    /// A stream waited on the client since the last look: shed the connection.
    Now,
}

/// Sweeps without a move (half a stream idle timeout apart) that make a stall.
const STILL_SWEEPS: u8 = 3;

impl OpenStreams {
    pub(crate) fn new() -> Self {
        OpenStreams(Arc::new(Counts {
            since: Instant::now(),
            open: AtomicUsize::new(0),
            none_since_ms: AtomicU64::new(0),
            watched: Mutex::new(Vec::new()),
        }))
    }

    /// Counts a stream as open until the guard drops (with its response body, or with
    /// the request's future when the client reset the stream).
    pub(crate) fn open(&self) -> StreamGuard {
        let open = self.0.open.fetch_add(1, Ordering::Relaxed) + 1;
        let activity = Arc::new(Activity::default());
        let mut watched = self.0.watched.lock().unwrap_or_else(|e| e.into_inner());
        if watched.len() >= 2 * open + 16 {
            watched.retain(|w| w.activity.strong_count() > 0);
        }
        watched.push(Watched {
            activity: Arc::downgrade(&activity),
            seen: u64::MAX,
            still: 0,
            pressure_seen: u64::MAX,
            pressure_waiting: false,
        });
        drop(watched);
        StreamGuard {
            counts: self.0.clone(),
            activity,
        }
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

    /// Looks at every open stream (call every half stream idle timeout): whether one
    /// has not moved since [`STILL_SWEEPS`] sweeps ago.
    pub(crate) fn sweep(&self) -> bool {
        let mut watched = self.0.watched.lock().unwrap_or_else(|e| e.into_inner());
        let mut stalled = false;
        watched.retain_mut(|w| {
            let Some(activity) = w.activity.upgrade() else {
                return false;
            };
            let moves = activity.moves();
            if moves == w.seen {
                w.still = w.still.saturating_add(1);
                stalled |= w.still >= STILL_SWEEPS;
            } else {
                w.seen = moves;
                w.still = 0;
            }
            true
        });
        stalled
    }

    /// Looks at every open stream while a destination is full (see the module doc).
    pub(crate) fn look_under_pressure(&self) -> Shed {
        let mut watched = self.0.watched.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = Shed::Nothing;
        for w in watched.iter_mut() {
            let Some(activity) = w.activity.upgrade() else {
                continue;
            };
            let moves = activity.moves();
            let waiting = activity.waiting_on_client();
            if waiting && w.pressure_waiting && moves == w.pressure_seen {
                found = Shed::Now;
            } else if waiting && found == Shed::Nothing {
                found = Shed::LookAgain;
            }
            w.pressure_seen = moves;
            w.pressure_waiting = waiting;
        }
        found
    }
}

/// One open stream of a connection (see [`OpenStreams::open`]).
#[derive(Debug)]
pub(crate) struct StreamGuard {
    counts: Arc<Counts>,
    activity: Arc<Activity>,
}

impl StreamGuard {
    /// What this stream has moved.
    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counts = &self.counts;
        if counts.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            let ms = counts.since.elapsed().as_millis() as u64;
            counts.none_since_ms.store(ms, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_waiting_on_its_client_for_two_looks_sheds_its_connection() {
        let streams = OpenStreams::new();
        let reading = streams.open();
        let blocked = streams.open();
        assert_eq!(streams.look_under_pressure(), Shed::Nothing);
        // Both handed a frame; only `reading` is asked for the next one.
        for s in [&reading, &blocked] {
            s.activity().moved();
            s.activity().set_waiting_on_client(true);
        }
        assert_eq!(streams.look_under_pressure(), Shed::LookAgain);
        reading.activity().set_waiting_on_client(false);
        reading.activity().moved();
        reading.activity().set_waiting_on_client(true);
        assert_eq!(streams.look_under_pressure(), Shed::Now);
        drop(blocked);
        // `reading` moved again before this look.
        reading.activity().moved();
        assert_eq!(streams.look_under_pressure(), Shed::LookAgain);
    }

    #[test]
    fn a_stream_that_does_not_move_for_three_sweeps_is_stalled() {
        let streams = OpenStreams::new();
        let moving = streams.open();
        let still = streams.open();
        assert!(!streams.sweep());
        for _ in 0..STILL_SWEEPS - 1 {
            moving.activity().moved();
            assert!(!streams.sweep());
        }
        moving.activity().moved();
        assert!(streams.sweep());
        drop(still);
        moving.activity().moved();
        assert!(!streams.sweep());
    }

    #[test]
    fn ended_streams_are_forgotten() {
        let streams = OpenStreams::new();
        for _ in 0..1000 {
            drop(streams.open());
        }
        let watched = streams.0.watched.lock().unwrap().len();
        assert!(watched <= 18, "{watched} entries for ended streams");
    }
}
