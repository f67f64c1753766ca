//! weir's own answers, for requests it cannot (or must not) forward: the status, the
//! response flag, and a one-line body that says what happened.

use crate::telemetry::ResponseFlag;
use crate::upstream::Failure;

/// One of weir's own responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    /// Sent as `x-weir-response-flags` and recorded; `None` for a plain client error.
    pub flag: Option<ResponseFlag>,
    pub body: &'static str,
}

impl LocalReply {
    /// The answer for a request that ended with `flag` before any upstream response.
    pub fn for_flag(flag: ResponseFlag) -> Self {
        let (status, body) = match flag {
            ResponseFlag::NoRoute => (404, "no route matched this request (NR)\n"),
            ResponseFlag::UpstreamConnectFailure => (
                503,
                "upstream connect error: no endpoint of the destination could be reached (UF)\n",
            ),
            ResponseFlag::UpstreamTimeout => (504, "upstream request timeout (UT)\n"),
            ResponseFlag::UpstreamConnectionTermination => (
                502,
                "upstream connection terminated before the response completed (UC)\n",
            ),
            // The client is gone; nobody reads this. Envoy logs 0, and so do we.
            ResponseFlag::DownstreamConnectionTermination => {
                (400, "client connection terminated (DC)\n")
            }
            ResponseFlag::UpstreamOverflow => (
                503,
                "upstream overflow: the destination's requests in flight and its queue are full (UO)\n",
            ),
            ResponseFlag::StreamIdleTimeout => (408, "stream idle timeout (SI)\n"),
        };
        LocalReply {
            status,
            flag: Some(flag),
            body,
        }
    }

    /// The answer for a request whose forwarding failed; `None` when the client is
    /// gone and nobody would read one.
    pub fn for_failure(failure: &Failure) -> Option<Self> {
        match failure {
            Failure::ClientGone => None,
            Failure::ClientBody(_) => Some(Self::bad_request("malformed chunked request body\n")),
            Failure::RequestTimeout => Some(LocalReply {
                status: 408,
                flag: None,
                body: "request timeout: the request body did not arrive in time\n",
            }),
            other => other.flag().map(Self::for_flag),
        }
    }

    /// A 400 for a request weir cannot read.
    pub fn bad_request(body: &'static str) -> Self {
        LocalReply {
            status: 400,
            flag: None,
            body,
        }
    }
}
