//! Thread-per-core workers (each worker thread runs its own single-threaded tokio
//! runtime), the drain signal every part of a running weir stops on, and the settings
//! client connections live by.
//!
//! The workers are Envoy's and nginx's model. A connection lives on the worker that accepted it,
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

/// Tells workers, connections and background jobs that shutdown began.
#[derive(Debug, Clone)]
pub struct DrainSignal(tokio::sync::watch::Receiver<bool>);

impl DrainSignal {
    /// The sender (send `true` to start the drain) and the first receiver.
    pub fn new() -> (tokio::sync::watch::Sender<bool>, DrainSignal) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, DrainSignal(rx))
    }

    /// Resolves once the drain began (or its sender is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}

/// What client connections live by, fixed for the life of the process.
#[derive(Debug, Clone, Copy)]
pub struct ListenerSettings {
    /// How long a client connection may sit idle: between HTTP/1.1 requests, or with
    /// no stream open on an HTTP/2 connection.
    pub idle_timeout: std::time::Duration,
    /// How long in-flight requests get to finish once a drain began.
    pub drain_timeout: std::time::Duration,
    /// Timeouts and stream limits per request and connection.
    pub limits: crate::config::Limits,
    /// Client connections open at once (resolved from the file-descriptor limit when
    /// the config does not say).
    pub max_connections: usize,
}
