//! An HTTP/2 client's request body as the upstream clients pull it: hyper's frames,
//! data taken piece by piece and counted, trailers kept for the end. hyper's HTTP/2
//! client streams it on its own instead ([`BodySource::take_hyper`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use hyper::body::Incoming;

use crate::telemetry::BodyMeter;
use crate::upstream::{BodySource, Failure, RequestBody, Trailers};

pub(super) struct StreamBody {
    /// `None` once handed to hyper's client.
    incoming: Option<Incoming>,
    empty: bool,
    /// The data frame being sent, and how much of it went.
    current: Bytes,
    offset: usize,
    trailers: Option<HeaderMap>,
    ended: bool,
    /// Body bytes sent and the body's end, shared with the request's record.
    meter: Option<Arc<BodyMeter>>,
}

impl StreamBody {
    /// `meter` receives the body bytes sent (`None` for a body-less request).
    pub(super) fn new(incoming: Incoming, meter: Option<Arc<BodyMeter>>) -> Self {
        StreamBody {
            empty: incoming.is_end_stream(),
            incoming: Some(incoming),
            current: Bytes::new(),
            offset: 0,
            trailers: None,
            ended: false,
            meter,
        }
    }
}

impl BodySource for StreamBody {
    fn is_empty(&self) -> bool {
        self.empty
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<&[u8]>, Failure>> {
        loop {
            if self.offset < self.current.len() {
                return Poll::Ready(Ok(Some(&self.current[self.offset..])));
            }
            if self.ended || self.empty {
                return Poll::Ready(Ok(None));
            }
            let Some(incoming) = self.incoming.as_mut() else {
                return Poll::Ready(Ok(None));
            };
            match Pin::new(incoming).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.ended = true,
                // A body error is the client resetting its stream.
                Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(Failure::ClientGone)),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        self.current = data;
                        self.offset = 0;
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.trailers = Some(trailers);
                            self.ended = true;
                        }
                    }
                },
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.offset += n;
        if let Some(meter) = &self.meter {
            meter.moved(n);
        }
    }

    fn take_trailers(&mut self) -> Option<Trailers> {
        self.trailers.take().map(Trailers::Map)
    }

    fn poll_gone(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        // A client that resets its stream makes hyper drop the stream's future.
        Poll::Pending
    }

    fn take_hyper(&mut self) -> Option<RequestBody> {
        let incoming = self.incoming.take()?;
        Some(RequestBody::new(incoming, self.meter.clone()))
    }

    fn meter(&self) -> Option<&Arc<BodyMeter>> {
        self.meter.as_ref()
    }
}
