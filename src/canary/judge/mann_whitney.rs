//! The Mann-Whitney (Wilcoxon rank-sum) test exactly as Kayenta runs it: R's
//! `wilcox.test(canary, baseline, conf.int = TRUE, exact = FALSE, correct = TRUE)`, with
//! one difference Kayenta kept: the location estimate is found with the continuity
//! correction still on.
//!
//! Everything is the normal approximation with tie correction. The interval's ends are
//! the roots in `mu` of `f(mu, zq)` (the standardised rank sum of `canary - mu` against
//! `baseline`, minus `zq`), found by R's `zeroin` with an absolute tolerance of 1e-4, so
//! they are good to about 1e-4 in absolute terms, as in Kayenta.
//!
//! Speed: both samples are sorted once. Shifting the canary by `mu` keeps it sorted
//! (IEEE subtraction is monotonic), so each evaluation of `f` merges two sorted runs in
//! linear time instead of ranking `n + m` values afresh.

/// The absolute tolerance R's `wilcox.test` gives `uniroot`.
const ROOT_TOLERANCE: f64 = 1e-4;
/// `uniroot`'s default `maxiter`.
const ROOT_MAX_ITERATIONS: u32 = 1000;

/// Why the test cannot be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MannWhitneyError {
    #[error("one side has no values")]
    Empty,
    #[error("all observations are tied, so the interval cannot be computed")]
    AllTied,
    #[error("the values are too large to compare (their differences overflow)")]
    NotFinite,
}

/// What the test finds about the shift of the canary against the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitneyResult {
    /// The interval's lower end (the root of `f(mu, +z)`).
    pub lower: f64,
    /// The interval's upper end (the root of `f(mu, -z)`); Kayenta's search can leave it
    /// below `lower` within the tolerance.
    pub upper: f64,
    /// The location shift: the root of `f(mu, 0)`, continuity correction kept.
    pub estimate: f64,
    /// Two-sided, asymptotic, with continuity correction: scipy's
    /// `mannwhitneyu(canary, baseline, method="asymptotic")`.
    pub p_value: f64,
}

/// Both samples, sorted, ready for repeated evaluation of the rank statistic.
#[derive(Debug, Clone)]
pub struct Samples {
    x: Vec<f64>,
    y: Vec<f64>,
}

/// The rank-sum statistic at one shift: `dz` (the canary's rank sum minus its mean under
/// the null) and its standard deviation with the tie correction.
#[derive(Debug, Clone, Copy)]
struct Statistic {
    dz: f64,
    sigma: f64,
}

impl Samples {
    /// `canary` is Kayenta's experiment (R's `x`), `baseline` its control (`y`).
    pub fn new(canary: &[f64], baseline: &[f64]) -> Result<Samples, MannWhitneyError> {
        if canary.is_empty() || baseline.is_empty() {
            return Err(MannWhitneyError::Empty);
        }
        if canary.iter().chain(baseline).any(|v| !v.is_finite()) {
            return Err(MannWhitneyError::NotFinite);
        }
        let mut x = canary.to_vec();
        let mut y = baseline.to_vec();
        x.sort_by(f64::total_cmp);
        y.sort_by(f64::total_cmp);
        Ok(Samples { x, y })
    }

