//! What weir tells about the traffic it carries: per-destination statistics, the access
//! log and the process-wide logging setup.

pub mod logging;
mod stats;

pub use stats::{DestinationStats, Outcome, ProxyStats, StatusClass};
