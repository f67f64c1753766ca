//! The response body an HTTP/2 client gets: an upstream's (HTTP/1.1 from a raw
//! connection, or hyper's HTTP/2), or weir's own short one. It carries the request's
//! record, counted when the body ends (or when hyper drops it because the client went
//! away), the route's deadline, which keeps running while the body streams, and the
//! stream's place in the connection's idle accounting.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::idle::StreamGuard;
use crate::telemetry::{RequestRecord, ResponseFlag};
use crate::upstream::RawBody;

/// See the module doc.
pub(super) struct ResponseBody {
    kind: Kind,
    record: Option<RequestRecord>,
    deadline: Option<Pin<Box<Sleep>>>,
    _stream: StreamGuard,
}

enum Kind {
    /// hyper's HTTP/2 client's body, streamed frame by frame.
    Hyper(Incoming),
    /// An HTTP/1.1 upstream's body read straight from its pooled connection.
    Raw(RawBody),
    /// A short body weir wrote itself.
    Local(Option<Bytes>),
}

/// Why a response body stopped early; hyper then resets the stream, so the client sees
/// a truncated response rather than a silently short one.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    #[error("upstream response body failed: {0}")]
    Upstream(#[source] hyper::Error),
    #[error("upstream response body failed: {0}")]
    UpstreamIo(#[source] std::io::Error),
    #[error("the route's timeout expired while the response body was streaming")]
    Timeout,
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// A body weir wrote itself. The record is counted now: there is nothing upstream
    /// left to wait for.
    pub(super) fn local(bytes: Bytes, mut record: RequestRecord, stream: StreamGuard) -> Self {
        record.add_response_bytes(bytes.len() as u64);
        drop(record);
        ResponseBody {
            kind: Kind::Local(Some(bytes)),
            record: None,
            deadline: None,
            _stream: stream,
        }
    }

    pub(super) fn hyper(
        inner: Incoming,
        record: RequestRecord,
        deadline: Option<Instant>,
        stream: StreamGuard,
    ) -> Self {
        let done = inner.is_end_stream();
        Self::streaming(Kind::Hyper(inner), done, record, deadline, stream)
    }

    pub(super) fn raw(
        inner: RawBody,
        record: RequestRecord,
        deadline: Option<Instant>,
        stream: StreamGuard,
    ) -> Self {
        let done = inner.is_end_stream();
        Self::streaming(Kind::Raw(inner), done, record, deadline, stream)
    }

    fn streaming(
        kind: Kind,
        done: bool,
        record: RequestRecord,
        deadline: Option<Instant>,
        stream: StreamGuard,
    ) -> Self {
        let mut body = ResponseBody {
            kind,
            record: Some(record),
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            _stream: stream,
        };
        // hyper never polls a body that is already at its end (204, HEAD, empty
        // content), so the record is counted now.
        if done {
            body.complete();
        }
        body
    }

    fn count(&mut self, n: usize) {
        if let Some(r) = &mut self.record {
            r.add_response_bytes(n as u64);
        }
    }

    /// The body ended cleanly: the record is counted.
    fn complete(&mut self) {
        self.deadline = None;
        self.record = None;
    }

    fn fail(&mut self, flag: ResponseFlag) {
        if let Some(r) = &mut self.record {
            r.set_flag(flag);
        }
        self.complete();
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Some(d) = &mut this.deadline
            && d.as_mut().poll(cx).is_ready()
        {
            this.fail(ResponseFlag::UpstreamTimeout);
            return Poll::Ready(Some(Err(BodyError::Timeout)));
        }
        let (polled, at_end) = match &mut this.kind {
            Kind::Local(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Hyper(inner) => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                let polled = polled.map(|f| f.map(|r| r.map_err(BodyError::Upstream)));
                (polled, inner.is_end_stream())
            }
            Kind::Raw(inner) => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                let polled = polled.map(|f| f.map(|r| r.map_err(BodyError::UpstreamIo)));
                (polled, inner.is_end_stream())
            }
        };
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.complete();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count(data.len());
                } else if let (Some(trailers), Some(r)) =
                    (frame.trailers_ref(), this.record.as_mut())
                {
                    r.observe_grpc_headers(trailers);
                }
                if at_end {
                    this.complete();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.fail(ResponseFlag::UpstreamConnectionTermination);
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Local(bytes) => bytes.is_none(),
            Kind::Hyper(inner) => inner.is_end_stream(),
            Kind::Raw(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Hyper(inner) => inner.size_hint(),
            Kind::Raw(inner) => inner.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Dropped before its end: hyper stopped sending because the client went away.
        if self.record.is_some() {
            self.fail(ResponseFlag::DownstreamConnectionTermination);
        }
    }
}
