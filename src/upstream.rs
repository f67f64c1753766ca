//! Upstreams: destinations, their endpoints, and the pooled connections weir keeps to them.

mod body;
mod connect;
mod pool;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

pub use body::{BodyChunk, Replay, RequestBody};
pub use connect::{ConnectError, UpstreamIo};
pub use pool::{ConnReturn, Lease, RawConn, SendError};

use crate::config::{DestinationConfig, EndpointAddr, Protocol};
use crate::telemetry::DestinationStats;
use crate::tls::{ClientTls, ClientTlsSettings};

/// One named version of the service (release, canary, ...) and its endpoints.
#[derive(Debug)]
pub struct Destination {
    pub name: Arc<str>,
    pub protocol: Protocol,
    endpoints: Box<[Arc<Endpoint>]>,
    next: AtomicUsize,
    pub stats: Arc<DestinationStats>,
}

impl Destination {
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Round robin: the endpoint for the next request.
    #[inline]
    pub fn next_endpoint(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len()
    }

    /// The endpoints one request tries: the next one by round robin, then, after a
    /// connect failure, the one after it once (Envoy's `connect-failure` retry).
    pub fn cursor(&self) -> EndpointCursor<'_> {
        EndpointCursor {
            index: self.next_endpoint(),
            retry_left: self.endpoints.len() > 1,
            destination: self,
        }
    }
}

/// Which endpoint of a destination a request is on; see [`Destination::cursor`].
#[derive(Debug)]
pub struct EndpointCursor<'a> {
    destination: &'a Destination,
    index: usize,
    retry_left: bool,
}

impl<'a> EndpointCursor<'a> {
    pub fn endpoint(&self) -> &'a Arc<Endpoint> {
        &self.destination.endpoints[self.index]
    }

    /// Notes a connect failure on the current endpoint and moves to the next one when
    /// the retry is left; false when the request has no endpoint left to try.
    pub fn connect_failed(&mut self, error: &ConnectError) -> bool {
        self.endpoint()
            .note_connect_failure(&self.destination.name, error);
        if !self.retry_left {
            return false;
        }
        self.retry_left = false;
        self.index = (self.index + 1) % self.destination.endpoints.len();
        true
    }
}

/// One `host:port` of a destination, with its connection pool.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: EndpointAddr,
    /// `host:port` as text, for logs.
    pub label: Arc<str>,
    pub protocol: Protocol,
    connect_timeout: Duration,
    /// TLS to this endpoint, with the name its certificate must carry.
    tls: Option<(Arc<ClientTls>, rustls_pki_types::ServerName<'static>)>,
    stats: Arc<DestinationStats>,
    pool: pool::Pool,
    /// Connect failures not yet logged, and when the last warning went out (seconds
    /// since start), so a dead endpoint at 10k req/s logs a line every few seconds.
    unlogged_failures: AtomicU64,
    last_warning: AtomicU64,
}

/// Seconds between two "connect failed" warnings for one endpoint.
const WARN_EVERY_SECS: u64 = 5;

impl Endpoint {
    /// Logs a connect failure, rate-limited per endpoint.
    pub fn note_connect_failure(&self, destination: &str, error: &ConnectError) {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let now = EPOCH.get_or_init(Instant::now).elapsed().as_secs() + WARN_EVERY_SECS;
        let failures = self.unlogged_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + WARN_EVERY_SECS
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.unlogged_failures
                .fetch_sub(failures, Ordering::Relaxed);
            tracing::warn!(destination, endpoint = %self.label, %error, failures, "upstream connect failed");
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EndpointKey {
    destination: String,
    /// The stats the endpoint counts its connections into (they change with labels).
    stats: usize,
    addr: EndpointAddr,
    protocol: Protocol,
    connect_timeout: Duration,
    tls: Option<ClientTlsSettings>,
}

/// Keeps endpoints (and so their pooled connections) alive across config reloads: a
/// reload that only changes weights reuses every endpoint and every idle connection.
#[derive(Debug)]
pub struct EndpointRegistry {
    workers: usize,
    endpoints: Mutex<HashMap<EndpointKey, Weak<Endpoint>>>,
}

impl EndpointRegistry {
    pub fn new(workers: usize) -> Self {
        EndpointRegistry {
            workers,
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    /// Builds the runtime destination for `config`, reusing live endpoints.
    pub fn destination(
        &self,
        config: &DestinationConfig,
        stats: Arc<DestinationStats>,
    ) -> Arc<Destination> {
        let mut map = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, weak| weak.strong_count() > 0);
        let endpoints = config
            .endpoints
            .iter()
            .map(|addr| {
                let key = EndpointKey {
                    destination: config.name.clone(),
                    stats: Arc::as_ptr(&stats) as usize,
                    addr: addr.clone(),
                    protocol: config.protocol,
                    connect_timeout: config.connect_timeout,
                    tls: config.tls.as_ref().map(|t| t.settings.clone()),
                };
                if let Some(live) = map.get(&key).and_then(Weak::upgrade) {
                    // Same settings; the files may have changed since the live one loaded.
                    if let (Some((live_tls, _)), Some(new)) = (&live.tls, &config.tls) {
                        live_tls.adopt(&new.state);
                    }
                    return live;
                }
                let tls = config.tls.as_ref().map(|t| {
                    let name = t
                        .settings
                        .server_name_for(&addr.host)
                        .expect("TLS server names are validated with the config");
                    (t.state.clone(), name)
                });
                let endpoint = Arc::new(Endpoint {
                    addr: addr.clone(),
                    label: addr.to_string().into(),
                    protocol: config.protocol,
                    connect_timeout: config.connect_timeout,
                    tls,
                    stats: stats.clone(),
                    pool: pool::Pool::new(self.workers),
                    unlogged_failures: AtomicU64::new(0),
                    last_warning: AtomicU64::new(0),
                });
                map.insert(key, Arc::downgrade(&endpoint));
                endpoint
            })
            .collect();
        Arc::new(Destination {
            name: config.name.as_str().into(),
            protocol: config.protocol,
            endpoints,
            next: AtomicUsize::new(0),
            stats,
        })
    }

    /// Closes idle pooled connections that timed out or that their upstream closed
    /// (called every few seconds from the admin thread).
    pub fn sweep_idle(&self) {
        let live: Vec<Arc<Endpoint>> = {
            let map = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
            map.values().filter_map(Weak::upgrade).collect()
        };
        for endpoint in live {
            endpoint.pool.sweep();
        }
    }

    /// The TLS states of the live endpoints, each once, for certificate reloads.
    pub fn client_tls(&self) -> Vec<Arc<ClientTls>> {
        let map = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Arc<ClientTls>> = Vec::new();
        for endpoint in map.values().filter_map(Weak::upgrade) {
            if let Some((tls, _)) = &endpoint.tls
                && !out.iter().any(|t| Arc::ptr_eq(t, tls))
            {
                out.push(tls.clone());
            }
        }
        out
    }
}
