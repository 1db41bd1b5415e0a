//! The phone's own upgrade window (seed 004, the Cato socket upgrade window).
//!
//! Changes that need a reboot (a rebuild) and firmware updates are applied only inside a weekly window in
//! the phone's local time zone. An account-wide setting such as "Sun 01:00-03:00" is read in each site's
//! own zone, so it lands at different UTC instants for a site in Tokyo and one in London.
//!
//! A change released less than a buffer (default 48 hours of real time) before the next window's start
//! waits for the window after that, so that there is time to tell people about it:
//!
//! ```
//! use sip_failover::maintenance::upgrade_window_answer;
//!
//! // Released Friday 2023-03-03 18:00 in Tokyo: only 31 hours before Sunday 01:00, so wait a week.
//! let start = upgrade_window_answer("Sun 01:00-03:00", "Asia/Tokyo", "2023-03-03T18:00:00+09:00", None).unwrap();
//! assert_eq!(start, "2023-03-12T01:00:00+09:00[Asia/Tokyo]");
//! ```

use core::fmt;

use jiff::civil::DateTime;
use jiff::{SignedDuration, Timestamp};

use super::calendar::{local_to_timestamp, time_zone, CalendarError, RecurringWindow, Window};

/// The default notification buffer before an upgrade window: 48 hours (seed 004).
pub const DEFAULT_BUFFER: SignedDuration = SignedDuration::from_hours(48);

/// The largest buffer accepted, in hours (one leap year).
pub const MAX_BUFFER_HOURS: i64 = 366 * 24;

/// Errors from the upgrade-window calculation.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpgradeError {
    /// The window text or the time zone was not valid.
    Calendar(CalendarError),
    /// The release instant could not be read.
    BadRelease {
        /// The text as given.
        text: String,
    },
    /// The buffer is negative or longer than [`MAX_BUFFER_HOURS`].
    BadBuffer {
        /// The buffer in whole seconds.
        seconds: i64,
    },
    /// The answer would lie outside the supported calendar range (year 9999).
    OutOfRange,
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradeError::Calendar(e) => e.fmt(f),
            UpgradeError::BadRelease { text } => write!(
                f,
                "release time {text:?}: expected an RFC 3339 time such as \"2023-03-03T18:00:00+09:00\" \
                 (or a local \"2023-03-03T18:00\" in the site's zone)"
            ),
            UpgradeError::BadBuffer { seconds } => {
                write!(f, "upgrade buffer of {seconds} s: must be between 0 and {MAX_BUFFER_HOURS} hours")
            }
            UpgradeError::OutOfRange => f.write_str("upgrade window outside the supported calendar range"),
        }
    }
}

impl std::error::Error for UpgradeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpgradeError::Calendar(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CalendarError> for UpgradeError {
    fn from(e: CalendarError) -> Self {
        UpgradeError::Calendar(e)
    }
}

/// A recurring upgrade window with a notification buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeWindow {
    window: RecurringWindow,
    buffer: SignedDuration,
}

impl UpgradeWindow {
    /// An upgrade window with the default 48-hour buffer (normally a weekly window; any recurrence works).
    pub fn new(window: RecurringWindow) -> UpgradeWindow {
        UpgradeWindow { window, buffer: DEFAULT_BUFFER }
    }

    /// The same window with another buffer (0 up to [`MAX_BUFFER_HOURS`]).
    pub fn with_buffer(self, buffer: SignedDuration) -> Result<UpgradeWindow, UpgradeError> {
        if buffer.is_negative() || buffer > SignedDuration::from_hours(MAX_BUFFER_HOURS) {
            return Err(UpgradeError::BadBuffer { seconds: buffer.as_secs() });
        }
        Ok(UpgradeWindow { buffer, ..self })
    }

    /// The recurring window.
    pub fn window(&self) -> &RecurringWindow {
        &self.window
    }

    /// The notification buffer.
    pub fn buffer(&self) -> SignedDuration {
        self.buffer
    }

