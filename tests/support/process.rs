//! The `weir` process under test: started on a config in a temporary directory (or a
//! file the test owns, for reloads), its ports read from its startup line, its stderr
//! captured, killed on drop; and one-shot `weir check` / `weir run` invocations.
//!
//! **`WEIR_BIN`**: every weir process the tests start runs [`weir_bin`]: the binary
//! cargo built (`CARGO_BIN_EXE_weir`), or the one `WEIR_BIN=/path/to/weir` names. Run
//! the same tests against another build (a previous release, to see which tests fail
//! without a fix) with `WEIR_BIN=/tmp/weir-before cargo test --test hardening`.
//! In-process parts (the synthetic upstream) still come from this crate.

use super::*;

/// The weir binary the tests launch: `WEIR_BIN` when set (and not empty), else the
/// one cargo built for this test run.
pub fn weir_bin() -> PathBuf {
    match std::env::var_os("WEIR_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(WEIR),
    }
}

/// How long weir may take to start and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// stderr lines of a weir process, collected by a reader thread.
#[derive(Default)]
pub struct Logs {
    lines: Mutex<Vec<String>>,
}

impl Logs {
    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// The log format weir runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A running `weir run` process, killed on drop.
pub struct Weir {
    child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub format: LogFormat,
    logs: Arc<Logs>,
    exited: Option<ExitStatus>,
    dir: Option<TempDir>,
}

impl Weir {
    /// Starts weir with `yaml` (JSON logs). `listen` and `admin` are set to
    /// `127.0.0.1:0` unless the YAML sets them. Returns once `/ready` answers 200.
    pub async fn start(yaml: &str) -> Weir {
        Weir::start_with(yaml, LogFormat::Json).await
    }

    pub async fn start_with(yaml: &str, format: LogFormat) -> Weir {
        Weir::start_in(TempDir::new("run"), yaml, format).await
    }

    /// Starts weir with `yaml` written to `weir.yaml` in `dir`, beside the files the
    /// test put there first (certificates, keys, token files: relative paths in the
    /// config name them). `listen` and `admin` default as in [`Weir::start`]. The
    /// directory lives as long as the process: [`Weir::dir`] reaches it, to replace
    /// files while weir runs.
    pub async fn start_in(dir: TempDir, yaml: &str, format: LogFormat) -> Weir {
        let mut text = String::new();
        if !yaml.contains("listen:") {
            text.push_str("listen: 127.0.0.1:0\n");
        }
        if !yaml.contains("admin:") {
            text.push_str("admin: 127.0.0.1:0\n");
        }
        text.push_str(yaml);
        let config = dir.write("weir.yaml", &text);
        Weir::spawn(&config, Some(dir), format, &[]).await
    }

    /// Starts weir on a config file the test owns (and may rewrite, to test reloads).
    /// The file must set `listen` and `admin` (`127.0.0.1:0` works).
    pub async fn start_file(config: &Path, format: LogFormat) -> Weir {
        Weir::spawn(config, None, format, &[]).await
    }

    /// [`Weir::start_file`] with more arguments after `run --config FILE`
    /// (`--workers 1`).
    pub async fn start_file_args(config: &Path, format: LogFormat, args: &[&str]) -> Weir {
        Weir::spawn(config, None, format, args).await
    }

