//! Envoy's response flags: why a request did not get a plain upstream response, in the
//! vocabulary of Envoy's `%RESPONSE_FLAGS%`, so log queries and dashboards written for
//! Envoy and Istio keep working.

/// One response flag. A request carries at most one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseFlag {
    /// No route matched the request (`NR`).
    NoRoute,
    /// No endpoint of the destination could be connected to (`UF`).
    UpstreamConnectFailure,
    /// The upstream did not answer within the route's timeout (`UT`).
    UpstreamTimeout,
    /// The upstream connection was reset or closed mid-request (`UC`).
    UpstreamConnectionTermination,
    /// The client went away before the response was complete (`DC`).
    DownstreamConnectionTermination,
    /// The destination's requests in flight and its queue were full (`UO`).
    UpstreamOverflow,
    /// Nothing moved on the request, either way, for the stream idle timeout (`SI`).
    StreamIdleTimeout,
}

impl ResponseFlag {
    /// The Envoy short code: `NR`, `UF`, `UT`, `UC`, `DC`, `UO`, `SI`.
    pub fn code(self) -> &'static str {
        match self {
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::UpstreamConnectFailure => "UF",
            ResponseFlag::UpstreamTimeout => "UT",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::DownstreamConnectionTermination => "DC",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::StreamIdleTimeout => "SI",
        }
    }
}
