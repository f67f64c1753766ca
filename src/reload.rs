//! Config hot reload: file watching, SIGHUP and a periodic check all lead to one
//! [`ConfigReloader::reload`], which re-reads the file, skips it when its content is
//! unchanged, refuses it when it is invalid or changes a restart-only setting, and
//! otherwise swaps in a new snapshot.

mod tls;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use tls::TlsReloader;
pub use watch::DirWatcher;

use crate::config::{Config, ConfigError};
use crate::runtime::DrainSignal;
use crate::state::Shared;

/// Events closer together than this are one change: a ConfigMap swap is 3 to 7 events,
/// an editor's save 2 or 3.
const DEBOUNCE: Duration = Duration::from_millis(40);
/// A safety net for lost events (an overflowed inotify queue, a re-created directory).
const PERIODIC_CHECK: Duration = Duration::from_secs(10);
/// The periodic check's trigger name: it finds nothing most of the time, and says so
/// only at debug level.
const PERIODIC: &str = "periodic check";
const SIGHUP: &str = "SIGHUP";

/// What one reload attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Same content as the running config: nothing to do.
    Unchanged,
    Applied {
        version: u64,
    },
    Refused(String),
}

/// Settings that only a restart can change: the listeners, the threads, and what they
/// were built with. A reload that changes any of them is refused whole.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut changes = Vec::new();
    let mut check = |key: &str, a: String, b: String| {
        if a != b {
            changes.push(format!("`{key}` changed from {a} to {b}"));
        }
    };
    let path = |p: &Option<PathBuf>| p.as_ref().map_or_else(unset, |p| p.display().to_string());
    let count = |n: Option<usize>| n.map_or_else(unset, |n| n.to_string());
    let secs = |d: Option<Duration>| d.map_or_else(unset, duration_text);
    check("listen", old.listen.to_string(), new.listen.to_string());
    check("admin", old.admin.to_string(), new.admin.to_string());
    check(
        "admin_token_file",
        path(&old.admin_token_file),
        path(&new.admin_token_file),
    );
    check("workers", count(old.workers), count(new.workers));
    check(
        "idle_timeout",
        duration_text(old.idle_timeout),
        duration_text(new.idle_timeout),
    );
    check(
        "drain_timeout",
        duration_text(old.drain_timeout),
        duration_text(new.drain_timeout),
    );
    check(
        "request_header_timeout",
        duration_text(old.limits.request_header_timeout),
        duration_text(new.limits.request_header_timeout),
    );
    check(
        "request_timeout",
        secs(old.limits.request_timeout),
        secs(new.limits.request_timeout),
    );
    check(
        "stream_idle_timeout",
        secs(old.limits.stream_idle_timeout),
        secs(new.limits.stream_idle_timeout),
    );
    check(
        "max_connections",
        count(old.limits.max_connections),
        count(new.limits.max_connections),
    );
    check(
        "http2_max_concurrent_streams",
        old.limits.http2_max_concurrent_streams.to_string(),
        new.limits.http2_max_concurrent_streams.to_string(),
    );
    check(
        "telemetry",
        old.telemetry.to_string(),
        new.telemetry.to_string(),
    );
    check(
        "latency_window",
        duration_text(old.latency_window),
        duration_text(new.latency_window),
    );
    let tls = |c: &Config| if c.tls.is_some() { "set" } else { "unset" }.to_owned();
    check("tls", tls(old), tls(new));
    changes
}

fn unset() -> String {
    "unset".to_owned()
}

/// A duration as the config file writes it: `10s`, `1500ms`.
fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{d:?}")
    }
}

/// Reloads one config file into the shared state.
#[derive(Debug)]
pub struct ConfigReloader {
    path: PathBuf,
    pub(crate) shared: Arc<Shared>,
    /// The text the running config came from.
    running_hash: u64,
    /// The last text looked at, good or bad: a bad file is reported once, not at every
    /// periodic check.
    seen_hash: u64,
    /// The file's modification time when last looked at: a `touch` or a rewrite with the
    /// same content is answered in the log, while events about other files of the
    /// directory (the watch is on the directory) stay quiet.
    seen_mtime: Option<SystemTime>,
}

