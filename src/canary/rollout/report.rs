//! `report.json`: the config, every point with its time, every judgement, every weight
//! change and the outcome. Rewritten after every interval to a temporary file renamed
//! over the old one, so a crash at any moment leaves the previous complete report; and
//! `report.html` beside it, the same report for people ([`crate::canary::report`]),
//! rewritten the same way.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::config::{RolloutConfig, Side, Weights};
use super::sources::{self, Interval};

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ReportError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// The report being built.
#[derive(Debug)]
pub struct Report {
    dir: PathBuf,
    doc: Map<String, Value>,
}

/// `2026-12-02T13:10:41.123Z`: report times, as weir's admin API writes them.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = crate::civil::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// `weir-canary-YYYYMMDD-HHMMSS` for `t` (UTC).
pub fn default_dir(t: SystemTime) -> PathBuf {
    let s = rfc3339(t); // 2026-12-02T13:10:41.123Z
    let digits: String = s.chars().take(19).filter(char::is_ascii_digit).collect();
    PathBuf::from(format!("weir-canary-{}-{}", &digits[..8], &digits[8..]))
}

fn now() -> String {
    rfc3339(SystemTime::now())
}

fn num(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

impl Report {
    /// Creates `dir` (and its parents) and starts the report.
    pub fn create(
        dir: &Path,
        cfg: &RolloutConfig,
        config_file: &Path,
        dry_run: bool,
    ) -> Result<Report, ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError {
            path: dir.display().to_string(),
            source,
        })?;
        let mut points = Map::new();
        for m in &cfg.metrics {
            points.insert(m.name.clone(), json!({ "canary": [], "baseline": [] }));
        }
        let doc = json!({
            "weir_canary": env!("CARGO_PKG_VERSION"),
            "config_file": config_file.display().to_string(),
            "config": cfg.raw,
            "dry_run": dry_run,
            "started": now(),
            "targets": [],
            "stages": [],
            "points": points,
            "missing": [],
            "notes": [],
            "judgements": [],
            "weight_changes": [],
            "outcome": { "result": "running" },
        });
        let Value::Object(doc) = doc else {
            unreachable!("a JSON object literal")
        };
        Ok(Report {
            dir: dir.to_owned(),
            doc,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn list(&mut self, key: &str) -> &mut Vec<Value> {
        match self.doc.entry(key).or_insert_with(|| json!([])) {
            Value::Array(a) => a,
            other => {
                *other = json!([]);
                match other {
                    Value::Array(a) => a,
                    _ => unreachable!("just set"),
                }
            }
        }
    }

    /// A target seen for the first time, with its split then.
    pub fn target(&mut self, url: &str, split: Option<&Weights>) {
        let seen = self.list("targets").iter().any(|t| t["url"] == url);
        if !seen {
            let t = json!({ "url": url, "first_seen": now(), "split_at_first_sight": split });
            self.list("targets").push(t);
        }
    }

    pub fn stage_started(&mut self, index: usize, weights: &Weights) {
        self.list("stages")
            .push(json!({ "stage": index + 1, "weights": weights, "started": now() }));
    }

    pub fn stage_update(&mut self, key: &str, value: Value) {
        if let Some(Value::Object(s)) = self.list("stages").last_mut() {
            s.insert(key.to_owned(), value);
        }
    }

    pub fn weight_change(
        &mut self,
        target: &str,
        weights: &Weights,
        why: &str,
        error: Option<&str>,
    ) {
        let entry = json!({ "time": now(), "target": target, "weights": weights, "why": why, "applied": error.is_none(), "error": error });
        self.list("weight_changes").push(entry);
    }

    pub fn note(&mut self, text: &str) {
        let entry = json!({ "time": now(), "note": text });
        self.list("notes").push(entry);
    }

    /// Records one interval's points.
    pub fn points(&mut self, cfg: &RolloutConfig, stage: usize, interval: &Interval) {
        let time = now();
        for (i, m) in cfg.metrics.iter().enumerate() {
            for side in Side::BOTH {
                let mut p = json!({ "time": time, "stage": stage + 1 });
                match interval.points[i].get(&side) {
                    Some(sources::Value::Number(v)) => p["value"] = num(*v),
                    Some(sources::Value::Counts(Some(c))) => {
                        p["successes"] = json!(c.successes);
                        p["total"] = json!(c.total);
                    }
                    Some(sources::Value::Counts(None)) | None => p["value"] = Value::Null,
                }
                if let Some(Value::Array(list)) = self
                    .doc
                    .get_mut("points")
                    .and_then(|p| p.get_mut(&m.name))
                    .and_then(|p| p.get_mut(side.as_str()))
                {
                    list.push(p);
                }
            }
        }
        for (metric, side, why) in &interval.missing {
            let entry = json!({ "time": time, "stage": stage + 1, "metric": metric, "side": side.as_str(), "why": why });
            self.list("missing").push(entry);
        }
        for n in &interval.notes {
            self.note(n);
        }
    }

    pub fn judgement(&mut self, stage: usize, points: usize, kind: &str, judgement: Value) {
        let entry = json!({ "time": now(), "stage": stage + 1, "points": points, "kind": kind, "judgement": judgement });
        self.list("judgements").push(entry);
    }

    pub fn outcome(&mut self, result: &str, exit_code: u8, reason: &str) {
        self.doc.insert(
            "outcome".into(),
            json!({ "result": result, "exit_code": exit_code, "reason": reason, "time": now() }),
        );
    }

    /// Writes `report.json` and `report.html` atomically.
    pub fn save(&self) -> Result<(), ReportError> {
        self.save_json()?;
        // Always a report: `create` wrote `weir_canary` and `started`.
        let Some(html) = crate::canary::report::render(&self.doc) else {
            return Ok(());
        };
        let path = self.dir.join("report.html");
        crate::canary::report::write(&path, &html).map_err(|source| ReportError {
            path: path.display().to_string(),
            source,
        })
    }

    fn save_json(&self) -> Result<(), ReportError> {
        let path = self.dir.join("report.json");
        let tmp = self.dir.join(".report.json.tmp");
        let err = |source| ReportError {
            path: path.display().to_string(),
            source,
        };
        let mut body = serde_json::to_vec_pretty(&self.doc).unwrap_or_default();
        body.push(b'\n');
        std::fs::write(&tmp, body).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(951_782_400_123);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn default_dir_is_dated() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_222_400);
        assert_eq!(default_dir(t), PathBuf::from("weir-canary-20261202-144000"));
    }
}
