//! One client connection served by weir's own HTTP/1.1 codec: read a request head,
//! hand it to the pipeline, write the answer, and go on to the next request until
//! either side closes, the connection idles out, or a drain ends it.

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use http::{Uri, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use super::respond::ConnectionHeader;
use crate::headers::valid_host;
use crate::http1::{self, Buffer, Framing, HeadError, MAX_HEAD};
use crate::pipeline::{self, Downstream, Prepared, RequestHead};
use crate::routing::{RequestHeaders, RequestView, strip_port};
use crate::runtime::{DrainSignal, ListenerSettings};
use crate::state::Shared;

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
    pub framing: Framing,
    pub keep_alive: bool,
    pub upgrade: bool,
    pub head_request: bool,
    pub minor: u8,
    pub expect_continue: bool,
    pub grpc: bool,
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

/// Why a request head is refused: the status and the reason, and the connection closes.
type Rejected = (u16, &'static str);

/// A client connection and the buffers its requests reuse.
pub(super) struct ClientConn<I> {
    pub io: I,
    /// Bytes from the client not yet handled.
    pub rbuf: Buffer,
    /// The head weir sends upstream (HTTP/1.1 destinations).
    pub head: Vec<u8>,
    /// Bytes on their way to the client: a response head, and body bytes with it.
    pub wbuf: Vec<u8>,
    pub downstream: Arc<Downstream>,
    pub shared: Arc<Shared>,
    /// The connection's one timer: idle and header timeouts between requests, the
    /// request's clocks and the response's while one is proxied. Set earlier only
    /// when it must be; later costs nothing.
    pub timer: Pin<Box<Sleep>>,
}

/// Serves HTTP/1.1 on `io` until the client is done, the connection idles out, or the
/// drain ends it. `prefix` holds the bytes already read and when the first of them
/// came: the first request's header timeout counts from then.
pub(crate) async fn serve<I>(
    io: I,
    prefix: (&[u8], Instant),
    downstream: Arc<Downstream>,
    shared: Arc<Shared>,
    mut drain: DrainSignal,
    settings: ListenerSettings,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let (prefix, first_byte) = prefix;
    let mut first_byte = Some(first_byte);
    let mut rbuf = Buffer::new();
    rbuf.extend_from(prefix);
    let mut c = ClientConn {
        io,
        rbuf,
        head: Vec::with_capacity(1024),
        wbuf: Vec::with_capacity(1024),
        downstream,
        shared,
        timer: Box::pin(tokio::time::sleep(settings.idle_timeout)),
    };
    let mut drained = pin!(drain.wait());
    let mut draining = false;
    let grace = DRAIN_GRACE.min(settings.drain_timeout / 2);
    let header_timeout = settings.limits.request_header_timeout;
    'requests: loop {
        // Until a request's first byte the idle timeout runs (once draining, only the
        // grace); from it, the request-header timeout. The timer is set for the
        // earlier of the two and moved on (later, which costs nothing) when it fires
        // early, so a request costs no timer re-registration.
        let now = Instant::now();
        let mut idle_end = now
            + if draining {
                grace
            } else {
                settings.idle_timeout
            };
        // The first request counts from the byte the listener read first; later
        // ones, pipelined or already buffered, from now.
        let first_byte = first_byte.take();
        let mut head_start = (!c.rbuf.is_empty()).then(|| first_byte.unwrap_or(now));
        c.timer
            .as_mut()
            .reset(idle_end.min(head_start.unwrap_or(now) + header_timeout));
        let (req, prepared) = loop {
            match c.prepare() {
                Ok(Some(request)) => break request,
                Err((status, why)) => {
                    c.reject(status, why).await;
                    break 'requests;
                }
                // Part of a head: the header timeout counts from now (the clock is
                // read only for a head that does not come in one read).
                Ok(None) if head_start.is_none() && !c.rbuf.is_empty() => {
                    head_start = Some(Instant::now());
                }
                Ok(None) => {}
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
                        idle_end = idle_end.min(Instant::now() + grace);
                        let end = c.timer.deadline().min(idle_end);
                        c.timer.as_mut().reset(end);
                    }
                }
                () = &mut c.timer => {
                    let now = Instant::now();
                    match head_start {
                        Some(start) if now >= start + header_timeout => {
                            c.reject(408, "request header timeout").await;
                            break 'requests;
                        }
                        Some(start) => c.timer.as_mut().reset(start + header_timeout),
                        None if now >= idle_end => break 'requests,
                        None => c.timer.as_mut().reset(idle_end),
                    }
                }
            }
        };
        let next = match prepared {
            Prepared::Local(record, reply) => c.local_reply(&req, record, reply).await,
            Prepared::Forward(exchange) => c.proxy(req, exchange).await,
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

impl<I: AsyncRead + AsyncWrite + Unpin> ClientConn<I> {
    /// Parses the buffered request head and hands it to the pipeline, which routes it
    /// and writes the upstream head.
    /// `None` while the head is not all here yet.
    fn prepare(&mut self) -> Result<Option<(RequestInfo, Prepared)>, Rejected> {
        let mut storage = http1::header_storage();
        let head = match http1::parse_request(self.rbuf.filled(), &mut storage) {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(None),
            Err(HeadError::TooManyHeaders) => {
                return Err((431, "too many request header lines"));
            }
            Err(HeadError::Invalid(why)) => return Err((400, why)),
            Err(HeadError::NotImplemented(why)) => return Err((501, why)),
        };
        if head.method == "CONNECT" {
            return Err((405, "CONNECT is not supported"));
        }
        let start = std::time::Instant::now();
        // The request target (RFC 9112 §3.2): origin form, or absolute form, whose
        // authority then replaces `host` upstream; `*` only for OPTIONS.
        let absolute =
            if head.target.starts_with('/') || (head.target == "*" && head.method == "OPTIONS") {
                None
            } else {
                match Uri::try_from(head.target) {
                    Ok(uri)
                        if uri.scheme().is_some()
                            && uri.authority().is_some_and(|a| {
                                !a.as_str().is_empty() && valid_host(a.as_str().as_bytes())
                            }) =>
                    {
                        Some(uri)
                    }
                    _ => return Err((400, "invalid request target")),
                }
            };
        let (target, path, query) = match &absolute {
            Some(uri) => {
                let target = uri.path_and_query().map_or("/", |p| p.as_str());
                (target, uri.path(), uri.query())
            }
            None => match head.target.split_once('?') {
                Some((path, query)) => (head.target, path, Some(query)),
                None => (head.target, head.target, None),
            },
        };
        let host = absolute
            .as_ref()
            .and_then(Uri::host)
            .or(head.facts.host.map(strip_port))
            .unwrap_or("");
        let mut info = RequestInfo {
            framing: head.framing,
            keep_alive: head.keep_alive,
            upgrade: false,
            head_request: head.method == "HEAD",
            minor: head.minor,
            expect_continue: head.facts.expect_continue,
            grpc: head.facts.grpc,
        };
        let fields = head.fields();
        let request = RequestHead {
            start,
            method: head.method,
            target,
            authority: absolute
                .as_ref()
                .and_then(Uri::authority)
                .map(|a| a.as_str()),
            absolute_form: absolute.is_some(),
            content_length: head.facts.content_length,
            view: RequestView {
                host,
                path,
                method: head.method,
                query,
                headers: RequestHeaders::Lines(head.headers),
            },
            headers: &fields,
            version: if head.minor == 0 {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            },
            body: head.framing,
            upgrade: head.facts.upgrade.filter(|_| head.upgrade),
            expect_continue: head.facts.expect_continue,
            grpc: head.facts.grpc,
            http2: false,
        };
        let prepared = pipeline::prepare(&self.shared, &self.downstream, &request, &mut self.head);
        if let Prepared::Forward(exchange) = &prepared {
            info.upgrade = exchange.upgrade;
        }
        self.rbuf.consume(head.len);
        Ok(Some((info, prepared)))
    }
}
