//! Starting and stopping weir: binds the listeners, starts one worker per core and the
//! control thread (the admin API, config and certificate reloads, and the background
//! jobs: latency-window rotation and the idle-connection sweep), and drains everything
//! on shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use socket2::{Domain, Socket, Type};
use tokio::sync::watch;

use crate::admin::{self, AdminAuth};
use crate::config::Config;
use crate::listener;
use crate::reload::{self, ConfigReloader, TlsReloader};
use crate::runtime::{self, DrainSignal, ListenerSettings};
use crate::state::Shared;
use crate::tls::{ServerTls, TlsError};

/// How often idle pooled upstream connections are checked for timeout or close.
const IDLE_SWEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Why weir could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot listen on {addr} (the config's `{key}`): {source}; is another process using that port?"
    )]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(#[source] io::Error),
    #[error("{0}")]
    Tls(#[from] TlsError),
}

/// How a server is run, beyond its config.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Watch this config file and reload it on change (and on SIGHUP when `sighup`).
    pub config_file: Option<std::path::PathBuf>,
    /// Reload the config file on SIGHUP (a process-wide signal handler).
    pub sighup: bool,
    /// Worker threads, over the config's `workers` (`weir run --workers`). Kept out of
    /// the config, so a reload compares the file with the file.
    pub workers: Option<usize>,
}

/// A running weir: workers serving the data plane, and the admin listener.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    listen_addr: SocketAddr,
    admin_addr: SocketAddr,
    drain: watch::Sender<bool>,
    admin_stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    admin: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds both listeners and starts serving, without watching any file.
    pub fn start(config: Config) -> Result<Server, StartError> {
        Server::start_with(config, ServerOptions::default())
    }

    /// Binds both listeners and starts serving. Returns once they accept connections.
    pub fn start_with(config: Config, options: ServerOptions) -> Result<Server, StartError> {
        let workers = options
            .workers
            .or(config.workers)
            .unwrap_or_else(runtime::default_workers);
        let listener = bind(config.listen, "listen")?;
        let admin_listener = bind(config.admin, "admin")?;
        let listen_addr = listener.local_addr().map_err(|source| StartError::Bind {
            key: "listen",
            addr: config.listen,
            source,
        })?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                key: "admin",
                addr: config.admin,
                source,
            })?;
        let max_connections = max_connections(config.limits.max_connections);
        let settings = ListenerSettings {
            idle_timeout: config.idle_timeout,
            drain_timeout: config.drain_timeout,
            limits: config.limits,
            max_connections,
        };
        let (routes, destinations) = (config.routes.len(), config.destinations.len());
        let auth = AdminAuth {
            token_file: config.admin_token_file.clone(),
        };
        let text_hash = config.text_hash;
        let server_tls = match &config.tls {
            Some(settings) => Some(Arc::new(ServerTls::load(settings.clone())?)),
            None => None,
        };
        let tls_mode = config.tls.as_ref().map_or("off", |t| t.mode.as_str());
        let shared = Arc::new(Shared::new(config, workers)?);
        let (drain, drain_signal) = DrainSignal::new();
        let (admin_stop, admin_signal) = DrainSignal::new();

        let mut handles = Vec::with_capacity(workers);
        for id in 0..workers {
            let listener = listener.try_clone().map_err(StartError::Thread)?;
            let (shared, drain_signal) = (shared.clone(), drain_signal.clone());
            let tls = server_tls.clone();
            let handle = runtime::spawn_worker(id, move || {
                listener::run(listener, shared, drain_signal, settings, tls)
            })
            .map_err(StartError::Thread)?;
            handles.push(handle);
        }
        // The control plane (admin API, config reload) runs on a thread of its own, so
        // it answers even when the workers are saturated.
        let admin = {
            let shared = shared.clone();
            let reloader = options
                .config_file
                .map(|path| ConfigReloader::new(path, shared.clone(), text_hash));
            let sighup = options.sighup;
            let tls_reloader = TlsReloader::new(server_tls, shared.clone());
            std::thread::Builder::new()
                .name("weir-control".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime builds");
                    rt.block_on(async move {
                        background_jobs(&shared, &admin_signal);
                        tokio::spawn(reload::run(
                            reloader,
                            tls_reloader,
                            sighup,
                            admin_signal.clone(),
                        ));
                        admin::serve(admin_listener, shared, auth, admin_signal).await;
                    });
                })
                .map_err(StartError::Thread)?
        };
        tracing::info!(
            listen = %listen_addr,
            admin = %admin_addr,
            workers,
            routes,
            destinations,
            tls = tls_mode,
            max_connections,
            "weir is serving"
        );
        Ok(Server {
            shared,
            listen_addr,
            admin_addr,
            drain,
            admin_stop,
            workers: handles,
            admin: Some(admin),
        })
    }

    /// The data-plane address (useful with port 0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Graceful shutdown: readiness fails, listeners stop accepting, HTTP/2 clients get
    /// GOAWAY, HTTP/1.1 clients `Connection: close`, in-flight requests get up to the
    /// drain timeout to finish. Blocks until done.
    pub fn shutdown(mut self) {
        tracing::info!("draining");
        self.shared.start_draining();
        let _ = self.drain.send(true);
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
        let _ = self.admin_stop.send(true);
        if let Some(admin) = self.admin.take() {
            let _ = admin.join();
        }
        tracing::info!("drained; exiting");
    }
}

/// File descriptors kept out of the client connections' reach: the admin listener and
/// its clients, config and certificate files, the log.
const FD_RESERVE: u64 = 256;

/// The client connection limit: as configured, or half of what the file-descriptor
/// limit leaves after the reserve (a client connection may hold an upstream one). The
/// soft limit is raised to the hard one first, as nginx's `worker_rlimit_nofile` does.
fn max_connections(configured: Option<usize>) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot read the file-descriptor limit; assuming 1024");
            1024
        }
    };
    let derived = usize::try_from(limit.saturating_sub(FD_RESERVE) / 2)
        .unwrap_or(usize::MAX)
        .max(16);
    match configured {
        Some(n) => {
            if n > derived {
                tracing::warn!(
                    max_connections = n,
                    fd_limit = limit,
                    "max_connections is above what the file-descriptor limit leaves room for; accept may fail with `Too many open files` before it is reached"
                );
            }
            n
        }
        None => derived,
    }
}

/// The periodic jobs of a running weir, on the control thread until `stop`: the
/// latency windows slide, and idle pooled connections that timed out or that their
/// upstream closed are dropped (so none sits in CLOSE_WAIT).
fn background_jobs(shared: &Arc<Shared>, stop: &DrainSignal) {
    let every = |period: std::time::Duration, job: fn(&Shared)| {
        let (shared, mut stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = stop.wait() => return,
                    _ = tick.tick() => job(&shared),
                }
            }
        });
    };
    every(shared.stats.window_slice(), |s| s.stats.rotate_windows());
    every(IDLE_SWEEP, |s| s.registry.sweep_idle());
}

/// A non-blocking listening socket with `SO_REUSEADDR`, so a restart does not wait out
/// TIME_WAIT, and a deep backlog for connection bursts.
fn bind(addr: SocketAddr, key: &'static str) -> Result<std::net::TcpListener, StartError> {
    let err = |source| StartError::Bind { key, addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(4096).map_err(err)?;
    Ok(socket.into())
}
