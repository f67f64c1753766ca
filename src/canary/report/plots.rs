//! The report's plots, each an inline SVG: the stages and scores over time, and per
//! metric its time series, the two histograms overlaid, and a beeswarm of the points
//! the judgement saw. Canary and baseline are always the classes `canary` and
//! `baseline` (orange and blue from the Okabe-Ito palette, in the stylesheet).

use std::fmt::Write;

use super::model::{Metric, Point, Run, Unit, show_weights};
use super::svg::{Frame, c, clock, esc, nice, tick_label, time_ticks};

const SIDES: [&str; 2] = ["baseline", "canary"];

fn time_axis(frame: &Frame, out: &mut String) {
    let (lo, hi) = frame.x.domain();
    let ticks: Vec<(f64, String)> = time_ticks(lo, hi)
        .into_iter()
        .map(|t| (t, clock(t)))
        .collect();
    frame.x_axis(out, &ticks, "time since the run started (m:ss)");
}

/// The run's time domain, in seconds.
fn time_domain(run: &Run) -> (f64, f64) {
    let interval = run.interval.map_or(1.0, |i| i.as_secs_f64());
    (0.0, run.end.max(interval))
}

/// A weight change worth a marker: not the one that starts a stage (the stage line says
/// it), and once per change, not once per weir.
fn changes(run: &Run) -> Vec<(f64, String)> {
    let mut out: Vec<(f64, String)> = Vec::new();
    for w in run.weight_changes.iter().filter(|w| w.error.is_none()) {
        if w.why.starts_with("stage ") {
            continue;
        }
        let label = format!("{} {}", w.why, show_weights(&w.weights));
        if !out
            .iter()
            .any(|(t, l)| *l == label && (w.t - t).abs() < 2.0)
        {
            out.push((w.t, label));
        }
    }
    out
}

/// Stage boundaries, warm-ups and weight changes, drawn behind a time plot; stage
/// labels go inside the plot's top edge, or above it with `above`.
fn markers(frame: &Frame, run: &Run, out: &mut String, above: bool) {
    let (top, bottom) = (c(frame.top), c(frame.bottom));
    for s in &run.stages {
        let Some(start) = s.started else { continue };
        let x0 = frame.x.at(start);
        if let Some(analysis) = s.analysis.filter(|a| *a > start) {
            let _ = write!(
                out,
                r#"<rect class="warmup" x="{}" y="{top}" width="{}" height="{}"><title>stage {} warm-up: no points</title></rect>"#,
                c(x0),
                c(frame.x.at(analysis) - x0),
                c(frame.bottom - frame.top),
                s.number
            );
        }
        let _ = write!(
            out,
            r#"<line class="stage-line" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}"/>"#,
            x = c(x0)
        );
        let _ = write!(
            out,
            r#"<text class="marker-label" x="{}" y="{}">stage {} · {}</text>"#,
            c(x0 + 3.0),
            c(if above {
                frame.top - 6.0
            } else {
                frame.top + 9.0
            }),
            s.number,
            esc(&s
                .weights
                .iter()
                .map(|(_, w)| w.to_string())
                .collect::<Vec<_>>()
                .join("/"))
        );
    }
    for (t, label) in changes(run) {
        let x = c(frame.x.at(t));
        let _ = write!(
            out,
            r#"<line class="change-line" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}"><title>{}</title></line>"#,
            esc(&label)
        );
        let _ = write!(
            out,
            r#"<text class="marker-label" x="{}" y="{}" text-anchor="end">{}</text>"#,
            c(frame.x.at(t) - 3.0),
            c(frame.bottom - 5.0),
            esc(&label)
        );
    }
}

