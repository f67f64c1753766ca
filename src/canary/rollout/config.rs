//! `canary.yaml`: the targets, the stages, the promote and rollback weights, and the
//! metrics with their sources and judging settings. Every problem is reported with its
//! place: `line:column` for YAML syntax, a path such as `stages[1].warmup` for content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::canary::judge::input::{groups_from, thresholds_from};
use crate::canary::judge::{InputError, MetricSettings, Thresholds};
use crate::config::duration;

/// Canary and baseline: the two sides every metric compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Canary,
    Baseline,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Canary, Side::Baseline];

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Canary => "canary",
            Side::Baseline => "baseline",
        }
    }
}

/// Where the admin APIs of the weirs to drive are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminSource {
    /// One weir: `http://host:port`.
    Url(String),
    /// Every address `host` resolves to (a Kubernetes headless Service), at `port`,
    /// resolved again at every interval.
    Discover { host: String, port: u16 },
}

/// The weirs and the route to drive.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    pub admin: Vec<AdminSource>,
    pub token_file: Option<PathBuf>,
    pub route: String,
    pub release: String,
    pub baseline: String,
    pub canary: String,
}

impl TargetConfig {
    pub fn destination(&self, side: Side) -> &str {
        match side {
            Side::Canary => &self.canary,
            Side::Baseline => &self.baseline,
        }
    }
}

/// A full split: destination name -> weight.
pub type Weights = BTreeMap<String, u32>;

/// One stage of the rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub weights: Weights,
    /// No points are taken for this long after the weights are set.
    pub warmup: Duration,
    /// The analysis after the warm-up.
    pub duration: Duration,
    /// Running judgements start once the stage has this many points.
    pub min_points: usize,
}

/// What the `weir` source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeirQuery {
    Requests,
    HealthyResponses,
    SuccessRate,
    ErrorRate,
    LatencyP50,
    LatencyP95,
    LatencyP99,
}

impl WeirQuery {
    const ALL: [(&'static str, WeirQuery); 7] = [
        ("requests", WeirQuery::Requests),
        ("healthy_responses", WeirQuery::HealthyResponses),
        ("success_rate", WeirQuery::SuccessRate),
        ("error_rate", WeirQuery::ErrorRate),
        ("latency_p50", WeirQuery::LatencyP50),
        ("latency_p95", WeirQuery::LatencyP95),
        ("latency_p99", WeirQuery::LatencyP99),
    ];
}

/// What the `process` source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessQuery {
    /// CPU cores used over the interval.
    Cpu,
    /// Resident memory in bytes.
    Rss,
}

/// Where a metric's points come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Weir(WeirQuery),
    Process {
        query: ProcessQuery,
        /// Given PIDs per side; otherwise found from the destinations' endpoint ports.
        pids: Option<BTreeMap<Side, Vec<u32>>>,
    },
    Prometheus {
        url: String,
        query: String,
        /// The proportions test: the query for the trials (`query` counts successes).
        total_query: Option<String>,
        /// `{{scope}}` per side; default the destination's name.
        scopes: BTreeMap<Side, String>,
    },
}

/// One metric of the rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricConfig {
    pub name: String,
    pub group: String,
    pub source: Source,
    pub settings: MetricSettings,
}

/// The whole rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutConfig {
    pub target: TargetConfig,
    pub interval: Duration,
    pub stages: Vec<Stage>,
    pub promote: Weights,
    pub rollback: Weights,
    pub thresholds: Thresholds,
    pub groups: Vec<(String, f64)>,
    pub metrics: Vec<MetricConfig>,
    /// Intervals without an answer after which a target counts as lost.
    pub lost_after: u32,
    /// The file as read, for the report.
    pub raw: Value,
}

mod source;

use source::{METRIC_KEYS, source};

/// The default number of points before running judgements start.
pub const DEFAULT_MIN_POINTS: usize = 10;

