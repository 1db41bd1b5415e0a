//! A refresh of the planned windows (the notice feed changed, a schedule boundary passed, the wall
//! clock jumped) hands the core the same windows again, or windows moved by a rounding: the phone
//! stays where it is. Replacing the set is one step; clearing and re-adding would fail back in
//! between and leave again (two extra generations, two bundle swaps).

mod common;
use common::*;
use sip_failover::core::{Command, CommandError, Instant, PlannedWindow, Side, MAX_WINDOWS};

const S: u64 = 1_000;
/// A window on the primary from 1 h to 2 h; the lead is the default 15 min.
const START: u64 = 3_600 * S;
const END: u64 = 7_200 * S;

fn primary_window(start_ms: u64) -> PlannedWindow {
    PlannedWindow { side: Side::Primary, start: Instant::from_millis(start_ms), end: Instant::from_millis(END) }
}

fn refresh(lab: &mut Lab, windows: &[PlannedWindow]) {
    lab.agent.set_planned_windows(lab.now, windows).unwrap();
    lab.drain();
}

fn lab_with_window() -> Lab {
    let mut lab = Lab::new(config(), |_, _, _| OK);
    refresh(&mut lab, &[primary_window(START)]);
    lab
}

const PLANNED: (u64, Side, Side, &str, u32) = (START - 900 * S, Side::Primary, Side::Backup, "planned", 1);
/// Two alive cycles after the window (7 200 s and 7 215 s, each answered 5 ms later).
const BACK: (u64, Side, Side, &str, u32) = (END + 15_005, Side::Backup, Side::Primary, "failback", 2);

#[test]
fn a_refresh_in_the_lead_time_keeps_the_phone_on_the_backup() {
    let mut lab = lab_with_window();
    lab.run_until(3_000 * S);
    assert_eq!(lab.switches(), vec![PLANNED]);
    // The same window, recomputed 1 ms later, as a refresh gives it.
    refresh(&mut lab, &[primary_window(START + 1)]);
    refresh(&mut lab, &[primary_window(START + 1)]);
    lab.run_until(3_500 * S);
    assert_eq!(lab.switches(), vec![PLANNED]);
    assert_eq!((lab.agent.active(), lab.agent.generation()), (Side::Backup, 1));
}

#[test]
fn clearing_and_re_adding_one_by_one_is_what_flaps() {
    // The old way, kept as the reason for the one-step replacement: it fails back and leaves again.
    let mut lab = lab_with_window();
    lab.run_until(3_000 * S);
    lab.command(Command::ClearPlannedWindows);
    lab.command(Command::PlannedWindow {
        side: Side::Primary,
        start: Instant::from_millis(START + 1),
        end: Instant::from_millis(END),
    });
    assert_eq!(
        lab.switches(),
        vec![
            PLANNED,
            (3_000 * S, Side::Backup, Side::Primary, "failback", 2),
            (3_000 * S, Side::Primary, Side::Backup, "planned", 3)
        ]
    );
}

#[test]
fn a_refresh_inside_the_window_keeps_the_phone_on_the_backup() {
    let mut lab = lab_with_window();
    lab.run_until(5_000 * S);
    refresh(&mut lab, &[primary_window(START)]);
    lab.run_until(5_100 * S);
    refresh(&mut lab, &[primary_window(START + 1)]);
    lab.run_until(6_000 * S);
    assert_eq!(lab.switches(), vec![PLANNED]);
    assert!(lab.agent.in_planned_window(Side::Primary));
}

#[test]
fn a_refresh_at_the_end_of_the_window_returns_once() {
    let mut lab = lab_with_window();
    lab.run_until(END - 1);
    assert_eq!(lab.switches(), vec![PLANNED]);
    lab.run_until(END);
    // At its end the window is gone; a refresh that still lists it (a feed that lags) changes nothing
    // more, and one that drops it neither.
    refresh(&mut lab, &[primary_window(START)]);
    refresh(&mut lab, &[]);
    lab.run_until(END + 100 * S);
    assert_eq!(lab.switches(), vec![PLANNED, BACK]);
    assert_eq!((lab.agent.active(), lab.agent.generation()), (Side::Primary, 2));
}

#[test]
fn a_refresh_that_drops_the_window_in_its_lead_time_returns_to_the_primary() {
    // Withdrawn maintenance: the phone goes home once, at the refresh.
    let mut lab = lab_with_window();
    lab.run_until(3_000 * S);
    refresh(&mut lab, &[]);
    lab.run_until(3_100 * S);
    assert_eq!(lab.switches(), vec![PLANNED, (3_000 * S, Side::Backup, Side::Primary, "failback", 2)]);
}

#[test]
fn a_bad_set_is_refused_whole_and_the_windows_stay() {
    let mut lab = lab_with_window();
    lab.run_until(3_000 * S);
    let empty = PlannedWindow { side: Side::Backup, start: Instant::from_millis(10), end: Instant::from_millis(10) };
    assert_eq!(lab.agent.set_planned_windows(lab.now, &[empty]), Err(CommandError::EmptyWindow));
    let many: Vec<_> = (0..=MAX_WINDOWS as u64).map(|i| primary_window(START + i)).collect();
    assert_eq!(lab.agent.set_planned_windows(lab.now, &many), Err(CommandError::TooManyWindows));
    // Duplicates count once.
    let same = [primary_window(START); MAX_WINDOWS + 2];
    assert_eq!(lab.agent.set_planned_windows(lab.now, &same), Ok(()));
    lab.drain();
    lab.run_until(3_500 * S);
    assert_eq!(lab.switches(), vec![PLANNED]);
}

#[test]
fn a_set_given_at_start_leaves_at_the_lead_as_before() {
    let mut lab = lab_with_window();
    lab.run_until(START);
    assert_eq!(lab.switches(), vec![PLANNED]);
}
