//! Polling a maintenance calendar served over HTTP (`maintenance.calendar = "https://..."`).
//!
//! Every poll interval (`calendar_poll`, default 300 s) one task fetches the calendar with
//! [`http::fetch`](super::http::fetch), conditionally and bounded in time and in size
//! ([`MAX_BODY`]). The result comes back to the maintenance adapter as an
//! [`Input`](super::adapter::Input), which reads it into notices over the horizon around the wall
//! clock ([`Horizon::around`]). A `304` reads the last good calendar again, so its occurrences follow
//! the horizon as time goes on. An unreachable server, an HTTP error, a body too large or not a
//! calendar we can read keeps the last good notices in force; the poller says what went wrong and
//! where, and backs off (the interval doubled per failure in a row, at most
//! [`MAX_BACKOFF`](super::http::MAX_BACKOFF)).

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant as TInstant;

use super::http::{backoff, fetch, tls_connector, Fetched, Target, Validators};
use super::statuspage::PollOutcome;
use crate::maintenance::icalendar::{self, CalendarUrl, Horizon, MAX_BODY};
use crate::maintenance::Notice;

/// One poll of a calendar: the document, or why not (the URL and what went wrong).
#[derive(Debug)]
pub struct CalendarFetch {
    /// The answer.
    pub doc: Result<Fetched, String>,
}

/// The poll schedule of one calendar URL, the last good calendar and its notices.
pub struct CalendarPoller {
    url: CalendarUrl,
    interval: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
    validators: Validators,
    body: Option<String>,
    last: Option<Vec<Notice>>,
    failures: u32,
    next: TInstant,
    busy: bool,
}

impl std::fmt::Debug for CalendarPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalendarPoller")
            .field("url", &self.url)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl CalendarPoller {
    /// A poller for `url` every `interval`, due at once; for `https://` trusting `ca_file`'s
    /// certificates, or the system's store when there is none.
    pub fn new(url: CalendarUrl, interval: Duration, ca_file: Option<&Path>) -> Result<CalendarPoller, String> {
        let tls = if url.https { Some(tls_connector(ca_file)?) } else { None };
        Ok(CalendarPoller {
            url,
            interval: interval.max(Duration::from_secs(1)),
            tls,
            validators: Validators::default(),
            body: None,
            last: None,
            failures: 0,
            next: TInstant::now(),
            busy: false,
        })
    }

    /// The calendar's URL.
    pub fn url(&self) -> &CalendarUrl {
        &self.url
    }

    /// The notices of the last good calendar, if one was read.
    pub fn notices(&self) -> Option<&[Notice]> {
        self.last.as_deref()
    }

    /// When the next poll is due (`None` while one runs).
    pub fn due(&self) -> Option<TInstant> {
        (!self.busy).then_some(self.next)
    }

    /// Starts a poll; hand the future's result to [`CalendarPoller::finish`].
    pub fn start(&mut self) -> impl std::future::Future<Output = CalendarFetch> + Send + 'static {
        self.busy = true;
        let url = self.url.clone();
        let tls = self.tls.clone();
        let validators = self.validators.clone();
        async move {
            let target = Target {
                https: url.https,
                host: &url.host,
                port: url.port,
                path: &url.path,
                accept: "text/calendar",
                max_body: MAX_BODY,
            };
            CalendarFetch { doc: fetch(target, &validators, tls.as_ref()).await }
        }
    }

    /// Takes a poll's result for a phone in `clusters` at wall-clock time `wall`: the notices if
    /// they changed (or on the first good poll), the error if something went wrong (the last good
    /// notices stay then), and when the next poll comes.
    pub fn finish(&mut self, fetch: CalendarFetch, clusters: &[&str], wall: Timestamp, now: TInstant) -> PollOutcome {
        self.busy = false;
        let source = self.url.to_string();
        let horizon = Horizon::around(wall);
        let read = match fetch.doc {
            Err(e) => Err(e),
            Ok(Fetched::NotModified) => match &self.body {
                Some(body) => icalendar::notices(body, &source, clusters, horizon).map_err(|e| e.to_string()),
                None => {
                    // The first answer was lost: ask again unconditionally.
                    self.validators = Validators::default();
                    Err(format!("{source}: not modified, but never read"))
                }
            },
            Ok(Fetched::Body(body, v)) => match icalendar::notices(&body, &source, clusters, horizon) {
                Ok(n) => {
                    self.body = Some(body);
                    self.validators = v;
                    Ok(n)
                }
                Err(e) => Err(e.to_string()),
            },
        };
        let outcome = match read {
            Ok(notices) => {
                self.failures = 0;
                let changed = self.last.as_ref() != Some(&notices);
                self.last = Some(notices.clone());
                PollOutcome { notices: changed.then_some(notices), error: None, retry_in: self.interval }
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                PollOutcome { notices: None, error: Some(e), retry_in: backoff(self.interval, self.failures) }
            }
        };
        self.next = now + outcome.retry_in;
        outcome
    }
}
