//! weir: a traffic-split sidecar proxy.
//!
//! weir divides a service's HTTP traffic between its versions (release, baseline,
//! canary, prerelease), measures each share, and changes the weights live. The modules
//! follow a request:
//!
//! - [`listener`]: accept client connections (HTTP/1.1 and h2c on one port), drain them;
//! - [`routing`]: first matching route, then a weighted pick of a destination;
//! - [`proxy`]: the request path, headers, failure answers;
//! - [`upstream`]: endpoints, pooled connections, sending;
//! - [`tls`]: TLS and mutual TLS on the listener and to upstreams, certificate reload;
//! - [`telemetry`]: per-destination statistics and logs;
//! - [`config`], [`snapshot`], [`state`], [`reload`]: what the proxy runs on, and how
//!   it changes live (file watching, SIGHUP, the weights API);
//! - [`admin`]: health, readiness and the admin API;
//! - [`server`], [`runtime`]: starting, worker threads, shutdown;
//! - [`synthetic`], [`demo`]: a synthetic upstream and the one-command demo.

#![forbid(unsafe_code)]

pub mod admin;
mod civil;
pub mod config;
pub mod demo;
mod http1;
pub mod listener;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod synthetic;
pub mod telemetry;
pub mod tls;
pub mod upstream;

pub use config::Config;
pub use server::{Server, ServerOptions};
