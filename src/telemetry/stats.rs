//! Per-destination and per-process counters, updated on the request path with relaxed
//! atomics only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::proxy::ResponseFlag;

/// The class of a response status, as `/stats/destinations` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// No response reached the client (status 0: the client went away).
    None = 0,
    Informational = 1,
    Success = 2,
    Redirect = 3,
    ClientError = 4,
    ServerError = 5,
}

impl StatusClass {
    pub fn of(status: u16) -> Self {
        match status / 100 {
            1 => StatusClass::Informational,
            2 => StatusClass::Success,
            3 => StatusClass::Redirect,
            4 => StatusClass::ClientError,
            5 => StatusClass::ServerError,
            _ => StatusClass::None,
        }
    }
}

/// How one request ended, as recorded into the statistics.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The status sent downstream; 0 when none could be sent.
    pub status: u16,
    pub flag: Option<ResponseFlag>,
    pub duration: Duration,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// Counters of one destination. They live across config reloads, so a weight change
/// never resets a destination's request count.
#[derive(Debug)]
pub struct DestinationStats {
    pub name: Arc<str>,
    by_class: [AtomicU64; 6],
    requests_active: AtomicI64,
    upstream_active: AtomicI64,
    upstream_total: AtomicU64,
}

impl DestinationStats {
    pub fn new(name: &str) -> Self {
        DestinationStats {
            name: name.into(),
            by_class: Default::default(),
            requests_active: AtomicI64::new(0),
            upstream_active: AtomicI64::new(0),
            upstream_total: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn request_started(&self) {
        self.requests_active.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn request_finished(&self, outcome: &Outcome) {
        self.requests_active.fetch_sub(1, Ordering::Relaxed);
        self.by_class[StatusClass::of(outcome.status) as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_connection_opened(&self) {
        self.upstream_active.fetch_add(1, Ordering::Relaxed);
        self.upstream_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_connection_closed(&self) {
        self.upstream_active.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn requests_active(&self) -> i64 {
        self.requests_active.load(Ordering::Relaxed)
    }

    pub fn upstream_active(&self) -> i64 {
        self.upstream_active.load(Ordering::Relaxed)
    }

    pub fn upstream_total(&self) -> u64 {
        self.upstream_total.load(Ordering::Relaxed)
    }

    /// Requests finished with a status of this class.
    pub fn responses(&self, class: StatusClass) -> u64 {
        self.by_class[class as usize].load(Ordering::Relaxed)
    }

    /// All finished requests.
    pub fn requests(&self) -> u64 {
        self.by_class
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// Process-wide statistics: client connections, and the destinations' stats by name.
#[derive(Debug)]
pub struct ProxyStats {
    downstream_active: AtomicI64,
    downstream_total: AtomicU64,
    destinations: Mutex<HashMap<String, Arc<DestinationStats>>>,
    /// Requests that matched no route have no destination; Istio labels them `unknown`.
    unknown: Arc<DestinationStats>,
}

impl Default for ProxyStats {
    fn default() -> Self {
        ProxyStats {
            downstream_active: AtomicI64::new(0),
            downstream_total: AtomicU64::new(0),
            destinations: Mutex::new(HashMap::new()),
            unknown: Arc::new(DestinationStats::new("unknown")),
        }
    }
}

impl ProxyStats {
    /// The stats that requests without a destination (no route matched) count into.
    pub fn unknown(&self) -> Arc<DestinationStats> {
        self.unknown.clone()
    }

    /// The stats of a destination, created on first use and kept across reloads.
    pub fn destination(&self, name: &str) -> Arc<DestinationStats> {
        let mut map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_owned())
            .or_insert_with(|| Arc::new(DestinationStats::new(name)))
            .clone()
    }

    /// Every destination that has stats, sorted by name.
    pub fn destinations(&self) -> Vec<Arc<DestinationStats>> {
        let map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = map.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn connection_opened(&self) {
        self.downstream_active.fetch_add(1, Ordering::Relaxed);
        self.downstream_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.downstream_active.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn downstream_active(&self) -> i64 {
        self.downstream_active.load(Ordering::Relaxed)
    }

    pub fn downstream_total(&self) -> u64 {
        self.downstream_total.load(Ordering::Relaxed)
    }
}
