//! The response body weir streams back, and the record of one exchange that is logged
//! and counted when that body ends.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use super::ResponseFlag;
use crate::http1::RawBody;
use crate::snapshot::Route;
use crate::telemetry::{DestinationStats, Outcome, RequestProtocol, SecurityPolicy};
use crate::upstream::ConnReturn;

/// Fields only the access log needs; captured only when it is on.
#[derive(Debug)]
pub struct LogFields {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub peer: SocketAddr,
    pub request_id: Option<HeaderValue>,
    /// `TLSv1.3`, `TLSv1.2`, or `-` for plaintext.
    pub tls_version: &'static str,
    /// The verified client certificate's subject.
    pub client_subject: Option<Arc<str>>,
}

/// One request's journey, recorded (stats, access log) exactly once: when its response
/// body ends, or when it is dropped because the client went away.
pub struct Exchange {
    start: Instant,
    stats: Arc<DestinationStats>,
    route: Option<Arc<Route>>,
    endpoint: Option<Arc<str>>,
    status: u16,
    flag: Option<ResponseFlag>,
    /// Counted by the request body as it streams upstream (hyper's path).
    request_counter: Option<Arc<AtomicU64>>,
    /// Counted directly by whoever copies the request body (weir's HTTP/1.1 path).
    request_bytes: u64,
    response_bytes: u64,
    log: Option<Box<LogFields>>,
    /// False until a response (upstream or local) is known.
    answered: bool,
    protocol: RequestProtocol,
    security: SecurityPolicy,
    grpc_status: Option<u8>,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("destination", &self.stats.name)
            .field("status", &self.status)
            .field("flag", &self.flag)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// Starts the record; `stats` is the destination's, or the `unknown` one when no
    /// route matched.
    pub fn start(
        start: Instant,
        stats: Arc<DestinationStats>,
        route: Option<Arc<Route>>,
        (protocol, security): (RequestProtocol, SecurityPolicy),
        log: Option<Box<LogFields>>,
    ) -> Self {
        stats.request_started();
        Exchange {
            protocol,
            security,
            grpc_status: None,
            start,
            stats,
            route,
            endpoint: None,
            status: 0,
            flag: None,
            request_counter: None,
            request_bytes: 0,
            response_bytes: 0,
            log,
            answered: false,
        }
    }

    pub fn set_endpoint(&mut self, endpoint: Arc<str>) {
        self.endpoint = Some(endpoint);
    }

    pub fn set_request_counter(&mut self, counter: Arc<AtomicU64>) {
        self.request_counter = Some(counter);
    }

    pub fn add_request_bytes(&mut self, n: u64) {
        self.request_bytes += n;
    }

    /// The status of the response, once one is known.
    pub fn status(&self) -> Option<u16> {
        self.answered.then_some(self.status)
    }

    pub fn set_response(&mut self, status: StatusCode, flag: Option<ResponseFlag>) {
        self.status = status.as_u16();
        self.flag = flag;
        self.answered = true;
    }

    pub fn add_response_bytes(&mut self, n: u64) {
        self.response_bytes += n;
    }

    /// Marks a failure that happened after the response started (the status stays).
    pub fn set_flag(&mut self, flag: ResponseFlag) {
        self.flag.get_or_insert(flag);
    }

    /// Notes a `grpc-status` seen in response headers or trailers.
    pub fn observe_grpc_status(&mut self, headers: &http::HeaderMap) {
        if let Some(code) = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u8>().ok())
        {
            self.grpc_status = Some(code);
        }
    }

    pub fn log_fields_mut(&mut self) -> Option<&mut LogFields> {
        self.log.as_deref_mut()
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.answered {
            // The client went away before any response: Envoy logs status 0 and DC.
            self.status = 0;
            self.flag = Some(ResponseFlag::DownstreamConnectionTermination);
        }
        let outcome = Outcome {
            status: self.status,
            flag: self.flag,
            duration: self.start.elapsed(),
            request_bytes: self.request_bytes
                + self
                    .request_counter
                    .as_ref()
                    .map_or(0, |c| c.load(Ordering::Relaxed)),
            response_bytes: self.response_bytes,
            protocol: self.protocol,
            grpc_status: self.grpc_status,
            security: self.security,
        };
        self.stats.request_finished(&outcome);
        if let Some(log) = &self.log {
            tracing::info!(
                target: "weir::access",
                method = %log.method,
                path = %log.uri.path_and_query().map_or("/", |p| p.as_str()),
                protocol = ?log.version,
                route = self.route.as_ref().map_or("-", |r| &*r.name),
                destination = self.route.as_ref().map_or("-", |_| &*self.stats.name),
                endpoint = self.endpoint.as_deref().unwrap_or("-"),
                status = outcome.status,
                flags = outcome.flag.map_or("-", ResponseFlag::code),
                duration_ms = %Millis(outcome.duration),
                request_bytes = outcome.request_bytes,
                response_bytes = outcome.response_bytes,
                peer = %log.peer,
                tls = log.tls_version,
                client_subject = log.client_subject.as_deref().unwrap_or("-"),
                request_id = log.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
                "access"
            );
        }
    }
}

/// A duration printed as milliseconds with microsecond precision: `2.085`.
struct Millis(std::time::Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.0.as_secs_f64() * 1e3)
    }
}

/// The response body weir sends downstream.
pub struct ResponseBody {
    kind: Kind,
    exchange: Option<Exchange>,
}

enum Kind {
    /// The upstream's body, streamed frame by frame.
    Upstream {
        inner: Incoming,
        /// The pooled connection to give back once this body has been read to the end.
        conn: Option<ConnReturn>,
        /// The route's deadline, still running while the body streams.
        deadline: Option<Pin<Box<Sleep>>>,
    },
    /// An HTTP/1.1 upstream's body read straight from a raw pooled connection.
    Raw {
        inner: RawBody,
        deadline: Option<Pin<Box<Sleep>>>,
    },
    /// A short body weir wrote itself.
    Local(Option<Bytes>),
}

