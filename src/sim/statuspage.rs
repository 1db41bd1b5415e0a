//! The lab's status page: the simulated side publishes the scenario's maintenance notices on a
//! Statuspage v2 page on loopback (HTTP/1.1, hyper's server half), each at its time on the run's
//! clock, and the real-time runners' phones poll it with the agent's own
//! [`PagePoller`](crate::net::statuspage::PagePoller).
//!
//! A published notice is listed in `upcoming.json` until its window starts, then in `active.json`
//! (status `in_progress`) until it ends; the notices' clusters are the servers' SIP domains
//! ([`DOMAINS`](super::DOMAINS)), their times wall-clock from the scenario's `starts_at`. Each
//! document carries an `ETag`, so a poll that finds it unchanged gets `304 Not Modified`, as from a
//! real page.

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant as TInstant;

use super::scenario::{PlannedSpan, Scenario};
use super::udp::{at, since};
use super::{SimError, DOMAINS};
use crate::core::Instant;
use crate::maintenance::notice::{Notice, NoticeFeed};
use crate::maintenance::schedule::Schedule;
use crate::maintenance::statuspage::{to_json, PageUrl, ACTIVE, UPCOMING};
use crate::net::statuspage::{PageFetch, PagePoller};

/// A notice published: its index in the scenario's notices, and when (on the run's clock).
pub type Published = (usize, Instant);

/// The page's name in its documents.
pub const PAGE_NAME: &str = "pbx-lab";

/// The lab's status page, served on a thread of its own until [`LabPage::stop`].
#[derive(Debug)]
pub struct LabPage {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<io::Result<()>>,
}

/// What the page serves: the scenario's notices, the first `published` of them visible.
struct Page {
    notices: Vec<Notice>,
    starts_at: jiff::Timestamp,
    origin: TInstant,
    published: AtomicUsize,
}

impl Page {
    /// The document at `path` at `mono` on the run's clock: (body, ETag), or `None` for another path.
    fn document(&self, path: &str, mono: Instant) -> Option<(String, String)> {
        let doc = path.strip_prefix('/')?;
        let upcoming = doc == UPCOMING;
        if !upcoming && doc != ACTIVE {
            return None;
        }
        let wall = self
            .starts_at
            .saturating_add(jiff::SignedDuration::from_micros(i64::try_from(mono.as_micros()).unwrap_or(i64::MAX)))
            .unwrap_or(self.starts_at);
        let shown = self.published.load(Ordering::Acquire).min(self.notices.len());
        let list: Vec<Notice> =
            self.notices[..shown].iter().filter(|n| n.end > wall && (n.start > wall) == upcoming).cloned().collect();
        let mut body = to_json(&list, PAGE_NAME);
        if !upcoming {
            // Started maintenances are in progress (`to_json` writes every one as scheduled).
            if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&body) {
                if let Some(items) = v["scheduled_maintenances"].as_array_mut() {
                    for m in items {
                        m["status"] = serde_json::json!("in_progress");
                    }
                }
                body = serde_json::to_string_pretty(&v).unwrap_or(body);
            }
        }
        let etag = format!("\"{:016x}\"", fnv(body.as_bytes()));
        Some((body, etag))
    }

    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, body: String| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r
        };
        let Some((body, etag)) = self.document(req.uri().path(), since(self.origin)) else {
            return reply(StatusCode::NOT_FOUND, "not found\n".into());
        };
        let unchanged = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
        let mut r =
            if unchanged { reply(StatusCode::NOT_MODIFIED, String::new()) } else { reply(StatusCode::OK, body) };
        if let Ok(v) = header::HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        r
    }
}

/// FNV-1a, 64 bits: the documents' ETags.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

