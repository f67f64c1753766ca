//! HTTP/1.1 on raw TCP, for exact wire checks: one exchange per connection, and a
//! parser for what comes back; and WebSocket client frames.

use super::*;
/// GET on the admin listener with a raw HTTP/1.1 request; `(status, body)`.
pub async fn admin_get(admin: SocketAddr, path: &str) -> std::io::Result<(StatusCode, String)> {
    admin_request(admin, "GET", path, "", None).await
}

/// Any request on the admin listener: `(status, body)`. `bearer` adds
/// `Authorization: Bearer <token>`.
pub async fn admin_request(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    bearer: Option<&str>,
) -> std::io::Result<(StatusCode, String)> {
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let raw = raw_exchange(
        admin,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
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

/// GET on the admin listener, parsed as JSON (panics on anything but 200 + JSON).
pub async fn admin_json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = admin_get(admin, path).await.expect("admin GET");
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
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

/// Reads one HTTP/1.1 response from `stream`: its head, then a `Content-Length` body if
/// it has one (anything else is left unread). `None` when the server closes (or resets)
/// before a whole head arrived.
pub async fn read_response(stream: &mut TcpStream) -> Option<RawResponse> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => raw.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    if let Some(line) = head.lines().find(|l| l.starts_with("content-length:")) {
        let mut body = vec![0u8; line[15..].trim().parse().ok()?];
        stream.read_exact(&mut body).await.ok()?;
        raw.extend_from_slice(&body);
    }
    Some(RawResponse::parse(&raw))
}

/// Reads until the peer closes (or resets) the connection, at most `limit`; the bytes
/// read and whether it did close in time.
pub async fn read_until_close(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

// === A raw-socket upstream that records what it receives ===

/// An HTTP/1.1 upstream on raw TCP that keeps every byte it receives, so a test can see
/// exactly what weir sent: how many requests, their boundaries, their header lines.
/// It answers each request it can delimit (`Content-Length`, or a chunked body up to
/// the end of its trailer section) with `200 ok` on a kept-alive connection.
#[derive(Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    state: Arc<Mutex<Recorded>>,
}

#[derive(Default)]
struct Recorded {
    /// Every connection's bytes, in the order the connections were accepted.
    connections: Vec<Vec<u8>>,
    /// Each request as delimited: its head (request line and header lines) and body
    /// bytes as they came, framing included.
    requests: Vec<(String, Vec<u8>)>,
}

/// One request a [`Recorder`] delimited.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The request line, e.g. `GET /x HTTP/1.1`.
    pub line: String,
    /// Header lines as sent: `(name lowercased, value as sent)`.
    pub headers: Vec<(String, String)>,
    /// The body bytes with their framing (chunk sizes, trailers) as they came.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// Every value of header `name` (lowercase).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl Recorder {
    /// Every byte received, all connections one after the other.
    pub fn bytes(&self) -> Vec<u8> {
        self.state.lock().unwrap().connections.concat()
    }

    /// How many connections weir opened to it.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections.len()
    }

    /// The requests delimited so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(head, body)| {
                let mut lines = head.split("\r\n");
                let line = lines.next().unwrap_or("").to_owned();
                let headers = lines
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once(':').unwrap_or((l, ""));
                        (k.to_ascii_lowercase(), v.trim().to_owned())
                    })
                    .collect();
                RecordedRequest {
                    line,
                    headers,
                    body: body.clone(),
                }
            })
            .collect()
    }

    /// Waits (at most 5 s) until `n` requests were delimited; returns them all.
    pub async fn wait_requests(&self, n: usize) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(
                Instant::now() < deadline,
                "the upstream delimited {} requests, not {n}; it received:\n{}",
                requests.len(),
                String::from_utf8_lossy(&self.bytes())
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Starts a [`Recorder`] on 127.0.0.1 port 0.
pub async fn recording_upstream() -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let recorder = Recorder {
        addr: listener.local_addr().unwrap(),
        state: Arc::default(),
    };
    let state = recorder.state.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let index = {
                    let mut s = state.lock().unwrap();
                    s.connections.push(Vec::new());
                    s.connections.len() - 1
                };
                let mut pending = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    while let Some((head, body, used)) = delimit(&pending) {
                        state.lock().unwrap().requests.push((head, body));
                        pending.drain(..used);
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-weir-upstream: recorder\r\n\r\nok";
                        if stream.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            pending.extend_from_slice(&chunk[..n]);
                            state.lock().unwrap().connections[index].extend_from_slice(&chunk[..n]);
                        }
                    }
                }
            });
        }
    });
    recorder
}

/// One whole request at the start of `buf`: its head (without the blank line), its
/// body bytes as framed, and the bytes it used. `None` while incomplete.
fn delimit(buf: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let lower = head.to_ascii_lowercase();
    let value = |name: &str| {
        lower
            .split("\r\n")
            .skip(1)
            .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix(':'))
            .map(str::trim)
    };
    let body_start = end + 4;
    let body_end = if value("transfer-encoding").is_some_and(|v| v.ends_with("chunked")) {
        let mut at = body_start;
        loop {
            let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
            let line = std::str::from_utf8(&buf[at..line_end]).ok()?;
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                // Trailer lines up to the blank line.
                loop {
                    let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
                    let blank = line_end == at;
                    at = line_end + 2;
                    if blank {
                        break;
                    }
                }
                break at;
            }
            at += size + 2;
            if at > buf.len() {
                return None;
            }
        }
    } else {
        // A length it cannot read (a list, say) counts as none: the test then sees the
        // head as it came.
        let len: usize = value("content-length").map_or(0, |v| v.parse().unwrap_or(0));
        body_start + len
    };
    if body_end > buf.len() {
        return None;
    }
    Some((head, buf[body_start..body_end].to_vec(), body_end))
}

/// An HTTP/1.1 upstream on raw TCP that answers every request head (bodies are not
/// read) with `response` as given, then holds the connection for `hold` and closes it:
/// for responses weir must refuse, and for upstreams that stall mid-response.
pub async fn scripted_upstream(response: &'static [u8], hold: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                if stream.write_all(response).await.is_ok() {
                    tokio::time::sleep(hold).await;
                }
            });
        }
    });
    addr
}

/// A masked client frame (RFC 6455 §5.2).
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
