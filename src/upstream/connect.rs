//! Opening TCP connections to endpoints.

use std::net::IpAddr;

use tokio::net::TcpStream;

use super::Endpoint;

/// Why a connection to an endpoint could not be opened. Each of these means the request
/// was never sent, so it is safe to try another endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {endpoint} timed out after {timeout_ms} ms")]
    Timeout { endpoint: String, timeout_ms: u128 },
    #[error("connect to {endpoint} failed: {source}")]
    Io {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP/2 handshake with {endpoint} failed: {source}")]
    Handshake {
        endpoint: String,
        #[source]
        source: hyper::Error,
    },
}

impl Endpoint {
    /// Opens a TCP connection with `TCP_NODELAY` (requests are small and latency-bound).
    pub(super) async fn connect_tcp(&self) -> Result<TcpStream, ConnectError> {
        let connect = async {
            match self.addr.host.parse::<IpAddr>() {
                Ok(ip) => TcpStream::connect((ip, self.addr.port)).await,
                // A DNS name: tokio resolves it off the runtime thread.
                Err(_) => TcpStream::connect((self.addr.host.as_str(), self.addr.port)).await,
            }
        };
        let stream = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| ConnectError::Timeout {
                endpoint: self.label.to_string(),
                timeout_ms: self.connect_timeout.as_millis(),
            })?
            .map_err(|source| ConnectError::Io {
                endpoint: self.label.to_string(),
                source,
            })?;
        // Best effort: a socket that refuses NODELAY still works, only slower.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}
