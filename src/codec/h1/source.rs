//! The client's request body as the upstream clients pull it: decoded from the
//! connection's read buffer (length or chunked framing), read from the socket as
//! needed, and counted.

use std::task::{Context, Poll};

use tokio::io::AsyncRead;

use crate::http1::{BodyState, Buffer, MAX_HEAD};
use crate::upstream::{BodySource, Failure, Trailers};

/// The body of the request at the front of a client connection.
pub(super) struct ClientBody<'a, I> {
    io: &'a mut I,
    rbuf: &'a mut Buffer,
    pub state: BodyState,
    empty: bool,
    /// Data bytes at the front of `rbuf` found by the last step, not yet taken.
    pending: usize,
    /// Data bytes taken so far.
    pub sent: u64,
    trailers: Option<Vec<u8>>,
}

impl<'a, I: AsyncRead + Unpin> ClientBody<'a, I> {
    pub(super) fn new(io: &'a mut I, rbuf: &'a mut Buffer, state: BodyState) -> Self {
        ClientBody {
            io,
            rbuf,
            empty: state.is_done(),
            state,
            pending: 0,
            sent: 0,
            trailers: None,
        }
    }
}

impl<I: AsyncRead + Unpin> BodySource for ClientBody<'_, I> {
    fn is_empty(&self) -> bool {
        self.empty
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<&[u8]>, Failure>> {
        loop {
            if self.pending > 0 {
                return Poll::Ready(Ok(Some(&self.rbuf.filled()[..self.pending])));
            }
            if self.state.is_done() {
                return Poll::Ready(Ok(None));
            }
            if !self.rbuf.is_empty() {
                let step = self.state.step(self.rbuf.filled())?;
                self.rbuf.consume(step.skip);
                if step.data > 0 {
                    self.pending = step.data;
                    continue;
                }
                if let Some(trailers) = self.state.settle() {
                    self.trailers = Some(trailers).filter(|t| !t.is_empty());
                    continue;
                }
                if step.skip > 0 {
                    continue;
                }
            }
            match self.rbuf.poll_read_from(cx, self.io, MAX_HEAD) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Err(Failure::ClientGone)),
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.rbuf.consume(n);
        self.pending -= n;
        self.sent += n as u64;
        self.state.advance(n);
        if let Some(trailers) = self.state.settle() {
            self.trailers = Some(trailers).filter(|t| !t.is_empty());
        }
    }

    fn take_trailers(&mut self) -> Option<Trailers> {
        self.trailers.take().map(Trailers::Lines)
    }

    fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Reading here also picks up a pipelined next request, which waits in the
        // buffer; a full buffer stops reading (the client is there).
        while !self.rbuf.is_full(MAX_HEAD) {
            match self.rbuf.poll_read_from(cx, self.io, MAX_HEAD) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Pending
    }
}