impl ConfigReloader {
    /// `initial_hash` is the hash of the text the running config was loaded from.
    pub fn new(path: PathBuf, shared: Arc<Shared>, initial_hash: u64) -> Self {
        let seen_mtime = modified(&path);
        ConfigReloader {
            path,
            shared,
            running_hash: initial_hash,
            seen_hash: initial_hash,
            seen_mtime,
        }
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// Re-reads the file (through any symlink) and applies it if it changed and is valid.
    pub fn reload(&mut self, trigger: &'static str) -> ReloadOutcome {
        let mtime = modified(&self.path);
        let touched = mtime != self.seen_mtime;
        self.seen_mtime = mtime;
        let config = match Config::load(&self.path) {
            Ok(config) => config,
            Err(error) => {
                // An unreadable or invalid file: the content hash tells whether this is
                // news or the same broken file seen again.
                let hash = match &error {
                    ConfigError::Read { .. } => None,
                    ConfigError::Invalid { .. } => std::fs::read(&self.path)
                        .ok()
                        .map(|b| crate::config::text_hash(&b)),
                };
                return self.refuse(trigger, hash, error.to_string());
            }
        };
        if config.text_hash == self.running_hash {
            // Unchanged, or back to the running text after a refused edit.
            self.seen_hash = config.text_hash;
            let version = self.shared.control().version;
            if self.shared.reload_reverted() {
                tracing::info!(
                    trigger,
                    version,
                    "config file is back to the running config; the refused edit is gone and nothing changes"
                );
            } else if trigger == SIGHUP || (touched && trigger != PERIODIC) {
                // Asked for (SIGHUP), or the file itself was touched or rewritten: say so.
                tracing::info!(
                    trigger,
                    version,
                    "config file unchanged (same content as the running config); nothing to apply"
                );
            } else {
                tracing::debug!(trigger, version, "config file unchanged");
            }
            return ReloadOutcome::Unchanged;
        }
        let old = self.shared.control().config.clone();
        let changes = restart_only_changes(&old, &config);
        if !changes.is_empty() {
            let hash = config.text_hash;
            let message = format!(
                "{}: {}; these need a restart, so the reload was refused and the running config keeps serving",
                self.path.display(),
                changes.join("; ")
            );
            return self.refuse(trigger, Some(hash), message);
        }
        let hash = config.text_hash;
        let (routes, destinations) = (config.routes.len(), config.destinations.len());
        let version = match self.shared.apply_config(config) {
            Ok(version) => version,
            Err(error) => {
                let message = format!(
                    "{}: {error}; the reload was refused and the running config keeps serving",
                    self.path.display()
                );
                return self.refuse(trigger, Some(hash), message);
            }
        };
        self.seen_hash = hash;
        self.running_hash = hash;
        tracing::info!(trigger, version, routes, destinations, "config reloaded");
        ReloadOutcome::Applied { version }
    }

    fn refuse(
        &mut self,
        trigger: &'static str,
        hash: Option<u64>,
        message: String,
    ) -> ReloadOutcome {
        // Report a given bad file once, not at every periodic check.
        if hash.is_none() || hash != Some(self.seen_hash) {
            tracing::error!(trigger, error = %message, "config reload refused; the previous config keeps serving");
            self.shared.reload_failed(message.clone());
        }
        if let Some(hash) = hash {
            self.seen_hash = hash;
        }
        ReloadOutcome::Refused(message)
    }
}

/// The modification time of `path` (through any symlink), if it can be read.
fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Runs the reload loop until `stop`: the config file (when there is one) and every TLS
/// file are reloaded on changes in their directories (debounced), on SIGHUP when
/// `sighup`, and on a periodic check.
pub async fn run(
    mut config: Option<ConfigReloader>,
    mut tls: TlsReloader,
    sighup: bool,
    mut stop: DrainSignal,
) {
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = match DirWatcher::new(tx) {
        Ok(w) => Some(w),
        Err(error) => {
            tracing::warn!(%error, "file watching unavailable; relying on SIGHUP and the periodic check");
            None
        }
    };
    let watched = |config: &Option<ConfigReloader>, tls: &TlsReloader| {
        let mut files: Vec<PathBuf> = config.iter().map(|c| c.path().clone()).collect();
        files.extend(tls.watched_paths());
        files
    };
    if let Some(w) = watcher.as_mut() {
        w.watch_files(&watched(&config, &tls));
    }
    let mut hup = if sighup {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    } else {
        None
    };
    let mut periodic = tokio::time::interval(PERIODIC_CHECK);
    periodic.tick().await;
    loop {
        let trigger = tokio::select! {
            () = stop.wait() => return,
            Some(()) = events.recv() => {
                // Let the burst of events of one change settle.
                loop {
                    tokio::select! {
                        Some(()) = events.recv() => {}
                        () = tokio::time::sleep(DEBOUNCE) => break,
                    }
                }
                "file change"
            }
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => SIGHUP,
            _ = periodic.tick() => PERIODIC,
        };
        let mut changed = false;
        if let Some(reloader) = config.as_mut() {
            let outcome = reloader.reload(trigger);
            if let ReloadOutcome::Applied { .. } = outcome {
                let current = reloader.shared.control().config.clone();
                tls.adopt_config(&current);
            }
            changed = outcome != ReloadOutcome::Unchanged;
        }
        // File reads and certificate parsing block: this runs on the control thread,
        // never on a worker.
        changed |= tls.reload_all() > 0;
        if changed && let Some(w) = watcher.as_mut() {
            w.watch_files(&watched(&config, &tls));
        }
    }
}
