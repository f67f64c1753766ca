//! The backends of the differential harness, each telling exactly which requests it
//! saw: a raw-socket server with a lenient parser of its own (it ends heads and chunked
//! bodies at a bare LF, as nginx and HAProxy do, so a frame weir forwarded ambiguously
//! shows up as an extra request), and nginx and HAProxy themselves when installed.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request a backend answered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    pub status: u16,
    pub method: String,
    pub target: String,
    /// The body's length, where the backend tells it (the raw one).
    pub body: Option<u64>,
}

/// What a backend saw, for the harness to take case by case.
pub trait Backend: Send + Sync {
    fn name(&self) -> &str;
    fn addr(&self) -> SocketAddr;
    /// Everything seen since the last call.
    fn take(&self) -> Vec<Seen>;
    /// Bytes it could not read as HTTP/1.1 since the last call.
    fn take_garbage(&self) -> Vec<String> {
        Vec::new()
    }
}

// === Raw ===

pub struct Raw {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    garbage: Arc<Mutex<Vec<String>>>,
}

impl Raw {
    pub async fn start() -> Raw {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let garbage = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (seen.clone(), garbage.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_raw(stream, s.clone(), g.clone()));
            }
        });
        Raw {
            addr,
            seen,
            garbage,
        }
    }
}

impl Backend for Raw {
    fn name(&self) -> &str {
        "raw"
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut self.seen.lock().unwrap())
    }
    fn take_garbage(&self) -> Vec<String> {
        std::mem::take(&mut self.garbage.lock().unwrap())
    }
}

