//! Exact latency quantiles over a sliding window.
//!
//! Envoy's buckets are too coarse to compare fast services (2 ms and 4 ms land in the
//! same bucket), so each destination also keeps a log-linear histogram in the manner of
//! HdrHistogram: values below 128 µs are counted exactly, larger ones in buckets 1/128 of
//! their power of two wide, so a quantile is off by at most 0.4 % (half a bucket, read
//! at its midpoint). Every bucket is an atomic counter: recording is one relaxed add,
//! with no lock and nothing shared but the counter.
//!
//! The window is a ring of slices, each a twelfth of it. A background tick moves the
//! current slice forward and clears the one after it, so a clear never races a record
//! into the current slice; a quantile reads the current slice and the eleven before it.
//!
//! A slice's counts are added to a cumulative histogram just before it is cleared, on the
//! tick's thread, so [`LatencyWindow::cumulative`] can give every latency since start (for
//! a canary controller that diffs two readings to get exactly one interval's requests)
//! without any extra work when a request is recorded.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Mantissa bits: buckets are 1/2^7 of their octave wide.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Octaves above the exact range: up to 2^47 µs, more than four years.
const OCTAVES: usize = 40;
const BUCKETS: usize = SUB + OCTAVES * SUB;
/// Slices read as the window.
const WINDOW_SLICES: usize = 12;
/// Plus the one being cleared, ahead of the current one.
const RING: usize = WINDOW_SLICES + 1;

fn index(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros(); // >= SUB_BITS
    let shift = octave - SUB_BITS;
    let mantissa = ((us >> shift) as usize) & (SUB - 1);
    let i = SUB + (octave - SUB_BITS) as usize * SUB + mantissa;
    i.min(BUCKETS - 1)
}

/// The first and last value of bucket `i`, in µs (both inclusive).
fn bounds(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, i as u64);
    }
    let octave = (i - SUB) / SUB + SUB_BITS as usize;
    let mantissa = (i - SUB) % SUB;
    let shift = octave - SUB_BITS as usize;
    let low = ((SUB + mantissa) as u64) << shift;
    (low, low + (1u64 << shift) - 1)
}

/// The midpoint of bucket `i`, in µs.
fn value(i: usize) -> f64 {
    if i < SUB {
        return i as f64;
    }
    let octave = (i - SUB) / SUB + SUB_BITS as usize;
    let mantissa = (i - SUB) % SUB;
    let shift = octave - SUB_BITS as usize;
    let low = ((SUB + mantissa) as u64) << shift;
    let width = 1u64 << shift;
    low as f64 + (width as f64 - 1.0) / 2.0
}

struct Slice {
    counts: Box<[AtomicU32]>,
}

