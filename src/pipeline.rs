//! The request path in the middle, the same for every client protocol.
//!
//! A client codec (`codec::h1`, `codec::h2`) reads a request head into a
//! [`RequestHead`] and then:
//!
//! 1. [`prepare`]: matches the route (first match wins), picks the destination by
//!    weight, starts the request's [`RequestRecord`], and writes the head the upstream
//!    receives through the header policy (`crate::headers`). The result is the
//!    request's [`Exchange`], or [`Prepared::Local`] when weir answers itself.
//! 2. [`Exchange::forward`]: sends it through `upstream::forward` (endpoints, retries,
//!    the route's deadline, one failure type); a failure becomes a [`LocalReply`].
//! 3. The codec answers: it writes the upstream's response head (its fields through the
//!    same header policy) and streams the body. The record is counted and logged when
//!    the codec drops it, after the response's last byte.
//!
//! The route's policies (mirroring, faults, retries, rewrites, header operations) are
//! steps of this path, each a module of its own, applied the same way for both client
//! protocols.

mod downstream;
mod local;
mod watch;

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Instant;

use tokio::time::Sleep;

use http::{Method, Uri, Version};

pub use downstream::Downstream;
pub use local::LocalReply;
pub use watch::ResponseClock;

use crate::config::Protocol;
use crate::headers::{self, HeaderSource, HostEdit, Http1Lines, MapSink, RequestEdits};
use crate::http1::Framing;
use crate::routing::RequestView;
use crate::state::Shared;
use crate::telemetry::{LogFields, RequestMeta, RequestProtocol, RequestRecord, ResponseFlag};
use crate::upstream::{
    self, BodySource, Destination, Failure, Outbound, OutboundHead, Response, ResponseSink,
};

/// One request head as a client codec presents it.
#[derive(Debug)]
pub struct RequestHead<'a, H: ?Sized> {
    /// When the head was complete: the request's durations count from here.
    pub start: Instant,
    pub method: &'a str,
    /// The target to send upstream, in origin form (path and query).
    pub target: &'a str,
    /// The authority the client asked for when it is not in a `host` field (HTTP/2's
    /// `:authority`, an absolute-form target's), with its port.
    pub authority: Option<&'a str>,
    /// The authority came with an absolute-form target: it replaces `host`.
    pub absolute_form: bool,
    /// The body's one length, when the client gave one (HTTP/1.1: possibly repeated).
    pub content_length: Option<u64>,
    /// What the route table matches on.
    pub view: RequestView<'a>,
    pub headers: &'a H,
    pub version: Version,
    /// How the client's body is framed, whatever its protocol: `Empty`, `Length` or
    /// `Chunked` (HTTP/2 bodies without a length count as chunked).
    pub body: Framing,
    /// The protocol an HTTP/1.1 upgrade request asks for (`websocket`).
    pub upgrade: Option<&'a [u8]>,
    /// The client sent `expect: 100-continue`, which weir answers itself.
    pub expect_continue: bool,
    pub grpc: bool,
    /// The request came over HTTP/2.
    pub http2: bool,
}

impl<H: ?Sized> RequestHead<'_, H> {
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// What [`prepare`] decided.
#[derive(Debug)]
pub enum Prepared {
    /// weir answers itself (no route matched).
    Local(RequestRecord, LocalReply),
    Forward(Exchange),
}

/// A request on its way to its destination.
#[derive(Debug)]
pub struct Exchange {
    pub record: RequestRecord,
    pub destination: Arc<Destination>,
    /// The route's timeout: it covers the whole exchange, response body included
    /// (Envoy's route timeout).
    pub deadline: Option<tokio::time::Instant>,
    /// The request is an upgrade weir tunnels (its protocol is among `upgrades`).
    pub upgrade: bool,
    /// Nothing moving on the request, either way, for this long ends it.
    pub stream_idle: Option<std::time::Duration>,
    /// The request's body must have arrived by then.
    request_deadline: Option<tokio::time::Instant>,
    start: tokio::time::Instant,
    upstream: UpstreamHead,
}

/// The head the upstream receives: HTTP/1.1 bytes in the caller's buffer, or the
/// parts hyper's HTTP/2 client takes.
#[derive(Debug)]
enum UpstreamHead {
    Http1 {
        framing: Framing,
        upgrade: bool,
        head_request: bool,
    },
    Http2(Option<Box<http::request::Parts>>),
}

