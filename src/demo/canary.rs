//! `weir demo --canary good|bad`: a whole canary rollout in about a minute, with nothing
//! to set up. Release, baseline and canary run as child processes of this binary (`weir
//! upstream`), so the `process` source measures each one's CPU and memory; weir splits
//! a steady load between them; `weir canary`'s controller drives the stages, judges, and
//! promotes or rolls back.
//!
//! `good`: the canary is the baseline again, and is promoted. `bad`: the talk's canary,
//! a little faster but twice the CPU per request and memory growing: the resource group
//! fails and it is rolled back.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DemoError, DemoOptions, load};
use crate::canary::rollout::{self, Outcome};
use crate::config::Config;
use crate::server::Server;

/// Which canary the demo rolls out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryKind {
    Good,
    Bad,
}

/// The rollout the demo runs; `{admin}` is filled in.
const ROLLOUT: &str = r#"
target: { admin: ["http://{admin}"], route: primary }
interval: 1s
stages:
  - { weights: { release: 80, baseline: 10, canary: 10 }, warmup: 3s, duration: 20s }
  - { weights: { release: 34, baseline: 33, canary: 33 }, duration: 25s }
min_points: 10
promote:  { canary: 100 }
rollback: { release: 100 }
thresholds: { pass: 95, marginal: 75 }
groups: { istio: 60, kubernetes: 40 }
metrics:
  - { name: healthy-responses, group: istio, source: weir, query: healthy_responses, direction: decrease }
  - { name: p95-latency, group: istio, source: weir, query: latency_p95, direction: increase }
  - { name: cpu, group: kubernetes, source: process, query: cpu, direction: increase, allowed_increase: 1.2 }
  - { name: memory, group: kubernetes, source: process, query: rss, direction: increase, allowed_increase: 1.1 }
"#;

/// The proxy's config; the upstream ports are filled in.
const PROXY: &str = r#"
listen: "{listen}"
admin: "{admin}"
service: shop
namespace: demo
reporter: destination
destinations:
  release:  { endpoints: ["{release}"] }
  baseline: { endpoints: ["{baseline}"] }
  canary:   { endpoints: ["{canary}"], labels: { destination_version: v2 } }
routes:
  - name: primary
    split: { release: 100 }
    timeout: 15s
"#;

/// Child processes, killed when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `weir upstream` with `args` on a free port and returns its address.
fn upstream(children: &mut Children, args: &[&str]) -> Result<SocketAddr, DemoError> {
    let exe = std::env::current_exe().map_err(DemoError::Upstream)?;
    let mut child = Command::new(exe)
        .args([
            "--log-format",
            "json",
            "--log-level",
            "info",
            "upstream",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
        ])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(DemoError::Upstream)?;
    let stderr = child.stderr.take();
    children.0.push(child);
    let stderr = stderr.ok_or_else(|| DemoError::Upstream(std::io::Error::other("no stderr")))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = v["listen"]
                    .as_str()
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            {
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).map_err(|_| {
        DemoError::Upstream(std::io::Error::other(
            "a synthetic upstream did not start within 10 s",
        ))
    })
}

/// Runs the canary demo; the exit status is 0 when the outcome is the expected one.
pub async fn run(opts: &DemoOptions, kind: CanaryKind) -> Result<u8, DemoError> {
    let mut children = Children(Vec::new());
    let same = ["--latency", "3ms..7ms", "--cpu-per-request", "2ms"];
    let release = upstream(&mut children, &[&["--name", "release"][..], &same].concat())?;
    let baseline = upstream(
        &mut children,
        &[&["--name", "baseline"][..], &same].concat(),
    )?;
    let canary = match kind {
        CanaryKind::Good => upstream(&mut children, &[&["--name", "canary"][..], &same].concat())?,
        CanaryKind::Bad => upstream(
            &mut children,
            &[
                "--name",
                "canary",
                "--latency",
                "1ms..3ms",
                "--cpu-per-request",
                "4ms",
                "--leak-per-request",
                "65536",
            ],
        )?,
    };
    let text = PROXY
        .replace("{listen}", &opts.listen.to_string())
        .replace("{admin}", &opts.admin.to_string())
        .replace("{release}", &release.to_string())
        .replace("{baseline}", &baseline.to_string())
        .replace("{canary}", &canary.to_string());
    let mut config = Config::parse(&text, "<embedded canary demo config>")?;
    config.workers = Some(1);
    let server = Server::start(config)?;
    let proxy = server.listen_addr();
    let admin = server.admin_addr();
    let describe = match kind {
        CanaryKind::Good => "good: the canary is the baseline again (3-7 ms, 2 ms CPU per request)",
        CanaryKind::Bad => {
            "bad: the canary is a little faster (1-3 ms) but burns 4 ms CPU per request (baseline 2 ms) and keeps 64 KiB per request"
        }
    };
    println!("weir demo --canary {describe}");
    println!(
        "  proxy http://{proxy}  admin http://{admin}  upstreams: release {release}, baseline {baseline}, canary {canary}; {} requests/s",
        opts.rate
    );
    let stats = Arc::new(load::LoadStats::default());
    let load_task = tokio::spawn(load::run(proxy, opts.rate, opts.connections, stats));
    let rollout_text = ROLLOUT.replace("{admin}", &admin.to_string());
    let cfg = rollout::config::parse(&rollout_text, Path::new("<embedded rollout>"))
        .map_err(DemoError::Rollout)?;
    let options = rollout::Options {
        config_file: "<embedded rollout>".into(),
        report_dir: None,
        dry_run: false,
        live: true,
    };
    let started = Instant::now();
    let result = rollout::run(&cfg, &options).await;
    load_task.abort();
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .map_err(|e| DemoError::Runtime(std::io::Error::other(e)))?;
    drop(children);
    let result = result.map_err(|e| DemoError::Runtime(std::io::Error::other(e)))?;
    let took = started.elapsed().as_secs();
    let resources_failed = result.last_judgement.as_ref().is_some_and(|j| {
        j.score
            .groups
            .iter()
            .any(|g| g.name == "kubernetes" && g.score < 100.0)
            && j.score
                .groups
                .iter()
                .any(|g| g.name == "istio" && g.score == 100.0)
    });
    let report = result.report_dir.join("report.json");
    let (expected, verdict) = match (kind, &result.outcome) {
        (CanaryKind::Good, Outcome::Promoted) => (true, "promoted, as expected".to_owned()),
        (CanaryKind::Bad, Outcome::RolledBack(why)) if resources_failed => (
            true,
            format!("rolled back because the resource group failed, as expected: {why}"),
        ),
        (_, Outcome::Interrupted) => {
            println!(
                "weir demo: interrupted after {took} s; rolled back; report: {}",
                report.display()
            );
            return Ok(130);
        }
        (_, other) => (false, format!("unexpected outcome: {other:?}")),
    };
    println!(
        "weir demo: {verdict} ({took} s); report: {}",
        report.display()
    );
    Ok(if expected { 0 } else { 1 })
}
