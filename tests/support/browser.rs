//! A real browser for the tests: Debian's `chromium`, headless, driven through its
//! DevTools protocol over a WebSocket written here (text frames, masking, fragments,
//! pings: what CDP needs, nothing more). Every call is bounded in time; the browser and
//! its helpers run in a process group of their own, closed and then killed on drop, and
//! its profile directory is removed.
//!
//! [`Browser::launch`] returns `Err(reason)` when no chromium is installed, so a test can
//! print why it skips.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;

use serde_json::{Value, json};

use super::*;

/// How long one protocol call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where chromium is: `WEIR_CHROMIUM`, or the first of the usual names on `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WEIR_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|p| p.is_file())
}

/// A WebSocket client connection: just enough of RFC 6455 for CDP.
struct Socket {
    stream: TcpStream,
}

impl Socket {
    fn connect(url: &str) -> Result<Socket, String> {
        let rest = url.strip_prefix("ws://").ok_or("not a ws:// URL")?;
        let (host, path) = rest.split_once('/').ok_or("no path")?;
        let mut stream = TcpStream::connect(host).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(CALL_TIMEOUT))
            .map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: d2Vpci10ZXN0LWtleS0wMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).map_err(|e| e.to_string())?;
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        if !head.starts_with("HTTP/1.1 101") {
            return Err(format!("no WebSocket upgrade: {head}"));
        }
        Ok(Socket { stream })
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(&client_frame(opcode, payload))
    }

    fn send(&mut self, text: &str) -> std::io::Result<()> {
        self.frame(0x1, text.as_bytes())
    }

    /// The next whole text message (pings answered, fragments joined).
    fn recv(&mut self, deadline: Instant) -> Result<String, String> {
        let mut message = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out waiting for the browser".into());
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let mut head = [0u8; 2];
            self.stream
                .read_exact(&mut head)
                .map_err(|e| format!("reading from the browser: {e}"))?;
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                self.stream.read_exact(&mut b).map_err(|e| e.to_string())?;
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.stream.read_exact(&mut b).map_err(|e| e.to_string())?;
                len = u64::from_be_bytes(b);
            }
            let mut payload = vec![0u8; len as usize];
            self.stream
                .read_exact(&mut payload)
                .map_err(|e| e.to_string())?;
            match opcode {
                0x0 | 0x1 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return String::from_utf8(message).map_err(|e| e.to_string());
                    }
                }
                0x8 => return Err("the browser closed the connection".into()),
                0x9 => self.frame(0xA, &payload).map_err(|e| e.to_string())?,
                _ => {}
            }
        }
    }
}

/// A headless chromium with one page open.
pub struct Browser {
    child: Child,
    socket: Socket,
    session: String,
    next_id: u64,
    /// Events not yet looked at.
    events: VecDeque<Value>,
    /// Console errors, uncaught exceptions and error log entries, as text.
    errors: Vec<String>,
    profile: TempDir,
}

