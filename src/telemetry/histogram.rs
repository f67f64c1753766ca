//! A Prometheus histogram with Envoy's default buckets, updated with relaxed atomics.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Envoy's default histogram bounds, which Istio's `istio_request_duration_milliseconds`,
/// `istio_request_bytes` and `istio_response_bytes` use (Istio sets none of its own).
pub const ENVOY_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The bounds in thousandths, so observations stay integers: a duration is recorded in
/// microseconds against millisecond bounds, a size in thousandths of a byte.
const BOUNDS_MILLI: [u64; 19] = {
    let mut out = [0u64; 19];
    let mut i = 0;
    while i < 19 {
        out[i] = (ENVOY_BUCKETS[i] * 1000.0) as u64;
        i += 1;
    }
    out
};

/// Counts per bucket (not cumulative: one atomic add per observation), the sum and the
/// count. Rendered cumulative, as Prometheus wants.
#[derive(Debug, Default)]
pub struct Histogram {
    /// One per bound, plus the `+Inf` overflow.
    buckets: [AtomicU64; 20],
    sum_milli: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records a value given in thousandths of the histogram's unit.
    #[inline]
    pub fn observe_milli(&self, value: u64) {
        let i = BOUNDS_MILLI.partition_point(|&b| b < value);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_milli.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a value in the histogram's unit (bytes, say).
    #[inline]
    pub fn observe(&self, value: u64) {
        self.observe_milli(value.saturating_mul(1000));
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        self.sum_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of one series. `labels` is the
    /// series' label list without braces, e.g. `a="1",b="2"`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in ENVOY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[19].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum());
        // The count is read last but the buckets may have moved meanwhile; report the
        // bucket total so `+Inf` and `_count` always agree.
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_le_inclusive_and_cumulative() {
        let h = Histogram::default();
        h.observe_milli(500); // 0.5 exactly: in le="0.5"
        h.observe_milli(501); // just above: le="1"
        h.observe(7); // le="10"
        h.observe(10_000_000); // beyond 3600000: +Inf
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.5\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"10\"} 3\n"), "{out}");
        assert!(
            out.contains("x_bucket{a=\"b\",le=\"3600000\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 4\n"), "{out}");
        assert_eq!(h.sum(), 0.5 + 0.501 + 7.0 + 10_000_000.0);
    }
}