/// The stages as bands with their weights and score, and every judgement's score against
/// the thresholds below them.
pub fn stages_and_scores(run: &Run) -> String {
    let (pass, marginal) = run.thresholds;
    let frame = Frame::with_margins(
        960.0,
        260.0,
        (58.0, 28.0, 18.0, 40.0),
        time_domain(run),
        (0.0, 100.0),
    );
    let mut out = String::new();
    frame.open(
        &mut out,
        "scores",
        "stages over time with their weights, and the score of every judgement against the pass and marginal thresholds",
    );
    let y = |v: f64| c(frame.y.at(v));
    let (l, w) = (c(frame.left), c(frame.right - frame.left));
    for (class, from, to) in [
        ("zone-fail", 0.0, marginal),
        ("zone-marginal", marginal, pass),
        ("zone-pass", pass, 100.0),
    ] {
        let _ = write!(
            out,
            r#"<rect class="{class}" x="{l}" y="{}" width="{w}" height="{}"/>"#,
            y(to),
            c(frame.y.at(from) - frame.y.at(to)),
        );
    }
    frame.y_axis(&mut out, &[0.0, 25.0, 50.0, 75.0, 100.0], "score");
    markers(&frame, run, &mut out, true);
    for (v, name) in [(pass, "pass"), (marginal, "marginal")] {
        let _ = write!(
            out,
            r#"<line class="threshold" x1="{}" x2="{}" y1="{yy}" y2="{yy}"/><text class="threshold-label" x="{}" y="{yy}" dy="-3">{name} {}</text>"#,
            c(frame.left),
            c(frame.right),
            c(frame.left + 4.0),
            tick_label(v, &[0.0, 1.0]),
            yy = y(v)
        );
    }
    // One line per stage: each stage's judgements are of its own points.
    for s in &run.stages {
        let scored = run
            .judgements
            .iter()
            .filter(|j| j.stage == s.number)
            .map(|j| (j.t, j.score));
        let _ = write!(
            out,
            r#"<path class="score-line" d="{}"/>"#,
            frame.path(scored)
        );
    }
    for j in &run.judgements {
        let Some(score) = j.score else { continue };
        let r = if j.kind == "stage end" { 6.0 } else { 3.5 };
        let _ = write!(
            out,
            r#"<circle class="score {}" cx="{}" cy="{}" r="{r}"><title>{} judgement of stage {} at {} points, {}: score {score:.2} ({})</title></circle>"#,
            esc(&j.verdict),
            c(frame.x.at(j.t)),
            y(score),
            esc(&j.kind),
            j.stage,
            j.points,
            clock(j.t),
            esc(&j.verdict)
        );
    }
    time_axis(&frame, &mut out);
    out.push_str("</svg>");
    out
}

/// The shown values of a side's points (missing ones dropped).
pub fn values(points: &[Point], unit: Unit) -> Vec<f64> {
    points
        .iter()
        .filter_map(|p| p.value)
        .filter(|v| v.is_finite())
        .map(|v| unit.show(v))
        .collect()
}

/// The y range every plot of a metric shares, so they read across.
pub fn value_domain(m: &Metric) -> ((f64, f64), Vec<f64>) {
    let all = values(&m.canary, m.unit)
        .into_iter()
        .chain(values(&m.baseline, m.unit));
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    // Counts, rates and resources start at zero, unless the values sit far above it.
    let lo = if lo >= 0.0 && lo < (hi - lo) * 2.0 {
        0.0
    } else {
        lo
    };
    nice(lo, hi, 5.0)
}

