//! Maintenance calendars (RFC 5545 iCalendar) as [`Notice`]s: a feed of `VEVENT`s, from a file or a
//! URL, each a maintenance window or a recurring series of them.
//!
//! ## What is read
//!
//! - The text is UTF-8, at most [`MAX_BODY`] bytes; content lines may be folded (RFC 5545 3.1) and end
//!   in CRLF or LF. The content lines are read by the [`icalendar`] crate's parser; components must nest
//!   properly (`BEGIN:X` ... `END:X`), at most [`MAX_DEPTH`] deep, inside one or more `VCALENDAR`s.
//! - Each `VEVENT` needs a `UID` and a `DTSTART`, and a `DTEND` or a `DURATION` (an all-day event
//!   without either lasts its day). Other components (`VTIMEZONE`, `VTODO`, `VALARM`, ...) and other
//!   properties are read past.
//! - **Times.** `DTSTART`, `DTEND`, `EXDATE`, `RDATE` and `RECURRENCE-ID` are `YYYYMMDDTHHMMSS` in UTC
//!   (a trailing `Z`), in the zone of a `TZID` parameter, or floating (neither), or a `DATE`
//!   (`YYYYMMDD`, midnight). A `TZID` is looked up by name in jiff's IANA time zone database (a leading
//!   `/` is dropped): a calendar's `VTIMEZONE` blocks are not read, so a `TZID` that is not an IANA name
//!   (`W. Europe Standard Time`) is an error naming it. **Floating times and dates are taken as UTC.**
//!   Wall-clock times become instants with jiff's *compatible* disambiguation, as in
//!   [`calendar`](super::calendar): a time in a spring-forward gap moves later by the gap, a time in an
//!   autumn fold takes the earlier instant.
//! - **Length.** As RFC 5545 3.8.5.3 says: a `DTEND` gives every occurrence the same *exact* length
//!   (DTEND - DTSTART in elapsed time), so a window that straddles a clock change ends that length
//!   after its start, not at its usual wall-clock end; a `DURATION`'s weeks and days are *nominal*
//!   (calendar days in the event's zone) and its hours, minutes and seconds exact.
//! - **Recurrence.** `RRULE` with `FREQ=DAILY`, `WEEKLY` or `MONTHLY`, `INTERVAL`, `COUNT` or `UNTIL`,
//!   `BYDAY` (ordinals such as `1FR` or `-1SU` with `MONTHLY`), `BYMONTHDAY` (also negative, from the
//!   end of the month), `BYMONTH` and `WKST`; `EXDATE` removes occurrences and `RDATE` (date-times or
//!   dates) adds some; an event with a `RECURRENCE-ID` replaces (or, cancelled, removes) that occurrence
//!   of its series. `DTSTART` is always the first occurrence and counts towards `COUNT`. Any other rule
//!   part (`FREQ=YEARLY`, `BYSETPOS`, `BYHOUR`, ...), a second `RRULE` and `EXRULE` are errors naming
//!   the part: a maintenance calendar is better refused than half understood.
//! - **Horizon.** Only occurrences that overlap the [`Horizon`] become notices, by default from a day
//!   before now to 60 days ahead ([`Horizon::around`]); a feed is expanded again as time goes on.
//! - **Cluster.** An event affects a phone's cluster when one of its `CATEGORIES` values equals the
//!   cluster name, or when the cluster name is a word of its `SUMMARY`, both compared as
//!   [`cluster_matches`] (case-insensitive). A word is a longest run of letters, digits, `-`, `_` and
//!   `.`, without the `-`, `_` and `.` at its ends: `"cx-eu-2: platform upgrade"` names `cx-eu-2` (and
//!   `platform`), not `cx-eu-20` nor `eu`.
//! - **Notices.** One notice per matching cluster and occurrence. Its id is the `UID`; for an occurrence
//!   of a series (an `RRULE`, an `RDATE` or a `RECURRENCE-ID`) the `UID`, `/` and the occurrence's
//!   original start in UTC (`maint-7/20260307T013000Z`), so ids are unique; with more than one matching
//!   cluster, `@` and the cluster. Its title is the `SUMMARY`. It is published at `CREATED`, else
//!   `DTSTAMP` (a feed generated on request stamps every event with the time of the request), else at its
//!   start, and never after its end; an occurrence of a series is published no earlier than the end of
//!   the occurrence before it, so the bell counts each series' next window rather than all of the
//!   horizon's. Its impact is `X-MAINTENANCE-IMPACT` (`none`, `minimal`, `high`) when given, else
//!   `PRIORITY` 1-4 is high and anything else minimal. `STATUS:CANCELLED` events give no notice.
//!
//! A calendar with any error is refused whole, with a [`FileError`] naming the source, the line of
//! the content line at fault (its first line when folded) and the property (`DTEND`, `RRULE`, ...): the
//! caller keeps the notices it had.
//!
//! [`to_ical`] writes notices as a calendar that reads back to the same notices.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use super::calendar::local_to_timestamp;
use super::notice::{cluster_matches, Impact, Notice};
use crate::files::{FileError, FileErrorKind};

/// The largest calendar read, in bytes; a larger one is an error, not a truncated read.
pub const MAX_BODY: usize = 1 << 20;
/// How deep components may nest (`VCALENDAR` > `VEVENT` > `VALARM` is 3).
pub const MAX_DEPTH: usize = 8;
/// How many recurrence periods (days, weeks or months) one calendar may make the expansion look at
/// in all; past that the calendar is refused rather than read slowly.
pub const MAX_STEPS: usize = 200_000;
/// How far before the horizon a series without `COUNT` is expanded from, so that the occurrence
/// before the horizon's first (whose end publishes it) is found.
const LOOK_BACK_DAYS: i64 = 400;

/// The stretch of time whose occurrences become notices: those that end after `from` and start
/// before `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizon {
    /// Occurrences that ended before this are left out.
    pub from: Timestamp,
    /// Occurrences that start at or after this are left out.
    pub to: Timestamp,
}

impl Horizon {
    /// How far back the default horizon reaches.
    pub const BEHIND: SignedDuration = SignedDuration::from_hours(24);
    /// How far ahead the default horizon reaches.
    pub const AHEAD: SignedDuration = SignedDuration::from_hours(60 * 24);

