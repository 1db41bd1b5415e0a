//! Recurring maintenance windows in a named IANA time zone.
//!
//! A [`Recurrence`] is a wall-clock rule ("every Saturday 17:00-22:00", "the first Friday of the month
//! 02:00-06:00"). A [`RecurringWindow`] pins it to a time zone and turns it into real instants
//! ([`Window`]s of [`jiff::Timestamp`]s).
//!
//! ## Daylight-saving changes
//!
//! Each local wall time is converted with jiff's *compatible* disambiguation (the RFC 5545 / Temporal
//! default):
//!
//! - a wall time in a spring-forward **gap** (it never happens) moves *later* by the length of the gap, so
//!   `02:30` on 2024-03-10 in America/New_York becomes `03:30` EDT;
//! - a wall time in a fall-back **fold** (it happens twice) takes the *earlier* of the two instants, so
//!   `01:30` on 2024-11-03 in America/New_York is `01:30` EDT, not EST.
//!
//! Start and end are converted separately, so a window that straddles a change is one hour shorter
//! (spring) or longer (autumn) in real time than its wall-clock length. In the rare case where both ends
//! fall so that the converted end would come before the converted start (a start inside a gap and an end
//! just after it), the window is empty: its end is its start.
//!
//! ## The human form
//!
//! [`Recurrence`] parses and prints the form used on command lines and in files:
//!
//! ```
//! use sip_failover::maintenance::calendar::Recurrence;
//!
//! for text in ["Sat 17:00-22:00", "first Fri 02:00-06:00", "last Sun 02:00-04:00", "2nd Tue 23:00-01:00"] {
//!     let r: Recurrence = text.parse().unwrap();
//!     assert_eq!(r.to_string(), text);
//! }
//! ```
//!
//! Grammar: `[ORDINAL] DAY START-END`, tokens separated by white space (`START - END` with spaces also
//! works). `ORDINAL` is `first`..`fifth`, `1st`..`5th` or `last`; `DAY` is a three-letter or full English
//! day name; times are `H:MM` or `HH:MM` on a 24-hour clock. Everything is case-insensitive. An end at or
//! before the start means the window crosses midnight into the next day; `24:00` is accepted as an end
//! and means midnight at the end of the day.

use core::fmt;
use core::str::FromStr;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::files::FileErrorKind;

/// How many candidate days or months a search looks at before giving up (only reached at the edge of
/// jiff's supported range, year 9999).
const SEARCH_LIMIT: usize = 400;

/// Which occurrence of a weekday within a month.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Nth {
    /// The first occurrence (days 1-7).
    First,
    /// The second occurrence (days 8-14).
    Second,
    /// The third occurrence (days 15-21).
    Third,
    /// The fourth occurrence (days 22-28).
    Fourth,
    /// The fifth occurrence (days 29-31); months without one have no window.
    Fifth,
    /// The last occurrence in the month.
    Last,
}

impl Nth {
    /// The ordinal as jiff counts it: 1..=5, or -1 for the last.
    fn as_jiff(self) -> i8 {
        match self {
            Nth::First => 1,
            Nth::Second => 2,
            Nth::Third => 3,
            Nth::Fourth => 4,
            Nth::Fifth => 5,
            Nth::Last => -1,
        }
    }

    /// The ordinal for a number 1..=5.
    pub fn from_number(n: u8) -> Option<Nth> {
        match n {
            1 => Some(Nth::First),
            2 => Some(Nth::Second),
            3 => Some(Nth::Third),
            4 => Some(Nth::Fourth),
            5 => Some(Nth::Fifth),
            _ => None,
        }
    }

    fn parse(token: &str) -> Option<Nth> {
        let t = token.to_ascii_lowercase();
        Some(match t.as_str() {
            "first" | "1st" => Nth::First,
            "second" | "2nd" => Nth::Second,
            "third" | "3rd" => Nth::Third,
            "fourth" | "4th" => Nth::Fourth,
            "fifth" | "5th" => Nth::Fifth,
            "last" => Nth::Last,
            _ => return None,
        })
    }
}