/// Phase one: routes the request and writes its upstream head (HTTP/1.1 destinations:
/// into `out`, emptied first).
pub fn prepare<H: HeaderSource + ?Sized>(
    shared: &Shared,
    downstream: &Downstream,
    req: &RequestHead<'_, H>,
    out: &mut Vec<u8>,
) -> Prepared {
    let (route, access_log, upgrade) = {
        let snapshot = shared.snapshot.load();
        let upgrade = req.upgrade.is_some_and(|protocol| {
            let name = protocol.split(|&b| b == b'/').next().unwrap_or(protocol);
            snapshot
                .config
                .upgrades
                .iter()
                .any(|allowed| name.eq_ignore_ascii_case(allowed.as_bytes()))
        });
        (
            snapshot.routes.find(&req.view).cloned(),
            snapshot.access_log,
            upgrade,
        )
    };
    let meta = RequestMeta {
        start: req.start,
        protocol: if req.grpc {
            RequestProtocol::Grpc
        } else {
            RequestProtocol::Http
        },
        security: downstream.security,
    };
    let log = access_log.then(|| log_fields(downstream, req));
    let Some(route) = route else {
        let record = RequestRecord::start(meta, shared.stats.unknown(), None, log);
        return Prepared::Local(record, LocalReply::for_flag(ResponseFlag::NoRoute));
    };
    let destination = route.split.pick().clone();
    let mut record = RequestRecord::start(
        meta,
        destination.stats.clone(),
        Some(route.name.clone()),
        log,
    );
    let to_http2 = destination.protocol == Protocol::Http2;
    let upgrade = upgrade && !to_http2;
    let upstream = write_upstream_head(downstream, req, upgrade, &destination, out, &mut record);
    let start = tokio::time::Instant::from_std(req.start);
    let limits = &downstream.limits;
    Prepared::Forward(Exchange {
        record,
        deadline: route.timeout.map(|t| start + t),
        upgrade,
        stream_idle: limits.stream_idle_timeout,
        request_deadline: limits.request_timeout.map(|t| start + t),
        start,
        destination,
        upstream,
    })
}

/// weir's answer to a request it refuses before routing (a malformed head): counted
/// under the `unknown` destination, like a request no route matched.
pub fn refuse<H: ?Sized>(
    shared: &Shared,
    downstream: &Downstream,
    req: &RequestHead<'_, H>,
    reply: LocalReply,
) -> (RequestRecord, LocalReply) {
    let meta = RequestMeta {
        start: req.start,
        protocol: RequestProtocol::Http,
        security: downstream.security,
    };
    let log = shared
        .snapshot
        .load()
        .access_log
        .then(|| log_fields(downstream, req));
    let record = RequestRecord::start(meta, shared.stats.unknown(), None, log);
    (record, reply)
}