    async fn spawn(config: &Path, dir: Option<TempDir>, format: LogFormat, args: &[&str]) -> Weir {
        let fmt = match format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        // WEIR_TEST_LOG_LEVEL=debug shows weir's debug lines in failing tests' output.
        let level = std::env::var("WEIR_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into());
        let mut child = Command::new(weir_bin())
            .args([
                "--log-format",
                fmt,
                "--log-level",
                &level,
                "run",
                "--config",
            ])
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir");
        let logs = Arc::new(Logs::default());
        let stderr = child.stderr.take().expect("piped stderr");
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    logs.lines.lock().unwrap().push(line);
                }
            });
        }
        let mut weir = Weir {
            child,
            listen: "0.0.0.0:0".parse().unwrap(),
            admin: "0.0.0.0:0".parse().unwrap(),
            format,
            logs,
            exited: None,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some((listen, admin)) = weir.startup_addrs() {
                weir.listen = listen;
                weir.admin = admin;
                break;
            }
            if let Ok(Some(status)) = weir.child.try_wait() {
                panic!(
                    "weir exited with {status} before serving:\n{}",
                    weir.logs.snapshot().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "weir did not start within {START_TIMEOUT:?}:\n{}",
                weir.logs.snapshot().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        loop {
            if let Ok((StatusCode::OK, _)) = admin_get(weir.admin, "/ready").await {
                return weir;
            }
            assert!(Instant::now() < deadline, "weir never became ready");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The listen and admin addresses from the "weir is serving" line.
    fn startup_addrs(&self) -> Option<(SocketAddr, SocketAddr)> {
        let lines = self.logs.snapshot();
        let line = lines.iter().find(|l| l.contains("weir is serving"))?;
        match self.format {
            LogFormat::Json => {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                let listen = v["listen"].as_str()?.parse().ok()?;
                let admin = v["admin"].as_str()?.parse().ok()?;
                Some((listen, admin))
            }
            LogFormat::Text => {
                let field = |key: &str| -> Option<SocketAddr> {
                    let start = line.find(&format!(" {key}="))? + key.len() + 2;
                    line[start..].split_whitespace().next()?.parse().ok()
                };
                Some((field("listen")?, field("admin")?))
            }
        }
    }

    /// The directory weir was started in by [`Weir::start_in`] (or `start`).
    pub fn dir(&self) -> &TempDir {
        self.dir
            .as_ref()
            .expect("started on a file the test owns: no directory of its own")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT` of the data plane, plus `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.listen, path)
    }

    /// All stderr lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.snapshot()
    }

    /// The access-log lines so far, parsed (JSON format only).
    pub fn access_logs(&self) -> Vec<serde_json::Value> {
        assert_eq!(
            self.format,
            LogFormat::Json,
            "access_logs() needs JSON logs"
        );
        self.logs
            .snapshot()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "weir::access")
            .collect()
    }

    /// Waits until an access-log line satisfies `pred` (lines are written by a
    /// separate thread, so they trail the responses a little).
    pub async fn wait_access(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = self.access_logs().into_iter().find(|v| pred(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no access-log line for {what}; logs:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (at most 10 s) until a raw stderr line satisfies `pred`.
    pub async fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_line_for(what, Duration::from_secs(10), pred)
            .await
    }

    /// Waits at most `timeout` until a raw stderr line satisfies `pred`.
    pub async fn wait_line_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.logs().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no log line for {what} within {timeout:?}; logs:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal (`TERM`, `INT`) with the shell's `kill` builtin, which every
    /// machine with a `/bin/sh` has.
    pub fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s {name} {}", self.pid()))
            .status()
            .expect("run sh -c kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits (polling, so the async runtime keeps running) for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited {
                return Some(status);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn proc_status_kib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A [`Weir::wait_line`] predicate: the line contains every one of `needles`.
pub fn with_all<'a>(needles: &'a [&'a str]) -> impl Fn(&str) -> bool + 'a {
    move |line| needles.iter().all(|n| line.contains(n))
}

/// Runs `weir ARGS...` to completion (for `check`, and `run` on a refused config).
pub fn weir_output(args: &[&str], timeout: Duration) -> std::process::Output {
    weir_output_env(args, &[], timeout)
}

/// [`weir_output`] with extra environment variables.
pub fn weir_output_env(
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> std::process::Output {
    let mut child = Command::new(weir_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weir");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("wait weir").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "weir {args:?} did not exit within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `weir check --config CONFIG` (with extra environment variables): its exit code and
/// stderr.
pub fn check(config: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out = weir_output_env(
        &["check", "--config", config.to_str().expect("UTF-8 path")],
        env,
        Duration::from_secs(20),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
