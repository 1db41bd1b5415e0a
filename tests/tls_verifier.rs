//! The certificate check of SIP over TLS (`net::tls`), with certificates from the lab's private CA
//! (`sim::certs`): the SIP domain must be named exactly unless wildcards are allowed (RFC 5922),
//! expired, wrong-name and unknown-CA certificates are refused with their reason, and an IP literal
//! is sent no SNI while a name is (a real handshake on loopback, the server recording the SNI).

use std::sync::{Arc, Mutex};

use sip_failover::config::TlsConfig;
use sip_failover::core::TlsError;
use sip_failover::net::tls::{client_config, handshake_error, server_name, tls_error, SipVerifier};
use sip_failover::sim::certs::{Authority, Identity, Leaf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::ServerCertVerifier;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

fn roots(ca: &Authority) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(CertificateDer::pem_slice_iter(ca.ca_pem().as_bytes()).map(Result::unwrap));
    Arc::new(roots)
}

fn verify(ca: &Authority, id: &Identity, name: &str, allow_wildcard: bool) -> Result<(), TlsError> {
    let v = SipVerifier::new(roots(ca), allow_wildcard).unwrap();
    let cert = CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap();
    let name = server_name(name).unwrap();
    v.verify_server_cert(&cert, &[], &name, &[], UnixTime::now()).map(|_| ()).map_err(|e| tls_error(&e))
}

#[test]
fn the_sip_domain_must_be_named_and_wildcards_are_refused_unless_allowed() {
    let ca = Authority::new("test CA").unwrap();
    let good = ca.issue(Leaf::Good("pbx-a.lab.example")).unwrap();
    let wildcard = ca.issue(Leaf::Wildcard("pbx-a.lab.example")).unwrap();
    assert_eq!(verify(&ca, &good, "pbx-a.lab.example", false), Ok(()));
    assert_eq!(verify(&ca, &good, "PBX-A.Lab.Example.", false), Ok(()), "case and a final dot aside");
    assert_eq!(verify(&ca, &wildcard, "pbx-a.lab.example", false), Err(TlsError::WildcardRefused));
    assert_eq!(verify(&ca, &wildcard, "pbx-a.lab.example", true), Ok(()));
    // Allowed, a wildcard still covers one label only.
    assert_eq!(verify(&ca, &wildcard, "x.pbx-a.lab.example", true), Err(TlsError::NameMismatch));
    // A wildcard over a single label (`*.lab`, which webpki does not take as a name at all) is still
    // reported as the wildcard it is, and allowing wildcards does not make it name the server.
    let short = ca.issue(Leaf::Wildcard("pbx-a.lab")).unwrap();
    assert_eq!(verify(&ca, &short, "pbx-a.lab", false), Err(TlsError::WildcardRefused));
    assert_eq!(verify(&ca, &short, "pbx-a.lab", true), Err(TlsError::NameMismatch));
    assert_eq!(verify(&ca, &short, "pbx-b.other", false), Err(TlsError::NameMismatch), "a wildcard for another domain");
    assert_eq!(verify(&ca, &good, "pbx-b.lab.example", false), Err(TlsError::NameMismatch));
    assert_eq!(verify(&ca, &good, "127.0.0.1", false), Err(TlsError::NameMismatch), "no IP address in it");
    let expired = ca.issue(Leaf::Expired("pbx-a.lab.example")).unwrap();
    assert_eq!(verify(&ca, &expired, "pbx-a.lab.example", false), Err(TlsError::Expired));
    let stranger = Authority::new("another CA").unwrap().issue(Leaf::Good("pbx-a.lab.example")).unwrap();
    assert_eq!(verify(&ca, &stranger, "pbx-a.lab.example", false), Err(TlsError::UnknownIssuer));
}

/// A server certificate resolver that records the SNI of each ClientHello.
#[derive(Debug)]
struct RecordSni {
    key: Arc<CertifiedKey>,
    seen: Mutex<Vec<Option<String>>>,
}

impl ResolvesServerCert for RecordSni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.seen.lock().unwrap().push(hello.server_name().map(str::to_string));
        Some(self.key.clone())
    }
}

/// One handshake against a loopback server presenting `id`, connecting with `name`; the SNI the
/// server saw and the client's outcome.
fn handshake(ca_file: &std::path::Path, id: &Identity, name: &str) -> (Option<String>, Result<(), TlsError>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
        let signing = provider.key_provider.load_private_key(key).unwrap();
        let cert = CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap();
        let resolver =
            Arc::new(RecordSni { key: Arc::new(CertifiedKey::new(vec![cert], signing)), seen: Mutex::new(vec![]) });
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            if let Ok(mut tls) = acceptor.accept(s).await {
                let mut b = [0u8; 4];
                let _ = tls.read_exact(&mut b).await;
            }
        });
        let cfg = client_config(&TlsConfig { ca_file: Some(ca_file.to_path_buf()), ..TlsConfig::default() }).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let out = match tokio_rustls::TlsConnector::from(cfg).connect(server_name(name).unwrap(), tcp).await {
            Ok(mut tls) => {
                tls.write_all(b"ping").await.unwrap();
                Ok(())
            }
            Err(e) => Err(handshake_error(&e)),
        };
        let _ = served.await;
        let sni = resolver.seen.lock().unwrap().first().cloned().flatten();
        (sni, out)
    })
}

#[test]
fn sni_goes_with_names_and_never_with_ip_literals() {
    let ca = Authority::new("test CA").unwrap();
    let dir = std::env::temp_dir().join(format!("sf-tls-sni-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let named = ca.issue(Leaf::Good("pbx-a.lab.example")).unwrap();
    assert_eq!(handshake(&ca_file, &named, "pbx-a.lab.example"), (Some("pbx-a.lab.example".into()), Ok(())));
    // An IP literal: no SNI, and the certificate (which names no address) does not verify.
    assert_eq!(handshake(&ca_file, &named, "127.0.0.1"), (None, Err(TlsError::NameMismatch)));
    // Over a real handshake the reasons come through tokio-rustls's error as well.
    let wildcard = ca.issue(Leaf::Wildcard("pbx-a.lab.example")).unwrap();
    let got = handshake(&ca_file, &wildcard, "pbx-a.lab.example");
    assert_eq!(got, (Some("pbx-a.lab.example".into()), Err(TlsError::WildcardRefused)));
    let _ = std::fs::remove_dir_all(&dir);
}
