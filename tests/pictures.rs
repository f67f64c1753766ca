//! The pictures, as a person sees them in a real browser (headless chromium): the
//! report of a real canary run (`weir demo --canary bad`) opened from disk, and the live
//! dashboard `/ui` of a running weir under load, whose weights control changes a
//! route's split. Screenshots go to `target/tmp/screenshots/` (or `$WEIR_SCREENSHOTS`,
//! which is how the README's were made: `WEIR_SCREENSHOTS=docs cargo test --test
//! pictures`).
//!
//! Without chromium each test prints why and passes; CI installs it and sets
//! `WEIR_REQUIRE_BROWSER`, so there they run.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// One browser at a time: two would starve the 2-core machines the tests run on.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn screenshots() -> PathBuf {
    std::env::var_os("WEIR_SCREENSHOTS").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
        PathBuf::from,
    )
}

/// The browser, or `None` (with the reason printed) when there is none, unless
/// `WEIR_REQUIRE_BROWSER` is set (CI sets it: there, no browser is a failure).
fn browser(width: u32, height: u32) -> Option<Browser> {
    match Browser::launch(width, height) {
        Ok(b) => Some(b),
        Err(why) if std::env::var_os("WEIR_REQUIRE_BROWSER").is_some() => {
            panic!("WEIR_REQUIRE_BROWSER is set, but: {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            None
        }
    }
}

/// Runs `weir demo --canary bad` in `dir` to its end; returns its report directory.
fn demo_run(dir: &Path) -> PathBuf {
    let mut child = Command::new(weir_bin())
        .args([
            "--log-level",
            "warn",
            "demo",
            "--canary",
            "bad",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn weir demo");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("weir demo --canary bad did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("weir-canary-"))
        })
        .expect("a report directory")
}

/// What the page's headline must start with for the run's outcome.
fn headline(result: &str) -> &'static str {
    match result {
        "promoted" => "Promoted",
        "rolled_back" => "Rolled back",
        "interrupted" => "Interrupted",
        "lost_target" => "Lost a weir",
        other => panic!("the demo ended unexpectedly: {other}"),
    }
}

