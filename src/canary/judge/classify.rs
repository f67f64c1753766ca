//! Classifying one metric as Kayenta does: NaN handling, outlier removal, the no-data,
//! identical and constant cases, Mann-Whitney with the tolerance and effect-size rules,
//! criticality; and, beyond Kayenta, Fisher's exact test on success/total counts. Every
//! result says in words which rule decided it.

use super::fisher::{self, Alternative};
use super::input::{Counts, MetricData, MetricInput};
use super::mann_whitney::{self, Samples};
use super::settings::{Direction, EffectMeasure, MetricSettings, NanStrategy};

/// Kayenta's metric classifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    Pass,
    High,
    Low,
    Nodata,
    NodataFail,
    Error,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Pass => "Pass",
            Classification::High => "High",
            Classification::Low => "Low",
            Classification::Nodata => "Nodata",
            Classification::NodataFail => "NodataFail",
            Classification::Error => "Error",
        }
    }
}

/// Count, mean and median of what was judged on one side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    /// NaN when it means nothing (no points; success counts).
    pub median: f64,
}

/// The effect size used by the decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    /// `mean_ratio`, `cles` or, for proportions, `rate_difference`.
    pub measure: &'static str,
    pub value: f64,
}

/// One metric's result.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricResult {
    pub name: String,
    pub group: String,
    pub muted: bool,
    pub classification: Classification,
    /// The classification is a critical failure.
    pub critical: bool,
    pub lower: f64,
    pub upper: f64,
    pub estimate: f64,
    pub p_value: f64,
    /// Always the mean ratio (canary / baseline), as Kayenta shows it.
    pub deviation: f64,
    pub effect: Effect,
    pub reason: String,
    pub canary: Summary,
    pub baseline: Summary,
    /// Points per side after NaN handling (Mann-Whitney), for the few-points warning.
    pub points: Option<(usize, usize)>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// The `q` percentile by R's type 7 (numpy's default) of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

fn summary(v: &[f64]) -> Summary {
    Summary {
        count: v.len() as u64,
        mean: mean(v),
        median: percentile(&sorted(v), 0.5),
    }
}

/// Kayenta's effect size: canary mean over baseline mean, NaN if either is 0.
fn mean_ratio(canary: &[f64], baseline: &[f64]) -> f64 {
    let (c, b) = (mean(canary), mean(baseline));
    if c == 0.0 || b == 0.0 {
        f64::NAN
    } else {
        c / b
    }
}

/// Kayenta's IQR detector: keeps values inside
/// `[min(P1, Q1 - k IQR), max(P99, Q3 + k IQR)]`.
fn remove_outliers(values: Vec<f64>, k: f64) -> Vec<f64> {
    if values.len() < 2 {
        return values;
    }
    let s = sorted(&values);
    let (q1, q3) = (percentile(&s, 0.25), percentile(&s, 0.75));
    let iqr = q3 - q1;
    let lo = percentile(&s, 0.01).min(q1 - k * iqr);
    let hi = percentile(&s, 0.99).max(q3 + k * iqr);
    values
        .into_iter()
        .filter(|v| *v >= lo && *v <= hi)
        .collect()
}

/// A small deterministic generator (SplitMix64), so the jitter Kayenta adds to constant
/// samples gives the same verdict on the same input, on every machine and every version.
struct Jitter(u64);

