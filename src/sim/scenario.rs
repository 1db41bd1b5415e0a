//! Scenario files: a fault script against a timeline, in TOML.
//!
//! ```toml
//! name = "primary-blackholed"
//! description = "The primary stops answering at 8 s and comes back at 25 s."
//! duration = "50s"
//! # interval = "15s"          # optional: the phone's keep-alive interval (default: the seed's 15 s)
//!
//! # transport = "tls"         # optional: udp (default) | tcp | tls, both servers
//! # [primary]                 # optional: one server's own transport
//! # transport = "tcp"
//!
//! [phone]                     # optional
//! ladder_ms = [800, 400, 400]
//! failback = "auto"           # auto | manual | never
//! failback_after = 2
//! fast_refused = false
//!
//! [[at]]
//! t = "8s"
//! server = "primary"          # primary | backup | both
//! action = "blackhole"
//! ```
//!
//! Actions and their parameters: `answer`, `blackhole`, `refuse`, `delay` (`ms`), `loss` (`share`,
//! 0 to 1), `status` (`code`, optional `retry_after` in seconds), `flap` (`period`: down for a
//! period, up for a period, until the server's next step or the end), `rolling_restart` (`down_for`,
//! `gap`: the primary's port closes for `down_for`, then after `gap` the backup's does), `headers`
//! (`form` = `normal` | `compact` | `folded`); on a TCP or TLS server `reset` (every connection,
//! open or new, is reset) and `hang` (connections complete, requests are never answered); on a TLS
//! server `stall_handshake` (connections are accepted, the handshake never completes) and
//! `bad_certificate` (`kind` = `expired` | `wrong_name` | `wildcard` | `unknown_ca`). A server that
//! starts refusing, resetting, stalling or presenting a bad certificate drops its open connections.
//!
//! A step acts on the servers (`action`, with an optional `server`), on the phone (`phone`), or
//! publishes a maintenance notice (`notice`): exactly one of the three.
//!
//! ```toml
//! [[at]]
//! t = "0s"
//! phone = "call"              # the phone's call (every phone's, in a fleet)
//! state = "start"             # start | end
//!
//! [[at]]
//! t = "20s"                   # published on the status page at 20 s
//! notice = { id = "CX-1", server = "primary", starts_in = "1m", lasts = "2m", title = "Upgrade" }
//! ```
//!
//! A notice's window starts `starts_in` after its publication and lasts `lasts`; `server` is
//! `primary` (the default) or `backup`, `title` is optional. A phone step's call starts and ends in
//! turn. `[phone] planned_lead` (or `[maintenance] planned_lead`) sets how long before a window the
//! phone may leave its server.
//!
//! Times are written `"800ms"`, `"8s"`, `"1.5s"` or `"2m"`. Every error names the file, line,
//! column and field.

use std::num::NonZeroU8;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::model::{Action, CertKind, HeaderForm};
use crate::core::{
    Config, Duration, Failback, FailbackMode, FastDetection, Instant, Ladder, Side, Transport, MAX_ATTEMPTS,
    MAX_WINDOWS,
};
use crate::files::{FileError, FileErrorKind, TomlText};
use crate::maintenance::notice::{Impact, Notice};
use crate::maintenance::schedule::Schedule;
use crate::maintenance::RecurringWindow;

/// The built-in default scenario (`firmware-config/scenarios/primary-blackholed.toml`).
pub const DEFAULT_SCENARIO: &str = include_str!("../../firmware-config/scenarios/primary-blackholed.toml");

/// The scenarios shipped in `firmware-config/scenarios/`, built in: (name, file text).
pub const SHIPPED: &[(&str, &str)] = &[
    ("primary-blackholed", include_str!("../../firmware-config/scenarios/primary-blackholed.toml")),
    ("primary-refused", include_str!("../../firmware-config/scenarios/primary-refused.toml")),
    ("primary-503", include_str!("../../firmware-config/scenarios/primary-503.toml")),
    ("flapping-primary", include_str!("../../firmware-config/scenarios/flapping-primary.toml")),
    ("lossy-link", include_str!("../../firmware-config/scenarios/lossy-link.toml")),
    ("both-down", include_str!("../../firmware-config/scenarios/both-down.toml")),
    ("backup-fails-while-active", include_str!("../../firmware-config/scenarios/backup-fails-while-active.toml")),
    ("rolling-restart", include_str!("../../firmware-config/scenarios/rolling-restart.toml")),
    ("slow-primary", include_str!("../../firmware-config/scenarios/slow-primary.toml")),
    ("weekly-maintenance", include_str!("../../firmware-config/scenarios/weekly-maintenance.toml")),
    ("primary-tls-reset", include_str!("../../firmware-config/scenarios/primary-tls-reset.toml")),
    ("primary-tls-hang", include_str!("../../firmware-config/scenarios/primary-tls-hang.toml")),
    ("primary-tls-stall-handshake", include_str!("../../firmware-config/scenarios/primary-tls-stall-handshake.toml")),
    ("primary-tls-bad-certificate", include_str!("../../firmware-config/scenarios/primary-tls-bad-certificate.toml")),
    ("maintenance-mode", include_str!("../../firmware-config/scenarios/maintenance-mode.toml")),
    ("notice-mid-run", include_str!("../../firmware-config/scenarios/notice-mid-run.toml")),
];

