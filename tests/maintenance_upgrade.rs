//! The upgrade window (seed 004): the 48-hour buffer and per-site time zones.

use jiff::{SignedDuration, Timestamp};
use sip_failover::maintenance::calendar::{CalendarError, RecurringWindow, Window};
use sip_failover::maintenance::upgrade::{UpgradeError, UpgradeWindow, DEFAULT_BUFFER};
use sip_failover::maintenance::upgrade_window_answer;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

fn upgrade(window: &str, tz: &str) -> UpgradeWindow {
    UpgradeWindow::new(RecurringWindow::parse(window, tz).expect("test window"))
}

#[test]
fn seed_example_tokyo_waits_a_week() {
    // Tokyo site, window Sunday 01:00-03:00; new version released Friday 2023-03-03 18:00 JST.
    // The next window (Sunday March 5, 01:00) is only 31 hours away, so the site waits for March 12.
    let tokyo = upgrade("Sun 01:00-03:00", "Asia/Tokyo");
    assert_eq!(tokyo.buffer(), SignedDuration::from_hours(48));
    assert_eq!(DEFAULT_BUFFER, SignedDuration::from_hours(48));
    let w = tokyo.apply_at(ts("2023-03-03T18:00:00+09:00")).unwrap();
    assert_eq!(w, Window::new(ts("2023-03-12T01:00:00+09:00"), ts("2023-03-12T03:00:00+09:00")));
    assert_eq!(w.start, ts("2023-03-11T16:00:00Z"));
    assert_eq!(
        upgrade_window_answer("Sun 01:00-03:00", "Asia/Tokyo", "2023-03-03T18:00:00+09:00", None).unwrap(),
        "2023-03-12T01:00:00+09:00[Asia/Tokyo]"
    );
}

#[test]
fn buffer_boundary_is_inclusive() {
    let tokyo = upgrade("Sun 01:00-03:00", "Asia/Tokyo");
    // Exactly 48 hours before Sunday March 5, 01:00 JST: that window.
    assert_eq!(tokyo.apply_at(ts("2023-03-03T01:00:00+09:00")).unwrap().start, ts("2023-03-05T01:00:00+09:00"));
    // One second later: a week later.
    assert_eq!(tokyo.apply_at(ts("2023-03-03T01:00:01+09:00")).unwrap().start, ts("2023-03-12T01:00:00+09:00"));
    // Released early in the week: the coming Sunday.
    assert_eq!(tokyo.apply_at(ts("2023-02-27T12:00:00+09:00")).unwrap().start, ts("2023-03-05T01:00:00+09:00"));
}

#[test]
fn same_account_window_lands_at_different_utc_instants() {
    let released = ts("2023-03-03T18:00:00+09:00"); // 09:00 UTC
    let tokyo = upgrade("Sun 01:00-03:00", "Asia/Tokyo").apply_at(released).unwrap();
    let london = upgrade("Sun 01:00-03:00", "Europe/London").apply_at(released).unwrap();
    // London's Sunday March 5, 01:00 GMT is 40 hours after the release: too soon as well.
    assert_eq!(tokyo, Window::new(ts("2023-03-11T16:00:00Z"), ts("2023-03-11T18:00:00Z")));
    assert_eq!(london, Window::new(ts("2023-03-12T01:00:00Z"), ts("2023-03-12T03:00:00Z")));
    assert_eq!(london.start.duration_since(tokyo.start), SignedDuration::from_hours(9));
    assert_eq!(
        upgrade_window_answer("Sun 01:00-03:00", "Europe/London", "2023-03-03T09:00:00Z", None).unwrap(),
        "2023-03-12T01:00:00+00:00[Europe/London]"
    );
    // In summer London is on BST: 01:00 local is 00:00 UTC; Tokyo has no DST.
    let released = ts("2023-07-03T00:00:00Z");
    assert_eq!(
        upgrade("Sun 01:00-03:00", "Europe/London").apply_at(released).unwrap().start,
        ts("2023-07-09T00:00:00Z")
    );
    assert_eq!(upgrade("Sun 01:00-03:00", "Asia/Tokyo").apply_at(released).unwrap().start, ts("2023-07-08T16:00:00Z"));
}

