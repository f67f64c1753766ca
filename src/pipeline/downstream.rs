//! What the client connection tells the request path: who the client is, how it
//! connected (TLS, mutual TLS, HTTP/2), and what that adds to forwarded headers.

use std::net::SocketAddr;

use http::HeaderValue;

use crate::config::Limits;
use crate::headers::Forwarding;
use crate::telemetry::SecurityPolicy;
use crate::tls::TlsInfo;

/// One client connection, as its requests see it.
#[derive(Debug, Clone)]
pub struct Downstream {
    pub peer: SocketAddr,
    pub forwarding: Forwarding,
    /// What the TLS handshake said; `None` for plaintext.
    pub tls: Option<TlsInfo>,
    /// Istio's `connection_security_policy`: `mutual_tls` when the client presented a
    /// verified certificate.
    pub security: SecurityPolicy,
    /// The timeouts its requests live by.
    pub limits: Limits,
}

impl Downstream {
    pub fn new(peer: SocketAddr, tls: Option<TlsInfo>, limits: Limits) -> Self {
        let client_ip = HeaderValue::from_str(&peer.ip().to_string())
            .expect("an IP address is a valid header value");
        let security = match &tls {
            Some(info) if info.client_verified => SecurityPolicy::MutualTls,
            _ => SecurityPolicy::None,
        };
        Downstream {
            peer,
            forwarding: Forwarding {
                client_ip,
                proto: HeaderValue::from_static(if tls.is_some() { "https" } else { "http" }),
            },
            tls,
            security,
            limits,
        }
    }

    /// `TLSv1.3`, `TLSv1.2`, or `-` for plaintext, for the access log.
    pub fn tls_version(&self) -> &'static str {
        self.tls.as_ref().map_or("-", |t| t.version)
    }
}
