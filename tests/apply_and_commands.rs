//! The bundle is applied and acknowledged as one unit; commands force, release, pause and resume.

mod common;
use common::*;
use sip_failover::core::{Agent, Command, CommandError, Event, Instant, Side, Snapshot};

fn primary_down(_: u64, side: Side, _: u8) -> Answer {
    if side == Side::Primary {
        Answer::Drop
    } else {
        OK
    }
}

#[test]
fn a_failed_apply_keeps_the_previous_bundle() {
    let mut lab = Lab::new(config(), primary_down);
    lab.fail_apply = true;
    lab.run_until(2_000);
    assert_eq!(lab.switches(), vec![(1600, Side::Primary, Side::Backup, "failover", 1)]);
    assert!(lab
        .events
        .contains(&(1600, Event::ApplyFailed { side: Side::Backup, generation: 1, kept: Side::Primary })));
    assert_eq!(lab.agent.active(), Side::Primary);
    assert_eq!(lab.agent.generation(), 0);
    assert_eq!(lab.agent.pending(), None);
    // The next cycle tries again with a new generation; this time the firmware manages it.
    lab.fail_apply = false;
    lab.run_until(17_000);
    assert_eq!(lab.switches()[1], (16_600, Side::Primary, Side::Backup, "failover", 2));
    assert_eq!(lab.agent.active(), Side::Backup);
    assert_eq!(lab.agent.generation(), 2);
}

#[test]
fn the_bundle_is_in_force_only_once_acknowledged() {
    let mut lab = Lab::new(config(), primary_down);
    lab.auto_apply = false;
    lab.run_until(2_000);
    assert_eq!(lab.agent.active(), Side::Primary);
    assert_eq!(lab.agent.pending(), Some((Side::Backup, 1)));
    assert_eq!(lab.agent.target(), Side::Backup);
    assert_eq!(
        lab.agent.handle_command(lab.now, Command::Applied { generation: 7 }),
        Err(CommandError::StaleGeneration)
    );
    lab.command(Command::Applied { generation: 1 });
    assert_eq!(lab.agent.active(), Side::Backup);
    assert!(lab.events.iter().any(|(_, e)| *e == Event::Applied { side: Side::Backup, generation: 1 }));
}

#[test]
fn force_pins_a_side_until_released() {
    let mut lab = Lab::new(config(), |_, _, _| OK);
    lab.run_until(1_000);
    lab.command(Command::Force(Side::Backup));
    assert_eq!(lab.switches(), vec![(1_000, Side::Primary, Side::Backup, "forced", 1)]);
    // Both alive for minutes: no failback while forced.
    lab.run_until(120_000);
    assert_eq!(lab.switches().len(), 1);
    lab.command(Command::Release);
    // Released: the primary's streak is long earned, so failback follows at once.
    assert_eq!(lab.switches()[1], (120_000, Side::Backup, Side::Primary, "failback", 2));
}

#[test]
fn pause_stops_probing_and_resume_starts_a_cycle_at_once() {
    let mut lab = Lab::new(config(), primary_down);
    lab.run_until(500);
    lab.command(Command::Pause);
    assert_eq!(lab.agent.poll_timeout(), None);
    lab.run_until(60_000);
    assert_eq!(lab.probes().len(), 2);
    assert!(lab.switches().is_empty());
    lab.command(Command::Resume);
    lab.run_until(61_700);
    assert_eq!(lab.probes_to(Side::Primary), vec![(0, 1), (60_000, 1), (60_800, 2), (61_200, 3)]);
    assert_eq!(lab.switches()[0].0, 61_600);
    assert_eq!(lab.agent.next_cycle(), Some(Instant::from_millis(75_000)));
}

