//! Fisher's exact test on a 2x2 table of counts, as scipy's `fisher_exact` computes it,
//! and Newcombe's interval for a difference of two proportions.
//!
//! The table is `[[a, b], [c, d]]`: row one the canary's successes and failures, row two
//! the baseline's. With the margins fixed, `a` follows a hypergeometric distribution.
//! Counts reach millions, so probabilities are built in log space from `lgamma` and
//! summed from the term nearest the centre outwards with the ratio of neighbouring terms,
//! which keeps the relative error near 1e-9 where `exp(lgamma sums)` alone would not.

use super::normal;

/// Which way the test looks, as scipy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    /// The canary's odds of success are lower than the baseline's.
    Less,
    /// The canary's odds of success are higher.
    Greater,
    TwoSided,
}

/// A hypergeometric distribution: `n` draws from `total` items of which `good` are good.
#[derive(Debug, Clone, Copy)]
struct Hypergeometric {
    total: u64,
    good: u64,
    draws: u64,
}

fn ln_choose(n: u64, k: u64) -> f64 {
    let (n, k) = (n as f64, k as f64);
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

impl Hypergeometric {
    fn support(&self) -> (u64, u64) {
        let lo = self.draws.saturating_sub(self.total - self.good);
        let hi = self.draws.min(self.good);
        (lo, hi)
    }

    /// `ln P(X = x)`; `-inf` outside the support.
    fn ln_pmf(&self, x: u64) -> f64 {
        let (lo, hi) = self.support();
        if x < lo || x > hi {
            return f64::NEG_INFINITY;
        }
        // Added in this order so that P(x) and its mirror image in a table with equal
        // rows are the same two terms summed: exact symmetry, which the two-sided test's
        // comparison of probabilities relies on.
        ln_choose(self.good, x) + ln_choose(self.total - self.good, self.draws - x)
            - ln_choose(self.total, self.draws)
    }

    fn pmf(&self, x: u64) -> f64 {
        self.ln_pmf(x).exp()
    }

    /// The most likely value: `floor((n + 1)(K + 1) / (N + 2))`.
    fn mode(&self) -> u64 {
        let m = (self.draws as f64 + 1.0) * (self.good as f64 + 1.0) / (self.total as f64 + 2.0);
        let (lo, hi) = self.support();
        (m as u64).clamp(lo, hi)
    }

    /// `P(X <= x)`. Tails are summed outwards from their inner end, where terms only
    /// shrink; a sum across the mode is one minus the other tail.
    fn cdf(&self, x: u64) -> f64 {
        let (lo, hi) = self.support();
        if x < lo {
            return 0.0;
        }
        if x >= hi {
            return 1.0;
        }
        if x < self.mode() {
            self.sum_down(x, lo)
        } else {
            1.0 - self.sum_up(x + 1, hi)
        }
    }

    /// `P(X > x)`.
    fn sf(&self, x: u64) -> f64 {
        let (lo, hi) = self.support();
        if x >= hi {
            return 0.0;
        }
        if x < lo {
            return 1.0;
        }
        if x + 1 > self.mode() {
            self.sum_up(x + 1, hi)
        } else {
            1.0 - self.sum_down(x, lo)
        }
    }

    /// `sum P(X = k)` for `k` from `from` down to `lo`, from `P(from)` by the ratio
    /// `P(k-1)/P(k) = k (N-K-n+k) / ((K-k+1)(n-k+1))`, stopping once terms no longer
    /// change the sum. `from` is at or below the mode, so the terms only shrink.
    fn sum_down(&self, from: u64, lo: u64) -> f64 {
        let (n_total, good, draws) = (self.total as f64, self.good as f64, self.draws as f64);
        let ln_first = self.ln_pmf(from);
        let mut term = 1.0f64;
        let mut sum = 1.0f64;
        let mut k = from;
        while k > lo {
            let kf = k as f64;
            term *= kf * (n_total - good - draws + kf) / ((good - kf + 1.0) * (draws - kf + 1.0));
            sum += term;
            k -= 1;
            if term < sum * 1e-17 && term < 1.0 {
                break;
            }
        }
        (ln_first + sum.ln()).exp().min(1.0)
    }

    /// `sum P(X = k)` for `k` from `from` (above the mode) up to `hi`.
    fn sum_up(&self, from: u64, hi: u64) -> f64 {
        let (n_total, good, draws) = (self.total as f64, self.good as f64, self.draws as f64);
        let ln_first = self.ln_pmf(from);
        let mut term = 1.0f64;
        let mut sum = 1.0f64;
        let mut k = from;
        while k < hi {
            let kf = k as f64;
            // P(k+1)/P(k) = (K-k)(n-k) / ((k+1)(N-K-n+k+1))
            term *= (good - kf) * (draws - kf) / ((kf + 1.0) * (n_total - good - draws + kf + 1.0));
            sum += term;
            k += 1;
            if term < sum * 1e-17 && term < 1.0 {
                break;
            }
        }
        (ln_first + sum.ln()).exp().min(1.0)
    }
}

/// scipy's `_binary_search_for_binom_tst`: the `i` in `[lo, hi]` with
/// `a(i) <= d < a(i+1)`, for `a` ascending on that range.
fn binary_search(a: impl Fn(u64) -> f64, d: f64, lo: u64, hi: u64) -> i64 {
    let (mut lo, mut hi) = (lo as i64, hi as i64);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let v = a(mid.max(0) as u64);
        if v < d {
            lo = mid + 1;
        } else if v > d {
            hi = mid - 1;
        } else {
            return mid;
        }
    }
    if a(lo.max(0) as u64) <= d { lo } else { lo - 1 }
}

