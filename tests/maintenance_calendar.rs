//! Recurring maintenance windows: parsing, weekly and monthly rules, daylight-saving changes.

use jiff::civil::{Time, Weekday};
use jiff::{SignedDuration, Timestamp};
use sip_failover::maintenance::calendar::{
    Bound, CalendarError, Nth, ParseErrorKind, Recurrence, RecurringWindow, Window,
};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

fn win(start: &str, end: &str) -> Window {
    Window::new(ts(start), ts(end))
}

fn rw(text: &str, tz: &str) -> RecurringWindow {
    RecurringWindow::parse(text, tz).expect("test window")
}

#[test]
fn parses_the_human_forms() {
    let t = |h, m| Time::new(h, m, 0, 0).unwrap();
    assert_eq!(
        "Sat 17:00-22:00".parse::<Recurrence>().unwrap(),
        Recurrence::weekly(Weekday::Saturday, t(17, 0), t(22, 0))
    );
    assert_eq!("Sun 01:00-03:00".parse::<Recurrence>().unwrap(), Recurrence::weekly(Weekday::Sunday, t(1, 0), t(3, 0)));
    assert_eq!(
        "first Fri 02:00-06:00".parse::<Recurrence>().unwrap(),
        Recurrence::monthly_nth(Nth::First, Weekday::Friday, t(2, 0), t(6, 0))
    );
    assert_eq!(
        "last Sun 02:00-04:00".parse::<Recurrence>().unwrap(),
        Recurrence::monthly_nth(Nth::Last, Weekday::Sunday, t(2, 0), t(4, 0))
    );
    let r = "2nd Tue 23:00-01:00".parse::<Recurrence>().unwrap();
    assert_eq!(r, Recurrence::monthly_nth(Nth::Second, Weekday::Tuesday, t(23, 0), t(1, 0)));
    assert!(r.crosses_midnight());
}

#[test]
fn parser_is_case_insensitive_and_accepts_full_names_and_spaces() {
    let expected: Recurrence = "first Fri 02:00-06:00".parse().unwrap();
    for text in
        ["FIRST friday 02:00-06:00", "1st FRI 2:00-6:00", "  First   Friday\t02:00 - 06:00  ", "first fri 02:00- 06:00"]
    {
        assert_eq!(text.parse::<Recurrence>().unwrap(), expected, "{text}");
    }
    let sat: Recurrence = "saturday 17:00-24:00".parse().unwrap();
    assert_eq!(sat.times(), (Time::new(17, 0, 0, 0).unwrap(), Time::midnight()));
    assert_eq!(sat.to_string(), "Sat 17:00-00:00");
}

#[test]
fn display_round_trips() {
    for text in [
        "Sat 17:00-22:00",
        "Sun 01:00-03:00",
        "first Fri 02:00-06:00",
        "last Sun 02:00-04:00",
        "2nd Tue 23:00-01:00",
        "3rd Wed 00:05-00:10",
        "4th Thu 12:00-13:00",
        "5th Mon 08:00-09:00",
    ] {
        let r: Recurrence = text.parse().unwrap();
        assert_eq!(r.to_string(), text);
        assert_eq!(r.to_string().parse::<Recurrence>().unwrap(), r);
    }
}

#[test]
fn parser_errors_name_the_token() {
    let cases: &[(&str, ParseErrorKind, usize, &str, usize)] = &[
        ("Fry 02:00-06:00", ParseErrorKind::ExpectedDayOrOrdinal, 1, "Fry", 1),
        ("first Fry 02:00-06:00", ParseErrorKind::ExpectedDay, 2, "Fry", 7),
        ("first", ParseErrorKind::ExpectedDay, 2, "", 6),
        ("Sat", ParseErrorKind::MissingTimeRange, 2, "", 4),
        ("Sat 17:00", ParseErrorKind::ExpectedTimeRange, 2, "17:00", 5),
        ("Sat 25:00-22:00", ParseErrorKind::BadTime(Bound::Start), 2, "25:00", 5),
        ("Sat 17:00-22:60", ParseErrorKind::BadTime(Bound::End), 2, "22:60", 11),
        ("Sat 17:00 - 5pm", ParseErrorKind::BadTime(Bound::End), 4, "5pm", 13),
        ("Sat 24:00-02:00", ParseErrorKind::BadTime(Bound::Start), 2, "24:00", 5),
        ("Sat 17:00-22:00 extra", ParseErrorKind::UnexpectedToken, 3, "extra", 17),
        ("6th Sat 17:00-22:00", ParseErrorKind::ExpectedDayOrOrdinal, 1, "6th", 1),
    ];
    for &(text, kind, index, token, column) in cases {
        let e = text.parse::<Recurrence>().unwrap_err();
        assert_eq!(e.kind(), kind, "{text}");
        assert_eq!(e.token_index(), index, "{text}");
        assert_eq!(e.token(), token, "{text}");
        assert_eq!(e.column(), column, "{text}");
    }
    let e = "".parse::<Recurrence>().unwrap_err();
    assert_eq!(e.kind(), ParseErrorKind::Empty);
    let msg = "first Fry 02:00-06:00".parse::<Recurrence>().unwrap_err().to_string();
    assert!(msg.contains("token 2"), "{msg}");
    assert!(msg.contains("\"Fry\""), "{msg}");
    assert!(msg.contains("day of the week"), "{msg}");
    let msg = "Sat 17:00-22:60".parse::<Recurrence>().unwrap_err().to_string();
    assert!(msg.contains("\"22:60\"") && msg.contains("end time"), "{msg}");
}

