//! Config hot reload: each way a file changes in real life (in place, renamed over, a
//! Kubernetes ConfigMap `..data` symlink swap), SIGHUP, unchanged rewrites, bad files
//! and their revert, restart-only settings, and `--workers`. Each check sends real
//! requests and watches where they go.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::Request;
use support::*;

/// A config with destinations `a` and `b` and one route with the given split.
fn config(a: SocketAddr, b: SocketAddr, split: &str, extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n{extra}destinations:\n  a: {{ endpoints: [\"{a}\"] }}\n  b: {{ endpoints: [\"{b}\"] }}\nroutes:\n  - name: primary\n    split: {split}\n"
    )
}

struct Setup {
    weir: Weir,
    a: SocketAddr,
    b: SocketAddr,
    file: PathBuf,
    _dir: TempDir,
}

async fn setup(dir: TempDir, file: PathBuf) -> Setup {
    let a = synthetic("a").await;
    let b = synthetic("b").await;
    if !file.exists() {
        std::fs::write(&file, config(a, b, "{ a: 1, b: 0 }", "")).unwrap();
    }
    let weir = Weir::start_file(&file, LogFormat::Json).await;
    Setup {
        weir,
        a,
        b,
        file,
        _dir: dir,
    }
}

async fn plain() -> Setup {
    let dir = TempDir::new("reload");
    let file = dir.path().join("weir.yaml");
    setup(dir, file).await
}

async fn version(w: &Weir) -> u64 {
    admin_json(w.admin, "/config").await["version"]
        .as_u64()
        .unwrap()
}

/// Sends requests on one kept-alive connection until one is answered by `want`;
/// returns how long that took. Fails after 5 s.
async fn until_answered_by(w: &Weir, want: &str) -> Duration {
    let mut tx = h1_conn(w.listen).await;
    let start = Instant::now();
    loop {
        tx.ready().await.expect("connection stays open");
        let resp = tx
            .send_request(
                Request::get("/")
                    .header("host", "shop")
                    .body(empty())
                    .unwrap(),
            )
            .await
            .expect("request");
        let got = read(resp).await.unwrap();
        assert_eq!(got.status, 200, "{}", got.text());
        if got.upstream() == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "traffic never moved to {want}"
        );
    }
}

/// Every one of `n` requests is answered by `want`.
async fn all_answered_by(w: &Weir, want: &str, n: usize) {
    let client = h1_client();
    for _ in 0..n {
        let got = get(&client, &w.url("/")).await;
        assert_eq!(got.upstream(), want);
    }
}

/// Writes through a temporary file renamed over the target, as editors do.
fn rename_over(file: &Path, text: &str) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

#[tokio::test]
async fn a_file_written_in_place_is_picked_up() {
    within(30, async {
        let s = plain().await;
        all_answered_by(&s.weir, "a", 10).await;
        let v = version(&s.weir).await;
        std::fs::write(&s.file, config(s.a, s.b, "{ a: 0, b: 1 }", "")).unwrap();
        let took = until_answered_by(&s.weir, "b").await;
        assert!(took < Duration::from_secs(1), "reload took {took:?}");
        all_answered_by(&s.weir, "b", 20).await;
        assert_eq!(version(&s.weir).await, v + 1);
        let cfg = admin_json(s.weir.admin, "/config").await;
        assert_eq!(cfg["last_reload"]["result"], "success");
        println!("in-place write: traffic followed after {took:?}");
    })
    .await;
}

#[tokio::test]
async fn a_file_renamed_over_is_picked_up_every_time() {
    within(30, async {
        let s = plain().await;
        for (split, want) in [
            ("{ a: 0, b: 1 }", "b"),
            ("{ a: 1, b: 0 }", "a"),
            ("{ a: 0, b: 5 }", "b"),
        ] {
            rename_over(&s.file, &config(s.a, s.b, split, ""));
            let took = until_answered_by(&s.weir, want).await;
            assert!(took < Duration::from_secs(1), "reload took {took:?}");
            all_answered_by(&s.weir, want, 10).await;
        }
    })
    .await;
}

/// Kubernetes' AtomicWriter: `config.yaml -> ..data/config.yaml`, `..data -> ..TS`; an
/// update writes a new timestamped directory, points `..data_tmp` at it, renames
/// `..data_tmp` over `..data`, and removes the old directory. The file weir was told
/// to read never gets an event of its own.
#[tokio::test]
async fn a_kubernetes_configmap_data_swap_is_picked_up() {
    within(30, async {
        let a = synthetic("a").await;
        let b = synthetic("b").await;
        let dir = TempDir::new("configmap");
        let root = dir.path().to_path_buf();
        let publish = |ts: &str, text: &str, old: Option<&str>| {
            let version_dir = root.join(format!("..{ts}"));
            std::fs::create_dir(&version_dir).unwrap();
            std::fs::write(version_dir.join("config.yaml"), text).unwrap();
            let tmp = root.join("..data_tmp");
            std::os::unix::fs::symlink(format!("..{ts}"), &tmp).unwrap();
            std::fs::rename(&tmp, root.join("..data")).unwrap();
            if let Some(old) = old {
                std::fs::remove_dir_all(root.join(format!("..{old}"))).unwrap();
            }
        };
        publish(
            "2026_11_27_00_00_00.1",
            &config(a, b, "{ a: 1, b: 0 }", ""),
            None,
        );
        std::os::unix::fs::symlink("..data/config.yaml", root.join("config.yaml")).unwrap();
        let file = root.join("config.yaml");
        let s = setup(dir, file).await;
        all_answered_by(&s.weir, "a", 5).await;
        let v = version(&s.weir).await;
        let steps = [
            (
                "2026_11_27_00_01_00.2",
                "{ a: 0, b: 1 }",
                "b",
                "2026_11_27_00_00_00.1",
            ),
            (
                "2026_11_27_00_02_00.3",
                "{ a: 1, b: 0 }",
                "a",
                "2026_11_27_00_01_00.2",
            ),
            (
                "2026_11_27_00_03_00.4",
                "{ a: 0, b: 2 }",
                "b",
                "2026_11_27_00_02_00.3",
            ),
        ];
        for (i, (ts, split, want, old)) in steps.iter().enumerate() {
            publish(ts, &config(s.a, s.b, split, ""), Some(old));
            let took = until_answered_by(&s.weir, want).await;
            assert!(
                took < Duration::from_secs(1),
                "swap {i}: reload took {took:?}"
            );
            all_answered_by(&s.weir, want, 10).await;
            assert_eq!(version(&s.weir).await, v + 1 + i as u64);
        }
    })
    .await;
}

#[tokio::test]
async fn sighup_reloads() {
    within(30, async {
        let s = plain().await;
        // Write through a hard link in another directory: the watched directory sees no
        // event, so only the signal can make weir look.
        let other = TempDir::new("hardlink");
        let link = other.path().join("link.yaml");
        std::fs::hard_link(&s.file, &link).unwrap();
        let text = config(s.a, s.b, "{ a: 0, b: 1 }", "");
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&link)
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        }
        s.weir.signal("HUP");
        until_answered_by(&s.weir, "b").await;
        let line = s
            .weir
            .wait_line("a reload", |l| l.contains("config reloaded"))
            .await;
        assert!(line.contains("SIGHUP"), "{line}");
    })
    .await;
}