fn err(place: impl Into<String>, message: impl Into<String>) -> InputError {
    InputError::at(place, message)
}

fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, InputError> {
    v.as_object().ok_or_else(|| err(path, "expected a map"))
}

fn only_keys(m: &Map<String, Value>, path: &str, keys: &[&str]) -> Result<(), InputError> {
    for k in m.keys() {
        if !keys.contains(&k.as_str()) {
            let at = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            return Err(err(
                at,
                format!("unknown key; expected one of {}", keys.join(", ")),
            ));
        }
    }
    Ok(())
}

fn string(m: &Map<String, Value>, path: &str, key: &str) -> Result<Option<String>, InputError> {
    let at = if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    };
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(err(at, "expected a non-empty string")),
    }
}

fn dur(m: &Map<String, Value>, path: &str, key: &str) -> Result<Option<Duration>, InputError> {
    let at = if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    };
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => duration::parse(s).map(Some).map_err(|e| err(at, e)),
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(Some(Duration::ZERO)),
        Some(_) => Err(err(at, "expected a duration such as `10s` or `1m`")),
    }
}

fn weights(v: &Value, path: &str, target: &TargetConfig) -> Result<Weights, InputError> {
    let m = obj(v, path)?;
    let mut out = Weights::new();
    for (k, w) in m {
        let w = w
            .as_u64()
            .and_then(|w| u32::try_from(w).ok())
            .ok_or_else(|| err(format!("{path}.{k}"), "expected a whole number >= 0"))?;
        // Roles name the configured destinations; other names pass through as they are.
        let name = match k.as_str() {
            "release" => target.release.clone(),
            "baseline" => target.baseline.clone(),
            "canary" => target.canary.clone(),
            other => other.to_owned(),
        };
        if w > 0 {
            *out.entry(name).or_default() += w;
        }
    }
    if out.is_empty() {
        return Err(err(
            path,
            "every weight is zero: the route would send nowhere",
        ));
    }
    Ok(out)
}

fn admin_sources(v: Option<&Value>) -> Result<Vec<AdminSource>, InputError> {
    let path = "target.admin";
    let list: Vec<&Value> = match v {
        None => {
            return Err(err(
                path,
                "missing: the admin URLs of the weirs, e.g. [\"http://127.0.0.1:15000\"]",
            ));
        }
        Some(Value::Array(l)) => l.iter().collect(),
        Some(other) => vec![other],
    };
    let mut out = Vec::new();
    for (i, item) in list.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        match item {
            Value::String(url) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                let rest = url.strip_prefix("http://").ok_or_else(|| {
                    err(
                        &at,
                        "expected an http:// URL such as http://127.0.0.1:15000",
                    )
                })?;
                if rest.is_empty() || rest.contains('/') {
                    return Err(err(&at, "expected http://HOST:PORT with no path"));
                }
                out.push(AdminSource::Url(url));
            }
            Value::Object(m) => {
                only_keys(m, &at, &["discover"])?;
                let hp = string(m, &at, "discover")?
                    .ok_or_else(|| err(format!("{at}.discover"), "expected HOST:PORT"))?;
                let (host, port) = hp
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                    .filter(|(h, _)| !h.is_empty())
                    .ok_or_else(|| {
                        err(
                            format!("{at}.discover"),
                            "expected HOST:PORT, e.g. shop-weir.prod.svc:15000",
                        )
                    })?;
                out.push(AdminSource::Discover { host, port });
            }
            _ => return Err(err(&at, "expected a URL or {discover: HOST:PORT}")),
        }
    }
    if out.is_empty() {
        return Err(err(path, "no admin URL: name at least one weir"));
    }
    Ok(out)
}

