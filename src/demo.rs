//! `weir demo`: weir's main job on an embedded default, with nothing else to set up.
//!
//! Three synthetic upstreams (release, baseline and a slightly slower canary with a few
//! errors), the proxy on an 80/10/10 split, and a steady client load; once a second a
//! table shows how the traffic divides (drawn in place on a terminal), and after
//! `--duration` (60 s by default) a summary of the whole run. With `--canary good|bad`,
//! a whole canary rollout instead ([`canary`]).

pub mod canary;
mod load;
mod table;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::server::Server;
use crate::synthetic::{self, LatencyRange, Profile};

const TEMPLATE: &str = include_str!("../config/demo.yaml");

/// What `weir demo` can be told.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Stop after this long and print the summary; `None` runs until Ctrl-C.
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
    #[error(
        "{0} `weir demo --listen ADDR --admin ADDR` takes other ports (its defaults are config/weir.yaml's, which a `weir run` may hold)"
    )]
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
        "  upstreams: release {} (2-6 ms), baseline {} (2-6 ms), canary {} (3-9 ms, 2% errors); split 80/10/10; {}",
        addrs[0],
        addrs[1],
        addrs[2],
        match opts.duration {
            Some(d) => format!(
                "runs {} s, then a summary (Ctrl-C stops sooner)",
                d.as_secs()
            ),
            None => "runs until Ctrl-C, then a summary".to_owned(),
        }
    );
    let load = Arc::new(load::LoadStats::default());
    let load_task = tokio::spawn(load::run(proxy, opts.rate, opts.connections, load.clone()));

    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut table = table::Table::new(std::io::stdout().is_terminal());
    loop {
        tokio::select! {
            _ = tick.tick() => table.draw(&server, started.elapsed(), opts.duration, &load),
            _ = tokio::signal::ctrl_c() => break,
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    load_task.abort();
    let window = server.shared().control().config.latency_window;
    println!();
    print!(
        "{}",
        table::summary(&server, started.elapsed(), &load, window)
    );
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .map_err(|e| DemoError::Runtime(std::io::Error::other(e)))?;
    Ok(())
}
