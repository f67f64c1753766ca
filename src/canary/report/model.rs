//! `report.json` read into what the page shows: the run's times, stages, metrics with
//! their units and points, judgements, weight changes and outcome. Reading is lenient:
//! a report still being written, or one from a run that ended in pre-flight, lacks
//! parts, and the page shows what there is.

use serde_json::{Map, Value};

use crate::civil::parse_rfc3339_ms;

/// What a metric's values are, for axes and numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ms,
    /// Stored as a fraction, shown in percent.
    Percent,
    Cores,
    /// Stored in bytes, shown in MiB.
    MiB,
    /// A count per interval (`responses per interval`).
    PerInterval(&'static str),
    /// A Prometheus query whose unit weir cannot tell.
    Plain,
}

impl Unit {
    /// The shown value of a stored one.
    pub fn show(self, raw: f64) -> f64 {
        match self {
            Unit::Percent => raw * 100.0,
            Unit::MiB => raw / 1_048_576.0,
            _ => raw,
        }
    }

    /// The axis suffix: `ms`, `%`, `cores`, `MiB`, `responses per interval`, or nothing.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Percent => "%",
            Unit::Cores => "cores",
            Unit::MiB => "MiB",
            Unit::PerInterval(what) => what,
            Unit::Plain => "",
        }
    }

    /// An axis title: `p95-latency (ms)`, or the unit alone where that would not fit
    /// beside a plot (`responses per interval`).
    pub fn title(self, name: &str) -> String {
        match self.label() {
            "" => name.to_owned(),
            l if name.len() + l.len() > 30 => l.to_owned(),
            l => format!("{name} ({l})"),
        }
    }

    /// From the metric's source and query in the rollout config; Prometheus queries by
    /// the names they use (`_bytes`, `cpu_usage_seconds`, `_milliseconds`).
    fn of(m: &Value, proportions: bool) -> Unit {
        let query = m["query"].as_str().unwrap_or("");
        if proportions {
            return Unit::Percent;
        }
        match m["source"].as_str().unwrap_or("") {
            "weir" => match query {
                "success_rate" | "error_rate" => Unit::Percent,
                "latency_p50" | "latency_p95" | "latency_p99" => Unit::Ms,
                "requests" => Unit::PerInterval("requests per interval"),
                _ => Unit::PerInterval("responses per interval"),
            },
            "process" => match query {
                "cpu" => Unit::Cores,
                _ => Unit::MiB,
            },
            _ if query.contains("cpu_usage_seconds") => Unit::Cores,
            _ if query.contains("_bytes") => Unit::MiB,
            _ if query.contains("_milliseconds") => Unit::Ms,
            _ => Unit::Plain,
        }
    }
}

/// One point of one side: its time (ms since the run started), stage, and value (for
/// counts, the rate), `None` when missing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t: f64,
    pub stage: u64,
    pub value: Option<f64>,
    pub counts: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub group: String,
    pub unit: Unit,
    pub proportions: bool,
    /// `weir latency_p95`, `process cpu`, or the PromQL.
    pub source: String,
    pub direction: String,
    /// Judged and shown, not scored.
    pub muted: bool,
    pub canary: Vec<Point>,
    pub baseline: Vec<Point>,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub number: u64,
    pub weights: Vec<(String, u64)>,
    pub started: Option<f64>,
    pub analysis: Option<f64>,
    pub ended: Option<f64>,
    pub score: Option<f64>,
}

/// A judgement: `judge` is the `weir judge` JSON.
#[derive(Debug, Clone)]
pub struct Judged<'a> {
    pub t: f64,
    pub stage: u64,
    pub points: usize,
    pub kind: String,
    pub score: Option<f64>,
    pub verdict: String,
    pub judge: &'a Value,
}

impl Judged<'_> {
    /// This metric's result in the judgement.
    pub fn metric(&self, name: &str) -> Option<&Value> {
        self.judge["metrics"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == name)
    }
}

#[derive(Debug, Clone)]
pub struct WeightChange {
    pub t: f64,
    pub target: String,
    pub weights: Vec<(String, u64)>,
    pub why: String,
    pub error: Option<String>,
}

