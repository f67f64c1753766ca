//! Which endpoint of a destination a request goes to: round robin over the endpoints
//! that are not backing off after a connect failure, one more endpoint after a connect
//! failure, and no connect at all while every endpoint is backing off.
//!
//! An endpoint that refuses or drops connections would otherwise be tried by every
//! request: thousands of connects a second after a crash, or every request waiting out
//! the connect timeout behind dropped SYNs. After a connect failure an endpoint backs
//! off (250 ms, doubling up to 8 s); requests skip it while another endpoint is up. When
//! all are backing off, one request at a time probes the endpoint due first, and the
//! others are answered 503 `UF` at once. A connect that succeeds ends the backoff.
//! (Configurable outlier detection on responses is a separate policy.)

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{ConnectError, Destination, Endpoint};

const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(8);

/// Milliseconds since the first use, a clock every worker shares.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // Never 0, so that 0 can mean "not backing off".
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// An endpoint's connect health, shared by every worker.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Connect failures in a row.
    failures: AtomicU32,
    /// Until when (see [`now_ms`]) requests skip the endpoint; 0 when it is up.
    retry_at: AtomicU64,
}

impl Health {
    /// Whether a request may use the endpoint now: it is up, or its backoff ran out
    /// and this request gets to probe it.
    /// `now` is only read for an endpoint that is backing off.
    fn usable(&self, now: &mut Option<u64>) -> bool {
        self.retry_at.load(Ordering::Relaxed) == 0
            || self.claim_probe(*now.get_or_insert_with(now_ms))
    }

    /// Claims the right to probe an endpoint whose backoff ran out: the next probe is
    /// pushed a backoff away, so concurrent requests do not all probe at once.
    fn claim_probe(&self, now: u64) -> bool {
        let at = self.retry_at.load(Ordering::Relaxed);
        at != 0
            && at <= now
            && self
                .retry_at
                .compare_exchange(
                    at,
                    now + self.backoff_ms(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn backoff_ms(&self) -> u64 {
        let failures = self.failures.load(Ordering::Relaxed).clamp(1, 16);
        let backoff = BACKOFF_BASE
            .saturating_mul(1 << (failures - 1))
            .min(BACKOFF_CAP);
        backoff.as_millis() as u64
    }

    pub(super) fn connect_failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.retry_at
            .store(now_ms() + self.backoff_ms(), Ordering::Relaxed);
    }

    /// A connect succeeded. Written only when it changes something, so a healthy
    /// endpoint costs every request one load, not a shared write.
    pub(super) fn connected(&self) {
        if self.retry_at.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.retry_at.store(0, Ordering::Relaxed);
        }
    }
}

/// The endpoints one request tries; see the module doc.
#[derive(Debug)]
pub(super) struct EndpointCursor<'a> {
    destination: &'a Destination,
    index: usize,
    retry_left: bool,
}

impl<'a> EndpointCursor<'a> {
    /// The first endpoint for a request, or `None` when every endpoint is backing off
    /// and none is due for a probe.
    pub(super) fn new(destination: &'a Destination) -> Option<Self> {
        let endpoints = destination.endpoints();
        let start = destination.next_endpoint();
        let mut now = None;
        let index = if endpoints[start].health.usable(&mut now) {
            start
        } else {
            (1..endpoints.len())
                .map(|i| (start + i) % endpoints.len())
                .find(|&i| endpoints[i].health.usable(&mut now))?
        };
        Some(EndpointCursor {
            destination,
            index,
            retry_left: endpoints.len() > 1,
        })
    }

    pub(super) fn endpoint(&self) -> &'a Arc<Endpoint> {
        &self.destination.endpoints()[self.index]
    }

    /// Notes a connect failure on the current endpoint and moves to the next endpoint
    /// that is up, once; false when the request has no endpoint left to try.
    pub(super) fn connect_failed(&mut self, error: &ConnectError) -> bool {
        let endpoint = self.endpoint();
        endpoint.health.connect_failed();
        endpoint.stats.connect_failed();
        endpoint.note_connect_failure(&self.destination.name, error);
        if !self.retry_left {
            return false;
        }
        self.retry_left = false;
        let endpoints = self.destination.endpoints();
        let mut now = None;
        let next = (1..endpoints.len())
            .map(|i| (self.index + i) % endpoints.len())
            .find(|&i| endpoints[i].health.usable(&mut now));
        match next {
            Some(i) => {
                self.index = i;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let health = Health::default();
        assert!(health.usable(&mut None));
        let mut last = 0;
        for _ in 0..10 {
            health.connect_failed();
            let backoff = health.backoff_ms();
            assert!(backoff >= last && backoff <= BACKOFF_CAP.as_millis() as u64);
            last = backoff;
        }
        assert_eq!(last, BACKOFF_CAP.as_millis() as u64);
        assert!(!health.usable(&mut None));
        health.connected();
        assert!(health.usable(&mut None));
        assert_eq!(health.backoff_ms(), BACKOFF_BASE.as_millis() as u64);
    }

    #[test]
    fn one_probe_at_a_time() {
        let health = Health::default();
        health.connect_failed();
        let due = health.retry_at.load(Ordering::Relaxed);
        assert!(!health.claim_probe(due - 1));
        assert!(health.claim_probe(due));
        assert!(!health.claim_probe(due), "a second probe waits a backoff");
    }
}