    /// From a day before `now` to 60 days after it.
    pub fn around(now: Timestamp) -> Horizon {
        Horizon {
            from: now.checked_sub(Horizon::BEHIND).unwrap_or(now),
            to: now.checked_add(Horizon::AHEAD).unwrap_or(now),
        }
    }

    fn overlaps(&self, start: Timestamp, end: Timestamp) -> bool {
        end > self.from && start < self.to
    }
}

/// A calendar's `http://` or `https://` URL (its path keeps the query: `/team.ics?token=x`).
pub type CalendarUrl = super::url::HttpUrl;

// ---- reading ----

/// The notices of the calendar `text` for a phone whose servers are in `clusters`, for the occurrences
/// that overlap `horizon`, in order of start. `source` names the calendar in errors (its path or URL).
pub fn notices(text: &str, source: &str, clusters: &[&str], horizon: Horizon) -> Result<Vec<Notice>, FileError> {
    let cx = Cx { path: Path::new(source) };
    if text.len() > MAX_BODY {
        let kind = FileErrorKind::OutOfRange {
            value: format!("{} bytes", text.len()),
            allowed: format!("at most {MAX_BODY} bytes"),
        };
        return Err(FileError::new(Some(cx.path), kind));
    }
    let unfolded = Unfolded::new(text.strip_prefix('\u{feff}').unwrap_or(text), &cx)?;
    let roots = ::icalendar::parser::read_calendar_simple(&unfolded.text).map_err(|e| {
        let line = unfolded.line_at(offset_in(&unfolded.text, e.input).unwrap_or(0));
        cx.err(line, None, FileErrorKind::Syntax(format!("not read as iCalendar ({:?})", e.code)))
    })?;
    let mut events = Vec::new();
    for root in &roots {
        for c in &root.components {
            if c.name.as_str() == "VEVENT" {
                let props = c.properties.iter().map(|p| Prop::new(p, &unfolded)).collect::<Vec<_>>();
                // The component's name is borrowed from its BEGIN line.
                let begin = offset_in(&unfolded.text, c.name.as_str()).map_or(1, |o| unfolded.line_at(o));
                events.push(Event::read(&props, begin, &cx)?);
            }
        }
    }
    assemble(events, clusters, horizon, &cx)
}

/// Reads the calendar file at `path`; see [`notices`].
pub fn load(path: &Path, clusters: &[&str], horizon: Horizon) -> Result<Vec<Notice>, FileError> {
    notices(&read_file(path)?, &path.display().to_string(), clusters, horizon)
}

/// The text of the calendar file at `path`, refused unread when larger than [`MAX_BODY`].
pub fn read_file(path: &Path) -> Result<String, FileError> {
    let len = std::fs::metadata(path).map_err(|e| FileError::io(path, &e))?.len();
    if len > MAX_BODY as u64 {
        let kind =
            FileErrorKind::OutOfRange { value: format!("{len} bytes"), allowed: format!("at most {MAX_BODY} bytes") };
        return Err(FileError::new(Some(path), kind));
    }
    std::fs::read_to_string(path).map_err(|e| FileError::io(path, &e))
}

/// Where errors go.
struct Cx<'a> {
    path: &'a Path,
}

impl Cx<'_> {
    fn err(&self, line: usize, field: Option<&str>, kind: FileErrorKind) -> FileError {
        let mut e = FileError::new(Some(self.path), kind);
        e.line = Some(u32::try_from(line).unwrap_or(u32::MAX));
        match field {
            Some(f) => e.with_field(f),
            None => e,
        }
    }
}

fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    (p >= w && p <= w + whole.len()).then(|| p - w)
}

/// The text unfolded (one content line per line, names in upper case, empty lines dropped), with the
/// line in the file where each content line starts.
struct Unfolded {
    text: String,
    /// (offset in `text`, line in the file) of each content line.
    starts: Vec<(usize, usize)>,
}

