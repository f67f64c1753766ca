//! weir: a traffic-split sidecar proxy.
//!
//! weir divides a service's HTTP traffic between its versions (release, baseline,
//! canary, prerelease), measures each share, and changes the weights live. The modules
//! follow a request, and each depends only on the ones after it:
//!
//! - [`server`], [`runtime`]: starting, worker threads, the drain signal, background
//!   jobs, shutdown;
//! - [`canary`]: the canary judge (Kayenta's statistics) and the rollout that drives
//!   weirs through their admin API and promotes or rolls back;
//! - [`listener`]: accepts client connections, tells TLS, h2c and HTTP/1.1 apart;
//! - `codec`: the client side's HTTP/1.1 (weir's own) and HTTP/2 (hyper) codecs;
//! - [`pipeline`]: the request path in the middle, the same for both: route, plan,
//!   forward, answer;
//! - [`upstream`]: destinations, endpoints, pooled connections, the one exchange with
//!   its retries and failures;
//! - [`routing`], [`headers`], `http1`: route matching and the weighted split, the
//!   header policy, the HTTP/1.1 wire format;
//! - [`telemetry`]: the request record, Istio's metrics, latency windows, logs;
//! - [`config`], [`tls`]: what weir runs on, as plain data, and TLS on both sides;
//! - [`snapshot`], [`state`], [`reload`], [`admin`]: the routing snapshot a change
//!   swaps in whole, and how it changes live (file watching, SIGHUP, the weights API);
//! - [`synthetic`], [`demo`]: a synthetic upstream and the one-command demo.

#![forbid(unsafe_code)]

pub(crate) mod admin;
pub mod canary;
mod civil;
mod codec;
pub mod config;
pub mod demo;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub(crate) mod headers;
mod http1;
pub(crate) mod listener;
pub(crate) mod pipeline;
pub(crate) mod reload;
pub mod routing;
pub mod runtime;
pub mod server;
pub(crate) mod snapshot;
pub(crate) mod state;
pub mod synthetic;
pub mod telemetry;
pub mod tls;
pub(crate) mod upstream;

pub use config::Config;
pub use server::{Server, ServerOptions};