/// The p-value of Fisher's exact test on `[[a, b], [c, d]]`, as scipy's
/// `fisher_exact(table, alternative)` (1.17) computes it.
pub fn fisher_exact(a: u64, b: u64, c: u64, d: u64, alternative: Alternative) -> f64 {
    // A row or a column with nothing in it: nothing to test.
    if a + b == 0 || c + d == 0 || a + c == 0 || b + d == 0 {
        return 1.0;
    }
    let n1 = a + b;
    let n2 = c + d;
    let n = a + c;
    let h = Hypergeometric {
        total: n1 + n2,
        good: n1,
        draws: n,
    };
    let p = match alternative {
        Alternative::Less => h.cdf(a),
        Alternative::Greater => Hypergeometric {
            total: n1 + n2,
            good: n1,
            draws: b + d,
        }
        .cdf(b),
        Alternative::TwoSided => {
            // scipy computes the mode in floating point and truncates.
            let mode = ((n as f64 + 1.0) * (n1 as f64 + 1.0) / ((n1 + n2) as f64 + 2.0)) as u64;
            let p_exact = h.pmf(a);
            let p_mode = h.pmf(mode);
            let epsilon = 1e-14;
            let gamma = 1.0 + epsilon;
            if (p_exact - p_mode).abs() / p_exact.max(p_mode) <= epsilon {
                return 1.0;
            }
            if a < mode {
                let p_lower = h.cdf(a);
                if h.pmf(n) > p_exact * gamma {
                    return p_lower.min(1.0);
                }
                let guess = binary_search(|x| -h.pmf(x), -p_exact * gamma, mode, n);
                p_lower + h.sf(guess.max(0) as u64)
            } else {
                let p_upper = if a == 0 { 1.0 } else { h.sf(a - 1) };
                if h.pmf(0) > p_exact * gamma {
                    return p_upper.min(1.0);
                }
                let guess = binary_search(|x| h.pmf(x), p_exact * gamma, 0, mode);
                if guess < 0 {
                    p_upper
                } else {
                    p_upper + h.cdf(guess as u64)
                }
            }
        }
    };
    p.min(1.0)
}

/// Wilson's score interval for one proportion.
fn wilson(successes: u64, total: u64, z: f64) -> (f64, f64) {
    let n = total as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Newcombe's hybrid score interval (his method 10) for `p1 - p2` at `confidence`:
/// well behaved at rates of 0 and 1, where the Wald interval collapses. `None` when a
/// side has no trials.
pub fn difference_interval(
    s1: u64,
    n1: u64,
    s2: u64,
    n2: u64,
    confidence: f64,
) -> Option<(f64, f64)> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let z = normal::quantile(1.0 - (1.0 - confidence) / 2.0);
    let (p1, p2) = (s1 as f64 / n1 as f64, s2 as f64 / n2 as f64);
    let (l1, u1) = wilson(s1, n1, z);
    let (l2, u2) = wilson(s2, n2, z);
    let d = p1 - p2;
    let lower = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let upper = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    Some((lower, upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs()
    }

    #[test]
    fn the_lady_tasting_tea() {
        // scipy.stats.fisher_exact([[3, 1], [1, 3]]) == 0.48571428571428527 (two-sided),
        // 'greater' 0.24285714285714288.
        let two = fisher_exact(3, 1, 1, 3, Alternative::TwoSided);
        assert!(close(two, 0.485_714_285_714_285_65, 1e-12), "{two}");
        let greater = fisher_exact(3, 1, 1, 3, Alternative::Greater);
        assert!(close(greater, 0.242_857_142_857_142_83, 1e-12), "{greater}");
        let less = fisher_exact(3, 1, 1, 3, Alternative::Less);
        assert!(close(less, 0.985_714_285_714_285_8, 1e-12), "{less}");
    }

    #[test]
    fn empty_margins_give_one() {
        assert_eq!(fisher_exact(0, 0, 5, 5, Alternative::TwoSided), 1.0);
        assert_eq!(fisher_exact(0, 5, 0, 5, Alternative::Less), 1.0);
    }

    #[test]
    fn newcombe_contains_the_difference() {
        let (lo, hi) = difference_interval(9890, 10000, 9950, 10000, 0.98).unwrap();
        assert!(lo < -0.006 && -0.006 < hi && hi < 0.0, "{lo} {hi}");
        let (lo, hi) = difference_interval(0, 100, 0, 100, 0.98).unwrap();
        assert!(lo < 0.0 && hi > 0.0);
        assert!(difference_interval(1, 0, 1, 1, 0.98).is_none());
    }
}