/// The whole run. Times are seconds since `started`.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    pub started: String,
    pub end: f64,
    pub result: String,
    pub reason: String,
    pub exit_code: Option<u64>,
    pub dry_run: bool,
    pub config_file: String,
    pub route: String,
    pub interval: Option<std::time::Duration>,
    pub thresholds: (f64, f64),
    pub targets: Vec<String>,
    pub stages: Vec<Stage>,
    pub metrics: Vec<Metric>,
    pub judgements: Vec<Judged<'a>>,
    pub weight_changes: Vec<WeightChange>,
    pub notes: Vec<(f64, String)>,
    /// `(time, stage, metric, side, why)`.
    pub missing: Vec<(f64, u64, String, String, String)>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

fn list<'a>(doc: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a Value> {
    doc.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// `{"release": 80, ...}` as a list: the route's release, baseline and canary first, in
/// that order, then any other destination by name.
fn ordered_weights(v: &Value, roles: &[String; 3]) -> Vec<(String, u64)> {
    let mut w: Vec<(String, u64)> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, w)| (k.clone(), w.as_u64().unwrap_or(0)))
        .collect();
    w.sort_by_key(|(d, _)| (roles.iter().position(|r| r == d).unwrap_or(3), d.clone()));
    w
}

/// `80/10/10 (release/baseline/canary)`.
pub fn show_weights(w: &[(String, u64)]) -> String {
    let nums: Vec<String> = w.iter().map(|(_, n)| n.to_string()).collect();
    let names: Vec<&str> = w.iter().map(|(d, _)| d.as_str()).collect();
    format!("{} ({})", nums.join("/"), names.join("/"))
}

impl<'a> Run<'a> {
    /// Reads the report; `None` if it is not a `weir canary` report at all.
    pub fn read(doc: &'a Map<String, Value>) -> Option<Run<'a>> {
        doc.get("weir_canary")?;
        let started = text(doc.get("started")?);
        let epoch_ms = parse_rfc3339_ms(&started)?;
        let at = |v: &Value| {
            v.as_str()
                .and_then(parse_rfc3339_ms)
                .map(|ms| (ms - epoch_ms) as f64 / 1000.0)
        };
        let config = doc.get("config").unwrap_or(&Value::Null);
        let roles = ["release", "baseline", "canary"]
            .map(|r| config["target"][r].as_str().unwrap_or(r).to_owned());
        let weights = |v: &Value| ordered_weights(v, &roles);
        let outcome = doc.get("outcome").unwrap_or(&Value::Null);
        let thresholds = (
            config["thresholds"]["pass"].as_f64().unwrap_or(95.0),
            config["thresholds"]["marginal"].as_f64().unwrap_or(75.0),
        );
        let stages = list(doc, "stages")
            .map(|s| Stage {
                number: s["stage"].as_u64().unwrap_or(0),
                weights: weights(&s["weights"]),
                started: at(&s["started"]),
                analysis: at(&s["analysis_started"]),
                ended: at(&s["ended"]),
                score: s["score"].as_f64(),
            })
            .collect();
        let metrics = config["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let name = text(&m["name"]);
                let proportions = m["test"] == "proportions";
                let side = |side: &str| -> Vec<Point> {
                    doc.get("points")
                        .and_then(|p| p[name.as_str()][side].as_array())
                        .into_iter()
                        .flatten()
                        .map(|p| {
                            let counts = p["successes"].as_u64().zip(p["total"].as_u64());
                            let value = match counts {
                                Some((s, t)) if t > 0 => Some(s as f64 / t as f64),
                                Some(_) => None,
                                None => p["value"].as_f64(),
                            };
                            Point {
                                t: at(&p["time"]).unwrap_or(0.0),
                                stage: p["stage"].as_u64().unwrap_or(0),
                                value,
                                counts,
                            }
                        })
                        .collect()
                };
                let source = match m["source"].as_str().unwrap_or("") {
                    "prometheus" => text(&m["query"]),
                    s => format!("{s} {}", text(&m["query"])),
                };
                Metric {
                    group: text(&m["group"]),
                    unit: Unit::of(m, proportions),
                    proportions,
                    source,
                    direction: m["direction"].as_str().unwrap_or("either").to_owned(),
                    muted: m["muted"] == true,
                    canary: side("canary"),
                    baseline: side("baseline"),
                    name,
                }
            })
            .collect();
        let judgements: Vec<Judged<'a>> = list(doc, "judgements")
            .map(|j| Judged {
                t: at(&j["time"]).unwrap_or(0.0),
                stage: j["stage"].as_u64().unwrap_or(0),
                points: j["points"].as_u64().unwrap_or(0) as usize,
                kind: text(&j["kind"]),
                score: j["judgement"]["score"].as_f64(),
                verdict: text(&j["judgement"]["verdict"]),
                judge: &j["judgement"],
            })
            .collect();
        let weight_changes = list(doc, "weight_changes")
            .map(|w| WeightChange {
                t: at(&w["time"]).unwrap_or(0.0),
                target: text(&w["target"]),
                weights: weights(&w["weights"]),
                why: text(&w["why"]),
                error: w["error"].as_str().map(str::to_owned),
            })
            .collect::<Vec<_>>();
        let mut run = Run {
            started,
            end: 0.0,
            result: outcome["result"].as_str().unwrap_or("running").to_owned(),
            reason: text(&outcome["reason"]),
            exit_code: outcome["exit_code"].as_u64(),
            dry_run: doc.get("dry_run").and_then(Value::as_bool) == Some(true),
            config_file: doc.get("config_file").map(text).unwrap_or_default(),
            route: text(&config["target"]["route"]),
            interval: config["interval"]
                .as_str()
                .and_then(|i| crate::config::duration::parse(i).ok()),
            thresholds,
            targets: list(doc, "targets").map(|t| text(&t["url"])).collect(),
            stages,
            metrics,
            judgements,
            weight_changes,
            notes: list(doc, "notes")
                .map(|n| (at(&n["time"]).unwrap_or(0.0), text(&n["note"])))
                .collect(),
            missing: list(doc, "missing")
                .map(|m| {
                    (
                        at(&m["time"]).unwrap_or(0.0),
                        m["stage"].as_u64().unwrap_or(0),
                        text(&m["metric"]),
                        text(&m["side"]),
                        text(&m["why"]),
                    )
                })
                .collect(),
        };
        run.end = run.last_time(at(&outcome["time"]));
        Some(run)
    }

