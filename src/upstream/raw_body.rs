//! An HTTP/1.1 upstream's response body as hyper's `Body`, for clients served by hyper
//! (HTTP/2): its data frame by frame as it arrives, then its trailer fields.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::h1::{Buffered, RawResponse};

/// See the module doc.
#[derive(Debug)]
pub struct RawBody {
    inner: RawResponse,
    /// A failure held back for one turn of the scheduler (see `poll_frame`).
    failed: Option<io::Error>,
    ended: bool,
}

impl RawBody {
    pub fn new(inner: RawResponse) -> Self {
        RawBody {
            inner,
            failed: None,
            ended: false,
        }
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
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            let read = match this.inner.buffered() {
                Ok(Buffered::Data(n)) => {
                    let frame = Frame::data(Bytes::copy_from_slice(this.inner.data(n)));
                    this.inner.advance(n);
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(Buffered::End) => {
                    this.ended = true;
                    let trailers = this.inner.take_trailers();
                    return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t.into_map()))));
                }
                Ok(Buffered::Empty) => this.inner.poll_read(cx),
                Err(error) => Poll::Ready(Err(error)),
            };
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    // Reported one scheduler turn late: hyper's HTTP/2 server resets
                    // the stream on a body error, and a reset discards the stream's
                    // frames not yet written; when the upstream fails right behind the
                    // data it sent, yielding first lets the response head and that
                    // data reach the client, which then sees a cut body rather than a
                    // stream that never answered.
                    this.failed = Some(error);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || (self.inner.is_end() && self.failed.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        match self.inner.remaining() {
            Some(left) => SizeHint::with_exact(left),
            None => SizeHint::default(),
        }
    }
}
