//! The data-plane listener: accepts client connections on a worker (up to the global
//! connection limit), tells TLS from plaintext and HTTP/2 (prior knowledge) from
//! HTTP/1.1 by the first bytes, serves them, and drains them on shutdown.

mod detect;

pub(crate) use detect::{Detected, Prefixed, detect};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::codec;
use crate::pipeline::Downstream;
use crate::runtime::{DrainSignal, ListenerSettings};
use crate::state::Shared;
use crate::tls::server::Acceptor;
use crate::tls::{ServerTls, TlsInfo, TlsMode};

/// The longest a client may take over its TLS handshake (first byte included), unless
/// `request_header_timeout` is shorter: a handshake costs CPU and memory, so a client that opens
/// connections and stalls must not hold them.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake message (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

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
    tls: Option<Arc<ServerTls>>,
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
                    // At the limit, the connection is closed at once: file descriptors
                    // stay in reserve (accept never fails for want of one) and the admin
                    // port stays reachable (Envoy's overload manager does the same).
                    if shared.stats.downstream_active() >= settings.max_connections as i64 {
                        shared.stats.connection_overflowed();
                        drop(stream);
                        continue;
                    }
                    let guard = live.enter(&shared);
                    let conn = Conn { peer, shared: shared.clone(), drain: drain.clone(), settings, _live: guard };
                    match &tls {
                        None => tokio::spawn(plaintext(stream, conn)),
                        Some(tls) => tokio::spawn(maybe_tls(stream, tls.acceptor(), conn)),
                    };
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

/// What serving one accepted connection needs.
struct Conn {
    peer: SocketAddr,
    shared: Arc<Shared>,
    drain: DrainSignal,
    settings: ListenerSettings,
    _live: LiveGuard,
}

/// A plaintext connection: HTTP/2 with prior knowledge or HTTP/1.1, told apart by its
/// first bytes within the request-header timeout.
async fn plaintext(mut stream: TcpStream, conn: Conn) {
    let _ = stream.set_nodelay(true);
    let (idle, header) = (
        conn.settings.idle_timeout,
        conn.settings.limits.request_header_timeout,
    );
    let Ok(detected) = detect::detect(&mut stream, idle, header).await else {
        return;
    };
    let Conn {
        peer,
        shared,
        drain,
        settings,
        _live,
    } = conn;
    match detected {
        Detected::Closed => {}
        Detected::BadPreface => {
            tracing::debug!(%peer, "invalid HTTP/2 connection preface; GOAWAY");
            detect::refuse(&mut stream).await;
        }
        Detected::Http1(prefix, first_byte) => {
            let downstream = Arc::new(Downstream::new(peer, None, settings.limits));
            let prefix = (&prefix[..], first_byte);
            codec::h1::serve(stream, prefix, downstream, shared, drain, settings).await;
        }
        Detected::Http2(prefix) => {
            let downstream = Arc::new(Downstream::new(peer, None, settings.limits));
            let io = Prefixed::new(prefix, stream);
            codec::h2::serve(io, downstream, shared, drain, settings).await;
        }
    }
}

/// A connection on a TLS listener: TLS, or plaintext in permissive mode. The acceptor
/// was read when the connection was accepted, so a certificate reload reaches only
/// connections accepted after it.
async fn maybe_tls(stream: TcpStream, tls: Acceptor, conn: Conn) {
    let _ = stream.set_nodelay(true);
    let peer = conn.peer;
    let limit = conn
        .settings
        .limits
        .request_header_timeout
        .min(TLS_HANDSHAKE_TIMEOUT);
    let deadline = tokio::time::Instant::now() + limit;
    let is_tls = match tokio::time::timeout_at(deadline, starts_with_tls(&stream)).await {
        Ok(Ok(is_tls)) => is_tls,
        Ok(Err(_)) | Err(_) => return,
    };
    if !is_tls {
        if tls.mode == TlsMode::Permissive {
            return plaintext(stream, conn).await;
        }
        tracing::debug!(%peer, "plaintext client on a TLS-only listener; closing");
        return;
    }
    let stream = match tokio::time::timeout_at(deadline, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            // A client without a valid certificate in strict mode ends here.
            tracing::debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let info = TlsInfo::of(stream.get_ref().1);
    let http2 = info.h2;
    let downstream = Arc::new(Downstream::new(peer, Some(info), conn.settings.limits));
    let Conn {
        shared,
        drain,
        settings,
        _live,
        ..
    } = conn;
    if http2 {
        codec::h2::serve(stream, downstream, shared, drain, settings).await;
    } else {
        let prefix = (&[][..], tokio::time::Instant::now());
        codec::h1::serve(stream, prefix, downstream, shared, drain, settings).await;
    }
}

/// Peeks at the first byte: a TLS handshake record means a ClientHello. An HTTP/1.1
/// request starts with a method's letter and an HTTP/2 preface with `P`.
async fn starts_with_tls(stream: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(first[0] == TLS_HANDSHAKE_RECORD)
}
