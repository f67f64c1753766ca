//! Work a synthetic upstream does per request, to play a version that costs more: CPU
//! burnt on its own thread (`--cpu-per-request`), and memory kept for good
//! (`--leak-per-request`, up to a cap), as a leaking release would.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keeps the CPU busy for `d` of wall time on the calling thread.
pub fn burn(d: Duration) {
    if d.is_zero() {
        return;
    }
    let start = Instant::now();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while start.elapsed() < d {
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        black_box(x);
    }
}

/// Memory kept so far, process-wide.
static LEAKED: Mutex<(Vec<Box<[u8]>>, usize)> = Mutex::new((Vec::new(), 0));

/// Keeps `bytes` more (written to, so they are resident), unless `cap` is reached.
/// Returns the total kept.
pub fn leak(bytes: usize, cap: usize) -> usize {
    if bytes == 0 {
        return 0;
    }
    let mut kept = LEAKED.lock().unwrap_or_else(|e| e.into_inner());
    if kept.1 + bytes > cap {
        return kept.1;
    }
    // Every page written: an untouched allocation would not count as resident.
    let block = vec![0xa5u8; bytes].into_boxed_slice();
    kept.1 += block.len();
    kept.0.push(black_box(block));
    kept.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_takes_its_time() {
        let t = Instant::now();
        burn(Duration::from_millis(5));
        assert!(t.elapsed() >= Duration::from_millis(5));
    }

    #[test]
    fn leaks_stop_at_the_cap() {
        let start = leak(1000, 1 << 40);
        assert!(start >= 1000);
        let capped = leak(2000, start + 1000);
        assert_eq!(capped, start, "over the cap: nothing more kept");
    }
}
