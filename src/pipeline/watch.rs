//! The clocks of a request until its response head: the request timeout (its body must
//! arrive in time) and the stream idle timeout (something must move, one way or the
//! other). They run beside the upstream exchange, whatever the client's protocol, so a
//! client that trickles its body, or stops sending it, cannot hold an upstream
//! connection for as long as it likes.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

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

/// Runs `exchange` under the clocks; `None` for either timeout turns it off. A body
/// that streams on its own reports to `meter`.
pub(super) async fn watched<F, T>(
    exchange: F,
    progress: &Progress,
    meter: Option<&BodyMeter>,
    idle: Option<Duration>,
    request_deadline: Option<Instant>,
) -> Result<T, Failure>
where
    F: Future<Output = Result<T, Failure>>,
{
    if idle.is_none() && request_deadline.is_none() {
        return exchange.await;
    }
    tokio::select! {
        biased;
        result = exchange => result,
        failure = clocks(progress, meter, idle, request_deadline) => Err(failure),
    }
}

/// Resolves with the failure of whichever clock runs out first.
async fn clocks(
    progress: &Progress,
    meter: Option<&BodyMeter>,
    idle: Option<Duration>,
    request_deadline: Option<Instant>,
) -> Failure {
    let mut sleep = pin!(tokio::time::sleep_until(far_future()));
    let mut moves = 0;
    loop {
        if let Some(meter) = meter {
            if meter.moves() != moves {
                moves = meter.moves();
                progress.moved();
            }
            if meter.ended() {
                progress.body_done.store(true, Ordering::Relaxed);
            }
        }
        let idle_at = idle.map(|d| progress.last() + d);
        let request_at = request_deadline.filter(|_| !progress.body_done.load(Ordering::Relaxed));
        let Some(next) = [idle_at, request_at].into_iter().flatten().min() else {
            return std::future::pending().await;
        };
        sleep.as_mut().reset(next);
        sleep.as_mut().await;
        if meter.is_some_and(|m| m.moves() != moves) {
            // A body streaming on its own moved: look again.
            continue;
        }
        let now = Instant::now();
        if request_at.is_some_and(|at| now >= at) && !progress.body_done.load(Ordering::Relaxed) {
            return Failure::RequestTimeout;
        }
        if idle.is_some_and(|d| now >= progress.last() + d) {
            return Failure::StreamIdle;
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
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
    /// first.
    pub async fn run<F: Future>(&self, f: F) -> Result<F::Output, ResponseFlag> {
        match self.next(Instant::now()) {
            None => Ok(f.await),
            Some((at, flag)) => tokio::time::timeout_at(at, f).await.map_err(|_| flag),
        }
    }
}
