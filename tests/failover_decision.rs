//! When to switch, and when not: the other server must have answered in the same cycle.

mod common;
use common::*;
use sip_failover::core::{Agent, DownReason, Event, Instant, Side};

#[test]
fn no_switch_when_the_backup_did_not_answer() {
    let mut lab = Lab::new(config(), |_, _, _| Answer::Drop);
    lab.run_until(16_000);
    assert!(lab.switches().is_empty());
    assert_eq!(lab.agent.active(), Side::Primary);
    let unreachable: Vec<u64> =
        lab.events.iter().filter(|(_, e)| *e == Event::NoServerReachable).map(|(t, _)| *t).collect();
    assert_eq!(unreachable, vec![1600]);
}

#[test]
fn both_down_reports_each_cycle_and_keeps_probing() {
    let mut lab = Lab::new(config(), |_, _, _| Answer::Drop);
    lab.run_until(60_000);
    let unreachable: Vec<u64> =
        lab.events.iter().filter(|(_, e)| *e == Event::NoServerReachable).map(|(t, _)| *t).collect();
    assert_eq!(unreachable, vec![1600, 16_600, 31_600, 46_600]);
    // Three attempts to each server in each of the five cycles started by 60 s.
    assert_eq!(lab.probes_to(Side::Primary).len(), 3 * 4 + 1);
    assert_eq!(lab.probes_to(Side::Backup).len(), 3 * 4 + 1);
    // Down is reported once per server, not every cycle.
    assert_eq!(lab.count(|e| matches!(e, Event::ServerDown { .. })), 2);
}

#[test]
fn a_503_moves_the_phone_when_it_arrives() {
    let mut lab = Lab::new(config(), |_, side, _| match side {
        Side::Primary => Answer::Reply { status: 503, delay_ms: 5 },
        Side::Backup => Answer::Reply { status: 200, delay_ms: 20 },
    });
    lab.run_until(10_000);
    // The primary refused at 5 ms; the decision waits for the backup's answer at 20 ms. The harness's
    // 503 carries Retry-After, an announced maintenance: the idle phone leaves at once (a 503 without
    // it, an outage, is in maintenance_mode.rs).
    assert_eq!(lab.switches(), vec![(20, Side::Primary, Side::Backup, "maintenance", 1)]);
    let down = lab.events.iter().find_map(|(_, e)| match e {
        Event::ServerDown { server: Side::Primary, reason } => Some(*reason),
        _ => None,
    });
    assert_eq!(down, Some(DownReason::Status { code: 503, retry_after: Some(300) }));
    // A definitive refusal ends the ladder: no second attempt.
    assert_eq!(lab.probes_to(Side::Primary), vec![(0, 1)]);
}

#[test]
fn alive_codes_policy_default() {
    // 404 means alive (the server is there and answering); 408 and 6xx mean failure.
    for (status, switches) in [(200, false), (404, false), (486, false), (408, true), (500, true), (603, true)] {
        let mut lab = Lab::new(config(), move |_, side, _| match side {
            Side::Primary => Answer::Reply { status, delay_ms: 5 },
            Side::Backup => OK,
        });
        lab.run_until(5_000);
        assert_eq!(!lab.switches().is_empty(), switches, "status {status}");
    }
}

#[test]
fn backup_failing_while_active_moves_to_a_live_primary_at_once() {
    // Failback off. Cycle 1: primary down, switch to backup. Cycle 2: both up. Cycle 3: backup
    // down, primary up: that is a failover, not a failback, so it happens at 31 600, the ladder's end.
    let mut c = config();
    c.failback.mode = sip_failover::core::FailbackMode::Never;
    let mut lab = Lab::new(c, |ms, side, _| match side {
        Side::Primary if ms < 15_000 => Answer::Drop,
        Side::Backup if ms >= 30_000 => Answer::Drop,
        _ => OK,
    });
    lab.run_until(40_000);
    assert_eq!(
        lab.switches(),
        vec![(1600, Side::Primary, Side::Backup, "failover", 1), (31_600, Side::Backup, Side::Primary, "failover", 2)]
    );
}

#[test]
fn backup_disabled_probes_the_primary_only_and_never_switches() {
    let mut c = config();
    c.backup = None;
    let mut lab = Lab::new(c, |_, _, _| Answer::Drop);
    lab.run_until(32_000);
    assert!(lab.probes().iter().all(|p| p.1 == Side::Primary));
    assert_eq!(lab.probes().len(), 9);
    assert!(lab.switches().is_empty());
    assert_eq!(lab.count(|e| *e == Event::NoServerReachable), 0);
}

#[test]
fn keep_alive_off_sends_nothing() {
    let mut c = config();
    c.keep_alive = false;
    let agent = Agent::new(c, Instant::ZERO, 1).unwrap();
    assert_eq!(agent.poll_timeout(), None);
}

#[test]
fn one_lost_probe_is_not_a_failover() {
    // The first attempt of every cycle is lost; the second is answered. No switch ever.
    let mut lab = Lab::new(config(), |_, _, attempt| if attempt == 1 { Answer::Drop } else { OK });
    lab.run_until(120_000);
    assert!(lab.switches().is_empty());
}