impl fmt::Display for Nth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Nth::First => "first",
            Nth::Second => "2nd",
            Nth::Third => "3rd",
            Nth::Fourth => "4th",
            Nth::Fifth => "5th",
            Nth::Last => "last",
        })
    }
}

/// A wall-clock rule for a maintenance window, without a time zone.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Recurrence {
    /// Every week on `weekday` from `start` to `end` local time (an `end` at or before `start` is on the next day).
    Weekly {
        /// The day the window starts on.
        weekday: Weekday,
        /// Local start time.
        start: Time,
        /// Local end time; at or before `start` means the next day.
        end: Time,
    },
    /// Every month on the `nth` `weekday` from `start` to `end` local time.
    MonthlyNth {
        /// Which occurrence of the weekday.
        nth: Nth,
        /// The day the window starts on.
        weekday: Weekday,
        /// Local start time.
        start: Time,
        /// Local end time; at or before `start` means the next day.
        end: Time,
    },
}

impl Recurrence {
    /// A weekly window.
    pub fn weekly(weekday: Weekday, start: Time, end: Time) -> Recurrence {
        Recurrence::Weekly { weekday, start, end }
    }

    /// A monthly window on the `nth` `weekday`.
    pub fn monthly_nth(nth: Nth, weekday: Weekday, start: Time, end: Time) -> Recurrence {
        Recurrence::MonthlyNth { nth, weekday, start, end }
    }

    /// The weekday the window starts on.
    pub fn weekday(&self) -> Weekday {
        match *self {
            Recurrence::Weekly { weekday, .. } | Recurrence::MonthlyNth { weekday, .. } => weekday,
        }
    }

    /// Local start and end time.
    pub fn times(&self) -> (Time, Time) {
        match *self {
            Recurrence::Weekly { start, end, .. } | Recurrence::MonthlyNth { start, end, .. } => (start, end),
        }
    }

    /// Whether the window ends on the day after it starts (end at or before start).
    pub fn crosses_midnight(&self) -> bool {
        let (start, end) = self.times();
        end <= start
    }

    /// The local dates, in increasing order, on which a window starts, beginning at `from`.
    fn start_dates(self, from: Date) -> impl Iterator<Item = Date> {
        let mut state: Option<Date> = None;
        let mut done = false;
        let mut steps = 0usize;
        core::iter::from_fn(move || {
            if done {
                return None;
            }
            loop {
                steps += 1;
                if steps > SEARCH_LIMIT {
                    done = true;
                    return None;
                }
                let next = match self {
                    Recurrence::Weekly { weekday, .. } => match state {
                        None => {
                            let ahead = i64::from(weekday.since(from.weekday()));
                            from.checked_add(jiff::Span::new().days(ahead)).ok()
                        }
                        Some(d) => d.checked_add(jiff::Span::new().days(7)).ok(),
                    },
                    Recurrence::MonthlyNth { nth, weekday, .. } => {
                        let month = match state {
                            None => Some(from.first_of_month()),
                            Some(d) => d.first_of_month().checked_add(jiff::Span::new().months(1)).ok(),
                        };
                        match month {
                            None => None,
                            Some(m) => match m.nth_weekday_of_month(nth.as_jiff(), weekday) {
                                Ok(d) => Some(d),
                                // No such weekday this month (a fifth one): try the next month.
                                Err(_) => {
                                    state = Some(m);
                                    continue;
                                }
                            },
                        }
                    }
                };
                match next {
                    None => {
                        done = true;
                        return None;
                    }
                    Some(d) => {
                        state = Some(d);
                        if d >= from {
                            return Some(d);
                        }
                    }
                }
            }
        })
    }
}