#[test]
fn the_report_of_a_real_run_reads_at_a_glance() {
    let _one = ONE_BROWSER.blocking_lock();
    let Some(mut b) = browser(1280, 900) else {
        return;
    };
    let started = Instant::now();
    let dir = TempDir::new("report");
    let report = demo_run(dir.path());
    let html = std::fs::read_to_string(report.join("report.html"))
        .expect("report.html beside report.json");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    println!("demo run: {:?}", started.elapsed());

    // `weir report` renders the same page from the JSON.
    let again = dir.path().join("again.html");
    let out = weir_output(
        &[
            "report",
            report.join("report.json").to_str().unwrap(),
            "-o",
            again.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&again).unwrap(),
        html,
        "weir report = the run's own page"
    );

    let shown = Instant::now();
    b.open(&format!("file://{}", report.join("report.html").display()));
    // The verdict, as the judgement that decided it says.
    let last = json["judgements"]
        .as_array()
        .and_then(|j| j.last())
        .expect("a judgement");
    let verdict = last["judgement"]["verdict"].as_str().unwrap();
    let score = last["judgement"]["score"].as_f64().unwrap();
    assert_eq!(
        b.eval("document.querySelector('#verdict .badge').innerText"),
        verdict.to_uppercase()
    );
    let h1 = b.eval("document.querySelector('#verdict h1').innerText");
    let h1 = h1.as_str().unwrap();
    assert!(
        h1.starts_with(headline(json["outcome"]["result"].as_str().unwrap())),
        "{h1}"
    );
    assert!(h1.contains(&format!("score {score:.2}")), "{h1}");
    let sentence = b.eval("document.querySelector('#verdict .decided').innerText");
    for m in last["judgement"]["metrics"].as_array().unwrap() {
        if m["classification"] != "Pass" {
            let named = format!(
                "{} was {}",
                m["name"].as_str().unwrap(),
                m["classification"].as_str().unwrap()
            );
            assert!(sentence.as_str().unwrap().contains(&named), "{sentence}");
        }
    }

    // One section per metric: a time series with both lines, histograms of both, a
    // beeswarm with every judged point of both, and the judge's numbers.
    let points = last["points"].as_u64().unwrap();
    for m in json["config"]["metrics"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let got = b.eval(&format!(
            r#"(() => {{
                const s = document.getElementById('metric-{name}');
                if (!s) return null;
                const one = (sel) => s.querySelectorAll(sel).length;
                const drawn = (sel) => [...s.querySelectorAll(sel)].filter(e => e.getBBox().width > 0 || e.getBBox().height > 0).length;
                const line = (side) => {{ const p = s.querySelector('svg.series path.line.' + side); return p ? p.getAttribute('d').split('L').length : 0; }};
                return {{
                    series: one('svg.series'), histograms: one('svg.histogram'), swarms: one('svg.beeswarm'),
                    canary_line: line('canary'), baseline_line: line('baseline'),
                    canary_bars: drawn('svg.histogram .bars.canary rect'), baseline_bars: drawn('svg.histogram .bars.baseline rect'),
                    canary_dots: drawn('svg.beeswarm .swarm.canary circle'), baseline_dots: drawn('svg.beeswarm .swarm.baseline circle'),
                    canary_colour: getComputedStyle(s.querySelector('svg.series path.line.canary')).stroke,
                    baseline_colour: getComputedStyle(s.querySelector('svg.series path.line.baseline')).stroke,
                    width: s.querySelector('svg.series').getBoundingClientRect().width,
                    decision: s.querySelector('table.decision') ? s.querySelector('table.decision').innerText : '',
                    axis: s.querySelector('svg.series .axis-title').textContent,
                }};
            }})()"#
        ));
        assert!(!got.is_null(), "no section for {name}");
        assert_eq!(
            (
                got["series"].as_u64(),
                got["histograms"].as_u64(),
                got["swarms"].as_u64()
            ),
            (Some(1), Some(1), Some(1)),
            "{name}: {got}"
        );
        for side in ["canary", "baseline"] {
            assert!(
                got[format!("{side}_line")].as_u64().unwrap() >= points,
                "{name} {side}: {got}"
            );
            assert!(
                got[format!("{side}_bars")].as_u64().unwrap() >= 1,
                "{name} {side}: {got}"
            );
            assert_eq!(
                got[format!("{side}_dots")].as_u64(),
                Some(points),
                "{name} {side}: every judged point"
            );
        }
        assert_eq!(
            got["canary_colour"], "rgb(230, 159, 0)",
            "{name}: canary is Okabe-Ito orange"
        );
        assert_eq!(
            got["baseline_colour"], "rgb(0, 114, 178)",
            "{name}: baseline is Okabe-Ito blue"
        );
        assert!(
            got["width"].as_f64().unwrap() > 300.0,
            "{name}: the plot is visible: {got}"
        );
        let judged = last["judgement"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap();
        let decision = got["decision"].as_str().unwrap();
        assert!(
            decision.contains(judged["classification"].as_str().unwrap()),
            "{name}: {decision}"
        );
        assert!(
            decision.contains("p-value") && decision.contains("mean ratio"),
            "{decision}"
        );
        let unit = match m["query"].as_str().unwrap() {
            "latency_p95" => "(ms)",
            "cpu" => "(cores)",
            "rss" => "(MiB)",
            _ => "responses per interval",
        };
        assert!(
            got["axis"].as_str().unwrap().ends_with(unit),
            "{name}: axis {}",
            got["axis"]
        );
    }

    // Whole by itself: nothing fetched, nothing wrong in the console.
    assert_eq!(b.eval("performance.getEntriesByType('resource').length"), 0);
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.screenshot(&screenshots().join("report.png"), Some(1180.0));
    let failed = last["judgement"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["classification"] != "Pass")
        .or(last["judgement"]["metrics"].get(0))
        .and_then(|m| m["name"].as_str())
        .unwrap()
        .to_owned();
    b.screenshot_of(
        &format!("#metric-{failed}"),
        &screenshots().join("report-metric.png"),
    );
    // The print style: white paper.
    b.call(
        "Emulation.setEmulatedMedia",
        serde_json::json!({ "media": "print" }),
    );
    assert_eq!(
        b.eval("getComputedStyle(document.body).backgroundColor"),
        "rgb(255, 255, 255)"
    );
    println!(
        "report checked in the browser in {:?}; {} bytes",
        shown.elapsed(),
        html.len()
    );
}

