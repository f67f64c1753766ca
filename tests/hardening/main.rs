//! Issue 12 ("Hardening"): each defect the security review found, shown fixed on the
//! real binary. One test binary (`cargo test --test hardening`), one module per area:
//!
//! - [`framing`]: Host and request-target rules, `Content-Length` lists, transfer
//!   codings, `Connection`-listed headers, chunked re-framing and the bare-LF smuggling
//!   case, `Upgrade: h2c`;
//! - [`preface`]: bad HTTP/2 prefaces on the shared port, the advertised stream limit,
//!   protocol detection that neither spins nor holds closed connections;
//! - [`timeouts`]: the request-header timeout, slow request bodies
//!   (`request_timeout`, `stream_idle_timeout`) and stalled upstream responses;
//! - [`zero_window`]: the HTTP/2 zero-window attack;
//! - [`limits`]: `max_connections`, PING-ack floods, the per-destination
//!   `connection_pool` limit;
//! - [`endpoints`]: connect-failure backoff of dead endpoints;
//! - [`admin`]: the admin token, the `Bearer` scheme, admin body size and time limits.
//!
//! `WEIR_BIN=/path/to/weir` runs them against another build (see
//! `tests/support/process.rs`).

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod endpoints;
mod framing;
mod limits;
mod preface;
mod timeouts;
mod zero_window;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;

/// weir with one destination `app` on `upstream` and one route to it, plus `extra`
/// top-level keys; the access log is on unless `extra` says otherwise.
async fn weir_to(upstream: SocketAddr, extra: &str) -> Weir {
    let log = if extra.contains("access_log:") {
        ""
    } else {
        "access_log: true"
    };
    Weir::start(&format!(
        r#"
{log}
{extra}
destinations:
  app: {{ endpoints: ["{upstream}"] }}
routes:
  - name: all
    split: {{ app: 1 }}
"#
    ))
    .await
}

/// `GET /stats/connections`.
async fn connections(weir: &Weir) -> serde_json::Value {
    admin_json(weir.admin, "/stats/connections").await
}

/// Polls `/stats/connections` until `pred` holds; panics with the last reading after
/// `limit`. Returns how long it took.
async fn wait_connections(
    weir: &Weir,
    what: &str,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let json = connections(weir).await;
        if pred(&json) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; /stats/connections: {json}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `downstream_active` of `/stats/connections`.
fn downstream_active(json: &serde_json::Value) -> i64 {
    json["downstream_active"]
        .as_i64()
        .expect("downstream_active")
}

/// `upstream_active` of destination `app` in `/stats/connections`.
fn upstream_active(json: &serde_json::Value) -> i64 {
    json["destinations"]["app"]["upstream_active"]
        .as_i64()
        .expect("destinations.app.upstream_active")
}

/// The value of the series `series` (name and labels as exposed, e.g.
/// `weir_upstream_overflow_total{destination="app"}`) in `/metrics`; `None` when absent.
async fn metric(weir: &Weir, series: &str) -> Option<u64> {
    let (_, text) = admin_get(weir.admin, "/metrics")
        .await
        .expect("GET /metrics");
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Whether an access-log line carries response flag `flag`.
fn has_flag(line: &serde_json::Value, flag: &str) -> bool {
    line["flags"]
        .as_str()
        .is_some_and(|v| v.split(',').any(|f| f == flag))
}

/// HTTP/2 frames on raw TCP (RFC 9113 §4.1), for what no client library sends.
mod frames {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const SETTINGS: u8 = 4;
    pub const HEADERS: u8 = 1;
    pub const RST_STREAM: u8 = 3;
    pub const PING: u8 = 6;
    /// HEADERS flags END_STREAM | END_HEADERS.
    pub const END_STREAM_HEADERS: u8 = 0x5;
    /// RST_STREAM's REFUSED_STREAM.
    pub const REFUSED_STREAM: u32 = 7;
    pub const ACK: u8 = 1;
    /// A GET of `/` for `shop`, HPACK-encoded without the dynamic table: `:method GET`,
    /// `:scheme http`, `:path /` indexed, `:authority shop` literal, not indexed.
    pub const GET_SHOP: &[u8] = &[0x82, 0x86, 0x84, 0x01, 0x04, b's', b'h', b'o', b'p'];
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 3;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// One frame: `(type, flags, stream, payload)`; `None` at the end of the stream.
    pub async fn read(stream: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.ok()?;
        Some((head[3], head[4], id, payload))
    }

    /// Opens an HTTP/2 connection (preface and an empty SETTINGS) and returns it with
    /// the server's first SETTINGS frame as `(identifier, value)` pairs.
    pub async fn open(addr: std::net::SocketAddr) -> (TcpStream, Vec<(u16, u32)>) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        stream.write_all(&hello).await.expect("write preface");
        loop {
            let (kind, flags, _, payload) = read(&mut stream)
                .await
                .expect("the server closed before its SETTINGS");
            if kind == SETTINGS && flags & ACK == 0 {
                let settings = payload
                    .chunks_exact(6)
                    .map(|c| {
                        (
                            u16::from_be_bytes([c[0], c[1]]),
                            u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                        )
                    })
                    .collect();
                stream
                    .write_all(&frame(SETTINGS, ACK, 0, &[]))
                    .await
                    .expect("write SETTINGS ack");
                return (stream, settings);
            }
        }
    }
}
