//! Reading certificates, keys and CA bundles from PEM, and refusing the ones that cannot
//! work (empty, expired, a key that is not the certificate's) before any client sees
//! them, with an error that names the file.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;
use super::x509::{CertInfo, UtcTime};

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A certificate chain (leaf first). Every certificate in it must parse and be unexpired:
/// rustls would serve an expired certificate, and every client would refuse it.
pub fn chain(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = read_certs(path, pem)?;
    let now = now();
    for (i, cert) in certs.iter().enumerate() {
        let info = info(path, i, cert)?;
        if info.not_after < now {
            return Err(expired(path, &info));
        }
        warn_not_yet_valid(path, &info, now);
    }
    Ok(certs)
}

/// A CA bundle as trust anchors. Expired CA certificates are skipped with a warning (a
/// bundle often keeps an old root through a rotation); a bundle with no usable one is
/// refused.
pub fn roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let certs = read_certs(path, pem)?;
    let now = now();
    let mut roots = RootCertStore::empty();
    let mut last_expired = None;
    for (i, cert) in certs.into_iter().enumerate() {
        let info = info(path, i, &cert)?;
        if info.not_after < now {
            tracing::warn!(
                file = %path.display(),
                subject = %info.subject,
                not_after = %UtcTime(info.not_after),
                "skipping an expired CA certificate"
            );
            last_expired = Some(info);
            continue;
        }
        warn_not_yet_valid(path, &info, now);
        roots.add(cert).map_err(|e| TlsError::BadCertificate {
            path: path.to_owned(),
            index: i + 1,
            reason: e.to_string(),
        })?;
    }
    match last_expired {
        Some(info) if roots.is_empty() => Err(expired(path, &info)),
        _ => Ok(roots),
    }
}

/// The roots of the system's CA store (`SSL_CERT_FILE`/`SSL_CERT_DIR` are honoured).
pub fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    // A system bundle may hold a certificate webpki cannot use; skip it, as browsers do.
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let detail = found
            .errors
            .first()
            .map_or_else(String::new, |e| format!(" ({e})"));
        return Err(TlsError::NoSystemRoots { detail });
    }
    Ok(roots)
}

/// A private key in PKCS#8, PKCS#1 or SEC1 PEM.
pub fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        other => pem_error(path, other),
    })
}

/// The chain and key together, refused when the key is not the leaf certificate's.
pub fn certified_key(
    cert_path: &Path,
    chain: Vec<CertificateDer<'static>>,
    key_path: &Path,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let provider = super::provider();
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadKey {
                path: key_path.to_owned(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })
        }
        // The ring provider derives the public key of every key type it loads, so this
        // is not expected; were it to happen, the handshake itself would still check.
        Err(rustls::Error::InconsistentKeys(_)) => Ok(Arc::new(certified)),
        Err(e) => Err(TlsError::BadCertificate {
            path: cert_path.to_owned(),
            index: 1,
            reason: e.to_string(),
        }),
    }
}

fn read_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn info(path: &Path, index: usize, cert: &CertificateDer<'_>) -> Result<CertInfo, TlsError> {
    CertInfo::parse(cert).map_err(|e| TlsError::BadCertificate {
        path: path.to_owned(),
        index: index + 1,
        reason: e.to_string(),
    })
}

fn expired(path: &Path, info: &CertInfo) -> TlsError {
    TlsError::Expired {
        path: path.to_owned(),
        subject: info.subject.clone(),
        not_after: UtcTime(info.not_after),
    }
}

/// Not refused: a certificate issued seconds ago on a machine whose clock is ahead is
/// common, and it becomes valid on its own; refusing it would keep the old one forever.
fn warn_not_yet_valid(path: &Path, info: &CertInfo, now: i64) {
    if info.not_before > now {
        tracing::warn!(
            file = %path.display(),
            subject = %info.subject,
            not_before = %UtcTime(info.not_before),
            "certificate is not valid yet; clients will refuse it until then"
        );
    }
}

fn pem_error(path: &Path, e: pem::Error) -> TlsError {
    let reason = match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a block does not end (missing `{}`)",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "bad block start `{}`",
            String::from_utf8_lossy(&line).trim()
        ),
        other => other.to_string(),
    };
    TlsError::Pem {
        path: path.to_owned(),
        reason,
    }
}
