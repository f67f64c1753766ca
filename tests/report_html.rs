//! `report.html` without a browser: its size for the README's rollout (30 minutes of
//! analysis at 10 s intervals, judged at every interval), what it holds for a run that
//! never got a judgement and for one still going, escaping, and `weir report`'s errors.

mod support;

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use support::*;
use weir::canary::judge::{self, JudgeInput, MetricData, MetricInput, MetricSettings, Thresholds};
use weir::canary::rollout::report::rfc3339;

/// A deterministic stream of numbers in [0, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

const METRICS: [(&str, &str, &str, &str, f64); 4] = [
    (
        "healthy-responses",
        "istio",
        "weir",
        "healthy_responses",
        400.0,
    ),
    ("p95-latency", "istio", "weir", "latency_p95", 6.0),
    ("cpu", "kubernetes", "process", "cpu", 0.4),
    (
        "memory",
        "kubernetes",
        "process",
        "rss",
        200.0 * 1_048_576.0,
    ),
];

/// The report `weir canary` would write for the README's config: stage 1 (1 m warm-up,
/// 10 m analysis), stage 2 (20 m), a point every 10 s, a running judgement at every
/// interval from the 10th point, promoted.
fn thirty_minutes() -> Value {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_222_400);
    let at = |s: u64| rfc3339(t0 + Duration::from_secs(s));
    let mut rng = Lcg(7);
    let mut points = serde_json::Map::new();
    for (name, ..) in METRICS {
        points.insert(name.into(), json!({ "canary": [], "baseline": [] }));
    }
    let mut stages = Vec::new();
    let mut judgements = Vec::new();
    let mut changes = Vec::new();
    let mut t = 0;
    for (stage, (weights, warmup, intervals)) in [
        (json!({"release": 80, "baseline": 10, "canary": 10}), 60, 60),
        (json!({"release": 34, "baseline": 33, "canary": 33}), 0, 120),
    ]
    .into_iter()
    .enumerate()
    {
        changes.push(json!({ "time": at(t), "target": "http://10.0.3.7:15000", "weights": weights, "why": format!("stage {}", stage + 1), "applied": true, "error": null }));
        let mut s = json!({ "stage": stage + 1, "weights": weights, "started": at(t), "analysis_started": at(t + warmup) });
        t += warmup;
        let mut series: Vec<[Vec<f64>; 2]> = vec![[Vec::new(), Vec::new()]; METRICS.len()];
        for i in 1..=intervals {
            t += 10;
            for (m, (name, _, _, _, base)) in METRICS.iter().enumerate() {
                for (side, key) in ["canary", "baseline"].iter().enumerate() {
                    let v = base * (0.9 + 0.2 * rng.next());
                    series[m][side].push(v);
                    points[*name][*key]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({ "time": at(t), "stage": stage + 1, "value": v }));
                }
            }
            if i >= 10 {
                let input = JudgeInput {
                    groups: vec![("istio".into(), 60.0), ("kubernetes".into(), 40.0)],
                    thresholds: Thresholds {
                        pass: 95.0,
                        marginal: 75.0,
                    },
                    metrics: METRICS
                        .iter()
                        .zip(&series)
                        .map(|((name, group, ..), [c, b])| MetricInput {
                            name: (*name).into(),
                            group: (*group).into(),
                            settings: MetricSettings::default(),
                            data: MetricData::Samples {
                                canary: c.clone(),
                                baseline: b.clone(),
                            },
                        })
                        .collect(),
                };
                let kind = if i == intervals {
                    "stage end"
                } else {
                    "running"
                };
                judgements.push(json!({ "time": at(t), "stage": stage + 1, "points": i, "kind": kind, "judgement": judge::judge(&input).to_json() }));
            }
        }
        s["ended"] = json!(at(t));
        s["score"] = judgements.last().unwrap()["judgement"]["score"].clone();
        stages.push(s);
    }
    changes.push(json!({ "time": at(t), "target": "http://10.0.3.7:15000", "weights": {"canary": 100}, "why": "promote", "applied": true, "error": null }));
    json!({
        "weir_canary": "0.1.0",
        "config_file": "config/canary.yaml",
        "config": {
            "target": { "admin": ["http://10.0.3.7:15000"], "route": "primary" },
            "interval": "10s",
            "thresholds": { "pass": 95, "marginal": 75 },
            "groups": { "istio": 60, "kubernetes": 40 },
            "metrics": METRICS.iter().map(|(name, group, source, query, _)| json!({ "name": name, "group": group, "source": source, "query": query, "direction": "increase" })).collect::<Vec<_>>(),
        },
        "dry_run": false,
        "started": at(0),
        "targets": [{ "url": "http://10.0.3.7:15000", "first_seen": at(0), "split_at_first_sight": {"release": 100} }],
        "stages": stages,
        "points": points,
        "missing": [],
        "notes": [],
        "judgements": judgements,
        "weight_changes": changes,
        "outcome": { "result": "promoted", "exit_code": 0, "reason": "every stage passed", "time": at(t) },
    })
}

