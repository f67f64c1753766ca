//! The request body weir sends upstream: the client's body, streamed, and counted.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The downstream request body, passed through frame by frame (never buffered whole),
/// counting the bytes for the `istio_request_bytes` histogram.
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    counted: Option<Arc<AtomicU64>>,
}

impl RequestBody {
    /// `counted` receives the number of body bytes sent so far.
    pub fn new(inner: Incoming, counted: Option<Arc<AtomicU64>>) -> Self {
        RequestBody {
            inner: Some(inner),
            counted,
        }
    }

    pub fn empty() -> Self {
        RequestBody {
            inner: None,
            counted: None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(counted)) = (&polled, &this.counted)
            && let Some(data) = frame.data_ref()
        {
            counted.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