/// A shipped scenario by name (`rolling-restart`), validated.
pub fn shipped(name: &str) -> Option<Result<Scenario, FileError>> {
    let (n, text) = SHIPPED.iter().find(|(n, _)| *n == name)?;
    Some(Scenario::parse(text, Path::new(&format!("<built-in {n}>"))))
}

/// Which servers a step acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// One server.
    One(Side),
    /// Both servers.
    Both,
}

/// The phone's settings for a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneSettings {
    /// The keep-alive interval.
    pub interval: Duration,
    /// The retry ladder.
    pub ladder: Ladder,
    /// Failback mode.
    pub failback: FailbackMode,
    /// Alive cycles before failback.
    pub failback_after: NonZeroU8,
    /// ICMP port-unreachable ends an attempt at once.
    pub fast_refused: bool,
    /// How long before a planned window the phone may leave the affected server.
    pub planned_lead: Duration,
    /// Each server's transport (primary, backup): what the pair serves and the phone uses.
    pub transports: [Transport; 2],
}

impl Default for PhoneSettings {
    /// The core's defaults ([`Config::new`]'s).
    fn default() -> Self {
        PhoneSettings {
            interval: Config::DEFAULT_INTERVAL,
            ladder: Ladder::DEFAULT,
            failback: Failback::DEFAULT.mode,
            failback_after: Failback::DEFAULT.after_cycles,
            fast_refused: FastDetection::DEFAULT.refused_ends_attempt,
            planned_lead: Config::DEFAULT_PLANNED_LEAD,
            transports: [Transport::Udp; 2],
        }
    }
}

/// One step as written (before `flap` and `rolling_restart` are expanded).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum StepAction {
    /// A primitive change.
    Set(Action),
    /// Down for `period`, up for `period`, repeatedly.
    Flap {
        /// Half a flap cycle.
        period: Duration,
    },
    /// The primary restarts, then the backup.
    RollingRestart {
        /// How long each server's port stays closed.
        down_for: Duration,
        /// Between the primary's return and the backup's restart.
        gap: Duration,
    },
}

/// One step of the script.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// When, from the start of the run.
    pub at: Duration,
    /// Which servers.
    pub target: Target,
    /// What happens.
    pub action: StepAction,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its short name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// How long the run lasts.
    pub duration: Duration,
    /// The phone's settings.
    pub phone: PhoneSettings,
    /// The servers' steps as written, in time order.
    pub steps: Vec<Step>,
    /// The phone's steps (its call starting and ending), in time order.
    pub calls: Vec<CallStep>,
    /// Maintenance notices published during the run, in time order.
    pub notices: Vec<NoticeStep>,
    /// Planned maintenance windows of the `[maintenance]` section, from the run's start.
    pub windows: Vec<PlannedSpan>,
    /// The wall-clock instant the run begins: `[maintenance] starts_at`, else [`LAB_EPOCH`]. Notices
    /// are published on the status page in wall-clock time from it.
    pub starts_at: jiff::Timestamp,
}

/// The wall-clock instant a run begins when its scenario has no `[maintenance] starts_at`.
pub const LAB_EPOCH: &str = "2024-06-03T08:00:00Z";

/// The phone's call starts or ends (every phone's, in a fleet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallStep {
    /// When, from the start of the run.
    pub at: Duration,
    /// In a call from now on (the call starts), or not (it ends).
    pub in_call: bool,
}

/// A maintenance notice published during the run (on the lab's status page in real time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeStep {
    /// When it is published, from the start of the run.
    pub at: Duration,
    /// Its id, unique in the scenario.
    pub id: String,
    /// The server it affects.
    pub side: Side,
    /// Its window's start, from the start of the run.
    pub start: Duration,
    /// Its window's end, from the start of the run.
    pub end: Duration,
    /// Its title, if given.
    pub title: Option<String>,
}

impl NoticeStep {
    /// Its window.
    pub fn span(&self) -> PlannedSpan {
        PlannedSpan { side: self.side, start: self.start, end: self.end }
    }

    /// As an operator's notice for a run that began at wall-clock `starts_at`: the affected server's
    /// cluster is its SIP domain ([`DOMAINS`](super::DOMAINS)).
    pub fn to_notice(&self, starts_at: jiff::Timestamp) -> Notice {
        let wall = |d: Duration| {
            let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
            starts_at.saturating_add(jiff::SignedDuration::from_micros(us)).unwrap_or(starts_at)
        };
        Notice {
            id: self.id.clone(),
            cluster: super::DOMAINS[self.side.index()].to_string(),
            start: wall(self.start),
            end: wall(self.end),
            impact: Impact::Minimal,
            published: wall(self.at),
            title: self.title.clone(),
        }
    }
}

/// A planned maintenance window on one server, in run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedSpan {
    /// The affected server.
    pub side: Side,
    /// Its start, from the run's start.
    pub start: Duration,
    /// Its end, from the run's start.
    pub end: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<Spanned<String>>,
    duration: Spanned<String>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    transport: Option<Spanned<String>>,
    #[serde(default)]
    primary: Option<RawServer>,
    #[serde(default)]
    backup: Option<RawServer>,
    #[serde(default)]
    phone: Option<RawPhone>,
    #[serde(default)]
    at: Vec<Spanned<RawStep>>,
    #[serde(default)]
    maintenance: Option<Spanned<RawMaintenance>>,
}

