//! Operator planning (seeds 000 and 002): turn an intervention into realistic notices.
//!
//! For lab testers who need notices like an operator's. The policy is seed 000's, in US Eastern time
//! (the IANA zone `America/New_York`, so EST in winter and EDT in summer):
//!
//! | intervention                                   | slot            |
//! |------------------------------------------------|-----------------|
//! | 60 minutes or less, minimal or no impact       | Friday 05:00    |
//! | longer than 60 minutes, minimal or no impact   | Friday 02:00    |
//! | high impact (at most 4 hours)                  | Sunday 02:00    |
//!
//! Each notice is published at 09:00 Eastern on the Monday before its slot (the pre-notice; seed 000
//! says "the Monday prior" without an hour, 09:00 is this crate's choice). The first cluster gets the
//! first slot whose Monday pre-notice is not before `not_before`; each following cluster, in rollout order,
//! gets the same wall-clock slot exactly one week later (seed 000: one cluster at a time, a week apart;
//! seed 002: phased by environment and region). Wall times are converted with compatible disambiguation
//! (see [`calendar`](super::calendar)): on the US spring-forward Sunday, 02:00 does not exist and the slot
//! starts at 03:00 EDT. The end is the start plus the duration in real time.
//!
//! ```
//! use sip_failover::maintenance::plan_feed;
//!
//! let feed = plan_feed(45, "minimal", &["cx-eu-1", "cx-eu-2"], "2024-03-01T00:00:00Z", "CX-2024-031", "Upgrade")
//!     .unwrap();
//! let first = &feed.notices()[0];
//! assert_eq!(first.id, "CX-2024-031-1");
//! assert_eq!(first.start.to_string(), "2024-03-08T10:00:00Z"); // Friday 05:00 EST
//! assert_eq!(first.published.to_string(), "2024-03-04T14:00:00Z"); // Monday 09:00 EST
//! ```

use core::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use super::calendar::{local_to_timestamp, time_zone, CalendarError};
use super::notice::{cluster_matches, Impact, Notice, NoticeFeed, UnknownImpact};
use crate::files::FileError;

/// The time zone of the slot policy (seed 000's "EST", i.e. US Eastern time).
pub const POLICY_TIME_ZONE: &str = "America/New_York";

/// Local time (policy zone) at which a pre-notice is published on the Monday before its slot.
pub const PRE_NOTICE_TIME: Time = Time::constant(9, 0, 0, 0);

/// The longest "short" intervention, in minutes (seed 000: 60 minutes or less).
pub const SHORT_MAX_MINUTES: u32 = 60;

/// The longest high-impact intervention, in minutes: the Sunday 02:00-06:00 window (seed 000).
pub const HIGH_IMPACT_MAX_MINUTES: u32 = 4 * 60;

/// The longest minimal-impact intervention accepted, in minutes (one day).
pub const MAX_MINUTES: u32 = 24 * 60;

/// The slot an intervention goes in.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Friday 05:00: 60 minutes or less with minimal or no impact.
    ShortFriday,
    /// Friday 02:00: longer than 60 minutes with minimal or no impact.
    LongFriday,
    /// Sunday 02:00-06:00: high impact.
    HighImpactSunday,
}

impl Slot {
    /// The slot for an intervention of `duration_minutes` with `impact`, or why there is none.
    pub fn for_intervention(duration_minutes: u32, impact: Impact) -> Result<Slot, PlanError> {
        if duration_minutes == 0 {
            return Err(PlanError::ZeroDuration);
        }
        let (slot, max) = match impact {
            Impact::High => (Slot::HighImpactSunday, HIGH_IMPACT_MAX_MINUTES),
            _ if duration_minutes <= SHORT_MAX_MINUTES => (Slot::ShortFriday, MAX_MINUTES),
            _ => (Slot::LongFriday, MAX_MINUTES),
        };
        if duration_minutes > max {
            return Err(PlanError::TooLong { minutes: duration_minutes, max, impact });
        }
        Ok(slot)
    }

    /// The day of the week of the slot.
    pub fn weekday(&self) -> Weekday {
        match self {
            Slot::ShortFriday | Slot::LongFriday => Weekday::Friday,
            Slot::HighImpactSunday => Weekday::Sunday,
        }
    }

    /// The local start time of the slot (policy zone).
    pub fn start_time(&self) -> Time {
        match self {
            Slot::ShortFriday => Time::constant(5, 0, 0, 0),
            Slot::LongFriday | Slot::HighImpactSunday => Time::constant(2, 0, 0, 0),
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::ShortFriday => "Friday 05:00 US Eastern",
            Slot::LongFriday => "Friday 02:00 US Eastern",
            Slot::HighImpactSunday => "Sunday 02:00-06:00 US Eastern",
        })
    }
}

