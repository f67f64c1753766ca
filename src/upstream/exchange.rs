//! Forwarding one request to a destination: the one place that picks endpoints,
//! connects, sends, and decides what may be tried again (the caller's clocks bound it).
//!
//! What is retried, and why it is safe:
//! - a connect failure, once, on the destination's next endpoint (Envoy's
//!   `connect-failure`): nothing was sent;
//! - a pooled HTTP/1.1 connection that the upstream closed as it was taken, before any
//!   byte of an answer, once on a new connection, when the request has no body;
//! - a stream an HTTP/2 upstream refused unprocessed (GOAWAY, REFUSED_STREAM), on a new
//!   connection, body included while it fits the replay buffer (Envoy's
//!   `refused-stream`), at most [`MAX_UNPROCESSED_RETRIES`] times.
//!
//! Nothing else is retried: the request may already have had effects upstream.

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::body::{BodyChunk, Replay, RequestBody};
use super::h1::{self, RawResponse, ResponseStart};
use super::limit::InFlight;
use super::select::EndpointCursor;
use super::source::{BodySource, ResponseSink, Trailers};
use super::{Destination, Endpoint, Failure};
use crate::config::Protocol;
use crate::http1::Framing;

/// How many times a request that was not processed is sent again.
const MAX_UNPROCESSED_RETRIES: usize = 3;

/// The request as the upstream will receive it.
#[derive(Debug)]
pub struct Outbound<'a> {
    pub head: OutboundHead<'a>,
    /// A `HEAD` request: its response has no body, whatever its framing says.
    pub head_request: bool,
}

/// The request's head in the upstream's protocol.
#[derive(Debug)]
pub enum OutboundHead<'a> {
    /// The request line and header fields; the body goes with `framing`. `upgrade`
    /// asks for a connection of its own, which may become a tunnel.
    Http1 {
        bytes: &'a mut Vec<u8>,
        framing: Framing,
        upgrade: bool,
    },
    Http2(Box<http::request::Parts>),
}

/// The upstream's response, its head received.
#[derive(Debug)]
pub enum Response {
    /// From an HTTP/1.1 upstream: the head went to the sink; the body is read from the
    /// connection (and holds the request's place in the destination's limit).
    Http1 {
        start: ResponseStart,
        body: RawResponse,
    },
    /// From an HTTP/2 upstream: the request's place goes with the body.
    Http2 {
        response: http::Response<Incoming>,
        endpoint: Arc<Endpoint>,
        in_flight: InFlight,
    },
}

impl Response {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        match self {
            Response::Http1 { body, .. } => body.endpoint(),
            Response::Http2 { endpoint, .. } => endpoint,
        }
    }
}

/// Forwards a request to `destination` and returns its response once the head arrived,
/// or why there is none, trying endpoints until one answers or a failure may not be
/// retried. The caller's clocks (the route's deadline among them) bound all of it, a
/// wait for a place in the destination's limit included.
pub async fn forward<B: BodySource, S: ResponseSink>(
    destination: &Destination,
    outbound: Outbound<'_>,
    body: &mut B,
    sink: &mut S,
) -> Result<Response, Failure> {
    // One async fn, not two nested: a free place is taken without awaiting, and the
    // tries run in this future's own state (a nested future is built, then moved in).
    let in_flight = match destination.limiter.try_enter() {
        Some(place) => place,
        None => destination.limiter.enter().await.inspect_err(|_| {
            destination.stats.overflowed();
        })?,
    };
    debug_assert_eq!(
        matches!(outbound.head, OutboundHead::Http2(_)),
        destination.protocol == Protocol::Http2
    );
    let head_request = outbound.head_request;
    let mut head = match outbound.head {
        OutboundHead::Http1 {
            bytes,
            framing,
            upgrade,
        } => Head::Http1 {
            bytes,
            framing,
            upgrade,
        },
        OutboundHead::Http2(parts) => Head::Http2(Box::new(H2Request::new(*parts, body))),
    };
    let mut cursor = EndpointCursor::new(destination).ok_or(Failure::Unavailable)?;
    let mut retries = 0;
    let mut fresh = false;
    let mut in_flight = Some(in_flight);
    loop {
        let endpoint = cursor.endpoint();
        let result = match &mut head {
            Head::Http1 {
                bytes,
                framing,
                upgrade,
            } => {
                let fresh = fresh || *upgrade;
                attempt_h1(endpoint, bytes, *framing, fresh, head_request, body, sink).await
            }
            Head::Http2(request) => attempt_h2(endpoint, request, body).await,
        };
        match result {
            Ok(answer) => {
                let place = in_flight.take().expect("a response is returned once");
                return Ok(match answer {
                    Answer::Http1 { start, mut body } => {
                        body.hold_place(place);
                        Response::Http1 { start, body }
                    }
                    Answer::Http2(response) => Response::Http2 {
                        response,
                        endpoint: endpoint.clone(),
                        in_flight: place,
                    },
                });
            }
            Err(Failure::Connect(error)) => {
                if !cursor.connect_failed(&error) {
                    return Err(Failure::Connect(error));
                }
            }
            Err(failure) if failure.is_unprocessed() && retries < MAX_UNPROCESSED_RETRIES => {
                tracing::debug!(destination = %destination.name, endpoint = %endpoint.label, %failure, "request not processed; sending it again");
                retries += 1;
                fresh = true;
            }
            Err(failure) => {
                tracing::debug!(destination = %destination.name, endpoint = %endpoint.label, %failure, "upstream failed");
                return Err(failure);
            }
        }
    }
}