/// Canary and baseline over the whole run, with the stages, weight changes and the
/// stretch the deciding judgement saw.
pub fn time_series(run: &Run, m: &Metric, judged: Option<(f64, f64)>) -> String {
    let (ydom, yticks) = value_domain(m);
    let frame = Frame::new(600.0, 250.0, time_domain(run), ydom);
    let mut out = String::new();
    frame.open(
        &mut out,
        "series",
        &format!("{}: canary and baseline over time", m.name),
    );
    if let Some((from, to)) = judged {
        let x0 = frame.x.at(from);
        let _ = write!(
            out,
            r#"<rect class="judged" x="{}" y="{}" width="{}" height="{}"><title>the points the deciding judgement saw</title></rect>"#,
            c(x0),
            c(frame.top),
            c((frame.x.at(to) - x0).max(1.0)),
            c(frame.bottom - frame.top)
        );
    }
    frame.y_axis(&mut out, &yticks, &m.unit.title(&m.name));
    markers(&frame, run, &mut out, false);
    for (side, points) in [("baseline", &m.baseline), ("canary", &m.canary)] {
        let line = frame.path(
            points
                .iter()
                .map(|p| (p.t, p.value.map(|v| m.unit.show(v)))),
        );
        let _ = write!(out, r#"<path class="line {side}" d="{line}"/>"#);
        // Dots only where there are few enough to tell apart; the line carries the rest.
        if points.len() <= 400 {
            let _ = write!(out, r#"<g class="dots {side}">"#);
            for p in points {
                if let Some(v) = p.value.map(|v| m.unit.show(v)).filter(|v| v.is_finite()) {
                    let _ = write!(
                        out,
                        r#"<circle cx="{}" cy="{}" r="2"/>"#,
                        c(frame.x.at(p.t)),
                        c(frame.y.at(v))
                    );
                }
            }
            out.push_str("</g>");
        }
    }
    time_axis(&frame, &mut out);
    out.push_str("</svg>");
    out
}

/// The two samples' histograms on the same bins, overlaid.
pub fn histogram(m: &Metric, canary: &[f64], baseline: &[f64]) -> String {
    let all = canary.iter().chain(baseline);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(*v), hi.max(*v))
    });
    let n = canary.len().max(baseline.len()).max(1) as f64;
    let bins = (n.sqrt() * 1.5).clamp(5.0, 30.0);
    let ((lo, hi), edges) = nice(lo, hi, bins);
    let width = match edges.as_slice() {
        [a, b, ..] => b - a,
        _ => hi - lo,
    };
    let count = |sample: &[f64]| -> Vec<usize> {
        let mut counts = vec![0; edges.len().saturating_sub(1).max(1)];
        for v in sample {
            let i = (((v - lo) / width).floor().max(0.0) as usize).min(counts.len() - 1);
            counts[i] += 1;
        }
        counts
    };
    let (cc, bc) = (count(canary), count(baseline));
    let top = cc.iter().chain(&bc).copied().max().unwrap_or(1).max(1) as f64;
    let ((ylo, yhi), yticks) = nice(0.0, top, 4.0);
    let yticks: Vec<f64> = yticks.into_iter().filter(|t| t.fract() == 0.0).collect();
    let frame = Frame::new(320.0, 250.0, (lo, hi), (ylo, yhi));
    let mut out = String::new();
    frame.open(
        &mut out,
        "histogram",
        &format!("{}: histograms of the judged points", m.name),
    );
    frame.y_axis(&mut out, &yticks, "points");
    for (side, counts) in [("baseline", &bc), ("canary", &cc)] {
        let _ = write!(out, r#"<g class="bars {side}">"#);
        for (i, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            let x0 = lo + i as f64 * width;
            let (px, py) = (frame.x.at(x0), frame.y.at(*n as f64));
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}"><title>{side}: {n} point(s) from {} to {}</title></rect>"#,
                c(px),
                c(py),
                c(frame.x.at(x0 + width) - px),
                c(frame.bottom - py),
                tick_label(x0, &edges),
                tick_label(x0 + width, &edges)
            );
        }
        out.push_str("</g>");
    }
    let xticks: Vec<(f64, String)> = thin(&edges, 6)
        .into_iter()
        .map(|v| (v, tick_label(v, &edges)))
        .collect();
    frame.x_axis(&mut out, &xticks, &m.unit.title(&m.name));
    out.push_str("</svg>");
    out
}

/// Every `k`-th value so that at most `max` remain.
fn thin(values: &[f64], max: usize) -> Vec<f64> {
    let k = values.len().div_ceil(max.max(1)).max(1);
    values.iter().copied().step_by(k).collect()
}

