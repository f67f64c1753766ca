//! The clocks of a request until its response head: the request timeout (its body must
//! arrive in time) and the stream idle timeout (something must move, one way or the
//! other). They run beside the upstream exchange, whatever the client's protocol, so a
//! client that trickles its body, or stops sending it, cannot hold an upstream
//! connection for as long as it likes.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::telemetry::{BodyMeter, ResponseFlag};
use crate::upstream::{BodySource, Failure, RequestBody, Trailers};

/// When the request's body last moved, and whether it ended.
#[derive(Debug)]
pub(super) struct Progress {
    start: Instant,
    /// Milliseconds from `start` to the last body bytes moved.
    last_ms: AtomicU64,
    body_done: AtomicBool,
}

impl Progress {
    pub(super) fn new(start: Instant, body_done: bool) -> Self {
        Progress {
            start,
            last_ms: AtomicU64::new(0),
            body_done: AtomicBool::new(body_done),
        }
    }

    fn moved(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The clocks of a request until its response head; `None` turns one off.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestClocks {
    /// The route's timeout: everything until the response head, a wait for a place in
    /// the destination's limit and retries included.
    pub(super) route_deadline: Option<Instant>,
    /// The request timeout: the body must have arrived by then.
    pub(super) request_deadline: Option<Instant>,
    /// The stream idle timeout.
    pub(super) idle: Option<Duration>,
}

impl RequestClocks {
    /// The first instant a clock could run out. Nothing has moved yet, so it needs no
    /// reading of the time.
    fn first(&self, progress: &Progress) -> Option<Instant> {
        let request = self
            .request_deadline
            .filter(|_| !progress.body_done.load(Ordering::Relaxed));
        let idle = self.idle.map(|d| progress.start + d);
        let at = match (self.route_deadline, request) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (at, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next instant a clock could run out, or the failure of one that has. A body
    /// that streams on its own reports to `meter`.
    fn check(
        &self,
        now: Instant,
        progress: &Progress,
        meter: Option<&BodyMeter>,
        moves: &mut u64,
    ) -> Result<Option<Instant>, Failure> {
        if let Some(meter) = meter {
            if meter.moves() != *moves {
                *moves = meter.moves();
                progress.moved();
            }
            if meter.ended() {
                progress.body_done.store(true, Ordering::Relaxed);
            }
        }
        let route = self.route_deadline;
        let request = self
            .request_deadline
            .filter(|_| !progress.body_done.load(Ordering::Relaxed));
        let idle = self.idle.map(|d| progress.last() + d);
        for (at, failure) in [
            (route, Failure::Timeout),
            (request, Failure::RequestTimeout),
            (idle, Failure::StreamIdle),
        ] {
            if at.is_some_and(|at| now >= at) {
                return Err(failure);
            }
        }
        Ok([route, request, idle].into_iter().flatten().min())
    }
}

/// Runs `exchange` under the clocks. One timer for all of them: `timer` when given
/// (an HTTP/1.1 connection's own, already registered), else one of its own. The timer
/// may fire early, never late: one set earlier than the clocks is left alone (moving
/// a registered timer later costs nothing when it fires, moving it earlier costs a
/// re-registration), and when it fires the clocks are looked at and it is set again.
/// The exchange is polled in place (it is large: moving it costs more than the rest).
pub(super) async fn watched<F, T>(
    mut exchange: Pin<&mut F>,
    progress: &Progress,
    meter: Option<&BodyMeter>,
    clocks: RequestClocks,
    timer: Option<Pin<&mut Sleep>>,
) -> Result<T, Failure>
where
    F: Future<Output = Result<T, Failure>>,
{
    let mut moves = 0;
    let Some(first) = clocks.first(progress) else {
        return exchange.await;
    };
    let mut own = pin!(None::<Sleep>);
    let mut timer = match timer {
        Some(mut timer) => {
            if timer.deadline() > first {
                timer.as_mut().reset(first);
            }
            timer
        }
        None => {
            own.set(Some(tokio::time::sleep_until(first)));
            own.as_mut().as_pin_mut().expect("just set")
        }
    };
    // The timer is polled once to register this task's waker, and again only once it
    // has fired: the exchange wakes the task several times per request, and a timer
    // poll costs a waker registration each time.
    let mut registered = false;
    poll_fn(|cx| {
        if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if registered && !timer.is_elapsed() {
            return Poll::Pending;
        }
        registered = true;
        while timer.as_mut().poll(cx).is_ready() {
            match clocks.check(Instant::now(), progress, meter, &mut moves) {
                Err(failure) => return Poll::Ready(Err(failure)),
                Ok(Some(next)) => timer.as_mut().reset(next),
                Ok(None) => return Poll::Pending,
            }
        }
        Poll::Pending
    })
    .await
}

/// A body source that notes on [`Progress`] when its data moves and when it ends.
pub(super) struct Watched<'a, B> {
    pub(super) inner: &'a mut B,
    pub(super) progress: &'a Progress,
}

impl<B: BodySource> BodySource for Watched<'_, B> {
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<&[u8]>, Failure>> {
        let polled = self.inner.poll_data(cx);
        if let Poll::Ready(Ok(None)) = &polled {
            self.progress.body_done.store(true, Ordering::Relaxed);
            self.progress.moved();
        }
        polled
    }

    fn advance(&mut self, n: usize) {
        self.progress.moved();
        self.inner.advance(n);
    }

    fn take_trailers(&mut self) -> Option<Trailers> {
        self.inner.take_trailers()
    }

    fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.poll_gone(cx)
    }

    fn take_hyper(&mut self) -> Option<RequestBody> {
        // hyper's client then reads the body on its own, past these clocks; the route
        // timeout and the response's idle clock still bound it.
        self.inner.take_hyper()
    }
}

/// The clocks of a response while it streams: the route's deadline, and the stream
/// idle timeout, which starts again whenever something moves.
#[derive(Debug, Clone, Copy)]
pub struct ResponseClock {
    pub deadline: Option<Instant>,
    pub idle: Option<Duration>,
}

impl ResponseClock {
    /// When a clock runs out if nothing moves after `last_move`, and the flag it ends
    /// the response with (`UT` for the route's deadline, `SI` for idleness).
    pub fn next(&self, last_move: Instant) -> Option<(Instant, ResponseFlag)> {
        let idle = self
            .idle
            .map(|d| (last_move + d, ResponseFlag::StreamIdleTimeout));
        let route = self.deadline.map(|at| (at, ResponseFlag::UpstreamTimeout));
        match (route, idle) {
            (Some(r), Some(i)) => Some(if r.0 <= i.0 { r } else { i }),
            (r, i) => r.or(i),
        }
    }

    /// Runs `f`, one move of the response (a read or a write), unless a clock runs out
    /// first, on `timer` (the connection's: see [`watched`]). The clocks are read only
    /// if `f` has to wait.
    pub async fn run<F: Future>(
        &self,
        f: F,
        mut timer: Pin<&mut Sleep>,
    ) -> Result<F::Output, ResponseFlag> {
        let mut f = pin!(f);
        let mut due = None;
        poll_fn(|cx| {
            if let Poll::Ready(out) = f.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            let (at, flag) = match due {
                Some(due) => due,
                None => {
                    let Some(next) = self.next(Instant::now()) else {
                        return Poll::Pending;
                    };
                    if timer.deadline() > next.0 {
                        timer.as_mut().reset(next.0);
                    }
                    *due.insert(next)
                }
            };
            while timer.as_mut().poll(cx).is_ready() {
                if Instant::now() >= at {
                    return Poll::Ready(Err(flag));
                }
                timer.as_mut().reset(at);
            }
            Poll::Pending
        })
        .await
    }
}