/// Planned maintenance in a scenario: recurring windows in a time zone, read from a wall-clock start.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    starts_at: Spanned<String>,
    time_zone: Spanned<String>,
    #[serde(default)]
    primary_windows: Vec<Spanned<String>>,
    #[serde(default)]
    backup_windows: Vec<Spanned<String>>,
    #[serde(default)]
    planned_lead: Option<Spanned<String>>,
}

/// One server's own settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default)]
    transport: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhone {
    #[serde(default)]
    ladder_ms: Option<Spanned<Vec<Spanned<i64>>>>,
    #[serde(default)]
    failback: Option<Spanned<String>>,
    #[serde(default)]
    failback_after: Option<Spanned<i64>>,
    #[serde(default)]
    fast_refused: Option<Spanned<bool>>,
    #[serde(default)]
    planned_lead: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    t: Spanned<String>,
    #[serde(default)]
    server: Option<Spanned<String>>,
    #[serde(default)]
    action: Option<Spanned<String>>,
    #[serde(default)]
    phone: Option<Spanned<String>>,
    #[serde(default)]
    state: Option<Spanned<String>>,
    #[serde(default)]
    notice: Option<Spanned<RawNotice>>,
    #[serde(default)]
    ms: Option<Spanned<i64>>,
    #[serde(default)]
    share: Option<Spanned<f64>>,
    #[serde(default)]
    code: Option<Spanned<i64>>,
    #[serde(default)]
    retry_after: Option<Spanned<i64>>,
    #[serde(default)]
    period: Option<Spanned<String>>,
    #[serde(default)]
    down_for: Option<Spanned<String>>,
    #[serde(default)]
    gap: Option<Spanned<String>>,
    #[serde(default)]
    form: Option<Spanned<String>>,
    #[serde(default)]
    kind: Option<Spanned<String>>,
}

/// A notice published by a step.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotice {
    id: Spanned<String>,
    #[serde(default)]
    server: Option<Spanned<String>>,
    starts_in: Spanned<String>,
    lasts: Spanned<String>,
    #[serde(default)]
    title: Option<Spanned<String>>,
}

/// The windows of a scenario's `[maintenance]` section that fall in the run, converted the way the
/// running agent converts them (through [`Schedule`]), from the wall-clock instant `starts_at`.
fn maintenance_windows(
    cx: &TomlText<'_>,
    m: &RawMaintenance,
    duration: Duration,
    phone: &mut PhoneSettings,
) -> Result<(Vec<PlannedSpan>, jiff::Timestamp), FileError> {
    let start: jiff::Timestamp = m.starts_at.get_ref().parse().map_err(|_| {
        let expected = "an RFC 3339 instant such as \"2024-03-15T07:00:00Z\"".to_string();
        cx.at(
            &m.starts_at,
            "maintenance.starts_at",
            FileErrorKind::Invalid { value: m.starts_at.get_ref().clone(), expected },
        )
    })?;
    let tz = m.time_zone.get_ref();
    crate::maintenance::calendar::time_zone(tz)
        .map_err(|e| cx.at(&m.time_zone, "maintenance.time_zone", e.in_file().0))?;
    let parse = |list: &[Spanned<String>], field: &str| -> Result<Vec<RecurringWindow>, FileError> {
        list.iter()
            .enumerate()
            .map(|(i, w)| {
                RecurringWindow::parse(w.get_ref(), tz).map_err(|e| {
                    let field = format!("{field}[{i}]");
                    match e.in_file() {
                        (kind, Some(column)) => cx.in_string(w, column, &field, kind),
                        (kind, None) => cx.at(w, &field, kind),
                    }
                })
            })
            .collect()
    };
    if let Some(l) = &m.planned_lead {
        phone.planned_lead = duration_of(cx, l, "maintenance.planned_lead")?;
    }
    let schedule = Schedule {
        primary_windows: parse(&m.primary_windows, "maintenance.primary_windows")?,
        backup_windows: parse(&m.backup_windows, "maintenance.backup_windows")?,
        ..Schedule::default()
    };
    let run_end = Instant::ZERO + duration;
    let windows = schedule
        .core_windows(start, Instant::ZERO)
        .into_iter()
        .filter(|w| w.start < run_end)
        .map(|w| PlannedSpan {
            side: w.side,
            start: w.start.saturating_duration_since(Instant::ZERO),
            end: w.end.saturating_duration_since(Instant::ZERO),
        })
        .collect();
    Ok((windows, start))
}

/// [`LAB_EPOCH`] as a timestamp.
fn lab_epoch() -> jiff::Timestamp {
    LAB_EPOCH.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// The most changes one `flap` step may expand to.
pub const MAX_FLAPS: u64 = 100_000;

/// The longest run a scenario may script.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses `"800ms"`, `"8s"`, `"1.5s"`, `"2m"`, `"1h"` (at most 3 decimals).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit_us) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000u64)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000_000)
    } else {
        return None;
    };
    let (int, frac) = num.trim().split_once('.').unwrap_or((num.trim(), ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 3 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let milli: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().ok()? };
    let us = whole.checked_mul(unit_us)?.checked_add(milli.checked_mul(unit_us / 1000)?)?;
    Some(Duration::from_micros(us))
}