    fn statistic(&self, mu: f64) -> Statistic {
        let (x, y) = (&self.x, &self.y);
        let (nx, ny) = (x.len() as f64, y.len() as f64);
        let n = nx + ny;
        let (mut i, mut j) = (0usize, 0usize);
        let mut position = 0usize; // values ranked so far
        let mut rank_sum_x = 0.0f64;
        let mut ties = 0.0f64;
        while i < x.len() || j < y.len() {
            // The smallest value not yet ranked, and every value equal to it.
            let next_x = x.get(i).map(|v| v - mu);
            let next_y = y.get(j).copied();
            let v = match (next_x, next_y) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => unreachable!("the loop condition"),
            };
            let mut in_x = 0usize;
            while i < x.len() && x[i] - mu == v {
                in_x += 1;
                i += 1;
            }
            let mut in_y = 0usize;
            while j < y.len() && y[j] == v {
                in_y += 1;
                j += 1;
            }
            let t = (in_x + in_y) as f64;
            // Tied values share the mean of the ranks they span (1-based).
            let average_rank = position as f64 + 1.0 + (t - 1.0) / 2.0;
            rank_sum_x += in_x as f64 * average_rank;
            ties += t * t * t - t;
            position += in_x + in_y;
        }
        let dz = rank_sum_x - nx * (nx + 1.0) / 2.0 - nx * ny / 2.0;
        let sigma = ((nx * ny / 12.0) * ((n + 1.0) - ties / (n * (n - 1.0)))).sqrt();
        Statistic { dz, sigma }
    }

    /// Kayenta's `wilcoxonDiff` (R's `wdiff`): `(dz - sign(dz)/2) / sigma - zq`.
    pub fn diff(&self, mu: f64, zq: f64) -> Result<f64, MannWhitneyError> {
        let s = self.statistic(mu);
        if s.sigma == 0.0 || s.sigma.is_nan() {
            return Err(MannWhitneyError::AllTied);
        }
        let correction = if s.dz > 0.0 {
            0.5
        } else if s.dz < 0.0 {
            -0.5
        } else {
            0.0
        };
        Ok((s.dz - correction) / s.sigma - zq)
    }

    /// The range searched for every root: `[min x - max y, max x - min y]`.
    pub fn range(&self) -> (f64, f64) {
        let (x, y) = (&self.x, &self.y);
        (x[0] - y[y.len() - 1], x[x.len() - 1] - y[0])
    }

    /// R's `root(zq)` inside `wilcox.test`: an end of the range when `f` does not change
    /// sign over it, otherwise `uniroot`'s answer.
    fn root(&self, zq: f64) -> Result<f64, MannWhitneyError> {
        let (lo, hi) = self.range();
        if !lo.is_finite() || !hi.is_finite() {
            return Err(MannWhitneyError::NotFinite);
        }
        let f_lo = self.diff(lo, zq)?;
        let f_hi = self.diff(hi, zq)?;
        if f_lo <= 0.0 {
            return Ok(lo);
        }
        if f_hi >= 0.0 {
            return Ok(hi);
        }
        zeroin(
            lo,
            hi,
            f_lo,
            f_hi,
            |mu| self.diff(mu, zq),
            ROOT_TOLERANCE,
            ROOT_MAX_ITERATIONS,
        )
    }

    /// The two-sided asymptotic p-value with continuity correction, as scipy computes it:
    /// `z = (|U - nm/2| - 1/2) / sigma`, `p = min(1, 2 P(Z > z))`.
    pub fn p_value(&self) -> Result<f64, MannWhitneyError> {
        let s = self.statistic(0.0);
        if s.sigma == 0.0 || s.sigma.is_nan() {
            return Err(MannWhitneyError::AllTied);
        }
        let z = (s.dz.abs() - 0.5) / s.sigma;
        Ok(if z <= 0.0 {
            1.0
        } else {
            super::normal::two_sided_p(z)
        })
    }

    /// The canary's rank sum (ties averaged), for the common-language effect size.
    pub fn canary_rank_sum(&self) -> f64 {
        let s = self.statistic(0.0);
        let (nx, ny) = (self.x.len() as f64, self.y.len() as f64);
        s.dz + nx * (nx + 1.0) / 2.0 + nx * ny / 2.0
    }

    pub fn canary_len(&self) -> usize {
        self.x.len()
    }

    pub fn baseline_len(&self) -> usize {
        self.y.len()
    }
}

/// Runs the test at `confidence` (0.98 means a 98 % interval).
pub fn test(
    canary: &[f64],
    baseline: &[f64],
    confidence: f64,
) -> Result<MannWhitneyResult, MannWhitneyError> {
    let samples = Samples::new(canary, baseline)?;
    test_samples(&samples, confidence)
}

/// [`test`] on samples already prepared.
pub fn test_samples(
    samples: &Samples,
    confidence: f64,
) -> Result<MannWhitneyResult, MannWhitneyError> {
    let alpha = 1.0 - confidence;
    // R: qnorm(alpha/2, lower.tail = FALSE), a positive number.
    let z = -super::normal::quantile(alpha / 2.0);
    let lower = samples.root(z)?;
    let upper = samples.root(-z)?;
    let estimate = samples.root(0.0)?;
    let p_value = samples.p_value()?;
    Ok(MannWhitneyResult {
        lower,
        upper,
        estimate,
        p_value,
    })
}

