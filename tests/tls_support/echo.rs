//! A test upstream that echoes what it saw, plaintext or TLS.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{Leaf, certs, key, provider};

/// A test upstream that answers 200 and echoes what it saw in `x-seen-*` headers (and
/// closes HTTP/1.1 connections after each response):
/// `x-seen-forwarded-proto`, `x-seen-version` (HTTP version), `x-seen-alpn` and
/// `x-seen-client` (the client certificate's subject, or `-`).
pub struct Echo {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A rustls server config for the echo upstream: `leaf` as its certificate, client
/// certificates required and verified against `client_ca` when given.
pub fn upstream_tls(leaf: &Leaf, client_ca: Option<&str>) -> Arc<rustls::ServerConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(ca) {
                roots.add(cert).expect("CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs(&leaf.cert), key(&leaf.key))
        .expect("server cert");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Starts the echo upstream on 127.0.0.1: HTTP/1.1 in plaintext, or TLS with ALPN.
pub async fn echo(tls: Option<Arc<rustls::ServerConfig>>) -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    let acceptor = tls.map(TlsAcceptor::from);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    None => serve_echo(tcp, false, None, "-".into()).await,
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let session = stream.get_ref().1;
                        let alpn = session
                            .alpn_protocol()
                            .map(|p| String::from_utf8_lossy(p).into_owned());
                        let client = session
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| weir::tls::x509::CertInfo::parse(c).ok())
                            .map_or_else(|| "-".to_owned(), |i| i.subject);
                        let http2 = alpn.as_deref() == Some("h2");
                        serve_echo(stream, http2, alpn, client).await;
                    }
                }
            });
        }
    });
    Echo { addr, task }
}

async fn serve_echo<I>(io: I, http2: bool, alpn: Option<String>, client: String)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let alpn = alpn.unwrap_or_else(|| "-".into());
    let service = service_fn(move |req: Request<Incoming>| {
        let (alpn, client) = (alpn.clone(), client.clone());
        async move {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"echo\n")));
            let h = resp.headers_mut();
            if !http2 {
                // One request per connection, so every request shows the client
                // certificate of a fresh handshake.
                h.insert("connection", HeaderValue::from_static("close"));
            }
            let seen = req
                .headers()
                .get("x-forwarded-proto")
                .cloned()
                .unwrap_or(HeaderValue::from_static("-"));
            h.insert("x-seen-forwarded-proto", seen);
            h.insert(
                "x-seen-version",
                HeaderValue::from_str(&format!("{:?}", req.version())).expect("header"),
            );
            h.insert("x-seen-alpn", HeaderValue::from_str(&alpn).expect("header"));
            h.insert(
                "x-seen-client",
                HeaderValue::from_str(&client).expect("header"),
            );
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let io = TokioIo::new(io);
    if http2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    }
}