/// Fields whose type is better said with its unit, for type errors.
const TYPES: &[(&str, &str)] = &[
    ("duration", "a duration such as \"50s\""),
    ("interval", "a duration such as \"15s\""),
    ("phone.ladder_ms", "an array of waits in milliseconds"),
    ("phone.ladder_ms[]", "an integer number of milliseconds"),
    ("phone.failback_after", "an integer number of cycles"),
    ("at[].t", "a duration such as \"8s\""),
    ("at[].ms", "an integer number of milliseconds"),
    ("at[].share", "a number from 0 to 1"),
    ("at[].code", "an integer status code"),
    ("at[].retry_after", "an integer number of seconds"),
    ("maintenance.planned_lead", "a duration such as \"15m\""),
    ("phone.planned_lead", "a duration such as \"15m\""),
    ("at[].notice", "a table such as { id = \"N-1\", starts_in = \"1m\", lasts = \"2m\" }"),
    ("at[].notice.starts_in", "a duration such as \"10m\""),
    ("at[].notice.lasts", "a duration such as \"1h\""),
];

const FAILBACK_MODES: &[&str] = &["auto", "manual", "never"];
const SERVERS: &[&str] = &["primary", "backup", "both"];
const NOTICE_SERVERS: &[&str] = &["primary", "backup"];
const PHONE_THINGS: &[&str] = &["call"];
const CALL_STATES: &[&str] = &["start", "end"];
const ACTIONS: &[&str] = &[
    "answer",
    "blackhole",
    "refuse",
    "delay",
    "loss",
    "status",
    "flap",
    "rolling_restart",
    "headers",
    "reset",
    "hang",
    "stall_handshake",
    "bad_certificate",
];
const HEADER_FORMS: &[&str] = &["normal", "compact", "folded"];
const TRANSPORTS: &[&str] = &["udp", "tcp", "tls"];
const CERT_KINDS: &[&str] = &["expired", "wrong_name", "wildcard", "unknown_ca"];

/// A transport word.
fn transport_of(cx: &TomlText<'_>, v: &Spanned<String>, field: &str) -> Result<Transport, FileError> {
    match v.get_ref().as_str() {
        "udp" => Ok(Transport::Udp),
        "tcp" => Ok(Transport::Tcp),
        "tls" => Ok(Transport::Tls),
        other => Err(cx.at(v, field, FileErrorKind::NotOneOf { value: other.to_string(), allowed: TRANSPORTS })),
    }
}

/// A duration field (`"800ms"`, `"8s"`, `"2m"`).
fn duration_of(cx: &TomlText<'_>, v: &Spanned<String>, field: &str) -> Result<Duration, FileError> {
    parse_duration(v.get_ref()).ok_or_else(|| {
        let expected = "a duration such as \"800ms\", \"8s\" or \"2m\"".to_string();
        cx.at(v, field, FileErrorKind::Invalid { value: v.get_ref().clone(), expected })
    })
}

fn out_of_range(value: impl ToString, allowed: &str) -> FileErrorKind {
    FileErrorKind::OutOfRange { value: value.to_string(), allowed: allowed.to_string() }
}

impl Scenario {
    /// The built-in default: the primary blackholed at 8 s, back at 25 s, 50 s in all.
    pub fn builtin() -> Scenario {
        // The file ships with the crate and is checked by a test; a broken copy is a build defect.
        Scenario::parse(DEFAULT_SCENARIO, Path::new("<built-in>")).unwrap_or_else(|e| panic!("built-in scenario: {e}"))
    }

