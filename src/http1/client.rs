//! Requests that hyper's HTTP/2 server brought in, sent to HTTP/1.1 upstreams over the
//! raw pooled connections of weir's own HTTP/1.1 path: no connection task and no
//! channel per request, the response head read in place, the body streamed from the
//! socket. Only requests without a body come this way (most requests); ones with a body
//! keep hyper's client, which streams them.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Response, StatusCode, Version, header, request};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;

use super::body::BodyState;
use super::buffer::Buffer;
use super::encode::line;
use super::head::{self, Framing, MAX_HEAD, Role, role};
use crate::proxy::headers::{self, Forwarding, request_id_bytes};
use crate::upstream::{Endpoint, RawConn};

/// A response's read buffer starts this small: heads and small bodies fit, and a
/// request in flight on HTTP/2 holds one.
const RESPONSE_BUFFER: usize = 4 * 1024;

thread_local! {
    /// Response buffers of finished responses, reused by the next ones on this thread:
    /// a fresh buffer is a zeroed allocation per request.
    static SPARE_BUFFERS: RefCell<Vec<Buffer>> = const { RefCell::new(Vec::new()) };
}

/// How many spare response buffers a thread keeps (more are freed).
const MAX_SPARE_BUFFERS: usize = 256;

fn response_buffer() -> Buffer {
    SPARE_BUFFERS
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| Buffer::with_capacity(RESPONSE_BUFFER))
}

fn recycle(mut buf: Buffer) {
    if buf.capacity() != RESPONSE_BUFFER {
        return;
    }
    buf.clear();
    SPARE_BUFFERS.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < MAX_SPARE_BUFFERS {
            spare.push(buf);
        }
    });
}

