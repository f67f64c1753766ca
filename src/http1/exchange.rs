//! Forwarding one request over an HTTP/1.1 upstream connection that the client
//! connection's task drives itself: the head and the buffered part of the body go out
//! in one write, the response head comes back into a reused buffer, and the body
//! streams through unchanged. No channel, no second task, no header map.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::body::BodyState;
use super::conn::{Client, Next, RequestInfo};
use super::encode::{self, ConnectionHeader};
use super::head::{self, Framing, MAX_HEAD};
use crate::proxy::{Exchange, ResponseFlag};
use crate::snapshot::Route;
use crate::upstream::{Destination, RawConn};

/// How many times a request without a body is tried again after a pooled connection
/// turned out closed before any answer (the upstream closed it as it was taken).
const MAX_STALE_RETRIES: usize = 3;

/// How an exchange failed before a response head arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// The upstream closed or reset the connection before sending anything.
    Stale,
    /// The upstream failed after sending something, or sent garbage.
    Upstream,
    /// The client went away.
    Client,
    /// The client's chunked body is malformed.
    ClientBody,
}

/// What is known once the response head has arrived (and been rewritten into the
/// write buffer for the client).
#[derive(Debug, Clone, Copy)]
struct ResponseStart {
    status: u16,
    framing: Framing,
    /// The upstream connection can carry another request after this body.
    reusable: bool,
    /// The client connection stays open after this response.
    open: bool,
}

