//! Per-worker connection pools and the send path to one endpoint.
//!
//! HTTP/1.1: a LIFO stack of idle keep-alive connections per worker; a connection goes
//! back on the stack only after its response body was read to the end, so a half-read
//! connection is never reused. HTTP/2: one shared multiplexed connection per worker.
//! Each worker only touches its own slot, so the mutexes are never contended; they are
//! there so that a stray use from another thread stays correct.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::ReadBuf;

use super::connect::UpstreamIo;
use super::{ConnectError, Endpoint, RequestBody};
use crate::config::Protocol;
use crate::runtime::worker_id;

/// Idle HTTP/1.1 connections older than this are closed rather than reused: upstream
/// servers close idle keep-alive connections on their own timers, and reusing one at
/// that moment fails the request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per worker and endpoint; more are closed.
const MAX_IDLE: usize = 512;

#[derive(Debug)]
pub(super) struct Pool {
    slots: Box<[Mutex<Slot>]>,
    /// One per slot: held while a slot's HTTP/2 connection is being opened, so that a
    /// burst of requests opens one connection instead of one each.
    h2_connecting: Box<[tokio::sync::Mutex<()>]>,
}

#[derive(Debug, Default)]
struct Slot {
    idle: Vec<Idle>,
    /// Idle connections of weir's own HTTP/1.1 path, oldest first.
    raw: Vec<RawIdle>,
    h2: Option<http2::SendRequest<RequestBody>>,
    /// HTTP/2 connection attempts finished so far, and whether the last one failed.
    h2_attempts: u64,
    h2_failed: bool,
    /// The attempt that opened `h2`: a lease remembers it, so that a connection seen
    /// going away is retired only if it is still the slot's current one.
    h2_generation: u64,
}

#[derive(Debug)]
struct Idle {
    tx: http1::SendRequest<RequestBody>,
    since: Instant,
}

impl Pool {
    /// One slot per worker, plus one shared by threads that are not workers.
    pub(super) fn new(workers: usize) -> Self {
        Pool {
            slots: (0..=workers).map(|_| Mutex::default()).collect(),
            h2_connecting: (0..=workers).map(|_| Default::default()).collect(),
        }
    }

    fn slot_index(&self) -> usize {
        let last = self.slots.len() - 1;
        worker_id().map_or(last, |w| w.min(last))
    }

    fn slot(&self, index: usize) -> MutexGuard<'_, Slot> {
        self.slots[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes idle raw connections past the idle timeout or closed by the upstream, so
    /// a pool nobody draws from does not hold sockets in CLOSE_WAIT.
    pub(super) fn sweep(&self) {
        for index in 0..self.slots.len() {
            let mut slot = self.slot(index);
            slot.raw
                .retain(|idle| idle.since.elapsed() < IDLE_TIMEOUT && idle.conn.still_open());
        }
    }

    fn take_idle(&self, index: usize) -> Option<http1::SendRequest<RequestBody>> {
        let mut slot = self.slot(index);
        while let Some(idle) = slot.idle.pop() {
            if !idle.tx.is_closed() && idle.since.elapsed() < IDLE_TIMEOUT {
                return Some(idle.tx);
            }
        }
        None
    }
}

#[derive(Debug)]
struct RawIdle {
    conn: RawConn,
    since: Instant,
}

/// An HTTP/1.1 connection of weir's own HTTP/1.1 path: the socket itself, read and
/// written by the client connection's task, with no driver task or channel between.
#[derive(Debug)]
pub struct RawConn {
    pub io: UpstreamIo,
    reused: bool,
    _guard: ConnGuard,
}

impl RawConn {
    /// True when the connection came from the idle pool: the upstream may have closed
    /// it at the very moment it was taken, so a request that fails on it before any
    /// answer may be tried again on another connection.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Whether an idle connection can carry another request: nothing arrived on it
    /// since it went idle (no close, no stray bytes). This costs no system call unless
    /// the socket became readable, because tokio tracks readiness.
    fn still_open(&self) -> bool {
        let (tcp, tls) = match &self.io {
            UpstreamIo::Plain(s) => (s, false),
            UpstreamIo::Tls(s) => (s.get_ref().0, true),
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        match tcp.poll_peek(&mut cx, &mut buf) {
            Poll::Pending => true,
            // TLS 1.3 servers send session tickets after the handshake; rustls reads
            // them with the next response.
            Poll::Ready(Ok(n)) => n > 0 && tls,
            Poll::Ready(Err(_)) => false,
        }
    }
}

impl Endpoint {
    /// A connection for weir's own HTTP/1.1 path: the newest idle one that is still
    /// open, else a new one. `fresh` skips the pool (upgrades, and retries after a
    /// pooled connection failed).
    pub async fn checkout_raw(&self, fresh: bool) -> Result<RawConn, ConnectError> {
        if !fresh {
            let index = self.pool.slot_index();
            loop {
                let idle = self.pool.slot(index).raw.pop();
                match idle {
                    Some(idle) if idle.since.elapsed() < IDLE_TIMEOUT && idle.conn.still_open() => {
                        let mut conn = idle.conn;
                        conn.reused = true;
                        return Ok(conn);
                    }
                    Some(_) => continue,
                    None => break,
                }
            }
        }
        // Boxed: connecting (a TLS handshake included) is a large future, and inline it
        // would make every request's future that large, moved on every spawn.
        let io = Box::pin(self.connect()).await?;
        Ok(RawConn {
            io,
            reused: false,
            _guard: ConnGuard::new(&self.stats),
        })
    }

