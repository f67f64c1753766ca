//! TLS on both sides of the proxy, with rustls (ring as the crypto provider).
//!
//! - [`server`]: the listener side: certificate, optional client verification (strict or
//!   permissive mTLS), ALPN, and what a connection's handshake says about the client;
//! - [`client`]: the upstream side, per destination: roots, server name, client
//!   certificate, ALPN;
//! - [`certs`]: reading and checking PEM files, with errors that name the file;
//! - [`x509`]: the few certificate fields weir reads itself (serial, subject, validity).
//!
//! Re-reading changed certificate files is `reload`'s job (`crate::reload`).
//!
//! Both sides keep their rustls config in an `ArcSwap`, read once per new connection,
//! so a certificate change reaches new connections while open ones go on untouched.

pub mod certs;
pub mod client;
pub mod server;
pub mod x509;

use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use client::{ClientTls, ClientTlsSettings};
pub use server::{ServerTls, ServerTlsSettings, TlsInfo, TlsMode};

/// What weir offers and accepts: TLS 1.3 and 1.2, nothing older.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider for every TLS config weir builds. Passed explicitly rather than
/// installed process-wide, so nothing depends on who installed a default first.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A certificate or key problem a user can cause. Each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not valid PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no certificate in it (expected a PEM `-----BEGIN CERTIFICATE-----` block)", path.display())]
    NoCertificates { path: PathBuf },
    #[error(
        "{}: no private key in it (expected a PEM PKCS#8, PKCS#1 or SEC1 key: `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`)",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("{}: the private key cannot be used: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("{}: certificate {index} cannot be used: {reason}", path.display())]
    BadCertificate {
        path: PathBuf,
        /// 1-based position in the file.
        index: usize,
        reason: String,
    },
    #[error("{}: the certificate `{subject}` expired on {not_after}", path.display())]
    Expired {
        path: PathBuf,
        subject: String,
        not_after: x509::UtcTime,
    },
    #[error(
        "the private key in {} does not match the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "no system root certificates were found{detail}: set `ca` to the file of the CA that signs the upstream's certificate"
    )]
    NoSystemRoots { detail: String },
    #[error("`{name}` is not a valid TLS server name: use a DNS name or an IP address")]
    ServerName { name: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

impl TlsError {
    /// True when the problem is with a private key (so a config names the `key` key even
    /// when the same file is also given as the certificate).
    pub fn is_about_key(&self) -> bool {
        matches!(
            self,
            TlsError::NoKey { .. } | TlsError::BadKey { .. } | TlsError::KeyMismatch { .. }
        )
    }

    /// The file the problem is in, if it is about one file (a key mismatch names the key).
    pub fn path(&self) -> Option<&Path> {
        match self {
            TlsError::Read { path, .. }
            | TlsError::Pem { path, .. }
            | TlsError::NoCertificates { path }
            | TlsError::NoKey { path }
            | TlsError::BadKey { path, .. }
            | TlsError::BadCertificate { path, .. }
            | TlsError::Expired { path, .. } => Some(path),
            TlsError::KeyMismatch { key, .. } => Some(key),
            TlsError::NoSystemRoots { .. } | TlsError::ServerName { .. } | TlsError::Setup(_) => {
                None
            }
        }
    }
}

/// The contents of a set of files, read together, with a hash that tells a change.
#[derive(Debug)]
pub(crate) struct FileSet {
    pub contents: Vec<(PathBuf, Vec<u8>)>,
    pub hash: u64,
}

impl FileSet {
    /// Reads every file; the first that cannot be read is the error.
    pub fn read<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<FileSet, TlsError> {
        // Not cryptographic: it only tells changed files from unchanged ones.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let mut contents = Vec::new();
        for path in paths {
            let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })?;
            path.hash(&mut hasher);
            bytes.hash(&mut hasher);
            contents.push((path.to_owned(), bytes));
        }
        Ok(FileSet {
            contents,
            hash: hasher.finish(),
        })
    }

    /// The bytes read from `path` (one of the paths given to [`FileSet::read`]).
    pub fn get(&self, path: &Path) -> &[u8] {
        self.contents
            .iter()
            .find(|(p, _)| p == path)
            .map_or(&[], |(_, bytes)| bytes)
    }
}
