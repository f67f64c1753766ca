//! Sub-millisecond sleeps for the synthetic upstream.
//!
//! tokio's timer has a 1 ms resolution and rounds up, which would skew a "3 ms" upstream
//! towards 4 ms and make latency checks meaningless. One timer thread parks until the
//! earliest deadline (the kernel's high-resolution timers keep that within tens of
//! microseconds) and wakes the waiting requests.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

struct Entry {
    deadline: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

struct Timer {
    heap: Mutex<(BinaryHeap<Reverse<Entry>>, u64)>,
    thread: Thread,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<&'static Timer>();
        let handle = std::thread::Builder::new()
            .name("weir-delay".into())
            .spawn(move || {
                let timer = rx.recv().expect("the timer is sent once");
                run(timer);
            })
            .expect("the delay thread starts");
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            heap: Mutex::new((BinaryHeap::new(), 0)),
            thread: handle.thread().clone(),
        }));
        tx.send(timer).expect("the delay thread is waiting");
        timer
    })
}

fn run(timer: &'static Timer) {
    loop {
        let next = {
            let mut guard = timer.heap.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            while guard.0.peek().is_some_and(|Reverse(e)| e.deadline <= now) {
                if let Some(Reverse(e)) = guard.0.pop() {
                    let _ = e.wake.send(());
                }
            }
            guard.0.peek().map(|Reverse(e)| e.deadline)
        };
        match next {
            Some(deadline) => {
                std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()))
            }
            None => std::thread::park(),
        }
    }
}

/// How late sleeps end on average (the kernel's timer slack plus the thread switches
/// back to the waiting task), in nanoseconds. Sleeps aim that much early, so a "10 ms"
/// upstream takes 10 ms as its client sees it, not 10.2.
static LATENESS_NS: AtomicU64 = AtomicU64::new(0);

/// Sleeps for `duration` with sub-millisecond precision.
pub async fn sleep(duration: Duration) {
    if duration.is_zero() {
        return;
    }
    let timer = timer();
    let (tx, rx) = oneshot::channel();
    let start = Instant::now();
    let compensation = Duration::from_nanos(LATENESS_NS.load(Ordering::Relaxed)).min(duration / 2);
    let deadline = start + duration - compensation;
    let earliest = {
        let mut guard = timer.heap.lock().unwrap_or_else(|e| e.into_inner());
        guard.1 += 1;
        let seq = guard.1;
        let earliest = guard
            .0
            .peek()
            .is_none_or(|Reverse(e)| deadline < e.deadline);
        guard.0.push(Reverse(Entry {
            deadline,
            seq,
            wake: tx,
        }));
        earliest
    };
    if earliest {
        timer.thread.unpark();
    }
    let _ = rx.await;
    // Feed the error back: positive when late, negative when early.
    let error = start.elapsed().as_nanos() as i64 - duration.as_nanos() as i64;
    if error.abs() < 2_000_000 {
        let old = LATENESS_NS.load(Ordering::Relaxed) as i64;
        let new = (old + error / 16).clamp(0, 500_000);
        LATENESS_NS.store(new as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_at_least_the_duration_and_not_much_more() {
        for ms in [1u64, 3, 7] {
            let start = Instant::now();
            sleep(Duration::from_millis(ms)).await;
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(ms), "{took:?}");
            // Generous bound: shared CI machines stall; this only catches a broken timer.
            assert!(took < Duration::from_millis(ms + 200), "{took:?}");
        }
    }
}