    /// The latest time anything in the report happened.
    fn last_time(&self, outcome: Option<f64>) -> f64 {
        let points = self
            .metrics
            .iter()
            .flat_map(|m| m.canary.iter().chain(&m.baseline))
            .map(|p| p.t);
        let stages = self
            .stages
            .iter()
            .flat_map(|s| [s.started, s.analysis, s.ended])
            .flatten();
        let rest = self
            .judgements
            .iter()
            .map(|j| j.t)
            .chain(self.weight_changes.iter().map(|w| w.t));
        points
            .chain(stages)
            .chain(rest)
            .chain(outcome)
            .fold(0.0, f64::max)
    }

    /// The judgement that decided: the last one made (the controller stops right after
    /// a failing one, and promotes after the last stage's).
    pub fn deciding(&self) -> Option<&Judged<'a>> {
        self.judgements.last()
    }

    /// The stage's last judgement.
    pub fn stage_judgement(&self, stage: u64) -> Option<&Judged<'a>> {
        self.judgements.iter().rev().find(|j| j.stage == stage)
    }

    /// Whether the metric `name` is muted (judged, not scored).
    pub fn muted(&self, name: &str) -> bool {
        self.metrics.iter().any(|m| m.name == name && m.muted)
    }

    /// Still going: the page is rewritten at every interval.
    pub fn running(&self) -> bool {
        self.result == "running"
    }
}

impl Metric {
    /// The points a judgement saw: its stage's first `n` intervals, per side.
    pub fn judged(&self, stage: u64, n: usize) -> (Vec<Point>, Vec<Point>) {
        let take = |side: &[Point]| -> Vec<Point> {
            side.iter()
                .filter(|p| p.stage == stage)
                .take(n)
                .copied()
                .collect()
        };
        (take(&self.canary), take(&self.baseline))
    }
}
