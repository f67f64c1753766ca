//! weir's own HTTP/1.1 client: a request goes out over a raw pooled socket that the
//! request's own task reads and writes (no connection task, no channel), the response
//! head is parsed in place in the connection's buffer, and the body is read from that
//! buffer as it arrives.
//!
//! Request bodies are written with canonical framing whatever framing they came with:
//! a length-framed body passes through as is, a chunked one is written again chunk by
//! chunk with only sizes and data, so no chunk extension or malformed trailer of a
//! client ever reaches an upstream.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::limit::InFlight;
use super::source::{BodySource, ResponseSink, Trailers};
use super::{ConnGuard, Endpoint, Failure, UpstreamIo};
use crate::http1::{self, BodyState, Buffer, Framing, MAX_HEAD, chunk_header};

/// A pooled connection's read buffer starts this size: a typical response head and a
/// small body arrive in one read.
const CONN_BUFFER: usize = 8 * 1024;

/// The most body bytes copied into the head's write, so a small request is one write.
const COALESCE: usize = 16 * 1024;

/// An HTTP/1.1 connection to an upstream: the socket and its read buffer, which stays
/// with the connection for its whole life (so a pooled connection costs no buffer
/// allocation per request).
#[derive(Debug)]
pub struct RawConn {
    pub io: UpstreamIo,
    pub(crate) buf: Buffer,
    reused: bool,
    _guard: ConnGuard,
}

impl RawConn {
    /// Boxed once for the connection's life: a response moves through several layers
    /// on its way to the client codec, and a pointer moves for less than the connection.
    pub(super) fn new(io: UpstreamIo, endpoint: &Endpoint) -> Box<Self> {
        Box::new(RawConn {
            io,
            buf: Buffer::with_capacity(CONN_BUFFER),
            reused: false,
            _guard: ConnGuard::new(&endpoint.stats),
        })
    }

    /// True when the connection came from the idle pool: the upstream may have closed
    /// it at the very moment it was taken.
    pub fn reused(&self) -> bool {
        self.reused
    }

    pub(super) fn mark_reused(&mut self) {
        self.reused = true;
    }

    /// Whether an idle connection can carry another request: nothing arrived on it
    /// since it went idle (no close, no stray bytes). This costs no system call unless
    /// the socket became readable, because tokio tracks readiness.
    pub(super) fn still_open(&self) -> bool {
        let (tcp, tls) = match &self.io {
            UpstreamIo::Plain(s) => (s, false),
            UpstreamIo::Tls(s) => (s.get_ref().0, true),
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        match tcp.poll_peek(&mut cx, &mut buf) {
            Poll::Pending => true,
            // TLS 1.3 servers send session tickets after the handshake; rustls reads
            // them with the next response.
            Poll::Ready(Ok(n)) => n > 0 && tls,
            Poll::Ready(Err(_)) => false,
        }
    }
}

/// What is known once the response head arrived (and went to the sink).
#[derive(Debug, Clone, Copy)]
pub struct ResponseStart {
    pub status: u16,
    pub framing: Framing,
    /// The connection can carry another request after this body.
    pub reusable: bool,
}

/// How far the request has gone out.
struct Sending {
    /// Bytes of the head buffer written.
    written: usize,
    /// Chunk framing and data waiting to go out (chunked bodies only).
    stage: Vec<u8>,
    staged: usize,
    /// The body's end was seen (and its last chunk staged).
    body_ended: bool,
    /// Some byte of a response arrived.
    received: bool,
    primed: bool,
}

/// Sends `head` (request line and header fields) and the body on `conn`, with the
/// body's upstream `framing`, and reads the response head into `sink`. Interim 1xx
/// responses other than 101 are dropped, as Envoy does. Bytes of a buffered body may be
/// appended to `head`, so that a small request goes out in one write.
pub(super) async fn send<B: BodySource, S: ResponseSink>(
    conn: &mut RawConn,
    head: &mut Vec<u8>,
    framing: Framing,
    head_request: bool,
    body: &mut B,
    sink: &mut S,
) -> Result<ResponseStart, Failure> {
    let mut s = Sending {
        written: 0,
        stage: Vec::new(),
        staged: 0,
        body_ended: framing == Framing::Empty,
        received: false,
        primed: false,
    };
    poll_fn(|cx| {
        if !s.primed {
            s.primed = true;
            prime(head, framing, body, cx, &mut s)?;
        }
        while s.written < head.len() {
            match Pin::new(&mut conn.io).poll_write(cx, &head[s.written..]) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Err(Failure::Stale)),
                Poll::Ready(Ok(n)) => s.written += n,
                Poll::Pending => break,
            }
        }
        let head_sent = s.written == head.len();
        if head_sent && !body_sent(&s) {
            write_body(&mut conn.io, framing, body, cx, &mut s)?;
        }
        let sent = head_sent && body_sent(&s);
        if let Poll::Ready(result) = read_head(conn, head_request, sent, sink, cx, &mut s) {
            return Poll::Ready(result);
        }
        // A client that goes away while the upstream works.
        if sent && body.poll_gone(cx).is_ready() {
            return Poll::Ready(Err(Failure::ClientGone));
        }
        Poll::Pending
    })
    .await
}

