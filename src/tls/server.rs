//! The listener side of TLS: the certificate weir serves, the optional verification of
//! client certificates (strict or permissive mTLS), ALPN, and what a finished handshake
//! says about the client.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use tokio_rustls::TlsAcceptor;

use super::x509::CertInfo;
use super::{FileSet, TlsError, certs};

/// The ALPN protocols weir offers clients, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Whether the TLS port also serves plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// TLS only; with `client_ca`, a client without a valid certificate is refused in
    /// the handshake.
    Strict,
    /// Istio's PERMISSIVE: the port serves plaintext HTTP and TLS, told apart by the
    /// first byte; a client certificate is verified when one is presented.
    Permissive,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Strict => "strict",
            TlsMode::Permissive => "permissive",
        }
    }
}

/// The listener's TLS settings as configured (paths already resolved).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerTlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub mode: TlsMode,
}

impl ServerTlsSettings {
    fn paths(&self) -> impl Iterator<Item = &std::path::Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }
}

/// The listener's TLS state: swapped whole when the files change, read once per
/// accepted connection.
pub struct ServerTls {
    current: ArcSwap<Loaded>,
}

struct Loaded {
    settings: ServerTlsSettings,
    config: Arc<ServerConfig>,
    /// Of the files' contents, to tell a change from a touch.
    hash: u64,
    /// The leaf certificate's serial, for the log line of a reload.
    serial: String,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.load();
        f.debug_struct("ServerTls")
            .field("settings", &current.settings)
            .field("serial", &current.serial)
            .finish_non_exhaustive()
    }
}

/// What the listener needs for one new connection.
#[derive(Clone)]
pub struct Acceptor {
    pub mode: TlsMode,
    pub acceptor: TlsAcceptor,
}

impl ServerTls {
    /// Reads and checks the files, and builds the rustls config.
    pub fn load(settings: ServerTlsSettings) -> Result<ServerTls, TlsError> {
        let files = FileSet::read(settings.paths())?;
        let loaded = build(settings, &files)?;
        Ok(ServerTls {
            current: ArcSwap::from_pointee(loaded),
        })
    }

    /// The config for a new connection. Connections keep the config they started with,
    /// so a reload never touches an open one.
    pub fn acceptor(&self) -> Acceptor {
        let current = self.current.load();
        Acceptor {
            mode: current.settings.mode,
            acceptor: TlsAcceptor::from(current.config.clone()),
        }
    }

    pub fn settings(&self) -> ServerTlsSettings {
        self.current.load().settings.clone()
    }

    /// The serial of the certificate new connections get, in hex.
    pub fn serial(&self) -> String {
        self.current.load().serial.clone()
    }

    /// Re-reads the files; when their contents changed, checks them and swaps them in.
    /// `Ok(false)`: unchanged. On error the current certificate keeps serving.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let current = self.current.load_full();
        let files = FileSet::read(current.settings.paths())?;
        if files.hash == current.hash {
            return Ok(false);
        }
        let loaded = build(current.settings.clone(), &files)?;
        tracing::info!(
            cert = %loaded.settings.cert.display(),
            serial = %loaded.serial,
            previous_serial = %current.serial,
            "TLS certificate reloaded; new connections use it"
        );
        self.current.store(Arc::new(loaded));
        Ok(true)
    }

    /// Takes over the settings and files of `other` (built from a reloaded config), if
    /// they differ. Returns whether anything changed.
    pub fn adopt(&self, other: &ServerTls) -> bool {
        let new = other.current.load_full();
        let current = self.current.load();
        if new.settings == current.settings && new.hash == current.hash {
            return false;
        }
        self.current.store(new);
        true
    }

    /// The files to watch for changes.
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        self.current
            .load()
            .settings
            .paths()
            .map(PathBuf::from)
            .collect()
    }
}

fn build(settings: ServerTlsSettings, files: &FileSet) -> Result<Loaded, TlsError> {
    let chain = certs::chain(&settings.cert, files.get(&settings.cert))?;
    let serial = CertInfo::parse(&chain[0]).map_or_else(|_| "?".into(), |i| i.serial_hex());
    let key = certs::private_key(&settings.key, files.get(&settings.key))?;
    let certified = certs::certified_key(&settings.cert, chain, &settings.key, key)?;
    let provider = super::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(super::VERSIONS)
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = certs::roots(ca, files.get(ca))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match settings.mode {
                TlsMode::Strict => verifier,
                // A client may come without a certificate; one that presents a certificate
                // is still verified, and refused if it does not check out.
                TlsMode::Permissive => verifier.allow_unauthenticated(),
            };
            let verifier = verifier.build().map_err(|e| TlsError::BadCertificate {
                path: ca.clone(),
                index: 1,
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Loaded {
        settings,
        config: Arc::new(config),
        hash: files.hash,
        serial,
    })
}

/// What a finished handshake says about the connection, for logs and metric labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
    /// True when the client presented a certificate and it verified against `client_ca`
    /// (rustls refuses the handshake when a presented certificate does not verify).
    pub client_verified: bool,
    /// The client certificate's subject (RFC 4514), when it has a non-empty one.
    pub client_subject: Option<Arc<str>>,
    /// ALPN chose HTTP/2.
    pub h2: bool,
}

impl TlsInfo {
    pub fn of(conn: &rustls::ServerConnection) -> TlsInfo {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        let leaf = conn.peer_certificates().and_then(|certs| certs.first());
        let client_subject = leaf
            .and_then(|der| CertInfo::parse(der).ok())
            .map(|info| info.subject)
            .filter(|s| !s.is_empty())
            .map(Arc::from);
        TlsInfo {
            version,
            client_verified: leaf.is_some(),
            client_subject,
            h2: conn.alpn_protocol() == Some(b"h2"),
        }
    }
}