impl LabPage {
    /// Serves `scenario`'s notices on 127.0.0.1 (a free port), each published at its time on the run's
    /// clock from `origin`; `notes` hears of each publication as it happens.
    pub fn spawn(
        scenario: &Scenario,
        origin: TInstant,
        notes: mpsc::UnboundedSender<Published>,
    ) -> io::Result<LabPage> {
        let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let page = Arc::new(Page {
            notices: scenario.notices.iter().map(|n| n.to_notice(scenario.starts_at)).collect(),
            starts_at: scenario.starts_at,
            origin,
            published: AtomicUsize::new(0),
        });
        let times: Vec<Instant> = scenario.notices.iter().map(|n| Instant::ZERO + n.at).collect();
        let (stop, mut stopped) = watch::channel(false);
        let thread = std::thread::Builder::new().name("lab-statuspage".into()).spawn(move || -> io::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                // Bounded: each pass publishes a notice, serves a connection, or ends.
                loop {
                    let next = times.get(page.published.load(Ordering::Acquire)).copied();
                    // With nothing left to publish the branch is off; its sleep is never polled.
                    let publish_at = next.map_or_else(TInstant::now, |t| at(origin, t));
                    tokio::select! {
                        r = stopped.changed() => {
                            if r.is_err() || *stopped.borrow() {
                                return Ok(());
                            }
                        }
                        _ = tokio::time::sleep_until(publish_at), if next.is_some() => {
                            let i = page.published.fetch_add(1, Ordering::AcqRel);
                            let _ = notes.send((i, since(origin)));
                        }
                        r = listener.accept() => {
                            let Ok((stream, _)) = r else { continue };
                            let page = Arc::clone(&page);
                            let service = service_fn(move |req: Request<Incoming>| {
                                let resp = page.respond(&req);
                                async move { Ok::<_, Infallible>(resp) }
                            });
                            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
                        }
                    }
                }
            })
        })?;
        Ok(LabPage { addr, stop, thread })
    }

    /// The page's base URL (`http://127.0.0.1:PORT/`).
    pub fn url(&self) -> Result<PageUrl, SimError> {
        PageUrl::parse(&format!("http://{}/", self.addr)).map_err(|_| SimError::Internal("the status page's URL"))
    }

    /// Stops serving and waits for the thread.
    pub fn stop(self) -> Result<(), SimError> {
        let _ = self.stop.send(true);
        self.thread.join().map_err(|_| SimError::Internal("the status page's thread failed"))??;
        Ok(())
    }
}

/// How often the lab's phones poll the page (the poller's shortest interval).
pub const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The phone side: polls the lab's page with the agent's own [`PagePoller`] and turns the notices into
/// planned windows on the run's clock, through the same [`Schedule`] the running agent uses.
#[derive(Debug)]
pub struct PageWatch {
    poller: PagePoller,
    starts_at: jiff::Timestamp,
    tx: mpsc::UnboundedSender<PageFetch>,
    rx: mpsc::UnboundedReceiver<PageFetch>,
    /// The windows last handed over.
    last: Vec<PlannedSpan>,
}

impl PageWatch {
    /// A watch on the page at `url` of a run that began at wall-clock `starts_at`, due at once.
    pub fn new(url: PageUrl, starts_at: jiff::Timestamp) -> Result<PageWatch, SimError> {
        let poller = PagePoller::new(url, POLL, None).map_err(|_| SimError::Internal("the status page poller"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(PageWatch { poller, starts_at, tx, rx, last: Vec::new() })
    }

    /// When the next poll is due; `None` while one runs.
    pub fn due(&self) -> Option<TInstant> {
        self.poller.due()
    }

    /// Starts a poll on the current runtime; its result comes from [`PageWatch::fetched`].
    pub fn start(&mut self) {
        let fetch = self.poller.start();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(fetch.await);
        });
    }

    /// The next poll's result.
    pub async fn fetched(&mut self) -> Option<PageFetch> {
        self.rx.recv().await
    }

    /// A poll's result without waiting, if one is in.
    pub fn try_fetched(&mut self) -> Option<PageFetch> {
        self.rx.try_recv().ok()
    }

