//! One client connection served by weir's own HTTP/1.1 codec: read a request head,
//! hand it to the pipeline, write the answer, and go on to the next request until
//! either side closes, the connection idles out, or a drain ends it.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Uri, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::respond::ConnectionHeader;
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

enum Parsed {
    Partial,
    Reject(u16, &'static str),
    Request(RequestInfo, Prepared),
}

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
}

/// Serves HTTP/1.1 on `io` until the client is done, the connection idles out, or the
/// drain ends it.
pub(crate) async fn serve<I>(
    io: I,
    downstream: Arc<Downstream>,
    shared: Arc<Shared>,
    mut drain: DrainSignal,
    settings: ListenerSettings,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut c = ClientConn {
        io,
        rbuf: Buffer::new(),
        head: Vec::with_capacity(1024),
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
        let (req, prepared) = loop {
            match c.prepare() {
                Parsed::Request(req, prepared) => break (req, prepared),
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
    fn prepare(&mut self) -> Parsed {
        let mut storage = http1::header_storage();
        let head = match http1::parse_request(self.rbuf.filled(), &mut storage) {
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
        // An absolute-form target (`GET http://host/path`) goes upstream in origin
        // form, its authority as `host` when the client sent none.
        let absolute = (!head.target.starts_with('/') && head.target != "*")
            .then(|| Uri::try_from(head.target).ok())
            .flatten();
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
        let info = RequestInfo {
            framing: head.framing,
            keep_alive: head.keep_alive,
            upgrade: head.upgrade,
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
            upgrade: head.upgrade,
            expect_continue: head.facts.expect_continue,
            grpc: head.facts.grpc,
            http2: false,
        };
        let prepared = pipeline::prepare(&self.shared, &self.downstream, &request, &mut self.head);
        self.rbuf.consume(head.len);
        Parsed::Request(info, prepared)
    }
}
