//! Upstreams: destinations and their endpoints, the connections weir keeps to them, and
//! the one exchange that forwards a request to a destination.
//!
//! - [`forward`] (`exchange`): picks endpoints, connects, sends, and retries what is safe
//!   to retry, under the route's deadline, with one failure type ([`Failure`]);
//! - `h1`: weir's own HTTP/1.1 client over raw pooled sockets, driven by the task of the
//!   request it carries (no connection task, no channel);
//! - `h2`: hyper's HTTP/2 client, one multiplexed connection per worker and endpoint;
//! - `source`: what a request body looks like to the clients ([`BodySource`]), and the
//!   sink a response head is written to ([`ResponseSink`]);
//! - `pool`, `connect`, `registry`: per-worker pools, TCP and TLS connects, and the
//!   endpoints kept across config reloads.

mod body;
mod connect;
mod exchange;
mod failure;
mod h1;
mod h2;
mod limit;
mod pool;
mod raw_body;
mod registry;
mod select;
mod source;

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use body::RequestBody;
pub use connect::{ConnectError, UpstreamIo};
pub use exchange::{Outbound, OutboundHead, Response, forward};
pub use failure::Failure;
pub use h1::{Buffered, RawResponse};
pub use limit::{InFlight, PRESSURE_EVERY};
pub use raw_body::RawBody;
pub use registry::EndpointRegistry;
pub use source::{BodySource, ResponseSink, Trailers};

use crate::config::{EndpointAddr, Protocol};
use crate::telemetry::DestinationStats;
use crate::tls::ClientTls;

/// One named version of the service (release, canary, ...) and its endpoints.
#[derive(Debug)]
pub struct Destination {
    pub name: Arc<str>,
    pub protocol: Protocol,
    endpoints: Box<[Arc<Endpoint>]>,
    next: AtomicUsize,
    pub stats: Arc<DestinationStats>,
    limiter: Arc<limit::Limiter>,
}

impl Destination {
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Round robin: where the next request starts looking.
    #[inline]
    fn next_endpoint(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len()
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
    health: select::Health,
    /// Connect failures not yet logged, and when the last warning went out (seconds
    /// since start), so a dead endpoint at 10k req/s logs a line every few seconds.
    unlogged_failures: AtomicU64,
    last_warning: AtomicU64,
}

/// Seconds between two "connect failed" warnings for one endpoint.
const WARN_EVERY_SECS: u64 = 5;

impl Endpoint {
    /// Logs a connect failure, rate-limited per endpoint.
    fn note_connect_failure(&self, destination: &str, error: &ConnectError) {
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

/// Counts a live upstream connection for as long as it is open.
#[derive(Debug)]
struct ConnGuard(Arc<DestinationStats>);

impl ConnGuard {
    fn new(stats: &Arc<DestinationStats>) -> Self {
        stats.upstream_connection_opened();
        ConnGuard(stats.clone())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.upstream_connection_closed();
    }
}
