//! Envoy's response flags, and the short answers weir gives when it cannot proxy.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::body::{Exchange, ResponseBody};

/// Why a request did not get a normal upstream response, in Envoy's `%RESPONSE_FLAGS%`
/// vocabulary, so log queries and dashboards written for Envoy keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseFlag {
    /// No route matched the request.
    NoRoute,
    /// No endpoint of the destination could be connected to.
    UpstreamConnectFailure,
    /// The upstream did not answer within the route's timeout.
    UpstreamTimeout,
    /// The upstream connection was reset or closed mid-request.
    UpstreamConnectionTermination,
    /// The client went away before the response was complete.
    DownstreamConnectionTermination,
}

impl ResponseFlag {
    /// The Envoy short code: `NR`, `UF`, `UT`, `UC`, `DC`.
    pub fn code(self) -> &'static str {
        match self {
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::UpstreamConnectFailure => "UF",
            ResponseFlag::UpstreamTimeout => "UT",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::DownstreamConnectionTermination => "DC",
        }
    }

    /// The status weir answers with when this flag ends a request before any upstream
    /// response started.
    pub fn status(self) -> StatusCode {
        match self {
            ResponseFlag::NoRoute => StatusCode::NOT_FOUND,
            ResponseFlag::UpstreamConnectFailure => StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlag::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ResponseFlag::UpstreamConnectionTermination => StatusCode::BAD_GATEWAY,
            // The client is gone; nobody reads this. Envoy logs 0, and so do we.
            ResponseFlag::DownstreamConnectionTermination => StatusCode::BAD_REQUEST,
        }
    }

    /// The short text body of weir's own answer for this flag.
    pub fn message(self) -> &'static str {
        match self {
            ResponseFlag::NoRoute => "no route matched this request (NR)\n",
            ResponseFlag::UpstreamConnectFailure => {
                "upstream connect error: no endpoint of the destination could be reached (UF)\n"
            }
            ResponseFlag::UpstreamTimeout => "upstream request timeout (UT)\n",
            ResponseFlag::UpstreamConnectionTermination => {
                "upstream connection terminated before the response completed (UC)\n"
            }
            ResponseFlag::DownstreamConnectionTermination => "client connection terminated (DC)\n",
        }
    }
}

/// The response weir sends on its own for `flag`: a short text body naming the flag.
pub fn local_reply(flag: ResponseFlag, mut exchange: Exchange) -> Response<ResponseBody> {
    let status = flag.status();
    exchange.set_response(status, Some(flag));
    let mut resp = Response::new(ResponseBody::local(
        Bytes::from_static(flag.message().as_bytes()),
        exchange,
    ));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        "x-weir-response-flags",
        HeaderValue::from_static(flag.code()),
    );
    resp
}
