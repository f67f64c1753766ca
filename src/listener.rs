//! The data-plane listener: accepts client connections on a worker, tells HTTP/2
//! (prior knowledge) from HTTP/1.1 by the first bytes, serves them, and drains them on
//! shutdown.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::proxy::{self, Downstream};
use crate::state::Shared;

/// The HTTP/2 connection preface a prior-knowledge (h2c) client sends first.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long an HTTP/1.1 connection may go on carrying requests after a drain begins.
/// Each of its responses says `Connection: close`, so a busy client moves away on its
/// own; only after this grace are idle connections closed. Closing an idle keep-alive
/// connection at once races with a request the client is sending on it right then.
const H1_DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Timing settings of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerSettings {
    /// How long a client connection may sit idle between HTTP/1.1 requests (and how
    /// long a request's headers may take to arrive).
    pub idle_timeout: Duration,
    /// How long in-flight requests get to finish once a drain began.
    pub drain_timeout: Duration,
}

/// Tells workers and connections that shutdown began.
#[derive(Debug, Clone)]
pub struct DrainSignal(watch::Receiver<bool>);

impl DrainSignal {
    pub fn new() -> (watch::Sender<bool>, DrainSignal) {
        let (tx, rx) = watch::channel(false);
        (tx, DrainSignal(rx))
    }

    /// Resolves once the drain began (or its sender is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}

/// The connections open on one worker, so its drain can wait for them.
#[derive(Debug, Default)]
struct LiveConnections {
    count: AtomicUsize,
    none_left: Notify,
}

struct LiveGuard(Arc<LiveConnections>, Arc<Shared>);

impl LiveConnections {
    fn enter(self: &Arc<Self>, shared: &Arc<Shared>) -> LiveGuard {
        self.count.fetch_add(1, Ordering::Relaxed);
        shared.stats.connection_opened();
        LiveGuard(self.clone(), shared.clone())
    }

    async fn all_closed(&self) {
        loop {
            let notified = self.none_left.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.1.stats.connection_closed();
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

/// Accepts and serves connections on this worker until the drain, then waits (at most
/// the drain timeout) for its connections to finish.
pub async fn run(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    drain: DrainSignal,
    settings: ListenerSettings,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(error) => {
            tracing::error!(%error, "worker cannot use the listening socket");
            return;
        }
    };
    let live = Arc::new(LiveConnections::default());
    let mut draining = drain.clone();
    loop {
        tokio::select! {
            biased;
            () = draining.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let guard = live.enter(&shared);
                    tokio::spawn(connection(stream, peer, shared.clone(), drain.clone(), settings, guard));
                }
                Err(error) => {
                    // Out of file descriptors or memory: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(settings.drain_timeout, live.all_closed())
        .await
        .is_err()
    {
        tracing::warn!(
            open = live.count.load(Ordering::Relaxed),
            "drain timeout reached; closing the remaining connections"
        );
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut drain: DrainSignal,
    settings: ListenerSettings,
    _live: LiveGuard,
) {
    let _ = stream.set_nodelay(true);
    let http2 = match tokio::time::timeout(settings.idle_timeout, sniff_h2(&stream)).await {
        Ok(Ok(http2)) => http2,
        Ok(Err(_)) | Err(_) => return,
    };
    let downstream = Arc::new(Downstream::new(peer, false, http2));
    let service = service_fn(move |req| proxy::serve(shared.clone(), downstream.clone(), req));
    let io = TokioIo::new(stream);
    let result = if http2 {
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(1024)
            .serve_connection(io, service);
        let mut conn = pin!(conn);
        tokio::select! {
            result = conn.as_mut() => result,
            () = drain.wait() => {
                // GOAWAY: the client finishes open streams and opens no new ones.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    } else {
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.idle_timeout)
            .serve_connection(io, service)
            .with_upgrades();
        let mut conn = pin!(conn);
        tokio::select! {
            result = conn.as_mut() => result,
            () = drain.wait() => {
                let grace = H1_DRAIN_GRACE.min(settings.drain_timeout / 2);
                tokio::select! {
                    result = conn.as_mut() => result,
                    () = tokio::time::sleep(grace) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "client connection ended with an error");
    }
}

/// Peeks at the first bytes: the HTTP/2 preface means h2c with prior knowledge.
pub(crate) async fn sniff_h2(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 || buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // Part of the preface so far; peeking again at once would only see the same
        // bytes, so give the rest a moment to arrive.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
