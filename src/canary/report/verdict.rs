//! The report's top: the verdict (pass, marginal or fail, the outcome, the score on its
//! scale) and the one sentence that says what decided it, from the deciding judgement's
//! own numbers.

use std::fmt::Write;

use serde_json::Value;

use super::model::{Judged, Run};
use super::num;
use super::svg::{c, clock, esc};

/// The headline's word for a run's outcome.
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

pub(super) fn scored_metrics<'v>(j: &'v Judged) -> impl Iterator<Item = &'v Value> {
    j.judge["metrics"].as_array().into_iter().flatten()
}

fn is_failing(m: &Value) -> bool {
    !matches!(m["classification"].as_str(), Some("Pass" | "Nodata") | None)
}

pub(super) fn effect(m: &Value) -> String {
    let measure = m["effect"]["measure"].as_str().unwrap_or("mean_ratio");
    let value = m["effect"]["value"].as_f64().map_or("-".to_owned(), num);
    format!("{} {value}", measure.replace('_', " "))
}

/// One sentence on what decided the judgement, from its own numbers.
pub fn decided(run: &Run, j: &Judged) -> String {
    let score = j.score.unwrap_or(0.0);
    let at = format!("at {} points of stage {}", j.points, j.stage);
    let failing: Vec<&Value> = scored_metrics(j)
        .filter(|m| is_failing(m) && !run.muted(m["name"].as_str().unwrap_or("")))
        .collect();
    if let Some(m) = failing.iter().find(|m| m["critical"] == true) {
        return format!(
            "{} was {} as a critical metric ({}), which scores the whole judgement 0 {at}.",
            m["name"].as_str().unwrap_or("?"),
            m["classification"].as_str().unwrap_or("?"),
            effect(m)
        );
    }
    // The judge's own words when no data made the score 0.
    let warnings = j.judge["warnings"].as_array().into_iter().flatten();
    if let Some(zero) = warnings
        .filter_map(Value::as_str)
        .find(|w| w.starts_with("score 0:"))
    {
        return format!(
            "The judge scored 0: {}, {at}.",
            zero.trim_start_matches("score 0: ")
        );
    }
    if failing.is_empty() {
        let name = |m: &&Value| m["name"].as_str().unwrap_or("").to_owned();
        let counted: Vec<&Value> = scored_metrics(j).filter(|m| !run.muted(&name(m))).collect();
        let nodata = counted
            .iter()
            .filter(|m| m["classification"] == "Nodata")
            .count();
        let muted = scored_metrics(j).count() - counted.len();
        let mut s = format!(
            "No scored metric differed beyond its tolerance: {} of {} passed",
            counted.len() - nodata,
            counted.len()
        );
        if nodata > 0 {
            let _ = write!(s, " ({nodata} without data, not counted)");
        }
        if muted > 0 {
            let _ = write!(s, " and {muted} muted");
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

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    /// A report whose one judgement has these metrics (`[name, class, critical]`) and
    /// warnings; `muted` names the muted ones.
    fn doc(
        metrics: &[(&str, &str, bool)],
        muted: &[&str],
        score: f64,
        warnings: &[&str],
    ) -> Map<String, Value> {
        let config: Vec<Value> = metrics
            .iter()
            .map(|(n, ..)| json!({ "name": n, "group": "g", "source": "weir", "query": "latency_p95", "muted": muted.contains(n) }))
            .collect();
        let judged: Vec<Value> = metrics
            .iter()
            .map(|(n, c, critical)| json!({ "name": n, "group": "g", "classification": c, "critical": critical, "effect": { "measure": "mean_ratio", "value": 1.5 } }))
            .collect();
        let v = json!({
            "weir_canary": "0",
            "started": "2026-12-02T14:00:00Z",
            "config": { "metrics": config },
            "judgements": [{ "time": "2026-12-02T14:00:30Z", "stage": 1, "points": 12, "kind": "running",
                "judgement": { "score": score, "verdict": "fail", "groups": { "g": { "score": score, "weight": 100 } },
                               "warnings": warnings, "metrics": judged } }],
        });
        let Value::Object(m) = v else { unreachable!() };
        m
    }

    fn sentence(d: &Map<String, Value>) -> String {
        let run = Run::read(d).unwrap();
        decided(&run, run.deciding().unwrap())
    }

    #[test]
    fn the_sentence_names_what_cost_points() {
        let d = doc(
            &[("p95", "High", false), ("cpu", "Pass", false)],
            &[],
            50.0,
            &[],
        );
        assert_eq!(
            sentence(&d),
            "p95 was High (mean ratio 1.5), so group g (weight 100) scored 50 and the score is 50 at 12 points of stage 1, at or below marginal 75."
        );
    }

    #[test]
    fn muted_metrics_do_not_decide() {
        let d = doc(
            &[("p95", "High", false), ("cpu", "Pass", false)],
            &["p95"],
            100.0,
            &[],
        );
        assert_eq!(
            sentence(&d),
            "No scored metric differed beyond its tolerance: 1 of 1 passed and 1 muted, so the score is 100 at 12 points of stage 1, at or above pass 95."
        );
    }

    #[test]
    fn a_critical_failure_and_missing_data_say_why_the_score_is_zero() {
        let d = doc(
            &[("errors", "High", true)],
            &[],
            0.0,
            &["score 0: critical metric `errors` is High"],
        );
        assert!(sentence(&d).starts_with("errors was High as a critical metric (mean ratio 1.5), which scores the whole judgement 0"));
        let d = doc(
            &[("a", "Nodata", false), ("b", "Pass", false)],
            &[],
            0.0,
            &["score 0: 1 of 2 metrics have no data (Kayenta fails at 50 %)"],
        );
        assert_eq!(
            sentence(&d),
            "The judge scored 0: 1 of 2 metrics have no data (Kayenta fails at 50 %), at 12 points of stage 1."
        );
    }
}
