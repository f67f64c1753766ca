//! Answering an HTTP/1.1 client: forwarding its request through the pipeline and
//! writing what comes back (an upstream's response head through the header policy, or
//! one of weir's own answers), with the `connection` handling HTTP/1.1 needs.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::conn::{ClientConn, Next, RequestInfo};
use super::source::ClientBody;
use crate::headers::{self, Http1Lines, ResponseEdits};
use crate::http1::{BodyState, Framing, ResponseHead, status_line};
use crate::pipeline::{Exchange, LocalReply};
use crate::telemetry::{RequestRecord, ResponseFlag};
use crate::upstream::{Failure, Response, ResponseSink};

/// What the `Connection` header of a response to the client says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnectionHeader {
    /// Nothing: the HTTP/1.1 default (the connection stays open).
    Default,
    Close,
    /// An HTTP/1.0 client's connection stays open.
    KeepAlive,
    Upgrade,
}

impl ConnectionHeader {
    pub(super) fn line(self) -> &'static [u8] {
        match self {
            ConnectionHeader::Default => b"",
            ConnectionHeader::Close => b"connection: close\r\n",
            ConnectionHeader::KeepAlive => b"connection: keep-alive\r\n",
            ConnectionHeader::Upgrade => b"connection: upgrade\r\n",
        }
    }
}

/// Writes an HTTP/1.1 upstream's response head for the client, while it is still in
/// the upstream's buffer.
struct ClientSink<'a> {
    wbuf: &'a mut Vec<u8>,
    req: &'a RequestInfo,
    draining: bool,
    /// The connection stays open after this response.
    open: bool,
    /// The `grpc-status` field of a trailers-only gRPC response.
    grpc_status: Option<Vec<u8>>,
}