impl Unfolded {
    fn new(text: &str, cx: &Cx<'_>) -> Result<Unfolded, FileError> {
        let mut lines: Vec<(usize, String)> = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            match (raw.strip_prefix([' ', '\t']), lines.last_mut()) {
                (Some(rest), Some((_, last))) => last.push_str(rest),
                _ if raw.is_empty() => {}
                _ => lines.push((i + 1, raw.to_owned())),
            }
        }
        let mut out = Unfolded { text: String::with_capacity(text.len()), starts: Vec::with_capacity(lines.len()) };
        let mut stack: Vec<(String, usize)> = Vec::new();
        for (line, content) in &lines {
            let name_end = check_line(content).map_err(|why| {
                let shown: String = content.chars().take(60).collect();
                let field = content.get(..why).filter(|n| !n.is_empty() && is_name(n)).map(str::to_ascii_uppercase);
                cx.err(
                    *line,
                    field.as_deref(),
                    FileErrorKind::Invalid { value: shown, expected: "a content line NAME[;PARAM=VALUE]:VALUE".into() },
                )
            })?;
            let name = content[..name_end].to_ascii_uppercase();
            let value = &content[name_end + 1..];
            match name.as_str() {
                "BEGIN" => {
                    let comp = value.trim().to_ascii_uppercase();
                    if !is_name(&comp) {
                        let kind =
                            FileErrorKind::Invalid { value: value.to_owned(), expected: "a component name".into() };
                        return Err(cx.err(*line, Some("BEGIN"), kind));
                    }
                    if stack.is_empty() && comp != "VCALENDAR" {
                        let kind = FileErrorKind::Conflict(format!("BEGIN:{comp} outside a VCALENDAR"));
                        return Err(cx.err(*line, Some("BEGIN"), kind));
                    }
                    if stack.len() >= MAX_DEPTH {
                        let kind = FileErrorKind::Conflict(format!("components nested more than {MAX_DEPTH} deep"));
                        return Err(cx.err(*line, Some("BEGIN"), kind));
                    }
                    out.push(*line, &format!("BEGIN:{comp}"));
                    stack.push((comp, *line));
                }
                "END" => {
                    let comp = value.trim().to_ascii_uppercase();
                    match stack.pop() {
                        Some((open, _)) if open == comp => out.push(*line, &format!("END:{comp}")),
                        Some((open, begun)) => {
                            let why = format!("END:{comp} where END:{open} (begun on line {begun}) was expected");
                            return Err(cx.err(*line, Some("END"), FileErrorKind::Conflict(why)));
                        }
                        None => {
                            let why = format!("END:{comp} without a BEGIN:{comp}");
                            return Err(cx.err(*line, Some("END"), FileErrorKind::Conflict(why)));
                        }
                    }
                }
                _ if stack.is_empty() => {
                    let kind = FileErrorKind::Conflict("a property outside BEGIN:VCALENDAR ... END:VCALENDAR".into());
                    return Err(cx.err(*line, Some(&name), kind));
                }
                _ => out.push(*line, &format!("{name}{}", &content[name_end..])),
            }
        }
        if let Some((open, begun)) = stack.pop() {
            let why = format!("BEGIN:{open} is never ended: the text stops before END:{open}");
            return Err(cx.err(begun, Some("BEGIN"), FileErrorKind::Conflict(why)));
        }
        if out.starts.is_empty() {
            let last = text.split('\n').count();
            let kind = FileErrorKind::Conflict("no BEGIN:VCALENDAR: not an iCalendar text".into());
            return Err(cx.err(last, None, kind));
        }
        Ok(out)
    }

    fn push(&mut self, line: usize, content: &str) {
        self.starts.push((self.text.len(), line));
        self.text.push_str(content);
        self.text.push('\n');
    }

    /// The file's line of the content line holding `offset`.
    fn line_at(&self, offset: usize) -> usize {
        let i = self.starts.partition_point(|&(o, _)| o <= offset);
        self.starts.get(i.saturating_sub(1)).map_or(1, |&(_, l)| l)
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Checks `NAME *(";" PARAM "=" VALUE *("," VALUE)) ":" VALUE` (RFC 5545 3.1); the offset of the
/// name's end, or of where the line goes wrong.
fn check_line(line: &str) -> Result<usize, usize> {
    let b = line.as_bytes();
    let name_end = b.iter().position(|&c| c == b';' || c == b':').ok_or(line.len())?;
    if !is_name(&line[..name_end]) {
        return Err(name_end);
    }
    let mut i = name_end;
    while b.get(i) == Some(&b';') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'-') {
            i += 1;
        }
        if i == start || b.get(i) != Some(&b'=') {
            return Err(i);
        }
        loop {
            i += 1;
            if b.get(i) == Some(&b'"') {
                let close = b[i + 1..].iter().position(|&c| c == b'"').ok_or(i)?;
                i += close + 2;
            } else {
                while b.get(i).is_some_and(|c| (!matches!(c, b';' | b':' | b',' | b'"') && *c >= 0x20) || *c == b'\t') {
                    i += 1;
                }
            }
            if b.get(i) != Some(&b',') {
                break;
            }
        }
    }
    if b.get(i) == Some(&b':') {
        Ok(name_end)
    } else {
        Err(i)
    }
}

/// A property of an event, with its line.
struct Prop<'a> {
    name: &'a str,
    value: &'a str,
    params: Vec<(&'a str, &'a str)>,
    line: usize,
}

impl<'a> Prop<'a> {
    fn new(p: &'a ::icalendar::parser::Property<'a>, u: &Unfolded) -> Prop<'a> {
        let line = offset_in(&u.text, p.name.as_str()).map_or(1, |o| u.line_at(o));
        let params = p.params.iter().map(|x| (x.key.as_str(), x.val.as_ref().map_or("", |v| v.as_str()))).collect();
        Prop { name: p.name.as_str(), value: p.val.as_str(), params, line }
    }

    fn param(&self, key: &str) -> Option<&'a str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|&(_, v)| v)
    }
}

/// A time as written: a wall-clock time in a zone (UTC for `Z`, floating times and dates).
#[derive(Clone, Debug)]
struct Stamp {
    local: DateTime,
    tz: TimeZone,
    date_only: bool,
}

impl Stamp {
    fn instant(&self) -> Option<Timestamp> {
        local_to_timestamp(&self.tz, self.local)
    }
}

const DATE_TIME: &str = "a date-time YYYYMMDDTHHMMSS (with Z for UTC) or a date YYYYMMDD";

fn parse_date(s: &str) -> Option<Date> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i16 = s[..4].parse().ok()?;
    let m: i8 = s[4..6].parse().ok()?;
    let d: i8 = s[6..].parse().ok()?;
    Date::new(y, m, d).ok()
}

/// `YYYYMMDDTHHMMSS[Z]` as a civil date-time and whether it is UTC; `None` if it is not one.
fn parse_date_time(s: &str) -> Option<(DateTime, bool)> {
    let (body, utc) = match s.strip_suffix(['Z', 'z']) {
        Some(b) => (b, true),
        None => (s, false),
    };
    let (d, t) = body.split_once(['T', 't'])?;
    let date = parse_date(d)?;
    if t.len() != 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let time = Time::new(t[..2].parse().ok()?, t[2..4].parse().ok()?, t[4..].parse().ok()?, 0).ok()?;
    Some((date.to_datetime(time), utc))
}

/// The values of a date-time property (`DTSTART`, `EXDATE`, ...), with its `TZID` and `VALUE`.
fn stamps(p: &Prop<'_>, cx: &Cx<'_>) -> Result<Vec<Stamp>, FileError> {
    let tz = match p.param("TZID") {
        None => None,
        Some(name) => {
            let name = name.trim().trim_start_matches('/');
            Some(TimeZone::get(name).map_err(|_| {
                let kind = FileErrorKind::Invalid {
                    value: name.to_owned(),
                    expected:
                        "an IANA time zone name as TZID, such as \"Europe/London\" (VTIMEZONE rules are not read)"
                            .into(),
                };
                cx.err(p.line, Some(p.name), kind)
            })?)
        }
    };
    let value_type = p.param("VALUE").map(str::to_ascii_uppercase);
    if let Some(v) = value_type.as_deref().filter(|v| !matches!(*v, "DATE" | "DATE-TIME")) {
        let kind = FileErrorKind::NotOneOf { value: v.to_owned(), allowed: &["DATE", "DATE-TIME"] };
        return Err(cx.err(p.line, Some(p.name), kind));
    }
    let bad = |v: &str| {
        let kind = FileErrorKind::Invalid { value: v.to_owned(), expected: DATE_TIME.into() };
        cx.err(p.line, Some(p.name), kind)
    };
    let mut out = Vec::new();
    for v in p.value.split(',').map(str::trim) {
        let stamp = if let Some(d) = parse_date(v).filter(|_| value_type.as_deref() != Some("DATE-TIME")) {
            Stamp { local: d.to_datetime(Time::midnight()), tz: TimeZone::UTC, date_only: true }
        } else {
            let (local, utc) =
                parse_date_time(v).filter(|_| value_type.as_deref() != Some("DATE")).ok_or_else(|| bad(v))?;
            let tz = match (&tz, utc) {
                (Some(_), true) => {
                    let kind = FileErrorKind::Conflict(format!("{v:?} is in UTC (Z) and also has a TZID"));
                    return Err(cx.err(p.line, Some(p.name), kind));
                }
                (Some(tz), false) => tz.clone(),
                (None, _) => TimeZone::UTC,
            };
            Stamp { local, tz, date_only: false }
        };
        stamp.instant().ok_or_else(|| bad(v))?;
        out.push(stamp);
    }
    Ok(out)
}