fn body_sent(s: &Sending) -> bool {
    s.body_ended && s.staged == s.stage.len()
}

/// Appends the body bytes already at hand to the head (framed), up to [`COALESCE`].
fn prime<B: BodySource>(
    head: &mut Vec<u8>,
    framing: Framing,
    body: &mut B,
    cx: &mut Context<'_>,
    s: &mut Sending,
) -> Result<(), Failure> {
    while !s.body_ended && head.len() < COALESCE {
        let Poll::Ready(data) = body.poll_data(cx) else {
            return Ok(());
        };
        match data? {
            Some(data) => {
                let n = data.len().min(COALESCE);
                frame(head, framing, &data[..n]);
                body.advance(n);
            }
            None => {
                end(head, framing, body.take_trailers());
                s.body_ended = true;
            }
        }
    }
    Ok(())
}

/// Writes `data` with the body's framing.
fn frame(out: &mut Vec<u8>, framing: Framing, data: &[u8]) {
    if framing == Framing::Chunked {
        chunk_header(out, data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// The end of a chunked body: the last chunk, the trailer fields, the blank line.
fn end(out: &mut Vec<u8>, framing: Framing, trailers: Option<Trailers>) {
    if framing != Framing::Chunked {
        return;
    }
    out.extend_from_slice(b"0\r\n");
    if let Some(trailers) = trailers {
        trailers.write_to(&mut crate::headers::Http1Lines(out));
    }
    out.extend_from_slice(b"\r\n");
}

/// Moves body bytes from the client to the upstream until either side must wait.
fn write_body<B: BodySource>(
    io: &mut UpstreamIo,
    framing: Framing,
    body: &mut B,
    cx: &mut Context<'_>,
    s: &mut Sending,
) -> Result<(), Failure> {
    let failed =
        || Failure::Upstream("the connection closed while the request body was sent".into());
    loop {
        while s.staged < s.stage.len() {
            match Pin::new(&mut *io).poll_write(cx, &s.stage[s.staged..]) {
                Poll::Ready(Ok(0) | Err(_)) => return Err(failed()),
                Poll::Ready(Ok(n)) => s.staged += n,
                Poll::Pending => return Ok(()),
            }
        }
        if s.body_ended {
            return Ok(());
        }
        let data = match body.poll_data(cx) {
            Poll::Pending => return Ok(()),
            Poll::Ready(data) => data?,
        };
        s.stage.clear();
        s.staged = 0;
        match data {
            None => {
                end(&mut s.stage, framing, body.take_trailers());
                s.body_ended = true;
            }
            Some(data) if framing == Framing::Chunked => {
                frame(&mut s.stage, framing, data);
                let n = data.len();
                body.advance(n);
            }
            // Length-framed data goes out straight from the client's buffer.
            Some(data) => match Pin::new(&mut *io).poll_write(cx, data) {
                Poll::Ready(Ok(0) | Err(_)) => return Err(failed()),
                Poll::Ready(Ok(n)) => body.advance(n),
                Poll::Pending => return Ok(()),
            },
        }
    }
}

/// Reads and parses the response head; hands the final one to `sink`.
fn read_head<S: ResponseSink>(
    conn: &mut RawConn,
    head_request: bool,
    body_sent: bool,
    sink: &mut S,
    cx: &mut Context<'_>,
    s: &mut Sending,
) -> Poll<Result<ResponseStart, Failure>> {
    loop {
        let parsed = {
            let mut storage = http1::header_storage();
            match http1::parse_response(conn.buf.filled(), &mut storage, head_request) {
                Err(e) => return Poll::Ready(Err(Failure::Upstream(e.to_string()))),
                Ok(None) => None,
                Ok(Some(h)) if h.status < 200 && h.status != 101 => Some((h.len, None)),
                Ok(Some(h)) => {
                    sink.http1_head(&h, body_sent);
                    let start = ResponseStart {
                        status: h.status,
                        framing: h.framing,
                        reusable: h.reusable && body_sent,
                    };
                    Some((h.len, Some(start)))
                }
            }
        };
        match parsed {
            Some((len, start)) => {
                conn.buf.consume(len);
                if let Some(start) = start {
                    return Poll::Ready(Ok(start));
                }
                continue;
            }
            None if conn.buf.is_full(MAX_HEAD) => {
                return Poll::Ready(Err(Failure::Upstream("response head too large".into())));
            }
            None => {}
        }
        match conn.buf.poll_read_from(cx, &mut conn.io, MAX_HEAD) {
            Poll::Ready(Ok(0) | Err(_)) if !s.received => return Poll::Ready(Err(Failure::Stale)),
            Poll::Ready(Ok(0) | Err(_)) => {
                return Poll::Ready(Err(Failure::Upstream(
                    "the connection closed in the response head".into(),
                )));
            }
            Poll::Ready(Ok(_)) => s.received = true,
            Poll::Pending => return Poll::Pending,
        }
    }
}

// === RawResponse ===

/// What [`RawResponse::buffered`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffered {
    /// This many data bytes.
    Data(usize),
    /// The body ended (its trailers, if any, wait in [`RawResponse::take_trailers`]).
    End,
    /// Nothing yet: read more.
    Empty,
}

/// The body of an HTTP/1.1 upstream's response, read from its connection, which goes
/// back to the endpoint's pool once the body was read to the end.
#[derive(Debug)]
pub struct RawResponse {
    endpoint: Arc<Endpoint>,
    /// `None` once the body ended (the connection went back to the pool or closed).
    conn: Option<Box<RawConn>>,
    state: BodyState,
    reusable: bool,
    trailers: Option<Vec<u8>>,
    /// The request's place in the destination's limit, given back at the body's end.
    in_flight: Option<InFlight>,
}

impl RawResponse {
    pub(super) fn new(endpoint: Arc<Endpoint>, conn: Box<RawConn>, start: &ResponseStart) -> Self {
        // After a 101 the connection is a tunnel's, whatever else follows on it.
        let upgraded = start.status == 101;
        let mut body = RawResponse {
            endpoint,
            conn: Some(conn),
            state: if upgraded {
                BodyState::UntilClose
            } else {
                BodyState::new(start.framing)
            },
            reusable: start.reusable && !upgraded,
            trailers: None,
            in_flight: None,
        };
        if body.state.is_done() {
            body.finish();
        }
        body
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Keeps the request's place in the destination's limit until the body ends.
    pub(super) fn hold_place(&mut self, place: InFlight) {
        if !self.is_end() {
            self.in_flight = Some(place);
        }
    }

    /// True once the whole body was read and handed out, trailers included.
    pub fn is_end(&self) -> bool {
        self.state.is_done() && self.trailers.is_none()
    }

    /// The body's length when its framing says it.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            BodyState::Done => Some(0),
            BodyState::Length(left) => Some(left),
            _ => None,
        }
    }

    /// What the connection's buffer holds next, without reading the socket: data (see
    /// [`RawResponse::data`], taken with [`RawResponse::advance`]), the body's end, or
    /// nothing yet (then [`RawResponse::poll_read`]).
    pub fn buffered(&mut self) -> io::Result<Buffered> {
        loop {
            if self.state.is_done() {
                self.finish();
                return Ok(Buffered::End);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            if conn.buf.is_empty() {
                return Ok(Buffered::Empty);
            }
            let step = self
                .state
                .step(conn.buf.filled())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            conn.buf.consume(step.skip);
            if step.data > 0 {
                return Ok(Buffered::Data(step.data));
            }
            if let Some(trailers) = self.state.settle() {
                self.trailers = Some(trailers).filter(|t| !t.is_empty());
                continue;
            }
            if step.skip == 0 {
                return Ok(Buffered::Empty);
            }
        }
    }

    /// The first `n` bytes of buffered data (after [`Buffered::Data`]).
    pub fn data(&self, n: usize) -> &[u8] {
        self.conn.as_ref().map_or(&[], |c| &c.buf.filled()[..n])
    }

    /// The trailer fields, once the body ended.
    pub fn take_trailers(&mut self) -> Option<Trailers> {
        self.trailers.take().map(Trailers::Lines)
    }

    /// Reads more of the body into the connection's buffer. An until-close body ends
    /// when the upstream closes; any other body that meets a close is cut short.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        match conn.buf.poll_read_from(cx, &mut conn.io, MAX_HEAD) {
            Poll::Ready(Ok(0)) if matches!(self.state, BodyState::UntilClose) => {
                self.reusable = false;
                self.state = BodyState::Done;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(0)) => {
                self.conn = None;
                Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
            }
            Poll::Ready(Err(e)) => {
                self.conn = None;
                Poll::Ready(Err(e))
            }
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// `n` bytes of the data last found were used.
    pub fn advance(&mut self, n: usize) {
        if let Some(conn) = self.conn.as_mut() {
            conn.buf.consume(n);
        }
        self.state.advance(n);
        if let Some(trailers) = self.state.settle() {
            self.trailers = Some(trailers).filter(|t| !t.is_empty());
        }
        // A reader that stops at the end (hyper, once the size hint is met) must
        // still give the connection back.
        if self.is_end() {
            self.finish();
        }
    }

    /// The connection, for a tunnel after a 101 (with whatever the upstream sent early
    /// in its buffer).
    pub fn into_conn(mut self) -> Option<Box<RawConn>> {
        self.conn.take()
    }

    /// The body ended: the connection goes back to the pool when the upstream keeps it
    /// open and sent nothing beyond the response.
    fn finish(&mut self) {
        self.in_flight = None;
        if let Some(conn) = self.conn.take()
            && self.reusable
            && conn.buf.is_empty()
        {
            self.endpoint.release_raw(conn);
        }
    }
}

impl AsyncRead for RawConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for RawConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
