//! Harness for the TLS tests: certificates made with rcgen at test time, the real
//! `weir` binary on `127.0.0.1:0` (its ports read from its startup line), TLS clients
//! built on tokio-rustls and hyper, and a small echo upstream that can speak TLS.
//!
//! Everything started here stops when dropped: the weir process is killed and waited
//! for, the temporary directory removed.

#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The binary under test.
pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// How long one request may take before the test calls it hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a test body with a hang guard.
pub async fn within<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {secs}s"),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// === TempDir ===

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("weir-tls-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }

    /// Replaces `name` atomically (write aside, then rename), as a deploy tool would.
    pub fn replace(&self, name: &str, text: &str) {
        let aside = self.0.join(format!(".{name}.new"));
        std::fs::write(&aside, text).expect("write temp file");
        std::fs::rename(&aside, self.0.join(name)).expect("rename temp file");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// === Pki ===

/// A test CA that issues server and client certificates.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
pub enum Usage {
    Server,
    Client,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        Pki { ca }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self, serial: u64) -> Leaf {
        self.leaf(Usage::Server, "localhost", serial, None)
    }

    /// A client certificate with subject `CN=<name>,O=weir-tests`.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(Usage::Client, name, 1, None)
    }

    /// A certificate; `validity` as (not_before, not_after) years overrides the default
    /// (valid now).
    pub fn leaf(&self, usage: Usage, cn: &str, serial: u64, validity: Option<(i32, i32)>) -> Leaf {
        let sans = match usage {
            Usage::Server => vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            Usage::Client => Vec::new(),
        };
        let mut params = CertificateParams::new(sans).expect("leaf params");
        // rcgen starts with a default CN; start empty so the order is the one written.
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "weir-tests");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if let Some((from, to)) = validity {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

// === Weir ===

/// A running `weir run`, killed on drop.
pub struct Weir {
    child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Weir {
    /// Starts weir on `config` and waits for its startup line.
    pub fn start(config: &Path) -> Weir {
        let mut child = Command::new(WEIR)
            .args(["--log-level", "info", "run", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start weir");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("weir is serving") {
                        let _ = tx.send(line.clone());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("weir did not start:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        let field = |name: &str| -> SocketAddr {
            let start = line
                .find(&format!("{name}="))
                .expect("address in startup line")
                + name.len()
                + 1;
            let end = line[start..].find(' ').map_or(line.len(), |e| start + e);
            line[start..end].parse().expect("address parses")
        };
        Weir {
            listen: field("listen"),
            admin: field("admin"),
            child,
            log,
        }
    }

    /// Everything weir logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (at most `secs`) for a log line containing every one of `needles`.
    pub async fn wait_for_log(&self, needles: &[&str], secs: u64) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .cloned();
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `weir check` on `config`: its exit code and stderr.
pub fn check(config: &Path) -> (i32, String) {
    check_with_env(config, &[])
}

/// Runs `weir check` with extra environment variables.
pub fn check_with_env(config: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(WEIR)
        .args(["check", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .expect("run weir check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config with one destination `echo` and one route to it. `tls` is the top-level
/// `tls:` value (or empty), `dest_extra` extra keys for the destination.
pub fn config(listener_tls: &str, endpoint: SocketAddr, dest_extra: &str) -> String {
    let tls = if listener_tls.is_empty() {
        String::new()
    } else {
        format!("tls: {listener_tls}\n")
    };
    format!(
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nworkers: 1\naccess_log: true\n{tls}\
         destinations:\n  echo: {{ endpoints: [\"{endpoint}\"]{dest_extra} }}\n\
         routes:\n  - name: all\n    split: {{ echo: 100 }}\n"
    )
}

// === Clients ===

/// What a test client saw.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

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
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
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

pub fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("cert PEM")
}

pub fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("key PEM")
}

/// An open HTTP connection (TLS or not), for several requests.
pub enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Conn {
    async fn over<I>(io: I, http2: bool) -> Result<Conn, String>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        if http2 {
            let (tx, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Conn::H2(tx))
        } else {
            let (tx, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("h1 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Conn::H1(tx))
        }
    }

    /// `GET path` on this connection.
    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        let fut = async {
            let mut builder = Request::get(path).header("host", "localhost");
            if let Conn::H2(_) = self {
                builder = builder.uri(format!("https://localhost{path}"));
            }
            let req = builder.body(Empty::<Bytes>::new()).expect("request");
            let resp = match self {
                Conn::H1(tx) => tx.send_request(req).await,
                Conn::H2(tx) => tx.send_request(req).await,
            }
            .map_err(|e| format!("request: {e:?}"))?;
            read(resp).await
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| "request timed out".to_owned())?
    }
}

async fn read(resp: Response<Incoming>) -> Result<Reply, String> {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
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
        let http2 = handshake.alpn.as_deref() == Some("h2");
        Ok((Conn::over(stream, http2).await?, handshake))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| "TLS connect timed out".to_owned())?
}

/// One `GET path` over a new TLS connection.
pub async fn https_get(
    addr: SocketAddr,
    tls: &TlsConnector,
    path: &str,
) -> Result<(Reply, Handshake), String> {
    let (mut conn, handshake) = open_tls(addr, tls).await?;
    Ok((conn.get(path).await?, handshake))
}

/// Why weir refused a TLS client: the handshake error, or the alert that ended the
/// connection when the client sent a request (under TLS 1.3 the server checks the
/// client's certificate after the client's side of the handshake is done). `None` when
/// the request got an answer.
pub async fn refusal(addr: SocketAddr, tls: &TlsConnector) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .expect("refusal within the request timeout")
}

/// One `GET path` over a new plaintext connection: HTTP/1.1, or h2c with prior knowledge.
pub async fn http_get(addr: SocketAddr, http2: bool, path: &str) -> Result<Reply, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut conn = Conn::over(tcp, http2).await?;
    if let Conn::H2(_) = conn {
        // Prior knowledge: the URI carries the scheme weir would otherwise guess.
        let req = Request::get(format!("http://localhost{path}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let Conn::H2(tx) = &mut conn else {
            unreachable!()
        };
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, tx.send_request(req))
            .await
            .map_err(|_| "request timed out".to_owned())?
            .map_err(|e| format!("request: {e:?}"))?;
        return read(resp).await;
    }
    conn.get(path).await
}

// === Echo upstream ===

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