fn one_stamp(p: &Prop<'_>, cx: &Cx<'_>) -> Result<Stamp, FileError> {
    let mut all = stamps(p, cx)?;
    if all.len() != 1 {
        let kind = FileErrorKind::Invalid { value: p.value.to_owned(), expected: format!("one {DATE_TIME}") };
        return Err(cx.err(p.line, Some(p.name), kind));
    }
    Ok(all.remove(0))
}

/// How long each occurrence lasts: nominal days in the event's zone, then exact time.
#[derive(Clone, Copy, Debug)]
struct Length {
    days: i64,
    exact: SignedDuration,
}

impl Length {
    fn end(&self, tz: &TimeZone, local: DateTime, start: Timestamp) -> Option<Timestamp> {
        let base = if self.days == 0 {
            start
        } else {
            local_to_timestamp(tz, local.checked_add(Span::new().try_days(self.days).ok()?).ok()?)?
        };
        base.checked_add(self.exact).ok()
    }
}

/// `[+]P[nW]` or `[+]P[nD][T[nH][nM][nS]]` (RFC 5545 3.3.6), positive.
fn parse_duration(s: &str) -> Option<Length> {
    let s = s.strip_prefix('+').unwrap_or(s);
    let rest = s.strip_prefix(['P', 'p'])?;
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut days = 0i64;
    let mut num = String::new();
    for c in date.chars() {
        match c {
            '0'..='9' => num.push(c),
            'W' | 'w' | 'D' | 'd' if !num.is_empty() && num.len() <= 6 => {
                let n: i64 = num.parse().ok()?;
                days += if c.eq_ignore_ascii_case(&'w') { n * 7 } else { n };
                num.clear();
            }
            _ => return None,
        }
    }
    if !num.is_empty() {
        return None;
    }
    let mut secs = 0i64;
    for c in time.unwrap_or("").chars() {
        match c {
            '0'..='9' => num.push(c),
            'H' | 'h' | 'M' | 'm' | 'S' | 's' if !num.is_empty() && num.len() <= 9 => {
                let n: i64 = num.parse().ok()?;
                secs += n * match c.to_ascii_uppercase() {
                    'H' => 3600,
                    'M' => 60,
                    _ => 1,
                };
                num.clear();
            }
            _ => return None,
        }
    }
    if !num.is_empty() || (days == 0 && secs == 0) {
        return None;
    }
    Some(Length { days, exact: SignedDuration::from_secs(secs) })
}

// ---- recurrence rules ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Freq {
    Daily,
    Weekly,
    Monthly,
}

#[derive(Clone, Debug)]
enum Until {
    Instant(Timestamp),
    Local(DateTime),
    Date(Date),
}

#[derive(Clone, Debug)]
struct Rule {
    freq: Freq,
    interval: i64,
    count: Option<u32>,
    until: Option<Until>,
    by_day: Vec<(Option<i8>, Weekday)>,
    by_month_day: Vec<i8>,
    by_month: Vec<i8>,
    wkst: Weekday,
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Monday,
        "TU" => Weekday::Tuesday,
        "WE" => Weekday::Wednesday,
        "TH" => Weekday::Thursday,
        "FR" => Weekday::Friday,
        "SA" => Weekday::Saturday,
        "SU" => Weekday::Sunday,
        _ => return None,
    })
}

