//! Per-worker connection pools of one endpoint.
//!
//! HTTP/1.1: a LIFO stack of idle keep-alive connections per worker; a connection goes
//! back on the stack only after its response body was read to the end, so a half-read
//! connection is never reused. HTTP/2: one shared multiplexed connection per worker.
//! Each worker only touches its own slot, so the mutexes are never contended; they are
//! there so that a stray use from another thread stays correct.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::client::conn::http2;

use super::h1::RawConn;
use super::{ConnectError, Endpoint, RequestBody};
use crate::runtime::worker_id;

/// Idle HTTP/1.1 connections older than this are closed rather than reused: upstream
/// servers close idle keep-alive connections on their own timers, and reusing one at
/// that moment fails the request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per worker and endpoint; more are closed.
const MAX_IDLE: usize = 512;

#[derive(Debug)]
pub(super) struct Pool {
    slots: Box<[Mutex<Slot>]>,
    /// One per slot: held while a slot's HTTP/2 connection is being opened, so that a
    /// burst of requests opens one connection instead of one each.
    pub(super) h2_connecting: Box<[tokio::sync::Mutex<()>]>,
}

#[derive(Debug, Default)]
pub(super) struct Slot {
    /// Idle HTTP/1.1 connections, oldest first.
    raw: Vec<RawIdle>,
    pub(super) h2: Option<http2::SendRequest<RequestBody>>,
    /// HTTP/2 connection attempts finished so far, and whether the last one failed.
    pub(super) h2_attempts: u64,
    pub(super) h2_failed: bool,
    /// The attempt that opened `h2`: a request remembers it, so that a connection seen
    /// going away is retired only if it is still the slot's current one.
    pub(super) h2_generation: u64,
}

#[derive(Debug)]
struct RawIdle {
    conn: Box<RawConn>,
    since: Instant,
}

impl Pool {
    /// One slot per worker, plus one shared by threads that are not workers.
    pub(super) fn new(workers: usize) -> Self {
        Pool {
            slots: (0..=workers).map(|_| Mutex::default()).collect(),
            h2_connecting: (0..=workers).map(|_| Default::default()).collect(),
        }
    }

    /// The calling worker's slot.
    pub(super) fn slot_index(&self) -> usize {
        let last = self.slots.len() - 1;
        worker_id().map_or(last, |w| w.min(last))
    }

    pub(super) fn slot(&self, index: usize) -> MutexGuard<'_, Slot> {
        self.slots[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes idle connections past the idle timeout or closed by the upstream, so a
    /// pool nobody draws from does not hold sockets in CLOSE_WAIT.
    pub(super) fn sweep(&self) {
        for index in 0..self.slots.len() {
            let mut slot = self.slot(index);
            slot.raw
                .retain(|idle| idle.since.elapsed() < IDLE_TIMEOUT && idle.conn.still_open());
        }
    }
}

impl Endpoint {
    /// An HTTP/1.1 connection: the newest idle one that is still open, else a new one.
    /// `fresh` skips the pool (upgrades, and retries after a pooled connection failed).
    pub(super) async fn checkout_raw(&self, fresh: bool) -> Result<Box<RawConn>, ConnectError> {
        if !fresh {
            let index = self.pool.slot_index();
            loop {
                let idle = self.pool.slot(index).raw.pop();
                match idle {
                    Some(idle) if idle.since.elapsed() < IDLE_TIMEOUT && idle.conn.still_open() => {
                        let mut conn = idle.conn;
                        conn.mark_reused();
                        return Ok(conn);
                    }
                    Some(_) => continue,
                    None => break,
                }
            }
        }
        // Boxed: connecting (a TLS handshake included) is a large future, and inline it
        // would make every request's future that large, moved on every spawn.
        let io = Box::pin(self.connect()).await?;
        self.health.connected();
        Ok(RawConn::new(io, self))
    }

    /// Gives a connection back after a complete exchange. The oldest idle ones are
    /// closed once past the idle timeout, so a burst's connections do not linger.
    pub(super) fn release_raw(&self, mut conn: Box<RawConn>) {
        conn.buf.shrink_when_empty();
        let now = Instant::now();
        let mut slot = self.pool.slot(self.pool.slot_index());
        let stale = slot
            .raw
            .iter()
            .take_while(|idle| now.duration_since(idle.since) >= IDLE_TIMEOUT)
            .count();
        slot.raw.drain(..stale);
        if slot.raw.len() < MAX_IDLE {
            slot.raw.push(RawIdle { conn, since: now });
        }
    }
}