impl fmt::Display for Recurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Recurrence::MonthlyNth { nth, .. } = self {
            write!(f, "{nth} ")?;
        }
        let (start, end) = self.times();
        write!(
            f,
            "{} {:02}:{:02}-{:02}:{:02}",
            weekday_abbrev(self.weekday()),
            start.hour(),
            start.minute(),
            end.hour(),
            end.minute()
        )
    }
}

fn weekday_abbrev(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    }
}

fn parse_weekday(token: &str) -> Option<Weekday> {
    let t = token.to_ascii_lowercase();
    Some(match t.as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

/// Parses `H:MM` or `HH:MM`; `allow_24` accepts `24:00` (as midnight).
fn parse_time(text: &str, allow_24: bool) -> Option<Time> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    if !h.bytes().all(|b| b.is_ascii_digit()) || !m.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i8 = h.parse().ok()?;
    let m: i8 = m.parse().ok()?;
    if allow_24 && h == 24 && m == 0 {
        return Some(Time::midnight());
    }
    Time::new(h, m, 0, 0).ok()
}

/// Which end of a time range.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bound {
    /// The start time.
    Start,
    /// The end time.
    End,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bound::Start => "start",
            Bound::End => "end",
        })
    }
}

/// What was wrong with a recurrence text.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// The text was empty or only white space.
    Empty,
    /// The first token is neither a day of the week nor an ordinal.
    ExpectedDayOrOrdinal,
    /// The token after an ordinal is not a day of the week.
    ExpectedDay,
    /// The time range is missing after the day.
    MissingTimeRange,
    /// The time range has no `-` between start and end.
    ExpectedTimeRange,
    /// A time is not a valid `HH:MM` 24-hour time.
    BadTime(Bound),
    /// A token after the time range.
    UnexpectedToken,
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::Empty => {
                f.write_str("empty; expected e.g. \"Sat 17:00-22:00\" or \"first Fri 02:00-06:00\"")
            }
            ParseErrorKind::ExpectedDayOrOrdinal => f.write_str(
                "expected a day of the week (Mon..Sun, Monday..Sunday) or an ordinal (first..fifth, 1st..5th, last)",
            ),
            ParseErrorKind::ExpectedDay => f.write_str("expected a day of the week (Mon..Sun, Monday..Sunday)"),
            ParseErrorKind::MissingTimeRange => f.write_str("missing the time range after the day, e.g. 17:00-22:00"),
            ParseErrorKind::ExpectedTimeRange => f.write_str("expected a time range START-END, e.g. 17:00-22:00"),
            ParseErrorKind::BadTime(Bound::Start) => {
                f.write_str("bad start time; expected HH:MM on a 24-hour clock (00:00..23:59)")
            }
            ParseErrorKind::BadTime(Bound::End) => {
                f.write_str("bad end time; expected HH:MM on a 24-hour clock (00:00..24:00)")
            }
            ParseErrorKind::UnexpectedToken => f.write_str("unexpected text after the time range"),
        }
    }
}

impl ParseErrorKind {
    /// What the rule needs where this error is, in words (`a day of the week (Mon..Sun, Monday..Sunday)`).
    pub fn expected(&self) -> &'static str {
        match self {
            ParseErrorKind::Empty => "a window such as \"Sat 17:00-22:00\" or \"first Fri 02:00-06:00\"",
            ParseErrorKind::ExpectedDayOrOrdinal => {
                "a day of the week (Mon..Sun, Monday..Sunday) or an ordinal (first..fifth, 1st..5th, last)"
            }
            ParseErrorKind::ExpectedDay => "a day of the week (Mon..Sun, Monday..Sunday)",
            ParseErrorKind::MissingTimeRange | ParseErrorKind::ExpectedTimeRange => {
                "a time range START-END such as 17:00-22:00"
            }
            ParseErrorKind::BadTime(Bound::Start) => "a start time HH:MM on a 24-hour clock (00:00..23:59)",
            ParseErrorKind::BadTime(Bound::End) => "an end time HH:MM on a 24-hour clock (00:00..24:00)",
            ParseErrorKind::UnexpectedToken => "nothing after the time range",
        }
    }
}

