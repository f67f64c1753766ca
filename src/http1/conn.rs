//! One client connection served by weir's own HTTP/1.1 path: read a request head,
//! route it, forward it, and go on to the next request until either side closes, the
//! connection idles out, or a drain ends it.

use std::ops::Range;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Uri, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::body::BodyState;
use super::buffer::Buffer;
use super::encode::{self, ConnectionHeader};
use super::head::{self, Framing, HeadError, MAX_HEAD, RequestHead};
use crate::config::Protocol;
use crate::listener::{DrainSignal, ListenerSettings};
use crate::proxy::{Downstream, Exchange, LogFields, ResponseFlag, headers};
use crate::routing::{RequestHeaders, RequestView, strip_port};
use crate::snapshot::Route;
use crate::state::Shared;
use crate::telemetry::RequestProtocol;
use crate::upstream::Destination;

/// How long an HTTP/1.1 connection may go on carrying requests after a drain begins
/// (each response says `Connection: close`); only then are idle connections closed.
/// Closing an idle keep-alive connection at once races with a request the client is
/// sending on it right then.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Whether the connection carries another request after this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    KeepAlive,
    Close,
}

/// The facts about one request that outlive its head.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestInfo {
    pub start: Instant,
    pub framing: Framing,
    pub keep_alive: bool,
    pub upgrade: bool,
    pub head_request: bool,
    pub minor: u8,
    pub expect_continue: bool,
}

impl RequestInfo {
    /// The `Connection` header of a response that leaves the connection `open` or not.
    pub(super) fn connection_header(&self, open: bool) -> ConnectionHeader {
        match (open, self.minor) {
            (false, _) => ConnectionHeader::Close,
            (true, 0) => ConnectionHeader::KeepAlive,
            (true, _) => ConnectionHeader::Default,
        }
    }
}

/// Where a parsed request goes.
pub(super) enum Target {
    NoRoute,
    /// An HTTP/1.1 destination: the upstream head is in the write buffer.
    Raw {
        route: Arc<Route>,
        destination: Arc<Destination>,
    },
    /// An HTTP/2 destination: hyper's client carries the request.
    Hyper {
        route: Arc<Route>,
        destination: Arc<Destination>,
        parts: Box<http::request::Parts>,
    },
}

enum Parsed {
    Partial,
    Reject(u16, &'static str),
    Request(RequestInfo, Exchange, Target),
}

/// A client connection and the buffers its requests reuse.
pub(super) struct Client<I> {
    pub io: I,
    /// Bytes from the client not yet handled.
    pub rbuf: Buffer,
    /// Bytes from the upstream not yet handled.
    pub ubuf: Buffer,
    /// The head being written (upstream request, or response to the client).
    pub wbuf: Vec<u8>,
    pub downstream: Arc<Downstream>,
    pub shared: Arc<Shared>,
}

/// Serves HTTP/1.1 on `io` until the client is done, the connection idles out, or the
/// drain ends it.
pub async fn serve<I>(
    io: I,
    downstream: Arc<Downstream>,
    shared: Arc<Shared>,
    mut drain: DrainSignal,
    settings: ListenerSettings,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut c = Client {
        io,
        rbuf: Buffer::new(),
        ubuf: Buffer::new(),
        wbuf: Vec::with_capacity(1024),
        downstream,
        shared,
    };
    let mut drained = pin!(drain.wait());
    let mut draining = false;
    let grace = DRAIN_GRACE.min(settings.drain_timeout / 2);
    let mut timer = pin!(tokio::time::sleep(settings.idle_timeout));
    'requests: loop {
        // The idle timeout also bounds how long a request head may take to arrive;
        // once draining, an idle connection only gets the grace.
        let wait = if draining {
            grace
        } else {
            settings.idle_timeout
        };
        timer.as_mut().reset(tokio::time::Instant::now() + wait);
        let (req, exchange, target) = loop {
            match c.prepare() {
                Parsed::Request(req, exchange, target) => break (req, exchange, target),
                Parsed::Reject(status, why) => {
                    c.reject(status, why).await;
                    break 'requests;
                }
                Parsed::Partial => {}
            }
            if c.rbuf.is_full(MAX_HEAD) {
                c.reject(431, "request header fields too large").await;
                break 'requests;
            }
            tokio::select! {
                biased;
                read = c.rbuf.read_from(&mut c.io, MAX_HEAD) => match read {
                    Ok(0) | Err(_) => break 'requests,
                    Ok(_) => {}
                },
                () = &mut drained, if !draining => {
                    draining = true;
                    if c.rbuf.is_empty() {
                        let end = timer.deadline().min(tokio::time::Instant::now() + grace);
                        timer.as_mut().reset(end);
                    }
                }
                () = &mut timer => break 'requests,
            }
        };
        let next = match target {
            Target::NoRoute => c.local_reply(&req, exchange, ResponseFlag::NoRoute).await,
            Target::Raw { route, destination } => c.proxy(req, exchange, route, destination).await,
            Target::Hyper {
                route,
                destination,
                parts,
            } => {
                c.proxy_hyper(req, exchange, route, destination, *parts)
                    .await
            }
        };
        // A response sent before the drain began promised keep-alive; the client may
        // send again, and that request is answered with `Connection: close`.
        if next == Next::Close {
            break;
        }
        c.rbuf.shrink_when_empty();
    }
    let _ = c.io.shutdown().await;
}

