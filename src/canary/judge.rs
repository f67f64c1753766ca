//! The canary judge: Kayenta's statistics on canary and baseline samples, offline.
//!
//! [`judge`] classifies every metric ([`classify`]), scores the groups ([`score`]) and
//! returns a [`Judgement`], which renders as the table `weir judge` prints and as the
//! JSON it writes (the same JSON the rollout's report keeps for every judgement).

pub mod classify;
pub mod fisher;
pub mod input;
pub mod mann_whitney;
pub mod normal;
mod output;
pub mod score;
pub mod settings;

pub use classify::{Classification, MetricResult};
pub use input::{Counts, JudgeInput, MetricData, MetricInput, Thresholds};
pub(crate) use output::short;
pub use score::{Score, Verdict};
pub use settings::MetricSettings;

/// Kayenta warns when a side has fewer points than this.
pub const FEW_POINTS: usize = 50;

/// Bad input, with where it is: `line:column` in the file, or a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct InputError {
    pub place: String,
    pub message: String,
}

impl InputError {
    pub fn at(place: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError {
            place: place.into(),
            message: message.into(),
        }
    }
}

/// Every metric's result and the score.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub score: Score,
    /// In input order, muted ones included.
    pub metrics: Vec<MetricResult>,
    pub warnings: Vec<String>,
}

/// Judges `input`.
pub fn judge(input: &JudgeInput) -> Judgement {
    let metrics: Vec<MetricResult> = input.metrics.iter().map(classify::classify).collect();
    let mut warnings = Vec::new();
    for r in &metrics {
        if let Some((c, b)) = r.points {
            for (side, n) in [("canary", c), ("baseline", b)] {
                if n < FEW_POINTS {
                    warnings.push(format!(
                        "`{}`: the {side} has {n} points, fewer than {FEW_POINTS}: the test has little power",
                        r.name
                    ));
                }
            }
        }
    }
    if metrics.iter().all(|m| m.muted) {
        warnings.push("every metric is muted: nothing was scored".to_owned());
    }
    let score = score::score(&metrics, &input.groups, input.thresholds);
    warnings.extend(score.notes.iter().cloned());
    Judgement {
        score,
        metrics,
        warnings,
    }
}
