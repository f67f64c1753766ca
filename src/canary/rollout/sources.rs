//! Where points come from: weir's admin API, local processes, or Prometheus. Each
//! interval, [`Collector::collect`] takes one point per metric per side, every fetch
//! retried with backoff until the interval's deadline; a point still missing is NaN,
//! with the reason kept for the report.

pub mod process;
pub mod prometheus;
pub mod weir;

use std::collections::BTreeMap;
use std::time::Instant;

use super::config::{MetricConfig, ProcessQuery, RolloutConfig, Side, Source};
use crate::canary::judge::Counts;
use crate::canary::judge::settings::Test;

/// A point's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// NaN when missing.
    Number(f64),
    /// Successes out of trials in the interval (the proportions test).
    Counts(Option<Counts>),
}

impl Value {
    pub fn is_missing(&self) -> bool {
        match self {
            Value::Number(v) => v.is_nan(),
            Value::Counts(c) => c.is_none(),
        }
    }
}

/// One interval's points: `[metric][side]`, and what went wrong.
#[derive(Debug, Clone, Default)]
pub struct Interval {
    pub points: Vec<BTreeMap<Side, Value>>,
    /// `(metric, side, why)` for every missing point.
    pub missing: Vec<(String, Side, String)>,
    /// Notes that are not about one point (a target skipped once, several series).
    pub notes: Vec<String>,
    /// Targets that did not answer the weir source.
    pub failed_targets: Vec<String>,
}

/// The state the sources keep between intervals.
#[derive(Debug, Default)]
pub struct Collector {
    weir: weir::WeirSource,
    process: process::ProcessSource,
    /// Endpoints per side, for finding processes.
    pub endpoints: BTreeMap<Side, Vec<String>>,
}

impl Collector {
    /// Forgets previous readings: the next interval starts the counts afresh.
    pub fn reset(&mut self) {
        self.weir.reset();
        self.process.reset();
    }

    /// Takes one point per metric per side from `targets`, by `deadline`.
    pub async fn collect(
        &mut self,
        cfg: &RolloutConfig,
        targets: &[String],
        deadline: Instant,
    ) -> Interval {
        let mut out = Interval {
            points: vec![BTreeMap::new(); cfg.metrics.len()],
            ..Interval::default()
        };
        let names: BTreeMap<Side, String> = Side::BOTH
            .iter()
            .map(|s| (*s, cfg.target.destination(*s).to_owned()))
            .collect();
        // Prometheus queries go out first and run while the others are read.
        let mut queries = tokio::task::JoinSet::new();
        for (i, m) in cfg.metrics.iter().enumerate() {
            if let Source::Prometheus {
                url,
                query,
                total_query,
                scopes,
            } = &m.source
            {
                for side in Side::BOTH {
                    let scope = scopes
                        .get(&side)
                        .cloned()
                        .unwrap_or_else(|| names[&side].clone());
                    let q = prometheus::render(query, &scope, cfg.interval);
                    let tq = total_query
                        .as_ref()
                        .map(|t| prometheus::render(t, &scope, cfg.interval));
                    let url = url.clone();
                    queries.spawn(async move {
                        let v = prometheus::instant(&url, &q, deadline).await;
                        let t = match tq {
                            Some(tq) => Some(prometheus::instant(&url, &tq, deadline).await),
                            None => None,
                        };
                        (i, side, v, t)
                    });
                }
            }
        }
        if cfg
            .metrics
            .iter()
            .any(|m| matches!(m.source, Source::Weir(_)))
        {
            let interval = self.weir.collect(targets, &names, deadline).await;
            out.notes.extend(interval.notes.iter().cloned());
            out.failed_targets = interval.failed.clone();
            for (i, m) in cfg.metrics.iter().enumerate() {
                let Source::Weir(query) = m.source else {
                    continue;
                };
                for side in Side::BOTH {
                    let v = if m.settings.test == Test::Proportions {
                        Value::Counts(interval.counts(query, side))
                    } else {
                        Value::Number(interval.value(query, side))
                    };
                    if v.is_missing() {
                        let why = if interval.contributors == 0 {
                            "no weir gave an interval (a first reading, or no answer)".to_owned()
                        } else {
                            format!("no request reached {} in the interval", names[&side])
                        };
                        out.missing.push((m.name.clone(), side, why));
                    }
                    out.points[i].insert(side, v);
                }
            }
        }
        if cfg
            .metrics
            .iter()
            .any(|m| matches!(m.source, Source::Process { .. }))
        {
            self.collect_processes(cfg, &mut out);
        }
        while let Some(joined) = queries.join_next().await {
            let Ok((i, side, v, t)) = joined else {
                continue;
            };
            let m = &cfg.metrics[i];
            let mut why = None;
            let value = match (v, t) {
                (Ok((v, note)), None) => {
                    why = note.filter(|_| v.is_nan());
                    Value::Number(v)
                }
                (Ok((s, note)), Some(Ok((t, _)))) => {
                    // No series for the events (no 5xx yet: the series does not exist)
                    // while there were trials: that is zero events.
                    let s = if s.is_nan() && note.is_some() && t.is_finite() {
                        0.0
                    } else {
                        s
                    };
                    let ok = s.is_finite() && t.is_finite() && s >= 0.0 && t >= s;
                    if !ok {
                        why = Some(format!("successes {s} and total {t} are not counts"));
                    }
                    Value::Counts(ok.then(|| Counts {
                        successes: s.round() as u64,
                        total: t.round() as u64,
                    }))
                }
                (Err(e), t) => {
                    why = Some(e);
                    if t.is_some() {
                        Value::Counts(None)
                    } else {
                        Value::Number(f64::NAN)
                    }
                }
                (Ok(_), Some(Err(e))) => {
                    why = Some(e);
                    Value::Counts(None)
                }
            };
            if value.is_missing() {
                out.missing.push((
                    m.name.clone(),
                    side,
                    why.unwrap_or_else(|| "the value is NaN".to_owned()),
                ));
            }
            out.points[i].insert(side, value);
        }
        out
    }