/// A recurrence text that could not be parsed, with the token at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    kind: ParseErrorKind,
    token_index: usize,
    token: String,
    column: usize,
}

impl ParseError {
    fn new(kind: ParseErrorKind, input: &str, token_index: usize, token: &str, byte: usize) -> Self {
        let column = input.get(..byte).map_or(0, |s| s.chars().count()) + 1;
        ParseError { kind, token_index, token: token.to_owned(), column }
    }

    /// What was wrong.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// The 1-based number of the token at fault (one past the last token if something is missing).
    pub fn token_index(&self) -> usize {
        self.token_index
    }

    /// The text of the token at fault (empty if something is missing).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The 1-based character column where the token at fault starts (or where the missing part belongs).
    pub fn column(&self) -> usize {
        self.column
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ParseErrorKind::Empty => write!(f, "maintenance window: {}", self.kind),
            ParseErrorKind::MissingTimeRange => {
                write!(f, "maintenance window: token {} (column {}): {}", self.token_index, self.column, self.kind)
            }
            _ => write!(
                f,
                "maintenance window: token {} {:?} (column {}): {}",
                self.token_index, self.token, self.column, self.kind
            ),
        }
    }
}

impl std::error::Error for ParseError {}

/// Splits on white space, keeping each token's byte offset.
fn tokens(input: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in input.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push((s, &input[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, &input[s..]));
    }
    out
}

impl FromStr for Recurrence {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Recurrence, ParseError> {
        let toks = tokens(input);
        let err = |kind, i: usize| {
            let (byte, tok) = toks.get(i).copied().unwrap_or((input.len(), ""));
            ParseError::new(kind, input, i + 1, tok, byte)
        };
        let Some(&(_, first)) = toks.first() else {
            return Err(ParseError::new(ParseErrorKind::Empty, input, 0, "", 0));
        };
        let (nth, day_index) = match Nth::parse(first) {
            Some(nth) => (Some(nth), 1),
            None => (None, 0),
        };
        let weekday = match toks.get(day_index) {
            None => return Err(err(ParseErrorKind::ExpectedDay, day_index)),
            Some(&(_, t)) => match parse_weekday(t) {
                Some(w) => w,
                None if nth.is_some() => return Err(err(ParseErrorKind::ExpectedDay, day_index)),
                None => return Err(err(ParseErrorKind::ExpectedDayOrOrdinal, day_index)),
            },
        };
        let range_index = day_index + 1;
        let rest = toks.get(range_index..).unwrap_or(&[]);
        // (token index, text) of start and end, and the index of the first token after the range.
        let (start_at, end_at, after) = match rest {
            [] => return Err(err(ParseErrorKind::MissingTimeRange, range_index)),
            [(_, a), (_, "-"), (_, b), ..] => {
                ((range_index, *a, 0usize), (range_index + 2, *b, 0usize), range_index + 3)
            }
            [(_, t), ..] => match t.split_once('-') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() => {
                    ((range_index, a, 0usize), (range_index, b, a.len() + 1), range_index + 1)
                }
                Some((a, "")) if !a.is_empty() && rest.len() >= 2 => {
                    ((range_index, a, 0usize), (range_index + 1, rest[1].1, 0usize), range_index + 2)
                }
                _ => return Err(err(ParseErrorKind::ExpectedTimeRange, range_index)),
            },
        };
        let time_err = |bound, (i, text, within): (usize, &str, usize)| {
            let byte = toks.get(i).map_or(input.len(), |&(b, _)| b) + within;
            ParseError::new(ParseErrorKind::BadTime(bound), input, i + 1, text, byte)
        };
        let start = parse_time(start_at.1, false).ok_or_else(|| time_err(Bound::Start, start_at))?;
        let end = parse_time(end_at.1, true).ok_or_else(|| time_err(Bound::End, end_at))?;
        if toks.len() > after {
            return Err(err(ParseErrorKind::UnexpectedToken, after));
        }
        Ok(match nth {
            Some(nth) => Recurrence::monthly_nth(nth, weekday, start, end),
            None => Recurrence::weekly(weekday, start, end),
        })
    }
}