impl Rule {
    fn parse(p: &Prop<'_>, cx: &Cx<'_>) -> Result<Rule, FileError> {
        let bad = |part: &str, expected: &str| {
            cx.err(p.line, Some("RRULE"), FileErrorKind::Invalid { value: part.to_owned(), expected: expected.into() })
        };
        let unsupported = |part: &str, why: &str| {
            cx.err(p.line, Some("RRULE"), FileErrorKind::Conflict(format!("{part} is not supported: {why}")))
        };
        let mut freq = None;
        let mut rule = Rule {
            freq: Freq::Daily,
            interval: 1,
            count: None,
            until: None,
            by_day: Vec::new(),
            by_month_day: Vec::new(),
            by_month: Vec::new(),
            wkst: Weekday::Monday,
        };
        let mut seen = HashSet::new();
        for part in p.value.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| bad(part, "NAME=VALUE rule parts"))?;
            let key = key.trim().to_ascii_uppercase();
            if !seen.insert(key.clone()) {
                return Err(cx.err(p.line, Some("RRULE"), FileErrorKind::Duplicate { value: key, first_line: None }));
            }
            match key.as_str() {
                "FREQ" => {
                    freq = Some(match value.to_ascii_uppercase().as_str() {
                        "DAILY" => Freq::Daily,
                        "WEEKLY" => Freq::Weekly,
                        "MONTHLY" => Freq::Monthly,
                        "SECONDLY" | "MINUTELY" | "HOURLY" | "YEARLY" => {
                            return Err(unsupported(part, "FREQ must be DAILY, WEEKLY or MONTHLY"))
                        }
                        _ => return Err(bad(part, "FREQ=DAILY, WEEKLY or MONTHLY")),
                    })
                }
                "INTERVAL" => {
                    rule.interval = value
                        .parse::<u16>()
                        .ok()
                        .filter(|&n| n >= 1)
                        .map(i64::from)
                        .ok_or_else(|| bad(part, "INTERVAL=1..65535"))?
                }
                "COUNT" => {
                    rule.count = Some(
                        value.parse::<u32>().ok().filter(|&n| n >= 1).ok_or_else(|| bad(part, "COUNT=1 or more"))?,
                    )
                }
                "UNTIL" => {
                    rule.until = Some(if let Some(d) = parse_date(value) {
                        Until::Date(d)
                    } else {
                        match parse_date_time(value) {
                            Some((dt, true)) => Until::Instant(
                                local_to_timestamp(&TimeZone::UTC, dt).ok_or_else(|| bad(part, DATE_TIME))?,
                            ),
                            Some((dt, false)) => Until::Local(dt),
                            None => return Err(bad(part, &format!("UNTIL={DATE_TIME}"))),
                        }
                    })
                }
                "BYDAY" => {
                    for d in value.split(',').map(str::trim) {
                        let split = d.len().saturating_sub(2);
                        let (n, w) = (d.get(..split).unwrap_or(""), d.get(split..).unwrap_or(""));
                        let w = weekday(w)
                            .ok_or_else(|| bad(d, "BYDAY days MO..SU, with an ordinal such as 1FR or -1SU"))?;
                        let n = match n {
                            "" => None,
                            n => Some(
                                n.parse::<i8>()
                                    .ok()
                                    .filter(|n| (1..=5).contains(&n.abs()))
                                    .ok_or_else(|| bad(d, "a BYDAY ordinal 1..5 or -5..-1"))?,
                            ),
                        };
                        rule.by_day.push((n, w));
                    }
                }
                "BYMONTHDAY" => {
                    for d in value.split(',').map(str::trim) {
                        let n = d
                            .parse::<i8>()
                            .ok()
                            .filter(|n| *n != 0 && (-31..=31).contains(n))
                            .ok_or_else(|| bad(d, "BYMONTHDAY days 1..31 or -31..-1"))?;
                        rule.by_month_day.push(n);
                    }
                }
                "BYMONTH" => {
                    for m in value.split(',').map(str::trim) {
                        let n = m
                            .parse::<i8>()
                            .ok()
                            .filter(|n| (1..=12).contains(n))
                            .ok_or_else(|| bad(m, "BYMONTH months 1..12"))?;
                        rule.by_month.push(n);
                    }
                }
                "WKST" => rule.wkst = weekday(value).ok_or_else(|| bad(part, "WKST=MO..SU"))?,
                "BYSETPOS" | "BYHOUR" | "BYMINUTE" | "BYSECOND" | "BYYEARDAY" | "BYWEEKNO" => {
                    return Err(unsupported(
                        &key,
                        "maintenance calendars use FREQ, INTERVAL, COUNT, UNTIL, BYDAY, BYMONTHDAY, BYMONTH and WKST",
                    ))
                }
                _ => return Err(bad(part, "a rule part of RFC 5545 3.3.10")),
            }
        }
        rule.freq =
            freq.ok_or_else(|| cx.err(p.line, Some("RRULE"), FileErrorKind::Conflict("FREQ is missing".into())))?;
        if rule.count.is_some() && rule.until.is_some() {
            return Err(cx.err(p.line, Some("RRULE"), FileErrorKind::Conflict("COUNT and UNTIL together".into())));
        }
        if rule.freq != Freq::Monthly && rule.by_day.iter().any(|(n, _)| n.is_some()) {
            return Err(unsupported("a BYDAY ordinal", "only with FREQ=MONTHLY"));
        }
        if rule.freq == Freq::Weekly && !rule.by_month_day.is_empty() {
            return Err(unsupported("BYMONTHDAY", "not with FREQ=WEEKLY (RFC 5545 3.3.10)"));
        }
        Ok(rule)
    }

    fn until_allows(&self, tz: &TimeZone, dt: DateTime) -> bool {
        match &self.until {
            None => true,
            Some(Until::Date(d)) => dt.date() <= *d,
            Some(Until::Local(u)) => dt <= *u,
            Some(Until::Instant(u)) => local_to_timestamp(tz, dt).is_some_and(|t| t <= *u),
        }
    }

    /// The first date of period `k` (a day, the week's start or the month's first day).
    fn period(&self, first: Date, k: i64) -> Option<Date> {
        let n = k.checked_mul(self.interval)?;
        match self.freq {
            Freq::Daily => first.checked_add(Span::new().try_days(n).ok()?).ok(),
            Freq::Weekly => {
                let back = i64::from(
                    (first.weekday().to_monday_zero_offset() - self.wkst.to_monday_zero_offset()).rem_euclid(7),
                );
                let start = first.checked_sub(Span::new().try_days(back).ok()?).ok()?;
                start.checked_add(Span::new().try_days(n.checked_mul(7)?).ok()?).ok()
            }
            Freq::Monthly => first.first_of_month().checked_add(Span::new().try_months(n).ok()?).ok(),
        }
    }

    /// The period index from which to look, for a series without COUNT, so as to start some
    /// [`LOOK_BACK_DAYS`] before `from` rather than at the series' first date.
    fn skip_to(&self, first: Date, from: Date) -> i64 {
        let Some(target) = from.checked_sub(Span::new().days(LOOK_BACK_DAYS)).ok().filter(|t| *t > first) else {
            return 0;
        };
        let units = match self.freq {
            Freq::Daily => first.until(target).map(|s| i64::from(s.get_days())),
            Freq::Weekly => first.until(target).map(|s| i64::from(s.get_days()) / 7),
            Freq::Monthly => {
                first.first_of_month().until((jiff::Unit::Month, target)).map(|s| i64::from(s.get_months()))
            }
        };
        units.map_or(0, |u| (u / self.interval - 1).max(0))
    }

    /// The dates of period `k` in order, before BYMONTH.
    fn dates(&self, first: Date, period: Date, out: &mut Vec<Date>) {
        out.clear();
        let month_ok = |d: &Date| self.by_month.is_empty() || self.by_month.contains(&d.month());
        let day_ok = |d: &Date| {
            self.by_month_day.is_empty()
                || self.by_month_day.iter().any(|&m| {
                    let dim = d.days_in_month();
                    let want = if m > 0 { m } else { dim + 1 + m };
                    d.day() == want
                })
        };
        match self.freq {
            Freq::Daily => {
                let wd_ok = self.by_day.is_empty() || self.by_day.iter().any(|(_, w)| *w == period.weekday());
                if wd_ok && day_ok(&period) {
                    out.push(period);
                }
            }
            Freq::Weekly => {
                let days: Vec<Weekday> = if self.by_day.is_empty() {
                    vec![first.weekday()]
                } else {
                    self.by_day.iter().map(|(_, w)| *w).collect()
                };
                for w in days {
                    let ahead =
                        i64::from((w.to_monday_zero_offset() - period.weekday().to_monday_zero_offset()).rem_euclid(7));
                    if let Some(d) = Span::new().try_days(ahead).ok().and_then(|s| period.checked_add(s).ok()) {
                        out.push(d);
                    }
                }
            }
            Freq::Monthly => {
                if !self.by_day.is_empty() {
                    for &(n, w) in &self.by_day {
                        match n {
                            Some(n) => out.extend(period.nth_weekday_of_month(n, w).ok()),
                            None => {
                                for n in 1..=5 {
                                    out.extend(period.nth_weekday_of_month(n, w).ok());
                                }
                            }
                        }
                    }
                    out.retain(|d| day_ok(d));
                } else if !self.by_month_day.is_empty() {
                    for &m in &self.by_month_day {
                        let dim = period.days_in_month();
                        let day = if m > 0 { m } else { dim + 1 + m };
                        if (1..=dim).contains(&day) {
                            out.extend(Date::new(period.year(), period.month(), day).ok());
                        }
                    }
                } else {
                    out.extend(Date::new(period.year(), period.month(), first.day()).ok());
                }
            }
        }
        out.retain(|d| month_ok(d));
        out.sort_unstable();
        out.dedup();
    }

    /// The occurrences' local starts in order: `first`, then the rule's, up to COUNT, UNTIL or the
    /// local date `last`; from some time before `from` when there is no COUNT. `Err` when the budget
    /// of steps runs out.
    fn expand(
        &self,
        tz: &TimeZone,
        first: DateTime,
        from: Date,
        last: Date,
        budget: &mut usize,
    ) -> Result<Vec<DateTime>, ()> {
        let mut out = vec![first];
        let mut dates = Vec::new();
        let k0 = if self.count.is_none() { self.skip_to(first.date(), from) } else { 0 };
        for k in k0.. {
            *budget = budget.checked_sub(1).ok_or(())?;
            let Some(period) = self.period(first.date(), k) else { break };
            if period > last {
                break;
            }
            self.dates(first.date(), period, &mut dates);
            for d in &dates {
                let dt = d.to_datetime(first.time());
                if dt <= first {
                    continue;
                }
                if *d > last || !self.until_allows(tz, dt) {
                    return Ok(out);
                }
                out.push(dt);
                if self.count.is_some_and(|c| out.len() >= c as usize) {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }
}

// ---- events ----

struct Event {
    uid: String,
    uid_line: usize,
    start: Stamp,
    length: Length,
    rule: Option<Rule>,
    rule_line: usize,
    exdates: Vec<Stamp>,
    rdates: Vec<Stamp>,
    recurrence_id: Option<Timestamp>,
    cancelled: bool,
    summary: Option<String>,
    categories: Vec<String>,
    published: Option<Timestamp>,
    impact: Impact,
}

impl Event {
    fn read(props: &[Prop<'_>], begin: usize, cx: &Cx<'_>) -> Result<Event, FileError> {
        let single = |name: &str| -> Result<Option<&Prop<'_>>, FileError> {
            let mut it = props.iter().filter(|p| p.name == name);
            let first = it.next();
            if let (Some(a), Some(b)) = (first, it.next()) {
                let kind = FileErrorKind::Duplicate { value: name.to_owned(), first_line: Some(a.line) };
                return Err(cx.err(b.line, Some(name), kind));
            }
            Ok(first)
        };
        let missing = |name: &str| cx.err(begin, Some(name), FileErrorKind::MissingKey);
        let uid_prop = single("UID")?.ok_or_else(|| missing("UID"))?;
        let uid = text(uid_prop.value);
        if uid.is_empty() {
            return Err(cx.err(uid_prop.line, Some("UID"), FileErrorKind::Empty));
        }
        let dtstart = single("DTSTART")?.ok_or_else(|| missing("DTSTART"))?;
        let start = one_stamp(dtstart, cx)?;
        let start_at = start.instant().unwrap_or(Timestamp::MIN);
        let length = match (single("DTEND")?, single("DURATION")?) {
            (Some(_), Some(d)) => {
                let kind = FileErrorKind::Conflict("DTEND and DURATION together".into());
                return Err(cx.err(d.line, Some("DURATION"), kind));
            }
            (Some(e), None) => {
                let end = one_stamp(e, cx)?;
                if end.date_only != start.date_only {
                    let kind =
                        FileErrorKind::Conflict("a DATE and a DATE-TIME: DTEND must be of DTSTART's type".into());
                    return Err(cx.err(e.line, Some("DTEND"), kind));
                }
                let end_at = end.instant().unwrap_or(Timestamp::MIN);
                if end_at <= start_at {
                    return Err(cx.err(e.line, Some("DTEND"), FileErrorKind::MustBeAfter { other: "DTSTART" }));
                }
                if start.date_only {
                    let days = start.local.date().until(end.local.date()).map_or(1, |s| i64::from(s.get_days()));
                    Length { days, exact: SignedDuration::ZERO }
                } else {
                    Length { days: 0, exact: end_at.duration_since(start_at) }
                }
            }
            (None, Some(d)) => parse_duration(d.value.trim()).ok_or_else(|| {
                let kind = FileErrorKind::Invalid {
                    value: d.value.to_owned(),
                    expected: "a positive duration such as PT2H, P1D or P1W".into(),
                };
                cx.err(d.line, Some("DURATION"), kind)
            })?,
            (None, None) if start.date_only => Length { days: 1, exact: SignedDuration::ZERO },
            (None, None) => {
                let kind = FileErrorKind::Conflict("a maintenance window needs DTEND or DURATION".into());
                return Err(cx.err(dtstart.line, Some("DTSTART"), kind));
            }
        };
        if let Some(x) = props.iter().find(|p| p.name == "EXRULE") {
            let kind = FileErrorKind::Conflict("EXRULE is not supported (RFC 5545 removed it); use EXDATE".into());
            return Err(cx.err(x.line, Some("EXRULE"), kind));
        }
        let rule_prop = single("RRULE")?;
        let rule = rule_prop.map(|p| Rule::parse(p, cx)).transpose()?;
        let mut exdates = Vec::new();
        let mut rdates = Vec::new();
        for p in props {
            match p.name {
                "EXDATE" => exdates.extend(stamps(p, cx)?),
                "RDATE" => {
                    if p.param("VALUE").is_some_and(|v| v.eq_ignore_ascii_case("PERIOD")) {
                        let kind = FileErrorKind::Conflict("RDATE;VALUE=PERIOD is not supported".into());
                        return Err(cx.err(p.line, Some("RDATE"), kind));
                    }
                    rdates.extend(stamps(p, cx)?)
                }
                _ => {}
            }
        }
        let recurrence_id = match single("RECURRENCE-ID")? {
            None => None,
            Some(p) => {
                if p.param("RANGE").is_some() {
                    let kind = FileErrorKind::Conflict("RANGE=THISANDFUTURE is not supported".into());
                    return Err(cx.err(p.line, Some("RECURRENCE-ID"), kind));
                }
                one_stamp(p, cx)?.instant()
            }
        };
        let cancelled = single("STATUS")?.is_some_and(|p| p.value.trim().eq_ignore_ascii_case("CANCELLED"));
        let summary = single("SUMMARY")?.map(|p| text(p.value)).filter(|s| !s.is_empty());
        let categories = props.iter().filter(|p| p.name == "CATEGORIES").flat_map(|p| split_list(p.value)).collect();
        let published = match single("CREATED")?.or(single("DTSTAMP")?) {
            None => None,
            Some(p) => one_stamp(p, cx)?.instant(),
        };
        let impact = match single(IMPACT)? {
            Some(p) => p.value.parse::<Impact>().map_err(|_| {
                let kind = FileErrorKind::NotOneOf { value: p.value.to_owned(), allowed: &["none", "minimal", "high"] };
                cx.err(p.line, Some(IMPACT), kind)
            })?,
            None => match single("PRIORITY")? {
                None => Impact::Minimal,
                Some(p) => match p.value.trim().parse::<u8>() {
                    Ok(1..=4) => Impact::High,
                    Ok(0..=9) => Impact::Minimal,
                    _ => {
                        let kind = FileErrorKind::OutOfRange { value: p.value.to_owned(), allowed: "0..=9".into() };
                        return Err(cx.err(p.line, Some("PRIORITY"), kind));
                    }
                },
            },
        };
        Ok(Event {
            uid,
            uid_line: uid_prop.line,
            start,
            length,
            rule,
            rule_line: rule_prop.map_or(dtstart.line, |p| p.line),
            exdates,
            rdates,
            recurrence_id,
            cancelled,
            summary,
            categories,
            published,
            impact,
        })
    }

    fn is_series(&self) -> bool {
        self.rule.is_some() || !self.rdates.is_empty() || self.recurrence_id.is_some()
    }

    /// The phone's clusters this event names.
    fn clusters<'c>(&self, clusters: &[&'c str]) -> Vec<&'c str> {
        let words: Vec<&str> = self.summary.as_deref().map_or_else(Vec::new, summary_words);
        clusters
            .iter()
            .copied()
            .filter(|c| {
                self.categories.iter().any(|k| cluster_matches(k, c)) || words.iter().any(|w| cluster_matches(w, c))
            })
            .collect()
    }
}

