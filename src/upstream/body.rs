//! The request body weir sends upstream: the client's body, streamed, and counted.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::mpsc;

/// One piece of a body handed over a channel by weir's own HTTP/1.1 path.
#[derive(Debug)]
pub enum BodyChunk {
    Data(Bytes),
    /// The body ended cleanly. A channel that closes without this means the client
    /// went away mid-body, and the upstream must not see a complete request.
    End,
}

/// Why the request body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("client request body failed: {0}")]
    Downstream(#[source] hyper::Error),
    #[error("the client went away before its request body ended")]
    ClientGone,
}

/// The downstream request body, passed through frame by frame (never buffered whole),
/// counting the bytes for the `istio_request_bytes` histogram.
#[derive(Debug)]
pub struct RequestBody {
    inner: Inner,
    counted: Option<Arc<AtomicU64>>,
}

#[derive(Debug)]
enum Inner {
    Empty,
    Hyper(Incoming),
    Channel {
        rx: mpsc::Receiver<BodyChunk>,
        ended: bool,
    },
}

impl RequestBody {
    /// `counted` receives the number of body bytes sent so far.
    pub fn new(inner: Incoming, counted: Option<Arc<AtomicU64>>) -> Self {
        RequestBody {
            inner: Inner::Hyper(inner),
            counted,
        }
    }

    /// A body fed through a channel (the sender counts the bytes).
    pub fn channel(rx: mpsc::Receiver<BodyChunk>) -> Self {
        RequestBody {
            inner: Inner::Channel { rx, ended: false },
            counted: None,
        }
    }

    pub fn empty() -> Self {
        RequestBody {
            inner: Inner::Empty,
            counted: None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = &mut *self;
        match &mut this.inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Hyper(inner) => {
                let polled = Pin::new(inner).poll_frame(cx);
                if let (Poll::Ready(Some(Ok(frame))), Some(counted)) = (&polled, &this.counted)
                    && let Some(data) = frame.data_ref()
                {
                    counted.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                polled.map(|f| f.map(|r| r.map_err(RequestBodyError::Downstream)))
            }
            Inner::Channel { ended: true, .. } => Poll::Ready(None),
            Inner::Channel { rx, ended } => match rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(BodyChunk::Data(data))) => {
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Poll::Ready(Some(BodyChunk::End)) => {
                    *ended = true;
                    Poll::Ready(None)
                }
                Poll::Ready(None) => Poll::Ready(Some(Err(RequestBodyError::ClientGone))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Hyper(inner) => inner.is_end_stream(),
            Inner::Channel { ended, .. } => *ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Hyper(inner) => inner.size_hint(),
            Inner::Channel { .. } => SizeHint::default(),
        }
    }
}
