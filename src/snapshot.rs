//! The routing snapshot: everything a request needs, built whole from a config and
//! swapped atomically, so a request sees either the old config or the new one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::routing::{RouteTable, WeightedSplit};
use crate::telemetry::ProxyStats;
use crate::tls::TlsError;
use crate::upstream::{Destination, EndpointRegistry};

/// Where a route's split currently comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitSource {
    File,
    Api,
}

impl SplitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitSource::File => "file",
            SplitSource::Api => "api",
        }
    }
}

/// A route as requests use it.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub split: WeightedSplit<Arc<Destination>>,
    pub split_source: SplitSource,
    pub timeout: Option<Duration>,
}

/// One complete, immutable routing state.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every change (file reload or API write).
    pub version: u64,
    /// The config as loaded from the file, before API overrides.
    pub config: Arc<Config>,
    pub routes: RouteTable<Arc<Route>>,
    /// In config order.
    pub destinations: Vec<Arc<Destination>>,
    pub access_log: bool,
}

/// Split overrides set through the admin API, by route name: `(destination index, weight)`.
pub type SplitOverrides = HashMap<String, Vec<(usize, u32)>>;

impl Snapshot {
    /// Builds a snapshot. Endpoints, their pools and TLS states come from `registry`, so
    /// connections survive; stats come from `stats`, so counters survive. Fails only
    /// when the TLS files of a new destination setting cannot be loaded.
    pub fn build(
        config: Arc<Config>,
        overrides: &SplitOverrides,
        version: u64,
        registry: &EndpointRegistry,
        stats: &ProxyStats,
    ) -> Result<Snapshot, TlsError> {
        let destinations: Vec<Arc<Destination>> = config
            .destinations
            .iter()
            .map(|d| registry.destination(d, stats.destination(d, &config.labels)))
            .collect::<Result<_, _>>()?;
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let (weights, split_source) = match overrides.get(&r.name) {
                    Some(w) => (w, SplitSource::Api),
                    None => (&r.split, SplitSource::File),
                };
                let split =
                    WeightedSplit::new(weights.iter().map(|&(i, w)| (destinations[i].clone(), w)))
                        .expect("splits are validated before a snapshot is built");
                let route = Route {
                    name: r.name.as_str().into(),
                    split,
                    split_source,
                    timeout: r.timeout,
                };
                (r.matcher.clone(), Arc::new(route))
            })
            .collect();
        Ok(Snapshot {
            version,
            access_log: config.access_log,
            routes: RouteTable::new(routes),
            destinations,
            config,
        })
    }

    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes
            .iter()
            .map(|(_, r)| r)
            .find(|r| &*r.name == name)
    }
}
