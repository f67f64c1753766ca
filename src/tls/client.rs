//! The upstream side of TLS, one per destination: which roots verify the upstream, the
//! name its certificate must carry, the client certificate weir presents, and ALPN.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ClientConfig;
use rustls::sign::SingleCertAndKey;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{FileSet, TlsError, certs};

/// A destination's TLS settings as configured (paths already resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ClientTlsSettings {
    /// The CA bundle that verifies the upstream; `None` means the system roots.
    pub ca: Option<PathBuf>,
    /// The name the upstream's certificate must carry; `None` means the endpoint's host.
    pub server_name: Option<String>,
    /// The client certificate chain and key weir presents (both or neither).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Offer `h2` in ALPN (the destination speaks HTTP/2); else `http/1.1`.
    pub alpn_h2: bool,
}

impl ClientTlsSettings {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [self.ca.as_ref(), self.cert.as_ref(), self.key.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }

    /// The name to verify the upstream's certificate against, for an endpoint `host`.
    pub fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName {
            name: name.to_owned(),
        })
    }
}

/// A destination's TLS client state: swapped whole when its files change, read once
/// per new upstream connection.
pub struct ClientTls {
    current: ArcSwap<Loaded>,
}

struct Loaded {
    settings: ClientTlsSettings,
    connector: TlsConnector,
    hash: u64,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("settings", &self.current.load().settings)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Reads and checks the files, and builds the rustls config.
    pub fn load(settings: ClientTlsSettings) -> Result<ClientTls, TlsError> {
        let files = FileSet::read(settings.paths())?;
        let loaded = build(settings, &files)?;
        Ok(ClientTls {
            current: ArcSwap::from_pointee(loaded),
        })
    }

    pub fn settings(&self) -> ClientTlsSettings {
        self.current.load().settings.clone()
    }

    /// The TLS handshake over a new TCP connection to the upstream.
    pub async fn connect(
        &self,
        server_name: ServerName<'static>,
        tcp: TcpStream,
    ) -> io::Result<TlsStream<TcpStream>> {
        let connector = self.current.load().connector.clone();
        connector.connect(server_name, tcp).await
    }

    /// Re-reads the files; when their contents changed, checks them and swaps them in.
    /// `Ok(false)`: unchanged. On error the current files keep being used.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let current = self.current.load_full();
        let files = FileSet::read(current.settings.paths())?;
        if files.hash == current.hash {
            return Ok(false);
        }
        let loaded = build(current.settings.clone(), &files)?;
        self.current.store(Arc::new(loaded));
        Ok(true)
    }

    /// The files to watch for changes (none when it uses the system roots and no
    /// client certificate).
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        self.current
            .load()
            .settings
            .paths()
            .map(PathBuf::from)
            .collect()
    }
}

fn build(settings: ClientTlsSettings, files: &FileSet) -> Result<Loaded, TlsError> {
    let roots = match &settings.ca {
        Some(ca) => certs::roots(ca, files.get(ca))?,
        None => certs::system_roots()?,
    };
    let builder = ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::VERSIONS)
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) => {
            let chain = certs::chain(cert, files.get(cert))?;
            let private_key = certs::private_key(key, files.get(key))?;
            let certified = certs::certified_key(cert, chain, key, private_key)?;
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
        }
        // Validation refuses one without the other.
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![if settings.alpn_h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(Loaded {
        settings,
        connector: TlsConnector::from(Arc::new(config)),
        hash: files.hash,
    })
}
