//! Planned maintenance for the running agent: reads the notice feed (again whenever the file
//! changes), hands the windows that affect the phone's servers to the core on its clock (again when
//! the wall clock jumps), reports the bell count when it changes, and applies a pending rebuild when
//! its upgrade window comes.

use std::path::PathBuf;
use std::time::SystemTime;

use jiff::Timestamp;
use serde_json::json;

use super::adapter::{Action, Adapter, Ctx};
use crate::config::apply::{PendingRebuild, Store};
use crate::config::PhoneConfig;
use crate::core::{Duration, Instant, PlannedWindow};
use crate::maintenance::schedule::{ClockWatch, Schedule};

/// How often the feed file and the wall clock are looked at.
pub const POLL: Duration = Duration::from_secs(2);

/// What changed at a refresh.
#[derive(Debug, Default)]
pub struct Update {
    /// The windows to hand the core (all of them, replacing the previous set), when they changed.
    pub windows: Option<Vec<PlannedWindow>>,
    /// The new bell count, when it changed.
    pub bell: Option<usize>,
    /// Why the refresh happened: `"start"`, `"feed_changed"`, `"clock_jump"`, `"schedule"`.
    pub reason: &'static str,
    /// The feed could not be read; the previous one stays.
    pub feed_error: Option<String>,
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
        }
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
        if self.watch.jumped(wall, mono) {
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
                        self.schedule.feed = feed;
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
}

impl Maintenance {
    /// The adapter for `cfg`, due at once.
    pub fn new(cfg: &PhoneConfig, mono: Instant) -> Maintenance {
        Maintenance { planner: Planner::new(cfg, Timestamp::now(), mono), next: tokio::time::Instant::now() }
    }

    /// Starts afresh for a configuration applied live, and refreshes at once.
    pub fn restart(&mut self, ctx: &mut Ctx, cfg: &PhoneConfig) -> Option<Action> {
        self.planner = Planner::new(cfg, Timestamp::now(), ctx.now());
        self.refresh(ctx, true)
    }

    fn refresh(&mut self, ctx: &mut Ctx, first: bool) -> Option<Action> {
        let wall = Timestamp::now();
        let now = ctx.now();
        let update = self.planner.refresh(wall, now, first);
        if let Some(e) = &update.feed_error {
            ctx.report("notice_feed_error", json!({"error": e}));
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
        Some(self.next)
    }

    fn on_wake(&mut self, ctx: &mut Ctx, _cfg: &PhoneConfig) -> Option<Action> {
        let first = self.planner.bell_unknown();
        let action = self.refresh(ctx, first);
        self.next = tokio::time::Instant::now() + std::time::Duration::from(POLL);
        action
    }
}
