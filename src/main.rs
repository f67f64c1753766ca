//! The `weir` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use weir::config::{Config, duration};
use weir::synthetic::{LatencyRange, Profile};
use weir::telemetry::logging::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A traffic-split sidecar proxy for canary releases",
    after_help = "Start with `weir demo` (no setup), then `weir check` and `weir run` on config/weir.yaml. \
                  `weir help COMMAND` describes each command."
)]
struct Cli {
    /// Log output format: `text` for people, `json` for log pipelines (one object a line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, help_heading = GLOBAL)]
    log_format: LogFormat,
    /// Log level when RUST_LOG is unset: error, warn, info, debug or trace (RUST_LOG,
    /// e.g. `weir=debug`, overrides it).
    #[arg(long, global = true, default_value = "info", help_heading = GLOBAL)]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

/// The heading of the flags every command takes, listed after the command's own.
const GLOBAL: &str = "Global options";

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the sidecar) on a config file, reloading it when it changes.
    Run {
        /// The config file (YAML; see config/weir.yaml). Watched: a changed file is
        /// reloaded, a bad one refused while the running config keeps serving.
        #[arg(long, short)]
        config: PathBuf,
        /// Worker threads. Takes precedence over `workers` in the config file, which
        /// takes precedence over the default: one per CPU available to the process.
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Validate a config file: exit 0, or print every problem and exit 1.
    Check {
        /// The config file to validate, as `weir run --config` would read it.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// A synthetic upstream with a known latency and error profile.
    Upstream {
        /// Address to serve HTTP/1.1 and h2c on (`0.0.0.0:8080` in a container).
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// The name it answers with (body and `x-weir-upstream`).
        #[arg(long, default_value = "upstream")]
        name: String,
        /// Latency per request: `5ms` or a uniform range `2ms..8ms`.
        #[arg(long, default_value = "0")]
        latency: LatencyRange,
        /// Share of requests answered with 500, from 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        error_rate: f64,
        /// Response body size in bytes (default: the name and a newline).
        #[arg(long)]
        body_bytes: Option<usize>,
        /// Runtime threads (default: one per available CPU).
        #[arg(long)]
        workers: Option<usize>,
        /// CPU time to burn per request (real work on the serving thread), e.g. `2ms`.
        #[arg(long, value_parser = duration::parse, default_value = "0")]
        cpu_per_request: Duration,
        /// Bytes of memory to keep per request (written, so resident), up to --leak-cap.
        #[arg(long, default_value_t = 0)]
        leak_per_request: usize,
        /// The most memory --leak-per-request keeps, in bytes.
        #[arg(long, default_value_t = weir::synthetic::DEFAULT_LEAK_CAP)]
        leak_cap: usize,
    },
    /// Judge canary against baseline samples as Kayenta does: exit 0 pass, 3 marginal,
    /// 1 fail, 2 bad input.
    Judge {
        /// The samples: a JSON file with `groups`, `thresholds` and `metrics`.
        #[arg(long)]
        samples: PathBuf,
        /// Also write the judgement as JSON to this file (`-` for stdout, which then
        /// gets only the JSON; the table goes to stderr).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Drive running weirs through a canary rollout: judge at every interval, promote
    /// or roll back. Exit 0 promoted, 1 rolled back, 2 bad config or a lost target,
    /// 130 interrupted (rolled back).
    Canary {
        /// The rollout: targets, stages, metrics (see config/canary.yaml).
        #[arg(long, short)]
        config: PathBuf,
        /// Where report.json goes (default: weir-canary-YYYYMMDD-HHMMSS/).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Judge without changing any weight.
        #[arg(long)]
        dry_run: bool,
        /// Only validate the config and exit: 0, or 2 with the problem and its place.
        /// Nothing is contacted.
        #[arg(long, conflicts_with_all = ["dry_run", "report"])]
        check: bool,
    },
    /// Render a canary run's report.json as one self-contained HTML page (`weir canary`
    /// also writes it, as report.html beside report.json).
    Report {
        /// The report.json of a `weir canary` run.
        json: PathBuf,
        /// Where the page goes (default: report.html beside the JSON).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Run weir on an embedded config with three synthetic upstreams and a client load,
    /// with a live table, for 60 s (then a summary); Ctrl-C stops it sooner.
    Demo {
        /// The proxy's address. The default is also config/weir.yaml's `listen`: a
        /// `weir run` on it cannot run at the same time.
        #[arg(long, default_value = weir::config::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// The admin API's and dashboard's address (default: config/weir.yaml's `admin`).
        #[arg(long, default_value = weir::config::DEFAULT_ADMIN)]
        admin: SocketAddr,
        /// How long the plain demo runs before its summary, e.g. `30s`, `5m`; `0` runs
        /// until Ctrl-C. (A --canary demo runs until its rollout ends.)
        #[arg(long, value_parser = duration::parse, default_value = "60s")]
        duration: Duration,
        /// Client requests per second (default 200; 400 with --canary).
        #[arg(long)]
        rate: Option<u32>,
        /// Client keep-alive connections.
        #[arg(long, default_value_t = 8)]
        connections: u32,
        /// Roll out a canary instead: `good` is promoted, `bad` (twice the CPU, memory
        /// growing) rolled back. Exit 0 when the outcome is the expected one.
        #[arg(long, value_enum)]
        canary: Option<DemoCanary>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DemoCanary {
    Good,
    Bad,
}

// mimalloc: the request path allocates and frees a few dozen small blocks per request
// (header maps, frames, futures), and glibc's malloc was 12 % of an HTTP/2 request's
// instructions. `no_thp` keeps it from backing its arenas with transparent huge pages,
// which would double the idle resident size.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log_guard = logging::init(cli.log_format, &cli.log_level);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("weir: {}", chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, `what: why: why`, leaving out a cause whose text
/// the message before it already carries (typed errors often say their source).
fn chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { config } => Ok(check(&config)),
        Command::Run { config, workers } => run(&config, workers),
        Command::Upstream {
            listen,
            name,
            latency,
            error_rate,
            body_bytes,
            workers,
            cpu_per_request,
            leak_per_request,
            leak_cap,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&error_rate),
                "--error-rate must be between 0 and 1 (0.01 is 1%)"
            );
            let profile = Profile {
                name,
                latency,
                error_rate,
                body_bytes,
                cpu_per_request,
                leak_per_request,
                leak_cap,
            };
            upstream(listen, profile, workers)
        }
        Command::Judge { samples, json } => Ok(judge(&samples, json.as_deref())),
        Command::Canary {
            config,
            report,
            dry_run,
            check,
        } => canary(config, report, dry_run, check),
        Command::Report { json, output } => {
            let written = weir::canary::report::render_file(&json, output.as_deref())?;
            println!("weir report: {}", written.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            listen,
            admin,
            duration,
            rate,
            connections,
            canary,
        } => {
            let canary = canary.map(|c| match c {
                DemoCanary::Good => weir::demo::canary::CanaryKind::Good,
                DemoCanary::Bad => weir::demo::canary::CanaryKind::Bad,
            });
            let code = weir::demo::run(weir::demo::DemoOptions {
                listen,
                admin,
                duration: (!duration.is_zero()).then_some(duration),
                rate: rate.unwrap_or(if canary.is_some() { 400 } else { 200 }),
                connections,
                canary,
            })?;
            Ok(ExitCode::from(code))
        }
    }
}

/// `weir judge`: exit 0 pass, 3 marginal, 1 fail, 2 bad input.
fn judge(samples: &std::path::Path, json: Option<&std::path::Path>) -> ExitCode {
    use weir::canary::judge;
    const BAD_INPUT: u8 = 2;
    let text = match std::fs::read_to_string(samples) {
        Ok(t) => t,
        Err(error) => {
            eprintln!("weir judge: {}: cannot read it: {error}", samples.display());
            return ExitCode::from(BAD_INPUT);
        }
    };
    let input = match judge::input::parse(&text) {
        Ok(i) => i,
        Err(error) => {
            eprintln!("weir judge: {}:{error}", samples.display());
            return ExitCode::from(BAD_INPUT);
        }
    };
    let judgement = judge::judge(&input);
    let table = judgement.table();
    match json {
        Some(path) if path.as_os_str() == "-" => {
            eprint!("{table}");
            println!("{:#}", judgement.to_json());
        }
        Some(path) => {
            print!("{table}");
            let mut body = format!("{:#}", judgement.to_json());
            body.push('\n');
            if let Err(error) = std::fs::write(path, body) {
                eprintln!("weir judge: {}: cannot write it: {error}", path.display());
                return ExitCode::from(BAD_INPUT);
            }
        }
        None => print!("{table}"),
    }
    ExitCode::from(judgement.score.verdict.exit_code())
}

/// `weir canary`: exit 0 promoted, 1 rolled back, 2 bad config, failed pre-flight or
/// lost target, 130 interrupted.
fn canary(
    config: PathBuf,
    report: Option<PathBuf>,
    dry_run: bool,
    check: bool,
) -> anyhow::Result<ExitCode> {
    use weir::canary::rollout;
    let cfg = match rollout::config::load(&config) {
        Ok(c) => c,
        // A place inside the file follows its path; an unreadable file is its own place.
        Err(error) if error.place == config.display().to_string() => {
            eprintln!("weir canary: {error}");
            return Ok(ExitCode::from(2));
        }
        Err(error) => {
            eprintln!("weir canary: {}:{error}", config.display());
            return Ok(ExitCode::from(2));
        }
    };
    if check {
        println!(
            "{}: ok ({}, {}, route `{}`)",
            config.display(),
            count(cfg.stages.len(), "stage"),
            count(cfg.metrics.len(), "metric"),
            cfg.target.route
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let options = rollout::Options {
        config_file: config,
        report_dir: report,
        dry_run,
        live: true,
    };
    let result = rt.block_on(rollout::run(&cfg, &options))?;
    println!(
        "weir canary: {} (exit {}); report: {}",
        match &result.outcome {
            rollout::Outcome::Promoted if dry_run => "dry run: would promote".to_owned(),
            rollout::Outcome::Promoted => "promoted".to_owned(),
            rollout::Outcome::RolledBack(why) if dry_run =>
                format!("dry run: would roll back: {why}"),
            rollout::Outcome::RolledBack(why) => format!("rolled back: {why}"),
            rollout::Outcome::Interrupted if dry_run => "interrupted".to_owned(),
            rollout::Outcome::Interrupted => "interrupted: rolled back".to_owned(),
            rollout::Outcome::LostTarget(why) if dry_run => format!("lost a target: {why}"),
            rollout::Outcome::LostTarget(why) => format!("lost a target, rolled back: {why}"),
            rollout::Outcome::Preflight(why) => why.clone(),
            rollout::Outcome::PromoteFailed(why) => why.clone(),
        },
        result.outcome.exit_code(),
        result.report_dir.join("report.json").display()
    );
    Ok(ExitCode::from(result.outcome.exit_code()))
}

fn check(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({}, {})",
                path.display(),
                count(config.destinations.len(), "destination"),
                count(config.routes.len(), "route")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// `3 routes`, `1 route`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn run(path: &std::path::Path, workers: Option<usize>) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let options = weir::ServerOptions {
        config_file: Some(path.to_path_buf()),
        sighup: true,
        workers,
    };
    let server = weir::Server::start_with(config, options)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        anyhow::Ok(())
    })?;
    server.shutdown();
    Ok(ExitCode::SUCCESS)
}

fn upstream(
    listen: SocketAddr,
    profile: Profile,
    workers: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n.max(1));
    }
    let rt = builder
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {listen} (--listen): {e}; is another process using it? Pass another --listen"
                )
            })?;
        tracing::info!(
            listen = %listener.local_addr()?,
            name = %profile.name,
            latency = %profile.latency,
            error_rate = profile.error_rate,
            "synthetic upstream serving"
        );
        tokio::select! {
            () = weir::synthetic::serve(listener, profile) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
