//! Certificate hot reload: re-reads the listener's and every destination's TLS files,
//! swaps in the ones that changed and checked out, and keeps the old ones (with a logged
//! error) when the new ones are bad.
//!
//! Each state's `reload()` compares a hash of the files' contents, so calling it when
//! nothing changed costs a few small reads. [`super::run`] calls it whenever the
//! directories of these files change (Kubernetes Secret `..data` swaps included), after
//! every config reload, and on its periodic check.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::state::Shared;
use crate::tls::{ClientTls, ServerTls, TlsError};

/// Every TLS state of a running weir, reloaded together.
#[derive(Debug)]
pub struct TlsReloader {
    server: Option<Arc<ServerTls>>,
    /// The destinations' states live in their endpoints, which config reloads replace;
    /// they are looked up afresh each time.
    shared: Arc<Shared>,
    /// The last error logged per state, so a bad file is reported once, not every poll.
    refused: HashMap<usize, String>,
}

impl TlsReloader {
    pub fn new(server: Option<Arc<ServerTls>>, shared: Arc<Shared>) -> Self {
        TlsReloader {
            server,
            shared,
            refused: HashMap::new(),
        }
    }

    /// Every file the TLS states read; a watcher should watch their directories (a
    /// Kubernetes Secret update swaps a `..data` symlink, not the files).
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .server
            .iter()
            .flat_map(|s| s.watched_paths())
            .chain(self.clients().iter().flat_map(|c| c.watched_paths()))
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// After a config reload: the listener takes the new `tls` settings (new paths, a
    /// new mode) when they changed. Adding or removing `tls` needs a restart.
    pub fn adopt_config(&mut self, config: &Config) {
        let (Some(server), Some(settings)) = (&self.server, &config.tls) else {
            return;
        };
        if server.settings() == *settings {
            return;
        }
        // Validation just read these files; they can only fail here if they changed
        // since, and then the running certificate keeps serving.
        match ServerTls::load(settings.clone()) {
            Ok(new) if server.adopt(&new) => {
                tracing::info!("listener TLS settings changed; new connections use them");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "new listener TLS settings refused; the previous certificate keeps serving");
            }
        }
    }

    /// Reloads every state whose files changed. Returns how many were swapped.
    pub fn reload_all(&mut self) -> usize {
        let mut changed = 0;
        if let Some(server) = self.server.clone() {
            let key = Arc::as_ptr(&server) as usize;
            changed += usize::from(self.note(key, "listener", server.reload()));
        }
        for client in self.clients() {
            let key = Arc::as_ptr(&client) as usize;
            let result = client.reload();
            if matches!(result, Ok(true)) {
                let files: Vec<String> = client
                    .watched_paths()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                tracing::info!(
                    files = %files.join(","),
                    "upstream TLS files reloaded; new upstream connections use them"
                );
            }
            changed += usize::from(self.note(key, "upstream", result));
        }
        changed
    }

    fn clients(&self) -> Vec<Arc<ClientTls>> {
        self.shared.registry.client_tls()
    }

    fn note(&mut self, key: usize, side: &'static str, result: Result<bool, TlsError>) -> bool {
        match result {
            Ok(changed) => {
                self.refused.remove(&key);
                changed
            }
            Err(error) => {
                let message = error.to_string();
                if self.refused.get(&key) != Some(&message) {
                    tracing::error!(
                        side,
                        error = %message,
                        "refused the changed TLS files; the previous certificate keeps serving"
                    );
                    self.refused.insert(key, message);
                }
                false
            }
        }
    }
}
