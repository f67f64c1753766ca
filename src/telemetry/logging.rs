//! Process logging: `tracing` to stderr, as text or JSON, written off the request path.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What the HTTP libraries may log under `default_level`. h2 and hyper warn about what
/// a peer does wrong, one line per frame: an HTTP/2 client sending unsolicited PING
/// acknowledgements would write a line for each (20,000 lines from 340 KB), so a client
/// could flood the log. weir reports what matters about a peer itself; `RUST_LOG` can
/// still turn their lines on (`RUST_LOG=info,h2=debug`).
const QUIET_LIBRARIES: &str = "h2=error,hyper=error";

/// Installs the global subscriber. `RUST_LOG` overrides `default_level` (for example
/// `RUST_LOG=weir=debug`). Lines are handed to a writer thread, so a slow terminal or
/// log collector never blocks a worker; the returned guard flushes them on exit.
pub fn init(format: LogFormat, default_level: &str) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},{QUIET_LIBRARIES}")));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(8 * 1024)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    let result = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // A second init (tests, demo inside a host program) keeps the first subscriber.
    drop(result);
    guard
}
