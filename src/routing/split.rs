//! The weighted split: a destination gets `weight / sum of weights` of a route's requests.

/// Why a split cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the split is empty")]
    Empty,
    #[error("all weights are zero")]
    AllZero,
}

/// Relative integer weights over a set of choices, as Istio's route weights.
///
/// Weight-0 entries are kept for display but can never be picked. A split with one
/// non-zero entry needs no randomness. Construction refuses an empty or all-zero
/// split, so a built split can always pick.
#[derive(Debug, Clone)]
pub struct WeightedSplit<T> {
    entries: Box<[(T, u32)]>,
    /// Indexes of the pickable entries with their cumulative upper bounds.
    ranges: Box<[(u32, u64)]>,
    total: u64,
}

impl<T> WeightedSplit<T> {
    pub fn new(entries: impl IntoIterator<Item = (T, u32)>) -> Result<Self, SplitError> {
        let entries: Box<[(T, u32)]> = entries.into_iter().collect();
        if entries.is_empty() {
            return Err(SplitError::Empty);
        }
        let mut total = 0u64;
        let mut ranges = Vec::with_capacity(entries.len());
        for (i, (_, weight)) in entries.iter().enumerate() {
            if *weight > 0 {
                total += u64::from(*weight);
                ranges.push((i as u32, total));
            }
        }
        if total == 0 {
            return Err(SplitError::AllZero);
        }
        Ok(WeightedSplit {
            entries,
            ranges: ranges.into(),
            total,
        })
    }

    /// Picks with a uniformly random `u64` from the caller.
    #[inline]
    pub fn pick_with(&self, random: u64) -> &T {
        if let [(only, _)] = &*self.ranges {
            return &self.entries[*only as usize].0;
        }
        // Map the random word onto [0, total) by multiply-shift: no division, and a bias
        // below total / 2^64, which is nothing for weights that fit in u32s.
        let x = ((u128::from(random) * u128::from(self.total)) >> 64) as u64;
        let i = self
            .ranges
            .iter()
            .find(|(_, upper)| x < *upper)
            .map_or(self.ranges[self.ranges.len() - 1].0, |(i, _)| *i);
        &self.entries[i as usize].0
    }

    /// Picks with the thread's random source.
    #[inline]
    pub fn pick(&self) -> &T {
        self.pick_with(super::random::next_u64())
    }

    /// Every entry with its weight, zero weights included, in the order given.
    pub fn entries(&self) -> &[(T, u32)] {
        &self.entries
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_and_all_zero() {
        assert_eq!(WeightedSplit::<u8>::new([]).unwrap_err(), SplitError::Empty);
        assert_eq!(
            WeightedSplit::new([("a", 0), ("b", 0)]).unwrap_err(),
            SplitError::AllZero
        );
    }

    #[test]
    fn single_and_zero_weights() {
        let s = WeightedSplit::new([("a", 0), ("b", 5), ("c", 0)]).unwrap();
        for r in [0, 1, u64::MAX / 2, u64::MAX] {
            assert_eq!(*s.pick_with(r), "b");
        }
    }

    #[test]
    fn boundaries_follow_cumulative_weights() {
        let s = WeightedSplit::new([("release", 80), ("baseline", 10), ("canary", 10)]).unwrap();
        assert_eq!(*s.pick_with(0), "release");
        // 0.79 of the range is release, 0.85 baseline, 0.95 canary.
        let at = |f: f64| (f * u64::MAX as f64) as u64;
        assert_eq!(*s.pick_with(at(0.79)), "release");
        assert_eq!(*s.pick_with(at(0.85)), "baseline");
        assert_eq!(*s.pick_with(at(0.95)), "canary");
        assert_eq!(*s.pick_with(u64::MAX), "canary");
    }

    #[test]
    fn shares_converge_to_weights() {
        let s = WeightedSplit::new([(0usize, 80), (1, 10), (2, 10)]).unwrap();
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[*s.pick()] += 1;
        }
        let share = |i: usize| f64::from(counts[i]) / 100_000.0;
        assert!((share(0) - 0.8).abs() < 0.01, "{counts:?}");
        assert!((share(1) - 0.1).abs() < 0.01, "{counts:?}");
        assert!((share(2) - 0.1).abs() < 0.01, "{counts:?}");
    }
}