    /// Takes a poll's result at `now` on the run's clock: the windows of the page's notices that affect
    /// the lab's servers (run time) when they changed (a notice published, moved or withdrawn, a
    /// window ended), `None` when they did not; the error when the poll failed (the notices taken
    /// before stay in force).
    pub fn finish(&mut self, fetch: PageFetch, now: Instant) -> Result<Option<Vec<PlannedSpan>>, String> {
        let out = self.poller.finish(fetch, &DOMAINS, TInstant::now());
        if let Some(e) = out.error {
            return Err(e);
        }
        let Some(notices) = out.notices else { return Ok(None) };
        let schedule = Schedule {
            primary_cluster: Some(DOMAINS[0].to_string()),
            backup_cluster: Some(DOMAINS[1].to_string()),
            feed: NoticeFeed::new(notices).map_err(|e| e.to_string())?,
            ..Schedule::default()
        };
        let us = i64::try_from(now.as_micros()).unwrap_or(i64::MAX);
        let wall = self.starts_at.saturating_add(jiff::SignedDuration::from_micros(us)).unwrap_or(self.starts_at);
        let spans: Vec<PlannedSpan> = schedule
            .core_windows(wall, now)
            .into_iter()
            .map(|w| PlannedSpan {
                side: w.side,
                start: w.start.saturating_duration_since(Instant::ZERO),
                end: w.end.saturating_duration_since(Instant::ZERO),
            })
            .collect();
        if spans == self.last {
            return Ok(None);
        }
        self.last.clone_from(&spans);
        Ok(Some(spans))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::statuspage::notices;

    /// The page of one notice published at 0 s, its window from 1 h to 2 h, read at `at` on the run's
    /// clock: what `upcoming.json` and `active.json` list, read back as the poller reads them.
    fn listed(at: crate::core::Duration) -> [Vec<String>; 2] {
        let text = "name = \"p\"\nduration = \"3h\"\n[[at]]\nt = \"0s\"\n\
                    notice = { id = \"N-1\", server = \"backup\", starts_in = \"1h\", lasts = \"1h\" }\n";
        let s = Scenario::parse(text, std::path::Path::new("p.toml")).unwrap();
        let page = Page {
            notices: s.notices.iter().map(|n| n.to_notice(s.starts_at)).collect(),
            starts_at: s.starts_at,
            origin: TInstant::now(),
            published: AtomicUsize::new(1),
        };
        [UPCOMING, ACTIVE].map(|doc| {
            let (body, _) = page.document(&format!("/{doc}"), Instant::ZERO + at).unwrap();
            notices(&body, doc, &DOMAINS).unwrap().into_iter().map(|n| format!("{} {}", n.id, n.cluster)).collect()
        })
    }

    #[test]
    fn a_published_notice_is_upcoming_then_active_then_gone() {
        use crate::core::Duration;
        let none: Vec<String> = Vec::new();
        assert_eq!(listed(Duration::from_secs(60)), [vec!["N-1 pbx-b.lab".to_string()], none.clone()]);
        assert_eq!(listed(Duration::from_secs(5400)), [none.clone(), vec!["N-1 pbx-b.lab".to_string()]]);
        assert_eq!(listed(Duration::from_secs(7300)), [none.clone(), none]);
    }

    #[test]
    fn a_notice_is_served_at_its_wall_clock_times() {
        let text = "name = \"p\"\nduration = \"1m\"\n[[at]]\nt = \"10s\"\n\
                    notice = { id = \"N-1\", starts_in = \"1.5s\", lasts = \"2m\", title = \"Upgrade\" }\n";
        let s = Scenario::parse(text, std::path::Path::new("p.toml")).unwrap();
        let n = s.notices[0].to_notice(s.starts_at);
        assert_eq!(n.published.to_string(), "2024-06-03T08:00:10Z");
        assert_eq!(n.start.to_string(), "2024-06-03T08:00:11.5Z");
        assert_eq!(n.end.to_string(), "2024-06-03T08:02:11.5Z");
        assert_eq!((n.cluster.as_str(), n.title.as_deref()), ("pbx-a.lab", Some("Upgrade")));
        let page =
            Page { notices: vec![n], starts_at: s.starts_at, origin: TInstant::now(), published: AtomicUsize::new(0) };
        // Not yet published: an empty document; another path: none.
        let (body, etag) = page.document(&format!("/{UPCOMING}"), Instant::from_secs(20)).unwrap();
        assert!(notices(&body, UPCOMING, &DOMAINS).unwrap().is_empty());
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        assert!(page.document("/api/v2/summary.json", Instant::ZERO).is_none());
    }
}
