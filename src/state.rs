//! The state shared by the data plane (workers) and the control plane (admin, reload):
//! the current routing snapshot, the statistics, the process lifecycle, and the
//! serialized writers that replace the snapshot.
//!
//! Every change (a file reload, an API split write) takes the control lock, builds a
//! complete new [`Snapshot`] beside the old one, and swaps it in with one atomic store.
//! Requests in flight keep the snapshot they started with.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::config::{self, Config};
use crate::snapshot::{Snapshot, SplitOverrides};
use crate::telemetry::ProxyStats;
use crate::tls::TlsError;
use crate::upstream::EndpointRegistry;

/// How the last config reload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadResult {
    Success,
    /// Refused: the file is invalid, unreadable, or changes a restart-only setting.
    Failure(String),
    /// After a refused edit, the file went back to the running config's content:
    /// nothing to apply, and nothing is wrong any more.
    Unchanged,
}

/// When the last reload happened and how it went, for `/config`.
#[derive(Debug, Clone)]
pub struct ReloadRecord {
    pub at: SystemTime,
    pub result: ReloadResult,
    /// The config version after this reload (unchanged on failure).
    pub version: u64,
}

/// What the writers serialize on.
#[derive(Debug)]
pub struct Control {
    /// The config as last loaded from the file.
    pub config: Arc<Config>,
    /// Splits set through the admin API, by route.
    pub overrides: SplitOverrides,
    pub version: u64,
    pub last_reload: Option<ReloadRecord>,
}

/// Why an API split write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitWriteError {
    #[error("no route named `{route}`; routes are: {known}")]
    UnknownRoute { route: String, known: String },
    #[error("{0}")]
    Invalid(String),
}

/// Reload counters by result, for `weir_config_reloads_total`.
#[derive(Debug, Default)]
pub struct ReloadCounters {
    pub success: AtomicU64,
    pub failure: AtomicU64,
}

#[derive(Debug)]
pub struct Shared {
    /// What requests route by. Readers `load()` it per request; writers build a whole
    /// new snapshot and `store()` it.
    pub snapshot: ArcSwap<Snapshot>,
    pub stats: ProxyStats,
    pub registry: EndpointRegistry,
    pub reloads: ReloadCounters,
    control: Mutex<Control>,
    draining: AtomicBool,
}

