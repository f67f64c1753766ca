//! How much load weir puts on one destination at once: requests in flight (each holds
//! an HTTP/1.1 connection, or an HTTP/2 stream, until its response body ends) are
//! capped, a bounded number more wait for a place, and the rest are refused at once
//! with 503 `UO` (Envoy's circuit breakers `max_requests` and `max_pending_requests`;
//! a destination's `connection_pool`). Counted per destination across all workers, and
//! kept across config reloads.
//!
//! A full destination also raises [`Pressure`]: client connections that hold places
//! without reading their responses (an HTTP/2 client that grants no window) are then
//! shed, as Envoy's overload manager resets the streams that cost most, so that one
//! client's stalled streams do not leave every other client with 503s until the stream
//! idle timeout.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::Failure;

/// The places of one destination. A count, not a semaphore: taking and giving back a
/// place are an atomic operation each (tokio's semaphore takes a lock to give one
/// back, on every request); only requests that wait use the [`Notify`].
#[derive(Debug)]
pub(crate) struct Limiter {
    in_flight: AtomicUsize,
    max_in_flight: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// A place was given back while requests waited.
    released: Notify,
    pressure: Arc<Pressure>,
}

impl Limiter {
    pub(super) fn new(max_requests: usize, max_waiting: usize, pressure: Arc<Pressure>) -> Self {
        Limiter {
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_requests,
            waiting: AtomicUsize::new(0),
            max_waiting,
            released: Notify::new(),
            pressure,
        }
    }

    fn try_take(&self) -> bool {
        let mut n = self.in_flight.load(Ordering::Relaxed);
        while n < self.max_in_flight {
            match self.in_flight.compare_exchange_weak(
                n,
                n + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }

    /// A place for one request when one is free and nobody waits for one: the common
    /// case, without a future of its own.
    #[inline]
    pub(super) fn try_enter(self: &Arc<Self>) -> Option<InFlight> {
        (self.waiting.load(Ordering::Relaxed) == 0 && self.try_take())
            .then(|| InFlight(self.clone()))
    }

    /// A place for one request: at once when one is free and nobody waits for one,
    /// else after a wait in the queue; [`Failure::Overflow`] when the queue is full too.
    pub(super) async fn enter(self: &Arc<Self>) -> Result<InFlight, Failure> {
        if let Some(place) = self.try_enter() {
            return Ok(place);
        }
        self.pressure.raise();
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Failure::Overflow);
        }
        let _queued = Queued(&self.waiting);
        loop {
            // Listening before looking: a place given back in between still wakes us.
            let mut released = pin!(self.released.notified());
            released.as_mut().enable();
            if self.try_take() {
                return Ok(InFlight(self.clone()));
            }
            released.await;
        }
    }
}

/// A request in the queue; leaves it when dropped (its place taken, or the request
/// gone: a client that gave up).
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request's place; given back when dropped (with the response body's end).
#[derive(Debug)]
pub struct InFlight(Arc<Limiter>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let limiter = &self.0;
        limiter.in_flight.fetch_sub(1, Ordering::Release);
        if limiter.waiting.load(Ordering::Relaxed) > 0 {
            limiter.released.notify_one();
        }
    }
}

/// How often, at most, a full destination asks client connections to look for
/// stalled streams; two looks in a row are needed to shed one.
pub const PRESSURE_EVERY: Duration = Duration::from_secs(1);

/// The signal that some destination is full (every place taken). Client connections
/// subscribe; it is raised at most once per [`PRESSURE_EVERY`], so a flood of queued
/// requests wakes each connection once a second at most.
#[derive(Debug)]
pub struct Pressure {
    tx: watch::Sender<u64>,
    since: Instant,
    /// Milliseconds from `since` to the last raise, plus one (zero: never).
    last_ms: AtomicU64,
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure {
            tx: watch::Sender::new(0),
            since: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Pressure {
    /// Counts raises; a receiver sees a change when a destination filled up.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    fn raise(&self) {
        let now = self.since.elapsed().as_millis() as u64 + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        let every = PRESSURE_EVERY.as_millis() as u64;
        if (last == 0 || now >= last + every)
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.tx.send_modify(|raised| *raised += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn places_then_a_bounded_queue_then_overflow() {
        let pressure = Arc::new(Pressure::default());
        let mut raised = pressure.subscribe();
        let limiter = Arc::new(Limiter::new(2, 1, pressure));
        let a = limiter.enter().await.unwrap();
        let _b = limiter.enter().await.unwrap();
        let waiting = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.enter().await.map(drop) })
        };
        tokio::task::yield_now().await;
        // The wait raised the pressure; the overflow, within the second, did not again.
        assert!(raised.has_changed().unwrap());
        assert_eq!(*raised.borrow_and_update(), 1);
        assert!(matches!(limiter.enter().await, Err(Failure::Overflow)));
        assert!(!raised.has_changed().unwrap());
        drop(a);
        assert!(waiting.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_request_that_gives_up_leaves_the_queue() {
        let limiter = Arc::new(Limiter::new(1, 1, Arc::new(Pressure::default())));
        let held = limiter.enter().await.unwrap();
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(10), limiter.enter()).await;
        assert!(gave_up.is_err());
        assert_eq!(limiter.waiting.load(Ordering::Relaxed), 0);
        drop(held);
        assert!(limiter.enter().await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_gets_a_place_as_places_come_back() {
        let limiter = Arc::new(Limiter::new(4, 1000, Arc::new(Pressure::default())));
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    let place = limiter.enter().await.expect("a place");
                    assert!(limiter.in_flight.load(Ordering::Relaxed) <= 4);
                    tokio::task::yield_now().await;
                    drop(place);
                })
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("no waiter is forgotten")
                .unwrap();
        }
        assert_eq!(limiter.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(limiter.waiting.load(Ordering::Relaxed), 0);
    }
}