fn target(v: Option<&Value>, dir: &Path) -> Result<TargetConfig, InputError> {
    let v = v.ok_or_else(|| err("target", "missing: which weirs and route to drive"))?;
    let m = obj(v, "target")?;
    only_keys(
        m,
        "target",
        &[
            "admin",
            "token_file",
            "route",
            "release",
            "baseline",
            "canary",
        ],
    )?;
    let name = |k: &str, d: &str| -> Result<String, InputError> {
        Ok(string(m, "target", k)?.unwrap_or_else(|| d.to_owned()))
    };
    let t = TargetConfig {
        admin: admin_sources(m.get("admin"))?,
        token_file: string(m, "target", "token_file")?.map(|f| dir.join(f)),
        route: name("route", "primary")?,
        release: name("release", "release")?,
        baseline: name("baseline", "baseline")?,
        canary: name("canary", "canary")?,
    };
    if t.canary == t.baseline || t.canary == t.release || t.baseline == t.release {
        return Err(err(
            "target",
            "release, baseline and canary must be three different destinations",
        ));
    }
    Ok(t)
}

/// Parses `canary.yaml`; `file` places relative paths (the token file).
pub fn parse(text: &str, file: &Path) -> Result<RolloutConfig, InputError> {
    let raw: Value = serde_saphyr::from_str(text).map_err(|e| {
        let place = e.location().map_or_else(
            || "1:1".to_owned(),
            |l| format!("{}:{}", l.line(), l.column()),
        );
        let text = e.without_snippet().to_string();
        let first = text.lines().next().unwrap_or("invalid YAML").trim();
        err(
            place,
            first.split(" at line ").next().unwrap_or(first).to_owned(),
        )
    })?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let top = obj(&raw, "$")?;
    only_keys(
        top,
        "",
        &[
            "target",
            "interval",
            "stages",
            "promote",
            "rollback",
            "thresholds",
            "groups",
            "metrics",
            "min_points",
            "lost_after",
        ],
    )?;
    let target = target(top.get("target"), dir)?;
    let interval = dur(top, "", "interval")?.unwrap_or(Duration::from_secs(10));
    if interval < Duration::from_millis(100) {
        return Err(err("interval", "at least 100ms"));
    }
    let min_points = match top.get("min_points") {
        None => DEFAULT_MIN_POINTS,
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| err("min_points", "expected a whole number >= 1"))?
            as usize,
    };
    let lost_after = match top.get("lost_after") {
        None => 3,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| err("lost_after", "expected a whole number of intervals >= 1"))?,
    };
    let list = top
        .get("stages")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| err("stages", "expected a list of at least one stage"))?;
    let mut stages = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let path = format!("stages[{i}]");
        let m = obj(s, &path)?;
        only_keys(m, &path, &["weights", "warmup", "duration", "min_points"])?;
        let w = m
            .get("weights")
            .ok_or_else(|| err(format!("{path}.weights"), "missing"))?;
        let duration =
            dur(m, &path, "duration")?.ok_or_else(|| err(format!("{path}.duration"), "missing"))?;
        if duration < interval {
            return Err(err(
                format!("{path}.duration"),
                "shorter than one interval: no point could be taken",
            ));
        }
        let stage_min =
            match m.get("min_points") {
                None => min_points,
                Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                    err(format!("{path}.min_points"), "expected a whole number >= 1")
                })? as usize,
            };
        stages.push(Stage {
            weights: weights(w, &format!("{path}.weights"), &target)?,
            warmup: dur(m, &path, "warmup")?.unwrap_or(Duration::ZERO),
            duration,
            min_points: stage_min,
        });
    }
    let promote = match top.get("promote") {
        Some(v) => weights(v, "promote", &target)?,
        None => Weights::from([(target.canary.clone(), 100)]),
    };
    let rollback = match top.get("rollback") {
        Some(v) => weights(v, "rollback", &target)?,
        None => Weights::from([(target.release.clone(), 100)]),
    };
    let thresholds = thresholds_from(top.get("thresholds"), "thresholds")?;
    let groups = groups_from(top.get("groups"), "groups")?;
    let list = top
        .get("metrics")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| err("metrics", "expected a list of at least one metric"))?;
    let mut metrics: Vec<MetricConfig> = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let path = format!("metrics[{i}]");
        let m = obj(v, &path)?;
        let settings = MetricSettings::from_object(m, &path, true, METRIC_KEYS)?;
        let name =
            string(m, &path, "name")?.ok_or_else(|| err(format!("{path}.name"), "missing"))?;
        if metrics.iter().any(|x| x.name == name) {
            return Err(err(
                format!("{path}.name"),
                format!("`{name}` is named twice"),
            ));
        }
        let group = string(m, &path, "group")?.unwrap_or_else(|| "default".to_owned());
        let source = source(m, &path, &target, settings.test)?;
        metrics.push(MetricConfig {
            name,
            group,
            source,
            settings,
        });
    }
    // A weighted group nobody uses, or an unweighted one that gets no share, is a typo
    // until proven otherwise: refuse it rather than score it silently.
    let weight_sum: f64 = groups.iter().map(|(_, w)| w).sum();
    for (g, _) in &groups {
        if !metrics.iter().any(|m| &m.group == g) {
            return Err(err(format!("groups.{g}"), "no metric is in this group"));
        }
    }
    if !groups.is_empty() {
        for (i, m) in metrics.iter().enumerate() {
            if !groups.iter().any(|(g, _)| g == &m.group) && weight_sum >= 100.0 {
                return Err(err(
                    format!("metrics[{i}].group"),
                    format!(
                        "`{}` is not in `groups`, whose weights already add up to 100",
                        m.group
                    ),
                ));
            }
        }
    }
    Ok(RolloutConfig {
        target,
        interval,
        stages,
        promote,
        rollback,
        thresholds,
        groups,
        metrics,
        lost_after,
        raw,
    })
}

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<RolloutConfig, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(path.display().to_string(), format!("cannot read it: {e}")))?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../config/canary.yaml");

    #[test]
    fn the_shipped_example_parses() {
        let c = parse(EXAMPLE, Path::new("config/canary.yaml")).unwrap();
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(c.stages.len(), 2);
        assert_eq!(c.stages[0].warmup, Duration::from_secs(60));
        assert_eq!(c.stages[0].min_points, DEFAULT_MIN_POINTS);
        assert_eq!(c.stages[1].weights["canary"], 33);
        assert_eq!(c.metrics.len(), 4);
        assert_eq!(
            c.metrics[2].source,
            Source::Process {
                query: ProcessQuery::Cpu,
                pids: None
            }
        );
        assert_eq!(c.rollback, Weights::from([("release".to_owned(), 100)]));
    }

    #[test]
    fn mistakes_name_their_place() {
        let base = "target: { admin: [\"http://127.0.0.1:1\"] }\nstages: [{ weights: { canary: 10, release: 90 }, duration: 1m }]\nmetrics: [{ name: m, source: weir, query: latency_p95 }]\n";
        assert!(parse(base, Path::new("c.yaml")).is_ok());
        let cases = [
            (base.replace("1m", "soon"), "stages[0].duration"),
            (base.replace("latency_p95", "p95"), "metrics[0].query"),
            (
                base.replace("source: weir", "source: weir, direction: up"),
                "metrics[0].direction",
            ),
            (
                base.replace("source: weir", "source: weir, diretcion: up"),
                "metrics[0].diretcion",
            ),
            (
                base.replace("http://127.0.0.1:1", "127.0.0.1:1"),
                "target.admin[0]",
            ),
            (
                base.replace("canary: 10, release: 90", "canary: 0"),
                "stages[0].weights",
            ),
            (format!("{base}groups: {{ istio: 60 }}\n"), "groups.istio"),
            (format!("{base}intervall: 1s\n"), "intervall"),
            ("target: [\n".to_owned(), "1:9"),
        ];
        for (text, place) in cases {
            let e = parse(&text, Path::new("c.yaml")).unwrap_err();
            assert_eq!(e.place, place, "{e}");
        }
    }
}
