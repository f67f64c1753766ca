//! Test certificates: a CA made with rcgen that issues server and client certificates.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};

/// A test CA that issues server and client certificates.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
pub enum Usage {
    Server,
    Client,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        Pki { ca }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self, serial: u64) -> Leaf {
        self.leaf(Usage::Server, "localhost", serial, None)
    }

    /// A client certificate with subject `CN=<name>,O=weir-tests`.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(Usage::Client, name, 1, None)
    }

    /// A certificate; `validity` as (not_before, not_after) years overrides the default
    /// (valid now).
    pub fn leaf(&self, usage: Usage, cn: &str, serial: u64, validity: Option<(i32, i32)>) -> Leaf {
        let sans = match usage {
            Usage::Server => vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            Usage::Client => Vec::new(),
        };
        let mut params = CertificateParams::new(sans).expect("leaf params");
        // rcgen starts with a default CN; start empty so the order is the one written.
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "weir-tests");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if let Some((from, to)) = validity {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}
