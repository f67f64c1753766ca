//! The response body an HTTP/2 client gets: an upstream's (HTTP/1.1 from a raw
//! connection, or hyper's HTTP/2), or weir's own short one. It carries the request's
//! record, counted when the body ends (or when hyper drops it because the client went
//! away); its clocks (the route's deadline, and the stream idle timeout, which starts
//! again with every frame); its place in the destination's limit; and the stream's
//! place in the connection's accounting.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::idle::StreamGuard;
use crate::pipeline::ResponseClock;
use crate::telemetry::{RequestRecord, ResponseFlag};
use crate::upstream::{InFlight, RawBody};

/// See the module doc.
pub(super) struct ResponseBody {
    kind: Kind,
    record: Option<RequestRecord>,
    clock: ResponseClock,
    /// When the last frame went by.
    last_move: Instant,
    /// Armed only once the body has to wait for its upstream: most bodies are done
    /// within the poll that delivers their head.
    timer: Option<Pin<Box<Sleep>>>,
    _in_flight: Option<InFlight>,
    stream: StreamGuard,
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
    #[error("the response body stopped: {0}")]
    Timeout(&'static str),
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
            clock: ResponseClock {
                deadline: None,
                idle: None,
            },
            last_move: Instant::now(),
            timer: None,
            _in_flight: None,
            stream,
        }
    }

    /// hyper's HTTP/2 client's body, which holds the request's place in the
    /// destination's limit until it ends.
    pub(super) fn hyper(
        inner: Incoming,
        in_flight: InFlight,
        record: RequestRecord,
        clock: ResponseClock,
        stream: StreamGuard,
    ) -> Self {
        let done = inner.is_end_stream();
        let mut body = Self::streaming(Kind::Hyper(inner), record, clock, stream);
        body._in_flight = Some(in_flight);
        body.finish_if(done)
    }

    pub(super) fn raw(
        inner: RawBody,
        record: RequestRecord,
        clock: ResponseClock,
        stream: StreamGuard,
    ) -> Self {
        let done = inner.is_end_stream();
        Self::streaming(Kind::Raw(inner), record, clock, stream).finish_if(done)
    }

    fn streaming(
        kind: Kind,
        record: RequestRecord,
        clock: ResponseClock,
        stream: StreamGuard,
    ) -> Self {
        stream.activity().set_waiting_on_client(true);
        ResponseBody {
            kind,
            record: Some(record),
            clock,
            last_move: Instant::now(),
            timer: None,
            _in_flight: None,
            stream,
        }
    }

    fn finish_if(mut self, done: bool) -> Self {
        // hyper never polls a body that is already at its end (204, HEAD, empty
        // content), so the record is counted now.
        if done {
            self.complete();
        }
        self
    }

    fn count(&mut self, n: usize) {
        if let Some(r) = &mut self.record {
            r.add_response_bytes(n as u64);
        }
    }

    /// The body ended cleanly: the record is counted, the place given back.
    fn complete(&mut self) {
        self.timer = None;
        self.record = None;
        self._in_flight = None;
    }

    /// After the inner body said it must wait: arms the clock that runs out first;
    /// the flag it ends the response with when it already ran out.
    fn clock_ran_out(&mut self, cx: &mut Context<'_>) -> Option<ResponseFlag> {
        if self.timer.is_none() {
            // Frames before the first wait did not note their time: the body was
            // moving until now.
            self.last_move = Instant::now();
        }
        let (at, flag) = self.clock.next(self.last_move)?;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        timer.as_mut().poll(cx).is_ready().then_some(flag)
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
        this.stream.activity().set_waiting_on_client(false);
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
            Poll::Pending => match this.clock_ran_out(cx) {
                None => Poll::Pending,
                Some(flag) => {
                    this.fail(flag);
                    let why = match flag {
                        ResponseFlag::StreamIdleTimeout => "stream idle timeout",
                        _ => "the route's timeout expired",
                    };
                    Poll::Ready(Some(Err(BodyError::Timeout(why))))
                }
            },
            Poll::Ready(None) => {
                this.complete();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                let activity = this.stream.activity();
                activity.moved();
                activity.set_waiting_on_client(true);
                if this.clock.idle.is_some() && this.timer.is_some() {
                    this.last_move = Instant::now();
                }
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