#[test]
fn thirty_minutes_at_ten_seconds_is_well_under_a_mebibyte() {
    let doc = thirty_minutes();
    let dir = TempDir::new("report-size");
    let json_path = dir.write("report.json", &serde_json::to_string_pretty(&doc).unwrap());
    let written = weir::canary::report::render_file(&json_path, None).expect("render");
    assert_eq!(written, dir.path().join("report.html"));
    let html = std::fs::read_to_string(&written).unwrap();
    println!(
        "report.json {} bytes, report.html {} bytes ({} judgements, 180 intervals, 4 metrics)",
        std::fs::metadata(&json_path).unwrap().len(),
        html.len(),
        doc["judgements"].as_array().unwrap().len()
    );
    assert!(html.len() < 1024 * 1024, "{} bytes", html.len());
    // Everything is in it: 4 metrics x 3 plots, both stages, every judgement's score.
    assert_eq!(html.matches("<svg class=\"plot series\"").count(), 4);
    assert_eq!(html.matches("<svg class=\"plot histogram\"").count(), 4);
    assert_eq!(html.matches("<svg class=\"plot beeswarm\"").count(), 4);
    assert_eq!(html.matches("<circle class=\"score ").count(), 51 + 111);
    assert!(
        html.contains("stage 2 · 34/33/33"),
        "stage boundaries are marked"
    );
    assert!(
        html.contains("promote 100 (canary)"),
        "the promote weight change is marked"
    );
    assert!(html.contains("<h1>Promoted: score"));
    // Nothing outside the file.
    for outside in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(outside), "{outside}");
    }
}

#[test]
fn a_source_down_all_run_long_keeps_the_page_small() {
    let mut doc = thirty_minutes();
    let mut missing = Vec::new();
    for (name, ..) in METRICS {
        for side in ["canary", "baseline"] {
            for p in doc["points"][name][side].as_array_mut().unwrap() {
                p["value"] = Value::Null;
                missing.push(json!({ "time": p["time"], "stage": p["stage"], "metric": name, "side": side, "why": "Prometheus: connection refused (http://prometheus.monitoring:9090)" }));
            }
        }
    }
    let n = missing.len();
    doc["missing"] = json!(missing);
    let html = weir::canary::report::render(doc.as_object().unwrap()).unwrap();
    assert!(html.len() < 1024 * 1024, "{} bytes", html.len());
    assert!(
        html.contains(&format!("and {} more, all in report.json", n - 200)),
        "{n}"
    );
    assert!(html.contains(&format!("{} point(s) missing over the run", n / 4)));
}

#[test]
fn a_run_without_a_judgement_says_so() {
    let mut doc = thirty_minutes();
    doc["judgements"] = json!([]);
    doc["stages"] = json!([]);
    doc["outcome"] = json!({ "result": "preflight_failed", "exit_code": 2, "reason": "pre-flight failed, nothing was changed: <no route>", "time": doc["started"] });
    let html = weir::canary::report::render(doc.as_object().unwrap()).unwrap();
    assert!(html.contains(r#"<div class="badge">NO VERDICT</div>"#));
    assert!(html.contains("Pre-flight failed, nothing changed"));
    assert!(
        html.contains("&lt;no route&gt;"),
        "text from the report is escaped"
    );
    assert!(!html.contains("<no route>"));
    assert!(
        !html.contains("http-equiv=\"refresh\""),
        "an ended run does not reload"
    );
}

#[test]
fn a_running_report_reloads_itself_and_names_the_latest_score() {
    let mut doc = thirty_minutes();
    doc["outcome"] = json!({ "result": "running" });
    doc["config"]["metrics"][0]["name"] = json!("<b>x</b>");
    let html = weir::canary::report::render(doc.as_object().unwrap()).unwrap();
    assert!(html.contains(r#"<meta http-equiv="refresh" content="10">"#));
    assert!(html.contains("<h1>Running: score"));
    assert!(html.contains("So far: "));
    assert!(!html.contains("<b>x</b>") && html.contains("&lt;b&gt;x&lt;/b&gt;"));
}

#[test]
fn weir_report_refuses_what_is_not_a_report() {
    let dir = TempDir::new("report-refusals");
    let not_json = dir.write("a.json", "{ nope");
    let other = dir.write("b.json", r#"{"score": 60}"#);
    for (path, says) in [
        (not_json.to_str().unwrap(), "not JSON"),
        (other.to_str().unwrap(), "not a `weir canary` report"),
        ("/nonexistent/report.json", "cannot read it"),
    ] {
        let out = weir_output(&["report", path], Duration::from_secs(20));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(says) && err.contains(path), "{err}");
    }
}