/// A beeswarm: each judged point a dot at its value, pushed sideways only as far as it
/// must be not to cover another; a bar at each side's median.
pub fn beeswarm(m: &Metric, canary: &[f64], baseline: &[f64]) -> String {
    let (ydom, yticks) = value_domain(m);
    let frame = Frame::new(220.0, 250.0, (0.0, 2.0), ydom);
    let mut out = String::new();
    frame.open(
        &mut out,
        "beeswarm",
        &format!("{}: beeswarm of the judged points", m.name),
    );
    frame.y_axis(&mut out, &yticks, &m.unit.title(&m.name));
    let n = canary.len().max(baseline.len());
    let r = if n > 150 { 2.2 } else { 3.2 };
    for (i, (side, sample)) in SIDES.iter().zip([baseline, canary]).enumerate() {
        let centre = frame.x.at(i as f64 + 0.5);
        let half = (frame.right - frame.left) / 4.0 - r;
        let _ = write!(out, r#"<g class="swarm {side}">"#);
        for (x, y, v) in swarm(sample, |v| frame.y.at(v), centre, half, r) {
            let _ = write!(
                out,
                r#"<circle cx="{}" cy="{}" r="{r}"><title>{side} {}</title></circle>"#,
                c(x),
                c(y),
                esc(&format!("{} {}", super::num(v), m.unit.label()))
            );
        }
        out.push_str("</g>");
        if let Some(med) = median(sample) {
            let y = c(frame.y.at(med));
            let _ = write!(
                out,
                r#"<line class="median {side}" x1="{}" x2="{}" y1="{y}" y2="{y}"><title>{side} median {}</title></line>"#,
                c(centre - half * 0.9),
                c(centre + half * 0.9),
                esc(&format!("{} {}", super::num(med), m.unit.label()))
            );
        }
    }
    let ticks = vec![(0.5, "baseline".to_owned()), (1.5, "canary".to_owned())];
    frame.x_axis(&mut out, &ticks, &format!("{} points each", n));
    out.push_str("</svg>");
    out
}

fn median(sample: &[f64]) -> Option<f64> {
    let mut s = sample.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

/// Places dots of radius `r` at their `y`, each as near `centre` as it can be without
/// covering a dot placed before it, and never further than `half` from it.
fn swarm(
    sample: &[f64],
    y: impl Fn(f64) -> f64,
    centre: f64,
    half: f64,
    r: f64,
) -> Vec<(f64, f64, f64)> {
    let mut sorted = sample.to_vec();
    sorted.sort_by(f64::total_cmp);
    let d = 2.0 * r;
    let mut placed: Vec<(f64, f64, f64)> = Vec::with_capacity(sorted.len());
    for v in sorted {
        let py = y(v);
        // Only dots within one diameter vertically can collide; they are the last ones.
        let near: Vec<f64> = placed
            .iter()
            .rev()
            .take_while(|(_, qy, _)| (qy - py).abs() < d)
            .map(|(qx, _, _)| *qx)
            .collect();
        let free = |x: f64| near.iter().all(|qx| (qx - x).abs() >= d * 0.95);
        let mut x = centre;
        let mut k = 1.0;
        while !free(x) && k * r <= half {
            if free(centre + k * r) {
                x = centre + k * r;
            } else if free(centre - k * r) {
                x = centre - k * r;
            }
            k += 1.0;
        }
        // No room left within `half`: it goes on the centre line, over another.
        if !free(x) {
            x = centre;
        }
        placed.push((x, py, v));
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swarm_does_not_cover_dots() {
        let sample = vec![1.0; 9];
        let placed = swarm(&sample, |v| v * 10.0, 50.0, 40.0, 2.0);
        for (i, a) in placed.iter().enumerate() {
            for b in &placed[i + 1..] {
                assert!((a.0 - b.0).abs() >= 3.8, "{placed:?}");
            }
        }
        let spread = placed
            .iter()
            .map(|p| (p.0 - 50.0).abs())
            .fold(0.0, f64::max);
        assert!(spread <= 40.0 + 1e-9);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