/// Errors from planning.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The duration is zero.
    ZeroDuration,
    /// The duration is longer than the slot allows.
    TooLong {
        /// The duration asked for.
        minutes: u32,
        /// The longest allowed for this impact.
        max: u32,
        /// The impact.
        impact: Impact,
    },
    /// No clusters to roll out to.
    NoClusters,
    /// A cluster name is empty.
    EmptyCluster {
        /// Its 1-based position in the rollout order.
        position: usize,
    },
    /// The same cluster twice (names compared ignoring case).
    DuplicateCluster {
        /// The name as given the second time.
        name: String,
    },
    /// The id prefix is empty.
    EmptyIdPrefix,
    /// The impact name is unknown.
    Impact(UnknownImpact),
    /// The earliest publication time could not be read.
    BadNotBefore {
        /// The text as given.
        text: String,
    },
    /// The policy time zone is missing from the time zone database.
    Calendar(CalendarError),
    /// The plan would lie outside the supported calendar range.
    OutOfRange,
    /// The planned notices did not validate (a bug if it ever happens).
    Feed(FileError),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::ZeroDuration => f.write_str("intervention duration must be at least one minute"),
            PlanError::TooLong { minutes, max, impact } => {
                write!(f, "a {impact}-impact intervention of {minutes} minutes is too long: at most {max} minutes")
            }
            PlanError::NoClusters => f.write_str("no clusters to roll the intervention out to"),
            PlanError::EmptyCluster { position } => write!(f, "cluster {position} has an empty name"),
            PlanError::DuplicateCluster { name } => {
                write!(f, "cluster {name:?} appears more than once in the rollout")
            }
            PlanError::EmptyIdPrefix => f.write_str("the notice id prefix must not be empty"),
            PlanError::Impact(e) => e.fmt(f),
            PlanError::BadNotBefore { text } => write!(
                f,
                "not-before time {text:?}: expected RFC 3339 (\"2024-03-01T00:00:00Z\"), or a US Eastern \
                 local date or date and time (\"2024-03-01\", \"2024-03-01T08:00\")"
            ),
            PlanError::Calendar(e) => e.fmt(f),
            PlanError::OutOfRange => f.write_str("plan outside the supported calendar range"),
            PlanError::Feed(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PlanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlanError::Impact(e) => Some(e),
            PlanError::Calendar(e) => Some(e),
            PlanError::Feed(e) => Some(e),
            _ => None,
        }
    }
}

/// A maintenance intervention to plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intervention {
    /// How long it takes, in minutes.
    pub duration_minutes: u32,
    /// Its impact.
    pub impact: Impact,
    /// The clusters (or regions) in rollout order, one a week.
    pub clusters: Vec<String>,
    /// No notice may be published before this instant.
    pub not_before: Timestamp,
    /// Notice ids are this prefix, a dash and the 1-based rollout step (`CX-2024-031-1`, ...).
    pub id_prefix: String,
    /// The notices' title (none if empty).
    pub title: String,
}

impl Intervention {
    /// The slot the policy puts this intervention in.
    pub fn slot(&self) -> Result<Slot, PlanError> {
        Slot::for_intervention(self.duration_minutes, self.impact)
    }

    /// One notice per cluster, in rollout order, as a feed.
    pub fn plan(&self) -> Result<NoticeFeed, PlanError> {
        let slot = self.slot()?;
        if self.clusters.is_empty() {
            return Err(PlanError::NoClusters);
        }
        for (i, c) in self.clusters.iter().enumerate() {
            if c.trim().is_empty() {
                return Err(PlanError::EmptyCluster { position: i + 1 });
            }
            if self.clusters[..i].iter().any(|o| cluster_matches(o, c)) {
                return Err(PlanError::DuplicateCluster { name: c.clone() });
            }
        }
        if self.id_prefix.trim().is_empty() {
            return Err(PlanError::EmptyIdPrefix);
        }
        let tz = time_zone(POLICY_TIME_ZONE).map_err(PlanError::Calendar)?;
        let first = first_slot_date(&tz, slot, self.not_before).ok_or(PlanError::OutOfRange)?;
        let duration = SignedDuration::from_mins(i64::from(self.duration_minutes));
        let title = self.title.trim();
        let mut notices = Vec::with_capacity(self.clusters.len());
        for (k, cluster) in self.clusters.iter().enumerate() {
            let weeks = i64::try_from(k).map_err(|_| PlanError::OutOfRange)?;
            let date = first.checked_add(Span::new().weeks(weeks)).map_err(|_| PlanError::OutOfRange)?;
            let start = local_to_timestamp(&tz, date.to_datetime(slot.start_time())).ok_or(PlanError::OutOfRange)?;
            let end = start.checked_add(duration).map_err(|_| PlanError::OutOfRange)?;
            let published = pre_notice(&tz, date).ok_or(PlanError::OutOfRange)?;
            notices.push(Notice {
                id: format!("{}-{}", self.id_prefix.trim(), k + 1),
                cluster: cluster.trim().to_owned(),
                start,
                end,
                impact: self.impact,
                published,
                title: (!title.is_empty()).then(|| title.to_owned()),
            });
        }
        NoticeFeed::new(notices).map_err(PlanError::Feed)
    }
}

