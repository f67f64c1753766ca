//! A metric's judging settings, with Kayenta's defaults, read from a JSON object (the
//! `weir judge` input, or a metric of the rollout config), each problem reported at its
//! path.

use serde_json::{Map, Value};

use super::InputError;

/// Which change is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Only an increase fails (latency, CPU, errors).
    Increase,
    /// Only a decrease fails (successes, throughput).
    Decrease,
    /// Both do (Kayenta's default).
    Either,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Increase => "increase",
            Direction::Decrease => "decrease",
            Direction::Either => "either",
        }
    }

    pub fn flags_increase(self) -> bool {
        matches!(self, Direction::Increase | Direction::Either)
    }

    pub fn flags_decrease(self) -> bool {
        matches!(self, Direction::Decrease | Direction::Either)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NanStrategy {
    /// Drop missing points (the default).
    Remove,
    /// Count a missing point as 0.
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectMeasure {
    /// Canary mean / baseline mean.
    MeanRatio,
    /// The common-language effect size: the chance a canary point beats a baseline one.
    Cles,
}

impl EffectMeasure {
    pub fn as_str(self) -> &'static str {
        match self {
            EffectMeasure::MeanRatio => "mean_ratio",
            EffectMeasure::Cles => "cles",
        }
    }

    /// Kayenta's default for every effect-size threshold.
    fn neutral(self) -> f64 {
        match self {
            EffectMeasure::MeanRatio => 1.0,
            EffectMeasure::Cles => 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// Mann-Whitney on points, as Kayenta.
    MannWhitney,
    /// Fisher's exact test on success/total counts.
    Proportions,
}

/// How one metric is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSettings {
    pub direction: Direction,
    pub critical: bool,
    pub must_have_data: bool,
    pub muted: bool,
    pub nan_strategy: NanStrategy,
    /// `Some(k)`: drop points outside `[min(P1, Q1 - k IQR), max(P99, Q3 + k IQR)]`.
    pub outlier_factor: Option<f64>,
    pub effect: EffectMeasure,
    pub allowed_increase: f64,
    pub allowed_decrease: f64,
    pub critical_increase: f64,
    pub critical_decrease: f64,
    pub tolerance: f64,
    pub confidence: f64,
    pub test: Test,
    /// Proportions: the smallest difference of rates that counts.
    pub min_difference: f64,
}

impl Default for MetricSettings {
    fn default() -> Self {
        MetricSettings {
            direction: Direction::Either,
            critical: false,
            must_have_data: false,
            muted: false,
            nan_strategy: NanStrategy::Remove,
            outlier_factor: None,
            effect: EffectMeasure::MeanRatio,
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
            critical_increase: 1.0,
            critical_decrease: 1.0,
            tolerance: 0.25,
            confidence: 0.98,
            test: Test::MannWhitney,
            min_difference: 0.001,
        }
    }
}

/// Every key a metric's settings may have.
pub const SETTING_KEYS: &[&str] = &[
    "direction",
    "critical",
    "must_have_data",
    "muted",
    "nan_strategy",
    "outliers",
    "outlier_factor",
    "effect_size_measure",
    "allowed_increase",
    "allowed_decrease",
    "critical_increase",
    "critical_decrease",
    "tolerance",
    "confidence",
    "test",
    "min_difference",
];

fn choice<T: Copy>(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    options: &[(&str, T)],
    default: T,
) -> Result<T, InputError> {
    let Some(v) = obj.get(key) else {
        return Ok(default);
    };
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    let bad = || {
        InputError::at(
            format!("{path}.{key}"),
            format!("expected one of {}", names.join(", ")),
        )
    };
    let s = v.as_str().ok_or_else(bad)?;
    options
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            InputError::at(
                format!("{path}.{key}"),
                format!("`{s}` is not one of {}", names.join(", ")),
            )
        })
}

fn flag(obj: &Map<String, Value>, path: &str, key: &str) -> Result<bool, InputError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(InputError::at(
            format!("{path}.{key}"),
            "expected true or false",
        )),
    }
}

fn number(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    check: impl Fn(f64) -> bool,
    what: &str,
) -> Result<Option<f64>, InputError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && check(x) => Ok(Some(x)),
            _ => Err(InputError::at(
                format!("{path}.{key}"),
                format!("expected {what}"),
            )),
        },
    }
}

impl MetricSettings {
    /// Reads the settings of the metric object at `path`. With `strict`, a key that is
    /// neither a setting nor in `also` is refused (a rollout config's typo must not fall
    /// back to a default); the judge's input may carry more.
    pub fn from_object(
        obj: &Map<String, Value>,
        path: &str,
        strict: bool,
        also: &[&str],
    ) -> Result<MetricSettings, InputError> {
        if strict {
            for key in obj.keys() {
                if !SETTING_KEYS.contains(&key.as_str()) && !also.contains(&key.as_str()) {
                    return Err(InputError::at(
                        format!("{path}.{key}"),
                        format!(
                            "unknown key; a metric takes {}, {}",
                            also.join(", "),
                            SETTING_KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        let d = MetricSettings::default();
        let direction = choice(
            obj,
            path,
            "direction",
            &[
                ("increase", Direction::Increase),
                ("decrease", Direction::Decrease),
                ("either", Direction::Either),
            ],
            d.direction,
        )?;
        let nan_strategy = choice(
            obj,
            path,
            "nan_strategy",
            &[
                ("remove", NanStrategy::Remove),
                ("replace", NanStrategy::Replace),
            ],
            d.nan_strategy,
        )?;
        let remove_outliers = choice(
            obj,
            path,
            "outliers",
            &[("keep", false), ("remove", true)],
            false,
        )?;
        let factor = number(obj, path, "outlier_factor", |x| x >= 0.0, "a number >= 0")?;
        let effect = choice(
            obj,
            path,
            "effect_size_measure",
            &[
                ("mean_ratio", EffectMeasure::MeanRatio),
                ("cles", EffectMeasure::Cles),
            ],
            d.effect,
        )?;
        let test = choice(
            obj,
            path,
            "test",
            &[
                ("mann-whitney", Test::MannWhitney),
                ("proportions", Test::Proportions),
            ],
            d.test,
        )?;
        let positive = |x: f64| x >= 0.0;
        let threshold = |key: &str| -> Result<f64, InputError> {
            Ok(number(obj, path, key, positive, "a number >= 0")?.unwrap_or(effect.neutral()))
        };
        let settings = MetricSettings {
            direction,
            critical: flag(obj, path, "critical")?,
            must_have_data: flag(obj, path, "must_have_data")?,
            muted: flag(obj, path, "muted")?,
            nan_strategy,
            outlier_factor: remove_outliers.then(|| factor.unwrap_or(3.0)),
            effect,
            allowed_increase: threshold("allowed_increase")?,
            allowed_decrease: threshold("allowed_decrease")?,
            critical_increase: threshold("critical_increase")?,
            critical_decrease: threshold("critical_decrease")?,
            tolerance: number(obj, path, "tolerance", positive, "a number >= 0")?
                .unwrap_or(d.tolerance),
            confidence: number(
                obj,
                path,
                "confidence",
                |x| x > 0.0 && x < 1.0,
                "a number between 0 and 1 (0.98 is 98 %)",
            )?
            .unwrap_or(d.confidence),
            test,
            min_difference: number(
                obj,
                path,
                "min_difference",
                |x| (0.0..1.0).contains(&x),
                "a rate difference between 0 and 1",
            )?
            .unwrap_or(d.min_difference),
        };
        Ok(settings)
    }
}
