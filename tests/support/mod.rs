//! Shared harness for the integration tests: runs the real `weir` binary on a config
//! written to a temporary directory, real upstream servers on 127.0.0.1 port 0, and
//! real HTTP clients.
//!
//! Every weir process listens on `127.0.0.1:0` (listen and admin); the harness learns
//! the ports from the startup log line, so tests never race for a port. The process is
//! killed when its [`Weir`] is dropped, and its stderr is captured line by line so
//! tests can assert on access-log lines.

#![allow(dead_code)]

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The binary under test.
pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// How long weir may take to start and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs a test body with a hang guard: a test that has not finished by then fails.
pub async fn within<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {secs}s"),
    }
}

// === TempDir ===

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "weir-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
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
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// === Weir ===

/// stderr lines of a weir process, collected by a reader thread.
#[derive(Default)]
pub struct Logs {
    lines: Mutex<Vec<String>>,
}

impl Logs {
    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// The log format weir runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A running `weir run` process, killed on drop.
pub struct Weir {
    child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub format: LogFormat,
    logs: Arc<Logs>,
    exited: Option<ExitStatus>,
    _dir: TempDir,
}

impl Weir {
    /// Starts weir with `yaml` (JSON logs). `listen` and `admin` are set to
    /// `127.0.0.1:0` unless the YAML sets them. Returns once `/ready` answers 200.
    pub async fn start(yaml: &str) -> Weir {
        Weir::start_with(yaml, LogFormat::Json).await
    }

    pub async fn start_with(yaml: &str, format: LogFormat) -> Weir {
        let dir = TempDir::new("run");
        let mut text = String::new();
        if !yaml.contains("listen:") {
            text.push_str("listen: 127.0.0.1:0\n");
        }
        if !yaml.contains("admin:") {
            text.push_str("admin: 127.0.0.1:0\n");
        }
        text.push_str(yaml);
        let config = dir.write("weir.yaml", &text);
        let fmt = match format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        // WEIR_TEST_LOG_LEVEL=debug shows weir's debug lines in failing tests' output.
        let level = std::env::var("WEIR_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into());
        let mut child = Command::new(WEIR)
            .args([
                "--log-format",
                fmt,
                "--log-level",
                &level,
                "run",
                "--config",
            ])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir");
        let logs = Arc::new(Logs::default());
        let stderr = child.stderr.take().expect("piped stderr");
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    logs.lines.lock().unwrap().push(line);
                }
            });
        }
        let mut weir = Weir {
            child,
            listen: "0.0.0.0:0".parse().unwrap(),
            admin: "0.0.0.0:0".parse().unwrap(),
            format,
            logs,
            exited: None,
            _dir: dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some((listen, admin)) = weir.startup_addrs() {
                weir.listen = listen;
                weir.admin = admin;
                break;
            }
            if let Ok(Some(status)) = weir.child.try_wait() {
                panic!(
                    "weir exited with {status} before serving:\n{}",
                    weir.logs.snapshot().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "weir did not start within {START_TIMEOUT:?}:\n{}",
                weir.logs.snapshot().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        loop {
            if let Ok((StatusCode::OK, _)) = admin_get(weir.admin, "/ready").await {
                return weir;
            }
            assert!(Instant::now() < deadline, "weir never became ready");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The listen and admin addresses from the "weir is serving" line.
    fn startup_addrs(&self) -> Option<(SocketAddr, SocketAddr)> {
        let lines = self.logs.snapshot();
        let line = lines.iter().find(|l| l.contains("weir is serving"))?;
        match self.format {
            LogFormat::Json => {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                let listen = v["listen"].as_str()?.parse().ok()?;
                let admin = v["admin"].as_str()?.parse().ok()?;
                Some((listen, admin))
            }
            LogFormat::Text => {
                let field = |key: &str| -> Option<SocketAddr> {
                    let start = line.find(&format!(" {key}="))? + key.len() + 2;
                    line[start..].split_whitespace().next()?.parse().ok()
                };
                Some((field("listen")?, field("admin")?))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT` of the data plane, plus `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.listen, path)
    }

    /// All stderr lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.snapshot()
    }

    /// The access-log lines so far, parsed (JSON format only).
    pub fn access_logs(&self) -> Vec<serde_json::Value> {
        assert_eq!(
            self.format,
            LogFormat::Json,
            "access_logs() needs JSON logs"
        );
        self.logs
            .snapshot()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "weir::access")
            .collect()
    }

    /// Waits until an access-log line satisfies `pred` (lines are written by a
    /// separate thread, so they trail the responses a little).
    pub async fn wait_access(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = self.access_logs().into_iter().find(|v| pred(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no access-log line for {what}; logs:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a raw stderr line satisfies `pred`.
    pub async fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.logs().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no log line for {what}; logs:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal (`TERM`, `INT`) with the shell's `kill` builtin, which every
    /// machine with a `/bin/sh` has.
    pub fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s {name} {}", self.pid()))
            .status()
            .expect("run sh -c kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits (polling, so the async runtime keeps running) for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited {
                return Some(status);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn proc_status_kib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `weir ARGS...` to completion (for `check`, and `run` on a refused config).
pub fn weir_output(args: &[&str], timeout: Duration) -> std::process::Output {
    let mut child = Command::new(WEIR)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weir");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("wait weir").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "weir {args:?} did not exit within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// GET on the admin listener with a raw HTTP/1.1 request; `(status, body)`.
pub async fn admin_get(admin: SocketAddr, path: &str) -> std::io::Result<(StatusCode, String)> {
    let raw = raw_exchange(
        admin,
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Ok((code, body))
}

/// Writes `request` on a new connection and reads until the server closes it
/// (hang guard: 10 s).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        Ok(out)
    })
    .await
    .map_err(|_| std::io::Error::other("raw exchange timed out"))?
}

// === Upstreams ===

/// A synthetic upstream (`weir::synthetic`) named `name` on 127.0.0.1 port 0, on the
/// current runtime.
pub async fn synthetic(name: &str) -> SocketAddr {
    synthetic_with(weir::synthetic::Profile::new(name)).await
}

pub async fn synthetic_with(profile: weir::synthetic::Profile) -> SocketAddr {
    let (addr, _task) = weir::synthetic::spawn("127.0.0.1:0".parse().unwrap(), profile)
        .await
        .expect("bind synthetic upstream");
    addr
}

/// A local port where nothing listens: connecting to it is refused. The port stays
/// bound (without `listen`) for as long as this lives, so no other socket can take it
/// and turn a "dead" endpoint alive mid-test.
pub struct DeadPort {
    pub addr: SocketAddr,
    _socket: socket2::Socket,
}

pub fn dead_port() -> DeadPort {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("local addr")
        .as_socket()
        .expect("an inet address");
    DeadPort {
        addr,
        _socket: socket,
    }
}

pub type BoxError = Box<dyn StdError + Send + Sync>;
/// The response body type of test servers.
pub type ServerBody = BoxBody<Bytes, BoxError>;

/// Serves `handler` on 127.0.0.1 port 0 over HTTP/1.1 (`http2 == false`, with
/// upgrades) or h2c with prior knowledge.
pub async fn serve<F, Fut>(http2: bool, handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ServerBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let io = TokioIo::new(stream);
                if http2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await;
                }
            });
        }
    });
    addr
}