/// The pre-notice instant for a slot on local `date`: 09:00 local on the Monday before it.
fn pre_notice(tz: &TimeZone, date: Date) -> Option<Timestamp> {
    // Monday..Sunday slots: the Monday of the same week; a Monday slot: the Monday a week before.
    let back = match date.weekday().since(Weekday::Monday) {
        0 => 7,
        n => i64::from(n),
    };
    let monday = date.checked_sub(Span::new().days(back)).ok()?;
    local_to_timestamp(tz, monday.to_datetime(PRE_NOTICE_TIME))
}

/// The local date of the first `slot` whose pre-notice is at or after `not_before`.
fn first_slot_date(tz: &TimeZone, slot: Slot, not_before: Timestamp) -> Option<Date> {
    let local = tz.to_datetime(not_before).date();
    // Start a week early so that nothing is missed, then step a week at a time.
    let from = local.checked_sub(Span::new().days(7)).ok()?;
    let ahead = i64::from(slot.weekday().since(from.weekday()));
    let mut date = from.checked_add(Span::new().days(ahead)).ok()?;
    for _ in 0..4 {
        if pre_notice(tz, date)? >= not_before {
            return Some(date);
        }
        date = date.checked_add(Span::new().weeks(1)).ok()?;
    }
    None
}

/// Reads a not-before time: RFC 3339 with an offset, or a local date and time or a date (midnight) in
/// the policy zone (US Eastern).
pub fn parse_not_before(text: &str) -> Result<Timestamp, PlanError> {
    let t = text.trim();
    let bad = || PlanError::BadNotBefore { text: text.to_owned() };
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    let dt = match t.parse::<DateTime>() {
        Ok(dt) => dt,
        Err(_) => t.parse::<Date>().map_err(|_| bad())?.to_datetime(Time::midnight()),
    };
    let tz = time_zone(POLICY_TIME_ZONE).map_err(PlanError::Calendar)?;
    local_to_timestamp(&tz, dt).ok_or_else(bad)
}

/// Command-line entry: plan an intervention and return the notices as a feed (write it with
/// [`NoticeFeed::to_toml`]).
///
/// `impact` is `none`, `minimal` or `high`; `clusters` in rollout order; `not_before` as for
/// [`parse_not_before`]; ids are `id_prefix-1`, `id_prefix-2`, ...
pub fn plan_feed(
    duration_minutes: u32,
    impact: &str,
    clusters: &[&str],
    not_before: &str,
    id_prefix: &str,
    title: &str,
) -> Result<NoticeFeed, PlanError> {
    let intervention = Intervention {
        duration_minutes,
        impact: impact.parse().map_err(PlanError::Impact)?,
        clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
        not_before: parse_not_before(not_before)?,
        id_prefix: id_prefix.to_owned(),
        title: title.to_owned(),
    };
    intervention.plan()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn pre_notice_is_the_monday_before() {
        let tz = time_zone(POLICY_TIME_ZONE).unwrap();
        let at = |d: Date| pre_notice(&tz, d).unwrap().to_zoned(tz.clone()).date();
        assert_eq!(at(date(2024, 3, 8)), date(2024, 3, 4)); // Friday
        assert_eq!(at(date(2024, 3, 10)), date(2024, 3, 4)); // Sunday
        assert_eq!(at(date(2024, 3, 11)), date(2024, 3, 4)); // a Monday: the one before
    }

    #[test]
    fn slots() {
        assert_eq!(Slot::for_intervention(60, Impact::Minimal), Ok(Slot::ShortFriday));
        assert_eq!(Slot::for_intervention(61, Impact::None), Ok(Slot::LongFriday));
        assert_eq!(Slot::for_intervention(240, Impact::High), Ok(Slot::HighImpactSunday));
        assert_eq!(Slot::for_intervention(10, Impact::High), Ok(Slot::HighImpactSunday));
        assert!(Slot::for_intervention(MAX_MINUTES + 1, Impact::Minimal).is_err());
    }
}
