//! Streaming a response body to an HTTP/1.1 client, in the framing the client gets:
//! the upstream's length, chunked written again canonically, or (HTTP/1.0 clients)
//! data until the connection closes. The record is counted just before the last
//! bytes go out, so a client that reads its response and then scrapes the metrics
//! finds its request counted.

use std::future::poll_fn;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;

use super::conn::{ClientConn, Next, RequestInfo};
use super::respond::ConnectionHeader;
use crate::headers::{self, Http1Lines, ResponseEdits};
use crate::http1::{Framing, chunk_header, status_line};
use crate::pipeline::ResponseClock;
use crate::telemetry::{RequestRecord, ResponseFlag};
use crate::upstream::{Buffered, RawResponse, Trailers};

/// Bytes gathered before a write: below this, pieces are copied together so that a
/// response and its small body go out in one write.
const GATHER: usize = 64 * 1024;

/// How body data is framed for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// As it is: the client gets the upstream's length, or the end of the connection.
    Plain,
    /// Chunked, written again chunk by chunk.
    Chunked,
}

impl Out {
    fn data(self, out: &mut Vec<u8>, data: &[u8]) {
        if self == Out::Chunked {
            chunk_header(out, data.len());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(data);
        }
    }

    fn end(self, out: &mut Vec<u8>, trailers: Option<&Trailers>) {
        if self == Out::Chunked {
            out.extend_from_slice(b"0\r\n");
            if let Some(trailers) = trailers {
                trailers.write_to(&mut Http1Lines(out));
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> ClientConn<I> {
    /// Sends the response head (in the write buffer) and the body of an HTTP/1.1
    /// upstream's response; true when all of it went through.
    pub(super) async fn stream_raw(
        &mut self,
        req: &RequestInfo,
        framing: Framing,
        mut body: RawResponse,
        clock: ResponseClock,
        record: RequestRecord,
    ) -> bool {
        // An HTTP/1.0 client cannot read chunked framing: it gets the data, and the
        // connection's end marks the body's end.
        let out = if framing == Framing::Chunked && req.minor == 1 {
            Out::Chunked
        } else {
            Out::Plain
        };
        let mut record = Some(record);
        let mut sent = 0u64;
        let result: Result<(), ResponseFlag> = async {
            loop {
                let buffered = body
                    .buffered()
                    .map_err(|_| ResponseFlag::UpstreamConnectionTermination)?;
                match buffered {
                    Buffered::Data(n) => {
                        let data = body.data(n);
                        sent += n as u64;
                        if out == Out::Plain && self.wbuf.is_empty() && n >= GATHER / 4 {
                            // Large data goes out straight from the upstream's buffer.
                            write(&mut self.io, data, clock, self.timer.as_mut()).await?;
                        } else {
                            out.data(&mut self.wbuf, data);
                        }
                        body.advance(n);
                        if self.wbuf.len() >= GATHER {
                            write(&mut self.io, &self.wbuf, clock, self.timer.as_mut()).await?;
                            self.wbuf.clear();
                        }
                    }
                    Buffered::End => {
                        out.end(&mut self.wbuf, body.take_trailers().as_ref());
                        finish(&mut record, sent);
                        write(&mut self.io, &self.wbuf, clock, self.timer.as_mut()).await?;
                        return Ok(());
                    }
                    Buffered::Empty => {
                        if !self.wbuf.is_empty() {
                            write(&mut self.io, &self.wbuf, clock, self.timer.as_mut()).await?;
                            self.wbuf.clear();
                        }
                        clock
                            .run(poll_fn(|cx| body.poll_read(cx)), self.timer.as_mut())
                            .await?
                            .map_err(|_| ResponseFlag::UpstreamConnectionTermination)?;
                    }
                }
            }
        }
        .await;
        self.wbuf.clear();
        fail(&mut record, sent, result)
    }

    /// Writes an HTTP/2 upstream's response (hyper's) in HTTP/1.1 framing: its length
    /// when it has one, else chunked (HTTP/1.0 clients: until the connection closes).
    pub(super) async fn stream_hyper(
        &mut self,
        req: &RequestInfo,
        response: http::Response<Incoming>,
        body_sent: bool,
        clock: ResponseClock,
        mut record: RequestRecord,
    ) -> Next {
        let (parts, mut incoming) = response.into_parts();
        let status = parts.status;
        record.set_response(status.as_u16(), None);
        record.observe_grpc_headers(&parts.headers);
        let empty = req.head_request
            || status.is_informational()
            || status == http::StatusCode::NO_CONTENT
            || status == http::StatusCode::NOT_MODIFIED;
        let length = parts.headers.contains_key(http::header::CONTENT_LENGTH);
        let chunked = !empty && !length && req.minor == 1;
        let open = req.keep_alive
            && body_sent
            && !self.shared.is_draining()
            && (empty || length || chunked);
        self.wbuf.clear();
        status_line(&mut self.wbuf, status.as_u16(), None);
        let edits = ResponseEdits {
            upgrade: false,
            drop_content_length: false,
        };
        headers::forward_response(&parts.headers, &edits, &mut Http1Lines(&mut self.wbuf));
        if chunked {
            self.wbuf
                .extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        let connection: ConnectionHeader = req.connection_header(open);
        self.wbuf.extend_from_slice(connection.line());
        self.wbuf.extend_from_slice(b"\r\n");
        if empty {
            drop(record);
            return match self.io.write_all(&self.wbuf).await {
                Ok(()) if open => Next::KeepAlive,
                _ => Next::Close,
            };
        }
        let out = if chunked { Out::Chunked } else { Out::Plain };
        let mut record = Some(record);
        let mut sent = 0u64;
        let result: Result<(), ResponseFlag> = async {
            loop {
                let frame = clock.run(incoming.frame(), self.timer.as_mut()).await?;
                let frame = match frame {
                    None => None,
                    Some(Ok(frame)) => Some(frame),
                    Some(Err(_)) => return Err(ResponseFlag::UpstreamConnectionTermination),
                };
                let trailers = match frame.map(|f| f.into_data()) {
                    Some(Ok(data)) => {
                        sent += data.len() as u64;
                        write_data(&mut self.wbuf, out, &data);
                        None
                    }
                    Some(Err(frame)) => match frame.into_trailers() {
                        Ok(trailers) => Some(trailers),
                        Err(_) => continue,
                    },
                    None => {
                        out.end(&mut self.wbuf, None);
                        finish(&mut record, sent);
                        write(&mut self.io, &self.wbuf, clock, self.timer.as_mut()).await?;
                        return Ok(());
                    }
                };
                if let Some(trailers) = trailers {
                    if let Some(r) = record.as_mut() {
                        r.observe_grpc_headers(&trailers);
                    }
                    out.end(&mut self.wbuf, Some(&Trailers::Map(trailers)));
                    finish(&mut record, sent);
                    write(&mut self.io, &self.wbuf, clock, self.timer.as_mut()).await?;
                    return Ok(());
                }
                write(&mut self.io, &self.wbuf, clock, self.timer.as_mut()).await?;
                self.wbuf.clear();
            }
        }
        .await;
        self.wbuf.clear();
        match fail(&mut record, sent, result) {
            true if open => Next::KeepAlive,
            _ => Next::Close,
        }
    }
}

fn write_data(wbuf: &mut Vec<u8>, out: Out, data: &Bytes) {
    if !data.is_empty() {
        out.data(wbuf, data);
    }
}

/// Counts the record with the body's bytes (once).
fn finish(record: &mut Option<RequestRecord>, sent: u64) {
    if let Some(mut r) = record.take() {
        r.add_response_bytes(sent);
    }
}

/// Notes how streaming ended on a record not yet counted; true when it went through.
fn fail(record: &mut Option<RequestRecord>, sent: u64, result: Result<(), ResponseFlag>) -> bool {
    if let Some(r) = record.as_mut()
        && let Err(flag) = result
    {
        r.set_flag(flag);
    }
    finish(record, sent);
    result.is_ok()
}

/// Writes to the client before a clock runs out.
async fn write<W: AsyncWrite + Unpin>(
    io: &mut W,
    bytes: &[u8],
    clock: ResponseClock,
    timer: Pin<&mut Sleep>,
) -> Result<(), ResponseFlag> {
    clock
        .run(io.write_all(bytes), timer)
        .await?
        .map_err(|_| ResponseFlag::DownstreamConnectionTermination)
}
