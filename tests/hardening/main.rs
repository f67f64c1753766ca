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

mod framing;

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

/// Whether an access-log line carries response flag `flag`.
fn has_flag(line: &serde_json::Value, flag: &str) -> bool {
    line["flags"]
        .as_str()
        .is_some_and(|v| v.split(',').any(|f| f == flag))
}