    /// Reads and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, FileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| FileError::io(path, &e))?;
        Scenario::parse(&text, path)
    }

    /// Validates scenario text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, FileError> {
        let cx = TomlText::new(path, text).with_types(TYPES);
        let raw: RawScenario = cx.deserialize()?;
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(cx.at(&raw.name, "name", FileErrorKind::Empty));
        }
        let duration = duration_of(&cx, &raw.duration, "duration")?;
        if duration == Duration::ZERO || duration > MAX_DURATION {
            return Err(cx.at(&raw.duration, "duration", out_of_range(raw.duration.get_ref(), "1ms..=7d")));
        }
        let mut phone = PhoneSettings::default();
        if let Some(i) = &raw.interval {
            phone.interval = duration_of(&cx, i, "interval")?;
            if phone.interval < Duration::from_secs(1) || phone.interval > Duration::from_secs(3600) {
                return Err(cx.at(i, "interval", out_of_range(i.get_ref(), "1s..=1h")));
            }
        }
        if let Some(p) = &raw.phone {
            if let Some(l) = &p.ladder_ms {
                let waits = l.get_ref();
                if waits.is_empty() || waits.len() > MAX_ATTEMPTS {
                    let kind = out_of_range(format!("{} waits", waits.len()), &format!("1..={MAX_ATTEMPTS} waits"));
                    return Err(cx.at(l, "phone.ladder_ms", kind));
                }
                let mut ms = Vec::with_capacity(waits.len());
                for (i, w) in waits.iter().enumerate() {
                    let v = u64::try_from(*w.get_ref()).ok().filter(|m| (1..=60_000).contains(m));
                    let v = v.ok_or_else(|| {
                        cx.at(w, &format!("phone.ladder_ms[{i}]"), out_of_range(w.get_ref(), "1..=60000"))
                    })?;
                    ms.push(Duration::from_millis(v));
                }
                // 1 to MAX_ATTEMPTS waits of at least 1 ms each.
                phone.ladder = Ladder::new(&ms).unwrap_or(phone.ladder);
                if phone.ladder.total() > phone.interval {
                    let why = "the waits add up to more than the interval";
                    return Err(cx.at(l, "phone.ladder_ms", FileErrorKind::Conflict(why.into())));
                }
            }
            if let Some(f) = &p.failback {
                phone.failback = match f.get_ref().as_str() {
                    "auto" => FailbackMode::Auto,
                    "manual" => FailbackMode::Manual,
                    "never" => FailbackMode::Never,
                    other => {
                        let kind = FileErrorKind::NotOneOf { value: other.to_string(), allowed: FAILBACK_MODES };
                        return Err(cx.at(f, "phone.failback", kind));
                    }
                };
            }
            if let Some(n) = &p.failback_after {
                phone.failback_after = u8::try_from(*n.get_ref())
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .and_then(NonZeroU8::new)
                    .ok_or_else(|| cx.at(n, "phone.failback_after", out_of_range(n.get_ref(), "1..=100")))?;
            }
            if let Some(b) = &p.fast_refused {
                phone.fast_refused = *b.get_ref();
            }
            if let Some(l) = &p.planned_lead {
                phone.planned_lead = duration_of(&cx, l, "phone.planned_lead")?;
            }
        }
        if let Some(t) = &raw.transport {
            phone.transports = [transport_of(&cx, t, "transport")?; 2];
        }
        for (side, server) in [(Side::Primary, &raw.primary), (Side::Backup, &raw.backup)] {
            if let Some(t) = server.as_ref().and_then(|s| s.transport.as_ref()) {
                phone.transports[side.index()] = transport_of(&cx, t, &format!("{side}.transport"))?;
            }
        }
        let (windows, starts_at) = match &raw.maintenance {
            Some(m) => {
                let lead_in_phone = raw.phone.as_ref().and_then(|p| p.planned_lead.as_ref());
                if let (Some(l), Some(_)) = (&m.get_ref().planned_lead, lead_in_phone) {
                    let why = "`planned_lead` is given in `[phone]` too: give it once".to_string();
                    return Err(cx.at(l, "maintenance.planned_lead", FileErrorKind::Conflict(why)));
                }
                maintenance_windows(&cx, m.get_ref(), duration, &mut phone)?
            }
            None => (Vec::new(), lab_epoch()),
        };
        let mut steps = Vec::with_capacity(raw.at.len());
        let mut calls: Vec<(CallStep, usize)> = Vec::new();
        let mut notices: Vec<NoticeStep> = Vec::new();
        for (i, s) in raw.at.iter().enumerate() {
            let kind = step_kind(&cx, i, s)?;
            let raw_step = s.get_ref();
            let field = format!("at[{i}].t");
            let at = duration_of(&cx, &raw_step.t, &field)?;
            if at > duration {
                return Err(cx.at(&raw_step.t, &field, FileErrorKind::MustNotBeAfter { other: "duration" }));
            }
            match kind {
                StepKind::Server(a) => steps.push(step(&cx, i, raw_step, a, at, duration, phone.transports)?),
                StepKind::Phone(p) => calls.push((call_step(&cx, i, raw_step, p, at)?, i)),
                StepKind::Notice(n) => {
                    let notice = notice_step(&cx, i, n.get_ref(), at)?;
                    let id = &n.get_ref().id;
                    if let Some(first) = notices.iter().position(|o| o.id == notice.id) {
                        let first_line = raw
                            .at
                            .iter()
                            .filter_map(|s| s.get_ref().notice.as_ref())
                            .nth(first)
                            .map(|o| crate::files::line_col(text, o.get_ref().id.span().start).0);
                        let kind = FileErrorKind::Duplicate { value: notice.id.clone(), first_line };
                        return Err(cx.at(id, &format!("at[{i}].notice.id"), kind));
                    }
                    if windows.len() + notices.len() >= MAX_WINDOWS {
                        let from_section = match windows.len() {
                            0 => String::new(),
                            n => format!(" ({n} from `[maintenance]`)"),
                        };
                        let why = format!(
                            "more than {MAX_WINDOWS} planned windows in one run{from_section}: the phone holds at most \
                             {MAX_WINDOWS}"
                        );
                        return Err(cx.at(n, &format!("at[{i}].notice"), FileErrorKind::Conflict(why)));
                    }
                    notices.push(notice);
                }
            }
        }
        steps.sort_by_key(|s| s.at);
        notices.sort_by_key(|n| n.at);
        // The call starts and ends in turn (steps at the same time in the order written).
        calls.sort_by_key(|(c, i)| (c.at, *i));
        let mut in_call: Option<Duration> = None;
        for (c, i) in &calls {
            let state = raw.at[*i].get_ref().state.as_ref();
            let why = match (c.in_call, in_call) {
                (true, Some(since)) => {
                    format!("the phone is already in a call (since {})", super::summary::secs(since))
                }
                (false, None) => "the phone is not in a call (no call started before)".to_string(),
                _ => {
                    in_call = c.in_call.then_some(c.at);
                    continue;
                }
            };
            if let Some(state) = state {
                return Err(cx.at(state, &format!("at[{i}].state"), FileErrorKind::Conflict(why)));
            }
        }
        let calls = calls.into_iter().map(|(c, _)| c).collect();
        let description = raw.description.map(|d| d.into_inner().trim().to_string()).unwrap_or_default();
        Ok(Scenario { name, description, duration, phone, steps, calls, notices, windows, starts_at })
    }

    /// The script as primitive changes per server, in time order: `both` split, `flap` and
    /// `rolling_restart` expanded.
    pub fn expanded(&self) -> Vec<(Duration, Side, Action)> {
        let mut out: Vec<(Duration, Side, Action)> = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            let sides: &[Side] = match s.target {
                Target::One(Side::Primary) => &[Side::Primary],
                Target::One(Side::Backup) => &[Side::Backup],
                Target::Both => &Side::BOTH,
            };
            match s.action {
                StepAction::Set(a) => out.extend(sides.iter().map(|side| (s.at, *side, a))),
                StepAction::Flap { period } => {
                    for side in sides {
                        // Until this server's next step, or the end of the run.
                        let end = self.steps[i + 1..]
                            .iter()
                            .find(|n| n.target == Target::Both || n.target == Target::One(*side))
                            .map_or(self.duration, |n| n.at);
                        let mut t = s.at;
                        let mut down = true;
                        while t < end {
                            out.push((t, *side, if down { Action::Blackhole } else { Action::Answer }));
                            down = !down;
                            t = t + period;
                        }
                    }
                }
                StepAction::RollingRestart { down_for, gap } => {
                    let back = s.at + down_for;
                    let second = back + gap;
                    out.push((s.at, Side::Primary, Action::Refuse));
                    out.push((back, Side::Primary, Action::Answer));
                    out.push((second, Side::Backup, Action::Refuse));
                    out.push((second + down_for, Side::Backup, Action::Answer));
                }
            }
        }
        out.sort_by_key(|s| s.0);
        out
    }
}

