//! What the upstream clients see of the client's side of an exchange: the request body
//! as a [`BodySource`] they pull from, and the [`ResponseSink`] an HTTP/1.1 upstream's
//! response head is handed to while it is still in the connection's buffer. Each client
//! codec implements both for its own connections, so the upstream side never knows
//! which protocol the client speaks.

use std::task::{Context, Poll};

use std::sync::Arc;

use http::HeaderMap;

use super::{Failure, RequestBody};
use crate::headers::{HeaderSink, MapSink, Role, role, trim_ows};
use crate::http1::ResponseHead;
use crate::telemetry::BodyMeter;

/// Trailer fields at the end of a body, as the side that read them has them.
#[derive(Debug)]
pub enum Trailers {
    /// HTTP/1.1 trailer lines, each `name: value\r\n`, validated like header lines.
    Lines(Vec<u8>),
    Map(HeaderMap),
}

impl Trailers {
    /// Writes the fields a trailer section may carry: end-to-end ones only. Framing,
    /// routing, connection and forwarding fields are dropped (RFC 9110 §6.5.1 forbids
    /// them in trailers; a peer that merged them would be steered by them).
    pub fn write_to(&self, sink: &mut impl HeaderSink) {
        let mut field = |name: &str, value: &[u8]| {
            if role(name) == Role::EndToEnd {
                sink.field(name, value);
            }
        };
        match self {
            Trailers::Lines(lines) => {
                for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if let Some(colon) = line.iter().position(|&b| b == b':')
                        && let Ok(name) = std::str::from_utf8(&line[..colon])
                    {
                        field(name, trim_ows(&line[colon + 1..]));
                    }
                }
            }
            Trailers::Map(map) => {
                for (name, value) in map {
                    field(name.as_str(), value.as_bytes());
                }
            }
        }
    }

    pub fn into_map(self) -> HeaderMap {
        match self {
            Trailers::Map(map) => map,
            lines => {
                let mut map = HeaderMap::new();
                lines.write_to(&mut MapSink::new(&mut map));
                map
            }
        }
    }
}

/// The request body, as the upstream clients pull it.
pub trait BodySource {
    /// True when the request has no body at all (nothing will ever be sent).
    fn is_empty(&self) -> bool;

    /// The next data of the body, borrowed until [`BodySource::advance`]; `Ok(None)`
    /// once the body ended. Fails with [`Failure::ClientGone`] or
    /// [`Failure::ClientBody`].
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<&[u8]>, Failure>>;

    /// `n` bytes of the last data were sent.
    fn advance(&mut self, n: usize);

    /// The trailer fields, once `poll_data` said the body ended.
    fn take_trailers(&mut self) -> Option<Trailers>;

    /// Ready when the client went away, while weir waits for the response after the
    /// whole body went out.
    fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<()>;

    /// The body as hyper's client can stream it on its own, when the source can give
    /// itself up (an HTTP/2 client's body); else the caller feeds hyper from
    /// `poll_data`.
    fn take_hyper(&mut self) -> Option<RequestBody> {
        None
    }

    /// The meter a body that streams on its own reports to (see `take_hyper`).
    fn meter(&self) -> Option<&Arc<BodyMeter>> {
        None
    }
}

/// Where the response head of an HTTP/1.1 upstream goes, while it is still borrowed
/// from the connection's buffer (so it is never copied or parsed twice).
pub trait ResponseSink {
    /// The final response head arrived (interim 1xx ones other than 101 are dropped
    /// before this). `body_sent`: the whole request body went out before it.
    fn http1_head(&mut self, head: &ResponseHead<'_, '_>, body_sent: bool);
}