#[test]
fn london_window_on_the_spring_change_is_one_hour_long() {
    // 2023-03-26: 01:00 GMT jumps to 02:00 BST, so 01:00 does not exist: the window starts at 02:00 BST.
    let london = upgrade("Sun 01:00-03:00", "Europe/London");
    let w = london.apply_at(ts("2023-03-20T00:00:00Z")).unwrap();
    assert_eq!(w, Window::new(ts("2023-03-26T01:00:00Z"), ts("2023-03-26T02:00:00Z")));
    assert_eq!(w.duration(), SignedDuration::from_hours(1));
    assert_eq!(
        upgrade_window_answer("Sun 01:00-03:00", "Europe/London", "2023-03-20T00:00:00Z", None).unwrap(),
        "2023-03-26T02:00:00+01:00[Europe/London]"
    );
}

#[test]
fn custom_buffer() {
    let tokyo = upgrade("Sun 01:00-03:00", "Asia/Tokyo").with_buffer(SignedDuration::ZERO).unwrap();
    assert_eq!(tokyo.apply_at(ts("2023-03-03T18:00:00+09:00")).unwrap().start, ts("2023-03-05T01:00:00+09:00"));
    // Released during a window: a window in progress is never used.
    assert_eq!(tokyo.apply_at(ts("2023-03-05T01:30:00+09:00")).unwrap().start, ts("2023-03-12T01:00:00+09:00"));
    // Released exactly at a window start with no buffer: that window.
    assert_eq!(tokyo.apply_at(ts("2023-03-05T01:00:00+09:00")).unwrap().start, ts("2023-03-05T01:00:00+09:00"));
    assert_eq!(
        upgrade_window_answer("Sun 01:00-03:00", "Asia/Tokyo", "2023-03-03T18:00:00+09:00", Some(24)).unwrap(),
        "2023-03-05T01:00:00+09:00[Asia/Tokyo]"
    );
    assert_eq!(
        upgrade_window_answer("Sun 01:00-03:00", "Asia/Tokyo", "2023-03-03T18:00:00+09:00", Some(24 * 9)).unwrap(),
        "2023-03-19T01:00:00+09:00[Asia/Tokyo]"
    );
}

#[test]
fn local_release_time_is_read_in_the_site_zone() {
    assert_eq!(
        upgrade_window_answer("Sun 01:00-03:00", "Asia/Tokyo", "2023-03-03T18:00", None).unwrap(),
        "2023-03-12T01:00:00+09:00[Asia/Tokyo]"
    );
}

#[test]
fn monthly_upgrade_window() {
    let w = upgrade("first Fri 02:00-06:00", "America/New_York");
    // Released Wednesday 2024-03-27: Friday April 5 is more than 48 hours away.
    assert_eq!(w.apply_at(ts("2024-03-27T12:00:00Z")).unwrap().start, ts("2024-04-05T06:00:00Z"));
    // Released Thursday 2024-04-04 at noon: wait for May 3.
    assert_eq!(w.apply_at(ts("2024-04-04T12:00:00Z")).unwrap().start, ts("2024-05-03T06:00:00Z"));
}

#[test]
fn answer_errors() {
    let e = upgrade_window_answer("Sun 01:00-03:00", "Asia/Tokio", "2023-03-03T18:00:00+09:00", None).unwrap_err();
    assert_eq!(e, UpgradeError::Calendar(CalendarError::UnknownTimeZone { name: "Asia/Tokio".into() }));
    assert!(e.to_string().contains("Asia/Tokio"));
    let e = upgrade_window_answer("Sunday 1am-3am", "Asia/Tokyo", "2023-03-03T18:00:00+09:00", None).unwrap_err();
    assert!(matches!(e, UpgradeError::Calendar(CalendarError::Parse(_))), "{e:?}");
    assert!(e.to_string().contains("\"1am\"") && e.to_string().contains("start time"), "{e}");
    let e = upgrade_window_answer("Sun 01:00-03:00", "Asia/Tokyo", "next Friday", None).unwrap_err();
    assert_eq!(e, UpgradeError::BadRelease { text: "next Friday".into() });
    assert!(e.to_string().contains("next Friday"));
    let e = upgrade_window_answer("Sun 01:00-03:00", "Asia/Tokyo", "2023-03-03T18:00:00+09:00", Some(-1)).unwrap_err();
    assert_eq!(e, UpgradeError::BadBuffer { seconds: -3600 });
    let e = upgrade_window_answer("Sun 01:00-03:00", "Asia/Tokyo", "2023-03-03T18:00:00+09:00", Some(i64::MAX))
        .unwrap_err();
    assert!(matches!(e, UpgradeError::BadBuffer { .. }));
    // Near the end of the calendar there is no next window.
    let e = upgrade_window_answer("Sun 01:00-03:00", "Asia/Tokyo", "9999-12-30T00:00:00Z", None).unwrap_err();
    assert_eq!(e, UpgradeError::OutOfRange);
}
