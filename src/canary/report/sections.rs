//! The report's sections after the verdict, as HTML: the stages, the groups, one
//! section per metric with its plots and the judge's numbers, and the record (weight
//! changes, missing points, notes). Every number shown is the judgement's own.

use std::fmt::Write;

use serde_json::Value;

use super::model::{Metric, Run, Unit, show_weights};
use super::num;
use super::plots;
use super::svg::{clock, esc};
use super::verdict::{effect, scored_metrics};

/// The stages: the picture over time, then a table.
pub fn stages(run: &Run, out: &mut String) {
    out.push_str(r#"<section id="stages"><h2>Stages</h2>"#);
    out.push_str(&plots::stages_and_scores(run));
    out.push_str(
        "<table><thead><tr><th>stage</th><th>weights</th><th>started</th><th>warm-up</th><th>analysis</th><th>points</th><th>score</th><th>verdict</th></tr></thead><tbody>",
    );
    for s in &run.stages {
        let j = run.stage_judgement(s.number);
        let t = |v: Option<f64>| v.map_or("-".to_owned(), clock);
        let warmup = match (s.started, s.analysis) {
            (Some(a), Some(b)) => clock(b - a),
            _ => "-".to_owned(),
        };
        let analysis = match (s.analysis, s.ended.or(j.map(|j| j.t))) {
            (Some(a), Some(b)) => clock(b - a),
            _ => "-".to_owned(),
        };
        let score = s.score.or(j.and_then(|j| j.score));
        let verdict = j.map_or("", |j| j.verdict.as_str());
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{warmup}</td><td>{analysis}{}</td><td>{}</td><td>{}</td><td class="v {v}">{v}{}</td></tr>"#,
            s.number,
            esc(&show_weights(&s.weights)),
            t(s.started),
            if s.ended.is_none() && j.is_some() {
                " (stopped)"
            } else {
                ""
            },
            j.map_or("-".to_owned(), |j| j.points.to_string()),
            score.map_or("-".to_owned(), |s| format!("{s:.2}")),
            j.map_or("", |j| if j.kind == "running" {
                " (running)"
            } else {
                ""
            }),
            v = esc(verdict)
        );
    }
    out.push_str("</tbody></table></section>");
}