pub fn server_body(text: impl Into<Bytes>) -> ServerBody {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An upstream that answers every request with a JSON echo of it:
/// `{"method", "uri", "version", "headers": [[name, value], ...], "body_bytes"}`.
pub async fn echo_upstream(http2: bool) -> SocketAddr {
    serve(http2, |req: Request<Incoming>| async move {
        let (parts, body) = req.into_parts();
        let body_bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let json = serde_json::json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_bytes": body_bytes,
        });
        let mut resp = Response::new(server_body(json.to_string()));
        resp.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        resp.headers_mut()
            .insert("x-weir-upstream", "echo".parse().unwrap());
        resp
    })
    .await
}

/// The request an [`echo_upstream`] saw.
#[derive(Debug)]
pub struct Echoed {
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Echoed {
    pub fn parse(body: &[u8]) -> Echoed {
        let v: serde_json::Value = serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("echo body is not JSON ({e}): {body:?}"));
        Echoed {
            method: v["method"].as_str().unwrap().to_owned(),
            uri: v["uri"].as_str().unwrap().to_owned(),
            version: v["version"].as_str().unwrap().to_owned(),
            headers: v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_owned(),
                        p[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        }
    }

    /// Every value of header `name` (lowercase).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "header {name} repeated: {all:?}");
        all.first().copied()
    }
}

// === Clients ===

/// The request body type of the test clients.
pub type ReqBody = BoxBody<Bytes, Infallible>;

pub fn empty() -> ReqBody {
    Empty::new().boxed()
}

pub fn full(data: impl Into<Bytes>) -> ReqBody {
    Full::new(data.into()).boxed()
}

/// A pooled HTTP/1.1 keep-alive client (hyper_util's legacy client).
pub fn h1_client() -> Client<HttpConnector, ReqBody> {
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .build_http()
}

/// An HTTP/2 prior-knowledge (h2c) client.
pub fn h2_client() -> Client<HttpConnector, ReqBody> {
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_only(true)
        .build_http()
}

/// A response read to the end.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The destination that answered (`x-weir-upstream`).
    pub fn upstream(&self) -> &str {
        self.header("x-weir-upstream").unwrap_or("-")
    }
}

/// Reads a response to the end, with its trailers.
pub async fn read<B>(resp: Response<B>) -> Result<Got, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.map_err(Into::into)?;
    let trailers = collected.trailers().cloned();
    Ok(Got {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    })
}

/// Sends `req` with the pooled client and reads the response (hang guard: 30 s).
pub async fn fetch(client: &Client<HttpConnector, ReqBody>, req: Request<ReqBody>) -> Got {
    let uri = req.uri().clone();
    tokio::time::timeout(Duration::from_secs(30), async {
        let resp = client.request(req).await?;
        read(resp).await
    })
    .await
    .unwrap_or_else(|_| panic!("{uri}: no response within 30s"))
    .unwrap_or_else(|e| panic!("{uri}: {e:?}"))
}

/// GET `url` with the pooled client.
pub async fn get(client: &Client<HttpConnector, ReqBody>, url: &str) -> Got {
    fetch(client, Request::get(url).body(empty()).unwrap()).await
}

/// One HTTP/1.1 connection to `addr` (no pool: every request goes over it).
pub async fn h1_conn(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<ReqBody> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    tx
}

/// One HTTP/2 prior-knowledge connection to `addr`.
pub async fn h2_conn(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<ReqBody> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    tx
}

// === Raw HTTP/1.1 ===

/// An HTTP/1.1 response as it came off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased, values as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Parses one response (`Content-Length`, chunked, or up to the end of `raw`).
    pub fn parse(raw: &[u8]) -> RawResponse {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&raw[..end]).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header line");
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let rest = &raw[end + 4..];
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let body = if let Some(len) = header("content-length") {
            rest[..len.parse::<usize>().unwrap()].to_vec()
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            decode_chunked(rest)
        } else {
            rest.to_vec()
        };
        RawResponse {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

fn decode_chunked(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("hex chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
