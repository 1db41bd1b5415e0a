//! Polling a status page (Statuspage v2 public API) for scheduled maintenances.
//!
//! Every poll interval (`--statuspage-poll`, default 60 s) one task fetches the page's
//! [`UPCOMING`](crate::maintenance::statuspage::UPCOMING) and
//! [`ACTIVE`](crate::maintenance::statuspage::ACTIVE) documents over HTTP/1.1 (`https://` through
//! rustls, `http://` for loopback tests and the lab), conditionally (`If-None-Match`,
//! `If-Modified-Since`: a `304` keeps the document as it was), each request bounded in time and size.
//! The result comes back to the maintenance adapter as an [`Input`](super::adapter::Input). An
//! unreachable page, an HTTP error, a body that is too large or not the schema keeps the last good
//! notices in force; the poller reports what went wrong and where and backs off (the interval
//! doubled per failure in a row, at most [`MAX_BACKOFF`]).

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
use tokio::time::Instant as TInstant;
use tokio_rustls::rustls;

use crate::maintenance::statuspage::{self, PageUrl, ACTIVE, MAX_BODY, UPCOMING};
use crate::maintenance::Notice;

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

/// One poll of a page: each document fetched, or why not (the URL and what went wrong).
#[derive(Debug)]
pub struct PageFetch {
    /// `upcoming.json`, then `active.json`.
    pub docs: [Result<Fetched, String>; 2],
}

/// The poll schedule of one page and the last good notices read from it.
pub struct PagePoller {
    url: PageUrl,
    interval: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
    validators: [Validators; 2],
    last: [Option<Vec<Notice>>; 2],
    failures: u32,
    next: TInstant,
    busy: bool,
}

/// What a finished poll changed.
#[derive(Debug, Default)]
pub struct PollOutcome {
    /// The page's notices, when they changed (or on the first good poll).
    pub notices: Option<Vec<Notice>>,
    /// What went wrong, when something did; the last good notices stay.
    pub error: Option<String>,
    /// When the next poll comes.
    pub retry_in: Duration,
}

impl std::fmt::Debug for PagePoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagePoller").field("url", &self.url).field("failures", &self.failures).finish_non_exhaustive()
    }
}

impl PagePoller {
    /// A poller for `url` every `interval`, due at once; for `https://` pages trusting `ca_file`'s
    /// certificates, or the system's store when there is none.
    pub fn new(url: PageUrl, interval: Duration, ca_file: Option<&Path>) -> Result<PagePoller, String> {
        let tls = if url.https { Some(tls_connector(ca_file)?) } else { None };
        Ok(PagePoller {
            url,
            interval: interval.max(Duration::from_secs(1)),
            tls,
            validators: Default::default(),
            last: [None, None],
            failures: 0,
            next: TInstant::now(),
            busy: false,
        })
    }

    /// The page's base URL.
    pub fn url(&self) -> &PageUrl {
        &self.url
    }

    /// When the next poll is due (`None` while one runs).
    pub fn due(&self) -> Option<TInstant> {
        (!self.busy).then_some(self.next)
    }

    /// Starts a poll: the future fetches both documents; hand its result to [`PagePoller::finish`].
    pub fn start(&mut self) -> impl std::future::Future<Output = PageFetch> + Send + 'static {
        self.busy = true;
        let url = self.url.clone();
        let tls = self.tls.clone();
        let validators = self.validators.clone();
        async move {
            let [v0, v1] = validators;
            let up = fetch(&url, UPCOMING, &v0, tls.as_ref()).await;
            let active = fetch(&url, ACTIVE, &v1, tls.as_ref()).await;
            PageFetch { docs: [up, active] }
        }
    }

    /// Takes a poll's result for a phone in `clusters`: the notices if they changed, the error if
    /// something went wrong (nothing of that poll is taken then), and when the next poll comes.
    pub fn finish(&mut self, fetch: PageFetch, clusters: &[&str], now: TInstant) -> PollOutcome {
        self.busy = false;
        let mut parsed: [Option<Vec<Notice>>; 2] = [None, None];
        let mut validators = self.validators.clone();
        let mut error = None;
        for (i, (doc, name)) in fetch.docs.into_iter().zip([UPCOMING, ACTIVE]).enumerate() {
            match doc {
                Err(e) => error = error.or(Some(e)),
                Ok(Fetched::NotModified) => parsed[i] = self.last[i].clone(),
                Ok(Fetched::Body(body, v)) => match statuspage::notices(&body, &self.url.document(name), clusters) {
                    Ok(n) => {
                        parsed[i] = Some(n);
                        validators[i] = v;
                    }
                    Err(e) => error = error.or(Some(e.to_string())),
                },
            }
        }
        let outcome = match (error, parsed) {
            (None, [Some(up), Some(active)]) => {
                self.failures = 0;
                let changed = self.last[0].as_ref() != Some(&up) || self.last[1].as_ref() != Some(&active);
                self.validators = validators;
                self.last = [Some(up.clone()), Some(active.clone())];
                PollOutcome {
                    notices: changed.then(|| statuspage::merge(up, active)),
                    error: None,
                    retry_in: self.interval,
                }
            }
            (error, _) => {
                self.failures = self.failures.saturating_add(1);
                let factor = 1u32 << self.failures.min(16);
                let retry_in = self.interval.saturating_mul(factor).min(MAX_BACKOFF).max(self.interval);
                // A 304 to a document never read (the first answer was lost) is asked again unconditionally.
                for (i, last) in self.last.iter().enumerate() {
                    if last.is_none() {
                        self.validators[i] = Validators::default();
                    }
                }
                PollOutcome {
                    notices: None,
                    error: Some(error.unwrap_or_else(|| "a document was not modified but never read".into())),
                    retry_in,
                }
            }
        };
        self.next = now + outcome.retry_in;
        outcome
    }
}

fn tls_connector(ca_file: Option<&Path>) -> Result<tokio_rustls::TlsConnector, String> {
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
async fn fetch(
    url: &PageUrl,
    doc: &str,
    v: &Validators,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<Fetched, String> {
    let full = url.document(doc);
    let work = async {
        let tcp = TcpStream::connect((url.host.as_str(), url.port)).await.map_err(|e| format!("connect: {e}"))?;
        match tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| e.to_string())?;
                let stream = tls.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
                exchange(stream, url, doc, v).await
            }
            None => exchange(tcp, url, doc, v).await,
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(r) => r.map_err(|e| format!("{full}: {e}")),
        Err(_) => Err(format!("{full}: no answer within {} s", REQUEST_TIMEOUT.as_secs())),
    }
}

async fn exchange<S>(io: S, url: &PageUrl, doc: &str, v: &Validators) -> Result<Fetched, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let mut req = Request::get(format!("{}{doc}", url.prefix))
        .header(header::HOST, host)
        .header(header::ACCEPT, "application/json")
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
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("the body is larger than {MAX_BODY} bytes")
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
