//! Fetching one document over HTTP/1.1 for the maintenance sources polled on the network (the
//! status page, a calendar URL): `https://` through rustls, `http://` for loopback tests and the lab;
//! conditional (`If-None-Match`, `If-Modified-Since`: a `304` keeps the document as it was), bounded in
//! time ([`REQUEST_TIMEOUT`]) and in size, and with the backoff a poller applies after failures.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// How long one request may take, connection and body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between polls after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// What a server said last time about a document, sent back to ask whether it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// One document fetched.
#[derive(Debug)]
pub enum Fetched {
    /// `304 Not Modified`: as it was.
    NotModified,
    /// `200` with this body and these validators.
    Body(String, Validators),
}

/// The document to fetch: where, and what is accepted.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `https://` (else `http://`).
    pub https: bool,
    /// The host name or address (an IPv6 literal without brackets).
    pub host: &'a str,
    /// The port.
    pub port: u16,
    /// The path and query.
    pub path: &'a str,
    /// The `Accept` header.
    pub accept: &'a str,
    /// The largest body read; a larger one is an error.
    pub max_body: usize,
}

impl Target<'_> {
    /// The document's URL, for errors.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.to_owned() };
        format!("{scheme}://{host}:{}{}", self.port, self.path)
    }
}

/// The wait before the next poll after `failures` failures in a row: `interval` doubled per failure,
/// at most [`MAX_BACKOFF`] (and never less than `interval`).
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(16);
    interval.saturating_mul(factor).min(MAX_BACKOFF).max(interval)
}

/// A TLS client trusting `ca_file`'s certificates, or the system's store when there is none.
pub fn tls_connector(ca_file: Option<&Path>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{}: no certificate in the file", path.display()));
            }
            for c in certs {
                roots.add(c).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A certificate the store holds but rustls cannot use is skipped, as browsers do.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("the system's trust store holds no usable certificate".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Fetches one document, conditionally; the error names the URL and what went wrong.
pub async fn fetch(
    target: Target<'_>,
    v: &Validators,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<Fetched, String> {
    let full = target.url();
    let work = async {
        let tcp = TcpStream::connect((target.host, target.port)).await.map_err(|e| format!("connect: {e}"))?;
        match tls {
            Some(tls) => {
                let name =
                    rustls::pki_types::ServerName::try_from(target.host.to_owned()).map_err(|e| e.to_string())?;
                let stream = tls.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
                exchange(stream, target, v).await
            }
            None => exchange(tcp, target, v).await,
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(r) => r.map_err(|e| format!("{full}: {e}")),
        Err(_) => Err(format!("{full}: no answer within {} s", REQUEST_TIMEOUT.as_secs())),
    }
}

async fn exchange<S>(io: S, t: Target<'_>, v: &Validators) -> Result<Fetched, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let host = if t.host.contains(':') { format!("[{}]:{}", t.host, t.port) } else { format!("{}:{}", t.host, t.port) };
    let mut req = Request::get(t.path)
        .header(header::HOST, host)
        .header(header::ACCEPT, t.accept)
        .header(header::USER_AGENT, concat!("sip-failover/", env!("CARGO_PKG_VERSION")));
    if let Some(e) = &v.etag {
        req = req.header(header::IF_NONE_MATCH, e);
    }
    if let Some(m) = &v.last_modified {
        req = req.header(header::IF_MODIFIED_SINCE, m);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if status != StatusCode::OK {
            return Err(format!("HTTP {status}"));
        }
        let text = |h: header::HeaderName| resp.headers().get(h).and_then(|x| x.to_str().ok()).map(str::to_owned);
        let validators = Validators { etag: text(header::ETAG), last_modified: text(header::LAST_MODIFIED) };
        let body = Limited::new(resp.into_body(), t.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("the body is larger than {} bytes", t.max_body)
                } else {
                    format!("reading the body: {e}")
                }
            })?
            .to_bytes();
        let body = String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".to_string())?;
        Ok(Fetched::Body(body, validators))
    }
    .await;
    conn.abort();
    result
}