/// Why a request sent over a raw connection got no response head.
#[derive(Debug, thiserror::Error)]
pub enum RawSendError {
    /// The connection closed or reset before any byte of an answer: a pooled one the
    /// upstream closed as it was taken, and the request may go again.
    #[error("the upstream closed the connection before answering")]
    Stale,
    #[error("upstream failed before the response head: {0}")]
    Upstream(&'static str),
}

/// Writes the HTTP/1.1 head for a request hyper's HTTP/2 server parsed, with the
/// proxy's edits (the ones `proxy::headers::prepare_request` makes for hyper's client)
/// applied while writing rather than to the header map: hop-by-hop headers out, one
/// `cookie` line, `x-forwarded-for` appended, `x-forwarded-proto` set, `x-request-id`
/// kept or generated, `host` from the authority. Returns the request id when `want_id`
/// (for the access log).
pub fn request_head(
    out: &mut Vec<u8>,
    parts: &request::Parts,
    fwd: &Forwarding,
    want_id: bool,
) -> Option<HeaderValue> {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let (mut host, mut cookies, mut forwarded_for) = (false, 0, false);
    let mut request_id = None;
    for (name, value) in &parts.headers {
        if name == header::HOST {
            host = true;
        } else if name == header::COOKIE {
            cookies += 1;
            continue;
        } else if name == headers::X_FORWARDED_FOR {
            forwarded_for = true;
            continue;
        } else if name == headers::X_FORWARDED_PROTO {
            continue;
        } else if name == headers::X_REQUEST_ID {
            request_id = Some(value);
        } else if name == header::TE {
            if !value.as_bytes().eq_ignore_ascii_case(b"trailers") {
                continue;
            }
        } else if headers::is_hop_by_hop(name) {
            continue;
        }
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !host && let Some(authority) = parts.uri.authority() {
        line(out, b"host", authority.as_str().as_bytes());
    }
    if cookies > 0 {
        // HTTP/2 may split cookies over several fields; HTTP/1.1 wants one
        // (RFC 9113 §8.2.3).
        out.extend_from_slice(b"cookie: ");
        for (i, c) in parts.headers.get_all(header::COOKIE).iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(c.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if forwarded_for {
        for v in parts.headers.get_all(&headers::X_FORWARDED_FOR) {
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(fwd.client_ip.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(fwd.proto.as_bytes());
    out.extend_from_slice(b"\r\n");
    let id = match request_id {
        Some(kept) => want_id.then(|| kept.clone()),
        None => {
            let generated = request_id_bytes();
            line(out, b"x-request-id", &generated);
            want_id
                .then(|| HeaderValue::from_bytes(&generated).ok())
                .flatten()
        }
    };
    out.extend_from_slice(b"\r\n");
    id
}

/// Sends a request without a body, its head written by [`request_head`], on `conn`
/// and returns the response, its body streaming from the connection, which goes back
/// to `endpoint`'s pool once the body was read to the end.
pub async fn send_bodyless(
    endpoint: Arc<Endpoint>,
    mut conn: RawConn,
    head: &[u8],
    head_request: bool,
) -> Result<Response<RawBody>, RawSendError> {
    let written = async {
        conn.io.write_all(head).await?;
        conn.io.flush().await
    };
    written.await.map_err(|_| RawSendError::Stale)?;

    let mut buf = response_buffer();
    let mut received = false;
    loop {
        // The header storage (4 KiB) stays in this block, out of the future's state
        // across the read below: a smaller future is cheaper to spawn and move.
        let parsed = {
            let mut storage = head::header_storage();
            match head::parse_response(buf.filled(), &mut storage, head_request) {
                Err(_) => return Err(RawSendError::Upstream("malformed response head")),
                Ok(None) => None,
                // Interim responses are dropped, as Envoy does; a 101 was not asked for.
                Ok(Some(h)) if h.status < 200 && h.status != 101 => Some((h.len, None)),
                Ok(Some(h)) if h.status == 101 => {
                    return Err(RawSendError::Upstream(
                        "101 to a request that asked no upgrade",
                    ));
                }
                Ok(Some(h)) => {
                    let mut resp = Response::new(());
                    *resp.status_mut() = StatusCode::from_u16(h.status)
                        .map_err(|_| RawSendError::Upstream("invalid status code"))?;
                    *resp.version_mut() = Version::HTTP_11;
                    let headers = resp.headers_mut();
                    headers.reserve(h.headers.len());
                    for line in h.headers {
                        let keep = match role(line.name) {
                            Role::Connection
                            | Role::HopByHop
                            | Role::TransferEncoding
                            | Role::Te
                            | Role::Upgrade => false,
                            Role::ContentLength => h.framing != Framing::Chunked,
                            Role::EndToEnd => h.listed.is_empty() || !h.listed.contains(line.name),
                            _ => true,
                        };
                        if keep
                            && let (Ok(name), Ok(value)) = (
                                HeaderName::from_bytes(line.name.as_bytes()),
                                HeaderValue::from_bytes(line.value),
                            )
                        {
                            headers.append(name, value);
                        }
                    }
                    Some((h.len, Some((resp, h.framing, h.reusable))))
                }
            }
        };
        match parsed {
            Some((len, None)) => buf.consume(len),
            Some((len, Some((resp, framing, reusable)))) => {
                buf.consume(len);
                let body = RawBody::new(endpoint, conn, buf, framing, reusable);
                return Ok(resp.map(|()| body));
            }
            None if buf.is_full(MAX_HEAD) => {
                return Err(RawSendError::Upstream("response head too large"));
            }
            None => match buf.read_from(&mut conn.io, MAX_HEAD).await {
                Ok(0) | Err(_) if !received => return Err(RawSendError::Stale),
                Ok(0) | Err(_) => {
                    return Err(RawSendError::Upstream("connection closed mid-head"));
                }
                Ok(_) => received = true,
            },
        }
    }
}

/// A response body read from a raw upstream connection: the data of a length-framed,
/// chunked or until-close body, frame by frame as it arrives.
#[derive(Debug)]
pub struct RawBody {
    endpoint: Arc<Endpoint>,
    /// `None` once the body ended (the connection went back to the pool or closed).
    conn: Option<RawConn>,
    buf: Buffer,
    state: BodyState,
    reusable: bool,
    /// A failure held back for one turn of the scheduler (see `fail`).
    failed: Option<io::Error>,
}

impl RawBody {
    fn new(
        endpoint: Arc<Endpoint>,
        conn: RawConn,
        buf: Buffer,
        framing: Framing,
        reusable: bool,
    ) -> Self {
        let mut body = RawBody {
            endpoint,
            conn: Some(conn),
            buf,
            state: BodyState::new(framing),
            reusable,
            failed: None,
        };
        if body.state.is_done() {
            body.finish();
        }
        body
    }

    /// Reports a failure one scheduler turn late. hyper's HTTP/2 server resets the
    /// stream on a body error, and a reset discards the stream's frames not yet
    /// written; when the upstream fails right behind the data it sent, yielding first
    /// lets the response head and that data reach the client, which then sees a cut
    /// body rather than a stream that never answered.
    fn fail(
        &mut self,
        cx: &mut Context<'_>,
        error: io::Error,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.conn = None;
        self.failed = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The body ended: the connection goes back to the pool when the upstream keeps it
    /// open and sent nothing beyond the response.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.reusable
            && self.buf.is_empty()
        {
            self.endpoint.release_raw(conn);
        }
    }
}

impl Drop for RawBody {
    fn drop(&mut self) {
        recycle(std::mem::replace(&mut self.buf, Buffer::empty()));
    }
}

impl Body for RawBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(error) = this.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        loop {
            if this.state.is_done() {
                this.finish();
                return Poll::Ready(None);
            }
            if !this.buf.is_empty() {
                let mut data = BytesMut::new();
                let taken = this
                    .state
                    .take(this.buf.filled(), |d| data.extend_from_slice(d));
                let n = match taken {
                    Ok(n) => n,
                    Err(e) => return this.fail(cx, io::Error::new(io::ErrorKind::InvalidData, e)),
                };
                this.buf.consume(n);
                if this.state.is_done() {
                    this.finish();
                }
                if !data.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(data.freeze()))));
                }
                continue;
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(Some(Err(io::ErrorKind::NotConnected.into())));
            };
            match this.buf.poll_read_from(cx, &mut conn.io, MAX_HEAD) {
                Poll::Ready(Ok(0)) if matches!(this.state, BodyState::UntilClose) => {
                    this.reusable = false;
                    this.state = BodyState::Done;
                }
                Poll::Ready(Ok(0)) => return this.fail(cx, io::ErrorKind::UnexpectedEof.into()),
                Poll::Ready(Err(e)) => return this.fail(cx, e),
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Done => SizeHint::with_exact(0),
            BodyState::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}