#[test]
fn unknown_time_zone_is_an_error() {
    let e = RecurringWindow::parse("Sat 17:00-22:00", "Mars/Olympus_Mons").unwrap_err();
    assert_eq!(e, CalendarError::UnknownTimeZone { name: "Mars/Olympus_Mons".into() });
    assert!(e.to_string().contains("Mars/Olympus_Mons"));
    let e = RecurringWindow::parse("Sat 17-22", "Europe/Paris").unwrap_err();
    assert!(matches!(e, CalendarError::Parse(_)));
}

#[test]
fn weekly_saturday_evening_in_paris() {
    let w = rw("Sat 17:00-22:00", "Europe/Paris");
    // Summer (CEST, +02:00).
    let june = win("2024-06-15T15:00:00Z", "2024-06-15T20:00:00Z");
    assert_eq!(w.next_window(ts("2024-06-12T00:00:00Z")), Some(june));
    // A window in progress is the answer; its end is exclusive.
    assert_eq!(w.next_window(ts("2024-06-15T18:00:00Z")), Some(june));
    assert_eq!(w.next_window(ts("2024-06-15T15:00:00Z")), Some(june));
    assert_eq!(w.next_window(ts("2024-06-15T19:59:59Z")), Some(june));
    assert_eq!(w.next_window(ts("2024-06-15T20:00:00Z")), Some(win("2024-06-22T15:00:00Z", "2024-06-22T20:00:00Z")));
    assert_eq!(w.window_at(ts("2024-06-15T18:00:00Z")), Some(june));
    assert_eq!(w.window_at(ts("2024-06-15T20:00:00Z")), None);
    // Winter (CET, +01:00).
    assert_eq!(w.next_window(ts("2024-01-10T00:00:00Z")), Some(win("2024-01-13T16:00:00Z", "2024-01-13T21:00:00Z")));
    // Across the European spring change (2024-03-31): same wall time, one hour earlier in UTC.
    let got: Vec<Window> = w.windows_between(ts("2024-03-25T00:00:00Z"), ts("2024-04-08T00:00:00Z")).collect();
    assert_eq!(
        got,
        vec![win("2024-03-30T16:00:00Z", "2024-03-30T21:00:00Z"), win("2024-04-06T15:00:00Z", "2024-04-06T20:00:00Z"),]
    );
    assert!(got.iter().all(|w| w.duration() == SignedDuration::from_hours(5)));
}

#[test]
fn windows_between_includes_overlapping_windows_only() {
    let w = rw("Sat 17:00-22:00", "Europe/Paris");
    // `from` inside a window: that window is included; `to` at a window start: that one is not.
    let got: Vec<Window> = w.windows_between(ts("2024-06-15T19:00:00Z"), ts("2024-06-29T15:00:00Z")).collect();
    assert_eq!(
        got,
        vec![win("2024-06-15T15:00:00Z", "2024-06-15T20:00:00Z"), win("2024-06-22T15:00:00Z", "2024-06-22T20:00:00Z"),]
    );
    assert_eq!(w.windows_between(ts("2024-06-16T00:00:00Z"), ts("2024-06-16T00:00:00Z")).count(), 0);
    // A year of Saturdays.
    assert_eq!(w.windows_between(ts("2024-01-01T00:00:00Z"), ts("2025-01-01T00:00:00Z")).count(), 52);
}