/// What one try brought back.
enum Answer {
    Http1 {
        start: ResponseStart,
        body: RawResponse,
    },
    Http2(http::Response<Incoming>),
}

enum Head<'a> {
    Http1 {
        bytes: &'a mut Vec<u8>,
        framing: Framing,
        upgrade: bool,
    },
    Http2(Box<H2Request>),
}

/// One try over HTTP/1.1. A pooled connection that failed unprocessed is worth another
/// try only when the request has no body to send again.
async fn attempt_h1<B: BodySource, S: ResponseSink>(
    endpoint: &Arc<Endpoint>,
    head: &mut Vec<u8>,
    framing: Framing,
    fresh: bool,
    head_request: bool,
    body: &mut B,
    sink: &mut S,
) -> Result<Answer, Failure> {
    let mut conn = endpoint.checkout_raw(fresh).await?;
    match h1::send(&mut conn, head, framing, head_request, body, sink).await {
        Ok(start) => {
            let body = RawResponse::new(endpoint.clone(), conn, &start);
            Ok(Answer::Http1 { start, body })
        }
        Err(Failure::Stale) if !(conn.reused() && body.is_empty()) => Err(Failure::Upstream(
            "the upstream closed the connection before answering".into(),
        )),
        Err(failure) => Err(failure),
    }
}

/// An HTTP/2 request across its tries: the first request, what it takes to send it
/// again, and the channel its body is fed through when hyper cannot read it itself.
struct H2Request {
    first: Option<http::Request<RequestBody>>,
    replay: Replay,
    pump: Option<mpsc::Sender<BodyChunk>>,
}

impl H2Request {
    fn new<B: BodySource>(parts: http::request::Parts, body: &mut B) -> Self {
        let (request_body, pump) = if body.is_empty() {
            (RequestBody::empty(), None)
        } else if let Some(own) = body.take_hyper() {
            (own, None)
        } else {
            let (tx, rx) = mpsc::channel(2);
            (RequestBody::channel(rx), Some(tx))
        };
        let mut first = http::Request::from_parts(parts, request_body);
        let replay = Replay::keep(&mut first);
        H2Request {
            first: Some(first),
            replay,
            pump,
        }
    }
}

/// One try over HTTP/2; a refused stream is worth another try when its body can be
/// sent again.
async fn attempt_h2<B: BodySource>(
    endpoint: &Arc<Endpoint>,
    request: &mut H2Request,
    body: &mut B,
) -> Result<Answer, Failure> {
    let sender = endpoint.h2_sender().await?;
    let req = match request.first.take() {
        Some(first) => first,
        None => request.replay.again().ok_or_else(|| {
            Failure::Upstream(
                "the upstream refused the stream, and its body is too large to send again".into(),
            )
        })?,
    };
    let sending = endpoint.send_h2(sender, req);
    tokio::select! {
        response = sending => Ok(Answer::Http2(response?)),
        failure = client_side(&mut request.pump, body) => Err(failure),
    }
}

/// The client's side of an HTTP/2 exchange while the response is awaited: its body
/// pumped into hyper's channel (when hyper cannot read it itself), then a watch for the
/// client going away. Resolves only with a failure.
async fn client_side<B: BodySource>(
    pump: &mut Option<mpsc::Sender<BodyChunk>>,
    body: &mut B,
) -> Failure {
    if let Some(tx) = pump.as_ref() {
        if let Err(failure) = pump_body(tx, body).await {
            return failure;
        }
        // The whole body and its end marker are in the channel.
        *pump = None;
    }
    poll_fn(|cx| body.poll_gone(cx)).await;
    Failure::ClientGone
}

/// Feeds the client's body into the channel hyper's client reads from, until its end.
/// Cancel-safe: data is taken from the source only once the channel has room for it.
async fn pump_body<B: BodySource>(
    tx: &mpsc::Sender<BodyChunk>,
    body: &mut B,
) -> Result<(), Failure> {
    loop {
        let Ok(permit) = tx.reserve().await else {
            // The upstream stopped reading: its response says why.
            return std::future::pending().await;
        };
        let data = poll_fn(|cx| {
            body.poll_data(cx)
                .map(|data| data.map(|d| d.map(Bytes::copy_from_slice)))
        })
        .await?;
        match data {
            Some(data) => {
                body.advance(data.len());
                permit.send(BodyChunk::Data(data));
            }
            None => {
                let trailers = body.take_trailers().map(Trailers::into_map);
                permit.send(BodyChunk::End(trailers));
                return Ok(());
            }
        }
    }
}
