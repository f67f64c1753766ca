//! The rollout itself: pre-flight, stages (weights, warm-up, analysis with running
//! judgements), and the ending: promote, roll back, or stop on an interrupt or a lost
//! target. Every interval also finds the targets again (`discover:`), corrects any whose
//! weights differ, and rewrites the report.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;

use super::config::{RolloutConfig, Side, Weights};
use super::progress::{Phase, Progress, Status};
use super::report::{Report, ReportError, default_dir};
use super::sources::{self, Collector, Interval};
use super::target::{self, show};
use crate::canary::judge::{self, Counts, JudgeInput, Judgement, MetricData, MetricInput, Verdict};

/// How `weir canary` ended, with its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every stage passed and the promote weights are set (or, dry, would be).
    Promoted,
    /// A judgement failed; the rollback weights are set.
    RolledBack(String),
    /// SIGINT or SIGTERM; rolled back.
    Interrupted,
    /// A target stopped answering; rolled back on the others.
    LostTarget(String),
    /// The pre-flight check failed; nothing was changed.
    Preflight(String),
    /// Promote weights could not be set everywhere.
    PromoteFailed(String),
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Promoted => 0,
            Outcome::RolledBack(_) => 1,
            Outcome::Interrupted => 130,
            Outcome::LostTarget(_) | Outcome::Preflight(_) | Outcome::PromoteFailed(_) => 2,
        }
    }

    fn name(&self, dry: bool) -> &'static str {
        match (self, dry) {
            (Outcome::Promoted, false) => "promoted",
            (Outcome::Promoted, true) => "would_promote",
            (Outcome::RolledBack(_), false) => "rolled_back",
            (Outcome::RolledBack(_), true) => "would_roll_back",
            (Outcome::Interrupted, _) => "interrupted",
            (Outcome::LostTarget(_), _) => "lost_target",
            (Outcome::Preflight(_), _) => "preflight_failed",
            (Outcome::PromoteFailed(_), _) => "promote_failed",
        }
    }

    fn reason(&self) -> String {
        match self {
            Outcome::Promoted => "every stage passed".to_owned(),
            Outcome::Interrupted => "interrupted (SIGINT or SIGTERM)".to_owned(),
            Outcome::RolledBack(r)
            | Outcome::LostTarget(r)
            | Outcome::Preflight(r)
            | Outcome::PromoteFailed(r) => r.clone(),
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: PathBuf,
    /// Default: `weir-canary-YYYYMMDD-HHMMSS/` in the current directory.
    pub report_dir: Option<PathBuf>,
    /// Judge without changing any weight.
    pub dry_run: bool,
    /// A live view when stderr is a terminal.
    pub live: bool,
}

/// What a run leaves.
#[derive(Debug)]
pub struct RunResult {
    pub outcome: Outcome,
    pub report_dir: PathBuf,
    pub last_judgement: Option<Judgement>,
}

/// Why a run could not even start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot write the report: {0}")]
    Report(#[from] ReportError),
}

struct Run<'a> {
    cfg: &'a RolloutConfig,
    opts: &'a Options,
    report: Report,
    progress: Progress,
    collector: Collector,
    targets: Vec<String>,
    /// Intervals in a row each target did not answer.
    silent: HashMap<String, u32>,
    last_judgement: Option<Judgement>,
}

