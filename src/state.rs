//! The state shared by the data plane (workers) and the control plane (admin, reload):
//! the current routing snapshot, the statistics, and the process lifecycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::snapshot::{Snapshot, SplitOverrides};
use crate::telemetry::ProxyStats;
use crate::upstream::EndpointRegistry;

#[derive(Debug)]
pub struct Shared {
    /// What requests route by. Readers `load()` it per request; writers build a whole
    /// new snapshot and `store()` it.
    pub snapshot: ArcSwap<Snapshot>,
    pub stats: ProxyStats,
    pub registry: EndpointRegistry,
    draining: AtomicBool,
}

impl Shared {
    pub fn new(config: Config, workers: usize) -> Self {
        let registry = EndpointRegistry::new(workers);
        let stats = ProxyStats::default();
        let snapshot = Snapshot::build(
            Arc::new(config),
            &SplitOverrides::new(),
            1,
            &registry,
            &stats,
        );
        Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            stats,
            registry,
            draining: AtomicBool::new(false),
        }
    }

    /// True once shutdown began: readiness fails and HTTP/1.1 responses say `close`.
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}
