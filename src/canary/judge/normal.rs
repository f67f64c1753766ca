//! The standard normal distribution: its upper tail (for p-values) and its quantile
//! function (for the Mann-Whitney interval's z).
//!
//! The tail goes through `erfc` (musl's, via the `libm` crate: within an ulp or two), so
//! p-values keep their relative precision far into the tail instead of losing it to
//! `1 - cdf`. The quantile is Wichura's AS 241 (`PPND16`), the algorithm R's `qnorm`
//! uses, good to about 1e-16.

/// `P(Z > z)` for a standard normal `Z`.
pub fn upper_tail(z: f64) -> f64 {
    0.5 * libm::erfc(z * std::f64::consts::FRAC_1_SQRT_2)
}

/// The two-sided p-value of a z statistic: `2 P(Z > |z|)`, at most 1.
pub fn two_sided_p(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    libm::erfc(z.abs() * std::f64::consts::FRAC_1_SQRT_2).min(1.0)
}

/// The `p` quantile of the standard normal distribution (`qnorm(p)` in R).
// The coefficients are AS 241's as published, digit for digit.
#[allow(clippy::inconsistent_digit_grouping, clippy::excessive_precision)]
pub fn quantile(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        let num = ((((((r * 2509.080_928_730_122_7 + 33430.575_583_588_128) * r
            + 67265.770_927_008_7)
            * r
            + 45921.953_931_549_87)
            * r
            + 13731.693_765_509_461)
            * r
            + 1971.590_950_306_551_4)
            * r
            + 133.141_667_891_784_38)
            * r
            + 3.387_132_872_796_366_5;
        let den = ((((((r * 5226.495_278_852_546 + 28729.085_735_721_943) * r
            + 39307.895_800_092_71)
            * r
            + 21213.794_301_586_596)
            * r
            + 5394.196_021_424_751)
            * r
            + 687.187_007_492_057_9)
            * r
            + 42.313_330_701_600_91)
            * r
            + 1.0;
        return q * num / den;
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let mut r = (-tail.ln()).sqrt();
    let value = if r <= 5.0 {
        r -= 1.6;
        let num = ((((((r * 7.745_450_142_783_414e-4 + 0.022_723_844_989_269_184) * r
            + 0.241_780_725_177_450_6)
            * r
            + 1.270_458_252_452_368_4)
            * r
            + 3.647_848_324_763_204_5)
            * r
            + 5.769_497_221_460_691)
            * r
            + 4.630_337_846_156_545)
            * r
            + 1.423_437_110_749_683_5;
        let den = ((((((r * 1.050_750_071_644_416_8e-9 + 5.475_938_084_995_345e-4) * r
            + 0.015_198_666_563_616_457)
            * r
            + 0.148_103_976_427_480_08)
            * r
            + 0.689_767_334_985_1)
            * r
            + 1.676_384_830_183_803_8)
            * r
            + 2.053_191_626_637_759)
            * r
            + 1.0;
        num / den
    } else {
        r -= 5.0;
        let num = ((((((r * 2.010_334_399_292_288e-7 + 2.711_555_568_743_487_6e-5) * r
            + 0.001_242_660_947_388_078_4)
            * r
            + 0.026_532_189_526_576_124)
            * r
            + 0.296_560_571_828_504_9)
            * r
            + 1.784_826_539_917_291_3)
            * r
            + 5.463_784_911_164_114)
            * r
            + 6.657_904_643_501_103;
        let den = ((((((r * 2.044_263_103_389_939_8e-15 + 1.421_511_758_316_446e-7) * r
            + 1.846_318_317_510_054_8e-5)
            * r
            + 7.868_691_311_456_133e-4)
            * r
            + 0.014_875_361_290_850_615)
            * r
            + 0.136_929_880_922_735_8)
            * r
            + 0.599_832_206_555_888)
            * r
            + 1.0;
        num / den
    };
    if q < 0.0 { -value } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_r() {
        // qnorm() in R, printed with 17 digits.
        for (p, want) in [
            (0.975, 1.959_963_984_540_054),
            (0.01, -2.326_347_874_040_841),
            (0.99, 2.326_347_874_040_841),
            (0.5, 0.0),
            (1e-10, -6.361_340_902_404_056),
            (0.2, -0.841_621_233_572_914_2),
        ] {
            let got = quantile(p);
            assert!(
                (got - want).abs() <= 1e-14 * want.abs().max(1.0),
                "qnorm({p}) = {got}, want {want}"
            );
        }
        assert_eq!(quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(quantile(1.0), f64::INFINITY);
    }

    #[test]
    fn tails() {
        assert!((upper_tail(1.959_963_984_540_054) - 0.025).abs() < 1e-16);
        assert_eq!(two_sided_p(-0.3), two_sided_p(0.3));
        // 2 * pnorm(-10) in R: 1.523970604832105e-23.
        let p = two_sided_p(10.0);
        assert!((p / 1.523_970_604_832_105e-23 - 1.0).abs() < 1e-12, "{p}");
    }
}
