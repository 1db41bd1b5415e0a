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
use std::time::Duration;

use tokio::time::Instant as TInstant;

use super::http::{backoff, fetch, tls_connector, Target};
pub use super::http::{Fetched, Validators, MAX_BACKOFF, REQUEST_TIMEOUT};

use crate::maintenance::statuspage::{self, PageUrl, ACTIVE, MAX_BODY, UPCOMING};
use crate::maintenance::Notice;

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
            let (p0, p1) = (format!("{}{UPCOMING}", url.prefix), format!("{}{ACTIVE}", url.prefix));
            let get = |path| Target {
                https: url.https,
                host: &url.host,
                port: url.port,
                path,
                accept: "application/json",
                max_body: MAX_BODY,
            };
            let up = fetch(get(&p0), &v0, tls.as_ref()).await;
            let active = fetch(get(&p1), &v1, tls.as_ref()).await;
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
                let retry_in = backoff(self.interval, self.failures);
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
