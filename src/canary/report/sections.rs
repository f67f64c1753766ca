//! The report's sections as HTML, top to bottom: the verdict with the sentence that says
//! what decided it, the stages, the groups, one section per metric, and the record
//! (weight changes, missing points, notes). Every number shown is the judgement's own.

use std::fmt::Write;

use serde_json::Value;

use super::model::{Judged, Metric, Run, Unit, show_weights};
use super::num;
use super::plots;
use super::svg::{c, clock, esc};

/// The word for a run's outcome, and whether it was the judge's doing.
fn outcome_title(run: &Run) -> &'static str {
    match run.result.as_str() {
        "promoted" => "Promoted",
        "would_promote" => "Would promote (dry run)",
        "rolled_back" => "Rolled back",
        "would_roll_back" => "Would roll back (dry run)",
        "interrupted" => "Interrupted, rolled back",
        "lost_target" => "Lost a weir, rolled back",
        "preflight_failed" => "Pre-flight failed, nothing changed",
        "promote_failed" => "Promote failed",
        "running" => "Running",
        _ => "Ended",
    }
}

/// What a score is against the thresholds, in words.
fn against(score: f64, (pass, marginal): (f64, f64)) -> String {
    if score >= pass {
        format!("at or above pass {}", num(pass))
    } else if score > marginal {
        format!(
            "below pass {} and above marginal {}",
            num(pass),
            num(marginal)
        )
    } else {
        format!("at or below marginal {}", num(marginal))
    }
}

fn scored_metrics<'v>(j: &'v Judged) -> impl Iterator<Item = &'v Value> {
    j.judge["metrics"].as_array().into_iter().flatten()
}

fn is_failing(m: &Value) -> bool {
    !matches!(m["classification"].as_str(), Some("Pass" | "Nodata") | None)
}

fn effect(m: &Value) -> String {
    let measure = m["effect"]["measure"].as_str().unwrap_or("mean_ratio");
    let value = m["effect"]["value"].as_f64().map_or("-".to_owned(), num);
    format!("{} {value}", measure.replace('_', " "))
}

/// One sentence on what decided the judgement, from its own numbers.
pub fn decided(run: &Run, j: &Judged) -> String {
    let score = j.score.unwrap_or(0.0);
    let at = format!("at {} points of stage {}", j.points, j.stage);
    let failing: Vec<&Value> = scored_metrics(j).filter(|m| is_failing(m)).collect();
    if let Some(m) = failing.iter().find(|m| m["critical"] == true) {
        return format!(
            "{} was {} as a critical metric ({}), which scores the whole judgement 0 {at}.",
            m["name"].as_str().unwrap_or("?"),
            m["classification"].as_str().unwrap_or("?"),
            effect(m)
        );
    }
    if failing.is_empty() {
        let nodata = scored_metrics(j)
            .filter(|m| m["classification"] == "Nodata")
            .count();
        let total = scored_metrics(j).count();
        let mut s = format!(
            "No metric differed beyond its tolerance: {} of {total} passed",
            total - nodata
        );
        if nodata > 0 {
            let _ = write!(s, " ({nodata} without data, not counted)");
        }
        let _ = write!(
            s,
            ", so the score is {} {at}, {}.",
            num(score),
            against(score, run.thresholds)
        );
        return s;
    }
    let named: Vec<String> = failing
        .iter()
        .map(|m| {
            format!(
                "{} was {} ({})",
                m["name"].as_str().unwrap_or("?"),
                m["classification"].as_str().unwrap_or("?"),
                effect(m)
            )
        })
        .collect();
    let groups: Vec<String> = j.judge["groups"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, g)| g["score"].as_f64().is_some_and(|s| s < 100.0))
        .map(|(name, g)| {
            format!(
                "group {name} (weight {}) scored {}",
                g["weight"].as_f64().map_or("-".to_owned(), num),
                g["score"].as_f64().map_or("-".to_owned(), num)
            )
        })
        .collect();
    format!(
        "{}, so {} and the score is {} {at}, {}.",
        join(&named),
        join(&groups),
        num(score),
        against(score, run.thresholds)
    )
}