/// Which kind of step `s` is: exactly one of `action`, `phone` and `notice`.
enum StepKind<'r> {
    Server(&'r Spanned<String>),
    Phone(&'r Spanned<String>),
    Notice(&'r Spanned<RawNotice>),
}

fn step_kind<'r>(cx: &TomlText<'_>, i: usize, s: &'r Spanned<RawStep>) -> Result<StepKind<'r>, FileError> {
    let f = |name: &str| format!("at[{i}].{name}");
    let raw = s.get_ref();
    let given: Vec<(&str, std::ops::Range<usize>)> = [
        ("action", raw.action.as_ref().map(|v| v.span())),
        ("phone", raw.phone.as_ref().map(|v| v.span())),
        ("notice", raw.notice.as_ref().map(|v| v.span())),
    ]
    .into_iter()
    .filter_map(|(n, span)| span.map(|s| (n, s)))
    .collect();
    match given.as_slice() {
        [] => {
            let why = "a step needs `action` (a change of the servers), `phone` (the phone's call) or `notice` \
                       (a maintenance notice published)";
            return Err(cx.error(Some(s.span()), &format!("at[{i}]"), FileErrorKind::Conflict(why.into())));
        }
        [_] => {}
        [(first, _), (second, span), ..] => {
            let why =
                format!("a step has only one of `action`, `phone` and `notice`; this one has `{first}` and `{second}`");
            return Err(cx.error(Some(span.clone()), &f(second), FileErrorKind::Conflict(why)));
        }
    }
    if let (Some(server), None) = (&raw.server, &raw.action) {
        let why = if raw.phone.is_some() {
            "a step has either `server` or `phone`, never both".to_string()
        } else {
            "a notice names its server inside it: `notice = { server = \"...\", ... }`".to_string()
        };
        return Err(cx.at(server, &f("server"), FileErrorKind::Conflict(why)));
    }
    if raw.action.is_none() {
        // The servers' parameters are not the phone's or a notice's.
        let what = if raw.phone.is_some() { "a phone step" } else { "a notice step" };
        for (name, span) in server_params(raw) {
            if let Some(span) = span {
                let why = format!("{what} takes no `{name}`");
                return Err(cx.error(Some(span), &f(name), FileErrorKind::Conflict(why)));
            }
        }
        if let (Some(state), None) = (&raw.state, &raw.phone) {
            return Err(cx.at(state, &f("state"), FileErrorKind::Conflict("a notice step takes no `state`".into())));
        }
    }
    Ok(match (&raw.action, &raw.phone, &raw.notice) {
        (Some(a), _, _) => StepKind::Server(a),
        (_, Some(p), _) => StepKind::Phone(p),
        (_, _, Some(n)) => StepKind::Notice(n),
        // One of the three is given (checked above).
        (None, None, None) => return Err(cx.error(Some(s.span()), &format!("at[{i}]"), FileErrorKind::MissingKey)),
    })
}

/// The servers' step parameters given in `s`, with their places.
fn server_params(s: &RawStep) -> [(&'static str, Option<std::ops::Range<usize>>); 9] {
    [
        ("ms", s.ms.as_ref().map(|v| v.span())),
        ("share", s.share.as_ref().map(|v| v.span())),
        ("code", s.code.as_ref().map(|v| v.span())),
        ("retry_after", s.retry_after.as_ref().map(|v| v.span())),
        ("period", s.period.as_ref().map(|v| v.span())),
        ("down_for", s.down_for.as_ref().map(|v| v.span())),
        ("gap", s.gap.as_ref().map(|v| v.span())),
        ("form", s.form.as_ref().map(|v| v.span())),
        ("kind", s.kind.as_ref().map(|v| v.span())),
    ]
}

/// A phone step: `phone = "call"`, `state = "start" | "end"`.
fn call_step(
    cx: &TomlText<'_>,
    i: usize,
    s: &RawStep,
    phone: &Spanned<String>,
    at: Duration,
) -> Result<CallStep, FileError> {
    let f = |name: &str| format!("at[{i}].{name}");
    if phone.get_ref() != "call" {
        let kind = FileErrorKind::NotOneOf { value: phone.get_ref().clone(), allowed: PHONE_THINGS };
        return Err(cx.at(phone, &f("phone"), kind));
    }
    let state = s.state.as_ref().ok_or_else(|| {
        let why = "`phone = \"call\"` needs `state` (start or end)".to_string();
        cx.at(phone, &f("state"), FileErrorKind::Conflict(why))
    })?;
    let in_call = match state.get_ref().as_str() {
        "start" => true,
        "end" => false,
        other => {
            let kind = FileErrorKind::NotOneOf { value: other.to_string(), allowed: CALL_STATES };
            return Err(cx.at(state, &f("state"), kind));
        }
    };
    Ok(CallStep { at, in_call })
}

/// A notice step: `notice = { id, server, starts_in, lasts, title }`.
fn notice_step(cx: &TomlText<'_>, i: usize, n: &RawNotice, at: Duration) -> Result<NoticeStep, FileError> {
    let f = |name: &str| format!("at[{i}].notice.{name}");
    let id = n.id.get_ref().trim().to_string();
    if id.is_empty() {
        return Err(cx.at(&n.id, &f("id"), FileErrorKind::Empty));
    }
    let side = match n.server.as_ref() {
        None => Side::Primary,
        Some(v) => match v.get_ref().as_str() {
            "primary" => Side::Primary,
            "backup" => Side::Backup,
            other => {
                let kind = FileErrorKind::NotOneOf { value: other.to_string(), allowed: NOTICE_SERVERS };
                return Err(cx.at(v, &f("server"), kind));
            }
        },
    };
    let starts_in = duration_of(cx, &n.starts_in, &f("starts_in"))?;
    if starts_in > MAX_DURATION {
        return Err(cx.at(&n.starts_in, &f("starts_in"), out_of_range(n.starts_in.get_ref(), "0s..=7d")));
    }
    let lasts = duration_of(cx, &n.lasts, &f("lasts"))?;
    if lasts == Duration::ZERO || lasts > MAX_DURATION {
        return Err(cx.at(&n.lasts, &f("lasts"), out_of_range(n.lasts.get_ref(), "1ms..=7d")));
    }
    let title = n.title.as_ref().map(|t| t.get_ref().trim().to_string()).filter(|t| !t.is_empty());
    let start = at + starts_in;
    Ok(NoticeStep { at, id, side, start, end: start + lasts, title })
}

fn step(
    cx: &TomlText<'_>,
    i: usize,
    s: &RawStep,
    action_v: &Spanned<String>,
    at: Duration,
    duration: Duration,
    transports: [Transport; 2],
) -> Result<Step, FileError> {
    let f = |name: &str| format!("at[{i}].{name}");
    let not_one_of = |v: &Spanned<String>, name: &str, allowed: &'static [&'static str]| {
        cx.at(v, &f(name), FileErrorKind::NotOneOf { value: v.get_ref().clone(), allowed })
    };
    let target = match &s.server {
        None => Target::One(Side::Primary),
        Some(v) => match v.get_ref().as_str() {
            "primary" => Target::One(Side::Primary),
            "backup" => Target::One(Side::Backup),
            "both" => Target::Both,
            _ => return Err(not_one_of(v, "server", SERVERS)),
        },
    };
    // Parameters an action does not take are an error, so a typo cannot pass silently.
    if let Some(state) = &s.state {
        let why = format!("action `{}` takes no `state` (a phone step's)", action_v.get_ref());
        return Err(cx.at(state, &f("state"), FileErrorKind::Conflict(why)));
    }
    let action = action_v.get_ref().as_str();
    let allowed: &[&str] = match action {
        "answer" | "blackhole" | "refuse" => &[],
        "delay" => &["ms"],
        "loss" => &["share"],
        "status" => &["code", "retry_after"],
        "flap" => &["period"],
        "rolling_restart" => &["down_for", "gap"],
        "headers" => &["form"],
        "reset" | "hang" | "stall_handshake" => &[],
        "bad_certificate" => &["kind"],
        _ => return Err(not_one_of(action_v, "action", ACTIONS)),
    };
    // Connection faults need a server that has connections (and the handshake ones, TLS).
    let needs: &[Transport] = match action {
        "reset" | "hang" => &[Transport::Tcp, Transport::Tls],
        "stall_handshake" | "bad_certificate" => &[Transport::Tls],
        _ => &[],
    };
    if !needs.is_empty() {
        let sides: &[Side] = match target {
            Target::One(Side::Primary) => &[Side::Primary],
            Target::One(Side::Backup) => &[Side::Backup],
            Target::Both => &Side::BOTH,
        };
        if let Some(side) = sides.iter().find(|side| !needs.contains(&transports[side.index()])) {
            let want = if needs.len() == 1 { "tls" } else { "tcp or tls" };
            let why = format!(
                "action `{action}` needs a {want} server, and the {side} is {} (set `transport` or `[{side}] transport`)",
                transports[side.index()].as_str()
            );
            return Err(cx.at(action_v, &f("action"), FileErrorKind::Conflict(why)));
        }
    }
    for (name, span) in server_params(s) {
        if let Some(span) = span {
            if !allowed.contains(&name) {
                let why = format!("action `{action}` takes no `{name}`");
                return Err(cx.error(Some(span), &f(name), FileErrorKind::Conflict(why)));
            }
        }
    }
    let missing = |name: &str| {
        let why = format!("action `{action}` needs `{name}`");
        cx.at(action_v, &f(name), FileErrorKind::Conflict(why))
    };
    let action = match action {
        "answer" => StepAction::Set(Action::Answer),
        "blackhole" => StepAction::Set(Action::Blackhole),
        "refuse" => StepAction::Set(Action::Refuse),
        "reset" => StepAction::Set(Action::Reset),
        "hang" => StepAction::Set(Action::Hang),
        "stall_handshake" => StepAction::Set(Action::StallHandshake),
        "bad_certificate" => {
            let v = s.kind.as_ref().ok_or_else(|| missing("kind"))?;
            let kind = CertKind::ALL
                .into_iter()
                .find(|k| k.as_str() == v.get_ref())
                .ok_or_else(|| not_one_of(v, "kind", CERT_KINDS))?;
            StepAction::Set(Action::BadCertificate(kind))
        }
        "delay" => {
            let v = s.ms.as_ref().ok_or_else(|| missing("ms"))?;
            let ms = u64::try_from(*v.get_ref())
                .ok()
                .filter(|m| *m <= 600_000)
                .ok_or_else(|| cx.at(v, &f("ms"), out_of_range(v.get_ref(), "0..=600000")))?;
            StepAction::Set(Action::Delay(Duration::from_millis(ms)))
        }
        "loss" => {
            let v = s.share.as_ref().ok_or_else(|| missing("share"))?;
            let share = *v.get_ref();
            if !(0.0..=1.0).contains(&share) {
                return Err(cx.at(v, &f("share"), out_of_range(share, "0..=1")));
            }
            StepAction::Set(Action::Loss(share))
        }
        "status" => {
            let v = s.code.as_ref().ok_or_else(|| missing("code"))?;
            let code = u16::try_from(*v.get_ref())
                .ok()
                .filter(|c| (200..=699).contains(c))
                .ok_or_else(|| cx.at(v, &f("code"), out_of_range(v.get_ref(), "200..=699 (a final status)")))?;
            let retry_after = match &s.retry_after {
                None => None,
                Some(r) => Some(
                    u32::try_from(*r.get_ref())
                        .map_err(|_| cx.at(r, &f("retry_after"), out_of_range(r.get_ref(), "0..=4294967295")))?,
                ),
            };
            StepAction::Set(Action::Status { code, retry_after })
        }
        "flap" => {
            let v = s.period.as_ref().ok_or_else(|| missing("period"))?;
            let period = duration_of(cx, v, &f("period"))?;
            if period < Duration::from_millis(100) {
                return Err(cx.at(v, &f("period"), out_of_range(v.get_ref(), "100ms or more")));
            }
            // Each period is one scripted change; keep the script to a size a run can hold.
            let remaining = duration.as_micros().saturating_sub(at.as_micros());
            if remaining / period.as_micros() > MAX_FLAPS {
                let why = format!("flaps more than {MAX_FLAPS} times before the end");
                return Err(cx.at(v, &f("period"), FileErrorKind::Conflict(why)));
            }
            StepAction::Flap { period }
        }
        "rolling_restart" => {
            let d = s.down_for.as_ref().ok_or_else(|| missing("down_for"))?;
            let g = s.gap.as_ref().ok_or_else(|| missing("gap"))?;
            let down_for = duration_of(cx, d, &f("down_for"))?;
            let gap = duration_of(cx, g, &f("gap"))?;
            if down_for == Duration::ZERO {
                return Err(cx.at(d, &f("down_for"), out_of_range(d.get_ref(), "1ms or more")));
            }
            StepAction::RollingRestart { down_for, gap }
        }
        _ => {
            let v = s.form.as_ref().ok_or_else(|| missing("form"))?;
            let form = match v.get_ref().as_str() {
                "normal" => HeaderForm::Normal,
                "compact" => HeaderForm::Compact,
                "folded" => HeaderForm::Folded,
                _ => return Err(not_one_of(v, "form", HEADER_FORMS)),
            };
            StepAction::Set(Action::Headers(form))
        }
    };
    Ok(Step { at, target, action })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("800ms"), Some(Duration::from_millis(800)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("8"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("1.2345s"), None);
    }

    #[test]
    fn the_builtin_scenario_parses() {
        let s = Scenario::builtin();
        assert_eq!(s.duration, Duration::from_secs(50));
        assert_eq!(s.phone.interval, Duration::from_secs(15));
    }

    #[test]
    fn errors_name_line_and_field() {
        let text = "name = \"x\"\nduration = \"10s\"\n[[at]]\nt = \"1s\"\naction = \"loss\"\nshare = 1.5\n";
        let e = Scenario::parse(text, Path::new("s.toml")).unwrap_err();
        assert_eq!(e.to_string(), "s.toml:6:9: at[0].share: 1.5 is outside 0..=1");
        let text = "name = \"x\"\nduration = \"10s\"\n[[at]]\nt = \"1s\"\naction = \"delay\"\nshare = 0.5\n";
        let e = Scenario::parse(text, Path::new("s.toml")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("at[0].share"));
        let e = Scenario::parse("name = \"x\"\nduration = \"10s\"\nbogus = 1\n", Path::new("s.toml")).unwrap_err();
        assert_eq!(e.line, Some(3));
    }
}
