//! The maintenance calendar's recurrence parser on arbitrary text, then the windows it gives.
//!
//! Input: line 1 is the recurrence (`first Fri 02:00-06:00`); an optional line 2 names the time zone
//! (else a few fixed zones with daylight-saving changes are used); an optional line 3 is the instant
//! to search from (RFC 3339). Checks: no panic; a parsed rule prints back to text that parses to the
//! same rule; errors point inside the text; windows are ordered, non-empty or empty but never
//! reversed, and the next window ends after the instant asked about.
#![no_main]

use jiff::{SignedDuration, Timestamp};
use libfuzzer_sys::fuzz_target;
use sip_failover::maintenance::calendar::{Recurrence, RecurringWindow};

const ZONES: [&str; 3] = ["UTC", "America/New_York", "Australia/Lord_Howe"];

fn check_windows(rw: &RecurringWindow, after: Timestamp) {
    if let Some(w) = rw.next_window(after) {
        assert!(w.start <= w.end, "reversed window {w}");
        assert!(w.end > after, "next window {w} ended before {after}");
        if w.contains(after) {
            assert_eq!(rw.window_at(after), Some(w));
        }
    }
    let to = after.checked_add(SignedDuration::from_hours(24 * 70)).unwrap_or(Timestamp::MAX);
    let mut prev: Option<jiff::Timestamp> = None;
    for w in rw.windows_between(after, to).take(16) {
        assert!(w.start <= w.end && w.start < to && w.end > after, "window {w} outside the range");
        if let Some(p) = prev {
            assert!(w.start >= p, "windows out of order or overlapping: {w} after one ending {p}");
        }
        prev = Some(w.end);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.splitn(3, '\n');
    let rule = lines.next().unwrap_or("");
    let zone = lines.next();
    let after =
        lines.next().and_then(|t| t.trim().parse::<Timestamp>().ok()).unwrap_or(Timestamp::constant(1_710_052_200, 0));

    let r = match rule.parse::<Recurrence>() {
        Err(e) => {
            let _ = e.to_string();
            assert!(
                e.column() >= 1 && e.column() <= rule.chars().count() + 1,
                "column {} outside {rule:?}",
                e.column()
            );
            assert!(e.token().is_empty() || rule.contains(e.token()), "token {:?} not in {rule:?}", e.token());
            return;
        }
        Ok(r) => r,
    };
    let printed = r.to_string();
    assert_eq!(printed.parse::<Recurrence>().as_ref(), Ok(&r), "{rule:?} printed as {printed:?}");

    match zone {
        Some(z) => match RecurringWindow::parse(rule, z) {
            Ok(rw) => check_windows(&rw, after),
            Err(e) => {
                let _ = e.to_string();
            }
        },
        None => {
            for z in ZONES {
                let rw = RecurringWindow::in_zone(r, z).expect("bundled zone");
                check_windows(&rw, after);
            }
        }
    }
});
