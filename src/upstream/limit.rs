//! How much load weir puts on one destination at once: requests in flight (each holds
//! an HTTP/1.1 connection, or an HTTP/2 stream, until its response body ends) are
//! capped, a bounded number more wait for a place, and the rest are refused at once
//! with 503 `UO` (Envoy's circuit breakers `max_requests` and `max_pending_requests`;
//! a destination's `connection_pool`). Counted per destination across all workers, and
//! kept across config reloads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use super::Failure;

/// The places of one destination.
#[derive(Debug)]
pub(crate) struct Limiter {
    places: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl Limiter {
    pub(super) fn new(max_requests: usize, max_waiting: usize) -> Self {
        Limiter {
            places: Semaphore::new(max_requests),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// A place for one request: at once when one is free, else after a wait in the
    /// queue; [`Failure::Overflow`] when the queue is full too.
    pub(super) async fn enter(self: &Arc<Self>) -> Result<InFlight, Failure> {
        if let Ok(place) = self.places.try_acquire() {
            place.forget();
            return Ok(InFlight(self.clone()));
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Failure::Overflow);
        }
        let place = self.places.acquire().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        match place {
            Ok(place) => {
                place.forget();
                Ok(InFlight(self.clone()))
            }
            // The semaphore is never closed.
            Err(_) => Err(Failure::Overflow),
        }
    }
}

/// One request's place; given back when dropped (with the response body's end).
#[derive(Debug)]
pub struct InFlight(Arc<Limiter>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.places.add_permits(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn places_then_a_bounded_queue_then_overflow() {
        let limiter = Arc::new(Limiter::new(2, 1));
        let a = limiter.enter().await.unwrap();
        let _b = limiter.enter().await.unwrap();
        let waiting = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.enter().await.map(drop) })
        };
        tokio::task::yield_now().await;
        assert!(matches!(limiter.enter().await, Err(Failure::Overflow)));
        drop(a);
        assert!(waiting.await.unwrap().is_ok());
    }
}
