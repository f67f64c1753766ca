//! Requests from weir's own HTTP/1.1 path to destinations it does not speak itself
//! (HTTP/2 upstreams): hyper's client carries them, the client's body is fed to it
//! through a channel, and the response is written back in HTTP/1.1 framing.

use std::pin::pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::body::BodyState;
use super::buffer::Buffer;
use super::conn::{Client, Next, RequestInfo};
use super::encode::line;
use super::exchange::{Failure, with_deadline};
use super::head::MAX_HEAD;
use crate::proxy::{Exchange, ResponseFlag, forward, headers};
use crate::snapshot::Route;
use crate::upstream::{BodyChunk, Destination, RequestBody};

impl<I: AsyncRead + AsyncWrite + Unpin> Client<I> {
    pub(super) async fn proxy_hyper(
        &mut self,
        req: RequestInfo,
        mut exchange: Exchange,
        route: Arc<Route>,
        destination: Arc<Destination>,
        parts: http::request::Parts,
    ) -> Next {
        let deadline = route.timeout.map(|t| Instant::from_std(req.start + t));
        if !self.continue_if_expected(&req).await {
            return Next::Close;
        }
        let mut body = BodyState::new(req.framing);
        let (request_body, tx) = if body.is_done() {
            (RequestBody::empty(), None)
        } else {
            let (tx, rx) = mpsc::channel(2);
            (RequestBody::channel(rx), Some(tx))
        };
        let request = Request::from_parts(parts, request_body);
        let mut body_sent = body.is_done();
        let result = {
            let mut forwarded = pin!(with_deadline(
                deadline,
                forward(&destination, request, false)
            ));
            let mut pump = pin!(pump(
                &mut self.io,
                &mut self.rbuf,
                &mut body,
                tx,
                &mut exchange
            ));
            loop {
                tokio::select! {
                    result = &mut forwarded => break result,
                    pumped = &mut pump, if !body_sent => match pumped {
                        Ok(()) => body_sent = true,
                        Err(Failure::ClientBody) => break Some(Err(ResponseFlag::DownstreamConnectionTermination)),
                        Err(_) => return Next::Close,
                    },
                }
            }
        };
        let (resp, _, endpoint) = match result {
            None => {
                return self
                    .fail(&req, exchange, body, ResponseFlag::UpstreamTimeout)
                    .await;
            }
            Some(Err(ResponseFlag::DownstreamConnectionTermination)) => return Next::Close,
            Some(Err(flag)) => return self.fail(&req, exchange, body, flag).await,
            Some(Ok(ok)) => ok,
        };
        exchange.set_endpoint(endpoint.label.clone());
        let (mut parts, mut response_body) = resp.into_parts();
        exchange.set_response(parts.status, None);
        exchange.observe_grpc_status(&parts.headers);
        headers::prepare_response(&mut parts, false);

        let status = parts.status;
        let empty = req.head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let length = parts.headers.contains_key(header::CONTENT_LENGTH);
        let chunked = !empty && !length && req.minor == 1;
        let open = req.keep_alive
            && body_sent
            && !self.shared.is_draining()
            && (empty || length || chunked);
        self.wbuf.clear();
        self.wbuf.extend_from_slice(b"HTTP/1.1 ");
        self.wbuf.extend_from_slice(status.as_str().as_bytes());
        self.wbuf.push(b' ');
        self.wbuf
            .extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
        header_lines(&mut self.wbuf, &parts.headers);
        if chunked {
            self.wbuf
                .extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        self.wbuf
            .extend_from_slice(req.connection_header(open).line());
        self.wbuf.extend_from_slice(b"\r\n");
        // The exchange is recorded before the last bytes go out, so a client that
        // reads its response and then scrapes the metrics finds the request counted.
        if empty {
            drop(exchange);
            return match self.io.write_all(&self.wbuf).await {
                Ok(()) if open => Next::KeepAlive,
                _ => Next::Close,
            };
        }
        let mut ended = false;
        let mut exchange = Some(exchange);
        let flag = |exchange: &mut Option<Exchange>, flag| {
            if let Some(x) = exchange {
                x.set_flag(flag);
            }
        };
        loop {
            let frame = match with_deadline(deadline, response_body.frame()).await {
                None => {
                    flag(&mut exchange, ResponseFlag::UpstreamTimeout);
                    return Next::Close;
                }
                Some(None) => break,
                Some(Some(Err(_))) => {
                    flag(&mut exchange, ResponseFlag::UpstreamConnectionTermination);
                    return Next::Close;
                }
                Some(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) => {
                    if let Some(x) = exchange.as_mut() {
                        x.add_response_bytes(data.len() as u64);
                    }
                    if chunked && !data.is_empty() {
                        self.wbuf
                            .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                        self.wbuf.extend_from_slice(&data);
                        self.wbuf.extend_from_slice(b"\r\n");
                    } else {
                        self.wbuf.extend_from_slice(&data);
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        if let Some(x) = exchange.as_mut() {
                            x.observe_grpc_status(&trailers);
                        }
                        if chunked {
                            self.wbuf.extend_from_slice(b"0\r\n");
                            header_lines(&mut self.wbuf, &trailers);
                            self.wbuf.extend_from_slice(b"\r\n");
                            ended = true;
                        }
                    }
                }
            }
            if response_body.is_end_stream() {
                break;
            }
            if self.io.write_all(&self.wbuf).await.is_err() {
                flag(&mut exchange, ResponseFlag::DownstreamConnectionTermination);
                return Next::Close;
            }
            self.wbuf.clear();
        }
        if chunked && !ended {
            self.wbuf.extend_from_slice(b"0\r\n\r\n");
        }
        drop(exchange);
        if self.io.write_all(&self.wbuf).await.is_err() {
            return Next::Close;
        }
        if open { Next::KeepAlive } else { Next::Close }
    }
}

fn header_lines(out: &mut Vec<u8>, headers: &http::HeaderMap) {
    for (name, value) in headers {
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// Feeds the client's body into the channel hyper's client reads from; the sender is
/// dropped without an end marker if the client goes away, so the upstream sees an
/// aborted request rather than a short one.
async fn pump<I: AsyncRead + Unpin>(
    io: &mut I,
    rbuf: &mut Buffer,
    body: &mut BodyState,
    tx: Option<mpsc::Sender<BodyChunk>>,
    exchange: &mut Exchange,
) -> Result<(), Failure> {
    let Some(tx) = tx else { return Ok(()) };
    loop {
        if !rbuf.is_empty() {
            let mut data = BytesMut::new();
            let n = body
                .take(rbuf.filled(), |d| data.extend_from_slice(d))
                .map_err(|_| Failure::ClientBody)?;
            rbuf.consume(n);
            if !data.is_empty() {
                exchange.add_request_bytes(data.len() as u64);
                if tx.send(BodyChunk::Data(Bytes::from(data))).await.is_err() {
                    // The upstream stopped reading: its response says why.
                    return Ok(());
                }
            }
        }
        if body.is_done() {
            let _ = tx.send(BodyChunk::End).await;
            return Ok(());
        }
        match rbuf.read_from(io, MAX_HEAD).await {
            Ok(0) | Err(_) => return Err(Failure::Client),
            Ok(_) => {}
        }
    }
}
