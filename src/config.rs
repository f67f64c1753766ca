//! weir's configuration: what a `weir.yaml` says, validated.
//!
//! Loading goes in two steps, so that every problem is reported at once and with its
//! place: YAML is read into [`raw::RawConfig`] (serde, with positions), then
//! [`validate`] checks it and builds a [`Config`].
//!
//! A `Config` is plain data. Validation reads the TLS files it names to check them (so a
//! bad certificate is refused at the key that names it), but the live TLS states are
//! built from the settings when the server starts and when a routing snapshot is built.

pub mod duration;
mod error;
pub mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, Issue};
pub use validate::{resolve_path, split_from_weights, valid_name};

use crate::routing::RequestMatch;
use crate::tls::{ClientTlsSettings, ServerTlsSettings};

/// The config weir starts with when `weir demo` runs; also a template for the docs.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:15001";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:15000";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from (a file path), for messages.
    pub origin: String,
    /// A hash of the text it was parsed from, so a reload can tell an unchanged file.
    pub text_hash: u64,
    /// The data-plane listener: HTTP/1.1 and h2c on one port.
    pub listen: SocketAddr,
    /// The admin listener: health, readiness, config, metrics, weights API.
    pub admin: SocketAddr,
    pub admin_token_file: Option<PathBuf>,
    pub labels: ServiceLabels,
    pub access_log: bool,
    pub telemetry: bool,
    /// The sliding window of the exact latency quantiles.
    pub latency_window: Duration,
    /// How long in-flight requests get to finish on SIGTERM.
    pub drain_timeout: Duration,
    /// How long an HTTP/1.1 client connection may wait between requests.
    pub idle_timeout: Duration,
    /// What one client may hold, and for how long (see [`Limits`]).
    pub limits: Limits,
    /// The HTTP/1.1 `Upgrade` protocols tunnelled (lowercase), `websocket` by default.
    pub upgrades: Vec<String>,
    /// Worker threads; `None` means one per available CPU.
    pub workers: Option<usize>,
    /// TLS on the data-plane listener; `None` serves plaintext only.
    pub tls: Option<ServerTlsSettings>,
    pub destinations: Vec<DestinationConfig>,
    pub routes: Vec<RouteConfig>,
}

/// What one client may hold, and for how long: Envoy's edge defaults, each listed in
/// the README's "Limits and defences" with what a client sees when it hits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Client connections open at once; more are closed at accept. `None`: derived
    /// from the file-descriptor limit when weir starts.
    pub max_connections: Option<usize>,
    /// From a request's first byte (a connection's start, for its first request) to
    /// the end of its head: 408 after it.
    pub request_header_timeout: Duration,
    /// From a request's first byte to the end of its body: 408 after it. `None`: off.
    pub request_timeout: Option<Duration>,
    /// Nothing sent or received on a request (either way) for this long ends it: 408
    /// before the response, 504 while waiting for it, a cut body after. `None`: off.
    pub stream_idle_timeout: Option<Duration>,
    /// Streams one HTTP/2 client connection may have open.
    pub http2_max_concurrent_streams: u32,
}

/// The service-level labels of the Istio metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLabels {
    pub service: String,
    pub namespace: String,
    pub reporter: String,
    pub workload: String,
}

/// Which HTTP version weir speaks to a destination's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
        }
    }
}

/// A `host:port` an upstream listens on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointAddr {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for EndpointAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One destination: a named version of the service and its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationConfig {
    pub name: String,
    pub endpoints: Vec<EndpointAddr>,
    pub protocol: Protocol,
    pub connect_timeout: Duration,
    /// `destination_workload` and `destination_version` metric labels.
    pub workload: String,
    pub version: String,
    /// TLS to the endpoints; `None` is plaintext.
    pub tls: Option<ClientTlsSettings>,
    pub pool: PoolLimits,
}

/// How much load weir puts on one destination at once (Envoy's circuit breakers, with
/// their defaults): requests in flight, and requests waiting for one to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolLimits {
    pub max_requests: usize,
    pub max_pending_requests: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_requests: 1024,
            max_pending_requests: 1024,
        }
    }
}

/// One route: first match wins, then the split picks a destination per request.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub matcher: RequestMatch,
    /// `(index into Config::destinations, weight)`, in the order written.
    pub split: Vec<(usize, u32)>,
    /// Time allowed for the whole upstream exchange; `None` means no limit (Istio's default).
    pub timeout: Option<Duration>,
}

/// The hash weir compares config texts by (not cryptographic: it only tells a changed
/// file from an unchanged one).
pub fn text_hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            origin: origin.clone(),
            source,
        })?;
        Config::parse(&text, &origin)
    }

    /// Validates config text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config = validate::parse(text, origin).map_err(|issues| ConfigError::Invalid {
            origin: origin.to_owned(),
            issues,
        })?;
        config.text_hash = text_hash(text.as_bytes());
        Ok(config)
    }

    pub fn destination_index(&self, name: &str) -> Option<usize> {
        self.destinations.iter().position(|d| d.name == name)
    }

    pub fn route(&self, name: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.name == name)
    }
}
