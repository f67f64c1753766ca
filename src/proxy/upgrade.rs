//! HTTP/1.1 Upgrade (WebSocket) pass-through: after both sides switched protocols,
//! bytes are copied both ways until either side closes.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::Exchange;

/// Spawns the tunnel. The exchange is recorded when the tunnel closes, so its duration
/// is the session's and its byte counts are what crossed it.
pub fn tunnel(downstream: OnUpgrade, upstream: OnUpgrade, mut exchange: Exchange) {
    tokio::spawn(async move {
        let (down, up) = match tokio::try_join!(downstream, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%error, "upgrade did not complete");
                return;
            }
        };
        let mut down = TokioIo::new(down);
        let mut up = TokioIo::new(up);
        match tokio::io::copy_bidirectional(&mut down, &mut up).await {
            Ok((to_upstream, to_downstream)) => {
                exchange.set_request_counter(Arc::new(AtomicU64::new(to_upstream)));
                exchange.add_response_bytes(to_downstream);
            }
            Err(error) => tracing::debug!(%error, "upgraded connection ended with an error"),
        }
    });
}
