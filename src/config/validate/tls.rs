//! Validation of the `tls` keys (the listener's and each destination's). The files are
//! loaded and checked here (and the result dropped: the config keeps only the
//! settings), so `weir check`, startup and a config reload all refuse a missing file, an
//! expired certificate or a key that does not match, at the key that names the file.

use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

use super::super::raw::{RawServerTls, RawUpstreamTls};
use super::super::{EndpointAddr, Issue, Protocol};
use crate::tls::{ClientTls, ClientTlsSettings, ServerTls, ServerTlsSettings, TlsError, TlsMode};

/// The listener's `tls`.
pub(super) fn server_tls(
    raw: &Spanned<RawServerTls>,
    origin: &str,
    issues: &mut Vec<Issue>,
) -> Option<ServerTlsSettings> {
    let tls = &raw.value;
    let before = issues.len();
    let mut required = |key: &str, value: &Option<Spanned<String>>| match value {
        Some(v) => Some(resolve(origin, &v.value)),
        None => {
            issues.push(Issue::at(
                raw.referenced,
                format!("`tls` has no `{key}`: the listener's TLS needs both `cert` and `key` (PEM files)"),
            ));
            None
        }
    };
    let cert = required("cert", &tls.cert);
    let key = required("key", &tls.key);
    let mode = match &tls.mode {
        None => TlsMode::Strict,
        Some(m) => match m.value.as_str() {
            "strict" => TlsMode::Strict,
            "permissive" => TlsMode::Permissive,
            other => {
                issues.push(Issue::at(
                    m.referenced,
                    format!("`tls.mode` is `{other}`: use `strict` (TLS only, the default) or `permissive` (plaintext and TLS on one port)"),
                ));
                TlsMode::Strict
            }
        },
    };
    if issues.len() > before {
        return None;
    }
    let settings = ServerTlsSettings {
        cert: cert?,
        key: key?,
        client_ca: tls.client_ca.as_ref().map(|c| resolve(origin, &c.value)),
        mode,
    };
    match ServerTls::load(settings.clone()) {
        Ok(_) => Some(settings),
        Err(error) => {
            let keys = [
                ("tls.cert", &tls.cert, Some(&settings.cert)),
                ("tls.key", &tls.key, Some(&settings.key)),
                ("tls.client_ca", &tls.client_ca, settings.client_ca.as_ref()),
            ];
            issues.push(place(&error, raw.referenced, "tls", &keys));
            None
        }
    }
}

/// A destination's `tls`.
pub(super) fn upstream_tls(
    destination: &str,
    raw: &Spanned<RawUpstreamTls>,
    endpoints: &[EndpointAddr],
    protocol: Protocol,
    origin: &str,
    issues: &mut Vec<Issue>,
) -> Option<ClientTlsSettings> {
    let tls = &raw.value;
    let path = |v: &Option<Spanned<String>>| v.as_ref().map(|v| resolve(origin, &v.value));
    let settings = ClientTlsSettings {
        ca: path(&tls.ca),
        server_name: tls.server_name.as_ref().map(|s| s.value.clone()),
        cert: path(&tls.cert),
        key: path(&tls.key),
        alpn_h2: protocol == Protocol::Http2,
    };
    let before = issues.len();
    if settings.cert.is_some() != settings.key.is_some() {
        issues.push(Issue::at(
            raw.referenced,
            format!("destination `{destination}`: `tls` needs both `cert` and `key` for a client certificate, or neither"),
        ));
    }
    match &tls.server_name {
        Some(name) => {
            if let Err(error) = settings.server_name_for("") {
                issues.push(Issue::at(name.referenced, error.to_string()));
            }
        }
        None => {
            for endpoint in endpoints {
                if let Err(error) = settings.server_name_for(&endpoint.host) {
                    issues.push(Issue::at(
                        raw.referenced,
                        format!("destination `{destination}`: endpoint host {error}; set `tls.server_name` to the name in the upstream's certificate"),
                    ));
                }
            }
        }
    }
    if issues.len() > before {
        return None;
    }
    match ClientTls::load(settings.clone()) {
        Ok(_) => Some(settings),
        Err(error) => {
            let keys = [
                ("tls.ca", &tls.ca, settings.ca.as_ref()),
                ("tls.cert", &tls.cert, settings.cert.as_ref()),
                ("tls.key", &tls.key, settings.key.as_ref()),
            ];
            let mut issue = place(&error, raw.referenced, "tls", &keys);
            issue.message = format!("destination `{destination}`: {}", issue.message);
            issues.push(issue);
            None
        }
    }
}

/// A path from the config, relative to the config file's directory unless absolute.
fn resolve(origin: &str, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    match Path::new(origin).parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path,
    }
}

/// A `tls` key, its value as written, and the path it resolved to.
type KeyFile<'a> = (&'a str, &'a Option<Spanned<String>>, Option<&'a PathBuf>);

/// Puts a TLS error at the key that names the file it is about (else at `tls` itself).
fn place(error: &TlsError, tls_at: Location, tls_key: &str, keys: &[KeyFile<'_>]) -> Issue {
    let matching: Vec<(&str, Location)> = keys
        .iter()
        .filter_map(|(name, raw, resolved)| match (raw, resolved) {
            (Some(raw), Some(resolved)) if error.path() == Some(resolved.as_path()) => {
                Some((*name, raw.referenced))
            }
            _ => None,
        })
        .collect();
    // One file given as both cert and key: a key problem is the `key` key's.
    let culprit = matching
        .iter()
        .find(|(name, _)| error.is_about_key() == name.ends_with(".key"))
        .or(matching.first())
        .copied();
    let (name, at) = culprit.unwrap_or((tls_key, tls_at));
    Issue::at(at, format!("`{name}`: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_config_file() {
        assert_eq!(
            resolve("/etc/weir/weir.yaml", "certs/a.pem"),
            PathBuf::from("/etc/weir/certs/a.pem")
        );
        assert_eq!(
            resolve("/etc/weir/weir.yaml", "/run/secrets/a.pem"),
            PathBuf::from("/run/secrets/a.pem")
        );
        // A config given as a bare file name: relative to the working directory.
        assert_eq!(resolve("weir.yaml", "a.pem"), PathBuf::from("a.pem"));
    }
}