/// Serves one connection: each complete request is recorded and answered 200.
async fn serve_raw(
    mut stream: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    garbage: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    loop {
        match parse_lenient(&buf) {
            Parse::Request(len, method, target, body) => {
                buf.drain(..len);
                seen.lock().unwrap().push(Seen {
                    status: 200,
                    method,
                    target,
                    body: Some(body),
                });
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(ok).await.is_err() {
                    return;
                }
                continue;
            }
            Parse::Garbage => {
                garbage
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                    .await;
                return;
            }
            Parse::Partial => {}
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

enum Parse {
    Partial,
    Garbage,
    /// Bytes used, method, target, body length.
    Request(usize, String, String, u64),
}

/// A lenient reader: heads by httparse (which accepts bare LF line ends), bodies by
/// `Transfer-Encoding: chunked` (its last coding) before `Content-Length`, chunk lines
/// and the trailer section ended by LF with or without CR.
fn parse_lenient(buf: &[u8]) -> Parse {
    if buf.is_empty() {
        return Parse::Partial;
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(_) => return Parse::Garbage,
    };
    let method = req.method.unwrap_or("").to_owned();
    let target = req.path.unwrap_or("").to_owned();
    let value = |name: &str| {
        req.headers
            .iter()
            .rev()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let chunked = value("transfer-encoding")
        .is_some_and(|te| te.rsplit(',').next().is_some_and(|c| c.trim() == "chunked"));
    if chunked {
        return match chunked_lenient(&buf[head..]) {
            Some(Some((used, body))) => Parse::Request(head + used, method, target, body),
            Some(None) => Parse::Partial,
            None => Parse::Garbage,
        };
    }
    let length = match value("content-length") {
        None => 0,
        Some(v) => match v.parse::<u64>() {
            Ok(n) => n,
            Err(_) => return Parse::Garbage,
        },
    };
    if ((buf.len() - head) as u64) < length {
        return Parse::Partial;
    }
    Parse::Request(head + length as usize, method, target, length)
}

/// `Some(Some((used, body)))` when complete, `Some(None)` when more is needed, `None`
/// when it cannot be read at all.
fn chunked_lenient(input: &[u8]) -> Option<Option<(usize, u64)>> {
    let mut at = 0;
    let mut body = 0u64;
    let line = |from: usize| -> Option<(usize, &[u8])> {
        let end = input[from..].iter().position(|&b| b == b'\n')? + from;
        let text = input[from..end]
            .strip_suffix(b"\r")
            .unwrap_or(&input[from..end]);
        Some((end + 1, text))
    };
    loop {
        let Some((next, size_line)) = line(at) else {
            return Some(None);
        };
        let digits = size_line.split(|&b| b == b';').next().unwrap_or(b"");
        let size = u64::from_str_radix(std::str::from_utf8(digits).ok()?.trim(), 16).ok()?;
        at = next;
        if size == 0 {
            // Trailer lines until an empty one.
            loop {
                let Some((next, trailer)) = line(at) else {
                    return Some(None);
                };
                at = next;
                if trailer.is_empty() {
                    return Some(Some((at, body)));
                }
            }
        }
        let end = at.checked_add(usize::try_from(size).ok()?)?;
        if input.len() < end {
            return Some(None);
        }
        body += size;
        at = end;
        let Some((next, rest)) = line(at) else {
            return Some(None);
        };
        if !rest.is_empty() {
            return None;
        }
        at = next;
    }
}

// === nginx and HAProxy ===

/// A real server whose access log the harness reads.
pub struct Logged {
    name: &'static str,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    /// Lines of `log` already taken.
    taken: Mutex<usize>,
    child: Mutex<Child>,
    /// Stops the thread that follows a log file.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Backend for Logged {
    fn name(&self) -> &str {
        self.name
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn take(&self) -> Vec<Seen> {
        let log = self.log.lock().unwrap();
        let mut taken = self.taken.lock().unwrap();
        let new = log[*taken..].to_vec();
        *taken = log.len();
        new.iter()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ' ');
                Some(Seen {
                    status: parts.next()?.parse().ok()?,
                    method: parts.next()?.to_owned(),
                    target: parts.next()?.to_owned(),
                    body: None,
                })
            })
            .collect()
    }
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_port(addr: SocketAddr) -> bool {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// nginx answering 200 to everything it can read, logging `status method target`.
pub async fn nginx(dir: &Path) -> Option<Logged> {
    if !installed("nginx") {
        return None;
    }
    let port = free_port();
    let log_path = dir.join("nginx-access.log");
    std::fs::write(&log_path, "").unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  log_format w '$status $request_method $request_uri';\n  access_log {log} w;\n\
               client_body_temp_path {dir};\n\
               server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\"; }} }}\n}}\n",
            dir = dir.display(),
            log = log_path.display()
        ),
    )
    .unwrap();
    let error_log = dir.join("nginx-error.log");
    let child = Command::new("nginx")
        .args(["-c", conf.to_str().unwrap(), "-p", dir.to_str().unwrap()])
        .args(["-e", error_log.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = Arc::new(Mutex::new(Vec::new()));
    // nginx writes its log to a file; a thread follows it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (follower, stopped) = (log.clone(), stop.clone());
    std::thread::spawn(move || follow(&log_path, &follower, &stopped));
    let logged = Logged {
        name: "nginx",
        addr,
        log,
        taken: Mutex::new(0),
        child: Mutex::new(child),
        stop,
    };
    wait_port(addr).await.then_some(logged)
}

/// HAProxy answering 200 itself, logging `status method target` to its stdout.
pub async fn haproxy(dir: &Path) -> Option<Logged> {
    if !installed("haproxy") {
        return None;
    }
    let port = free_port();
    let conf = dir.join("haproxy.cfg");
    std::fs::write(
        &conf,
        format!(
            "global\n  log stdout format raw local0\ndefaults\n  mode http\n  log global\n\
             timeout client 10s\n  timeout server 10s\n  timeout connect 5s\n\
             frontend f\n  bind 127.0.0.1:{port}\n  log-format \"%ST %HM %HU\"\n\
               http-request return status 200 content-type text/plain string ok\n"
        ),
    )
    .unwrap();
    let mut child = Command::new("haproxy")
        .args(["-db", "-f", conf.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            lines.lock().unwrap().push(line);
        }
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let logged = Logged {
        name: "haproxy",
        addr,
        log,
        taken: Mutex::new(0),
        child: Mutex::new(child),
        stop: Arc::default(),
    };
    wait_port(addr).await.then_some(logged)
}

/// Follows a file that grows, line by line, until `stop`.
fn follow(path: &Path, into: &Mutex<Vec<String>>, stop: &std::sync::atomic::AtomicBool) {
    let mut read = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.len() > read
        {
            let complete = text[read..].rfind('\n').map_or(0, |i| i + 1);
            let new = &text[read..read + complete];
            into.lock().unwrap().extend(new.lines().map(str::to_owned));
            read += complete;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
