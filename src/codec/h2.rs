//! HTTP/2 for clients, with hyper's server: one task per stream, each stream's request
//! handed to the pipeline, the response body streamed back through hyper, the
//! connection's idle timeout, stalls, shedding under pressure, and its drain.

mod body;
mod idle;
mod source;
mod stream;

use std::pin::pin;
use std::sync::Arc;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::pipeline::Downstream;
use crate::runtime::{DrainSignal, ListenerSettings};
use crate::state::Shared;
use crate::upstream::PRESSURE_EVERY;
use idle::{OpenStreams, Shed};

/// How long a shed connection has to send its GOAWAY before it is closed.
const SHED_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Serves HTTP/2 on `io` until the client is done, the connection idles out, or the
/// drain ends it with a GOAWAY.
pub(crate) async fn serve<I>(
    io: I,
    downstream: Arc<Downstream>,
    shared: Arc<Shared>,
    mut drain: DrainSignal,
    settings: ListenerSettings,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = downstream.peer;
    let stall = settings.limits.stream_idle_timeout;
    let streams = OpenStreams::new();
    let open = streams.clone();
    let mut pressure = shared.registry.pressure().subscribe();
    let stats = shared.clone();
    // Boxed: hyper spawns a task per stream and moves the stream's future several times
    // on the way in; a pointer moves for less than the request's future.
    let service = service_fn(move |req| {
        Box::pin(stream::serve(
            shared.clone(),
            downstream.clone(),
            req,
            open.open(),
        ))
    });
    let conn = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.limits.http2_max_concurrent_streams)
        .serve_connection(TokioIo::new(io), service);
    let mut conn = pin!(conn);
    let idle = settings.idle_timeout;
    // The stall sweep, every half stream idle timeout, and the second look under
    // pressure (see `idle`).
    let sweep_every = stall.map(|t| t / 2);
    let mut sweep_at = sweep_every.map(|t| Instant::now() + t);
    let mut look_again_at: Option<Instant> = None;
    let result = loop {
        let idle_at = streams
            .idle_at(idle)
            .unwrap_or_else(|| Instant::now() + idle);
        let recheck = [sweep_at, look_again_at]
            .into_iter()
            .flatten()
            .fold(idle_at, Instant::min);
        let mut shed = false;
        tokio::select! {
            result = conn.as_mut() => break result,
            () = drain.wait() => {
                // GOAWAY: the client finishes open streams and opens no new ones.
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
            Ok(()) = pressure.changed() => {
                pressure.mark_unchanged();
                match streams.look_under_pressure() {
                    Shed::Nothing => {}
                    Shed::LookAgain => {
                        look_again_at.get_or_insert_with(|| Instant::now() + PRESSURE_EVERY);
                    }
                    Shed::Now => shed = true,
                }
            }
            () = tokio::time::sleep_until(recheck) => {
                let now = Instant::now();
                if look_again_at.is_some_and(|at| now >= at) {
                    look_again_at = None;
                    shed = streams.look_under_pressure() == Shed::Now;
                }
                let idle = streams.idle_at(idle).is_some_and(|at| now >= at);
                let mut stalled = false;
                if let (Some(every), Some(at)) = (sweep_every, sweep_at)
                    && now >= at
                {
                    stalled = streams.sweep();
                    sweep_at = Some(now + every);
                }
                if idle || stalled {
                    let why = if idle { "idle" } else { "a stream stalled: nothing moved on it for the stream idle timeout" };
                    tracing::debug!(%peer, why, "HTTP/2 client connection; sending GOAWAY");
                    conn.as_mut().graceful_shutdown();
                    match tokio::time::timeout(settings.drain_timeout, conn.as_mut()).await {
                        Ok(result) => break result,
                        // A client that vanished (or stalls) never answers: close.
                        Err(_) => break Ok(()),
                    }
                }
            }
        }
        if shed {
            // Its streams hold places others are waiting for: GOAWAY, and close
            // once that has had a moment to go out.
            stats.stats.connection_shed();
            tracing::debug!(%peer, "HTTP/2 client connection shed: its streams wait on its window while a destination is full");
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHED_GRACE, conn.as_mut()).await;
            break Ok(());
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "client connection ended with an error");
    }
}