    fn collect_processes(&mut self, cfg: &RolloutConfig, out: &mut Interval) {
        let mut readings = BTreeMap::new();
        let mut why = BTreeMap::new();
        for side in Side::BOTH {
            // Given PIDs (from the first process metric that has them), or the processes
            // on the side's endpoint ports, found again each time (they may restart).
            let given = cfg.metrics.iter().find_map(|m| match &m.source {
                Source::Process { pids: Some(p), .. } => p.get(&side).cloned(),
                _ => None,
            });
            let pids = given.unwrap_or_else(|| {
                process::find_pids(self.endpoints.get(&side).map_or(&[][..], Vec::as_slice))
            });
            if pids.is_empty() {
                why.insert(
                    side,
                    "no local process listens on the destination's endpoints".to_owned(),
                );
            }
            match self.process.read(&pids) {
                Some(p) => {
                    readings.insert(side, p);
                }
                None => {
                    why.entry(side)
                        .or_insert_with(|| format!("no process among PIDs {pids:?}"));
                }
            }
        }
        for (i, m) in cfg.metrics.iter().enumerate() {
            let Source::Process { query, .. } = &m.source else {
                continue;
            };
            for side in Side::BOTH {
                let v = match (readings.get(&side), query) {
                    (Some(p), ProcessQuery::Cpu) => p.cpu,
                    (Some(p), ProcessQuery::Rss) => p.rss,
                    (None, _) => f64::NAN,
                };
                if v.is_nan() {
                    let w = why
                        .get(&side)
                        .cloned()
                        .unwrap_or_else(|| "a first reading: CPU needs two".to_owned());
                    out.missing.push((m.name.clone(), side, w));
                }
                out.points[i].insert(side, Value::Number(v));
            }
        }
    }
}

/// The metrics whose settings make them need counts rather than numbers.
pub fn wants_counts(m: &MetricConfig) -> bool {
    m.settings.test == Test::Proportions
}
