//! Opening connections to endpoints: TCP, then TLS when the destination asks for it.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

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
    #[error("TLS handshake with {endpoint} failed: {source}")]
    Tls {
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

/// A connection to an upstream, plaintext or TLS. One type for both, so the pool and
/// hyper's connection types stay the same whatever the destination speaks.
#[derive(Debug)]
pub enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Endpoint {
    /// A new connection to this endpoint: TCP, then the TLS handshake when configured,
    /// both within the connect timeout.
    pub(super) async fn connect(&self) -> Result<UpstreamIo, ConnectError> {
        let Some((tls, server_name)) = &self.tls else {
            return self.connect_tcp().await.map(UpstreamIo::Plain);
        };
        let start = tokio::time::Instant::now();
        let tcp = self.connect_tcp().await?;
        let handshake = tls.connect(server_name.clone(), tcp);
        let timeout = self.connect_timeout.saturating_sub(start.elapsed());
        match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(stream)) => Ok(UpstreamIo::Tls(Box::new(stream))),
            Ok(Err(source)) => Err(ConnectError::Tls {
                endpoint: self.label.to_string(),
                source,
            }),
            Err(_) => Err(ConnectError::Timeout {
                endpoint: self.label.to_string(),
                timeout_ms: self.connect_timeout.as_millis(),
            }),
        }
    }

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

// Both variants are `Unpin`, so each call just forwards to the inner stream.
impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