#[test]
fn first_friday_of_the_month() {
    let w = rw("first Fri 02:00-06:00", "America/New_York");
    let got: Vec<Window> = w.windows_between(ts("2024-01-01T00:00:00Z"), ts("2024-05-31T00:00:00Z")).collect();
    assert_eq!(
        got,
        vec![
            win("2024-01-05T07:00:00Z", "2024-01-05T11:00:00Z"),
            win("2024-02-02T07:00:00Z", "2024-02-02T11:00:00Z"),
            win("2024-03-01T07:00:00Z", "2024-03-01T11:00:00Z"),
            // EDT from 2024-03-10 on.
            win("2024-04-05T06:00:00Z", "2024-04-05T10:00:00Z"),
            win("2024-05-03T06:00:00Z", "2024-05-03T10:00:00Z"),
        ]
    );
    // Just after January's window: February's.
    assert_eq!(w.next_window(ts("2024-01-05T11:00:00Z")), Some(win("2024-02-02T07:00:00Z", "2024-02-02T11:00:00Z")));
    // Across a year end.
    assert_eq!(w.next_window(ts("2024-12-31T00:00:00Z")), Some(win("2025-01-03T07:00:00Z", "2025-01-03T11:00:00Z")));
}

#[test]
fn second_tuesday_crossing_midnight() {
    let w = rw("2nd Tue 23:00-01:00", "Asia/Tokyo");
    // Tuesdays in January 2024: 2, 9. 23:00 JST is 14:00Z.
    assert_eq!(w.next_window(ts("2024-01-01T00:00:00Z")), Some(win("2024-01-09T14:00:00Z", "2024-01-09T16:00:00Z")));
    // In progress after local midnight (Wednesday 00:30 JST).
    assert_eq!(w.next_window(ts("2024-01-09T15:30:00Z")), Some(win("2024-01-09T14:00:00Z", "2024-01-09T16:00:00Z")));
    assert_eq!(w.next_window(ts("2024-01-09T16:00:00Z")), Some(win("2024-02-13T14:00:00Z", "2024-02-13T16:00:00Z")));
}

#[test]
fn last_sunday_on_the_european_change_days() {
    let w = rw("last Sun 02:00-04:00", "Europe/London");
    // 2024-03-31: 01:00 GMT becomes 02:00 BST, so 02:00 exists (BST).
    assert_eq!(w.next_window(ts("2024-03-01T00:00:00Z")), Some(win("2024-03-31T01:00:00Z", "2024-03-31T03:00:00Z")));
    // 2024-10-27: 02:00 BST becomes 01:00 GMT, so 02:00-04:00 is GMT.
    assert_eq!(w.next_window(ts("2024-10-01T00:00:00Z")), Some(win("2024-10-27T02:00:00Z", "2024-10-27T04:00:00Z")));
}

#[test]
fn fifth_weekday_skips_months_without_one() {
    let w = rw("5th Fri 10:00-11:00", "UTC");
    let got: Vec<Timestamp> =
        w.windows_between(ts("2024-01-01T00:00:00Z"), ts("2024-12-31T00:00:00Z")).map(|w| w.start).collect();
    assert_eq!(
        got,
        vec![
            ts("2024-03-29T10:00:00Z"),
            ts("2024-05-31T10:00:00Z"),
            ts("2024-08-30T10:00:00Z"),
            ts("2024-11-29T10:00:00Z"),
        ]
    );
}

#[test]
fn us_spring_forward_2024() {
    // 2024-03-10 02:00 EST jumps to 03:00 EDT in America/New_York.
    let ny = "America/New_York";
    let after = ts("2024-03-08T00:00:00Z");
    // 01:00 EST (06:00Z) to 04:00 EDT (08:00Z): three wall hours, two real hours.
    let w = rw("Sun 01:00-04:00", ny).next_window(after).unwrap();
    assert_eq!(w, win("2024-03-10T06:00:00Z", "2024-03-10T08:00:00Z"));
    assert_eq!(w.duration(), SignedDuration::from_hours(2));
    // A start in the gap moves later: 02:30 becomes 03:30 EDT (07:30Z).
    let w = rw("Sun 02:30-04:00", ny).next_window(after).unwrap();
    assert_eq!(w, win("2024-03-10T07:30:00Z", "2024-03-10T08:00:00Z"));
    // An end in the gap moves later too: 02:30 becomes 03:30 EDT.
    let w = rw("Sun 01:30-02:30", ny).next_window(after).unwrap();
    assert_eq!(w, win("2024-03-10T06:30:00Z", "2024-03-10T07:30:00Z"));
    // Crossing midnight into the change: Sat 23:00 EST (04:00Z) to Sun 03:00 EDT (07:00Z).
    let w = rw("Sat 23:00-03:00", ny).next_window(after).unwrap();
    assert_eq!(w, win("2024-03-10T04:00:00Z", "2024-03-10T07:00:00Z"));
    assert_eq!(w.duration(), SignedDuration::from_hours(3));
    // Start in the gap, end just after it: empty.
    let w = rw("Sun 02:10-03:05", ny).next_window(after).unwrap();
    assert_eq!(w, win("2024-03-10T07:10:00Z", "2024-03-10T07:10:00Z"));
    assert_eq!(w.duration(), SignedDuration::ZERO);
    // The week after is normal again (EDT).
    assert_eq!(
        rw("Sun 01:00-04:00", ny).next_window(ts("2024-03-10T08:00:00Z")),
        Some(win("2024-03-17T05:00:00Z", "2024-03-17T08:00:00Z"))
    );
}

