//! What weir tells about the traffic it carries: Istio's standard metrics per
//! destination, exact latency quantiles over a sliding window, connection gauges, the
//! Prometheus exposition, and the process logging setup.

mod exposition;
mod flags;
mod histogram;
mod latency;
pub mod logging;
mod record;
mod series;
mod stats;

pub use exposition::{ExpositionContext, render_prometheus};
pub use flags::ResponseFlag;
pub use histogram::{ENVOY_BUCKETS, Histogram};
pub use latency::LatencyWindow;
pub use record::{Activity, BodyMeter, LogFields, RequestMeta, RequestRecord};
pub use series::{RequestProtocol, SecurityPolicy, SeriesKey};
pub use stats::{DestinationStats, Outcome, ProxyStats, StatusClass, escape};
