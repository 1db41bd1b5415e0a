//! Failback: after `failback_after` alive cycles, only while idle, with an optional per-device spread;
//! modes auto, manual, never.

mod common;

use std::num::NonZeroU8;

use common::*;
use sip_failover::core::{Command, CommandError, Duration, Event, FailbackMode, HoldReason, Side};

/// The primary is down during the first cycle only.
fn outage_in_first_cycle(ms: u64, side: Side, _: u8) -> Answer {
    if side == Side::Primary && ms < 15_000 {
        Answer::Drop
    } else {
        OK
    }
}

#[test]
fn failback_after_two_alive_cycles() {
    let mut lab = Lab::new(config(), outage_in_first_cycle);
    lab.run_until(60_000);
    // Alive at 15 005 (1 cycle) and 30 005 (2 cycles): back to the primary at 30 005.
    assert_eq!(
        lab.switches(),
        vec![(1600, Side::Primary, Side::Backup, "failover", 1), (30_005, Side::Backup, Side::Primary, "failback", 2)]
    );
    assert_eq!(lab.agent.active(), Side::Primary);
}

#[test]
fn failback_is_held_while_a_call_is_in_progress_and_released_when_idle() {
    let mut lab = Lab::new(config(), outage_in_first_cycle);
    lab.run_until(20_000);
    lab.command(Command::InCall(true));
    lab.run_until(40_000);
    assert_eq!(lab.switches().len(), 1);
    let held: Vec<_> = lab
        .events
        .iter()
        .filter(|(_, e)| *e == Event::Held { to: Side::Primary, reason: HoldReason::CallInProgress })
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(held, vec![30_005]);
    assert_eq!(lab.agent.active(), Side::Backup);
    lab.command(Command::InCall(false));
    assert_eq!(lab.switches()[1], (40_000, Side::Backup, Side::Primary, "failback", 2));
}

#[test]
fn a_primary_failure_while_held_cancels_the_failback() {
    let mut lab = Lab::new(config(), |ms, side, _| match side {
        Side::Primary if ms < 15_000 || (45_000..60_000).contains(&ms) => Answer::Drop,
        _ => OK,
    });
    lab.run_until(20_000);
    lab.command(Command::InCall(true));
    lab.run_until(50_000);
    lab.command(Command::InCall(false));
    // The primary failed at 46 600: the earned failback is gone; it must earn two cycles again.
    assert_eq!(lab.switches().len(), 1);
    lab.run_until(100_000);
    assert_eq!(lab.switches()[1].0, 75_005);
}

#[test]
fn failback_count_is_configurable() {
    let mut c = config();
    c.failback.after_cycles = NonZeroU8::new(4).unwrap();
    let mut lab = Lab::new(c, outage_in_first_cycle);
    lab.run_until(80_000);
    assert_eq!(lab.switches()[1].0, 60_005);
}

#[test]
fn spread_delays_failback_by_the_devices_own_draw() {
    let mut c = config();
    c.failback.spread = Duration::from_secs(60);
    let mut lab = Lab::new(c, outage_in_first_cycle);
    let spread = lab.agent.failback_spread();
    assert!(spread <= Duration::from_secs(60));
    lab.run_until(200_000);
    assert_eq!(lab.switches()[1].0, 30_005 + spread.as_millis());
}

#[test]
fn manual_mode_returns_only_on_command() {
    let mut c = config();
    c.failback.mode = FailbackMode::Manual;
    let mut lab = Lab::new(c, outage_in_first_cycle);
    lab.run_until(100_000);
    assert_eq!(lab.switches().len(), 1);
    lab.command(Command::Failback);
    assert_eq!(lab.switches()[1], (100_000, Side::Backup, Side::Primary, "manual_failback", 2));
    assert_eq!(lab.agent.handle_command(lab.now, Command::Failback), Err(CommandError::AlreadyOnPrimary));
}

#[test]
fn manual_failback_is_refused_while_the_primary_is_down() {
    let mut c = config();
    c.failback.mode = FailbackMode::Manual;
    let mut lab = Lab::new(c, |_, side, _| if side == Side::Primary { Answer::Drop } else { OK });
    lab.run_until(20_000);
    assert_eq!(lab.agent.handle_command(lab.now, Command::Failback), Err(CommandError::PrimaryNotAlive));
}

#[test]
fn never_mode_stays_on_the_backup() {
    let mut c = config();
    c.failback.mode = FailbackMode::Never;
    let mut lab = Lab::new(c, outage_in_first_cycle);
    lab.run_until(300_000);
    assert_eq!(lab.switches().len(), 1);
    assert_eq!(lab.agent.active(), Side::Backup);
}

#[test]
fn flapping_primary_does_not_bounce_the_phone() {
    // Alive one cycle, dead the next: the failback streak never reaches two.
    let mut lab = Lab::new(config(), |ms, side, _| match side {
        Side::Primary if (ms / 15_000) % 2 == 0 => Answer::Drop,
        _ => OK,
    });
    lab.run_until(600_000);
    assert_eq!(lab.switches().len(), 1);
}
