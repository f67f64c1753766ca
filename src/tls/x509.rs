//! The certificate fields weir reads itself, with x509-parser: a certificate's serial
//! number, subject and validity period.
//!
//! Verifying certificates is rustls's job; these are for weir's own checks and logs:
//! refusing an expired certificate before serving it (rustls never checks its own
//! certificate), and telling who a client is.

use std::fmt::{self, Write as _};

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// The fields weir reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The serial number's bytes, big-endian, as encoded (a leading 0 byte included).
    pub serial: Vec<u8>,
    /// The subject as an RFC 4514 string, most specific part first: `CN=client,O=shop`.
    /// Empty when the certificate has an empty subject (as SPIFFE certificates do).
    pub subject: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct Malformed(String);

impl CertInfo {
    /// Reads a DER certificate.
    pub fn parse(der: &[u8]) -> Result<CertInfo, Malformed> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(Malformed("bytes after the certificate".into()));
        }
        let validity = cert.validity();
        Ok(CertInfo {
            serial: cert.tbs_certificate.raw_serial().to_vec(),
            subject: rfc4514(cert.subject()),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// The serial in upper-case hex, as `openssl x509 -serial` prints it (`01`).
    pub fn serial_hex(&self) -> String {
        let zeros = self.serial.iter().take_while(|b| **b == 0).count();
        let bytes = &self.serial[zeros.min(self.serial.len().saturating_sub(1))..];
        bytes.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02X}");
            s
        })
    }
}

/// A name as RFC 4514 writes it: the most specific RDN first, `,` between RDNs, `+`
/// within one, short attribute names where they are known (else the dotted OID).
fn rfc4514(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            let parts: Vec<String> = rdn
                .iter()
                .map(|attr| {
                    let oid = attr.attr_type();
                    let key = x509_parser::objects::oid2abbrev(oid, registry)
                        .map_or_else(|_| oid.to_id_string(), str::to_owned);
                    format!("{key}={}", value(attr))
                })
                .collect();
            parts.join("+")
        })
        .collect();
    rdns.reverse();
    rdns.join(",")
}

/// An attribute's value: its text escaped as RFC 4514 says, or `#` and its DER in hex
/// when it is not a string.
fn value(attr: &AttributeTypeAndValue<'_>) -> String {
    let Ok(text) = attr.as_str() else {
        return attr
            .attr_value()
            .data
            .iter()
            .fold(String::from("#"), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
    };
    escape(text)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '));
        if special {
            out.push('\\');
        }
        if c.is_control() {
            let _ = write!(out, "\\{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A Unix time printed as `2026-11-27 03:10:41 UTC`, for messages.
#[derive(Debug, Clone, Copy)]
pub struct UtcTime(pub i64);

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, secs) = (self.0.div_euclid(86_400), self.0.rem_euclid(86_400));
        let (year, month, day) = crate::civil::civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc() {
        assert_eq!(UtcTime(0).to_string(), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            UtcTime(1_795_237_841).to_string(),
            "2026-11-21 05:10:41 UTC"
        );
    }

    #[test]
    fn reads_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "shop, inc");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client");
        params.serial_number = Some(rcgen::SerialNumber::from(vec![0, 0x8a]));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = CertInfo::parse(cert.der()).unwrap();
        assert_eq!(info.subject, "CN=client,O=shop\\, inc");
        assert_eq!(info.serial_hex(), "8A");
        assert!(info.not_after > info.not_before);
        assert!(CertInfo::parse(b"\x30\x03\x02\x01").is_err());
        assert!(CertInfo::parse(b"").is_err());
    }
}