impl Browser {
    /// Starts chromium with a fresh profile and opens a blank page `width` x `height`.
    /// `Err` says why there is no browser (not installed, or it would not start).
    pub fn launch(width: u32, height: u32) -> Result<Browser, String> {
        let exe = chromium().ok_or(
            "no chromium on PATH (apt-get install chromium, or set WEIR_CHROMIUM)".to_owned(),
        )?;
        let profile = TempDir::new("chromium");
        let mut child = Command::new(&exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                kill_group(&mut child);
                return Err(format!("{} did not start within 30 s", exe.display()));
            }
        };
        let socket = match Socket::connect(&url) {
            Ok(s) => s,
            Err(e) => {
                kill_group(&mut child);
                return Err(e);
            }
        };
        let mut b = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            events: VecDeque::new(),
            errors: Vec::new(),
            profile,
        };
        let target = b.call("Target.createTarget", json!({ "url": "about:blank" }));
        let session = b.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        b.session = session["sessionId"].as_str().expect("a session").to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            b.call(domain, json!({}));
        }
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
        Ok(b)
    }

    /// One protocol call on the page (or on the browser before a page is attached);
    /// panics on a protocol error or after [`CALL_TIMEOUT`].
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.socket
            .send(&msg.to_string())
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let text = self
                .socket
                .recv(deadline)
                .unwrap_or_else(|e| panic!("{method}: {e}"));
            let v: Value = serde_json::from_str(&text).expect("CDP sends JSON");
            if v["id"] == id {
                if !v["error"].is_null() {
                    panic!("{method}: {}", v["error"]);
                }
                return v["result"].clone();
            }
            self.note(v);
        }
    }

    /// Keeps an event, and its text if it is an error a person would see in the console.
    fn note(&mut self, v: Value) {
        let p = &v["params"];
        let error = match v["method"].as_str() {
            Some("Runtime.exceptionThrown") => Some(format!(
                "uncaught: {}",
                p["exceptionDetails"]["exception"]["description"]
                    .as_str()
                    .unwrap_or(p["exceptionDetails"]["text"].as_str().unwrap_or("?"))
            )),
            Some("Runtime.consoleAPICalled")
                if matches!(p["type"].as_str(), Some("error" | "assert")) =>
            {
                Some(format!("console.{}: {}", p["type"], p["args"]))
            }
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => Some(format!(
                "log: {} ({})",
                p["entry"]["text"], p["entry"]["url"]
            )),
            _ => None,
        };
        self.errors.extend(error);
        self.events.push_back(v);
        if self.events.len() > 1000 {
            self.events.pop_front();
        }
    }

    /// Waits up to `timeout` for an event named `method` (kept or new).
    fn wait_event(&mut self, method: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
                return self.events.remove(i).expect("just found");
            }
            let text = self
                .socket
                .recv(deadline)
                .unwrap_or_else(|e| panic!("waiting for {method}: {e}"));
            let v: Value = serde_json::from_str(&text).expect("CDP sends JSON");
            self.note(v);
        }
    }

    /// Opens `url` and waits for its load event.
    pub fn open(&mut self, url: &str) {
        self.events.clear();
        let nav = self.call("Page.navigate", json!({ "url": url }));
        assert!(nav["errorText"].is_null(), "opening {url}: {nav}");
        self.wait_event("Page.loadEventFired", Duration::from_secs(30));
    }

    /// Evaluates `expr` in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluating {expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluates `expr` until it is truthy, for up to `timeout`; returns its last value.
    pub fn wait_for(&mut self, what: &str, expr: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(expr);
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?} (last: {v})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the middle of the element `selector` with the mouse, as a person would.
    pub fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        let (x, y) = (
            at[0]
                .as_f64()
                .unwrap_or_else(|| panic!("no element {selector}")),
            at[1].as_f64().unwrap(),
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Replaces the text of the input `selector` by typing `text` into it.
    pub fn type_into(&mut self, selector: &str, text: &str) {
        self.click(selector);
        let sel = serde_json::to_string(selector).unwrap();
        self.eval(&format!("document.querySelector({sel}).select()"));
        self.call("Input.insertText", json!({ "text": text }));
    }

    /// What a person would have seen in the console as errors so far.
    pub fn console_errors(&mut self) -> Vec<String> {
        // Events still in the socket count too.
        self.eval("0");
        self.errors.clone()
    }

    /// A PNG of the whole page (or its first `max_height` pixels) at `path`.
    pub fn screenshot(&mut self, path: &Path, max_height: Option<f64>) {
        let m = self.call("Page.getLayoutMetrics", json!({}));
        let w = m["cssContentSize"]["width"].as_f64().unwrap_or(1280.0);
        let h = m["cssContentSize"]["height"].as_f64().unwrap_or(900.0);
        let h = max_height.map_or(h, |max| h.min(max));
        self.capture(path, (0.0, 0.0, w, h));
    }

    /// A PNG of the element `selector` (with a small margin) at `path`.
    pub fn screenshot_of(&mut self, selector: &str, path: &Path) {
        let sel = serde_json::to_string(selector).unwrap();
        let r = self.eval(&format!(
            "(() => {{ const r = document.querySelector({sel}).getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, r.width, r.height]; }})()"
        ));
        let n = |i: usize| {
            r[i].as_f64()
                .unwrap_or_else(|| panic!("no element {selector}"))
        };
        self.capture(path, (n(0) - 8.0, n(1) - 8.0, n(2) + 16.0, n(3) + 16.0));
    }

    fn capture(&mut self, path: &Path, (x, y, w, h): (f64, f64, f64, f64)) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true,
                    "clip": { "x": x.max(0.0), "y": y.max(0.0), "width": w, "height": h, "scale": 1 } }),
        );
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Politely first, so chromium can tidy its helpers; then the whole group.
        let close = json!({ "id": u64::MAX, "method": "Browser.close" }).to_string();
        let _ = self.socket.send(&close);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill_group(&mut self.child);
    }
}

/// Kills the browser's process group (it leads it) and reaps the browser.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// Standard base64 (screenshots come so).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, c)| acc | value(*c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