/// Runs `f` to completion, or until `deadline` (`None` when it passed first).
pub(super) async fn with_deadline<F: Future>(deadline: Option<Instant>, f: F) -> Option<F::Output> {
    match deadline {
        None => Some(f.await),
        Some(at) => tokio::time::timeout_at(at, f).await.ok(),
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Client<I> {
    /// Forwards a request whose upstream head is in the write buffer.
    pub(super) async fn proxy(
        &mut self,
        req: RequestInfo,
        mut exchange: Exchange,
        route: Arc<Route>,
        destination: Arc<Destination>,
    ) -> Next {
        // The route's timeout covers the whole exchange, response body included
        // (Envoy's route timeout).
        let deadline = route.timeout.map(|t| Instant::from_std(req.start + t));
        self.ubuf.clear();
        if !self.continue_if_expected(&req).await {
            return Next::Close;
        }
        let mut body = BodyState::new(req.framing);
        let Ok(n) = body.take(self.rbuf.filled(), |d| {
            exchange.add_request_bytes(d.len() as u64);
        }) else {
            return self.bad_body(exchange).await;
        };
        // The buffered part of the body goes out with the head, in one write.
        self.wbuf.extend_from_slice(&self.rbuf.filled()[..n]);
        self.rbuf.consume(n);

        let mut cursor = destination.cursor();
        let mut stale_retries = 0;
        let (mut conn, endpoint, resp) = loop {
            let endpoint = cursor.endpoint();
            let fresh = req.upgrade || stale_retries > 0;
            let mut conn = match with_deadline(deadline, endpoint.checkout_raw(fresh)).await {
                None => {
                    return self
                        .fail(&req, exchange, body, ResponseFlag::UpstreamTimeout)
                        .await;
                }
                Some(Err(error)) => {
                    if cursor.connect_failed(&error) {
                        continue;
                    }
                    let flag = ResponseFlag::UpstreamConnectFailure;
                    return self.fail(&req, exchange, body, flag).await;
                }
                Some(Ok(conn)) => conn,
            };
            let sent = self.send(&mut conn, &req, &mut body, &mut exchange);
            match with_deadline(deadline, sent).await {
                None => {
                    return self
                        .fail(&req, exchange, body, ResponseFlag::UpstreamTimeout)
                        .await;
                }
                Some(Ok(resp)) => break (conn, endpoint.clone(), resp),
                Some(Err(Failure::Stale))
                    if conn.reused()
                        && req.framing == Framing::Empty
                        && stale_retries < MAX_STALE_RETRIES =>
                {
                    stale_retries += 1;
                    self.ubuf.clear();
                }
                Some(Err(Failure::Client)) => return Next::Close,
                Some(Err(Failure::ClientBody)) => return self.bad_body(exchange).await,
                Some(Err(Failure::Stale | Failure::Upstream)) => {
                    tracing::debug!(destination = %destination.name, endpoint = %endpoint.label, "upstream reset before the response head");
                    let flag = ResponseFlag::UpstreamConnectionTermination;
                    return self.fail(&req, exchange, body, flag).await;
                }
            }
        };
        exchange.set_endpoint(endpoint.label.clone());
        exchange.set_response(
            StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY),
            None,
        );
        if resp.status == 101 {
            if !req.upgrade {
                // A 101 without a requested upgrade cannot be honoured.
                let flag = ResponseFlag::UpstreamConnectionTermination;
                return self.fail(&req, exchange, body, flag).await;
            }
            return self.tunnel(conn, exchange).await;
        }
        let streamed = self.stream_response(&mut conn, &req, resp, deadline, exchange);
        if !streamed.await {
            // The client has a cut response: only closing the connection says so.
            return Next::Close;
        }
        if resp.reusable && self.ubuf.is_empty() {
            endpoint.release_raw(conn);
        }
        if resp.open {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }

    /// Answers `Expect: 100-continue` (as Envoy does by default; the header is not
    /// forwarded). False when the client is gone.
    pub(super) async fn continue_if_expected(&mut self, req: &RequestInfo) -> bool {
        if req.expect_continue && req.framing != Framing::Empty && req.minor == 1 {
            return self
                .io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_ok();
        }
        true
    }

    /// weir's own answer for a request that got no upstream response. The connection
    /// stays open only if the rest of the request body is already buffered.
    pub(super) async fn fail(
        &mut self,
        req: &RequestInfo,
        exchange: Exchange,
        mut body: BodyState,
        flag: ResponseFlag,
    ) -> Next {
        self.ubuf.clear();
        let open =
            req.keep_alive && body.skip_buffered(&mut self.rbuf) && !self.shared.is_draining();
        self.write_local(req, exchange, flag, open).await
    }

    /// A malformed chunked request body: 400, and the connection closes.
    pub(super) async fn bad_body(&mut self, mut exchange: Exchange) -> Next {
        exchange.set_response(StatusCode::BAD_REQUEST, None);
        drop(exchange);
        encode::local_reply(
            &mut self.wbuf,
            400,
            None,
            "malformed chunked request body\n",
            ConnectionHeader::Close,
            false,
        );
        let _ = self.io.write_all(&self.wbuf).await;
        Next::Close
    }

    /// Sends the head (and body) on `conn` and reads the response head, rewriting it
    /// into the write buffer for the client. Interim responses (1xx other than 101)
    /// are dropped, as Envoy does.
    async fn send(
        &mut self,
        conn: &mut RawConn,
        req: &RequestInfo,
        body: &mut BodyState,
        exchange: &mut Exchange,
    ) -> Result<ResponseStart, Failure> {
        let draining = self.shared.is_draining();
        let Client {
            io,
            rbuf,
            ubuf,
            wbuf,
            ..
        } = self;
        let mut written = 0;
        // Bytes at the front of `rbuf` that belong to the body and are not sent yet.
        let mut scanned = 0;
        let mut received = false;
        poll_fn(|cx| {
            while written < wbuf.len() {
                match Pin::new(&mut conn.io).poll_write(cx, &wbuf[written..]) {
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Err(Failure::Stale)),
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Pending => break,
                }
            }
            let head_sent = written == wbuf.len();
            if head_sent && !(body.is_done() && scanned == 0) {
                loop {
                    if scanned == 0 && !rbuf.is_empty() {
                        scanned = body
                            .take(rbuf.filled(), |d| {
                                exchange.add_request_bytes(d.len() as u64)
                            })
                            .map_err(|_| Failure::ClientBody)?;
                    }
                    if scanned > 0 {
                        let chunk = &rbuf.filled()[..scanned];
                        match Pin::new(&mut conn.io).poll_write(cx, chunk) {
                            Poll::Ready(Ok(0) | Err(_)) => {
                                return Poll::Ready(Err(Failure::Upstream));
                            }
                            Poll::Ready(Ok(n)) => {
                                rbuf.consume(n);
                                scanned -= n;
                                continue;
                            }
                            Poll::Pending => break,
                        }
                    }
                    if body.is_done() {
                        break;
                    }
                    match rbuf.poll_read_from(cx, io, MAX_HEAD) {
                        Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Err(Failure::Client)),
                        Poll::Ready(Ok(_)) => {}
                        Poll::Pending => break,
                    }
                }
            }
            let body_sent = head_sent && body.is_done() && scanned == 0;
            loop {
                let mut storage = head::header_storage();
                let parsed =
                    match head::parse_response(ubuf.filled(), &mut storage, req.head_request) {
                        Err(_) => return Poll::Ready(Err(Failure::Upstream)),
                        Ok(None) => None,
                        Ok(Some(h)) if h.status < 200 && h.status != 101 => Some((h.len, None)),
                        Ok(Some(h)) => {
                            let open = req.keep_alive
                                && !draining
                                && body_sent
                                && match h.framing {
                                    Framing::UntilClose => false,
                                    Framing::Chunked => req.minor == 1,
                                    _ => true,
                                };
                            let connection = if h.status == 101 {
                                ConnectionHeader::Upgrade
                            } else {
                                req.connection_header(open)
                            };
                            let chunked = h.framing == Framing::Chunked && req.minor == 1;
                            encode::response_head(wbuf, &h, chunked, connection);
                            let start = ResponseStart {
                                status: h.status,
                                framing: h.framing,
                                reusable: h.reusable && body_sent,
                                open,
                            };
                            Some((h.len, Some(start)))
                        }
                    };
                match parsed {
                    Some((len, start)) => {
                        ubuf.consume(len);
                        if let Some(start) = start {
                            return Poll::Ready(Ok(start));
                        }
                        continue;
                    }
                    None if ubuf.is_full(MAX_HEAD) => return Poll::Ready(Err(Failure::Upstream)),
                    None => {}
                }
                match ubuf.poll_read_from(cx, &mut conn.io, MAX_HEAD) {
                    Poll::Ready(Ok(0) | Err(_)) if !received => {
                        return Poll::Ready(Err(Failure::Stale));
                    }
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Err(Failure::Upstream)),
                    Poll::Ready(Ok(_)) => received = true,
                    Poll::Pending => break,
                }
            }
            // A client that goes away while the upstream works: reading here also
            // picks up a pipelined next request, which waits in the buffer.
            if body_sent
                && !rbuf.is_full(MAX_HEAD)
                && let Poll::Ready(Ok(0) | Err(_)) = rbuf.poll_read_from(cx, io, MAX_HEAD)
            {
                return Poll::Ready(Err(Failure::Client));
            }
            Poll::Pending
        })
        .await
    }

    /// Sends the response head (with what of the body arrived along with it), then the
    /// rest of the body as it comes; true when all of it went through. The exchange is
    /// recorded just before the last bytes go out, so a client that reads its response
    /// and then scrapes the metrics finds the request counted.
    async fn stream_response(
        &mut self,
        conn: &mut RawConn,
        req: &RequestInfo,
        resp: ResponseStart,
        deadline: Option<Instant>,
        exchange: Exchange,
    ) -> bool {
        let mut exchange = Some(exchange);
        let mut sent = 0;
        let result = self
            .stream_body(conn, req, resp, deadline, &mut exchange, &mut sent)
            .await;
        if let Some(mut x) = exchange {
            x.add_response_bytes(sent);
            if let Err(flag) = result {
                x.set_flag(flag);
            }
        }
        result.is_ok()
    }

    async fn stream_body(
        &mut self,
        conn: &mut RawConn,
        req: &RequestInfo,
        resp: ResponseStart,
        deadline: Option<Instant>,
        exchange: &mut Option<Exchange>,
        sent: &mut u64,
    ) -> Result<(), ResponseFlag> {
        let mut body = BodyState::new(resp.framing);
        // An HTTP/1.0 client cannot read chunked framing: it gets the data, and the
        // connection's end marks the body's end.
        let dechunk = resp.framing == Framing::Chunked && req.minor == 0;
        self.forward_buffered(&mut body, dechunk, true, sent)?;
        finish_if_done(&body, exchange, *sent);
        write(&mut self.io, &self.wbuf, deadline).await?;
        while !body.is_done() {
            let read = with_deadline(deadline, self.ubuf.read_from(&mut conn.io, MAX_HEAD))
                .await
                .ok_or(ResponseFlag::UpstreamTimeout)?;
            match read {
                Ok(0) if matches!(body, BodyState::UntilClose) => break,
                Ok(0) | Err(_) => return Err(ResponseFlag::UpstreamConnectionTermination),
                Ok(_) => {}
            }
            if dechunk {
                self.forward_buffered(&mut body, true, false, sent)?;
                finish_if_done(&body, exchange, *sent);
                write(&mut self.io, &self.wbuf, deadline).await?;
            } else {
                let n = body
                    .take(self.ubuf.filled(), |d| *sent += d.len() as u64)
                    .map_err(|_| ResponseFlag::UpstreamConnectionTermination)?;
                finish_if_done(&body, exchange, *sent);
                write(&mut self.io, &self.ubuf.filled()[..n], deadline).await?;
                self.ubuf.consume(n);
            }
        }
        Ok(())
    }

    /// Moves the buffered response body bytes into the write buffer (after the head
    /// when `append`), only their data when `dechunk`.
    fn forward_buffered(
        &mut self,
        body: &mut BodyState,
        dechunk: bool,
        append: bool,
        sent: &mut u64,
    ) -> Result<(), ResponseFlag> {
        if !append {
            self.wbuf.clear();
        }
        let wbuf = &mut self.wbuf;
        let filled = self.ubuf.filled();
        let n = if dechunk {
            body.take(filled, |d| {
                *sent += d.len() as u64;
                wbuf.extend_from_slice(d);
            })
        } else {
            body.take(filled, |d| *sent += d.len() as u64)
                .inspect(|&n| wbuf.extend_from_slice(&filled[..n]))
        }
        .map_err(|_| ResponseFlag::UpstreamConnectionTermination)?;
        self.ubuf.consume(n);
        Ok(())
    }

    /// After a 101: the response head and whatever either side sent early, then bytes
    /// both ways until either side closes. The exchange is recorded when the tunnel
    /// closes, so its duration is the session's and its byte counts what crossed it.
    async fn tunnel(&mut self, mut conn: RawConn, mut exchange: Exchange) -> Next {
        let early_down = self.ubuf.len();
        self.wbuf.extend_from_slice(self.ubuf.filled());
        self.ubuf.clear();
        if self.io.write_all(&self.wbuf).await.is_err() {
            exchange.set_flag(ResponseFlag::DownstreamConnectionTermination);
            return Next::Close;
        }
        let early_up = self.rbuf.len();
        if conn.io.write_all(self.rbuf.filled()).await.is_err() {
            exchange.set_flag(ResponseFlag::UpstreamConnectionTermination);
            return Next::Close;
        }
        self.rbuf.clear();
        exchange.add_response_bytes(early_down as u64);
        exchange.add_request_bytes(early_up as u64);
        match tokio::io::copy_bidirectional(&mut self.io, &mut conn.io).await {
            Ok((to_upstream, to_downstream)) => {
                exchange.add_request_bytes(to_upstream);
                exchange.add_response_bytes(to_downstream);
            }
            Err(error) => tracing::debug!(%error, "upgraded connection ended with an error"),
        }
        Next::Close
    }
}

/// Records the exchange once its body is complete.
fn finish_if_done(body: &BodyState, exchange: &mut Option<Exchange>, sent: u64) {
    if body.is_done()
        && let Some(mut x) = exchange.take()
    {
        x.add_response_bytes(sent);
    }
}

/// Writes to the client within the deadline.
async fn write<W: AsyncWrite + Unpin>(
    io: &mut W,
    bytes: &[u8],
    deadline: Option<Instant>,
) -> Result<(), ResponseFlag> {
    match with_deadline(deadline, io.write_all(bytes)).await {
        None => Err(ResponseFlag::UpstreamTimeout),
        Some(Ok(())) => Ok(()),
        Some(Err(_)) => Err(ResponseFlag::DownstreamConnectionTermination),
    }
}
