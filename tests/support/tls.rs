//! TLS for the tests: client configs trusting the test CA (with a client certificate
//! when asked), connections that speak what ALPN chose, the reason weir refused a
//! client, and an upstream that can speak TLS and echoes what it saw.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use http::HeaderValue;
use hyper::service::service_fn;

use super::*;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("cert PEM")
}

pub fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("key PEM")
}

// === Clients ===

/// What the TLS handshake said, from the client's side.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub alpn: Option<String>,
    pub version: Option<rustls::ProtocolVersion>,
    /// The serial of the server's certificate, as weir reads it.
    pub server_serial: String,
}

/// A TLS client config trusting `ca_pem`, presenting `client` when given, offering
/// `alpn` (e.g. `["h2", "http/1.1"]`; empty offers none).
pub fn connector(ca_pem: &str, client: Option<&Leaf>, alpn: &[&str]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca_pem) {
        roots.add(cert).expect("CA cert");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(certs(&leaf.cert), key(&leaf.key))
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// Opens a TLS connection and speaks the protocol ALPN chose (HTTP/1.1 without ALPN).
pub async fn open_tls(addr: SocketAddr, tls: &TlsConnector) -> Result<(Conn, Handshake), String> {
    let fut = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from("localhost").expect("server name");
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let (_, session) = stream.get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or("no server certificate")?;
        let handshake = Handshake {
            alpn: session
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            version: session.protocol_version(),
            server_serial: weir::tls::x509::CertInfo::parse(leaf)
                .map_err(|e| e.to_string())?
                .serial_hex(),
        };
        let proto = if handshake.alpn.as_deref() == Some("h2") {
            Proto::H2c
        } else {
            Proto::Http1
        };
        Ok((Conn::over(stream, proto, "https").await?, handshake))
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| "TLS connect timed out".to_owned())?
}

/// One `GET path` over a new TLS connection.
pub async fn https_get(
    addr: SocketAddr,
    tls: &TlsConnector,
    path: &str,
) -> Result<(Got, Handshake), String> {
    let (mut conn, handshake) = open_tls(addr, tls).await?;
    Ok((conn.get(path).await?, handshake))
}

/// Why weir refused a TLS client: the handshake error, or the alert that ended the
/// connection when the client sent a request (under TLS 1.3 the server checks the
/// client's certificate after the client's side of the handshake is done). `None` when
/// the request got an answer.
pub async fn refusal(addr: SocketAddr, tls: &TlsConnector) -> Option<String> {
    let fut = async {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("server name");
        let mut stream = match tls.connect(name, tcp).await {
            Ok(stream) => stream,
            Err(e) => return Some(format!("handshake: {e}")),
        };
        let request = b"GET /refused HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
        if let Err(e) = stream.write_all(request).await {
            return Some(format!("write: {e}"));
        }
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer).await {
            Err(e) => Some(format!("read: {e}")),
            Ok(_) if answer.is_empty() => Some("closed without an answer".into()),
            Ok(_) => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("refusal within the request timeout")
}

// === The echo upstream ===

/// A test upstream that answers 200 and echoes what it saw in `x-seen-*` headers (and
/// closes HTTP/1.1 connections after each response):
/// `x-seen-forwarded-proto`, `x-seen-version` (HTTP version), `x-seen-alpn` and
/// `x-seen-client` (the client certificate's subject, or `-`).
pub struct TlsEcho {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A rustls server config for the [`TlsEcho`] upstream: `leaf` as its certificate, client
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

/// Starts the [`TlsEcho`] upstream on 127.0.0.1: HTTP/1.1 in plaintext, or TLS with ALPN.
pub async fn tls_echo(tls: Option<Arc<rustls::ServerConfig>>) -> TlsEcho {
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
    TlsEcho { addr, task }
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
            Ok::<_, Infallible>(resp)
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