/// A stretch of real time: from `start` (inclusive) to `end` (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First instant of the window.
    pub start: Timestamp,
    /// First instant after the window.
    pub end: Timestamp,
}

impl Window {
    /// A window from `start` to `end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Window {
        Window { start, end }
    }

    /// Whether `t` is inside the window (`start <= t < end`).
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// The window's length in real (elapsed) time.
    pub fn duration(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }

    /// Whether the two windows share at least one instant.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }
}

impl fmt::Display for Window {
    /// ISO 8601 interval form in UTC: `2024-03-10T07:00:00Z/2024-03-10T10:00:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.start, self.end)
    }
}

/// Errors from building or using a [`RecurringWindow`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CalendarError {
    /// The recurrence text did not parse.
    Parse(ParseError),
    /// The time zone name is not in the time zone database.
    UnknownTimeZone {
        /// The name as given.
        name: String,
    },
    /// The answer would lie outside the supported calendar range (years -9999..=9999).
    OutOfRange,
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalendarError::Parse(e) => e.fmt(f),
            CalendarError::UnknownTimeZone { name } => {
                write!(f, "unknown time zone {name:?}: expected an IANA name such as \"Europe/Paris\"")
            }
            CalendarError::OutOfRange => f.write_str("maintenance window outside the supported calendar range"),
        }
    }
}

impl std::error::Error for CalendarError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CalendarError::Parse(e) => Some(e),
            _ => None,
        }
    }
}

impl CalendarError {
    /// The error as the kind of a [`FileError`](crate::files::FileError) about a rule or time zone
    /// written in a file, with the 1-based character column inside the rule where the token at fault
    /// is.
    pub fn in_file(&self) -> (FileErrorKind, Option<usize>) {
        match self {
            CalendarError::Parse(e) => (
                FileErrorKind::Invalid { value: e.token().to_owned(), expected: e.kind().expected().to_owned() },
                Some(e.column()),
            ),
            CalendarError::UnknownTimeZone { name } => (
                FileErrorKind::Invalid {
                    value: name.clone(),
                    expected: "an IANA time zone name such as \"Europe/Paris\"".to_owned(),
                },
                None,
            ),
            CalendarError::OutOfRange => (FileErrorKind::Conflict(self.to_string()), None),
        }
    }
}

impl From<ParseError> for CalendarError {
    fn from(e: ParseError) -> Self {
        CalendarError::Parse(e)
    }
}

/// Looks up an IANA time zone by name.
pub fn time_zone(name: &str) -> Result<TimeZone, CalendarError> {
    TimeZone::get(name.trim()).map_err(|_| CalendarError::UnknownTimeZone { name: name.to_owned() })
}

/// Converts a local wall time to an instant with compatible disambiguation (gap: later; fold: earlier).
pub fn local_to_timestamp(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    tz.to_ambiguous_timestamp(dt).compatible().ok()
}

/// A [`Recurrence`] in a time zone: a sequence of real [`Window`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecurringWindow {
    /// The wall-clock rule.
    pub recurrence: Recurrence,
    /// The time zone the rule's wall times are in.
    pub tz: TimeZone,
}

impl RecurringWindow {
    /// A recurring window in time zone `tz`.
    pub fn new(recurrence: Recurrence, tz: TimeZone) -> RecurringWindow {
        RecurringWindow { recurrence, tz }
    }

    /// A recurring window in the IANA time zone named `tz_name` (e.g. `"Europe/Paris"`).
    pub fn in_zone(recurrence: Recurrence, tz_name: &str) -> Result<RecurringWindow, CalendarError> {
        Ok(RecurringWindow::new(recurrence, time_zone(tz_name)?))
    }

