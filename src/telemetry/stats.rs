//! Per-destination and per-process statistics, updated on the request path with relaxed
//! atomics only, and kept across config reloads.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::flags::ResponseFlag;
use super::latency::LatencyWindow;
use super::series::{RequestProtocol, SecurityPolicy, SeriesKey, SeriesSet};
use crate::config::{DestinationConfig, ServiceLabels};

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
    pub protocol: RequestProtocol,
    pub grpc_status: Option<u8>,
    pub security: SecurityPolicy,
}

/// The statistics of one destination.
#[derive(Debug)]
pub struct DestinationStats {
    pub name: Arc<str>,
    /// The constant Istio labels of this destination, rendered once:
    /// `reporter="...",source_workload="...",...,destination_version="..."`.
    pub labels: String,
    /// Whether the Istio series and the latency window are recorded (`telemetry:`).
    detailed: bool,
    by_class: [AtomicU64; 6],
    requests_active: AtomicI64,
    upstream_active: AtomicI64,
    upstream_total: AtomicU64,
    /// Connects that failed (Envoy's `upstream_cx_connect_fail`).
    connect_failures: AtomicU64,
    /// Requests refused with `UO`: in-flight limit and queue full (Envoy's
    /// `upstream_rq_pending_overflow`).
    overflows: AtomicU64,
    pub series: SeriesSet,
    pub latency: LatencyWindow,
    /// Cumulative duration sum (µs) and count, for the summary's `_sum` and `_count`.
    duration_sum_us: AtomicU64,
}