/// The request line (or pseudo-headers) and the header fields the upstream receives.
fn write_upstream_head<H: HeaderSource + ?Sized>(
    downstream: &Downstream,
    req: &RequestHead<'_, H>,
    upgrade: bool,
    destination: &Destination,
    out: &mut Vec<u8>,
    record: &mut RequestRecord,
) -> UpstreamHead {
    let want_request_id = record.log_fields_mut().is_some();
    let to_http2 = destination.protocol == Protocol::Http2;
    let host = match (req.authority, req.absolute_form) {
        (Some(authority), true) => HostEdit::Replace(authority),
        (Some(authority), false) => HostEdit::AddIfMissing(authority),
        // HTTP/1.0 may come without a host; HTTP/1.1 upstream must have one, so it
        // names the endpoint, as nginx's default `proxy_set_header Host $proxy_host`.
        (None, _) => destination
            .endpoints()
            .first()
            .map_or(HostEdit::Keep, |e| HostEdit::AddIfMissing(&e.label)),
    };
    let mut edits = RequestEdits {
        forwarding: &downstream.forwarding,
        to_http2,
        join_cookies: req.http2 && !to_http2,
        host,
        content_length: req.content_length,
        upgrade,
        expect_continue: req.expect_continue,
        chunked: !to_http2 && req.body == Framing::Chunked,
        want_request_id,
    };
    let request_id;
    let head = if to_http2 {
        edits.chunked = false;
        let mut parts = http::Request::new(()).into_parts().0;
        parts.method = Method::from_bytes(req.method.as_bytes()).unwrap_or_default();
        parts.version = Version::HTTP_2;
        let host = req.authority.or_else(|| host_field(req.headers));
        parts.uri = http2_uri(host, req.target);
        request_id =
            headers::forward_request(req.headers, &edits, &mut MapSink::new(&mut parts.headers));
        UpstreamHead::Http2(Some(Box::new(parts)))
    } else {
        out.clear();
        out.extend_from_slice(req.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(req.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        request_id = headers::forward_request(req.headers, &edits, &mut Http1Lines(out));
        out.extend_from_slice(b"\r\n");
        UpstreamHead::Http1 {
            framing: req.body,
            upgrade,
            head_request: req.is_head(),
        }
    };
    if let Some(log) = record.log_fields_mut() {
        log.request_id = request_id;
    }
    head
}

/// The first `host` field's value.
fn host_field<H: HeaderSource + ?Sized>(headers: &H) -> Option<&str> {
    headers
        .fields()
        .find(|(_, _, role)| *role == headers::Role::Host)
        .and_then(|(_, value, _)| std::str::from_utf8(value).ok())
}

/// The URI of a request to an HTTP/2 upstream: `http://AUTHORITY/PATH?QUERY`.
fn http2_uri(authority: Option<&str>, target: &str) -> Uri {
    let authority = authority
        .and_then(|a| http::uri::Authority::try_from(a).ok())
        .unwrap_or_else(|| http::uri::Authority::from_static("localhost"));
    let path = http::uri::PathAndQuery::try_from(target)
        .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path);
    Uri::from_parts(parts).unwrap_or_default()
}

fn log_fields<H: ?Sized>(downstream: &Downstream, req: &RequestHead<'_, H>) -> Box<LogFields> {
    Box::new(LogFields {
        method: Method::from_bytes(req.method.as_bytes()).unwrap_or_default(),
        uri: Uri::try_from(req.target).unwrap_or_default(),
        version: req.version,
        peer: downstream.peer,
        request_id: None,
        tls_version: downstream.tls_version(),
        client_subject: downstream
            .tls
            .as_ref()
            .and_then(|t| t.client_subject.clone()),
    })
}

impl Exchange {
    /// The clocks the response streams under.
    pub fn clock(&self) -> ResponseClock {
        ResponseClock {
            deadline: self.deadline,
            idle: self.stream_idle,
        }
    }

    /// Phase two: forwards the request (head from phase one, HTTP/1.1 bytes in `head`)
    /// and returns the upstream's response once its head arrived. HTTP/1.1 response
    /// heads go to `sink` while still in the upstream's buffer.
    /// `timer`: the client connection's own, when it has one (see `watch::watched`).
    pub async fn forward<B: BodySource, S: ResponseSink>(
        &mut self,
        head: &mut Vec<u8>,
        body: &mut B,
        sink: &mut S,
        timer: Option<Pin<&mut Sleep>>,
    ) -> Result<Response, Failure> {
        let outbound = match &mut self.upstream {
            UpstreamHead::Http1 {
                framing,
                upgrade,
                head_request,
            } => Outbound {
                head: OutboundHead::Http1 {
                    bytes: head,
                    framing: *framing,
                    upgrade: *upgrade,
                },
                head_request: *head_request,
            },
            UpstreamHead::Http2(parts) => Outbound {
                head: OutboundHead::Http2(parts.take().expect("an exchange is forwarded once")),
                head_request: false,
            },
        };
        let progress = watch::Progress::new(self.start, body.is_empty());
        let meter = body.meter().cloned();
        let mut body = watch::Watched {
            inner: body,
            progress: &progress,
        };
        let forwarding = pin!(upstream::forward(
            &self.destination,
            outbound,
            &mut body,
            sink
        ));
        let clocks = watch::RequestClocks {
            route_deadline: self.deadline,
            request_deadline: self.request_deadline,
            idle: self.stream_idle,
        };
        let response =
            watch::watched(forwarding, &progress, meter.as_deref(), clocks, timer).await?;
        self.record.set_endpoint(response.endpoint().label.clone());
        Ok(response)
    }
}