/// The name of the property giving a notice's impact.
pub const IMPACT: &str = "X-MAINTENANCE-IMPACT";

/// A TEXT value as a notice keeps it: without control characters other than line feeds and tabs
/// (a content line cannot carry them), trimmed.
fn text(value: &str) -> String {
    let kept: String = value.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\t')).collect();
    kept.trim().to_owned()
}

/// The words of a SUMMARY, as the cluster rule takes them.
fn summary_words(s: &str) -> Vec<&str> {
    s.split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .map(|w| w.trim_matches(['-', '_', '.']))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The values of a TEXT list (`CATEGORIES`), split at unescaped commas and unescaped.
fn split_list(v: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n' | 'N') => out.last_mut().into_iter().for_each(|s| s.push('\n')),
                Some(x) => out.last_mut().into_iter().for_each(|s| s.push(x)),
                None => {}
            },
            ',' => out.push(String::new()),
            c => out.last_mut().into_iter().for_each(|s| s.push(c)),
        }
    }
    out.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// `YYYYMMDDTHHMMSSZ`.
fn basic_utc(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn assemble(events: Vec<Event>, clusters: &[&str], horizon: Horizon, cx: &Cx<'_>) -> Result<Vec<Notice>, FileError> {
    // Masters by UID, and the occurrences that another event replaces.
    let mut masters: HashMap<&str, usize> = HashMap::new();
    let mut replaced: HashMap<(&str, Timestamp), usize> = HashMap::new();
    for e in &events {
        let first = match e.recurrence_id {
            None => masters.insert(&e.uid, e.uid_line),
            Some(r) => replaced.insert((&e.uid, r), e.uid_line),
        };
        if let Some(first_line) = first {
            let kind = FileErrorKind::Duplicate { value: e.uid.clone(), first_line: Some(first_line) };
            return Err(cx.err(e.uid_line, Some("UID"), kind));
        }
    }
    let mut budget = MAX_STEPS;
    let mut out = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for e in &events {
        let tz = &e.start.tz;
        let from = tz.to_datetime(horizon.from).date();
        let last = tz.to_datetime(horizon.to).date().tomorrow().unwrap_or(Date::MAX);
        // An event with a RECURRENCE-ID is that one occurrence: its own RRULE and RDATEs are not read.
        let mut starts = match (&e.rule, e.recurrence_id) {
            (None, _) | (_, Some(_)) => vec![e.start.local],
            (Some(rule), None) => rule.expand(tz, e.start.local, from, last, &mut budget).map_err(|()| {
                let why = format!("the calendar's recurrences need more than {MAX_STEPS} steps to expand");
                cx.err(e.rule_line, Some("RRULE"), FileErrorKind::Conflict(why))
            })?,
        };
        // RDATEs are in their own zone: taken to the event's.
        for r in e.rdates.iter().filter(|_| e.recurrence_id.is_none()) {
            if let Some(t) = r.instant() {
                starts.push(if r.date_only {
                    r.local.date().to_datetime(e.start.local.time())
                } else {
                    tz.to_datetime(t)
                });
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let excluded = |local: DateTime, at: Timestamp| {
            e.exdates.iter().any(|x| if x.date_only { x.local.date() == local.date() } else { x.instant() == Some(at) })
        };
        let matched = e.clusters(clusters);
        let published = e.published;
        let mut previous_end: Option<Timestamp> = None;
        for local in starts {
            let Some(start) = local_to_timestamp(tz, local) else { continue };
            let Some(end) = e.length.end(tz, local, start).filter(|end| *end > start) else { continue };
            if excluded(local, start) || (e.recurrence_id.is_none() && replaced.contains_key(&(e.uid.as_str(), start)))
            {
                continue;
            }
            let shown_from = published.unwrap_or(start).max(previous_end.unwrap_or(Timestamp::MIN)).min(end);
            previous_end = Some(end);
            if e.cancelled || matched.is_empty() || !horizon.overlaps(start, end) {
                continue;
            }
            let id = match (e.recurrence_id, e.is_series()) {
                (Some(r), _) => format!("{}/{}", e.uid, basic_utc(r)),
                (None, true) => format!("{}/{}", e.uid, basic_utc(start)),
                (None, false) => e.uid.clone(),
            };
            for c in &matched {
                let id = if matched.len() > 1 { format!("{id}@{}", c.trim()) } else { id.clone() };
                // Another event's UID can spell this id ("a/20260301T010000Z" beside a series "a").
                if let Some(first_line) = ids.insert(id.clone(), e.uid_line) {
                    let kind = FileErrorKind::Duplicate { value: id, first_line: Some(first_line) };
                    return Err(cx.err(e.uid_line, Some("UID"), kind));
                }
                out.push(Notice {
                    id,
                    cluster: c.trim().to_owned(),
                    start,
                    end,
                    impact: e.impact,
                    published: shown_from,
                    title: e.summary.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    Ok(out)
}

// ---- writing ----

/// `notices` as an iCalendar text (CRLF lines folded at 75 octets): one `VEVENT` per notice with its id
/// as `UID`, its window in UTC (whole seconds), its publication as `CREATED` and `DTSTAMP`, its title as
/// `SUMMARY`, its cluster as `CATEGORIES` and its impact as [`IMPACT`]. [`notices`] reads it back to the
/// same notices for a phone in their clusters.
pub fn to_ical(notices: &[Notice]) -> String {
    let mut out = String::new();
    let mut line = |s: &str| fold_into(&mut out, s);
    line("BEGIN:VCALENDAR");
    line("VERSION:2.0");
    line(concat!("PRODID:-//sip-failover//maintenance notices ", env!("CARGO_PKG_VERSION"), "//EN"));
    line("CALSCALE:GREGORIAN");
    for n in notices {
        line("BEGIN:VEVENT");
        line(&format!("UID:{}", escape_text(&n.id)));
        line(&format!("DTSTAMP:{}", basic_utc(n.published)));
        line(&format!("CREATED:{}", basic_utc(n.published)));
        line(&format!("DTSTART:{}", basic_utc(n.start)));
        line(&format!("DTEND:{}", basic_utc(n.end)));
        if let Some(t) = &n.title {
            line(&format!("SUMMARY:{}", escape_text(t)));
        }
        line(&format!("CATEGORIES:{}", escape_text(&n.cluster)));
        line(&format!("{IMPACT}:{}", n.impact));
        line("END:VEVENT");
    }
    line("END:VCALENDAR");
    out
}

/// RFC 5545 3.3.11 TEXT escaping.
fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends `line` folded at 75 octets (never inside a character), with CRLF.
fn fold_into(out: &mut String, line: &str) {
    let mut room = 75;
    for c in line.chars() {
        if c.len_utf8() > room {
            out.push_str("\r\n ");
            room = 74;
        }
        out.push(c);
        room -= c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolding_keeps_lines_and_matches_the_crate() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:a \r\n long\r\n\tline\r\n\r\nuid:1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let u = Unfolded::new(text, &Cx { path: Path::new("t") }).unwrap();
        assert_eq!(u.text, "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:a longline\nUID:1\nEND:VEVENT\nEND:VCALENDAR\n");
        assert_eq!(u.starts.iter().map(|s| s.1).collect::<Vec<_>>(), [1, 2, 3, 7, 8, 9]);
        let theirs: Vec<String> =
            ::icalendar::parser::unfold(text).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
        let ours: Vec<String> = u.text.lines().map(str::to_owned).collect();
        assert_eq!(theirs.len(), ours.len());
        assert!(theirs.iter().zip(&ours).all(|(a, b)| a.eq_ignore_ascii_case(b)), "{theirs:?} {ours:?}");
    }

    #[test]
    fn content_lines() {
        assert_eq!(check_line("DTSTART;TZID=\"Europe/London\":20260307T013000"), Ok(7));
        assert_eq!(check_line("X;A=1,\"b:c\";B=:v"), Ok(1));
        assert_eq!(check_line("SUMMARY:a:b;c"), Ok(7));
        assert!(check_line("no colon here").is_err());
        assert!(check_line("DTSTART;TZID:x").is_err());
        assert!(check_line("DTSTART;TZID=\"open:x").is_err());
        assert!(check_line(":value").is_err());
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).map(|l| (l.days, l.exact.as_secs()));
        assert_eq!(d("PT2H30M"), Some((0, 9000)));
        assert_eq!(d("P1W"), Some((7, 0)));
        assert_eq!(d("+P1DT1S"), Some((1, 1)));
        assert_eq!(d("-PT1H"), None);
        assert_eq!(d("PT"), None);
        assert_eq!(d("P0D"), None);
        assert_eq!(d("P1H"), None);
    }

    #[test]
    fn words_and_lists() {
        assert_eq!(
            summary_words("cx-eu-2: platform upgrade (cx-us-1)."),
            ["cx-eu-2", "platform", "upgrade", "cx-us-1"]
        );
        assert_eq!(split_list("a\\, b,c , ,d\\\\"), ["a, b", "c", "d\\"]);
    }

    #[test]
    fn folding() {
        let mut out = String::new();
        let long = format!("SUMMARY:{}", "é".repeat(60));
        fold_into(&mut out, &long);
        for l in out.split("\r\n") {
            assert!(l.len() <= 75, "{l:?}");
        }
        let u =
            Unfolded::new(&format!("BEGIN:VCALENDAR\r\n{out}END:VCALENDAR\r\n"), &Cx { path: Path::new("t") }).unwrap();
        assert!(u.text.contains(&long));
    }
}
