//! Planned maintenance (SPEC section 4): knowing about server work before it happens.
//!
//! Standard-library only; all time zone arithmetic is done with [`jiff`] and the system's IANA time zone
//! database.
//!
//! - [`calendar`](crate::maintenance::calendar): recurring windows (weekly, or the n-th weekday of the
//!   month) in a named time zone, correct across daylight-saving changes, and their human form
//!   (`"Sat 17:00-22:00"`, `"first Fri 02:00-06:00"`; seed 001).
//! - [`upgrade`](crate::maintenance::upgrade): the phone's own upgrade window with a notification buffer
//!   (seed 004).
//! - [`notice`](crate::maintenance::notice): the operator's notice feed (a TOML file) and the "bell" count
//!   of notices affecting the phone's clusters (seed 000).
//! - [`plan`](crate::maintenance::plan): operator-style planning of an intervention into notices, slot by
//!   policy, a Monday pre-notice and a one-week-per-cluster rollout (seeds 000 and 002).
//!
//! - [`statuspage`](crate::maintenance::statuspage): scheduled maintenances published on a status page
//!   (Statuspage v2 JSON) as notices.
//! - [`icalendar`](crate::maintenance::icalendar): maintenance calendars (RFC 5545 iCalendar: `VEVENT`s with
//!   `RRULE`, `EXDATE` and `TZID`s) as notices, and notices written as a calendar.
//! - [`schedule`](crate::maintenance::schedule): which windows affect the phone's two servers, converted
//!   to the agent's monotonic clock, and the bell count.
//!
//! Every instant is a [`jiff::Timestamp`]; wall-clock times are only used for rules and are converted with
//! compatible disambiguation (a time in a spring-forward gap moves later, one in a fall-back fold takes
//! the earlier instant).
//!
//! [`upgrade_window_answer`](crate::maintenance::upgrade_window_answer) and
//! [`plan_feed`](crate::maintenance::plan_feed) take and return plain strings for the command line.

pub mod calendar;
pub mod icalendar;
pub mod notice;
pub mod plan;
pub mod schedule;
pub mod statuspage;
pub mod upgrade;
pub mod url;

pub use calendar::{Recurrence, RecurringWindow, Window};
pub use notice::{Impact, Notice, NoticeFeed};
pub use plan::{plan_feed, Intervention};
pub use upgrade::{upgrade_window_answer, UpgradeWindow};
