//! A fast per-thread random source for the weighted pick and request ids.
//!
//! The split is not a security boundary, so a small non-cryptographic generator
//! (Xoshiro256++, seeded once per thread from the OS) is the right cost: about a
//! nanosecond, no atomics, no locks.

use std::cell::RefCell;

use rand::Rng;
use rand::rngs::SmallRng;

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(rand::make_rng());
}

/// A uniformly distributed `u64`.
#[inline]
pub fn next_u64() -> u64 {
    RNG.with(|rng| rng.borrow_mut().next_u64())
}

/// A uniformly distributed float in `[0, 1)`.
#[inline]
pub fn next_f64() -> f64 {
    // 53 random bits, the precision of an f64 mantissa.
    (next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}