#[tokio::test]
async fn an_unchanged_rewrite_changes_nothing() {
    within(30, async {
        let s = plain().await;
        let v = version(&s.weir).await;
        let same = std::fs::read_to_string(&s.file).unwrap();
        std::fs::write(&s.file, &same).unwrap();
        rename_over(&s.file, &same);
        s.weir.signal("HUP");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            version(&s.weir).await,
            v,
            "an unchanged file must not bump the version"
        );
        let cfg = admin_json(s.weir.admin, "/config").await;
        assert!(cfg["last_reload"].is_null(), "{}", cfg["last_reload"]);
        all_answered_by(&s.weir, "a", 5).await;
        // Each of them is answered in the log, with what asked.
        for trigger in ["file change", "SIGHUP"] {
            let line = s
                .weir
                .wait_line("an unchanged reload", |l| {
                    l.contains("config file unchanged") && l.contains(&format!("\"{trigger}\""))
                })
                .await;
            assert!(line.contains("\"level\":\"INFO\""), "{line}");
            assert!(line.contains(&format!("\"version\":{v}")), "{line}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_bad_edit_reverted_clears_the_failure() {
    within(30, async {
        let s = plain().await;
        let v = version(&s.weir).await;
        let good = std::fs::read_to_string(&s.file).unwrap();
        std::fs::write(&s.file, config(s.a, s.b, "{ a: 0, c: 1 }", "")).unwrap();
        s.weir
            .wait_line("the refusal", |l| l.contains("config reload refused"))
            .await;
        let cfg = admin_json(s.weir.admin, "/config").await;
        assert_eq!(cfg["last_reload"]["result"], "failure");
        let (_, metrics) = admin_get(s.weir.admin, "/metrics").await.unwrap();
        assert!(
            metrics.contains("\nweir_config_last_reload_successful 0\n"),
            "{metrics}"
        );

        // Back to the running content: nothing to apply, and nothing wrong any more.
        rename_over(&s.file, &good);
        s.weir
            .wait_line("the revert", |l| l.contains("back to the running config"))
            .await;
        let cfg = admin_json(s.weir.admin, "/config").await;
        assert_eq!(cfg["version"].as_u64(), Some(v));
        assert_eq!(
            cfg["last_reload"]["result"], "unchanged",
            "{}",
            cfg["last_reload"]
        );
        assert!(
            cfg["last_reload"]["error"].is_null(),
            "{}",
            cfg["last_reload"]
        );
        let (_, metrics) = admin_get(s.weir.admin, "/metrics").await.unwrap();
        assert!(
            metrics.contains("\nweir_config_last_reload_successful 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("weir_config_reloads_total{result=\"failure\"} 1\n")
                && metrics.contains("weir_config_reloads_total{result=\"success\"} 0\n"),
            "{metrics}"
        );
        all_answered_by(&s.weir, "a", 5).await;
    })
    .await;
}

/// `weir run --workers N` is not a config change: reloads of the file still apply.
#[tokio::test]
async fn the_workers_flag_does_not_block_reloads() {
    within(30, async {
        let dir = TempDir::new("reload-workers");
        let file = dir.path().join("weir.yaml");
        let a = synthetic("a").await;
        let b = synthetic("b").await;
        std::fs::write(&file, config(a, b, "{ a: 1, b: 0 }", "")).unwrap();
        let weir = Weir::start_file_args(&file, LogFormat::Json, &["--workers", "1"]).await;
        weir.wait_line("the startup line", |l| {
            l.contains("weir is serving") && l.contains("\"workers\":1")
        })
        .await;
        rename_over(&file, &config(a, b, "{ a: 0, b: 1 }", ""));
        until_answered_by(&weir, "b").await;
        let cfg = admin_json(weir.admin, "/config").await;
        assert_eq!(
            cfg["last_reload"]["result"], "success",
            "{}",
            cfg["last_reload"]
        );
    })
    .await;
}

#[tokio::test]
async fn a_bad_file_leaves_the_old_split_serving() {
    within(30, async {
        let s = plain().await;
        let v = version(&s.weir).await;
        // Unknown destination `c` at line 8, column 20 (the split), then a YAML syntax error.
        let bad = config(s.a, s.b, "{ a: 0, c: 1 }", "");
        std::fs::write(&s.file, &bad).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        all_answered_by(&s.weir, "a", 20).await;
        let cfg = admin_json(s.weir.admin, "/config").await;
        assert_eq!(cfg["version"].as_u64(), Some(v));
        assert_eq!(cfg["last_reload"]["result"], "failure");
        let error = cfg["last_reload"]["error"].as_str().unwrap().to_owned();
        let file = s.file.display().to_string();
        assert!(
            error.starts_with(&format!("{file}:8:20: "))
                && error.contains("unknown destination `c`"),
            "{error}"
        );
        let (_, metrics) = admin_get(s.weir.admin, "/metrics").await.unwrap();
        assert!(
            metrics.contains("weir_config_reloads_total{result=\"failure\"} 1"),
            "{metrics}"
        );
        let logged = s
            .weir
            .wait_line("the refusal", |l| l.contains("config reload refused"))
            .await;
        assert!(logged.contains(&format!("{file}:8:20: ")), "{logged}");

        std::fs::write(&s.file, "routes: [\n").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        all_answered_by(&s.weir, "a", 10).await;
        let cfg = admin_json(s.weir.admin, "/config").await;
        assert!(
            cfg["last_reload"]["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{file}:"))
        );

        // A later good file is picked up normally.
        std::fs::write(&s.file, config(s.a, s.b, "{ a: 0, b: 1 }", "")).unwrap();
        until_answered_by(&s.weir, "b").await;
        let cfg = admin_json(s.weir.admin, "/config").await;
        assert_eq!(cfg["last_reload"]["result"], "success");
        assert_eq!(cfg["version"].as_u64(), Some(v + 1));
    })
    .await;
}

#[tokio::test]
async fn a_restart_only_change_is_refused_whole() {
    within(30, async {
        let s = plain().await;
        // A split change and a new drain timeout in one edit: neither may apply.
        let text = config(s.a, s.b, "{ a: 0, b: 1 }", "drain_timeout: 3s\n");
        std::fs::write(&s.file, text).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        all_answered_by(&s.weir, "a", 20).await;
        let cfg = admin_json(s.weir.admin, "/config").await;
        let error = cfg["last_reload"]["error"].as_str().unwrap();
        assert!(
            error.contains("`drain_timeout` changed") && error.contains("restart"),
            "{error}"
        );
        assert_eq!(cfg["drain_timeout"], "10s");
    })
    .await;
}