impl Slice {
    fn new() -> Self {
        Slice {
            counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn clear(&self) {
        for c in self.counts.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Latencies of one destination over the last window.
pub struct LatencyWindow {
    /// Allocated on the first record: a destination that never gets traffic (a
    /// prerelease, a retired version) costs no memory.
    slices: OnceLock<Box<[Slice]>>,
    current: AtomicUsize,
    slice_length: Duration,
    /// Counts of the slices already cleared, per bucket. Rotation and
    /// [`LatencyWindow::cumulative`] take this lock, so a reading never sees a slice's
    /// counts both here and in the ring, nor in neither; recording never takes it.
    retired: Mutex<Vec<u64>>,
}

impl std::fmt::Debug for LatencyWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyWindow")
            .field("slice_length", &self.slice_length)
            .finish_non_exhaustive()
    }
}

impl LatencyWindow {
    pub fn new(window: Duration) -> Self {
        LatencyWindow {
            slices: OnceLock::new(),
            current: AtomicUsize::new(0),
            slice_length: window / WINDOW_SLICES as u32,
            retired: Mutex::new(Vec::new()),
        }
    }

    /// How often [`LatencyWindow::rotate`] must run.
    pub fn slice_length(&self) -> Duration {
        self.slice_length
    }

    #[inline]
    pub fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let slices = self
            .slices
            .get_or_init(|| (0..RING).map(|_| Slice::new()).collect());
        let slice = self.current.load(Ordering::Relaxed);
        slices[slice].counts[index(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Moves the window on by one slice: the oldest slice falls out.
    pub fn rotate(&self) {
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let next = (self.current.load(Ordering::Relaxed) + 1) % RING;
        // `next` was cleared one rotation ago; clear the slice after it for the next
        // rotation, while nobody records into it, keeping its counts in `retired`.
        if let Some(slices) = self.slices.get() {
            let old = &slices[(next + 1) % RING];
            if retired.is_empty() {
                retired.resize(BUCKETS, 0);
            }
            for (r, c) in retired.iter_mut().zip(old.counts.iter()) {
                *r += u64::from(c.load(Ordering::Relaxed));
            }
            old.clear();
        }
        self.current.store(next, Ordering::Relaxed);
    }

    /// Every latency recorded since start, as `(first µs, last µs, count)` per non-empty
    /// bucket, in increasing order. Counts only grow from one reading to the next.
    pub fn cumulative(&self) -> Vec<(u64, u64, u64)> {
        let retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slices) = self.slices.get() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for i in 0..BUCKETS {
            let mut n = retired.get(i).copied().unwrap_or(0);
            for slice in slices.iter() {
                n += u64::from(slice.counts[i].load(Ordering::Relaxed));
            }
            if n > 0 {
                let (lo, hi) = bounds(i);
                out.push((lo, hi, n));
            }
        }
        out
    }

    /// Quantiles (each in `[0, 1]`) over the window in milliseconds, and the number of
    /// samples; `None` per quantile when the window is empty.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> ([Option<f64>; N], u64) {
        let mut out = [None; N];
        let Some(slices) = self.slices.get() else {
            return (out, 0);
        };
        let current = self.current.load(Ordering::Relaxed);
        let mut merged = vec![0u64; BUCKETS];
        for back in 0..WINDOW_SLICES {
            let slice = &slices[(current + RING - back) % RING];
            for (m, c) in merged.iter_mut().zip(slice.counts.iter()) {
                *m += u64::from(c.load(Ordering::Relaxed));
            }
        }
        let total: u64 = merged.iter().sum();
        if total == 0 {
            return (out, 0);
        }
        for (slot, q) in out.iter_mut().zip(qs) {
            // The smallest value with at least q of the samples at or below it.
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (i, &c) in merged.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    *slot = Some(value(i) / 1000.0);
                    break;
                }
            }
        }
        (out, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values_within_half_a_percent() {
        for us in [
            0u64,
            1,
            127,
            128,
            129,
            1000,
            2_345,
            65_432,
            1_000_000,
            987_654_321,
        ] {
            let v = value(index(us));
            let err = (v - us as f64).abs() / (us.max(1) as f64);
            assert!(err <= 0.004, "{us} -> {v} ({err})");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_sample() {
        let w = LatencyWindow::new(Duration::from_secs(60));
        for ms in 1..=100u64 {
            w.record(Duration::from_millis(ms));
        }
        let ([p50, p95, p99], n) = w.quantiles([0.5, 0.95, 0.99]);
        assert_eq!(n, 100);
        let close = |got: Option<f64>, want: f64| (got.unwrap() - want).abs() / want < 0.01;
        assert!(close(p50, 50.0), "{p50:?}");
        assert!(close(p95, 95.0), "{p95:?}");
        assert!(close(p99, 99.0), "{p99:?}");
    }

    #[test]
    fn cumulative_keeps_what_slid_out() {
        let w = LatencyWindow::new(Duration::from_secs(12));
        assert!(w.cumulative().is_empty());
        w.record(Duration::from_micros(100));
        w.record(Duration::from_micros(100));
        w.record(Duration::from_millis(5));
        for _ in 0..3 * RING {
            w.rotate();
        }
        assert_eq!(w.quantiles([0.5]).1, 0, "the window is empty");
        w.record(Duration::from_micros(100));
        let c = w.cumulative();
        assert_eq!(c[0], (100, 100, 3));
        assert_eq!(c.len(), 2);
        let (lo, hi, n) = c[1];
        assert!(lo <= 5000 && 5000 <= hi && n == 1, "{c:?}");
        // The midpoint read from the bounds is the value quantiles report.
        assert_eq!((lo + hi) as f64 / 2.0, value(index(5000)));
    }

    #[test]
    fn old_slices_slide_out() {
        let w = LatencyWindow::new(Duration::from_secs(12));
        w.record(Duration::from_millis(500));
        for _ in 0..WINDOW_SLICES - 1 {
            w.rotate();
        }
        assert_eq!(w.quantiles([0.5]).1, 1, "still inside the window");
        w.rotate();
        assert_eq!(w.quantiles([0.5]), ([None], 0), "slid out");
        w.record(Duration::from_millis(3));
        let ([p], n) = w.quantiles([0.5]);
        assert_eq!(n, 1);
        assert!((p.unwrap() - 3.0).abs() < 0.03);
    }
}
