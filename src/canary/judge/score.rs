//! Kayenta's scoring: per group the share of counted metrics that passed, groups
//! weighted, the critical and no-data overrides, rounding, and the thresholds.

use super::classify::{Classification, MetricResult};
use super::input::Thresholds;

/// The outcome on the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Marginal,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Marginal => "marginal",
            Verdict::Fail => "fail",
        }
    }

    /// `weir judge`'s exit status: 0 pass, 3 marginal, 1 fail.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Marginal => 3,
            Verdict::Fail => 1,
        }
    }
}

/// One group's score and the weight it counted with.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupScore {
    pub name: String,
    pub score: f64,
    pub weight: f64,
}

/// The total.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub score: f64,
    pub verdict: Verdict,
    pub groups: Vec<GroupScore>,
    /// Why the score is what it is when an override applied, and scoring caveats.
    pub notes: Vec<String>,
}

/// Scores classified metrics with the configured group weights.
pub fn score(results: &[MetricResult], weights: &[(String, f64)], thresholds: Thresholds) -> Score {
    let counted: Vec<&MetricResult> = results.iter().filter(|r| !r.muted).collect();
    let mut notes = Vec::new();
    // Groups in the order first met: weighted ones as configured, then the others.
    let mut names: Vec<String> = weights.iter().map(|(n, _)| n.clone()).collect();
    for r in &counted {
        if !names.contains(&r.group) {
            names.push(r.group.clone());
        }
    }
    let weight_sum: f64 = weights.iter().map(|(_, w)| w).sum();
    let unweighted = names
        .iter()
        .filter(|n| !weights.iter().any(|(w, _)| w == *n))
        .count();
    let share = if unweighted > 0 {
        ((100.0 - weight_sum) / unweighted as f64).max(0.0)
    } else {
        0.0
    };
    let mut groups = Vec::new();
    for name in &names {
        let weight = weights
            .iter()
            .find(|(n, _)| n == name)
            .map_or(share, |(_, w)| *w);
        let in_group: Vec<&&MetricResult> = counted.iter().filter(|r| &r.group == name).collect();
        let count = |c: Classification| in_group.iter().filter(|r| r.classification == c).count();
        let passed = count(Classification::Pass);
        let total = passed
            + count(Classification::High)
            + count(Classification::Low)
            + count(Classification::NodataFail);
        let score = if total == 0 {
            100.0
        } else {
            100.0 * passed as f64 / total as f64
        };
        if in_group.is_empty() {
            notes.push(format!(
                "group `{name}` has a weight of {weight} but no metric is scored in it: it counts as 100"
            ));
        } else if weight == 0.0 && !weights.iter().any(|(n, _)| n == name) {
            notes.push(format!(
                "group `{name}` has no weight and the weights leave nothing to share: its metrics do not change the score"
            ));
        }
        groups.push(GroupScore {
            name: name.clone(),
            score,
            weight,
        });
    }
    let nodata = counted
        .iter()
        .filter(|r| r.classification == Classification::Nodata)
        .count();
    let critical: Vec<&&MetricResult> = counted
        .iter()
        .filter(|r| r.critical && r.classification != Classification::Pass)
        .collect();
    let total = if !critical.is_empty() {
        for r in &critical {
            notes.push(format!(
                "score 0: critical metric `{}` is {}",
                r.name,
                r.classification.as_str()
            ));
        }
        0.0
    } else if !counted.is_empty() && 2 * nodata >= counted.len() {
        notes.push(format!(
            "score 0: {nodata} of {} metrics have no data (Kayenta fails at 50 %)",
            counted.len()
        ));
        0.0
    } else {
        let sum: f64 = groups.iter().map(|g| g.score * g.weight / 100.0).sum();
        (sum * 100.0).round() / 100.0
    };
    let verdict = if total >= thresholds.pass {
        Verdict::Pass
    } else if total >= thresholds.marginal {
        Verdict::Marginal
    } else {
        Verdict::Fail
    };
    Score {
        score: total,
        verdict,
        groups,
        notes,
    }
}