    /// Parses the human form (see the [module docs](self)) in the IANA time zone named `tz_name`.
    pub fn parse(text: &str, tz_name: &str) -> Result<RecurringWindow, CalendarError> {
        let recurrence: Recurrence = text.parse()?;
        RecurringWindow::in_zone(recurrence, tz_name)
    }

    /// The window that starts on local date `date` (which must be a start date of the recurrence).
    fn window_on(&self, date: Date) -> Option<Window> {
        let (start, end) = self.recurrence.times();
        let end_date = if end <= start { date.tomorrow().ok()? } else { date };
        let s = local_to_timestamp(&self.tz, date.to_datetime(start))?;
        let e = local_to_timestamp(&self.tz, end_date.to_datetime(end))?;
        Some(Window::new(s, e.max(s)))
    }

    /// The first window whose end is after `after`: a window in progress at `after`, or else the next one.
    ///
    /// `None` only if that window would lie beyond the supported calendar range (year 9999).
    pub fn next_window(&self, after: Timestamp) -> Option<Window> {
        // A window in progress started at most a day (plus a daylight-saving hour) before: look two
        // local days back so that it is found.
        let local = self.tz.to_datetime(after).date();
        let from = local.checked_sub(jiff::Span::new().days(2)).unwrap_or(local);
        self.recurrence.start_dates(from).map_while(|d| self.window_on(d)).find(|w| w.end > after)
    }

    /// The window containing `t`, if `t` is inside one.
    pub fn window_at(&self, t: Timestamp) -> Option<Window> {
        self.next_window(t).filter(|w| w.contains(t))
    }

    /// The windows that overlap `[from, to)` (end after `from`, start before `to`), in order.
    pub fn windows_between(&self, from: Timestamp, to: Timestamp) -> Windows<'_> {
        Windows { window: self, after: Some(from), to }
    }
}

/// Iterator over the windows of a [`RecurringWindow`] in a range; see [`RecurringWindow::windows_between`].
#[derive(Clone, Debug)]
pub struct Windows<'a> {
    window: &'a RecurringWindow,
    after: Option<Timestamp>,
    to: Timestamp,
}

impl Iterator for Windows<'_> {
    type Item = Window;

    fn next(&mut self) -> Option<Window> {
        let after = self.after.take()?;
        let w = self.window.next_window(after)?;
        if w.start >= self.to {
            return None;
        }
        self.after = Some(w.end);
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_offsets() {
        assert_eq!(tokens("  first\tFri 02:00-06:00 "), vec![(2, "first"), (8, "Fri"), (12, "02:00-06:00")]);
        assert!(tokens("   ").is_empty());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("7:05", false), Some(Time::constant(7, 5, 0, 0)));
        assert_eq!(parse_time("24:00", false), None);
        assert_eq!(parse_time("24:00", true), Some(Time::midnight()));
        assert_eq!(parse_time("24:01", true), None);
        assert_eq!(parse_time("12:60", false), None);
        assert_eq!(parse_time("123:00", false), None);
        assert_eq!(parse_time("+1:00", false), None);
        assert_eq!(parse_time("1:0", false), None);
    }

    #[test]
    fn start_dates_skip_months_without_a_fifth() {
        let r = Recurrence::monthly_nth(Nth::Fifth, Weekday::Friday, Time::midnight(), Time::constant(1, 0, 0, 0));
        let dates: Vec<Date> = r.start_dates(jiff::civil::date(2024, 1, 1)).take(3).collect();
        // 2024: Fridays on the 29th of March, 31st of May, 30th of August.
        assert_eq!(
            dates,
            vec![jiff::civil::date(2024, 3, 29), jiff::civil::date(2024, 5, 31), jiff::civil::date(2024, 8, 30)]
        );
    }
}
