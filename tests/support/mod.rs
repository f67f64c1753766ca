//! The one harness of the integration tests: it runs the real `weir` binary on a config
//! written to a temporary directory, real upstream servers on 127.0.0.1 port 0, and real
//! HTTP clients, plaintext or TLS.
//!
//! Every weir process listens on `127.0.0.1:0` (listen and admin); the harness learns
//! the ports from the startup log line, so tests never race for a port. The process is
//! killed when its [`Weir`] is dropped, and its stderr is captured line by line so
//! tests can assert on access-log lines. Everything a test starts here stops by itself
//! when dropped: processes are killed and waited for, temporary directories removed,
//! upstream tasks end with the test's runtime.
//!
//! - [`process`]: the `weir run` process ([`Weir`]) and one-shot `weir check` / `run`;
//! - [`clients`]: the client protocols ([`Proto`]) behaviour tests iterate over, one
//!   connection ([`Conn`]), pooled clients, and responses read whole ([`Got`]);
//! - [`raw`]: HTTP/1.1 on raw TCP for exact wire checks, and the admin listener;
//! - [`upstreams`]: the synthetic upstream, hyper servers, the request-echoing upstream;
//! - [`tls`]: TLS clients, and an upstream that can speak TLS;
//! - [`pki`]: certificates made with rcgen at test time;
//! - [`browser`]: a headless chromium driven through its DevTools protocol.

// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

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
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The binary cargo built for these tests. Launch weir through [`weir_bin`], which
/// `WEIR_BIN` overrides (see `process.rs`).
pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// Runs a test body with a hang guard: a test that has not finished by then fails.
pub async fn within<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {secs}s"),
    }
}

// === TempDir ===

/// A directory under the system temp dir, removed on drop. It holds a test's config
/// and whatever files the config names (certificates, token files), so relative paths
/// in the config resolve inside it.
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

mod browser;
mod clients;
mod pki;
mod process;
mod raw;
mod tls;
mod upstreams;

pub use browser::*;
pub use clients::*;
pub use pki::*;
pub use process::*;
pub use raw::*;
pub use tls::*;
pub use upstreams::*;
