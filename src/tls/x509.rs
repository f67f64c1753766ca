//! Just enough X.509 reading for weir's own checks and logs: a certificate's serial
//! number, subject and validity period.
//!
//! Verifying certificates is rustls's job; this only reads three fields out of the DER,
//! so weir can refuse an expired certificate before serving it (rustls never checks its
//! own certificate) and log who a client is. A full X.509 crate would pull in a parser
//! stack several times the size of this file for those three fields.

use std::fmt::{self, Write as _};

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
pub struct Malformed(&'static str);

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version` at the start of a TBSCertificate.
const VERSION_TAG: u8 = 0xa0;

impl CertInfo {
    /// Reads a DER certificate.
    pub fn parse(der: &[u8]) -> Result<CertInfo, Malformed> {
        // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
        let cert = Der(der).expect(SEQUENCE, "not a DER sequence")?;
        let mut tbs = Der(cert).expect_reader(SEQUENCE, "no TBSCertificate")?;
        if tbs.peek_tag() == Some(VERSION_TAG) {
            tbs.next()?;
        }
        let serial = tbs.expect(INTEGER, "no serial number")?.to_vec();
        tbs.expect(SEQUENCE, "no signature algorithm")?;
        tbs.expect(SEQUENCE, "no issuer")?;
        let mut validity = tbs.expect_reader(SEQUENCE, "no validity")?;
        let not_before = validity.time()?;
        let not_after = validity.time()?;
        let subject = name(tbs.expect(SEQUENCE, "no subject")?)?;
        Ok(CertInfo {
            serial,
            subject,
            not_before,
            not_after,
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

/// A DER reader over a byte slice.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next tag and its contents.
    fn next(&mut self) -> Result<(u8, &'a [u8]), Malformed> {
        let [tag, first, rest @ ..] = self.0 else {
            return Err(Malformed("truncated"));
        };
        let (len, rest) = if *first < 0x80 {
            (usize::from(*first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(Malformed("bad length"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(Malformed("truncated"));
        }
        self.0 = &rest[len..];
        Ok((*tag, &rest[..len]))
    }

    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], Malformed> {
        match self.next() {
            Ok((t, content)) if t == tag => Ok(content),
            _ => Err(Malformed(what)),
        }
    }

    fn expect_reader(&mut self, tag: u8, what: &'static str) -> Result<Der<'a>, Malformed> {
        self.expect(tag, what).map(Der)
    }

    /// A UTCTime or GeneralizedTime, as seconds since the Unix epoch.
    fn time(&mut self) -> Result<i64, Malformed> {
        let bad = Malformed("bad validity time");
        let (tag, text) = self.next()?;
        let (year, rest) = match tag {
            // RFC 5280: YY >= 50 means 19YY, else 20YY.
            UTC_TIME if text.len() == 13 => {
                let yy = digits(&text[..2]).ok_or(bad.clone())?;
                (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
            }
            GENERALIZED_TIME if text.len() == 15 => {
                (digits(&text[..4]).ok_or(bad.clone())?, &text[4..])
            }
            _ => return Err(bad),
        };
        if rest.last() != Some(&b'Z') {
            return Err(bad);
        }
        let field = |i: usize| digits(&rest[i..i + 2]).ok_or(bad.clone());
        let (month, day) = (field(0)?, field(2)?);
        let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(Malformed("bad validity time"));
        }
        let days = days_from_civil(year, month, day);
        Ok(days * 86_400 + hour * 3600 + minute * 60 + second)
    }
}

fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0i64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// Renders a Name (SEQUENCE OF RDN) as RFC 4514 does: last RDN first, `,` between RDNs,
/// `+` within a multi-valued one.
fn name(der: &[u8]) -> Result<String, Malformed> {
    let mut rdns = Vec::new();
    let mut seq = Der(der);
    while seq.peek_tag().is_some() {
        let mut set = seq.expect_reader(SET, "bad name")?;
        let mut parts = Vec::new();
        while set.peek_tag().is_some() {
            let mut atv = set.expect_reader(SEQUENCE, "bad name attribute")?;
            let oid = atv.expect(OID, "bad name attribute type")?;
            let (tag, value) = atv.next()?;
            parts.push(format!(
                "{}={}",
                attribute_name(oid),
                attribute_value(tag, value)
            ));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// The short names RFC 4514 defines, else the dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x09] => "STREET".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".into(),
        _ => dotted_oid(oid),
    }
}

fn dotted_oid(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut value: u64 = 0;
    for b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 != 0 {
            continue;
        }
        if out.is_empty() {
            let first = (value / 40).min(2);
            let _ = write!(out, "{first}.{}", value - first * 40);
        } else {
            let _ = write!(out, ".{value}");
        }
        value = 0;
    }
    out
}

/// A directory string as text, escaped for RFC 4514; other types as `#hex`.
fn attribute_value(tag: u8, value: &[u8]) -> String {
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const T61: u8 = 0x14;
    const IA5: u8 = 0x16;
    const BMP: u8 = 0x1e;
    let text = match tag {
        UTF8 | PRINTABLE | T61 | IA5 => String::from_utf8_lossy(value).into_owned(),
        BMP => char::decode_utf16(
            value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]])),
        )
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect(),
        _ => {
            return value.iter().fold(String::from("#"), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
        }
    };
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

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(UtcTime(0).to_string(), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            UtcTime(1_795_237_841).to_string(),
            "2026-11-21 05:10:41 UTC"
        );
        for days in [-1000, 0, 59, 60, 10_000, 20_000, 40_000] {
            let text = UtcTime(days * 86_400).to_string();
            let (y, m, d) = (&text[0..4], &text[5..7], &text[8..10]);
            assert_eq!(
                days_from_civil(y.parse().unwrap(), m.parse().unwrap(), d.parse().unwrap()),
                days
            );
        }
    }

    #[test]
    fn reads_times() {
        let mut utc = Der(b"\x17\x0d491231235959Z");
        assert_eq!(
            UtcTime(utc.time().unwrap()).to_string(),
            "2049-12-31 23:59:59 UTC"
        );
        let mut utc = Der(b"\x17\x0d500101000000Z");
        assert_eq!(
            UtcTime(utc.time().unwrap()).to_string(),
            "1950-01-01 00:00:00 UTC"
        );
        let mut generalized = Der(b"\x18\x0f20991231235959Z");
        assert_eq!(
            UtcTime(generalized.time().unwrap()).to_string(),
            "2099-12-31 23:59:59 UTC"
        );
        assert!(Der(b"\x17\x0d49123123595+Z").time().is_err());
    }

    #[test]
    fn names_and_oids() {
        assert_eq!(dotted_oid(&[0x55, 0x04, 0x03]), "2.5.4.3");
        assert_eq!(
            dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
            "1.2.840.113549.1.9.1"
        );
        assert_eq!(attribute_value(0x0c, b"a,b"), "a\\,b");
        assert_eq!(attribute_value(0x04, &[1, 2]), "#0102");
        assert!(CertInfo::parse(b"\x30\x03\x02\x01").is_err());
        assert!(CertInfo::parse(b"").is_err());
    }
}
