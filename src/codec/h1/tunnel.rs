//! HTTP/1.1 Upgrade (WebSocket) pass-through: after the upstream's 101, the response
//! head and whatever either side sent early, then bytes both ways until either side
//! closes.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::conn::{ClientConn, Next};
use crate::telemetry::{RequestRecord, ResponseFlag};
use crate::upstream::RawResponse;

impl<I: AsyncRead + AsyncWrite + Unpin> ClientConn<I> {
    /// Runs the tunnel in the connection's task. The record is counted when the tunnel
    /// closes, so its duration is the session's and its byte counts what crossed it.
    pub(super) async fn tunnel(
        &mut self,
        upstream: RawResponse,
        mut record: RequestRecord,
    ) -> Next {
        let Some(mut conn) = upstream.into_conn() else {
            record.set_flag(ResponseFlag::UpstreamConnectionTermination);
            return Next::Close;
        };
        let early_down = conn.buf.len();
        self.wbuf.extend_from_slice(conn.buf.filled());
        conn.buf.clear();
        if self.io.write_all(&self.wbuf).await.is_err() {
            record.set_flag(ResponseFlag::DownstreamConnectionTermination);
            return Next::Close;
        }
        let early_up = self.rbuf.len();
        if conn.io.write_all(self.rbuf.filled()).await.is_err() {
            record.set_flag(ResponseFlag::UpstreamConnectionTermination);
            return Next::Close;
        }
        self.rbuf.clear();
        record.add_response_bytes(early_down as u64);
        record.add_request_bytes(early_up as u64);
        match tokio::io::copy_bidirectional(&mut self.io, &mut conn.io).await {
            Ok((to_upstream, to_downstream)) => {
                record.add_request_bytes(to_upstream);
                record.add_response_bytes(to_downstream);
            }
            Err(error) => tracing::debug!(%error, "upgraded connection ended with an error"),
        }
        Next::Close
    }
}