#[test]
fn fast_detection_refused_ends_attempts_at_once() {
    let mut c = config();
    c.fast.refused_ends_attempt = true;
    let mut agent = Agent::new(c, Instant::ZERO, 3).unwrap();
    let mut buf = [0u8; 1500];
    let mut now = Instant::ZERO;
    let mut backup_req = String::new();
    while let Some(t) = agent.poll_transmit(now, &mut buf).unwrap() {
        if t.server == Side::Backup {
            backup_req = String::from_utf8(buf[..t.len].to_vec()).unwrap();
        }
    }
    agent.handle_datagram(Instant::from_millis(3), addr(BACKUP), response_to(&backup_req, 200).as_bytes());
    let mut attempts = 1;
    for ms in [10, 11, 12] {
        now = Instant::from_millis(ms);
        agent.handle_refused(now, Side::Primary);
        while agent.poll_transmit(now, &mut buf).unwrap().is_some() {
            attempts += 1;
        }
    }
    assert_eq!(attempts, 3);
    let events: Vec<Event> = core::iter::from_fn(|| agent.poll_event()).collect();
    assert!(events.iter().any(|e| matches!(e, Event::Switch { to: Side::Backup, generation: 1, .. })));
    assert_eq!(agent.pending(), Some((Side::Backup, 1)));
}

#[test]
fn refused_is_ignored_without_fast_detection() {
    let mut lab = Lab::new(config(), primary_down);
    lab.run_until(10);
    lab.agent.handle_refused(lab.now, Side::Primary);
    lab.drain();
    lab.run_until(2_000);
    assert_eq!(lab.probes_to(Side::Primary), vec![(0, 1), (800, 2), (1200, 3)]);
}

#[test]
fn a_transaction_failure_starts_a_cycle_at_once_with_fast_detection() {
    let mut c = config();
    c.fast.transaction_failure_probes = true;
    let mut lab = Lab::new(c, |ms, side, _| if side == Side::Primary && ms >= 5_000 { Answer::Drop } else { OK });
    lab.run_until(5_000);
    lab.command(Command::TransactionFailed);
    lab.run_until(7_000);
    assert_eq!(lab.switches(), vec![(6_600, Side::Primary, Side::Backup, "failover", 1)]);
}

#[test]
fn a_transaction_failure_changes_nothing_by_default() {
    let mut lab =
        Lab::new(config(), |ms, side, _| if side == Side::Primary && ms >= 5_000 { Answer::Drop } else { OK });
    lab.run_until(5_000);
    lab.command(Command::TransactionFailed);
    lab.run_until(14_999);
    assert!(lab.switches().is_empty());
    lab.run_until(17_000);
    assert_eq!(lab.switches()[0].0, 16_600);
}

#[test]
fn a_resumed_agent_continues_on_its_side_and_generation() {
    let mut lab = Lab::new(config(), primary_down);
    lab.run_until(2_000);
    let snap = lab.agent.snapshot();
    assert_eq!(
        snap,
        Snapshot { active: Side::Backup, generation: 1, issued: 1, forced: None, failback_pending: false }
    );
    let agent = Agent::resume(config(), Instant::ZERO, 9, snap).unwrap();
    assert_eq!(agent.active(), Side::Backup);
    assert_eq!(agent.generation(), 1);
}

#[test]
fn a_live_config_update_keeps_side_cycle_and_call() {
    let mut lab = Lab::new(config(), primary_down);
    lab.run_until(2_000);
    lab.command(Command::InCall(true));
    let mut c = config();
    c.interval = sip_failover::core::Duration::from_secs(20);
    lab.agent.update_config(lab.now, c).unwrap();
    lab.drain();
    assert_eq!(lab.agent.active(), Side::Backup);
    assert!(lab.agent.in_call());
    assert_eq!(lab.agent.next_cycle(), Some(Instant::from_millis(20_000)));
    // An invalid configuration changes nothing.
    let mut bad = config();
    bad.interval = sip_failover::core::Duration::from_millis(1_000);
    assert!(lab.agent.update_config(lab.now, bad).is_err());
    assert_eq!(lab.agent.config().interval, sip_failover::core::Duration::from_secs(20));
}

#[test]
fn disabling_the_backup_live_returns_to_the_primary() {
    let mut lab = Lab::new(config(), primary_down);
    lab.run_until(2_000);
    let mut c = config();
    c.backup = None;
    lab.agent.update_config(lab.now, c).unwrap();
    lab.drain();
    assert_eq!(lab.switches()[1], (2_000, Side::Backup, Side::Primary, "reconfigured", 2));
}
