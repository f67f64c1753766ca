//! `weir demo`: weir's main job on an embedded default, with nothing else to set up.
//!
//! Three synthetic upstreams (release, baseline and a slightly slower canary with a few
//! errors), the proxy on an 80/10/10 split, and a steady client load; once a second a
//! table shows how the traffic divides. With `--canary good|bad`, a whole canary rollout
//! instead ([`canary`]).

pub mod canary;
mod load;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::server::Server;
use crate::synthetic::{self, LatencyRange, Profile};
use crate::telemetry::StatusClass;

const TEMPLATE: &str = include_str!("../config/demo.yaml");

/// What `weir demo` can be told.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Stop after this long; `None` runs until Ctrl-C.
    pub duration: Option<Duration>,
    /// Client requests per second.
    pub rate: u32,
    pub connections: u32,
    /// Roll out a good or a bad canary instead of the plain split.
    pub canary: Option<canary::CanaryKind>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start a synthetic upstream: {0}")]
    Upstream(#[source] std::io::Error),
    #[error("the embedded demo config is invalid: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0} (pass --listen and --admin to use other ports)")]
    Start(#[from] crate::server::StartError),
    #[error("cannot start the demo runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("the embedded rollout is invalid: {0}")]
    Rollout(#[source] crate::canary::judge::InputError),
}

/// Runs the demo; returns the exit status (the canary demo's is 0 when the outcome is
/// the expected one).
pub fn run(opts: DemoOptions) -> Result<u8, DemoError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("weir-demo")
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?;
    match opts.canary {
        Some(kind) => rt.block_on(canary::run(&opts, kind)),
        None => rt.block_on(demo(opts)).map(|()| 0),
    }
}

async fn demo(opts: DemoOptions) -> Result<(), DemoError> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let ms = Duration::from_millis;
    let release = Profile {
        latency: LatencyRange {
            min: ms(2),
            max: ms(6),
        },
        ..Profile::new("release")
    };
    let baseline = Profile {
        latency: LatencyRange {
            min: ms(2),
            max: ms(6),
        },
        ..Profile::new("baseline")
    };
    let canary = Profile {
        latency: LatencyRange {
            min: ms(3),
            max: ms(9),
        },
        error_rate: 0.02,
        ..Profile::new("canary")
    };
    let mut addrs = Vec::new();
    for profile in [release, baseline, canary] {
        let (addr, _task) = synthetic::spawn(any, profile)
            .await
            .map_err(DemoError::Upstream)?;
        addrs.push(addr);
    }
    let text = TEMPLATE
        .replace("{listen}", &opts.listen.to_string())
        .replace("{admin}", &opts.admin.to_string())
        .replace("{release}", &addrs[0].to_string())
        .replace("{baseline}", &addrs[1].to_string())
        .replace("{canary}", &addrs[2].to_string());
    let mut config = Config::parse(&text, "<embedded demo config>")?;
    config.workers = Some(1);
    let server = Server::start(config)?;
    let proxy = server.listen_addr();
    println!(
        "weir demo: proxy on http://{proxy}  admin on http://{}  dashboard: http://{}/ui",
        server.admin_addr(),
        server.admin_addr()
    );
    println!(
        "  try: curl -si http://{proxy}/   |   curl -si -H 'x-weir-stage: canary' http://{proxy}/   |   curl -s http://{}/ready",
        server.admin_addr()
    );
    println!(
        "  upstreams: release {} (2-6 ms), baseline {} (2-6 ms), canary {} (3-9 ms, 2% errors); split 80/10/10; Ctrl-C stops",
        addrs[0], addrs[1], addrs[2]
    );
    let load = Arc::new(load::LoadStats::default());
    let load_task = tokio::spawn(load::run(proxy, opts.rate, opts.connections, load.clone()));

    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut table = Table::default();
    loop {
        tokio::select! {
            _ = tick.tick() => table.print(&server, started.elapsed(), &load),
            _ = tokio::signal::ctrl_c() => break,
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    load_task.abort();
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .map_err(|e| DemoError::Runtime(std::io::Error::other(e)))?;
    Ok(())
}

/// The once-a-second table; remembers the last counts to show rates.
#[derive(Default)]
struct Table {
    last: HashMap<String, (u64, u64)>,
    last_at: Option<Instant>,
}

impl Table {
    fn print(&mut self, server: &Server, elapsed: Duration, load: &load::LoadStats) {
        let snapshot = server.shared().snapshot.load();
        let now = Instant::now();
        let secs = self
            .last_at
            .map_or(1.0, |t| now.duration_since(t).as_secs_f64().max(0.001));
        self.last_at = Some(now);
        let total: u64 = snapshot
            .destinations
            .iter()
            .map(|d| d.stats.requests())
            .sum();
        println!();
        println!(
            "t={:>4}s  client sent {} ({} failed); downstream connections {}",
            elapsed.as_secs(),
            load.sent.load(Ordering::Relaxed),
            load.failed.load(Ordering::Relaxed),
            server.shared().stats.downstream_active()
        );
        println!(
            "  {:<11} {:>9} {:>7} {:>8} {:>7} {:>9} {:>6}",
            "destination", "requests", "share", "req/s", "5xx", "p95 ms", "conns"
        );
        for d in &snapshot.destinations {
            let s = &d.stats;
            let (n, errors) = (s.requests(), s.responses(StatusClass::ServerError));
            let (last_n, last_e) = self
                .last
                .insert(d.name.to_string(), (n, errors))
                .unwrap_or((0, 0));
            let (dn, de) = (n - last_n, errors - last_e);
            let share = if total == 0 {
                0.0
            } else {
                100.0 * n as f64 / total as f64
            };
            let err_rate = if dn == 0 {
                0.0
            } else {
                100.0 * de as f64 / dn as f64
            };
            let ([p95], _) = s.latency.quantiles([0.95]);
            println!(
                "  {:<11} {:>9} {:>6.1}% {:>8.1} {:>6.1}% {:>9} {:>6}",
                d.name,
                n,
                share,
                dn as f64 / secs,
                err_rate,
                p95.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                s.upstream_active()
            );
        }
    }
}
