//! `weir canary` end to end: the real binary drives real weir processes (each with its
//! own synthetic upstreams on 127.0.0.1 port 0) under a bounded load, and the test polls
//! each weir's admin API to see the weights it had at every moment.
//!
//! Stages last seconds, the interval is 250 ms. Each test bounds its time.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;
use weir::synthetic::{LatencyRange, Profile};

type Split = BTreeMap<String, u64>;

fn split(pairs: &[(&str, u64)]) -> Split {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// A weir with release, baseline and canary upstreams; the canary `bad` or not.
async fn weir_with(bad: bool) -> Weir {
    weir_guarded(bad, None).await
}

/// [`weir_with`], and with `token` its admin API wants that token (`admin_token_file`)
/// for writes and for `/config`.
async fn weir_guarded(bad: bool, token: Option<&str>) -> Weir {
    let ms = Duration::from_millis;
    let normal = |name: &str| Profile {
        latency: LatencyRange {
            min: ms(1),
            max: ms(3),
        },
        ..Profile::new(name)
    };
    let release = synthetic_with(normal("release")).await;
    let baseline = synthetic_with(normal("baseline")).await;
    let canary = synthetic_with(if bad {
        Profile {
            latency: LatencyRange {
                min: ms(15),
                max: ms(25),
            },
            error_rate: 0.3,
            ..Profile::new("canary")
        }
    } else {
        normal("canary")
    })
    .await;
    let dir = TempDir::new("canary-weir");
    let guard = match token {
        Some(token) => {
            dir.write("token", &format!("{token}\n"));
            "admin_token_file: token\n"
        }
        None => "",
    };
    let yaml = format!(
        "{guard}destinations:\n  release: {{ endpoints: [\"{release}\"] }}\n  baseline: {{ endpoints: [\"{baseline}\"] }}\n  canary: {{ endpoints: [\"{canary}\"] }}\nroutes:\n  - name: primary\n    split: {{ release: 100 }}\n"
    );
    Weir::start_in(dir, &yaml, LogFormat::Json).await
}

/// Sends about `rate` requests per second to each weir, over four connections, until
/// dropped (or for 90 s at most).
struct Load(Arc<AtomicBool>);

impl Load {
    fn start(weirs: &[&Weir], rate: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        for w in weirs.iter().flat_map(|w| [w; 4]) {
            let url = w.url("/");
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = h1_client();
                let period = Duration::from_secs_f64(4.0 / f64::from(rate));
                let deadline = Instant::now() + Duration::from_secs(90);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let req = http::Request::get(&url).body(empty()).unwrap();
                    let _ = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await;
                    tokio::time::sleep(period).await;
                }
            });
        }
        Load(stop)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The distinct splits a weir had, in order, polled every 25 ms until dropped.
struct Timeline {
    seen: Arc<Mutex<Vec<Split>>>,
    stop: Arc<AtomicBool>,
}