impl ResponseSink for ClientSink<'_> {
    fn http1_head(&mut self, head: &ResponseHead<'_, '_>, body_sent: bool) {
        let req = self.req;
        self.open = req.keep_alive
            && !self.draining
            && body_sent
            && match head.framing {
                Framing::UntilClose => false,
                Framing::Chunked => req.minor == 1,
                _ => true,
            };
        let connection = if head.status == 101 {
            ConnectionHeader::Upgrade
        } else {
            req.connection_header(self.open)
        };
        let chunked = head.framing == Framing::Chunked && req.minor == 1;
        self.wbuf.clear();
        status_line(self.wbuf, head.status, Some(head.reason));
        let edits = ResponseEdits {
            upgrade: head.status == 101,
            drop_content_length: head.framing == Framing::Chunked,
        };
        headers::forward_response(&head.fields(), &edits, &mut Http1Lines(self.wbuf));
        if chunked {
            self.wbuf
                .extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        self.wbuf.extend_from_slice(connection.line());
        self.wbuf.extend_from_slice(b"\r\n");
        if self.req.grpc {
            self.grpc_status = head
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("grpc-status"))
                .map(|h| h.value.to_vec());
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> ClientConn<I> {
    /// Forwards a request the pipeline prepared and answers the client.
    pub(super) async fn proxy(&mut self, req: RequestInfo, mut exchange: Exchange) -> Next {
        if !self.continue_if_expected(&req).await {
            return Next::Close;
        }
        let draining = self.shared.is_draining();
        let ClientConn {
            io,
            rbuf,
            head,
            wbuf,
            timer,
            ..
        } = self;
        let mut body = ClientBody::new(io, rbuf, BodyState::new(req.framing));
        let mut sink = ClientSink {
            wbuf,
            req: &req,
            draining,
            open: false,
            grpc_status: None,
        };
        let result = exchange
            .forward(head, &mut body, &mut sink, Some(timer.as_mut()))
            .await;
        let (open, grpc_status) = (sink.open, sink.grpc_status);
        let (sent, state) = (body.sent, body.state);
        exchange.record.add_request_bytes(sent);
        let clock = exchange.clock();
        let mut record = exchange.record;
        match result {
            Err(failure) => self.fail(&req, record, state, failure).await,
            Ok(Response::Http1 { start, body }) => {
                record.set_response(start.status, None);
                if let Some(value) = grpc_status {
                    record.observe_grpc_status(&value);
                }
                if start.status == 101 {
                    if !req.upgrade {
                        // A 101 without a requested upgrade cannot be honoured.
                        let failure =
                            Failure::Upstream("101 to a request that asked no upgrade".into());
                        return self.fail(&req, record, state, failure).await;
                    }
                    return self.tunnel(body, record).await;
                }
                let streamed = self.stream_raw(&req, start.framing, body, clock, record);
                match streamed.await {
                    true if open => Next::KeepAlive,
                    _ => Next::Close,
                }
            }
            Ok(Response::Http2 {
                response,
                in_flight,
                ..
            }) => {
                let body_sent = state.is_done();
                let next = self
                    .stream_hyper(&req, response, body_sent, clock, record)
                    .await;
                drop(in_flight);
                next
            }
        }
    }

    /// Answers `Expect: 100-continue` (as Envoy does by default; the header is not
    /// forwarded). False when the client is gone.
    async fn continue_if_expected(&mut self, req: &RequestInfo) -> bool {
        if req.expect_continue && req.framing != Framing::Empty && req.minor == 1 {
            return self
                .io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_ok();
        }
        true
    }

    /// weir's answer for a request that got no upstream response. The connection stays
    /// open only if the rest of the request body is already buffered.
    async fn fail(
        &mut self,
        req: &RequestInfo,
        record: RequestRecord,
        mut body: BodyState,
        failure: Failure,
    ) -> Next {
        let Some(reply) = LocalReply::for_failure(&failure) else {
            // The client is gone: the record says DC.
            return Next::Close;
        };
        let open = reply.flag.is_some()
            && req.keep_alive
            && body.skip_buffered(&mut self.rbuf)
            && !self.shared.is_draining();
        self.write_local(req, record, reply, open).await
    }

    /// Answers with one of weir's own responses before forwarding anything. The
    /// connection stays open when the request's body is already all read (or there is
    /// none).
    pub(super) async fn local_reply(
        &mut self,
        req: &RequestInfo,
        record: RequestRecord,
        reply: LocalReply,
    ) -> Next {
        let mut body = BodyState::new(req.framing);
        let open =
            req.keep_alive && body.skip_buffered(&mut self.rbuf) && !self.shared.is_draining();
        self.write_local(req, record, reply, open).await
    }

    /// Writes weir's own response; the request body is dealt with already. The record
    /// is counted before the response goes out.
    async fn write_local(
        &mut self,
        req: &RequestInfo,
        mut record: RequestRecord,
        reply: LocalReply,
        open: bool,
    ) -> Next {
        record.set_response(reply.status, reply.flag);
        record.add_response_bytes(reply.body.len() as u64);
        drop(record);
        local_reply(
            &mut self.wbuf,
            &reply,
            req.connection_header(open),
            req.head_request,
        );
        match self.io.write_all(&self.wbuf).await {
            Ok(()) if open => Next::KeepAlive,
            _ => Next::Close,
        }
    }

    /// Answers a request weir could not read, then the connection closes.
    pub(super) async fn reject(&mut self, status: u16, why: &str) {
        let message = format!("{why}\n");
        self.wbuf.clear();
        status_line(&mut self.wbuf, status, None);
        local_fields(&mut self.wbuf, None, message.len(), ConnectionHeader::Close);
        self.wbuf.extend_from_slice(message.as_bytes());
        let _ = self.io.write_all(&self.wbuf).await;
    }
}

/// Writes one of weir's own answers into `out` (emptied first).
fn local_reply(
    out: &mut Vec<u8>,
    reply: &LocalReply,
    connection: ConnectionHeader,
    head_request: bool,
) {
    out.clear();
    status_line(out, reply.status, None);
    local_fields(out, reply.flag, reply.body.len(), connection);
    if !head_request {
        out.extend_from_slice(reply.body.as_bytes());
    }
}

/// The header fields of weir's own answers (a short text body), and the blank line.
fn local_fields(
    out: &mut Vec<u8>,
    flag: Option<ResponseFlag>,
    length: usize,
    connection: ConnectionHeader,
) {
    out.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\n");
    headers::line(out, b"date", crate::civil::http_date_now().as_bytes());
    if let Some(flag) = flag {
        headers::line(out, b"x-weir-response-flags", flag.code().as_bytes());
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(length.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(connection.line());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_replies_name_their_flag_and_carry_a_date() {
        let mut out = Vec::new();
        let reply = LocalReply::for_flag(ResponseFlag::UpstreamConnectFailure);
        local_reply(&mut out, &reply, ConnectionHeader::Default, false);
        let text = String::from_utf8(out).unwrap();
        let (head, date_and_rest) = text.split_once("date: ").unwrap();
        assert_eq!(
            head,
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
        );
        let (date, rest) = date_and_rest.split_once("\r\n").unwrap();
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
        assert_eq!(
            rest,
            format!(
                "x-weir-response-flags: UF\r\ncontent-length: {}\r\n\r\n{}",
                reply.body.len(),
                reply.body
            )
        );
    }
}