impl<I: AsyncRead + AsyncWrite + Unpin> Client<I> {
    /// Parses the buffered request head, routes it, and writes the upstream head.
    fn prepare(&mut self) -> Parsed {
        let mut storage = head::header_storage();
        let head = match head::parse_request(self.rbuf.filled(), &mut storage) {
            Ok(Some(head)) => head,
            Ok(None) => return Parsed::Partial,
            Err(HeadError::TooManyHeaders) => {
                return Parsed::Reject(431, "too many request header lines");
            }
            Err(HeadError::Invalid(why)) => return Parsed::Reject(400, why),
        };
        if head.method == "CONNECT" {
            return Parsed::Reject(405, "CONNECT is not supported");
        }
        let start = Instant::now();
        let absolute = (!head.target.starts_with('/') && head.target != "*")
            .then(|| Uri::try_from(head.target).ok())
            .flatten();
        let (path, query) = match &absolute {
            Some(uri) => (uri.path(), uri.query()),
            None => match head.target.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (head.target, None),
            },
        };
        let host = absolute
            .as_ref()
            .and_then(Uri::host)
            .or(head.facts.host.map(strip_port))
            .unwrap_or("");
        let view = RequestView {
            host,
            path,
            method: head.method,
            query,
            headers: RequestHeaders::Lines(head.headers),
        };
        let (route, access_log) = {
            let snapshot = self.shared.snapshot.load();
            (snapshot.routes.find(&view).cloned(), snapshot.access_log)
        };
        let log = access_log.then(|| self.log_fields(&head));
        let protocol = if head.facts.grpc {
            RequestProtocol::Grpc
        } else {
            RequestProtocol::Http
        };
        let meta = (protocol, self.downstream.security);
        let mut req = RequestInfo {
            start,
            framing: head.framing,
            keep_alive: head.keep_alive,
            upgrade: false,
            head_request: head.method == "HEAD",
            minor: head.minor,
            expect_continue: head.facts.expect_continue,
        };
        let head_len = head.len;
        let Some(route) = route else {
            let exchange = Exchange::start(start, self.shared.stats.unknown(), None, meta, log);
            self.rbuf.consume(head_len);
            return Parsed::Request(req, exchange, Target::NoRoute);
        };
        let destination = route.split.pick().clone();
        let start_exchange = |route: &Arc<Route>| {
            Exchange::start(
                start,
                destination.stats.clone(),
                Some(route.clone()),
                meta,
                log,
            )
        };
        let (exchange, target) = if destination.protocol == Protocol::Http1 {
            req.upgrade = head.upgrade;
            let mut exchange = start_exchange(&route);
            let id = encode::request_head(&mut self.wbuf, &head, &self.downstream.forwarding);
            set_request_id(&mut exchange, &self.wbuf, id);
            (exchange, Target::Raw { route, destination })
        } else {
            let Some(mut parts) = request_parts(&head) else {
                return Parsed::Reject(400, "invalid request target or header");
            };
            headers::prepare_request(
                &mut parts,
                &self.downstream.forwarding,
                destination.protocol,
                false,
            );
            let mut exchange = start_exchange(&route);
            if let Some(log) = exchange.log_fields_mut() {
                log.request_id = parts.headers.get(&headers::X_REQUEST_ID).cloned();
            }
            let parts = Box::new(parts);
            (
                exchange,
                Target::Hyper {
                    route,
                    destination,
                    parts,
                },
            )
        };
        self.rbuf.consume(head_len);
        Parsed::Request(req, exchange, target)
    }

    fn log_fields(&self, head: &RequestHead<'_, '_>) -> Box<LogFields> {
        Box::new(LogFields {
            method: Method::from_bytes(head.method.as_bytes()).unwrap_or_default(),
            uri: Uri::try_from(head.target).unwrap_or_default(),
            version: if head.minor == 0 {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            },
            peer: self.downstream.peer,
            request_id: None,
            tls_version: self.downstream.tls.as_ref().map_or("-", |t| t.version),
            client_subject: self
                .downstream
                .tls
                .as_ref()
                .and_then(|t| t.client_subject.clone()),
        })
    }

    /// Answers a request weir could not read, then the connection closes.
    async fn reject(&mut self, status: u16, why: &str) {
        let message = format!("{why}\n");
        encode::local_reply(
            &mut self.wbuf,
            status,
            None,
            &message,
            ConnectionHeader::Close,
            false,
        );
        let _ = self.io.write_all(&self.wbuf).await;
    }

    /// Answers with one of weir's own responses for `flag`. The connection stays open
    /// when the request's body is already all read (or there is none).
    pub(super) async fn local_reply(
        &mut self,
        req: &RequestInfo,
        exchange: Exchange,
        flag: ResponseFlag,
    ) -> Next {
        let mut body = BodyState::new(req.framing);
        let open =
            req.keep_alive && body.skip_buffered(&mut self.rbuf) && !self.shared.is_draining();
        self.write_local(req, exchange, flag, open).await
    }

    /// Writes weir's own response for `flag`; the request body is dealt with already.
    /// The exchange is recorded before the response goes out.
    pub(super) async fn write_local(
        &mut self,
        req: &RequestInfo,
        mut exchange: Exchange,
        flag: ResponseFlag,
        open: bool,
    ) -> Next {
        let status = flag.status();
        exchange.set_response(status, Some(flag));
        exchange.add_response_bytes(flag.message().len() as u64);
        drop(exchange);
        encode::local_reply(
            &mut self.wbuf,
            status.as_u16(),
            Some(flag.code()),
            flag.message(),
            req.connection_header(open),
            req.head_request,
        );
        match self.io.write_all(&self.wbuf).await {
            Ok(()) if open => Next::KeepAlive,
            _ => Next::Close,
        }
    }
}

fn set_request_id(exchange: &mut Exchange, wbuf: &[u8], id: Range<usize>) {
    if let Some(log) = exchange.log_fields_mut() {
        log.request_id = HeaderValue::from_bytes(&wbuf[id]).ok();
    }
}

/// The request as hyper's client takes it, for destinations weir's own path does not
/// speak (HTTP/2).
fn request_parts(head: &RequestHead<'_, '_>) -> Option<http::request::Parts> {
    let mut builder = http::Request::builder()
        .method(head.method)
        .uri(head.target)
        .version(if head.minor == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        });
    for h in head.headers {
        if head.facts.expect_continue && h.name.eq_ignore_ascii_case("expect") {
            continue;
        }
        builder = builder.header(h.name, h.value);
    }
    builder.body(()).ok().map(|r| r.into_parts().0)
}