/// Runs the rollout to its end. SIGINT and SIGTERM roll back and end it.
pub async fn run(cfg: &RolloutConfig, opts: &Options) -> Result<RunResult, RunError> {
    let dir = opts
        .report_dir
        .clone()
        .unwrap_or_else(|| default_dir(SystemTime::now()));
    let report = Report::create(&dir, cfg, &opts.config_file, opts.dry_run)?;
    report.save()?;
    let mut run = Run {
        cfg,
        opts,
        report,
        progress: Progress::new(cfg, opts.live),
        collector: Collector::default(),
        targets: Vec::new(),
        silent: HashMap::new(),
        last_judgement: None,
    };
    let outcome = match run.preflight().await {
        Err(problem) => Outcome::Preflight(problem),
        Ok(()) => {
            let stages = {
                let interrupted = interrupt();
                tokio::select! {
                    o = run.stages() => o,
                    () = interrupted => Outcome::Interrupted,
                }
            };
            run.finish(stages).await
        }
    };
    run.progress.finish();
    run.report.outcome(
        outcome.name(opts.dry_run),
        outcome.exit_code(),
        &outcome.reason(),
    );
    run.report.save()?;
    Ok(RunResult {
        outcome,
        report_dir: dir,
        last_judgement: run.last_judgement,
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupt() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// The judge's input over a stage's intervals.
pub fn judge_input(cfg: &RolloutConfig, intervals: &[Interval]) -> JudgeInput {
    let metrics = cfg
        .metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let data = if sources::wants_counts(m) {
                let sum = |side: Side| {
                    let mut c = Counts {
                        successes: 0,
                        total: 0,
                    };
                    for iv in intervals {
                        if let Some(sources::Value::Counts(Some(x))) = iv.points[i].get(&side) {
                            c.successes += x.successes;
                            c.total += x.total;
                        }
                    }
                    c
                };
                MetricData::Proportions {
                    canary: sum(Side::Canary),
                    baseline: sum(Side::Baseline),
                }
            } else {
                let series = |side: Side| {
                    intervals
                        .iter()
                        .map(|iv| match iv.points[i].get(&side) {
                            Some(sources::Value::Number(v)) => *v,
                            _ => f64::NAN,
                        })
                        .collect()
                };
                MetricData::Samples {
                    canary: series(Side::Canary),
                    baseline: series(Side::Baseline),
                }
            };
            MetricInput {
                name: m.name.clone(),
                group: m.group.clone(),
                settings: m.settings.clone(),
                data,
            }
        })
        .collect();
    JudgeInput {
        groups: cfg.groups.clone(),
        thresholds: cfg.thresholds,
        metrics,
    }
}

impl Run<'_> {
    fn deadline(&self) -> Instant {
        // Fetches get most of the interval; what is left draws and saves.
        Instant::now()
            + self
                .cfg
                .interval
                .mul_f64(0.8)
                .max(Duration::from_millis(80))
    }

    fn token(&self) -> Option<String> {
        target::token(self.cfg.target.token_file.as_deref())
            .ok()
            .flatten()
    }

    async fn preflight(&mut self) -> Result<(), String> {
        let (urls, problems) = target::resolve(&self.cfg.target.admin).await;
        for p in &problems {
            self.report.note(p);
        }
        if urls.is_empty() {
            let why = format!("no weir to drive: {}", problems.join("; "));
            self.progress.say(&format!("weir canary: {why}"));
            return Err(why);
        }
        // The token is needed for writes, and for reading `/config` from a weir that
        // guards it; a dry run changes nothing, so it may go without one.
        let token = match target::token(self.cfg.target.token_file.as_deref()) {
            Ok(t) => t,
            Err(e) if self.opts.dry_run => {
                self.report.note(&e);
                None
            }
            Err(e) => {
                self.progress.say(&format!("weir canary: {e}"));
                return Err(e);
            }
        };
        let deadline = Instant::now() + self.cfg.interval.max(Duration::from_secs(5));
        let mut checks = JoinSet::new();
        for u in &urls {
            let (u, cfg, token) = (u.clone(), self.cfg.clone(), token.clone());
            checks.spawn(
                async move { target::preflight(&u, &cfg, token.as_deref(), deadline).await },
            );
        }
        let mut failures = Vec::new();
        let mut infos = Vec::new();
        while let Some(j) = checks.join_next().await {
            match j {
                Ok(Ok(info)) => infos.push(info),
                Ok(Err(e)) => failures.push(e.to_string()),
                Err(e) => failures.push(e.to_string()),
            }
        }
        infos.sort_by(|a, b| a.url.cmp(&b.url));
        for info in &infos {
            self.report.target(&info.url, Some(&info.split));
        }
        if !failures.is_empty() {
            failures.sort();
            for f in &failures {
                self.progress.say(&format!("weir canary: pre-flight: {f}"));
            }
            return Err(format!(
                "pre-flight failed, nothing was changed: {}",
                failures.join("; ")
            ));
        }
        if let Some(first) = infos.first() {
            self.collector.endpoints = first.endpoints.clone();
        }
        self.targets = urls;
        self.progress.say(&format!(
            "weir canary: {} weir(s) ready; route `{}`; {} stage(s); report in {}{}",
            self.targets.len(),
            self.cfg.target.route,
            self.cfg.stages.len(),
            self.report.dir().display(),
            if self.opts.dry_run {
                " (dry run: no weight will change)"
            } else {
                ""
            }
        ));
        Ok(())
    }

    /// Sets `weights` on every target; returns the targets it failed on, with why.
    async fn set_everywhere(
        &mut self,
        weights: &Weights,
        why: &str,
        targets: &[String],
    ) -> Vec<(String, String)> {
        let deadline = Instant::now() + self.cfg.interval.max(Duration::from_secs(3));
        let token = self.token();
        let mut sets = JoinSet::new();
        for t in targets {
            let (t, route, w, token) = (
                t.clone(),
                self.cfg.target.route.clone(),
                weights.clone(),
                token.clone(),
            );
            sets.spawn(async move {
                let r = target::set_split(&t, &route, &w, token.as_deref(), deadline).await;
                (t, r)
            });
        }
        let mut failed = Vec::new();
        while let Some(j) = sets.join_next().await {
            let Ok((t, r)) = j else { continue };
            let error = r.as_ref().err().map(|e| e.message.clone());
            self.report
                .weight_change(&t, weights, why, error.as_deref());
            if let Some(e) = error {
                failed.push((t, e));
            }
        }
        failed
    }

    /// Once per interval: find the targets, check (and correct) their weights, and
    /// apply the lost-target rule. `Err` ends the run.
    async fn maintain(&mut self, expected: &Weights) -> Result<(), Outcome> {
        let (urls, problems) = target::resolve(&self.cfg.target.admin).await;
        for p in problems {
            self.report.note(&p);
        }
        for u in &urls {
            if !self.targets.contains(u) {
                self.progress.say(&format!("weir canary: new weir {u}"));
                self.report.target(u, None);
            }
        }
        // Static targets stay even when they vanish; discovered ones leave with DNS.
        self.silent.retain(|t, _| urls.contains(t));
        self.targets = urls;
        let deadline = self.deadline();
        let mut reads = JoinSet::new();
        for t in &self.targets {
            let (t, route) = (t.clone(), self.cfg.target.route.clone());
            reads.spawn(async move {
                let r = target::get_split(&t, &route, deadline).await;
                (t, r)
            });
        }
        let mut wrong = Vec::new();
        while let Some(j) = reads.join_next().await {
            let Ok((t, r)) = j else { continue };
            match r {
                Ok(split) => {
                    self.silent.remove(&t);
                    if &split != expected {
                        wrong.push((t, split));
                    }
                }
                Err(e) => {
                    let n = self.silent.entry(t.clone()).or_default();
                    *n += 1;
                    self.progress.say(&format!(
                        "weir canary: {t} did not answer ({n} interval(s) in a row): {}",
                        e.message
                    ));
                }
            }
        }
        if let Some((t, n)) = self.silent.iter().find(|(_, n)| **n >= self.cfg.lost_after) {
            return Err(Outcome::LostTarget(format!(
                "{t} did not answer for {n} intervals"
            )));
        }
        if !self.opts.dry_run && !wrong.is_empty() {
            let targets: Vec<String> = wrong.iter().map(|(t, _)| t.clone()).collect();
            for (t, split) in &wrong {
                self.progress.say(&format!(
                    "weir canary: {t} has {} instead of {}: correcting",
                    show(split),
                    show(expected)
                ));
            }
            for (t, e) in self.set_everywhere(expected, "correction", &targets).await {
                self.progress
                    .say(&format!("weir canary: cannot correct {t}: {e}"));
            }
        }
        Ok(())
    }

    async fn stages(&mut self) -> Outcome {
        let cfg = self.cfg;
        for (index, stage) in cfg.stages.iter().enumerate() {
            tracing::debug!(stage = index + 1, "stage starts");
            self.report.stage_started(index, &stage.weights);
            self.progress.say(&format!(
                "weir canary: stage {}/{}: {}",
                index + 1,
                cfg.stages.len(),
                show(&stage.weights)
            ));
            if !self.opts.dry_run {
                let targets = self.targets.clone();
                for (t, e) in self
                    .set_everywhere(&stage.weights, &format!("stage {}", index + 1), &targets)
                    .await
                {
                    self.progress.say(&format!(
                        "weir canary: cannot set stage weights on {t}: {e}"
                    ));
                }
            }
            let _ = self.report.save();
            tracing::debug!(stage = index + 1, "stage weights set");
            let started = Instant::now();
            let total = stage.warmup + stage.duration;
            let mut tick = tokio::time::interval(cfg.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            // Warm-up: weights kept right, no points.
            while started.elapsed() < stage.warmup {
                tick.tick().await;
                if let Err(o) = self.maintain(&stage.weights).await {
                    return o;
                }
                self.progress.update(&Status {
                    stage: index,
                    phase: Phase::Warmup,
                    elapsed: started.elapsed(),
                    total,
                    points: 0,
                    weights: &stage.weights,
                    targets: self.targets.len(),
                    interval: None,
                    judgement: None,
                });
            }
            // The first reading of the analysis: the counts start here.
            self.collector.reset();
            let deadline = self.deadline();
            let _ = self.collector.collect(cfg, &self.targets, deadline).await;
            self.report.stage_update(
                "analysis_started",
                serde_json::json!(super::report::rfc3339(SystemTime::now())),
            );
            let points_wanted = (stage.duration.as_secs_f64() / cfg.interval.as_secs_f64())
                .round()
                .max(1.0) as usize;
            let mut intervals: Vec<Interval> = Vec::new();
            let mut running: Option<Judgement> = None;
            while intervals.len() < points_wanted {
                tick.tick().await;
                if let Err(o) = self.maintain(&stage.weights).await {
                    return o;
                }
                let deadline = self.deadline();
                let interval = self.collector.collect(cfg, &self.targets, deadline).await;
                self.report.points(cfg, index, &interval);
                intervals.push(interval);
                if intervals.len() >= stage.min_points {
                    let j = judge::judge(&judge_input(cfg, &intervals));
                    self.report
                        .judgement(index, intervals.len(), "running", j.to_json());
                    running = Some(j);
                }
                self.progress.update(&Status {
                    stage: index,
                    phase: Phase::Analysis,
                    elapsed: started.elapsed(),
                    total,
                    points: intervals.len(),
                    weights: &stage.weights,
                    targets: self.targets.len(),
                    interval: intervals.last(),
                    judgement: running.as_ref(),
                });
                let _ = self.report.save();
                if let Some(j) = &running
                    && j.score.score <= cfg.thresholds.marginal
                {
                    let why = format!(
                        "stage {}: running score {:.2} at {} points is at or below marginal {} ({})",
                        index + 1,
                        j.score.score,
                        intervals.len(),
                        cfg.thresholds.marginal,
                        failing(j)
                    );
                    self.progress
                        .stage_done(index, &format!("failed: score {:.2}", j.score.score));
                    self.last_judgement = running;
                    return Outcome::RolledBack(why);
                }
            }
            // The stage's verdict: its final judgement must reach pass.
            tracing::debug!(stage = index + 1, "stage analysis done; judging");
            let j = judge::judge(&judge_input(cfg, &intervals));
            tracing::debug!(stage = index + 1, "stage judged");
            self.report
                .judgement(index, intervals.len(), "stage end", j.to_json());
            let score = j.score.score;
            let passed = j.score.verdict == Verdict::Pass;
            let failing = failing(&j);
            self.last_judgement = Some(j);
            self.report.stage_update(
                "ended",
                serde_json::json!(super::report::rfc3339(SystemTime::now())),
            );
            self.report.stage_update("score", serde_json::json!(score));
            let _ = self.report.save();
            if !passed {
                self.progress
                    .stage_done(index, &format!("failed: score {score:.2}"));
                return Outcome::RolledBack(format!(
                    "stage {} ended with score {score:.2}, below pass {} ({failing})",
                    index + 1,
                    cfg.thresholds.pass
                ));
            }
            self.progress
                .stage_done(index, &format!("passed: score {score:.2}"));
            self.progress.say(&format!(
                "weir canary: stage {} passed with score {score:.2}",
                index + 1
            ));
        }
        Outcome::Promoted
    }

    /// Applies the ending's weights, loudly where they cannot be applied.
    async fn finish(&mut self, outcome: Outcome) -> Outcome {
        let cfg = self.cfg;
        let targets = self.targets.clone();
        match &outcome {
            Outcome::Promoted => {
                if self.opts.dry_run {
                    self.progress.say(&format!(
                        "weir canary: dry run: would promote ({})",
                        show(&cfg.promote)
                    ));
                    return outcome;
                }
                let failed = self.set_everywhere(&cfg.promote, "promote", &targets).await;
                if failed.is_empty() {
                    self.progress
                        .say(&format!("weir canary: PROMOTED: {}", show(&cfg.promote)));
                    return outcome;
                }
                for (t, e) in &failed {
                    self.progress
                        .say(&format!("weir canary: PROMOTE FAILED on {t}: {e}"));
                    eprintln!("weir canary: PROMOTE FAILED on {t}: {e}");
                }
                let names: Vec<&str> = failed.iter().map(|(t, _)| t.as_str()).collect();
                Outcome::PromoteFailed(format!(
                    "every stage passed, but the promote weights could not be set on {}",
                    names.join(", ")
                ))
            }
            _ => {
                self.progress
                    .say(&format!("weir canary: {}", outcome.reason()));
                if self.opts.dry_run {
                    self.progress.say(&format!(
                        "weir canary: dry run: would roll back ({})",
                        show(&cfg.rollback)
                    ));
                    return outcome;
                }
                let failed = self
                    .set_everywhere(&cfg.rollback, "rollback", &targets)
                    .await;
                for (t, e) in &failed {
                    let loud = format!(
                        "weir canary: ROLLBACK FAILED on {t}: {e}; set it by hand: curl -X PUT {t}/routes/{}/split -d '{}'",
                        cfg.target.route,
                        serde_json::to_string(&cfg.rollback).unwrap_or_default()
                    );
                    self.progress.say(&loud);
                    eprintln!("{loud}");
                    self.report.note(&loud);
                }
                if failed.len() < targets.len() || targets.is_empty() {
                    self.progress.say(&format!(
                        "weir canary: ROLLED BACK to {} on {} of {} weir(s)",
                        show(&cfg.rollback),
                        targets.len() - failed.len(),
                        targets.len()
                    ));
                }
                outcome
            }
        }
    }
}

/// `cpu High, memory High`: the metrics that cost points.
fn failing(j: &Judgement) -> String {
    let bad: Vec<String> = j
        .metrics
        .iter()
        .filter(|m| {
            !m.muted
                && m.classification != judge::Classification::Pass
                && m.classification != judge::Classification::Nodata
        })
        .map(|m| format!("{} {}", m.name, m.classification.as_str()))
        .collect();
    if bad.is_empty() {
        "no metric failed".to_owned()
    } else {
        bad.join(", ")
    }
}
