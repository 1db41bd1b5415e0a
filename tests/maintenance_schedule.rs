//! From notices and recurring windows to the agent: the bell count, windows per side on the agent's
//! clock, wall-clock jumps, and a weekly window with a rolling restart run end to end on virtual time.

mod common;
use common::*;
use jiff::Timestamp;
use sip_failover::config::PhoneConfig;
use sip_failover::core::{Command, Duration, Event, Instant, Side};
use sip_failover::maintenance::notice::NoticeFeed;
use sip_failover::maintenance::schedule::{to_instant, ClockWatch, Schedule};
use sip_failover::maintenance::RecurringWindow;

const FEED: &str = r#"
[[notice]]
id = "CX-1"
cluster = "cx-eu-1"
start = "2024-03-15T07:00:00Z"
end = "2024-03-15T08:00:00Z"
impact = "minimal"
published = "2024-03-11T13:00:00Z"

[[notice]]
id = "CX-2"
cluster = "cx-us-9"
start = "2024-03-15T09:00:00Z"
end = "2024-03-15T10:00:00Z"
impact = "high"
published = "2024-03-11T13:00:00Z"
"#;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn schedule() -> Schedule {
    Schedule {
        primary_cluster: Some("cx-eu-1".into()),
        backup_cluster: Some("cx-eu-2".into()),
        feed: NoticeFeed::parse(FEED, "notices.toml").unwrap(),
        ..Schedule::default()
    }
}

#[test]
fn the_bell_rises_on_publication_and_falls_at_the_window_end() {
    let s = schedule();
    assert_eq!(s.bell(ts("2024-03-11T12:59:59Z")), 0);
    assert_eq!(s.bell(ts("2024-03-11T13:00:00Z")), 1);
    assert_eq!(s.bell(ts("2024-03-15T07:59:59Z")), 1);
    assert_eq!(s.bell(ts("2024-03-15T08:00:00Z")), 0);
    assert_eq!(s.next_change(ts("2024-03-11T00:00:00Z")), Some(ts("2024-03-11T13:00:00Z")));
}

#[test]
fn only_published_notices_for_the_phones_clusters_become_windows() {
    let s = schedule();
    assert!(s.windows(ts("2024-03-11T12:00:00Z")).is_empty(), "not yet published");
    let w = s.windows(ts("2024-03-12T00:00:00Z"));
    assert_eq!(w.len(), 1, "the cx-us-9 notice is for another cluster");
    assert_eq!(w[0].side, Side::Primary);
    assert_eq!(w[0].notice.as_deref(), Some("CX-1"));
    // On the agent's clock: three days, seven hours after a reading taken at midnight, mono 5 s.
    let core = s.core_windows(ts("2024-03-12T00:00:00Z"), Instant::from_secs(5));
    assert_eq!(core[0].start, Instant::from_secs(5 + 3 * 86_400 + 7 * 3_600));
    assert_eq!(core[0].end, Instant::from_secs(5 + 3 * 86_400 + 8 * 3_600));
}

#[test]
fn a_notice_for_another_cluster_changes_nothing_for_the_agent() {
    let mut s = schedule();
    s.primary_cluster = Some("cx-ap-3".into());
    s.backup_cluster = Some("cx-ap-4".into());
    let wall = ts("2024-03-15T06:00:00Z");
    let mut lab = Lab::new(config(), |_, _, _| OK);
    assert!(s.core_windows(wall, lab.now).is_empty());
    assert_eq!(s.bell(wall), 0);
    lab.run_until(3 * 3_600 * 1_000);
    assert!(lab.switches().is_empty());
}

#[test]
fn a_wall_clock_jump_is_noticed_and_windows_move() {
    let wall = ts("2024-03-15T06:00:00Z");
    let mut watch = ClockWatch::new(wall, Instant::ZERO, Duration::from_secs(2));
    // 10 minutes later on both clocks: no jump.
    assert!(!watch.jumped(ts("2024-03-15T06:10:00Z"), Instant::from_secs(600)));
    // The wall clock is stepped forward an hour: a jump; the window is now an hour closer.
    assert!(watch.jumped(ts("2024-03-15T07:10:01Z"), Instant::from_secs(601)));
    let before = to_instant(ts("2024-03-15T07:00:00Z"), wall, Instant::ZERO);
    let after = to_instant(ts("2024-03-15T07:00:00Z"), ts("2024-03-15T07:10:01Z"), Instant::from_secs(601));
    assert_eq!(before, Instant::from_secs(3_600));
    assert_eq!(after, Instant::ZERO, "a window already running starts now on the agent's clock");
}