impl Timeline {
    fn watch(w: &Weir) -> Timeline {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (admin, s, st) = (w.admin, seen.clone(), stop.clone());
        tokio::spawn(async move {
            while !st.load(Ordering::Relaxed) {
                if let Ok((http::StatusCode::OK, body)) =
                    admin_get(admin, "/routes/primary/split").await
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                {
                    let now: Split = v["split"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, w)| (k.clone(), w.as_u64().unwrap()))
                        .filter(|(_, w)| *w > 0)
                        .collect();
                    let mut seen = s.lock().unwrap();
                    if seen.last() != Some(&now) {
                        seen.push(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        Timeline { seen, stop }
    }

    fn splits(&self) -> Vec<Split> {
        self.seen.lock().unwrap().clone()
    }

    async fn wait_for(&self, want: &Split, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.splits().last() != Some(want) {
            assert!(
                Instant::now() < deadline,
                "never saw {want:?}; saw {:?}",
                self.splits()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Timeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A rollout config for `weirs`; `stage` is each stage's analysis.
fn rollout(dir: &TempDir, weirs: &[&Weir], stage: &str) -> std::path::PathBuf {
    let admins: Vec<String> = weirs
        .iter()
        .map(|w| format!("\"http://{}\"", w.admin))
        .collect();
    dir.write(
        "canary.yaml",
        &format!(
            r#"target: {{ admin: [{}], route: primary }}
interval: 250ms
stages:
  - {{ weights: {{ release: 80, baseline: 10, canary: 10 }}, warmup: 250ms, duration: {stage} }}
  - {{ weights: {{ release: 34, baseline: 33, canary: 33 }}, duration: {stage} }}
min_points: 6
groups: {{ istio: 100 }}
metrics:
  - {{ name: errors, group: istio, source: weir, query: error_rate, test: proportions, direction: increase }}
  - {{ name: p95-latency, group: istio, source: weir, query: latency_p95, direction: increase, allowed_increase: 1.5 }}
  - {{ name: requests, group: istio, source: weir, query: requests, muted: true }}
"#,
            admins.join(", ")
        ),
    )
}

/// A running `weir canary`, killed on drop.
struct Canary {
    child: Child,
}

impl Canary {
    fn start(config: &Path, report: &Path, extra: &[&str]) -> Canary {
        let child = Command::new(weir_bin())
            .arg("canary")
            .arg("--config")
            .arg(config)
            .arg("--report")
            .arg(report)
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir canary");
        Canary { child }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s {name} {}", self.child.id()))
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; returns the status code and everything printed.
    async fn finish(mut self, secs: u64) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                use std::io::Read;
                if let Some(mut o) = self.child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut out);
                }
                return (status.code().unwrap_or(-1), out);
            }
            assert!(
                Instant::now() < deadline,
                "weir canary did not finish within {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn report(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("report.json is JSON")
}

fn initial() -> Split {
    split(&[("release", 100)])
}
fn stage1() -> Split {
    split(&[("release", 80), ("baseline", 10), ("canary", 10)])
}
fn stage2() -> Split {
    split(&[("release", 34), ("baseline", 33), ("canary", 33)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_canary_is_promoted() {
    within(60, async {
        let w = weir_with(false).await;
        let timeline = Timeline::watch(&w);
        let _load = Load::start(&[&w], 150);
        let dir = TempDir::new("canary-good");
        let config = rollout(&dir, &[&w], "2500ms");
        let reports = dir.path().join("report");
        let (code, out) = Canary::start(&config, &reports, &[]).finish(45).await;
        assert_eq!(code, 0, "{out}");
        timeline.wait_for(&split(&[("canary", 100)]), 5).await;
        assert_eq!(
            timeline.splits(),
            vec![initial(), stage1(), stage2(), split(&[("canary", 100)])],
            "the weights weir had, in order"
        );
        let r = report(&reports);
        assert_eq!(r["outcome"]["result"], "promoted");
        assert_eq!(r["outcome"]["exit_code"], 0);
        let changes: Vec<&str> = r["weight_changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["why"].as_str().unwrap())
            .collect();
        assert_eq!(changes, ["stage 1", "stage 2", "promote"]);
        let judgements = r["judgements"].as_array().unwrap();
        let ends: Vec<&serde_json::Value> = judgements
            .iter()
            .filter(|j| j["kind"] == "stage end")
            .collect();
        assert_eq!(ends.len(), 2);
        for j in ends {
            assert_eq!(j["judgement"]["verdict"], "pass", "{j}");
            assert_eq!(j["judgement"]["metrics"].as_array().unwrap().len(), 3);
        }
        // Every interval's points, with times, per metric per side.
        let points = r["points"]["errors"]["canary"].as_array().unwrap();
        assert!(points.len() >= 16, "{}", points.len());
        assert!(points[0]["time"].as_str().unwrap().ends_with('Z'));
        assert!(points.iter().any(|p| p["total"].as_u64().unwrap_or(0) > 0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_is_rolled_back_early() {
    within(60, async {
        let w = weir_with(true).await;
        let timeline = Timeline::watch(&w);
        let _load = Load::start(&[&w], 150);
        let dir = TempDir::new("canary-bad");
        let config = rollout(&dir, &[&w], "5s");
        let reports = dir.path().join("report");
        let started = Instant::now();
        let (code, out) = Canary::start(&config, &reports, &[]).finish(45).await;
        assert_eq!(code, 1, "{out}");
        // Kayenta's rule: a running score at or below marginal ends the run, here at
        // min_points (6 intervals of 250 ms), long before the stage's 5 s.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        timeline.wait_for(&initial(), 5).await;
        assert_eq!(timeline.splits(), vec![initial(), stage1(), initial()]);
        let r = report(&reports);
        assert_eq!(r["outcome"]["result"], "rolled_back");
        let last = &r["judgements"].as_array().unwrap().last().unwrap()["judgement"];
        assert_eq!(last["verdict"], "fail");
        let errors = &last["metrics"][0];
        assert!(
            errors["reason"].as_str().unwrap().contains("Fisher"),
            "{errors}"
        );
        let p95 = &last["metrics"][1];
        assert_eq!(p95["classification"], "High", "{p95}");
        assert!(p95["deviation"].as_f64().unwrap() > 3.0, "{p95}");
        assert!(out.contains("ROLLED BACK"), "{out}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_rolls_back_and_a_drifted_weir_is_corrected() {
    within(60, async {
        let w = weir_with(false).await;
        let timeline = Timeline::watch(&w);
        let _load = Load::start(&[&w], 100);
        let dir = TempDir::new("canary-int");
        let config = rollout(&dir, &[&w], "30s");
        let reports = dir.path().join("report");
        let canary = Canary::start(&config, &reports, &[]);
        timeline.wait_for(&stage1(), 10).await;
        // Someone (a restarted pod, a person) changes the weights: corrected at the next
        // interval.
        let (status, body) = admin_request(
            w.admin,
            "PUT",
            "/routes/primary/split",
            r#"{"release": 50, "canary": 50}"#,
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, http::StatusCode::OK, "{body}");
        let changed = Instant::now();
        timeline
            .wait_for(&split(&[("release", 50), ("canary", 50)]), 5)
            .await;
        timeline.wait_for(&stage1(), 5).await;
        assert!(
            changed.elapsed() < Duration::from_millis(1500),
            "{:?}",
            changed.elapsed()
        );
        // The page for people is written as the run goes, like the JSON.
        let html = std::fs::read_to_string(reports.join("report.html")).expect("report.html");
        assert!(html.contains("<h1>Running"), "the run so far");
        canary.signal("INT");
        let (code, out) = canary.finish(20).await;
        assert_eq!(code, 130, "{out}");
        let html = std::fs::read_to_string(reports.join("report.html")).expect("report.html");
        assert!(
            html.contains("Interrupted, rolled back") && html.contains(">correction 80/10/10"),
            "the ending and the correction on the page"
        );
        timeline.wait_for(&initial(), 5).await;
        let r = report(&reports);
        assert_eq!(r["outcome"]["result"], "interrupted");
        let whys: Vec<&str> = r["weight_changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["why"].as_str().unwrap())
            .collect();
        assert!(whys.contains(&"correction"), "{whys:?}");
        assert_eq!(whys.last(), Some(&"rollback"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_target_rolls_back_the_others() {
    within(60, async {
        let a = weir_with(false).await;
        let mut b = weir_with(false).await;
        let ta = Timeline::watch(&a);
        let tb = Timeline::watch(&b);
        let _load = Load::start(&[&a, &b], 50);
        let dir = TempDir::new("canary-lost");
        let config = rollout(&dir, &[&a, &b], "30s");
        let reports = dir.path().join("report");
        let canary = Canary::start(&config, &reports, &[]);
        ta.wait_for(&stage1(), 10).await;
        tb.wait_for(&stage1(), 10).await;
        let lost = format!("http://{}", b.admin);
        b.signal("KILL");
        assert!(b.wait_exit(Duration::from_secs(5)).await.is_some());
        let started = Instant::now();
        let (code, out) = canary.finish(20).await;
        assert_eq!(code, 2, "{out}");
        // Three intervals of 250 ms without an answer, each waiting its retries.
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
        ta.wait_for(&initial(), 5).await;
        assert!(out.contains(&format!("ROLLBACK FAILED on {lost}")), "{out}");
        let r = report(&reports);
        assert_eq!(r["outcome"]["result"], "lost_target");
        assert!(
            r["outcome"]["reason"].as_str().unwrap().contains(&lost),
            "{}",
            r["outcome"]
        );
        drop(tb);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_failures_and_dry_runs_change_nothing() {
    within(60, async {
        let w = weir_with(true).await;
        let timeline = Timeline::watch(&w);
        let _load = Load::start(&[&w], 100);
        let dir = TempDir::new("canary-pre");
        // A route the weir does not have.
        let text = std::fs::read_to_string(rollout(&dir, &[&w], "2s")).unwrap();
        let missing = dir.write(
            "missing.yaml",
            &text.replace("route: primary", "route: checkout"),
        );
        let (code, out) = Canary::start(&missing, &dir.path().join("r1"), &[])
            .finish(20)
            .await;
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("no route `checkout`"), "{out}");
        // A weir that does not answer.
        let dead = dead_port();
        let unreachable = dir.write(
            "dead.yaml",
            &text.replace(
                &format!("\"http://{}\"", w.admin),
                &format!("\"http://{}\", \"http://{}\"", w.admin, dead.addr),
            ),
        );
        let (code, out) = Canary::start(&unreachable, &dir.path().join("r2"), &[])
            .finish(30)
            .await;
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(&dead.addr.to_string()), "{out}");
        // A config mistake, with its place.
        let typo = dir.write(
            "typo.yaml",
            &text.replace("interval: 250ms", "interval: 250"),
        );
        let (code, out) = Canary::start(&typo, &dir.path().join("r3"), &[])
            .finish(10)
            .await;
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("typo.yaml:interval:"), "{out}");
        // A dry run judges the bad canary (exit 1) without touching the weights.
        let (code, out) = Canary::start(
            &rollout(&dir, &[&w], "2s"),
            &dir.path().join("r4"),
            &["--dry-run"],
        )
        .finish(30)
        .await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("would roll back"), "{out}");
        assert_eq!(timeline.splits(), vec![initial()], "nothing changed");
        assert_eq!(
            report(&dir.path().join("r4"))["outcome"]["result"],
            "would_roll_back"
        );
    })
    .await;
}

/// A weir that guards `/config` with its token: pre-flight reads it with the rollout's
/// `token_file`, and without one says what is missing and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_reads_a_guarded_config_with_the_token() {
    within(60, async {
        let token = "canary-token-0123456789";
        let w = weir_guarded(true, Some(token)).await;
        let timeline = Timeline::watch(&w);
        let _load = Load::start(&[&w], 100);
        let dir = TempDir::new("canary-token");
        let text = std::fs::read_to_string(rollout(&dir, &[&w], "2s")).unwrap();
        let (code, out) = Canary::start(&rollout(&dir, &[&w], "2s"), &dir.path().join("r1"), &[])
            .finish(20)
            .await;
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("401"), "{out}");
        assert!(out.contains("nothing was changed"), "{out}");
        dir.write("token", &format!("{token}\n"));
        let with_token = dir.write(
            "with-token.yaml",
            &text.replace("route: primary", "route: primary, token_file: token"),
        );
        let (code, out) = Canary::start(&with_token, &dir.path().join("r2"), &["--dry-run"])
            .finish(30)
            .await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("would roll back"), "{out}");
        assert_eq!(timeline.splits(), vec![initial()], "nothing changed");
    })
    .await;
}
