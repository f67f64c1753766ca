//! What a person watching sees: on a terminal, a live view (a bar per stage with its
//! time left, the weights, and per metric the latest canary and baseline values, the
//! running classification and the running score); elsewhere, one line per interval.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::config::{RolloutConfig, Side, Weights};
use super::sources::{self, Interval};
use super::target::show;
use crate::canary::judge::Judgement;

/// Where a stage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Analysis,
}

/// The state shown at one interval.
pub struct Status<'a> {
    pub stage: usize,
    pub phase: Phase,
    /// Time into the stage and its total (warm-up plus analysis).
    pub elapsed: Duration,
    pub total: Duration,
    pub points: usize,
    pub weights: &'a Weights,
    pub targets: usize,
    pub interval: Option<&'a Interval>,
    pub judgement: Option<&'a Judgement>,
}

enum View {
    Live {
        multi: MultiProgress,
        stages: Vec<ProgressBar>,
        detail: ProgressBar,
    },
    Lines,
}

/// The progress display.
pub struct Progress {
    view: View,
    started: Instant,
    names: Vec<String>,
    stage_count: usize,
}

fn value(v: Option<&sources::Value>) -> String {
    match v {
        Some(sources::Value::Number(x)) if x.is_finite() => {
            let a = x.abs();
            if a >= 1e6 {
                format!("{:.1}M", x / 1e6)
            } else if a >= 100.0 || x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.3}")
            }
        }
        Some(sources::Value::Counts(Some(c))) => format!("{}/{}", c.successes, c.total),
        _ => "NaN".to_owned(),
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl Progress {
    /// A live view when stderr is a terminal and `live` allows it.
    pub fn new(cfg: &RolloutConfig, live: bool) -> Progress {
        let names = cfg.metrics.iter().map(|m| m.name.clone()).collect();
        let view = if live && std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix:.bold} [{bar:30.cyan/blue}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let stages = cfg
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let total = (s.warmup + s.duration).as_secs().max(1);
                    let bar = multi.add(ProgressBar::new(total));
                    bar.set_style(style.clone());
                    bar.set_prefix(format!("stage {}/{}", i + 1, cfg.stages.len()));
                    bar.set_message(format!("{}  waiting", show(&s.weights)));
                    bar
                })
                .collect();
            let detail = multi.add(ProgressBar::new(1));
            detail.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            View::Live {
                multi,
                stages,
                detail,
            }
        } else {
            View::Lines
        };
        Progress {
            view,
            started: Instant::now(),
            names,
            stage_count: cfg.stages.len(),
        }
    }

    /// A line that stays (above the live view, or on stdout).
    pub fn say(&self, text: &str) {
        match &self.view {
            View::Live { multi, .. } => {
                let _ = multi.println(text);
            }
            View::Lines => println!("{text}"),
        }
    }

    pub fn update(&self, s: &Status<'_>) {
        let score = s.judgement.map_or_else(
            || "-".to_owned(),
            |j| format!("{:.2} {}", j.score.score, j.score.verdict.as_str()),
        );
        let phase = match s.phase {
            Phase::Warmup => "warm-up".to_owned(),
            Phase::Analysis => format!("{} points", s.points),
        };
        let left = s.total.saturating_sub(s.elapsed);
        match &self.view {
            View::Live { stages, detail, .. } => {
                if let Some(bar) = stages.get(s.stage) {
                    bar.set_position(s.elapsed.as_secs().min(bar.length().unwrap_or(0)));
                    bar.set_message(format!(
                        "{}  {phase}  {} left  score {score}",
                        show(s.weights),
                        secs(left)
                    ));
                }
                let mut text = format!(
                    "  {:<22} {:>12} {:>12}  {}\n",
                    "metric", "canary", "baseline", "running classification"
                );
                for (i, name) in self.names.iter().enumerate() {
                    let p = s.interval.and_then(|iv| iv.points.get(i));
                    let class = s
                        .judgement
                        .and_then(|j| j.metrics.get(i))
                        .map_or("-", |m| m.classification.as_str());
                    text.push_str(&format!(
                        "  {:<22} {:>12} {:>12}  {}\n",
                        name,
                        value(p.and_then(|p| p.get(&Side::Canary))),
                        value(p.and_then(|p| p.get(&Side::Baseline))),
                        class
                    ));
                }
                text.push_str(&format!("  {} weir(s); running score {score}", s.targets));
                detail.set_message(text);
            }
            View::Lines => {
                let mut line = format!(
                    "[{:>5}] stage {}/{} {phase} ({} left) | {} | {} weir(s) | score {score}",
                    secs(self.started.elapsed()),
                    s.stage + 1,
                    self.stage_count,
                    secs(left),
                    show(s.weights),
                    s.targets
                );
                for (i, name) in self.names.iter().enumerate() {
                    let Some(p) = s.interval.and_then(|iv| iv.points.get(i)) else {
                        continue;
                    };
                    let class = s
                        .judgement
                        .and_then(|j| j.metrics.get(i))
                        .map_or("-", |m| m.classification.as_str());
                    line.push_str(&format!(
                        " | {name} c={} b={} {class}",
                        value(p.get(&Side::Canary)),
                        value(p.get(&Side::Baseline))
                    ));
                }
                println!("{line}");
            }
        }
    }

    pub fn stage_done(&self, stage: usize, text: &str) {
        if let View::Live { stages, .. } = &self.view
            && let Some(bar) = stages.get(stage)
        {
            bar.set_position(bar.length().unwrap_or(0));
            bar.set_message(text.to_owned());
        }
    }

    /// Leaves the final view on screen.
    pub fn finish(&self) {
        if let View::Live { stages, detail, .. } = &self.view {
            for b in stages {
                b.abandon();
            }
            detail.abandon();
        }
    }
}
