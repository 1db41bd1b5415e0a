//! Certificates for the lab's TLS servers and for tests, made at start with `rcgen`: a private CA
//! whose certificate the phone is given as `tls_ca_file`, a good leaf for a server's SIP domain, and
//! the bad ones a phone must refuse (expired, wrong name, wildcard, issued by a CA it does not know).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate a server presents, with its key.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Identity {
    /// A rustls server configuration presenting this certificate (TLS 1.2 and 1.3, `ring`).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)?;
        Ok(Arc::new(config))
    }
}

/// What kind of leaf to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf<'a> {
    /// Valid now, naming `name`.
    Good(&'a str),
    /// Naming `name`, expired a year ago.
    Expired(&'a str),
    /// Valid now, naming only the wildcard `*.` + the parent of `name`.
    Wildcard(&'a str),
}

/// A private certificate authority.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

impl Authority {
    /// A new CA named `common_name`, with a fresh key.
    pub fn new(common_name: &str) -> Result<Authority, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(Authority { cert, key })
    }

    /// The CA certificate, PEM: what a phone is given as its trust root.
    pub fn ca_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER: what a rustls client is given as its root.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Issues a leaf.
    pub fn issue(&self, leaf: Leaf<'_>) -> Result<Identity, rcgen::Error> {
        let key = KeyPair::generate()?;
        let (name, san) = match leaf {
            Leaf::Good(n) | Leaf::Expired(n) => (n, n.to_string()),
            Leaf::Wildcard(n) => (n, format!("*.{}", n.split_once('.').map_or(n, |(_, parent)| parent))),
        };
        let mut params = CertificateParams::new(vec![san])?;
        params.distinguished_name.push(DnType::CommonName, name);
        if let Leaf::Expired(_) = leaf {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_carry_the_names_and_dates_asked_for() {
        let ca = Authority::new("lab CA").unwrap();
        assert!(ca.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        for leaf in
            [Leaf::Good("pbx-a.lab.example"), Leaf::Expired("pbx-a.lab.example"), Leaf::Wildcard("pbx-a.lab.example")]
        {
            let id = ca.issue(leaf).unwrap();
            assert!(id.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            assert!(id.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            id.server_config().unwrap();
            let text = String::from_utf8_lossy(&id.cert_der).into_owned();
            match leaf {
                Leaf::Wildcard(_) => assert!(text.contains("*.lab.example")),
                _ => assert!(text.contains("pbx-a.lab.example")),
            }
        }
    }
}
