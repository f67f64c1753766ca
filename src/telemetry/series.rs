//! Istio's standard request metrics for one destination: one series per combination of
//! the per-request labels, each created once and then updated through its handle.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use super::flags::ResponseFlag;
use super::histogram::Histogram;

/// `request_protocol`: Istio says `grpc` for gRPC and `http` for everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestProtocol {
    Http,
    Grpc,
}

/// `connection_security_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecurityPolicy {
    #[default]
    None,
    MutualTls,
}

impl SecurityPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityPolicy::None => "none",
            SecurityPolicy::MutualTls => "mutual_tls",
        }
    }
}

/// The labels that vary per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub status: u16,
    pub flag: Option<ResponseFlag>,
    pub protocol: RequestProtocol,
    /// gRPC status code (0 to 16) when the response carried one.
    pub grpc_status: Option<u8>,
    pub security: SecurityPolicy,
}

impl SeriesKey {
    fn render(&self, out: &mut String) {
        let protocol = match self.protocol {
            RequestProtocol::Http => "http",
            RequestProtocol::Grpc => "grpc",
        };
        let _ = write!(
            out,
            "request_protocol=\"{protocol}\",response_code=\"{}\",response_flags=\"{}\",grpc_response_status=\"",
            self.status,
            self.flag.map_or("-", ResponseFlag::code),
        );
        // Istio leaves the gRPC status empty for non-gRPC responses.
        if let Some(g) = self.grpc_status {
            let _ = write!(out, "{g}");
        }
        let _ = write!(
            out,
            "\",connection_security_policy=\"{}\"",
            self.security.as_str()
        );
    }
}

/// The four Istio metrics of one label set.
#[derive(Debug, Default)]
pub struct Series {
    pub requests: std::sync::atomic::AtomicU64,
    pub duration: Histogram,
    pub request_bytes: Histogram,
    pub response_bytes: Histogram,
}

/// Largest status code kept in the lock-free fast path.
const FAST_CODES: usize = 600;

/// All series of one destination.
///
/// The common case (a plain HTTP response without a flag or gRPC status) finds its
/// series in an array indexed by status code and security policy: one atomic load.
/// Anything else goes through a read-locked map keyed by the small [`SeriesKey`], never
/// by strings.
#[derive(Debug)]
pub struct SeriesSet {
    fast: Box<[OnceLock<Arc<Series>>]>,
    other: RwLock<HashMap<SeriesKey, Arc<Series>>>,
    /// Every series in creation order, for rendering.
    all: Mutex<Vec<(SeriesKey, Arc<Series>)>>,
}

impl Default for SeriesSet {
    fn default() -> Self {
        SeriesSet {
            fast: (0..FAST_CODES * 2).map(|_| OnceLock::new()).collect(),
            other: RwLock::new(HashMap::new()),
            all: Mutex::new(Vec::new()),
        }
    }
}

impl SeriesSet {
    /// Runs `f` on the series of `key`, creating it on first use. No reference count
    /// is touched on the fast path, so workers on different cores share nothing but
    /// the counters themselves.
    #[inline]
    pub fn with(&self, key: SeriesKey, f: impl FnOnce(&Series)) {
        let plain = key.flag.is_none()
            && key.protocol == RequestProtocol::Http
            && key.grpc_status.is_none();
        if plain && usize::from(key.status) < FAST_CODES {
            let slot = usize::from(key.status) + FAST_CODES * (key.security as usize);
            return f(self.fast[slot].get_or_init(|| self.create(key)));
        }
        if let Some(s) = self
            .other
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return f(s);
        }
        let series = {
            let mut map = self.other.write().unwrap_or_else(|e| e.into_inner());
            map.entry(key).or_insert_with(|| self.create(key)).clone()
        };
        f(&series);
    }

    fn create(&self, key: SeriesKey) -> Arc<Series> {
        let series = Arc::new(Series::default());
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, series.clone()));
        series
    }

    /// Each series with its per-request label list (`request_protocol="http",...`).
    pub fn each(&self, mut f: impl FnMut(&str, &Series)) {
        let all: Vec<(SeriesKey, Arc<Series>)> =
            self.all.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut labels = String::with_capacity(160);
        for (key, series) in &all {
            labels.clear();
            key.render(&mut labels);
            f(&labels, series);
        }
    }
}
