//! The TLS client side of SIP over TLS (RFC 5630, RFC 5922) and of the syslog sink: trust roots,
//! the certificate check, the client certificate, and what a failed handshake means for the core.
//!
//! - Trust: the CA file the phone is provisioned with (`tls_ca_file`, PEM), else the system's
//!   store (rustls-native-certs).
//! - Identity (RFC 5922 7.2): the server's certificate must name the SIP domain of the server's URI
//!   (the host as configured, never an SRV target). A certificate that names it only through a
//!   wildcard is refused unless `tls_allow_wildcard` ([`SipVerifier`]).
//! - SNI only for host names: an IP literal is verified against the certificate's IP addresses and
//!   sent no SNI (RFC 6066 3).
//! - TLS 1.2 at least (rustls offers 1.2 and 1.3 with the `ring` provider).
//! - Mutual TLS: an optional client certificate chain and key (PEM).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::config::TlsConfig;
use crate::core::TlsError;

/// Why the TLS client settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// The CA file cannot be read or holds no usable certificate.
    CaFile(PathBuf, String),
    /// No CA file is given and the system's trust store has no usable certificate.
    NoRoots,
    /// The client certificate file cannot be read or holds no certificate.
    ClientCert(PathBuf, String),
    /// The client key file cannot be read or holds no private key, or does not fit the certificate.
    ClientKey(PathBuf, String),
    /// The TLS library refused the settings.
    Settings(String),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::CaFile(p, e) => write!(f, "TLS CA file {}: {e}", p.display()),
            TlsSetupError::NoRoots => {
                f.write_str("TLS: no CA file given and no certificate in the system's trust store")
            }
            TlsSetupError::ClientCert(p, e) => write!(f, "TLS client certificate {}: {e}", p.display()),
            TlsSetupError::ClientKey(p, e) => write!(f, "TLS client key {}: {e}", p.display()),
            TlsSetupError::Settings(e) => write!(f, "TLS settings: {e}"),
        }
    }
}

impl std::error::Error for TlsSetupError {}

/// The `ring` provider, the only one built in.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The trust roots: the certificates of `ca_file` (PEM), else the system's trust store.
pub fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(p) => {
            let certs = read_certs(p).map_err(|e| TlsSetupError::CaFile(p.to_path_buf(), e))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsSetupError::CaFile(p.to_path_buf(), "no usable certificate in it".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsSetupError::NoRoots);
            }
        }
    }
    Ok(roots)
}

fn read_certs(p: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs =
        CertificateDer::pem_file_iter(p).and_then(|it| it.collect::<Result<Vec<_>, _>>()).map_err(|e| pem_error(&e))?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) if io.kind() == io::ErrorKind::NotFound => "there is no such file".into(),
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not PEM ({other})"),
    }
}

/// The client configuration for SIP over TLS from `tls`: trust, the [`SipVerifier`], the client
/// certificate if any.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let roots = Arc::new(roots(tls.ca_file.as_deref())?);
    let verifier = SipVerifier::new(roots, tls.allow_wildcard)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Settings(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(c), Some(k)) => {
            let certs = read_certs(c).map_err(|e| TlsSetupError::ClientCert(c.clone(), e))?;
            let key =
                PrivateKeyDer::from_pem_file(k).map_err(|e| TlsSetupError::ClientKey(k.clone(), pem_error(&e)))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| TlsSetupError::ClientKey(k.clone(), e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name a server over TLS is verified against: its SIP domain as configured. A host name is
/// also sent as SNI; an IP literal is not (rustls sends SNI only for DNS names).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host.trim_end_matches('.');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_string()).map_err(|_| format!("`{host}` cannot be a TLS server name")),
    }
}

/// The certificate names the server's domain only through a wildcard, and wildcards are not allowed
/// (the error inside the rustls error the verifier returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WildcardOnly;

impl fmt::Display for WildcardOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the certificate names the server only through a wildcard (tls_allow_wildcard is off)")
    }
}

impl std::error::Error for WildcardOnly {}

/// The webpki verifier (chain to a trusted root, validity dates, the name), and then RFC 5922's
/// rule: unless wildcards are allowed, a host name must be one of the certificate's DNS names
/// exactly (case and a final dot aside), not only matched by a `*.` name.
#[derive(Debug)]
pub struct SipVerifier {
    inner: Arc<WebPkiServerVerifier>,
    allow_wildcard: bool,
}

impl SipVerifier {
    /// A verifier trusting `roots`.
    pub fn new(roots: Arc<rustls::RootCertStore>, allow_wildcard: bool) -> Result<SipVerifier, TlsSetupError> {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsSetupError::Settings(e.to_string()))?;
        Ok(SipVerifier { inner, allow_wildcard })
    }
}

/// Whether `cert` names `host` exactly among its DNS subject alternative names.
pub fn names_exactly(cert: &CertificateDer<'_>, host: &str) -> bool {
    let want = host.trim_end_matches('.');
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else { return false };
    let found = ee.valid_dns_names().any(|n| !n.starts_with('*') && n.trim_end_matches('.').eq_ignore_ascii_case(want));
    found
}

/// Whether `cert` carries `*.` and the parent of `host` as a DNS name (`*.lab` for `pbx-a.lab`). It
/// is looked for as a DER dNSName (context tag 2), so that a wildcard webpki itself does not parse
/// (`*.lab`, over a single label) is found too: such a certificate fails on its name, and the reason
/// given is the wildcard.
fn carries_wildcard_for(cert: &CertificateDer<'_>, host: &str) -> bool {
    let Some((_, parent)) = host.trim_end_matches('.').split_once('.') else { return false };
    let wildcard = format!("*.{parent}");
    let (der, n) = (cert.as_ref(), wildcard.len());
    n < 128
        && der.windows(n + 2).any(|w| {
            w.first() == Some(&0x82) && w.get(1) == Some(&(n as u8)) && w[2..].eq_ignore_ascii_case(wildcard.as_bytes())
        })
}

fn wildcard_refused() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(WildcardOnly))))
}

impl ServerCertVerifier for SipVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let r = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        let ServerName::DnsName(name) = server_name else { return r };
        if self.allow_wildcard {
            return r;
        }
        match r {
            Ok(_) if !names_exactly(end_entity, name.as_ref()) => Err(wildcard_refused()),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if carries_wildcard_for(end_entity, name.as_ref()) => Err(wildcard_refused()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a rustls error means for the core.
pub fn tls_error(e: &rustls::Error) -> TlsError {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsError::UnknownIssuer,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsError::Expired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsError::NameMismatch
            }
            CertificateError::Other(o) if o.0.downcast_ref::<WildcardOnly>().is_some() => TlsError::WildcardRefused,
            _ => TlsError::Other,
        },
        _ => TlsError::Other,
    }
}

/// What a failed handshake (as tokio-rustls reports it) means for the core: the rustls error
/// inside, else [`TlsError::Other`].
pub fn handshake_error(e: &io::Error) -> TlsError {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).map_or(TlsError::Other, tls_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn setup_errors_name_the_file() {
        let missing = TlsConfig { ca_file: Some("/nonexistent/ca.pem".into()), ..TlsConfig::default() };
        assert_eq!(
            client_config(&missing).unwrap_err().to_string(),
            "TLS CA file /nonexistent/ca.pem: there is no such file"
        );
        let dir = std::env::temp_dir().join(format!("sf-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(&TlsConfig { ca_file: Some(empty.clone()), ..TlsConfig::default() }).unwrap_err();
        assert_eq!(e.to_string(), format!("TLS CA file {}: no certificate in it", empty.display()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