#[test]
fn weekly_window_with_a_rolling_restart_end_to_end() {
    // Saturday 17:00-22:00 in Paris (seed 001); the phone starts at 16:00 local on 2024-06-08.
    let s = Schedule {
        primary_windows: vec![RecurringWindow::parse("Sat 17:00-22:00", "Europe/Paris").unwrap()],
        ..Schedule::default()
    };
    let wall = ts("2024-06-08T14:00:00Z"); // 16:00 CEST
    let windows = s.core_windows(wall, Instant::ZERO);
    // This Saturday's and next Saturday's (within the eight-day horizon).
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[1].start, Instant::from_secs(3_600 + 7 * 86_400));
    assert_eq!(windows[0].start, Instant::from_secs(3_600));
    assert_eq!(windows[0].end, Instant::from_secs(6 * 3_600));
    // The primary restarts inside the window twice and answers in between.
    let mut lab = Lab::new(config(), |ms, side, _| {
        let restarting = (4_000_000..4_060_000).contains(&ms) || (10_000_000..10_090_000).contains(&ms);
        if side == Side::Primary && restarting {
            Answer::Drop
        } else {
            OK
        }
    });
    for w in &windows {
        lab.command(Command::PlannedWindow { side: w.side, start: w.start, end: w.end });
    }
    lab.run_until(7 * 3_600 * 1_000);
    // Left at 16:45 (15 min lead), back after 22:00 once the primary has answered two cycles.
    assert_eq!(
        lab.switches(),
        vec![
            (2_700_000, Side::Primary, Side::Backup, "planned", 1),
            (21_615_005, Side::Backup, Side::Primary, "failback", 2)
        ]
    );
    // Inside the window the bundle in force was never the primary's.
    let in_force_primary_inside = lab
        .events
        .iter()
        .any(|(t, e)| (3_600_000..21_600_000).contains(t) && matches!(e, Event::Applied { side: Side::Primary, .. }));
    assert!(!in_force_primary_inside);
}

#[test]
fn maintenance_section_of_the_phone_config() {
    let dir = std::env::temp_dir().join(format!("sf-maint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notices.toml"), FEED).unwrap();
    let text = r#"
[redundancy]
primary_server = "10.0.0.1"
backup_destination = true
backup_destination_address = "10.0.0.2"

[primary]
cluster = "cx-eu-1"

[maintenance]
notices = "notices.toml"
time_zone = "Europe/Paris"
primary_windows = ["Sat 17:00-22:00", "first Fri 02:00-04:00"]
upgrade_window = "Sun 01:00-03:00"
upgrade_time_zone = "Asia/Tokyo"
"#;
    let path = dir.join("phone.toml");
    std::fs::write(&path, text).unwrap();
    let c = PhoneConfig::load(&path).unwrap();
    assert_eq!(c.maintenance.primary_windows.len(), 2);
    let s = c.schedule().unwrap();
    assert_eq!(s.bell(ts("2024-03-12T00:00:00Z")), 1);
    let up = c.maintenance.upgrade.as_ref().unwrap();
    let w = up.apply_at(ts("2023-03-03T09:00:00Z")).unwrap();
    assert_eq!(w.start, ts("2023-03-11T16:00:00Z")); // Sunday 12 March 01:00 in Tokyo

    for (bad, want) in [
        ("time_zone = \"Europe/Paris\"", "time_zone = \"Mars/Olympus\""),
        ("\"first Fri 02:00-04:00\"", "\"Fry 02:00-04:00\""),
        ("upgrade_time_zone = \"Asia/Tokyo\"\n", ""),
    ] {
        let e = PhoneConfig::parse(&text.replace(bad, want), &path).unwrap_err().to_string();
        assert!(e.contains("phone.toml:1") && e.contains("maintenance."), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
