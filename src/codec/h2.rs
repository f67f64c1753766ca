//! HTTP/2 for clients, with hyper's server: one task per stream, each stream's request
//! handed to the pipeline, the response body streamed back through hyper, the
//! connection's idle timeout and its drain.

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
use idle::OpenStreams;

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
    let streams = OpenStreams::new();
    let open = streams.clone();
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
    // The stall check: the activity count seen at the last check, and the next check.
    let stall = settings.limits.stream_idle_timeout;
    let mut seen = None;
    let mut check_at = stall.map(|t| Instant::now() + t);
    let result = loop {
        let idle_at = streams
            .idle_at(idle)
            .unwrap_or_else(|| Instant::now() + idle);
        let recheck = check_at.map_or(idle_at, |at| at.min(idle_at));
        tokio::select! {
            result = conn.as_mut() => break result,
            () = drain.wait() => {
                // GOAWAY: the client finishes open streams and opens no new ones.
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
            () = tokio::time::sleep_until(recheck) => {
                let now = Instant::now();
                let idle = streams.idle_at(idle).is_some_and(|at| now >= at);
                let mut stalled = false;
                if let (Some(timeout), Some(at)) = (stall, check_at)
                    && now >= at
                {
                    let activity = streams.activity();
                    stalled = activity.is_some() && activity == seen;
                    seen = activity;
                    check_at = Some(now + timeout);
                }
                if idle || stalled {
                    let why = if idle { "idle" } else { "stalled: no stream moved for the stream idle timeout" };
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
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "client connection ended with an error");
    }
}
