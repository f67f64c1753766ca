//! `weir upstream`: a small, fast synthetic HTTP server with a known latency and error
//! profile. It is the backend for tests, benchmarks and demos, and a load-test target.
//!
//! Every request gets, after a latency drawn uniformly from the configured range, a 200
//! whose body names the upstream (and the header `x-weir-upstream: NAME`), or a 500 at
//! the configured error rate. Request bodies are read to the end and their size is
//! echoed in `x-weir-request-bytes`. WebSocket upgrades get an echo server. A profile
//! can also burn CPU and keep memory per request, to play a costlier version.

mod delay;
mod websocket;
mod work;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::config::duration;
use crate::listener::{Detected, Prefixed};
use crate::routing::random;

/// A uniform latency range, written `5ms` or `2ms..8ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencyRange {
    pub min: Duration,
    pub max: Duration,
}

impl LatencyRange {
    pub fn fixed(d: Duration) -> Self {
        LatencyRange { min: d, max: d }
    }

    pub fn sample(&self) -> Duration {
        if self.max <= self.min {
            return self.min;
        }
        self.min + (self.max - self.min).mul_f64(random::next_f64())
    }
}

/// As `--latency` takes it: `2ms..6ms`, or `5ms` for a fixed latency.
impl std::fmt::Display for LatencyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn one(d: Duration) -> String {
            if d.subsec_nanos().is_multiple_of(1_000_000) {
                format!("{}ms", d.as_millis())
            } else if d.subsec_nanos().is_multiple_of(1_000) {
                format!("{}us", d.as_micros())
            } else {
                format!("{}ns", d.as_nanos())
            }
        }
        if self.min == self.max {
            f.write_str(&one(self.min))
        } else {
            write!(f, "{}..{}", one(self.min), one(self.max))
        }
    }
}

impl std::str::FromStr for LatencyRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (duration::parse(a)?, duration::parse(b)?),
            None => {
                let d = duration::parse(s)?;
                (d, d)
            }
        };
        if max < min {
            return Err(format!("`{s}`: the upper bound is below the lower bound"));
        }
        Ok(LatencyRange { min, max })
    }
}

/// How a synthetic upstream behaves.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub latency: LatencyRange,
    /// Share of requests answered with 500, in `[0, 1]`.
    pub error_rate: f64,
    /// Response body size; `None` means just the name and a newline.
    pub body_bytes: Option<usize>,
    /// CPU time burnt per request (busy on the serving thread).
    pub cpu_per_request: Duration,
    /// Bytes kept for good per request, until `leak_cap` bytes are kept.
    pub leak_per_request: usize,
    pub leak_cap: usize,
}

/// The default cap on leaked memory: enough to show, not enough to hurt.
pub const DEFAULT_LEAK_CAP: usize = 256 * 1024 * 1024;

impl Profile {
    pub fn new(name: &str) -> Self {
        Profile {
            name: name.to_owned(),
            latency: LatencyRange::default(),
            error_rate: 0.0,
            body_bytes: None,
            cpu_per_request: Duration::ZERO,
            leak_per_request: 0,
            leak_cap: DEFAULT_LEAK_CAP,
        }
    }
}

struct Prepared {
    profile: Profile,
    name_header: HeaderValue,
    body: Bytes,
    error_body: Bytes,
}

/// Serves `profile` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, profile: Profile) {
    let name_header =
        HeaderValue::from_str(&profile.name).unwrap_or(HeaderValue::from_static("upstream"));
    let body = match profile.body_bytes {
        None => Bytes::from(format!("{}\n", profile.name)),
        Some(n) => {
            let mut b = format!("{}\n", profile.name).into_bytes();
            b.resize(n, b'.');
            if n > 0 {
                b[n - 1] = b'\n';
            }
            Bytes::from(b)
        }
    };
    let error_body = Bytes::from(format!("{}: injected error\n", profile.name));
    let prepared = Arc::new(Prepared {
        profile,
        name_header,
        body,
        error_body,
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let prepared = prepared.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut stream = stream;
            let patience = Duration::from_secs(120);
            let detected = crate::listener::detect(&mut stream, patience, patience).await;
            let (http2, prefix) = match detected {
                Ok(Detected::Http1(prefix, _)) => (false, prefix),
                Ok(Detected::Http2(prefix)) => (true, prefix),
                _ => return,
            };
            let stream = Prefixed::new(prefix, stream);
            let service = service_fn(move |req| {
                let prepared = prepared.clone();
                async move { Ok::<_, Infallible>(answer(&prepared, req).await) }
            });
            let io = TokioIo::new(stream);
            let result = if http2 {
                http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(1024)
                    .serve_connection(io, service)
                    .await
            } else {
                http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(io, service)
                    .with_upgrades()
                    .await
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "synthetic upstream connection ended with an error");
            }
        });
    }
}

/// Binds `addr` and serves `profile` on the current runtime, in the background.
pub async fn spawn(
    addr: SocketAddr,
    profile: Profile,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, tokio::spawn(serve(listener, profile))))
}

async fn answer(p: &Prepared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if websocket::is_websocket(&req) {
        return websocket::accept(req, &p.profile.name);
    }
    let mut received = 0u64;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => received += frame.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => break,
        }
    }
    delay::sleep(p.profile.latency.sample()).await;
    work::burn(p.profile.cpu_per_request);
    work::leak(p.profile.leak_per_request, p.profile.leak_cap);
    let failed = p.profile.error_rate > 0.0 && random::next_f64() < p.profile.error_rate;
    let (status, body) = if failed {
        (StatusCode::INTERNAL_SERVER_ERROR, p.error_body.clone())
    } else {
        (StatusCode::OK, p.body.clone())
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert("x-weir-upstream", p.name_header.clone());
    h.insert("x-weir-request-bytes", HeaderValue::from(received));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_ranges_parse() {
        let r: LatencyRange = "2ms..8ms".parse().unwrap();
        assert_eq!(r.min, Duration::from_millis(2));
        assert_eq!(r.max, Duration::from_millis(8));
        let f: LatencyRange = "5ms".parse().unwrap();
        assert_eq!(f, LatencyRange::fixed(Duration::from_millis(5)));
        assert!("8ms..2ms".parse::<LatencyRange>().is_err());
        for _ in 0..1000 {
            let d = r.sample();
            assert!(d >= r.min && d <= r.max);
        }
    }
}