/// R's `R_zeroin2` (Brent's method, from `zeroin.c`), step for step, so the roots match
/// R's and Kayenta's to the last bit the tolerance lets through. `fa` and `fb` are
/// `f(ax)` and `f(bx)`, of opposite signs.
pub fn zeroin<E>(
    ax: f64,
    bx: f64,
    fa: f64,
    fb: f64,
    mut f: impl FnMut(f64) -> Result<f64, E>,
    tol: f64,
    max_iterations: u32,
) -> Result<f64, E> {
    const EPSILON: f64 = f64::EPSILON;
    let (mut a, mut b) = (ax, bx);
    let (mut fa, mut fb) = (fa, fb);
    let (mut c, mut fc) = (a, fa);
    if fa == 0.0 {
        return Ok(a);
    }
    if fb == 0.0 {
        return Ok(b);
    }
    for _ in 0..=max_iterations {
        let prev_step = b - a;
        if fc.abs() < fb.abs() {
            // Swap so that b is the best approximation.
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol_act = 2.0 * EPSILON * b.abs() + tol / 2.0;
        let mut new_step = (c - b) / 2.0;
        if new_step.abs() <= tol_act || fb == 0.0 {
            return Ok(b);
        }
        // Try interpolation when the previous step was large enough and went the
        // right way.
        if prev_step.abs() >= tol_act && fa.abs() > fb.abs() {
            let cb = c - b;
            let (mut p, mut q);
            if a == c {
                // Two distinct points: linear interpolation.
                let t1 = fb / fa;
                p = cb * t1;
                q = 1.0 - t1;
            } else {
                // Inverse quadratic interpolation.
                let qq = fa / fc;
                let t1 = fb / fc;
                let t2 = fb / fa;
                p = t2 * (cb * qq * (qq - t1) - (b - a) * (t1 - 1.0));
                q = (qq - 1.0) * (t1 - 1.0) * (t2 - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if p < (0.75 * cb * q - (tol_act * q).abs() / 2.0) && p < (prev_step * q / 2.0).abs() {
                new_step = p / q;
            }
        }
        if new_step.abs() < tol_act {
            new_step = if new_step > 0.0 { tol_act } else { -tol_act };
        }
        a = b;
        fa = fb;
        b += new_step;
        fb = f(b)?;
        if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) {
            c = a;
            fc = fa;
        }
    }
    // R gives up and returns the last approximation (with a warning).
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_case_from_r() {
        // wilcox.test(c(10,20,30,40), c(1,2,3,4), conf.int=TRUE, exact=FALSE): the
        // interval [6, 39] (R's own estimate would be 22.5 too).
        let r = test(&[10.0, 20.0, 30.0, 40.0], &[1.0, 2.0, 3.0, 4.0], 0.95).unwrap();
        assert!((r.lower - 6.0).abs() < 1e-4, "{r:?}");
        assert!((r.upper - 39.0).abs() < 1e-4, "{r:?}");
        assert!((r.estimate - 22.5).abs() < 1e-4, "{r:?}");
        // scipy: mannwhitneyu([10,20,30,40],[1,2,3,4], method="asymptotic").pvalue
        assert!(
            (r.p_value - 0.030_382_821_976_577_49).abs() < 1e-12,
            "{r:?}"
        );
    }

    #[test]
    fn ties_are_averaged() {
        let s = Samples::new(&[1.0, 2.0, 2.0], &[2.0, 3.0]).unwrap();
        // Ranks: 1, 3, 3 | 3, 5: canary sum 7.
        assert_eq!(s.canary_rank_sum(), 7.0);
    }

    #[test]
    fn all_tied_is_an_error_not_a_panic() {
        let s = Samples::new(&[1.0], &[1.0]).unwrap();
        assert_eq!(s.diff(0.0, 0.0), Err(MannWhitneyError::AllTied));
        assert_eq!(test(&[], &[1.0], 0.95), Err(MannWhitneyError::Empty));
        assert_eq!(
            test(&[-1e308, 1e308], &[1e308, -1e308], 0.95),
            Err(MannWhitneyError::NotFinite)
        );
    }

    #[test]
    fn zeroin_finds_a_simple_root() {
        let root = zeroin::<()>(0.0, 2.0, -2.0, 2.0, |x| Ok(x * x - 2.0), 1e-10, 1000).unwrap();
        assert!((root - std::f64::consts::SQRT_2).abs() < 1e-9);
    }
}