/// `a`, `a and b`, `a, b and c`.
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The verdict: badge, headline, the deciding sentence, the score on its scale.
pub fn verdict(run: &Run, out: &mut String) {
    let j = run.deciding();
    let verdict = j.map_or("none", |j| j.verdict.as_str());
    let badge = match (run.running(), verdict) {
        (true, "none") => "RUNNING".to_owned(),
        (_, "none") => "NO VERDICT".to_owned(),
        (_, v) => v.to_uppercase(),
    };
    let _ = write!(
        out,
        r#"<header class="verdict {v}" id="verdict"><div class="badge">{badge}</div><div class="verdict-text"><h1>{}"#,
        outcome_title(run),
        v = esc(verdict)
    );
    if let Some(score) = j.and_then(|j| j.score) {
        let _ = write!(
            out,
            ": score {:.2}, {}",
            score,
            esc(&against(score, run.thresholds))
        );
    }
    out.push_str("</h1>");
    if let Some(j) = j {
        let running = if run.running() { "So far: " } else { "" };
        let _ = write!(
            out,
            r#"<p class="decided">{running}{}</p>"#,
            esc(&decided(run, j))
        );
        if let Some(score) = j.score {
            score_scale(run, score, out);
        }
    }
    if !run.reason.is_empty() {
        let _ = write!(
            out,
            r#"<p class="reason">The controller: “{}”</p>"#,
            esc(&run.reason)
        );
    }
    let _ = write!(
        out,
        r#"<p class="meta">route <b>{}</b> on {} weir(s) · started {} · {} · exit status {}{}</p></div></header>"#,
        esc(&run.route),
        run.targets.len(),
        esc(&run.started),
        if run.running() {
            format!("running for {}", clock(run.end))
        } else {
            format!("ran {}", clock(run.end))
        },
        run.exit_code.map_or("-".to_owned(), |c| c.to_string()),
        if run.dry_run {
            " · dry run: no weight was changed"
        } else {
            ""
        }
    );
}

/// The score as a marker on a 0-100 bar with the fail, marginal and pass zones.
fn score_scale(run: &Run, score: f64, out: &mut String) {
    let (pass, marginal) = run.thresholds;
    let x = |v: f64| 12.0 + v.clamp(0.0, 100.0) * 5.0;
    let _ = write!(
        out,
        r#"<svg class="scale" viewBox="0 0 524 60" width="524" height="60" role="img" aria-label="score {score:.2} on 0 to 100; marginal {marginal}, pass {pass}"><rect class="zone-fail" x="12" y="14" width="{}" height="14"/><rect class="zone-marginal" x="{}" y="14" width="{}" height="14"/><rect class="zone-pass" x="{}" y="14" width="{}" height="14"/>"#,
        c(x(marginal) - 12.0),
        c(x(marginal)),
        c(x(pass) - x(marginal)),
        c(x(pass)),
        c(x(100.0) - x(pass)),
    );
    for (v, name) in [(marginal, "marginal"), (pass, "pass")] {
        let _ = write!(
            out,
            r#"<line class="threshold" x1="{x}" x2="{x}" y1="12" y2="30"/><text class="tick" x="{x}" y="9" text-anchor="middle">{name} {}</text>"#,
            num(v),
            x = c(x(v))
        );
    }
    // The ends' labels, unless the marker sits on them.
    for (v, anchor) in [(0.0, "start"), (100.0, "end")] {
        if (score - v).abs() > 8.0 {
            let _ = write!(
                out,
                r#"<text class="tick" x="{}" y="42" text-anchor="{anchor}">{}</text>"#,
                c(x(v)),
                num(v)
            );
        }
    }
    let anchor = match score {
        s if s > 90.0 => "end",
        s if s < 10.0 => "start",
        _ => "middle",
    };
    let _ = write!(
        out,
        r#"<path class="score-marker" d="M{x} 29l-6 14h12z"/><text class="score-text" x="{x}" y="56" text-anchor="{anchor}">score {score:.2}</text></svg>"#,
        x = c(x(score))
    );
}

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
        if r.is_some_and(|r| r["critical"] == true) {
            r#" <span class="class critical">critical</span>"#
        } else {
            ""
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
        for (t, stage, metric, side, why) in &run.missing {
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