impl Shared {
    /// The state for `config`; fails when a destination's TLS files cannot be loaded.
    pub fn new(config: Config, workers: usize) -> Result<Self, TlsError> {
        let registry = EndpointRegistry::new(workers);
        let stats = ProxyStats::new(config.telemetry, config.latency_window, &config.labels);
        let config = Arc::new(config);
        let snapshot =
            Snapshot::build(config.clone(), &SplitOverrides::new(), 1, &registry, &stats)?;
        Ok(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            stats,
            registry,
            reloads: ReloadCounters::default(),
            control: Mutex::new(Control {
                config,
                overrides: SplitOverrides::new(),
                version: 1,
                last_reload: None,
            }),
            draining: AtomicBool::new(false),
        })
    }

    /// True once shutdown began: readiness fails and HTTP/1.1 responses say `close`.
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The writers' state, locked. Never held across an await.
    pub fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds the snapshot of `config` with `overrides` as the next version.
    fn build(
        &self,
        control: &Control,
        config: &Arc<Config>,
        overrides: &SplitOverrides,
    ) -> Result<Snapshot, TlsError> {
        Snapshot::build(
            config.clone(),
            overrides,
            control.version + 1,
            &self.registry,
            &self.stats,
        )
    }

    fn publish(&self, control: &mut Control, snapshot: Snapshot) -> u64 {
        control.version = snapshot.version;
        self.snapshot.store(Arc::new(snapshot));
        control.version
    }

    /// Applies a new file config: it replaces every API override (the newest write
    /// wins, and a changed file is newer). Returns the new version; on an error nothing
    /// changed.
    pub fn apply_config(&self, config: Config) -> Result<u64, TlsError> {
        let mut control = self.control();
        let config = Arc::new(config);
        let snapshot = self.build(&control, &config, &SplitOverrides::new())?;
        if !control.overrides.is_empty() {
            let mut dropped: Vec<&str> = control.overrides.keys().map(String::as_str).collect();
            dropped.sort_unstable();
            tracing::info!(
                routes = %dropped.join(","),
                "config file changed: API split overrides replaced by the file's splits"
            );
        }
        control.overrides.clear();
        self.stats.set_service(&config.labels);
        control.config = config;
        let version = self.publish(&mut control, snapshot);
        control.last_reload = Some(ReloadRecord {
            at: SystemTime::now(),
            result: ReloadResult::Success,
            version,
        });
        self.reloads.success.fetch_add(1, Ordering::Relaxed);
        Ok(version)
    }

    /// Records a refused reload; the running config stays.
    pub fn reload_failed(&self, error: String) {
        let mut control = self.control();
        let version = control.version;
        control.last_reload = Some(ReloadRecord {
            at: SystemTime::now(),
            result: ReloadResult::Failure(error),
            version,
        });
        self.reloads.failure.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that the file is back to the running config after a refused reload, so
    /// `/config` and `weir_config_last_reload_successful` stop reporting the failure.
    /// Returns false (and records nothing) when the last reload did not fail.
    pub fn reload_reverted(&self) -> bool {
        let mut control = self.control();
        let failed = matches!(
            control.last_reload,
            Some(ReloadRecord {
                result: ReloadResult::Failure(_),
                ..
            })
        );
        if failed {
            let version = control.version;
            control.last_reload = Some(ReloadRecord {
                at: SystemTime::now(),
                result: ReloadResult::Unchanged,
                version,
            });
        }
        failed
    }

    /// False while the config file holds an edit that was refused (Prometheus's
    /// `config_last_reload_successful`).
    pub fn last_reload_successful(&self) -> bool {
        !matches!(
            self.control().last_reload,
            Some(ReloadRecord {
                result: ReloadResult::Failure(_),
                ..
            })
        )
    }

    /// Sets a route's split through the API. Same rules as the file.
    pub fn set_split(
        &self,
        route: &str,
        weights: &[(String, u32)],
    ) -> Result<u64, SplitWriteError> {
        let mut control = self.control();
        let config = control.config.clone();
        if config.route(route).is_none() {
            return Err(unknown_route(&config, route));
        }
        let split = config::split_from_weights(weights, &config.destinations)
            .map_err(SplitWriteError::Invalid)?;
        let mut overrides = control.overrides.clone();
        overrides.insert(route.to_owned(), split);
        let snapshot = self
            .build(&control, &config, &overrides)
            .map_err(|e| SplitWriteError::Invalid(e.to_string()))?;
        control.overrides = overrides;
        let version = self.publish(&mut control, snapshot);
        tracing::info!(
            route,
            version,
            split = %split_text(weights),
            "split set through the admin API"
        );
        Ok(version)
    }

    /// Drops a route's API override, returning it to its file split. Returns the
    /// version, unchanged if there was no override.
    pub fn clear_split(&self, route: &str) -> Result<u64, SplitWriteError> {
        let mut control = self.control();
        if control.config.route(route).is_none() {
            return Err(unknown_route(&control.config, route));
        }
        if !control.overrides.contains_key(route) {
            return Ok(control.version);
        }
        let mut overrides = control.overrides.clone();
        overrides.remove(route);
        let config = control.config.clone();
        let snapshot = self
            .build(&control, &config, &overrides)
            .map_err(|e| SplitWriteError::Invalid(e.to_string()))?;
        control.overrides = overrides;
        let version = self.publish(&mut control, snapshot);
        tracing::info!(
            route,
            version,
            "API split override removed; the file split applies"
        );
        Ok(version)
    }
}

fn unknown_route(config: &Config, route: &str) -> SplitWriteError {
    SplitWriteError::UnknownRoute {
        route: route.to_owned(),
        known: config
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A split as people write it: `release=34,baseline=33,canary=33`, for log fields.
fn split_text(weights: &[(String, u32)]) -> String {
    let parts: Vec<String> = weights.iter().map(|(d, w)| format!("{d}={w}")).collect();
    parts.join(",")
}