impl Jitter {
    fn for_metric(name: &str) -> Jitter {
        // FNV-1a of the name.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Jitter(h)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box-Muller).
    fn gaussian(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Kayenta's noise for a constant sample: Gaussian, sd = value * 1e-5.
    fn add_noise(&mut self, values: &mut [f64]) {
        for v in values {
            let sd = (*v * 1e-5).abs();
            *v += sd * self.gaussian();
        }
    }
}

fn is_constant(v: &[f64]) -> bool {
    v.windows(2).all(|w| w[0] == w[1])
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

impl MetricResult {
    fn new(m: &MetricInput, effect: EffectMeasure) -> MetricResult {
        MetricResult {
            name: m.name.clone(),
            group: m.group.clone(),
            muted: m.settings.muted,
            classification: Classification::Pass,
            critical: false,
            lower: f64::NAN,
            upper: f64::NAN,
            estimate: f64::NAN,
            p_value: f64::NAN,
            deviation: f64::NAN,
            effect: Effect {
                measure: effect.as_str(),
                value: f64::NAN,
            },
            reason: String::new(),
            canary: Summary {
                count: 0,
                mean: f64::NAN,
                median: f64::NAN,
            },
            baseline: Summary {
                count: 0,
                mean: f64::NAN,
                median: f64::NAN,
            },
            points: None,
        }
    }

    fn decide(mut self, c: Classification, critical: bool, reason: String) -> MetricResult {
        self.classification = c;
        self.critical = critical;
        self.reason = if self.muted {
            format!("{reason} (muted: not scored)")
        } else {
            reason
        };
        self
    }
}

/// Classifies one metric.
pub fn classify(m: &MetricInput) -> MetricResult {
    match &m.data {
        MetricData::Samples { canary, baseline } => samples(m, canary, baseline),
        MetricData::Proportions { canary, baseline } => proportions(m, *canary, *baseline),
    }
}

/// The no-data rule: Nodata, flagged critical for a critical metric; NodataFail when the
/// metric must have data (and is not critical); with `nan_strategy: replace`, Pass.
fn no_data(r: MetricResult, s: &MetricSettings, which: &str) -> MetricResult {
    if s.nan_strategy == NanStrategy::Replace {
        return r.decide(
            Classification::Pass,
            false,
            format!("no data ({which}); with nan_strategy replace Kayenta passes it"),
        );
    }
    if s.critical {
        r.decide(
            Classification::Nodata,
            true,
            format!("no data ({which}) for a critical metric: a critical failure"),
        )
    } else if s.must_have_data {
        r.decide(
            Classification::NodataFail,
            false,
            format!("no data ({which}) and must_have_data is set"),
        )
    } else {
        r.decide(Classification::Nodata, false, format!("no data ({which})"))
    }
}

fn which_empty(canary: usize, baseline: usize) -> &'static str {
    match (canary, baseline) {
        (0, 0) => "neither side has a point",
        (0, _) => "the canary has no point",
        _ => "the baseline has no point",
    }
}

fn samples(m: &MetricInput, canary: &[f64], baseline: &[f64]) -> MetricResult {
    let s = &m.settings;
    let mut r = MetricResult::new(m, s.effect);
    let prepare = |v: &[f64]| -> Vec<f64> {
        let kept: Vec<f64> = match s.nan_strategy {
            NanStrategy::Remove => v.iter().copied().filter(|x| !x.is_nan()).collect(),
            NanStrategy::Replace => v
                .iter()
                .map(|x| if x.is_nan() { 0.0 } else { *x })
                .collect(),
        };
        match s.outlier_factor {
            Some(k) => remove_outliers(kept, k),
            None => kept,
        }
    };
    let (mut x, mut y) = (prepare(canary), prepare(baseline));
    r.canary = summary(&x);
    r.baseline = summary(&y);
    r.points = Some((x.len(), y.len()));
    if x.is_empty() || y.is_empty() {
        return no_data(r, s, which_empty(x.len(), y.len()));
    }
    r.deviation = mean_ratio(&x, &y);
    if sorted(&x) == sorted(&y) {
        r.deviation = 1.0;
        return r.decide(
            Classification::Pass,
            false,
            "the canary and baseline points are identical".into(),
        );
    }
    let first = x[0];
    if x.iter().chain(&y).all(|v| *v == first) {
        r.deviation = 1.0;
        return r.decide(
            Classification::Pass,
            false,
            format!("every point on both sides is {}", fmt(first)),
        );
    }
    let mut note = "";
    if is_constant(&x) && is_constant(&y) {
        // Each side constant but different: Mann-Whitney cannot rank ties apart, so
        // Kayenta adds a little Gaussian noise to both.
        let mut jitter = Jitter::for_metric(&m.name);
        jitter.add_noise(&mut x);
        jitter.add_noise(&mut y);
        note = " (each side constant: seeded noise of 1e-5 x the value added, as Kayenta)";
    }
    let prepared = match Samples::new(&x, &y) {
        Ok(p) => p,
        Err(e) => return error(r, s, e),
    };
    let test = match mann_whitney::test_samples(&prepared, s.confidence) {
        Ok(t) => t,
        Err(e) => return error(r, s, e),
    };
    (r.lower, r.upper, r.estimate, r.p_value) =
        (test.lower, test.upper, test.estimate, test.p_value);
    let effect = match s.effect {
        EffectMeasure::MeanRatio => r.deviation,
        EffectMeasure::Cles => {
            let (nx, ny) = (prepared.canary_len() as f64, prepared.baseline_len() as f64);
            (2.0 * prepared.canary_rank_sum() - nx * (nx + 1.0)) / (2.0 * nx * ny)
        }
    };
    r.effect.value = effect;
    let t = s.tolerance * test.estimate.abs();
    let measure = s.effect.as_str();
    let conf = format!("{}%", fmt(s.confidence * 100.0));
    let shows_increase = test.lower > t;
    let shows_decrease = test.upper < -t;
    // Kayenta's order: High is checked first, then Low, else Pass.
    let is_high = s.direction.flags_increase()
        && shows_increase
        && (effect.is_nan() || effect >= s.allowed_increase);
    let is_low = s.direction.flags_decrease()
        && shows_decrease
        && (effect.is_nan() || effect <= s.allowed_decrease);
    if is_high {
        let critical = s.critical && (effect.is_nan() || effect >= s.critical_increase);
        let crit = if critical {
            format!(
                "; critical: {measure} {} >= critical_increase {}",
                fmt(effect),
                fmt(s.critical_increase)
            )
        } else {
            String::new()
        };
        return r.decide(
            Classification::High,
            critical,
            format!(
                "higher: the {conf} interval's lower end {} is above tolerance x |estimate| = {} and {measure} {} >= allowed_increase {}{crit}{note}",
                fmt(test.lower),
                fmt(t),
                fmt(effect),
                fmt(s.allowed_increase)
            ),
        );
    }
    if is_low {
        let critical = s.critical && (effect.is_nan() || effect <= s.critical_decrease);
        let crit = if critical {
            format!(
                "; critical: {measure} {} <= critical_decrease {}",
                fmt(effect),
                fmt(s.critical_decrease)
            )
        } else {
            String::new()
        };
        return r.decide(
            Classification::Low,
            critical,
            format!(
                "lower: the {conf} interval's upper end {} is below -tolerance x |estimate| = {} and {measure} {} <= allowed_decrease {}{crit}{note}",
                fmt(test.upper),
                fmt(-t),
                fmt(effect),
                fmt(s.allowed_decrease)
            ),
        );
    }
    let reason = if shows_increase && s.direction.flags_increase() {
        format!(
            "higher, but {measure} {} is below allowed_increase {}",
            fmt(effect),
            fmt(s.allowed_increase)
        )
    } else if shows_decrease && s.direction.flags_decrease() {
        format!(
            "lower, but {measure} {} is above allowed_decrease {}",
            fmt(effect),
            fmt(s.allowed_decrease)
        )
    } else if shows_increase {
        format!(
            "higher, but direction is {} so only a decrease fails",
            s.direction.as_str()
        )
    } else if shows_decrease {
        format!(
            "lower, but direction is {} so only an increase fails",
            s.direction.as_str()
        )
    } else {
        format!(
            "no shift beyond tolerance: the {conf} interval [{}, {}] reaches within {} x |estimate| = {} of zero",
            fmt(test.lower),
            fmt(test.upper),
            fmt(s.tolerance),
            fmt(t)
        )
    };
    r.decide(Classification::Pass, false, format!("{reason}{note}"))
}

fn error(r: MetricResult, s: &MetricSettings, e: mann_whitney::MannWhitneyError) -> MetricResult {
    let critical = s.critical;
    let suffix = if critical {
        " (a critical metric: a critical failure)"
    } else {
        ""
    };
    r.decide(
        Classification::Error,
        critical,
        format!("cannot judge: {e}{suffix}"),
    )
}

fn rate(c: Counts) -> f64 {
    if c.total == 0 {
        f64::NAN
    } else {
        c.successes as f64 / c.total as f64
    }
}

fn proportions(m: &MetricInput, canary: Counts, baseline: Counts) -> MetricResult {
    let s = &m.settings;
    let mut r = MetricResult::new(m, s.effect);
    r.effect.measure = "rate_difference";
    let side = |c: Counts| Summary {
        count: c.total,
        mean: rate(c),
        median: f64::NAN,
    };
    r.canary = side(canary);
    r.baseline = side(baseline);
    if canary.total == 0 || baseline.total == 0 {
        let which = match (canary.total, baseline.total) {
            (0, 0) => "neither side has a trial",
            (0, _) => "the canary has no trial",
            _ => "the baseline has no trial",
        };
        return no_data(r, s, which);
    }
    let (p1, p2) = (rate(canary), rate(baseline));
    let diff = p1 - p2;
    r.deviation = if p1 == 0.0 || p2 == 0.0 {
        f64::NAN
    } else {
        p1 / p2
    };
    r.estimate = diff;
    r.effect.value = diff;
    if let Some((lo, hi)) = fisher::difference_interval(
        canary.successes,
        canary.total,
        baseline.successes,
        baseline.total,
        s.confidence,
    ) {
        (r.lower, r.upper) = (lo, hi);
    }
    let alternative = match s.direction {
        Direction::Increase => Alternative::Greater,
        Direction::Decrease => Alternative::Less,
        Direction::Either => Alternative::TwoSided,
    };
    let p = fisher::fisher_exact(
        canary.successes,
        canary.total - canary.successes,
        baseline.successes,
        baseline.total - baseline.successes,
        alternative,
    );
    r.p_value = p;
    let alpha = 1.0 - s.confidence;
    let sided = match alternative {
        Alternative::TwoSided => "two-sided",
        _ => "one-sided",
    };
    let rates = format!(
        "canary {}/{} = {} vs baseline {}/{} = {}",
        canary.successes,
        canary.total,
        fmt(p1),
        baseline.successes,
        baseline.total,
        fmt(p2)
    );
    let significant = p < alpha;
    let big_enough = diff.abs() > s.min_difference;
    if significant && big_enough && diff > 0.0 && s.direction.flags_increase() {
        return r.decide(
            Classification::High,
            s.critical,
            format!(
                "higher rate: {rates}; Fisher's exact {sided} p = {} < {} and the difference {} > min_difference {}",
                fmt(p),
                fmt(alpha),
                fmt(diff),
                fmt(s.min_difference)
            ),
        );
    }
    if significant && big_enough && diff < 0.0 && s.direction.flags_decrease() {
        return r.decide(
            Classification::Low,
            s.critical,
            format!(
                "lower rate: {rates}; Fisher's exact {sided} p = {} < {} and the difference {} < -min_difference {}",
                fmt(p),
                fmt(alpha),
                fmt(diff),
                fmt(s.min_difference)
            ),
        );
    }
    let why = if !significant {
        format!("Fisher's exact {sided} p = {} >= {}", fmt(p), fmt(alpha))
    } else if !big_enough {
        format!(
            "p = {} but the difference {} is within min_difference {}",
            fmt(p),
            fmt(diff),
            fmt(s.min_difference)
        )
    } else {
        format!(
            "the rate moved the way direction {} allows",
            s.direction.as_str()
        )
    };
    r.decide(Classification::Pass, false, format!("{rates}; {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_type_7() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&s, 0.25), 1.75);
        assert_eq!(percentile(&s, 0.5), 2.5);
        assert!((percentile(&s, 0.99) - 3.97).abs() < 1e-12);
    }

    #[test]
    fn outliers_beyond_the_fences_go() {
        let mut v: Vec<f64> = (0..100).map(|i| 10.0 + f64::from(i % 5)).collect();
        v.push(1000.0);
        let kept = remove_outliers(v, 3.0);
        assert_eq!(kept.len(), 100);
        assert!(kept.iter().all(|x| *x < 100.0));
    }

    #[test]
    fn jitter_is_reproducible() {
        let mut a = vec![5.0; 4];
        let mut b = vec![5.0; 4];
        Jitter::for_metric("m").add_noise(&mut a);
        Jitter::for_metric("m").add_noise(&mut b);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (v - 5.0).abs() < 5.0 * 1e-4));
        assert!(!is_constant(&a));
    }
}
