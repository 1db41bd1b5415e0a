//! From the calendar to the core: which planned windows affect the phone's two servers, on the
//! agent's monotonic clock, and the bell count.
//!
//! The core knows time only as a monotonic [`Instant`]; notices and recurring windows are wall-clock
//! instants. [`Schedule::core_windows`] converts them through one reading of both clocks, and
//! [`ClockWatch`] tells the driver when the wall clock jumped (NTP step, manual change) so it converts
//! again.

use jiff::{SignedDuration, Timestamp};

use super::calendar::{RecurringWindow, Window};
use super::notice::{Impact, NoticeFeed};
use crate::core::{Duration, Instant, PlannedWindow, Side, MAX_WINDOWS};

/// How far ahead windows are handed to the core.
pub const HORIZON: SignedDuration = SignedDuration::from_hours(8 * 24);

/// A planned window on one side, in wall-clock time, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideWindow {
    /// The affected server.
    pub side: Side,
    /// When.
    pub window: Window,
    /// The notice id, or `None` for a recurring window of the configuration.
    pub notice: Option<String>,
}

/// What the phone knows of planned maintenance: its servers' clusters, the operator's notices and
/// the recurring windows of its configuration.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// The primary's cluster (or region), if known.
    pub primary_cluster: Option<String>,
    /// The backup's cluster (or region), if known.
    pub backup_cluster: Option<String>,
    /// The notice feed.
    pub feed: NoticeFeed,
    /// Recurring windows of the primary.
    pub primary_windows: Vec<RecurringWindow>,
    /// Recurring windows of the backup.
    pub backup_windows: Vec<RecurringWindow>,
}

impl Schedule {
    fn cluster(&self, side: Side) -> Option<&str> {
        match side {
            Side::Primary => self.primary_cluster.as_deref(),
            Side::Backup => self.backup_cluster.as_deref(),
        }
    }

    fn clusters(&self) -> Vec<&str> {
        [self.primary_cluster.as_deref(), self.backup_cluster.as_deref()].into_iter().flatten().collect()
    }

    /// The bell number: notices published by `now`, not yet ended, affecting either server's cluster.
    pub fn bell(&self, now: Timestamp) -> usize {
        self.feed.bell_count(now, &self.clusters())
    }

    /// Every window that affects a server and has not ended by `now`, up to `now + HORIZON`, earliest
    /// start first. A notice counts once published (the phone cannot know it before) and when its
    /// impact is more than none.
    pub fn windows(&self, now: Timestamp) -> Vec<SideWindow> {
        let until = now.checked_add(HORIZON).unwrap_or(Timestamp::MAX);
        let mut out = Vec::new();
        for side in Side::BOTH {
            if let Some(cluster) = self.cluster(side) {
                for n in self.feed.notices() {
                    if n.published <= now
                        && n.end > now
                        && n.start < until
                        && n.impact != Impact::None
                        && n.affects(&[cluster])
                    {
                        out.push(SideWindow { side, window: n.window(), notice: Some(n.id.clone()) });
                    }
                }
            }
            let recurring = match side {
                Side::Primary => &self.primary_windows,
                Side::Backup => &self.backup_windows,
            };
            for r in recurring {
                out.extend(r.windows_between(now, until).map(|window| SideWindow { side, window, notice: None }));
            }
        }
        out.sort_by_key(|w| (w.window.start, w.window.end));
        out
    }

    /// The windows to hand the core (at most [`MAX_WINDOWS`], the earliest; a window already running
    /// starts at the agent's clock zero at the latest), converted through one reading of the wall clock (`wall_now`) and the agent's clock (`mono_now`).
    pub fn core_windows(&self, wall_now: Timestamp, mono_now: Instant) -> Vec<PlannedWindow> {
        self.windows(wall_now)
            .into_iter()
            .take(MAX_WINDOWS)
            .map(|w| PlannedWindow {
                side: w.side,
                start: to_instant(w.window.start, wall_now, mono_now),
                end: to_instant(w.window.end, wall_now, mono_now),
            })
            .filter(|w| w.end > w.start)
            .collect()
    }

    /// The next wall-clock instant at which [`Schedule::bell`] or [`Schedule::core_windows`] can
    /// change by itself: a publication, a window's end, or the horizon moving over a new window.
    pub fn next_change(&self, now: Timestamp) -> Option<Timestamp> {
        let feed_change = self.feed.next_change(now, &self.clusters());
        let window_end =
            self.windows(now).into_iter().take(MAX_WINDOWS).map(|w| w.window.end).filter(|e| *e > now).min();
        let horizon_step = now.checked_add(SignedDuration::from_hours(24)).ok();
        [feed_change, window_end, horizon_step].into_iter().flatten().min()
    }
}

/// Converts a wall-clock instant to the agent's clock.
pub fn to_instant(t: Timestamp, wall_now: Timestamp, mono_now: Instant) -> Instant {
    let delta = t.duration_since(wall_now);
    if delta.is_negative() {
        let back = Duration::from_micros(u64::try_from(delta.unsigned_abs().as_micros()).unwrap_or(u64::MAX));
        mono_now.saturating_sub(back)
    } else {
        mono_now + Duration::from_micros(u64::try_from(delta.as_micros()).unwrap_or(u64::MAX))
    }
}

/// Notices wall-clock jumps by comparing the wall clock with the monotonic one.
#[derive(Debug, Clone, Copy)]
pub struct ClockWatch {
    offset_us: i128,
    tolerance_us: i128,
}

impl ClockWatch {
    /// Starts from one reading of both clocks; a later drift beyond `tolerance` counts as a jump.
    pub fn new(wall_now: Timestamp, mono_now: Instant, tolerance: Duration) -> Self {
        ClockWatch { offset_us: offset(wall_now, mono_now), tolerance_us: i128::from(tolerance.as_micros()) }
    }

    /// Whether the wall clock jumped since the last reading; takes this reading as the new base.
    pub fn jumped(&mut self, wall_now: Timestamp, mono_now: Instant) -> bool {
        let o = offset(wall_now, mono_now);
        let jumped = (o - self.offset_us).abs() > self.tolerance_us;
        self.offset_us = o;
        jumped
    }
}

fn offset(wall: Timestamp, mono: Instant) -> i128 {
    wall.as_microsecond() as i128 - i128::from(mono.as_micros())
}
