//! Planned maintenance for the running agent: reads the notice feed (again whenever the file
//! changes), polls the status page (see [`statuspage`](super::statuspage)) and reads the maintenance
//! calendar (a file, again whenever it changes and every [`REEXPAND`] as its horizon moves; or a URL,
//! polled, see [`calendar`](super::calendar)), hands the windows
//! that affect the phone's servers to the core on its clock (again when the wall clock jumps),
//! reports the bell count when it changes, and applies a pending rebuild when its upgrade window
//! comes.

use std::path::PathBuf;
use std::time::SystemTime;

use jiff::Timestamp;
use serde_json::json;

use super::adapter::{Action, Adapter, Ctx, Input};
use super::calendar::{CalendarFetch, CalendarPoller};
use super::statuspage::{PageFetch, PagePoller};
use crate::config::apply::{PendingRebuild, Store};
use crate::config::{CalendarFeed, CalendarSource, PhoneConfig};
use crate::core::{Duration, Instant, PlannedWindow};
use crate::maintenance::icalendar::{self, Horizon};
use crate::maintenance::notice::{Notice, NoticeFeed};
use crate::maintenance::schedule::{ClockWatch, Schedule};

/// How often the feed file and the wall clock are looked at.
pub const POLL: Duration = Duration::from_secs(2);
/// How often a calendar file that did not change is read again over the moved horizon.
pub const REEXPAND: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// What changed at a refresh.
#[derive(Debug, Default)]
pub struct Update {
    /// The windows to hand the core (all of them, replacing the previous set), when they changed.
    pub windows: Option<Vec<PlannedWindow>>,
    /// The new bell count, when it changed.
    pub bell: Option<usize>,
    /// Why the refresh happened: `"start"`, `"feed_changed"`, `"statuspage"`, `"clock_jump"`,
    /// `"schedule"`.
    pub reason: &'static str,
    /// The feed could not be read; the previous one stays.
    pub feed_error: Option<String>,
    /// The calendar file was read (again): the ids of its notices.
    pub calendar: Option<Vec<String>>,
    /// The calendar file could not be read; its previous notices stay.
    pub calendar_error: Option<String>,
}

/// The maintenance state of a running agent.
#[derive(Debug)]
pub struct Planner {
    schedule: Schedule,
    notices: Option<PathBuf>,
    feed_stamp: Option<SystemTime>,
    watch: ClockWatch,
    bell: Option<usize>,
    windows: Vec<PlannedWindow>,
    next_change: Option<Timestamp>,
    store: Option<Store>,
    /// The notices of the file, and of the status page; the schedule's feed holds both.
    file_notices: Vec<Notice>,
    page_notices: Vec<Notice>,
    page_changed: bool,
    /// The calendar: its file (when it is one), the file's last good text and when it was last
    /// expanded; its notices (from the file or the URL).
    calendar_file: Option<PathBuf>,
    calendar_stamp: Option<SystemTime>,
    calendar_text: Option<String>,
    calendar_expanded: Option<Timestamp>,
    calendar_notices: Vec<Notice>,
    calendar_changed: bool,
}

