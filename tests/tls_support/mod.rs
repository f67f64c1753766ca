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
use http::{HeaderMap, Request, Response, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

mod echo;
mod pki;

// Each test binary uses a different part of the harness.
#[allow(unused_imports)]
pub use echo::{Echo, echo, upstream_tls};
#[allow(unused_imports)]
pub use pki::{Leaf, Pki, Usage};

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