#[test]
fn us_fall_back_2024() {
    // 2024-11-03 02:00 EDT falls back to 01:00 EST in America/New_York.
    let ny = "America/New_York";
    let after = ts("2024-11-01T00:00:00Z");
    // 01:00 is ambiguous: the earlier (EDT, 05:00Z). 04:00 EST is 09:00Z: four real hours.
    let w = rw("Sun 01:00-04:00", ny).next_window(after).unwrap();
    assert_eq!(w, win("2024-11-03T05:00:00Z", "2024-11-03T09:00:00Z"));
    assert_eq!(w.duration(), SignedDuration::from_hours(4));
    // 01:30 (fold, earlier = EDT, 05:30Z) to 03:00 EST (08:00Z).
    let w = rw("Sun 01:30-03:00", ny).next_window(after).unwrap();
    assert_eq!(w, win("2024-11-03T05:30:00Z", "2024-11-03T08:00:00Z"));
    // Both ends in the fold: both take the earlier (EDT) instant.
    let w = rw("Sun 01:10-01:50", ny).next_window(after).unwrap();
    assert_eq!(w, win("2024-11-03T05:10:00Z", "2024-11-03T05:50:00Z"));
    // Crossing midnight: Sat 23:00 EDT (03:00Z) to Sun 03:00 EST (08:00Z): five real hours.
    let w = rw("Sat 23:00-03:00", ny).next_window(after).unwrap();
    assert_eq!(w, win("2024-11-03T03:00:00Z", "2024-11-03T08:00:00Z"));
    assert_eq!(w.duration(), SignedDuration::from_hours(5));
    // While in the second 01:30 (EST, 06:30Z) the window from the first 01:00 is still in progress.
    assert_eq!(
        rw("Sun 01:00-04:00", ny).window_at(ts("2024-11-03T06:30:00Z")),
        Some(win("2024-11-03T05:00:00Z", "2024-11-03T09:00:00Z"))
    );
}

#[test]
fn window_helpers() {
    let a = win("2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z");
    let b = win("2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z");
    assert!(!a.overlaps(&b));
    assert!(a.contains(ts("2024-01-01T00:00:00Z")));
    assert!(!a.contains(ts("2024-01-01T01:00:00Z")));
    assert_eq!(a.to_string(), "2024-01-01T00:00:00Z/2024-01-01T01:00:00Z");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const ZONES: [&str; 5] = ["America/New_York", "Europe/London", "Asia/Tokyo", "Australia/Lord_Howe", "UTC"];
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const NTHS: [&str; 7] = ["", "first ", "2nd ", "3rd ", "4th ", "5th ", "last "];

    proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC{0,40}") {
            let _ = text.parse::<Recurrence>();
        }

        #[test]
        fn next_window_is_the_first_that_has_not_ended(
            zone in 0..ZONES.len(),
            nth in 0..NTHS.len(),
            day in 0..DAYS.len(),
            (sh, sm, eh, em) in (0..24u8, 0..60u8, 0..24u8, 0..60u8),
            secs in 0i64..4_102_444_800, // 1970..2100
        ) {
            let text = format!("{}{} {sh:02}:{sm:02}-{eh:02}:{em:02}", NTHS[nth], DAYS[day]);
            let w = rw(&text, ZONES[zone]);
            let after = Timestamp::from_second(secs).unwrap();
            let next = w.next_window(after).unwrap();
            prop_assert!(next.end > after);
            prop_assert!(next.start <= next.end);
            prop_assert!(next.duration() <= SignedDuration::from_hours(26));
            // The window before it (if any) had already ended.
            let earlier = w.windows_between(after.checked_sub(SignedDuration::from_hours(24 * 40)).unwrap(), after);
            for e in earlier {
                prop_assert!(e.end <= after || e == next, "{e} before {next}");
            }
            // The one after it starts no earlier than it ends.
            let later = w.next_window(next.end).unwrap();
            prop_assert!(later.start >= next.end);
        }
    }
}
