//! Planned maintenance on the agent's clock: leave before the window at an idle moment, at the latest
//! at its start; never fail back into it; return after it.

mod common;
use common::*;
use sip_failover::core::{Agent, Command, Event, HoldReason, Instant, Side};

const S: u64 = 1_000;
/// A window on the primary from 1 h to 2 h; the lead is the default 15 min.
const START: u64 = 3_600 * S;
const END: u64 = 7_200 * S;

fn window(lab: &mut Lab, side: Side) {
    lab.command(Command::PlannedWindow { side, start: Instant::from_millis(START), end: Instant::from_millis(END) });
}

#[test]
fn leaves_the_primary_at_the_start_of_the_lead_time_when_idle() {
    let mut lab = Lab::new(config(), |_, _, _| OK);
    window(&mut lab, Side::Primary);
    lab.run_until(START);
    assert_eq!(lab.switches(), vec![(START - 900 * S, Side::Primary, Side::Backup, "planned", 1)]);
}

#[test]
fn waits_for_the_call_to_end() {
    let mut lab = Lab::new(config(), |_, _, _| OK);
    window(&mut lab, Side::Primary);
    lab.run_until(2_000 * S);
    lab.command(Command::InCall(true));
    lab.run_until(3_000 * S);
    assert!(lab.switches().is_empty());
    assert!(lab.events.contains(&(2_700 * S, Event::Held { to: Side::Backup, reason: HoldReason::CallInProgress })));
    lab.command(Command::InCall(false));
    assert_eq!(lab.switches(), vec![(3_000 * S, Side::Primary, Side::Backup, "planned", 1)]);
}

#[test]
fn leaves_by_the_window_start_at_the_latest_even_in_a_call() {
    let mut lab = Lab::new(config(), |_, _, _| OK);
    window(&mut lab, Side::Primary);
    lab.run_until(2_000 * S);
    lab.command(Command::InCall(true));
    lab.run_until(5_000 * S);
    assert_eq!(lab.switches(), vec![(START, Side::Primary, Side::Backup, "planned", 1)]);
}

/// The primary restarts twice inside the window (rolling restart) and answers in between.
fn rolling_restart(ms: u64, side: Side, _: u8) -> Answer {
    let restarting = (3_700 * S..3_760 * S).contains(&ms) || (5_000 * S..5_060 * S).contains(&ms);
    if side == Side::Primary && restarting {
        Answer::Drop
    } else {
        OK
    }
}

#[test]
fn stays_on_the_backup_through_a_rolling_restart_and_returns_after_the_window() {
    let mut lab = Lab::new(config(), rolling_restart);
    window(&mut lab, Side::Primary);
    lab.run_until(END + 60 * S);
    // Cycles at 7 200 s and 7 215 s are the first two outside the window.
    assert_eq!(
        lab.switches(),
        vec![
            (START - 900 * S, Side::Primary, Side::Backup, "planned", 1),
            (7_215 * S + 5, Side::Backup, Side::Primary, "failback", 2)
        ]
    );
    // The primary answered many cycles inside the window.
    let alive_inside = lab
        .events
        .iter()
        .filter(|(t, e)| (START..END).contains(t) && matches!(e, Event::Reply { server: Side::Primary, .. }))
        .count();
    assert!(alive_inside > 200, "{alive_inside}");
}

#[test]
fn a_window_on_the_other_server_changes_nothing() {
    let mut lab = Lab::new(config(), |_, _, _| OK);
    window(&mut lab, Side::Backup);
    lab.run_until(END + 60 * S);
    assert!(lab.switches().is_empty());
}

#[test]
fn no_planned_switch_to_an_unhealthy_backup() {
    let mut lab = Lab::new(config(), |_, side, _| if side == Side::Backup { Answer::Drop } else { OK });
    window(&mut lab, Side::Primary);
    lab.run_until(END + 60 * S);
    assert!(lab.switches().is_empty());
}

#[test]
fn a_restart_in_the_middle_of_a_window_resumes_on_the_backup() {
    let mut lab = Lab::new(config(), rolling_restart);
    window(&mut lab, Side::Primary);
    lab.run_until(4_000 * S);
    let snap = lab.agent.snapshot();
    assert_eq!(snap.active, Side::Backup);
    // The phone reboots; its clock starts again at zero. The driver re-supplies the window, now
    // 3 200 s ahead... minus the 4 000 s already past: [0, 3 200 s) on the new clock.
    let mut agent = Agent::resume(config(), Instant::ZERO, 3, snap).unwrap();
    agent
        .handle_command(
            Instant::ZERO,
            Command::PlannedWindow {
                side: Side::Primary,
                start: Instant::ZERO,
                end: Instant::from_millis(END - 4_000 * S),
            },
        )
        .unwrap();
    lab.agent = agent;
    lab.now = Instant::ZERO;
    lab.events.clear();
    lab.drain();
    lab.run_until(3_100 * S);
    assert!(lab.switches().is_empty(), "{:?}", lab.switches());
    assert_eq!(lab.agent.active(), Side::Backup);
    lab.run_until(3_300 * S);
    assert_eq!(lab.switches()[0].2, Side::Primary);
    assert_eq!(lab.switches()[0].3, "failback");
}

#[test]
fn a_window_on_the_backup_while_on_it_moves_back_to_a_healthy_primary() {
    let mut c = config();
    c.failback.mode = sip_failover::core::FailbackMode::Never;
    let mut lab = Lab::new(c, |ms, side, _| if side == Side::Primary && ms < 15_000 { Answer::Drop } else { OK });
    lab.run_until(2_000);
    assert_eq!(lab.agent.active(), Side::Backup);
    window(&mut lab, Side::Backup);
    lab.run_until(START);
    assert_eq!(lab.switches()[1], (START - 900 * S, Side::Backup, Side::Primary, "planned", 2));
}