/// Three destinations behind weir with its admin token set, and a steady load.
async fn busy_weir(dir: TempDir) -> (Weir, tokio::task::JoinHandle<()>) {
    use weir::synthetic::{LatencyRange, Profile};
    let ms = Duration::from_millis;
    let profile = |name: &str, lo, hi, errors| Profile {
        latency: LatencyRange {
            min: ms(lo),
            max: ms(hi),
        },
        error_rate: errors,
        ..Profile::new(name)
    };
    let release = synthetic_with(profile("release", 2, 6, 0.0)).await;
    let baseline = synthetic_with(profile("baseline", 2, 6, 0.0)).await;
    let canary = synthetic_with(profile("canary", 3, 9, 0.03)).await;
    dir.write("token", &format!("{TOKEN}\n"));
    let w = Weir::start_in(
        dir,
        &format!(
            "admin_token_file: token\ndestinations:\n  release: {{ endpoints: [\"{release}\"] }}\n  baseline: {{ endpoints: [\"{baseline}\"] }}\n  canary: {{ endpoints: [\"{canary}\"] }}\nroutes:\n  - name: primary\n    split: {{ release: 80, baseline: 10, canary: 10 }}\n"
        ),
        LogFormat::Json,
    )
    .await;
    let url = w.url("/");
    let load = tokio::spawn(async move {
        let client = h1_client();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let (client, url) = (client.clone(), url.clone());
            tasks.spawn(async move {
                loop {
                    let req = http::Request::get(url.as_str()).body(empty()).unwrap();
                    let _ = client.request(req).await;
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    (w, load)
}

const TOKEN: &str = "dashboard-token-0123456789";

/// The last value a chart's line shows, read back from its path (y from 0 to `max`).
fn last_value_js(route: &str, series: &str) -> String {
    format!(
        r#"(() => {{
            const p = document.querySelector('.route[data-route="{route}"] path[data-series="{series}"]');
            if (!p) return null;
            const d = p.getAttribute('d');
            const m = [...d.matchAll(/[ML]([\d.]+) ([\d.]+)/g)];
            if (!m.length) return null;
            const svg = p.ownerSVGElement.viewBox.baseVal;
            const y = Number(m[m.length - 1][2]);
            return 100 * (svg.height - 26 - y) / (svg.height - 10 - 26);
        }})()"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_live_weir_and_its_control_changes_a_split() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser(1280, 1000) else {
        return;
    };
    let (w, load) = busy_weir(TempDir::new("ui")).await;
    let admin = w.admin;
    let ui = format!("http://{admin}/ui");
    let timings = tokio::task::block_in_place(|| {
        let started = Instant::now();
        b.open(&ui);
        // Live: the three destinations, their rates and latencies, within a few seconds.
        b.wait_for(
            "three destinations with traffic",
            "document.querySelectorAll('#destination-rows tr').length === 3 && [...document.querySelectorAll('#destination-rows tr td:nth-child(2)')].every(td => Number(td.innerText) > 0)",
            Duration::from_secs(15),
        );
        b.wait_for(
            "five seconds of history with latency",
            "document.querySelectorAll('#latency-charts path.line[data-series=\"p95\"]').length === 3 && [...document.querySelectorAll('#latency-charts path.line')].every(p => p.getAttribute('d').split('L').length >= 3)",
            Duration::from_secs(15),
        );
        let status = b.eval("document.getElementById('status').innerText");
        assert!(status.as_str().unwrap().starts_with("live"), "{status}");
        let loaded = started.elapsed();
        // What the page shows, against the admin API.
        let shown = b.eval(
            r#"(() => ({
                configured: [...document.querySelectorAll('.route[data-route="primary"] .configured .seg')].map(s => s.title),
                rates: [...document.querySelectorAll('#chart-rate path.line')].map(p => p.dataset.series),
                errors: [...document.querySelectorAll('#chart-errors path.line')].map(p => p.dataset.series),
                connections: [...document.querySelectorAll('#chart-connections path.line')].map(p => p.dataset.series),
                lines: [...document.querySelectorAll('#latency-charts figure')].map(f => [...f.querySelectorAll('path.line')].map(p => p.dataset.series).join(',')),
                token_asked: !document.getElementById('token-box').hidden,
                inputs: [...document.querySelectorAll('.route[data-route="primary"] input[data-dest]')].map(i => i.dataset.dest + '=' + i.value),
            }))()"#,
        );
        assert_eq!(
            shown["configured"],
            serde_json::json!(["release 80.0 %", "baseline 10.0 %", "canary 10.0 %"]),
            "{shown}"
        );
        assert_eq!(
            shown["rates"],
            serde_json::json!(["release", "baseline", "canary"]),
            "{shown}"
        );
        assert_eq!(shown["errors"], shown["rates"], "{shown}");
        assert_eq!(
            shown["connections"].as_array().unwrap().len(),
            4,
            "clients and each destination's upstream: {shown}"
        );
        assert_eq!(
            shown["lines"],
            serde_json::json!(["p50,p95,p99", "p50,p95,p99", "p50,p95,p99"]),
            "{shown}"
        );
        assert_eq!(
            shown["token_asked"], true,
            "admin_token_file is set: the page asks for it"
        );
        assert_eq!(
            shown["inputs"],
            serde_json::json!(["release=80", "baseline=10", "canary=10"]),
            "{shown}"
        );
        assert_eq!(b.console_errors(), Vec::<String>::new());
        // Some history before the change, for the picture.
        b.wait_for("ten seconds of history", "document.querySelector('#chart-rate path.line').getAttribute('d').split('L').length >= 10", Duration::from_secs(20));

        // A person moves the traffic to baseline and canary, with the token.
        b.type_into(
            ".route[data-route=\"primary\"] input[data-dest=\"release\"]",
            "0",
        );
        b.type_into(
            ".route[data-route=\"primary\"] input[data-dest=\"baseline\"]",
            "50",
        );
        b.type_into(
            ".route[data-route=\"primary\"] input[data-dest=\"canary\"]",
            "50",
        );
        b.type_into("#token", TOKEN);
        let clicked = Instant::now();
        b.click(".route[data-route=\"primary\"] button.apply");
        let message = b.wait_for(
            "the change accepted",
            "(() => { const m = document.querySelector('.route[data-route=\"primary\"] .message'); return m.classList.contains('ok') && m.innerText; })()",
            Duration::from_secs(10),
        );
        assert!(message.as_str().unwrap().contains("canary 50"), "{message}");
        // The plot follows: the next seconds' traffic is all baseline and canary.
        b.wait_for(
            "the traffic share plot showing the new split",
            &format!(
                "(() => {{ const r = {}; const c = {}; return r !== null && c !== null && r < 1 && c > 25 && c < 75; }})()",
                last_value_js("primary", "release traffic"),
                last_value_js("primary", "canary traffic")
            ),
            Duration::from_secs(10),
        );
        let in_plot = clicked.elapsed();
        b.wait_for(
            "the inputs follow the new split",
            "document.querySelector('.route[data-route=\"primary\"] input[data-dest=\"canary\"]').value === '50' && document.querySelector('.route[data-route=\"primary\"] .configured .seg').title.startsWith('baseline 50')",
            Duration::from_secs(5),
        );
        assert_eq!(b.console_errors(), Vec::<String>::new());
        // Some history after it, for the picture.
        b.wait_for("ten seconds after the change", "document.querySelector('#chart-rate path.line').getAttribute('d').split('L').length >= 20", Duration::from_secs(20));
        b.screenshot(&screenshots().join("dashboard.png"), None);

        // A wrong token is refused, and said so.
        b.type_into("#token", "not-the-token-0000000000");
        b.type_into(
            ".route[data-route=\"primary\"] input[data-dest=\"release\"]",
            "5",
        );
        b.click(".route[data-route=\"primary\"] button.apply");
        let refused = b.wait_for(
            "the refusal shown",
            "(() => { const m = document.querySelector('.route[data-route=\"primary\"] .message'); return m.classList.contains('bad') && m.innerText; })()",
            Duration::from_secs(10),
        );
        assert!(refused.as_str().unwrap().contains("401"), "{refused}");
        (loaded, in_plot)
    });
    // The admin API agrees with what the page said.
    let split = admin_json(admin, "/routes/primary/split").await;
    assert_eq!(
        split["split"],
        serde_json::json!({ "release": 0, "baseline": 50, "canary": 50 }),
        "{split}"
    );
    load.abort();
    println!(
        "dashboard: live after {:?}; a change in the plot {:?} after the click",
        timings.0, timings.1
    );
}