    /// Gives a connection back after a complete exchange. The oldest idle ones are
    /// closed once past the idle timeout, so a burst's connections do not linger.
    pub fn release_raw(&self, conn: RawConn) {
        let now = Instant::now();
        let mut slot = self.pool.slot(self.pool.slot_index());
        let stale = slot
            .raw
            .iter()
            .take_while(|idle| now.duration_since(idle.since) >= IDLE_TIMEOUT)
            .count();
        slot.raw.drain(..stale);
        if slot.raw.len() < MAX_IDLE {
            slot.raw.push(RawIdle { conn, since: now });
        }
    }
}

/// Why a leased connection could not carry a request.
#[derive(Debug)]
pub enum SendError {
    /// The pooled connection turned out closed before the request went out: the
    /// request comes back unsent and may be retried on another connection.
    Unsent(Box<Request<RequestBody>>),
    /// The HTTP/2 upstream refused the stream without processing it (a GOAWAY that
    /// left it out, or REFUSED_STREAM; RFC 9113 section 8.7): the request may be sent
    /// again, and the connection was retired from the pool.
    Refused(hyper::Error),
    /// The connection failed after the request was (maybe partly) sent.
    Reset(hyper::Error),
}

impl SendError {
    /// The downstream body failed while it was streamed upstream: the client went away.
    pub fn is_downstream(&self) -> bool {
        matches!(self, SendError::Reset(source) if source.is_user())
    }
}

/// A connection to one endpoint, lent to one request.
#[derive(Debug)]
pub struct Lease {
    endpoint: Arc<Endpoint>,
    conn: LeasedConn,
    /// True when the connection came from the idle pool rather than a fresh connect.
    reused: bool,
}

#[derive(Debug)]
enum LeasedConn {
    Http1 {
        tx: http1::SendRequest<RequestBody>,
        slot: usize,
    },
    Http2 {
        tx: http2::SendRequest<RequestBody>,
        slot: usize,
        generation: u64,
    },
}

impl Lease {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Sends the request. For HTTP/1.1 the connection comes back as a [`ConnReturn`]
    /// for the caller to release when the response body is done.
    pub async fn send(
        self,
        req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Option<ConnReturn>), SendError> {
        let Lease {
            endpoint,
            conn,
            reused,
        } = self;
        let unsent = |mut err: hyper::client::conn::TrySendError<Request<RequestBody>>| match err
            .take_message()
        {
            // A fresh connection that cannot take a request will not do better on retry.
            Some(req) if reused => SendError::Unsent(Box::new(req)),
            _ => SendError::Reset(err.into_error()),
        };
        match conn {
            LeasedConn::Http1 { mut tx, slot } => match tx.try_send_request(req).await {
                Ok(resp) => Ok((resp, Some(ConnReturn { endpoint, slot, tx }))),
                Err(err) => Err(unsent(err)),
            },
            LeasedConn::Http2 {
                mut tx,
                slot,
                generation,
            } => match tx.try_send_request(req).await {
                Ok(resp) => Ok((resp, None)),
                Err(err) => match unsent(err) {
                    SendError::Reset(source) if refused_unprocessed(&source) => {
                        // Going away: new requests must not be given to it.
                        endpoint.retire_h2(slot, generation);
                        Err(SendError::Refused(source))
                    }
                    other => Err(other),
                },
            },
        }
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

/// A pooled HTTP/1.1 connection lent to one exchange; [`ConnReturn::release`] puts it
/// back once the response was read to the end. Dropping it closes the connection.
#[derive(Debug)]
pub struct ConnReturn {
    endpoint: Arc<Endpoint>,
    slot: usize,
    tx: http1::SendRequest<RequestBody>,
}

impl ConnReturn {
    pub fn release(self) {
        let mut slot = self.endpoint.pool.slot(self.slot);
        if slot.idle.len() < MAX_IDLE {
            slot.idle.push(Idle {
                tx: self.tx,
                since: Instant::now(),
            });
        }
    }
}

/// Counts a live upstream connection for as long as its driver task runs.
#[derive(Debug)]
struct ConnGuard(Arc<crate::telemetry::DestinationStats>);

impl ConnGuard {
    fn new(stats: &Arc<crate::telemetry::DestinationStats>) -> Self {
        stats.upstream_connection_opened();
        ConnGuard(stats.clone())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.upstream_connection_closed();
    }
}

impl Endpoint {
    /// A connection for one request: an idle pooled one when there is one, else a new
    /// one. `upgrade` asks for a connection of its own that may become a tunnel (an
    /// HTTP/1.1 Upgrade such as WebSocket); it is never pooled.
    pub async fn checkout(self: &Arc<Self>, upgrade: bool) -> Result<Lease, ConnectError> {
        let slot = self.pool.slot_index();
        let lease = |conn, reused| Lease {
            endpoint: self.clone(),
            conn,
            reused,
        };
        match self.protocol {
            Protocol::Http1 if !upgrade => {
                while let Some(mut tx) = self.pool.take_idle(slot) {
                    // Waits for the previous response's end to be processed; fails if
                    // the connection closed meanwhile, and then the next one is tried.
                    if tx.ready().await.is_ok() {
                        return Ok(lease(LeasedConn::Http1 { tx, slot }, true));
                    }
                }
                let tx = self.connect_h1(false).await?;
                Ok(lease(LeasedConn::Http1 { tx, slot }, false))
            }
            Protocol::Http1 => {
                let tx = self.connect_h1(true).await?;
                Ok(lease(LeasedConn::Http1 { tx, slot }, false))
            }
            Protocol::Http2 => {
                let (tx, generation, reused) = self.h2_sender(slot).await?;
                Ok(lease(
                    LeasedConn::Http2 {
                        tx,
                        slot,
                        generation,
                    },
                    reused,
                ))
            }
        }
    }

    async fn connect_h1(
        &self,
        upgrades: bool,
    ) -> Result<http1::SendRequest<RequestBody>, ConnectError> {
        let stream = self.connect().await?;
        let (tx, conn) = http1::Builder::new()
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
            let result = if upgrades {
                conn.with_upgrades().await
            } else {
                conn.await
            };
            if let Err(error) = result {
                tracing::debug!(%endpoint, %error, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    /// The worker's HTTP/2 connection to this endpoint, opened on first use or when the
    /// previous one closed or went away, with its generation. The flag says whether it
    /// was already open.
    async fn h2_sender(
        &self,
        slot: usize,
    ) -> Result<(http2::SendRequest<RequestBody>, u64, bool), ConnectError> {
        let open = |s: &Slot| {
            s.h2.as_ref()
                .filter(|tx| !tx.is_closed())
                .map(|tx| (tx.clone(), s.h2_generation, true))
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
        let opened = self.open_h2().await;
        let mut s = self.pool.slot(slot);
        s.h2_attempts += 1;
        s.h2_failed = opened.is_err();
        let tx = opened?;
        s.h2 = Some(tx.clone());
        s.h2_generation = s.h2_attempts;
        Ok((tx, s.h2_generation, false))
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
