//! The endpoints of every destination, kept across config reloads: a reload that only
//! changes weights reuses every endpoint, every idle connection and every TLS state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::limit::{Limiter, Pressure};
use super::{Destination, Endpoint, pool, select};
use crate::config::{DestinationConfig, EndpointAddr, PoolLimits, Protocol};
use crate::telemetry::DestinationStats;
use crate::tls::{ClientTls, ClientTlsSettings, TlsError};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EndpointKey {
    destination: String,
    /// The stats the endpoint counts its connections into (they change with labels).
    stats: usize,
    addr: EndpointAddr,
    protocol: Protocol,
    connect_timeout: Duration,
    tls: Option<ClientTlsSettings>,
}

/// Keeps endpoints (and so their pooled connections) and TLS client states alive across
/// config reloads.
#[derive(Debug)]
pub struct EndpointRegistry {
    workers: usize,
    endpoints: Mutex<HashMap<EndpointKey, Weak<Endpoint>>>,
    /// One state per distinct settings, shared by every endpoint that uses them.
    tls: Mutex<HashMap<ClientTlsSettings, Weak<ClientTls>>>,
    /// Each destination's in-flight limit, by name and limits, so a reload does not
    /// reset it.
    limiters: Mutex<HashMap<(String, PoolLimits), Weak<Limiter>>>,
    /// Raised by any of them when full.
    pressure: Arc<Pressure>,
}

impl EndpointRegistry {
    pub fn new(workers: usize) -> Self {
        EndpointRegistry {
            workers,
            endpoints: Mutex::new(HashMap::new()),
            tls: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            pressure: Arc::new(Pressure::default()),
        }
    }

    /// Raised when a destination is full (see [`Pressure`]).
    pub fn pressure(&self) -> &Pressure {
        &self.pressure
    }

    /// Builds the runtime destination for `config`, reusing live endpoints. Loading the
    /// TLS files of a new TLS setting can fail (validation read them, but they may have
    /// changed since); the caller refuses the config then.
    pub fn destination(
        &self,
        config: &DestinationConfig,
        stats: Arc<DestinationStats>,
    ) -> Result<Arc<Destination>, TlsError> {
        let tls = config
            .tls
            .as_ref()
            .map(|settings| self.tls_state(settings))
            .transpose()?;
        let mut map = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, weak| weak.strong_count() > 0);
        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for addr in &config.endpoints {
            let key = EndpointKey {
                destination: config.name.clone(),
                stats: Arc::as_ptr(&stats) as usize,
                addr: addr.clone(),
                protocol: config.protocol,
                connect_timeout: config.connect_timeout,
                tls: config.tls.clone(),
            };
            if let Some(live) = map.get(&key).and_then(Weak::upgrade) {
                endpoints.push(live);
                continue;
            }
            let tls = match (&tls, &config.tls) {
                (Some(state), Some(settings)) => {
                    Some((state.clone(), settings.server_name_for(&addr.host)?))
                }
                _ => None,
            };
            let endpoint = Arc::new(Endpoint {
                addr: addr.clone(),
                label: addr.to_string().into(),
                protocol: config.protocol,
                connect_timeout: config.connect_timeout,
                tls,
                stats: stats.clone(),
                pool: pool::Pool::new(self.workers),
                health: select::Health::default(),
                unlogged_failures: AtomicU64::new(0),
                last_warning: AtomicU64::new(0),
            });
            map.insert(key, Arc::downgrade(&endpoint));
            endpoints.push(endpoint);
        }
        drop(map);
        Ok(Arc::new(Destination {
            name: config.name.as_str().into(),
            protocol: config.protocol,
            endpoints: endpoints.into(),
            next: AtomicUsize::new(0),
            stats,
            limiter: self.limiter(&config.name, config.pool),
        }))
    }

    /// The destination's in-flight limit, the live one when it has one.
    fn limiter(&self, destination: &str, limits: PoolLimits) -> Arc<Limiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, weak| weak.strong_count() > 0);
        let key = (destination.to_owned(), limits);
        if let Some(live) = map.get(&key).and_then(Weak::upgrade) {
            return live;
        }
        let limiter = Arc::new(Limiter::new(
            limits.max_requests,
            limits.max_pending_requests,
            self.pressure.clone(),
        ));
        map.insert(key, Arc::downgrade(&limiter));
        limiter
    }

    /// The live TLS state for `settings`, or a new one loaded from its files. A live
    /// one picks up file changes through the certificate reloader, not here.
    fn tls_state(&self, settings: &ClientTlsSettings) -> Result<Arc<ClientTls>, TlsError> {
        let mut map = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, weak| weak.strong_count() > 0);
        if let Some(live) = map.get(settings).and_then(Weak::upgrade) {
            return Ok(live);
        }
        let state = Arc::new(ClientTls::load(settings.clone())?);
        map.insert(settings.clone(), Arc::downgrade(&state));
        Ok(state)
    }

    /// Closes idle pooled connections that timed out or that their upstream closed
    /// (a background job runs it every few seconds).
    pub fn sweep_idle(&self) {
        let live: Vec<Arc<Endpoint>> = {
            let map = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
            map.values().filter_map(Weak::upgrade).collect()
        };
        for endpoint in live {
            endpoint.pool.sweep();
        }
    }

    /// The live TLS client states, each once, for certificate reloads.
    pub fn client_tls(&self) -> Vec<Arc<ClientTls>> {
        let map = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        map.values().filter_map(Weak::upgrade).collect()
    }
}
