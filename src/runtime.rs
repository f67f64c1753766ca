//! Thread-per-core workers: each worker thread runs its own single-threaded tokio runtime.
//!
//! This is Envoy's and nginx's model. A connection lives on the worker that accepted it,
//! together with the upstream connections its requests use, so the request path needs
//! no cross-thread wake-ups and the per-worker pools need no contended locks.

use std::cell::Cell;
use std::io;
use std::thread::JoinHandle;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The index of the worker running on this thread, or `None` off the workers
/// (the admin thread, tests).
#[inline]
pub fn worker_id() -> Option<usize> {
    let id = WORKER.with(Cell::get);
    (id != usize::MAX).then_some(id)
}

/// How many workers to run when the config does not say: one per CPU this process may
/// use (this honours `taskset` and cgroup CPU affinity).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts worker `id` on a new thread with its own runtime, running `main` to completion.
pub fn spawn_worker<F, Fut>(id: usize, main: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::Builder::new()
        .name(format!("weir-worker-{id}"))
        .spawn(move || {
            WORKER.with(|w| w.set(id));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            rt.block_on(main());
            // Connections still open after the drain are cut here, when the runtime
            // drops their tasks.
        })
}
