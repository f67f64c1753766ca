//! How forwarding a request can fail before the upstream's response head reached weir,
//! in one type for both upstream protocols, and what each failure means for the client.

use super::ConnectError;
use crate::http1::ChunkError;
use crate::telemetry::ResponseFlag;

/// Why a request got no upstream response head.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No endpoint could be connected to (after the retry on the next endpoint).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Every endpoint of the destination is backing off after connect failures.
    #[error("every endpoint of the destination is backing off after connect failures")]
    Unavailable,
    /// The destination's requests in flight and its queue were full.
    #[error("the destination's requests in flight and its queue are full")]
    Overflow,
    /// The route's timeout expired first.
    #[error("the route's timeout expired before the upstream answered")]
    Timeout,
    /// Nothing moved on the request for the stream idle timeout.
    #[error("nothing moved on the request for the stream idle timeout")]
    StreamIdle,
    /// The request's body did not arrive within the request timeout.
    #[error("the request body did not arrive within the request timeout")]
    RequestTimeout,
    /// A pooled HTTP/1.1 connection turned out closed before any byte of an answer: the
    /// upstream closed it as it was taken, so the request was not processed.
    #[error("the upstream closed the pooled connection before answering")]
    Stale,
    /// An HTTP/2 upstream refused the stream unprocessed (a GOAWAY that left it out, or
    /// REFUSED_STREAM; RFC 9113 §8.7).
    #[error("the upstream refused the stream unprocessed: {0}")]
    Refused(String),
    /// The upstream failed after the request went out, or answered with garbage.
    #[error("the upstream failed before the response head: {0}")]
    Upstream(String),
    /// The client went away.
    #[error("the client went away")]
    ClientGone,
    /// The client's chunked request body is malformed.
    #[error("the client's request body is malformed: {0}")]
    ClientBody(#[from] ChunkError),
}

impl Failure {
    /// Envoy's flag for this failure; `None` for a malformed request body, which is the
    /// client's fault and answered 400.
    pub fn flag(&self) -> Option<ResponseFlag> {
        Some(match self {
            Failure::Connect(_) | Failure::Unavailable => ResponseFlag::UpstreamConnectFailure,
            Failure::Overflow => ResponseFlag::UpstreamOverflow,
            Failure::Timeout => ResponseFlag::UpstreamTimeout,
            Failure::StreamIdle => ResponseFlag::StreamIdleTimeout,
            Failure::Stale | Failure::Refused(_) | Failure::Upstream(_) => {
                ResponseFlag::UpstreamConnectionTermination
            }
            Failure::ClientGone => ResponseFlag::DownstreamConnectionTermination,
            Failure::ClientBody(_) | Failure::RequestTimeout => return None,
        })
    }

    /// The request did not reach the upstream's application, so sending it again cannot
    /// do anything twice (if its body can be sent again).
    pub(super) fn is_unprocessed(&self) -> bool {
        matches!(self, Failure::Stale | Failure::Refused(_))
    }
}
