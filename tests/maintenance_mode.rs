//! A server's own word on virtual time: a `503` with `Retry-After` (to a probe, or to one of the
//! phone's transactions reported by the firmware) is an announced maintenance. The phone leaves at
//! an idle moment, not in the middle of a call, at once if the server stops answering altogether,
//! and does not come back before the Retry-After has passed. A `503` without Retry-After is an
//! outage as before.

mod common;

use common::*;
use sip_failover::core::{Command, CommandError, Config, Event, HoldReason, Side};

/// The primary answers `503` with `Retry-After: 300` (the harness's 503) from `from_ms` to `to_ms`,
/// 200 otherwise; the backup always answers.
fn primary_in_maintenance(from_ms: u64, to_ms: u64) -> impl FnMut(u64, Side, u8) -> Answer {
    move |t, side, _| match side {
        Side::Primary if (from_ms..to_ms).contains(&t) => Answer::Reply { status: 503, delay_ms: 5 },
        _ => OK,
    }
}

#[test]
fn an_idle_phone_leaves_at_the_announcement_and_returns_once_the_retry_after_has_passed() {
    let mut lab = Lab::new(config(), primary_in_maintenance(15_000, 200_000));
    lab.run_until(600_000);
    // Announced at 15 005 ms and again at every cycle until the last 503 at 195 005 ms, each time for
    // 300 s: the failback waits until 495 005 ms though the primary answers 200 from the cycle at
    // 210 s.
    assert_eq!(
        lab.switches(),
        [
            (15_005, Side::Primary, Side::Backup, "maintenance", 1),
            (495_005, Side::Backup, Side::Primary, "failback", 2)
        ]
    );
}

#[test]
fn in_a_call_the_phone_holds_and_leaves_when_the_call_ends() {
    let mut lab = Lab::new(config(), primary_in_maintenance(15_000, 400_000));
    lab.command(Command::InCall(true));
    lab.run_until(100_000);
    assert!(lab.switches().is_empty(), "the call continues on the server in maintenance");
    let held: Vec<_> = lab.events.iter().filter(|(_, e)| matches!(e, Event::Held { .. })).collect();
    assert_eq!(held, [&(15_005, Event::Held { to: Side::Backup, reason: HoldReason::CallInProgress })]);
    lab.command(Command::InCall(false));
    assert_eq!(lab.switches(), [(100_000, Side::Primary, Side::Backup, "maintenance", 1)]);
}

#[test]
fn a_server_in_maintenance_that_stops_answering_is_left_at_once_even_in_a_call() {
    let mut lab = Lab::new(config(), |t, side, _| match side {
        Side::Primary if (15_000..30_000).contains(&t) => Answer::Reply { status: 503, delay_ms: 5 },
        Side::Primary if t >= 30_000 => Answer::Drop,
        _ => OK,
    });
    lab.command(Command::InCall(true));
    lab.run_until(40_000);
    assert_eq!(lab.switches(), [(31_600, Side::Primary, Side::Backup, "failover", 1)]);
}

#[test]
fn a_503_without_retry_after_is_an_outage_as_before() {
    let mut lab = Lab::new(config(), |t, side, _| match side {
        Side::Primary if t >= 15_000 => Answer::Reply { status: 503, delay_ms: 5 },
        _ => OK,
    });
    // The harness adds Retry-After to its 503s; strip it on the way in.
    lab.run_until(14_999);
    lab.run_until(15_000);
    let i = lab.inflight.iter().position(|d| d.1 == addr(PRIMARY)).unwrap();
    let text = String::from_utf8(lab.inflight[i].2.clone()).unwrap().replace("Retry-After: 300\r\n", "");
    lab.inflight[i].2 = text.into_bytes();
    lab.command(Command::InCall(true));
    lab.run_until(16_000);
    assert_eq!(lab.switches(), [(15_005, Side::Primary, Side::Backup, "failover", 1)]);
}

#[test]
fn the_firmware_reports_a_503_from_its_own_transaction() {
    let mut lab = Lab::new(config(), |_, _, _| OK);
    lab.run_until(20_000);
    lab.command(Command::Maintenance { side: Side::Primary, retry_after_s: 120 });
    lab.run_until(200_000);
    assert_eq!(
        lab.switches(),
        [
            (20_000, Side::Primary, Side::Backup, "maintenance", 1),
            (140_000, Side::Backup, Side::Primary, "failback", 2)
        ]
    );
    // Zero announces nothing.
    lab.command(Command::Maintenance { side: Side::Primary, retry_after_s: 0 });
    lab.run_until(210_000);
    assert_eq!(lab.switches().len(), 2);
}

#[test]
fn the_phone_does_not_move_onto_a_server_that_announced_maintenance_too() {
    // The backup's announcement comes first (2 ms), the primary's after it (5 ms).
    let mut lab = Lab::new(config(), |t, side, _| match (side, t >= 15_000) {
        (Side::Primary, true) => Answer::Reply { status: 503, delay_ms: 5 },
        (Side::Backup, true) => Answer::Reply { status: 503, delay_ms: 2 },
        _ => OK,
    });
    lab.run_until(100_000);
    assert!(lab.switches().is_empty());
    assert!(lab.events.iter().any(|(t, e)| *t == 15_005 && *e == Event::NoServerReachable));
}

#[test]
fn without_a_backup_there_is_nowhere_to_go() {
    let mut lab = Lab::new(Config::new(addr(PRIMARY), "pbx-a.example"), primary_in_maintenance(15_000, 400_000));
    lab.run_until(60_000);
    assert!(lab.switches().is_empty());
    assert_eq!(
        lab.agent.handle_command(lab.now, Command::Maintenance { side: Side::Backup, retry_after_s: 60 }),
        Err(CommandError::BackupDisabled)
    );
}