/// The groups of the deciding judgement, with weights, scores and their metrics.
pub fn groups(run: &Run, out: &mut String) {
    let Some(j) = run.deciding() else { return };
    out.push_str(
        r#"<section id="groups"><h2>Groups</h2><table><thead><tr><th>group</th><th>weight</th><th>score</th><th>points to the total</th><th>metrics</th></tr></thead><tbody>"#,
    );
    for (name, g) in j.judge["groups"].as_object().into_iter().flatten() {
        let (score, weight) = (g["score"].as_f64(), g["weight"].as_f64());
        let metrics: Vec<String> = scored_metrics(j)
            .filter(|m| m["group"] == name.as_str())
            .map(|m| {
                let class = m["classification"].as_str().unwrap_or("?");
                format!(
                    r##"<a href="#metric-{}">{}</a> <span class="class {}">{}</span>"##,
                    esc(&anchor(m["name"].as_str().unwrap_or(""))),
                    esc(m["name"].as_str().unwrap_or("")),
                    esc(&class.to_lowercase()),
                    esc(class)
                )
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            weight.map_or("-".to_owned(), num),
            score.map_or("-".to_owned(), |s| format!("{s:.2}")),
            score.zip(weight).map_or("-".to_owned(), |(s, w)| format!(
                "{:.2} of {}",
                s * w / 100.0,
                num(w)
            )),
            metrics.join(", ")
        );
    }
    let _ = write!(
        out,
        "</tbody></table><p class=\"note\">Judgement of stage {} at {} points ({}). A group scores 100 × passing / counted metrics; the total is the weighted sum.</p></section>",
        j.stage,
        j.points,
        esc(&j.kind)
    );
}

/// An id from a metric name.
pub fn anchor(name: &str) -> String {
    name.chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
        .collect()
}

/// A judgement number with its shown unit: `1.319e7 (12.58 MiB)`, `0.0299 cores`.
fn with_unit(raw: Option<f64>, unit: Unit, difference: bool) -> String {
    let Some(v) = raw else { return "-".to_owned() };
    match unit {
        Unit::MiB => format!("{} ({} MiB)", num(v), num(unit.show(v))),
        Unit::Percent if difference => format!("{} ({} pp)", num(v), num(unit.show(v))),
        Unit::Percent => format!("{} ({} %)", num(v), num(unit.show(v))),
        Unit::Plain => num(v),
        _ => format!("{} {}", num(v), unit.label()),
    }
}

/// One metric: its plots and the numbers that decided it.
pub fn metric(run: &Run, m: &Metric, out: &mut String) {
    let j = run.deciding();
    let r = j.and_then(|j| j.metric(&m.name));
    let class = r
        .and_then(|r| r["classification"].as_str())
        .unwrap_or("not judged");
    let _ = write!(
        out,
        r#"<section class="metric" id="metric-{}"><h3>{} <span class="class {}">{}</span>{} <span class="group">group {}</span></h3><p class="source">{} · a {} is bad · {}</p>"#,
        esc(&anchor(&m.name)),
        esc(&m.name),
        esc(&class.to_lowercase().replace(' ', "-")),
        esc(class),
        match (r.is_some_and(|r| r["critical"] == true), m.muted) {
            (true, _) => r#" <span class="class critical">critical</span>"#,
            (_, true) => r#" <span class="class nodata">muted: not scored</span>"#,
            _ => "",
        },
        esc(&m.group),
        esc(&m.source),
        match m.direction.as_str() {
            "increase" => "rise",
            "decrease" => "fall",
            _ => "change either way",
        },
        if m.proportions {
            "Fisher's exact test on the counts"
        } else {
            "Mann-Whitney on the points"
        },
    );
    let (canary, baseline, window) = match j {
        Some(j) => {
            let (cp, bp) = m.judged(j.stage, j.points);
            let from = cp
                .iter()
                .chain(&bp)
                .map(|p| p.t)
                .fold(f64::INFINITY, f64::min);
            let to = cp.iter().chain(&bp).map(|p| p.t).fold(0.0, f64::max);
            let interval = run.interval.map_or(0.0, |i| i.as_secs_f64());
            let window = from.is_finite().then_some((from - interval, to));
            (
                plots::values(&cp, m.unit),
                plots::values(&bp, m.unit),
                window,
            )
        }
        None => (Vec::new(), Vec::new(), None),
    };
    out.push_str(r#"<div class="plots">"#);
    out.push_str(&plots::time_series(run, m, window));
    out.push_str(&plots::histogram(m, &canary, &baseline));
    out.push_str(&plots::beeswarm(m, &canary, &baseline));
    out.push_str("</div>");
    if let Some((r, j)) = r.zip(j) {
        numbers(m, r, out);
        let _ = write!(
            out,
            r#"<p class="rule"><b>The rule:</b> {}</p>"#,
            esc(r["reason"].as_str().unwrap_or(""))
        );
        let warnings: Vec<&str> = j.judge["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|w| w.contains(&format!("`{}`", m.name)))
            .collect();
        let missing = run.missing.iter().filter(|x| x.2 == m.name).count();
        if !warnings.is_empty() || missing > 0 {
            out.push_str(r#"<ul class="warnings">"#);
            for w in warnings {
                let _ = write!(out, "<li>{}</li>", esc(w));
            }
            if missing > 0 {
                let _ = write!(
                    out,
                    "<li>{missing} point(s) missing over the run (see Missing points below)</li>"
                );
            }
            out.push_str("</ul>");
        }
    } else {
        out.push_str(r#"<p class="note">Not judged yet.</p>"#);
    }
    out.push_str("</section>");
}

/// The judgement's numbers for one metric, as `weir judge` prints them.
fn numbers(m: &Metric, r: &Value, out: &mut String) {
    let side = |s: &Value| {
        let (n, mean, median) = (
            s["count"].as_u64(),
            s["mean"].as_f64(),
            s["median"].as_f64(),
        );
        if m.proportions {
            format!(
                "<td>{}</td><td colspan=\"2\">{}</td>",
                n.map_or("-".to_owned(), |n| n.to_string()),
                with_unit(mean, m.unit, false)
            )
        } else {
            format!(
                "<td>{}</td><td>{}</td><td>{}</td>",
                n.map_or("-".to_owned(), |n| n.to_string()),
                with_unit(mean, m.unit, false),
                with_unit(median, m.unit, false)
            )
        }
    };
    let _ = write!(
        out,
        r#"<div class="numbers"><table class="samples"><thead><tr><th></th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody><tr class="canary"><th><i class="key canary"></i>canary</th>{}</tr><tr class="baseline"><th><i class="key baseline"></i>baseline</th>{}</tr></tbody></table>"#,
        if m.proportions { "trials" } else { "points" },
        if m.proportions { "rate" } else { "mean" },
        if m.proportions { "" } else { "median" },
        side(&r["canary"]),
        side(&r["baseline"])
    );
    let f = |k: &str| r[k].as_f64();
    let rows = [
        ("lower", with_unit(f("lower"), m.unit, true)),
        ("upper", with_unit(f("upper"), m.unit, true)),
        ("estimate", with_unit(f("estimate"), m.unit, true)),
        ("p-value", f("p_value").map_or("-".to_owned(), num)),
        ("mean ratio", f("deviation").map_or("-".to_owned(), num)),
        ("effect size", effect(r)),
        (
            "classification",
            format!(
                "{}{}",
                r["classification"].as_str().unwrap_or("?"),
                if r["critical"] == true {
                    " (critical)"
                } else {
                    ""
                }
            ),
        ),
    ];
    out.push_str(r#"<table class="decision"><tbody>"#);
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    out.push_str("</tbody></table></div>");
}

/// The most missing points listed: a source down for hours must not make the page large.
const MAX_ROWS: usize = 200;

/// Weight changes, missing points and notes, in time order.
pub fn record(run: &Run, out: &mut String) {
    out.push_str(r#"<section id="record"><h2>Record</h2>"#);
    if !run.weight_changes.is_empty() {
        out.push_str("<h3>Weight changes</h3><table><thead><tr><th>time</th><th>weir</th><th>weights</th><th>why</th><th>applied</th></tr></thead><tbody>");
        for w in &run.weight_changes {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                clock(w.t),
                esc(&w.target),
                esc(&show_weights(&w.weights)),
                esc(&w.why),
                esc(w.error.as_deref().map_or("yes", |e| e))
            );
        }
        out.push_str("</tbody></table>");
    }
    if !run.missing.is_empty() {
        out.push_str("<h3>Missing points</h3><table><thead><tr><th>time</th><th>stage</th><th>metric</th><th>side</th><th>why</th></tr></thead><tbody>");
        for (t, stage, metric, side, why) in run.missing.iter().take(MAX_ROWS) {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{stage}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                clock(*t),
                esc(metric),
                esc(side),
                esc(why)
            );
        }
        out.push_str("</tbody></table>");
        if run.missing.len() > MAX_ROWS {
            let _ = write!(
                out,
                "<p class=\"note\">and {} more, all in report.json</p>",
                run.missing.len() - MAX_ROWS
            );
        }
    }
    if !run.notes.is_empty() {
        out.push_str("<h3>Notes</h3><ul>");
        for (t, note) in &run.notes {
            let _ = write!(out, "<li>{} {}</li>", clock(*t), esc(note));
        }
        out.push_str("</ul>");
    }
    let _ = write!(
        out,
        "<p class=\"note\">Weirs: {}. Rollout config: {}. Times are since the start, {}.</p></section>",
        esc(&run.targets.join(", ")),
        esc(&run.config_file),
        esc(&run.started)
    );
}
