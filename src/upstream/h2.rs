//! HTTP/2 to upstreams, with hyper's client: one multiplexed connection per worker and
//! endpoint, opened on first use and again after it closed or went away.

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::pool::Slot;
use super::{ConnGuard, ConnectError, Endpoint, Failure, RequestBody};

/// The worker's HTTP/2 connection to an endpoint, lent to one request.
#[derive(Debug)]
pub(super) struct H2Sender {
    tx: http2::SendRequest<RequestBody>,
    slot: usize,
    generation: u64,
}

impl Endpoint {
    /// The worker's HTTP/2 connection to this endpoint, opened on first use or when the
    /// previous one closed or went away.
    pub(super) async fn h2_sender(&self) -> Result<H2Sender, ConnectError> {
        let slot = self.pool.slot_index();
        let open = |s: &Slot| {
            s.h2.as_ref()
                .filter(|tx| !tx.is_closed())
                .map(|tx| H2Sender {
                    tx: tx.clone(),
                    slot,
                    generation: s.h2_generation,
                })
        };
        let seen = {
            let s = self.pool.slot(slot);
            if let Some(open) = open(&s) {
                return Ok(open);
            }
            s.h2_attempts
        };
        // One request at a time opens the connection; the others of a burst wait for
        // it rather than each opening (and then dropping) a connection of their own.
        let _connecting = self.pool.h2_connecting[slot].lock().await;
        {
            let s = self.pool.slot(slot);
            if let Some(open) = open(&s) {
                return Ok(open);
            }
            if s.h2_attempts != seen && s.h2_failed {
                // The attempt this request waited for failed: fail with it, instead
                // of each waiter trying in turn, one connect timeout after another.
                return Err(ConnectError::Io {
                    endpoint: self.label.to_string(),
                    source: std::io::Error::other(
                        "the HTTP/2 connection this request waited for could not be opened",
                    ),
                });
            }
        }
        // Boxed: opening a connection (a TLS handshake included) is a large future, and
        // inline it would make every request's future that large.
        let opened = Box::pin(self.open_h2()).await;
        let mut s = self.pool.slot(slot);
        s.h2_attempts += 1;
        s.h2_failed = opened.is_err();
        let tx = opened?;
        s.h2 = Some(tx.clone());
        s.h2_generation = s.h2_attempts;
        Ok(H2Sender {
            tx,
            slot,
            generation: s.h2_generation,
        })
    }

    /// Sends one request. A stream the upstream refused unprocessed retires the
    /// connection from the pool (it is going away) and fails as [`Failure::Refused`].
    pub(super) async fn send_h2(
        &self,
        mut sender: H2Sender,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, Failure> {
        let mut failed = match sender.tx.try_send_request(req).await {
            Ok(resp) => return Ok(resp),
            Err(failed) => failed,
        };
        // The connection closed before the request went out: it was not processed.
        let unsent = failed.take_message().is_some();
        let error = failed.into_error();
        if unsent || refused_unprocessed(&error) {
            self.retire_h2(sender.slot, sender.generation);
            return Err(Failure::Refused(error.to_string()));
        }
        if error.is_user() {
            // The request body failed: the client went away mid-body.
            return Err(Failure::ClientGone);
        }
        Err(Failure::Upstream(error.to_string()))
    }

    /// Stops handing out the slot's HTTP/2 connection of `generation` (it is going
    /// away); the next request opens a new one while this one finishes its streams.
    fn retire_h2(&self, slot: usize, generation: u64) {
        let mut s = self.pool.slot(slot);
        if s.h2_generation == generation {
            s.h2 = None;
        }
    }

    /// Opens a new HTTP/2 connection and starts its driver task.
    async fn open_h2(&self) -> Result<http2::SendRequest<RequestBody>, ConnectError> {
        let stream = self.connect().await?;
        self.health.connected();
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake {
                endpoint: self.label.to_string(),
                source,
            })?;
        let guard = ConnGuard::new(&self.stats);
        let endpoint = self.label.clone();
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(error) = conn.await {
                tracing::debug!(%endpoint, %error, "upstream HTTP/2 connection ended with an error");
            }
        });
        Ok(tx)
    }
}

/// Whether an HTTP/2 request failed because the upstream refused its stream before
/// processing it: a GOAWAY whose last stream id left it out (h2 reports those as a
/// remote GOAWAY on the stream), or a REFUSED_STREAM reset.
fn refused_unprocessed(error: &hyper::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<h2::Error>())
        .is_some_and(|h2| {
            (h2.is_go_away() && h2.is_remote()) || h2.reason() == Some(h2::Reason::REFUSED_STREAM)
        })
}
