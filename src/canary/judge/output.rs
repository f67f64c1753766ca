//! A judgement as JSON (the keys `weir judge --json` promises) and as the table it
//! prints.

use std::fmt::Write;

use serde_json::{Map, Value, json};

use super::Judgement;
use super::classify::Summary;

/// A number, or `null` for NaN and infinities (JSON has neither).
fn num(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

fn summary(s: &Summary) -> Value {
    json!({ "count": s.count, "mean": num(s.mean), "median": num(s.median) })
}

/// Short, fixed-width-friendly numbers for the table (and the HTML report's numbers).
pub fn short(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

impl Judgement {
    /// The JSON `weir judge --json` writes.
    pub fn to_json(&self) -> Value {
        let mut groups = Map::new();
        for g in &self.score.groups {
            groups.insert(
                g.name.clone(),
                json!({ "score": num(g.score), "weight": num(g.weight) }),
            );
        }
        let metrics: Vec<Value> = self
            .metrics
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "group": m.group,
                    "classification": m.classification.as_str(),
                    "critical": m.critical,
                    "lower": num(m.lower),
                    "upper": num(m.upper),
                    "estimate": num(m.estimate),
                    "p_value": num(m.p_value),
                    "deviation": num(m.deviation),
                    "effect": { "measure": m.effect.measure, "value": num(m.effect.value) },
                    "reason": m.reason,
                    "canary": summary(&m.canary),
                    "baseline": summary(&m.baseline),
                })
            })
            .collect();
        json!({
            "score": num(self.score.score),
            "verdict": self.score.verdict.as_str(),
            "groups": groups,
            "warnings": self.warnings,
            "metrics": metrics,
        })
    }

    /// The table `weir judge` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:<11} {:>24} {:>24} {:>9} {:>9} {:>9} {:>9} {:>7}  class",
            "metric",
            "group",
            "canary n/mean/median",
            "baseline n/mean/median",
            "lower",
            "upper",
            "estimate",
            "p-value",
            "ratio",
        );
        for m in &self.metrics {
            let side = |s: &Summary| format!("{}/{}/{}", s.count, short(s.mean), short(s.median));
            let class = if m.critical {
                format!("{} (critical)", m.classification.as_str())
            } else {
                m.classification.as_str().to_owned()
            };
            let _ = writeln!(
                out,
                "{:<22} {:<11} {:>24} {:>24} {:>9} {:>9} {:>9} {:>9} {:>7}  {}",
                m.name,
                m.group,
                side(&m.canary),
                side(&m.baseline),
                short(m.lower),
                short(m.upper),
                short(m.estimate),
                short(m.p_value),
                short(m.deviation),
                class
            );
            let _ = writeln!(out, "    {}", m.reason);
        }
        let _ = writeln!(out);
        for g in &self.score.groups {
            let _ = writeln!(
                out,
                "group {:<16} score {:>6.2}  weight {:>6.2}",
                g.name, g.score, g.weight
            );
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        let _ = writeln!(
            out,
            "score {:.2}: {}",
            self.score.score,
            self.score.verdict.as_str()
        );
        out
    }
}