impl DestinationStats {
    fn new(name: &str, labels: String, detailed: bool, window: Duration) -> Self {
        DestinationStats {
            name: name.into(),
            labels,
            detailed,
            by_class: Default::default(),
            requests_active: AtomicI64::new(0),
            upstream_active: AtomicI64::new(0),
            upstream_total: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
            series: SeriesSet::default(),
            latency: LatencyWindow::new(window),
            duration_sum_us: AtomicU64::new(0),
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
        if !self.detailed {
            return;
        }
        let us = u64::try_from(outcome.duration.as_micros()).unwrap_or(u64::MAX);
        let key = SeriesKey {
            status: outcome.status,
            flag: outcome.flag,
            protocol: outcome.protocol,
            grpc_status: outcome.grpc_status,
            security: outcome.security,
        };
        self.series.with(key, |s| {
            s.requests.fetch_add(1, Ordering::Relaxed);
            s.duration.observe_milli(us);
            s.request_bytes.observe(outcome.request_bytes);
            s.response_bytes.observe(outcome.response_bytes);
        });
        self.latency.record(outcome.duration);
        self.duration_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn upstream_connection_opened(&self) {
        self.upstream_active.fetch_add(1, Ordering::Relaxed);
        self.upstream_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_connection_closed(&self) {
        self.upstream_active.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connect_failed(&self) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn overflowed(&self) {
        self.overflows.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connect_failures(&self) -> u64 {
        self.connect_failures.load(Ordering::Relaxed)
    }

    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
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

    /// Sum of all recorded durations, in milliseconds.
    pub fn duration_sum_ms(&self) -> f64 {
        self.duration_sum_us.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn is_detailed(&self) -> bool {
        self.detailed
    }
}

/// Process-wide statistics: client connections, and each destination's stats.
#[derive(Debug)]
pub struct ProxyStats {
    detailed: bool,
    window: Duration,
    downstream_active: AtomicI64,
    downstream_total: AtomicU64,
    /// Connections closed at accept because `max_connections` were open.
    downstream_overflow: AtomicU64,
    /// HTTP/2 connections closed because their streams held a full destination's places
    /// without reading their responses.
    downstream_shed: AtomicU64,
    /// By their rendered label set: a reload that changes a destination's labels starts
    /// new series, and the old ones keep their final values (counters never go back).
    destinations: Mutex<HashMap<String, Arc<DestinationStats>>>,
    /// Requests that matched no route have no destination; Istio labels them `unknown`.
    unknown: ArcSwap<DestinationStats>,
}

impl ProxyStats {
    /// `detailed` records the Istio series and latency windows (`telemetry: true`);
    /// `window` is the latency window.
    pub fn new(detailed: bool, window: Duration, service: &ServiceLabels) -> Self {
        let stats = ProxyStats {
            detailed,
            window,
            downstream_active: AtomicI64::new(0),
            downstream_total: AtomicU64::new(0),
            downstream_overflow: AtomicU64::new(0),
            downstream_shed: AtomicU64::new(0),
            destinations: Mutex::new(HashMap::new()),
            unknown: ArcSwap::from_pointee(DestinationStats::new(
                "unknown",
                String::new(),
                false,
                window,
            )),
        };
        stats.set_service(service);
        stats
    }

    /// The stats of a destination, created on first use and kept across reloads.
    pub fn destination(
        &self,
        d: &DestinationConfig,
        service: &ServiceLabels,
    ) -> Arc<DestinationStats> {
        let labels = istio_labels(service, &d.workload, &d.version);
        self.get_or_create(&d.name, labels)
    }

    fn get_or_create(&self, name: &str, labels: String) -> Arc<DestinationStats> {
        let mut map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(labels.clone())
            .or_insert_with(|| {
                Arc::new(DestinationStats::new(
                    name,
                    labels,
                    self.detailed,
                    self.window,
                ))
            })
            .clone()
    }

    /// Sets the service labels that requests matching no route are counted under.
    pub fn set_service(&self, service: &ServiceLabels) {
        let labels = istio_labels(service, "unknown", "unknown");
        self.unknown.store(self.get_or_create("unknown", labels));
    }

    /// Where requests that matched no route are counted (destination `unknown`).
    pub fn unknown(&self) -> Arc<DestinationStats> {
        self.unknown.load_full()
    }

    /// Every destination that has stats, by name then labels.
    pub fn destinations(&self) -> Vec<Arc<DestinationStats>> {
        let map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = map.values().cloned().collect();
        all.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        all
    }

    /// Moves every latency window on by one slice; run every `slice_length()`.
    pub fn rotate_windows(&self) {
        for d in self.destinations() {
            d.latency.rotate();
        }
    }

    /// How often [`ProxyStats::rotate_windows`] must run.
    pub fn window_slice(&self) -> Duration {
        LatencyWindow::new(self.window).slice_length()
    }

    pub fn connection_opened(&self) {
        self.downstream_active.fetch_add(1, Ordering::Relaxed);
        self.downstream_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed at accept: `max_connections` were open.
    pub fn connection_overflowed(&self) {
        let n = self.downstream_overflow.fetch_add(1, Ordering::Relaxed);
        // One line per thousand, not per connection: an overload must not also flood
        // the log.
        if n.is_multiple_of(1000) {
            tracing::warn!(
                overflowed = n + 1,
                "client connection refused: max_connections are open"
            );
        }
    }

    pub fn downstream_overflow(&self) -> u64 {
        self.downstream_overflow.load(Ordering::Relaxed)
    }

    /// An HTTP/2 client connection shed because a destination was full.
    pub fn connection_shed(&self) {
        let n = self.downstream_shed.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(100) {
            tracing::warn!(
                shed = n + 1,
                "HTTP/2 client connection closed: its streams held places of a full \
                 destination without reading their responses"
            );
        }
    }

    pub fn downstream_shed(&self) -> u64 {
        self.downstream_shed.load(Ordering::Relaxed)
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

/// Istio's constant labels for one destination, in the order Istio's stats filter emits
/// them. Values weir cannot know (peer principals, clusters) are `unknown`, as Istio
/// reports missing peer metadata.
fn istio_labels(s: &ServiceLabels, workload: &str, version: &str) -> String {
    let service_fqdn = format!("{}.{}.svc.cluster.local", s.service, s.namespace);
    // A known destination is a version of the service: its app and canonical service
    // are the service, its canonical revision its version.
    let app = if workload == "unknown" {
        "unknown"
    } else {
        s.service.as_str()
    };
    let pairs: [(&str, &str); 20] = [
        ("reporter", &s.reporter),
        ("source_workload", &s.workload),
        ("source_workload_namespace", &s.namespace),
        ("source_principal", "unknown"),
        ("source_app", &s.workload),
        ("source_version", "unknown"),
        ("source_canonical_service", &s.workload),
        ("source_canonical_revision", "latest"),
        ("source_cluster", "unknown"),
        ("destination_workload", workload),
        ("destination_workload_namespace", &s.namespace),
        ("destination_principal", "unknown"),
        ("destination_app", app),
        ("destination_version", version),
        ("destination_service", &service_fqdn),
        ("destination_service_name", &s.service),
        ("destination_service_namespace", &s.namespace),
        ("destination_canonical_service", app),
        ("destination_canonical_revision", version),
        ("destination_cluster", "unknown"),
    ];
    let mut out = String::with_capacity(600);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape(v));
    }
    out
}

/// Escapes a label value for the Prometheus text format.
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}