    /// The window a change released at `released` is applied in: the first window that starts at least
    /// the buffer (real time) after `released`.
    ///
    /// A window already in progress, or one starting sooner than the buffer, is skipped. `None` only
    /// beyond the supported calendar range.
    pub fn apply_at(&self, released: Timestamp) -> Option<Window> {
        let earliest = released.checked_add(self.buffer).ok()?;
        self.window.windows_between(earliest, Timestamp::MAX).find(|w| w.start >= earliest)
    }
}

/// Reads a release instant: an RFC 3339 / ISO 8601 time with an offset (`2023-03-03T18:00:00+09:00`,
/// `...Z`, optionally with a `[Zone]` annotation), or else a local date and time without offset
/// (`2023-03-03T18:00`), which is taken in `window`'s zone with compatible disambiguation.
pub fn parse_release(text: &str, window: &RecurringWindow) -> Result<Timestamp, UpgradeError> {
    let trimmed = text.trim();
    if let Ok(t) = trimmed.parse::<Timestamp>() {
        return Ok(t);
    }
    trimmed
        .parse::<DateTime>()
        .ok()
        .and_then(|dt| local_to_timestamp(&window.tz, dt))
        .ok_or_else(|| UpgradeError::BadRelease { text: text.to_owned() })
}

/// Command-line answer: when a change released at `released` is applied at a site.
///
/// `window` is the human form (e.g. `"Sun 01:00-03:00"`, see [`calendar`](super::calendar)), `tz` the
/// site's IANA zone, `released` as for [`parse_release`], `buffer_hours` the notification buffer (default
/// 48). The answer is the chosen window's start as an RFC 9557 string: RFC 3339 with the site's offset and
/// its zone name, e.g. `2023-03-12T01:00:00+09:00[Asia/Tokyo]`.
pub fn upgrade_window_answer(
    window: &str,
    tz: &str,
    released: &str,
    buffer_hours: Option<i64>,
) -> Result<String, UpgradeError> {
    let recurring = RecurringWindow::parse(window, tz)?;
    let released = parse_release(released, &recurring)?;
    let mut upgrade = UpgradeWindow::new(recurring);
    if let Some(hours) = buffer_hours {
        if !(0..=MAX_BUFFER_HOURS).contains(&hours) {
            return Err(UpgradeError::BadBuffer { seconds: hours.saturating_mul(3600) });
        }
        upgrade = upgrade.with_buffer(SignedDuration::from_hours(hours))?;
    }
    let chosen = upgrade.apply_at(released).ok_or(UpgradeError::OutOfRange)?;
    // The zone was already looked up once; this cannot fail, but stay total.
    let tz = time_zone(tz)?;
    Ok(chosen.start.to_zoned(tz).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_forms() {
        let w = RecurringWindow::parse("Sun 01:00-03:00", "Asia/Tokyo").unwrap();
        let want: Timestamp = "2023-03-03T09:00:00Z".parse().unwrap();
        for text in [
            "2023-03-03T18:00:00+09:00",
            "2023-03-03T09:00:00Z",
            "2023-03-03T18:00+09:00[Asia/Tokyo]",
            " 2023-03-03T18:00 ",
            "2023-03-03 18:00:00",
        ] {
            assert_eq!(parse_release(text, &w), Ok(want), "{text}");
        }
        assert_eq!(
            parse_release("Friday evening", &w),
            Err(UpgradeError::BadRelease { text: "Friday evening".into() })
        );
    }

    #[test]
    fn buffer_bounds() {
        let w = UpgradeWindow::new(RecurringWindow::parse("Sun 01:00-03:00", "UTC").unwrap());
        assert!(w.clone().with_buffer(SignedDuration::from_secs(-1)).is_err());
        assert!(w.clone().with_buffer(SignedDuration::from_hours(MAX_BUFFER_HOURS + 1)).is_err());
        assert!(w.with_buffer(SignedDuration::ZERO).is_ok());
    }
}