fn stamp(p: &Option<PathBuf>) -> Option<SystemTime> {
    p.as_ref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

impl Planner {
    /// A planner for `cfg`; the feed is read at the first [`Planner::refresh`].
    pub fn new(cfg: &PhoneConfig, wall: Timestamp, mono: Instant) -> Planner {
        let mut schedule = Schedule {
            primary_cluster: cfg.primary.cluster.clone(),
            backup_cluster: cfg.backup.as_ref().and_then(|b| b.cluster.clone()),
            primary_windows: cfg.maintenance.primary_windows.clone(),
            backup_windows: cfg.maintenance.backup_windows.clone(),
            ..Schedule::default()
        };
        schedule.feed = Default::default();
        Planner {
            schedule,
            notices: cfg.maintenance.notices.clone(),
            feed_stamp: None,
            watch: ClockWatch::new(wall, mono, Duration::from_secs(2)),
            bell: None,
            windows: Vec::new(),
            next_change: None,
            store: cfg.network.state_dir.as_ref().map(|d| Store::new(d.join("config"))),
            file_notices: Vec::new(),
            page_notices: Vec::new(),
            page_changed: false,
            calendar_file: match &cfg.maintenance.calendar {
                Some(CalendarFeed { source: CalendarSource::File(p), .. }) => Some(p.clone()),
                _ => None,
            },
            calendar_stamp: None,
            calendar_text: None,
            calendar_expanded: None,
            calendar_notices: Vec::new(),
            calendar_changed: false,
        }
    }

    /// The calendar URL's notices changed; the next refresh takes them.
    pub fn set_calendar_notices(&mut self, notices: Vec<Notice>) {
        self.calendar_notices = notices;
        self.calendar_changed = true;
    }

    /// The clusters of the phone's servers.
    pub fn clusters(&self) -> Vec<&str> {
        [self.schedule.primary_cluster.as_deref(), self.schedule.backup_cluster.as_deref()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The calendar file, if the calendar is one.
    pub fn calendar_file(&self) -> Option<&std::path::Path> {
        self.calendar_file.as_deref()
    }

    /// Reads the calendar file when it changed (or `first`), or its last good text again when the
    /// horizon moved (`again`); reports into `update`.
    fn refresh_calendar_file(&mut self, wall: Timestamp, first: bool, again: bool, update: &mut Update) {
        let Some(path) = self.calendar_file.clone() else { return };
        let s = stamp(&self.calendar_file);
        let reread = first || s != self.calendar_stamp;
        let text = if reread {
            self.calendar_stamp = s;
            match icalendar::read_file(&path) {
                Ok(t) => Some(t),
                Err(e) => {
                    update.calendar_error = Some(e.to_string());
                    None
                }
            }
        } else if again {
            self.calendar_text.clone()
        } else {
            None
        };
        let Some(text) = text else { return };
        let clusters = self.clusters();
        let read = icalendar::notices(&text, &path.display().to_string(), &clusters, Horizon::around(wall));
        match read {
            Ok(notices) => {
                self.calendar_expanded = Some(wall);
                self.calendar_text = Some(text);
                if reread || notices != self.calendar_notices {
                    update.calendar = Some(notices.iter().map(|n| n.id.clone()).collect());
                    self.set_calendar_notices(notices);
                }
            }
            // A broken calendar keeps the previous notices.
            Err(e) => update.calendar_error = Some(e.to_string()),
        }
    }

    /// The status page's notices changed; the next refresh takes them.
    pub fn set_page_notices(&mut self, notices: Vec<Notice>) {
        self.page_notices = notices;
        self.page_changed = true;
    }

    /// The feed of the file's, the page's and the calendar's notices together; an error (an id in
    /// two of them) keeps the previous feed.
    fn combine(&mut self) -> Result<(), String> {
        let all = self.file_notices.iter().chain(&self.page_notices).chain(&self.calendar_notices).cloned().collect();
        self.schedule.feed =
            NoticeFeed::new(all).map_err(|e| format!("file, status page and calendar together: {e}"))?;
        Ok(())
    }

    /// The configuration store beside the state file, if the agent has a state directory.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Looks at the feed file, the wall clock and the schedule; returns what changed. `first` forces
    /// a full refresh.
    pub fn refresh(&mut self, wall: Timestamp, mono: Instant, first: bool) -> Update {
        let mut update = Update { reason: "schedule", ..Update::default() };
        let mut recompute = first || self.next_change.is_some_and(|t| t <= wall);
        if first {
            update.reason = "start";
        }
        let jumped = self.watch.jumped(wall, mono);
        if jumped {
            update.reason = "clock_jump";
            recompute = true;
        }
        let mut reloaded = false;
        let s = stamp(&self.notices);
        if first || s != self.feed_stamp {
            self.feed_stamp = s;
            if let Some(path) = &self.notices {
                match crate::maintenance::NoticeFeed::load(path) {
                    Ok(feed) => {
                        self.file_notices = feed.notices().to_vec();
                        if let Err(e) = self.combine() {
                            update.feed_error = Some(e);
                        }
                        if !first {
                            update.reason = "feed_changed";
                        }
                        reloaded = true;
                        recompute = true;
                    }
                    // A missing or broken feed keeps the previous notices.
                    Err(e) => update.feed_error = Some(e.to_string()),
                }
            }
        }
        let again =
            jumped || self.calendar_expanded.is_none_or(|t| t.checked_add(REEXPAND).is_ok_and(|due| wall >= due));
        self.refresh_calendar_file(wall, first, again, &mut update);
        if std::mem::take(&mut self.calendar_changed) {
            match self.combine() {
                Ok(()) => {
                    if !first {
                        update.reason = "calendar";
                    }
                    reloaded = true;
                    recompute = true;
                }
                Err(e) => update.feed_error = Some(e),
            }
        }
        if std::mem::take(&mut self.page_changed) {
            match self.combine() {
                Ok(()) => {
                    update.reason = "statuspage";
                    reloaded = true;
                    recompute = true;
                }
                Err(e) => update.feed_error = Some(e),
            }
        }
        if recompute {
            let windows = self.schedule.core_windows(wall, mono);
            // A reloaded feed is always handed over and reported, even when its windows are the
            // same: the operator sees the edit taken, and the core's one-step replace keeps the phone put.
            if first || reloaded || windows != self.windows {
                self.windows = windows.clone();
                update.windows = Some(windows);
            }
            let bell = self.schedule.bell(wall);
            if self.bell != Some(bell) {
                self.bell = Some(bell);
                update.bell = Some(bell);
            }
            self.next_change = self.schedule.next_change(wall);
        }
        update
    }

    /// Whether no refresh has run yet.
    pub fn bell_unknown(&self) -> bool {
        self.bell.is_none()
    }

    /// The bell count at the last refresh.
    pub fn bell(&self) -> usize {
        self.bell.unwrap_or(0)
    }

    /// A pending rebuild whose upgrade window has come, made the phone's configuration.
    pub fn due_rebuild(&self, wall: Timestamp) -> Option<Result<PhoneConfig, String>> {
        let store = self.store.as_ref()?;
        match store.pending_rebuild() {
            Ok(Some(PendingRebuild { apply_at: Some(t), .. })) if t <= wall => {
                store.take_due_rebuild(wall).map_err(|e| e.to_string()).transpose()
            }
            Ok(_) => None,
            Err(e) => Some(Err(e.to_string())),
        }
    }
}

/// The maintenance adapter: every [`POLL`], looks at the feed, the wall clock and the schedule; hands
/// changed windows to the agent in one step and reports them and the bell; asks the loop to load a
/// rebuild whose upgrade window came.
#[derive(Debug)]
pub struct Maintenance {
    planner: Planner,
    next: tokio::time::Instant,
    page: Option<PagePoller>,
    /// Why the status page could not be polled at all (a bad CA file), reported once at start.
    page_error: Option<String>,
    calendar: Option<CalendarPoller>,
    /// Why the calendar URL could not be polled at all, reported once at start.
    calendar_error: Option<String>,
}

impl Maintenance {
    /// The adapter for `cfg`, due at once.
    pub fn new(cfg: &PhoneConfig, mono: Instant) -> Maintenance {
        let (page, page_error) = match &cfg.maintenance.statuspage {
            None => (None, None),
            Some(p) => match PagePoller::new(p.url.clone(), p.poll, p.ca_file.as_deref()) {
                Ok(poller) => (Some(poller), None),
                Err(e) => (None, Some(format!("{}: {e}", p.url))),
            },
        };
        let (calendar, calendar_error) = match &cfg.maintenance.calendar {
            Some(CalendarFeed { source: CalendarSource::Url(u), poll, ca_file }) => {
                match CalendarPoller::new(u.clone(), *poll, ca_file.as_deref()) {
                    Ok(poller) => (Some(poller), None),
                    Err(e) => (None, Some(format!("{u}: {e}"))),
                }
            }
            _ => (None, None),
        };
        Maintenance {
            planner: Planner::new(cfg, Timestamp::now(), mono),
            next: tokio::time::Instant::now(),
            page,
            page_error,
            calendar,
            calendar_error,
        }
    }

    /// Starts afresh for a configuration applied live, and refreshes at once.
    pub fn restart(&mut self, ctx: &mut Ctx, cfg: &PhoneConfig) -> Option<Action> {
        let old = std::mem::replace(self, Maintenance::new(cfg, ctx.now()));
        // The same page keeps its poller (validators, backoff) and its last good notices.
        if let (Some(poller), Some(page)) = (old.page, &cfg.maintenance.statuspage) {
            if poller.url() == &page.url && self.page_error.is_none() {
                self.page = Some(poller);
                self.planner.set_page_notices(old.planner.page_notices);
            }
        }
        // The same calendar URL keeps its poller and its last good notices.
        if let (Some(poller), Some(CalendarFeed { source: CalendarSource::Url(u), .. })) =
            (old.calendar, &cfg.maintenance.calendar)
        {
            if poller.url() == u && self.calendar_error.is_none() {
                self.calendar = Some(poller);
                self.planner.set_calendar_notices(old.planner.calendar_notices);
            }
        }
        self.refresh(ctx, true)
    }

    /// A status-page poll finished: its notices (when they changed) go into the schedule; what
    /// went wrong is reported and the last good notices stay.
    pub fn on_page(&mut self, ctx: &mut Ctx, cfg: &PhoneConfig, fetch: PageFetch) -> Option<Action> {
        let poller = self.page.as_mut()?;
        let clusters: Vec<&str> =
            [cfg.primary.cluster.as_deref(), cfg.backup.as_ref().and_then(|b| b.cluster.as_deref())]
                .into_iter()
                .flatten()
                .collect();
        let outcome = poller.finish(fetch, &clusters, tokio::time::Instant::now());
        let url = poller.url().to_string();
        let retry_s = outcome.retry_in.as_secs();
        if let Some(e) = outcome.error {
            ctx.report("statuspage_error", json!({"url": url, "error": e, "retry_in_s": retry_s}));
            return None;
        }
        let notices = outcome.notices?;
        let ids: Vec<&str> = notices.iter().map(|n| n.id.as_str()).collect();
        ctx.report("statuspage", json!({"url": url, "notices": ids, "next_poll_s": retry_s}));
        self.planner.set_page_notices(notices);
        self.refresh(ctx, false)
    }

    /// A calendar poll finished: its notices (when they changed) go into the schedule; what went
    /// wrong is reported and the last good notices stay.
    pub fn on_calendar(&mut self, ctx: &mut Ctx, _cfg: &PhoneConfig, fetch: CalendarFetch) -> Option<Action> {
        let poller = self.calendar.as_mut()?;
        let clusters = self.planner.clusters();
        let outcome = poller.finish(fetch, &clusters, Timestamp::now(), tokio::time::Instant::now());
        let source = poller.url().to_string();
        let retry_s = outcome.retry_in.as_secs();
        if let Some(e) = outcome.error {
            ctx.report("calendar_error", json!({"source": source, "error": e, "retry_in_s": retry_s}));
            return None;
        }
        let notices = outcome.notices?;
        let ids: Vec<&str> = notices.iter().map(|n| n.id.as_str()).collect();
        ctx.report("calendar", json!({"source": source, "notices": ids, "next_poll_s": retry_s}));
        self.planner.set_calendar_notices(notices);
        self.refresh(ctx, false)
    }

    fn refresh(&mut self, ctx: &mut Ctx, first: bool) -> Option<Action> {
        let wall = Timestamp::now();
        let now = ctx.now();
        let update = self.planner.refresh(wall, now, first);
        if let Some(e) = &update.feed_error {
            ctx.report("notice_feed_error", json!({"error": e}));
        }
        let source = self.planner.calendar_file().map(|p| p.display().to_string());
        if let Some(e) = &update.calendar_error {
            ctx.report("calendar_error", json!({"source": source, "error": e, "retry_in_s": null}));
        }
        if let Some(ids) = &update.calendar {
            ctx.report("calendar", json!({"source": source, "notices": ids}));
        }
        if let Some(windows) = &update.windows {
            // One step: clearing and re-adding would fail back and leave again during a lead time.
            if let Err(e) = ctx.agent.set_planned_windows(now, windows) {
                tracing::warn!("planned windows not taken: {e}");
            }
            let listed: Vec<_> = windows
                .iter()
                .map(|w| json!({"server": w.side.as_str(), "start_ms": w.start.as_millis(), "end_ms": w.end.as_millis()}))
                .collect();
            ctx.report("maintenance_windows", json!({"reason": update.reason, "windows": listed}));
        }
        if let Some(count) = update.bell {
            ctx.report("bell", json!({"count": count, "reason": update.reason}));
        }
        match self.planner.due_rebuild(wall) {
            Some(Ok(_)) => {
                let path = self.planner.store()?.dir().join("active.toml");
                ctx.report("rebuild_applied", json!({"at": "upgrade_window", "path": path.to_string_lossy()}));
                Some(Action::LoadConfig(path))
            }
            Some(Err(e)) => {
                tracing::error!("pending rebuild unusable: {e}");
                None
            }
            None => None,
        }
    }
}

impl Adapter for Maintenance {
    fn wake_at(&self) -> Option<tokio::time::Instant> {
        let page = self.page.as_ref().and_then(PagePoller::due);
        let calendar = self.calendar.as_ref().and_then(CalendarPoller::due);
        [page, calendar].into_iter().flatten().chain([self.next]).min()
    }

    fn on_wake(&mut self, ctx: &mut Ctx, _cfg: &PhoneConfig) -> Option<Action> {
        let now = tokio::time::Instant::now();
        if let Some(e) = self.page_error.take() {
            ctx.report("statuspage_error", json!({"error": e, "retry_in_s": null}));
        }
        if let Some(poller) = self.page.as_mut().filter(|p| p.due().is_some_and(|d| d <= now)) {
            let fetch = poller.start();
            let tx = ctx.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(Input::Page(fetch.await));
            });
        }
        if let Some(e) = self.calendar_error.take() {
            ctx.report("calendar_error", json!({"source": null, "error": e, "retry_in_s": null}));
        }
        if let Some(poller) = self.calendar.as_mut().filter(|p| p.due().is_some_and(|d| d <= now)) {
            let fetch = poller.start();
            let tx = ctx.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(Input::Calendar(fetch.await));
            });
        }
        if now < self.next {
            return None;
        }
        let first = self.planner.bell_unknown();
        let action = self.refresh(ctx, first);
        self.next = now + std::time::Duration::from(POLL);
        action
    }
}