/// Why a response body stopped early; hyper then resets the stream or connection, so
/// the client sees a truncated response rather than a silently short one.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("upstream response body failed: {0}")]
    Upstream(#[source] hyper::Error),
    #[error("upstream response body failed: {0}")]
    UpstreamIo(#[source] std::io::Error),
    #[error("the route's timeout expired while the response body was streaming")]
    Timeout,
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// A body weir wrote itself. The exchange is recorded now: there is nothing
    /// upstream left to wait for.
    pub fn local(bytes: Bytes, mut exchange: Exchange) -> Self {
        exchange.add_response_bytes(bytes.len() as u64);
        drop(exchange);
        ResponseBody {
            kind: Kind::Local(Some(bytes)),
            exchange: None,
        }
    }

    /// An empty body that records nothing (the exchange is recorded elsewhere).
    pub fn empty() -> Self {
        ResponseBody {
            kind: Kind::Local(None),
            exchange: None,
        }
    }

    pub fn upstream(
        inner: Incoming,
        exchange: Exchange,
        conn: Option<ConnReturn>,
        deadline: Option<Pin<Box<Sleep>>>,
    ) -> Self {
        let done = inner.is_end_stream();
        let mut body = ResponseBody {
            kind: Kind::Upstream {
                inner,
                conn,
                deadline,
            },
            exchange: Some(exchange),
        };
        // hyper never polls a body that is already at its end (204, HEAD, empty
        // content), so finish now: give the connection back and record the exchange.
        if done {
            body.complete();
        }
        body
    }

    /// A body read from a raw upstream connection (which goes back to its pool by
    /// itself once the body ended).
    pub(crate) fn raw(
        inner: RawBody,
        exchange: Exchange,
        deadline: Option<Pin<Box<Sleep>>>,
    ) -> Self {
        let done = inner.is_end_stream();
        let mut body = ResponseBody {
            kind: Kind::Raw { inner, deadline },
            exchange: Some(exchange),
        };
        if done {
            body.complete();
        }
        body
    }

    fn count(&mut self, n: usize) {
        if let Some(x) = &mut self.exchange {
            x.add_response_bytes(n as u64);
        }
    }

    /// The body ended cleanly: the connection may be reused and the exchange recorded.
    fn complete(&mut self) {
        if let Kind::Upstream { conn, deadline, .. } = &mut self.kind {
            if let Some(conn) = conn.take() {
                conn.release();
            }
            *deadline = None;
        }
        if let Kind::Raw { deadline, .. } = &mut self.kind {
            *deadline = None;
        }
        self.exchange = None;
    }

    fn fail(&mut self, flag: ResponseFlag) {
        if let Some(x) = &mut self.exchange {
            x.set_flag(flag);
        }
        if let Kind::Upstream { conn, deadline, .. } = &mut self.kind {
            // Half-read: never reuse it.
            *conn = None;
            *deadline = None;
        }
        if let Kind::Raw { deadline, .. } = &mut self.kind {
            *deadline = None;
        }
        self.exchange = None;
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Local(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream {
                inner, deadline, ..
            } => poll_upstream(inner, deadline, cx, BodyError::Upstream),
            Kind::Raw { inner, deadline } => {
                poll_upstream(inner, deadline, cx, BodyError::UpstreamIo)
            }
        };
        match polled {
            Polled::TimedOut => {
                this.fail(ResponseFlag::UpstreamTimeout);
                Poll::Ready(Some(Err(BodyError::Timeout)))
            }
            Polled::Frame(Poll::Pending, _) => Poll::Pending,
            Polled::Frame(Poll::Ready(None), _) => {
                this.complete();
                Poll::Ready(None)
            }
            Polled::Frame(Poll::Ready(Some(Ok(frame))), at_end) => {
                if let Some(data) = frame.data_ref() {
                    this.count(data.len());
                } else if let (Some(trailers), Some(x)) =
                    (frame.trailers_ref(), this.exchange.as_mut())
                {
                    x.observe_grpc_status(trailers);
                }
                if at_end {
                    this.complete();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Polled::Frame(Poll::Ready(Some(Err(e))), _) => {
                this.fail(ResponseFlag::UpstreamConnectionTermination);
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Local(bytes) => bytes.is_none(),
            Kind::Upstream { inner, .. } => inner.is_end_stream(),
            Kind::Raw { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Upstream { inner, .. } => inner.size_hint(),
            Kind::Raw { inner, .. } => inner.size_hint(),
        }
    }
}

/// One poll of an upstream body: its frame (and whether the body is now at its end),
/// or the route's deadline passing first.
enum Polled {
    TimedOut,
    Frame(Poll<Option<Result<Frame<Bytes>, BodyError>>>, bool),
}

fn poll_upstream<B: Body<Data = Bytes> + Unpin>(
    inner: &mut B,
    deadline: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
    error: impl FnOnce(B::Error) -> BodyError,
) -> Polled {
    if let Some(d) = deadline
        && d.as_mut().poll(cx).is_ready()
    {
        return Polled::TimedOut;
    }
    let polled = Pin::new(&mut *inner).poll_frame(cx);
    let at_end = inner.is_end_stream();
    Polled::Frame(polled.map(|f| f.map(|r| r.map_err(error))), at_end)
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Dropped before its end: hyper stopped sending because the client went away.
        if self.exchange.is_some() {
            self.fail(ResponseFlag::DownstreamConnectionTermination);
        }
    }
}
