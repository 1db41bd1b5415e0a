//! Generations across a restart: the snapshot keeps the bundle in force and the last generation
//! handed out. A switch not acknowledged before the snapshot is not in force after the resume, and
//! its generation is never handed out again; generations wrap from `u32::MAX` to 1.

mod common;
use common::*;
use sip_failover::core::{Agent, Command, Event, Instant, Side, Snapshot};

fn primary_down(_: u64, side: Side, _: u8) -> Answer {
    if side == Side::Primary {
        Answer::Drop
    } else {
        OK
    }
}

fn switches(agent: &mut Agent) -> Vec<(Side, u32)> {
    std::iter::from_fn(|| agent.poll_event())
        .filter_map(|e| match e {
            Event::Switch { to, generation, .. } => Some((to, generation)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_snapshot_taken_while_a_switch_is_applied_resumes_on_the_side_in_force() {
    let mut lab = Lab::new(config(), primary_down);
    lab.auto_apply = false;
    lab.run_until(2_000);
    assert_eq!(lab.agent.pending(), Some((Side::Backup, 1)));
    let snap = lab.agent.snapshot();
    assert_eq!(
        snap,
        Snapshot { active: Side::Primary, generation: 0, issued: 1, forced: None, failback_pending: false }
    );
    // The phone reboots before it acknowledged generation 1.
    let mut agent = Agent::resume(config(), Instant::ZERO, 9, snap).unwrap();
    assert_eq!((agent.active(), agent.generation(), agent.pending()), (Side::Primary, 0, None));
    // The primary is still down: the resumed agent decides again, under a new generation.
    let mut lab = Lab::with_agent(agent, primary_down);
    lab.auto_apply = false;
    lab.run_until(2_000);
    assert_eq!(lab.switches(), vec![(1_600, Side::Primary, Side::Backup, "failover", 2)]);
    agent = lab.agent;
    // An acknowledgement of the lost generation is refused; the new one is taken.
    assert!(agent.handle_command(Instant::from_millis(2_000), Command::Applied { generation: 1 }).is_err());
    agent.handle_command(Instant::from_millis(2_000), Command::Applied { generation: 2 }).unwrap();
    assert_eq!((agent.active(), agent.generation()), (Side::Backup, 2));
}

#[test]
fn a_snapshot_after_the_acknowledgement_resumes_on_the_new_side() {
    let mut lab = Lab::new(config(), primary_down);
    lab.run_until(2_000);
    let snap = lab.agent.snapshot();
    assert_eq!(
        snap,
        Snapshot { active: Side::Backup, generation: 1, issued: 1, forced: None, failback_pending: false }
    );
    let mut agent = Agent::resume(config(), Instant::ZERO, 9, snap).unwrap();
    assert_eq!((agent.active(), agent.generation()), (Side::Backup, 1));
    agent.handle_command(Instant::ZERO, Command::Force(Side::Primary)).unwrap();
    assert_eq!(switches(&mut agent), vec![(Side::Primary, 2)]);
}

#[test]
fn generations_wrap_from_the_largest_to_one() {
    let snap = Snapshot {
        active: Side::Backup,
        generation: u32::MAX - 1,
        issued: u32::MAX - 1,
        forced: None,
        failback_pending: false,
    };
    let mut agent = Agent::resume(config(), Instant::ZERO, 9, snap).unwrap();
    let now = Instant::ZERO;
    agent.handle_command(now, Command::Force(Side::Primary)).unwrap();
    agent.handle_command(now, Command::Applied { generation: u32::MAX }).unwrap();
    agent.handle_command(now, Command::Force(Side::Backup)).unwrap();
    agent.handle_command(now, Command::Applied { generation: 1 }).unwrap();
    agent.handle_command(now, Command::Force(Side::Primary)).unwrap();
    assert_eq!(switches(&mut agent), vec![(Side::Primary, u32::MAX), (Side::Backup, 1), (Side::Primary, 2)]);
    assert_eq!(agent.snapshot().issued, 2);
    assert_eq!(agent.generation(), 1);
}

#[test]
fn a_forced_switch_not_acknowledged_is_handed_out_again_after_the_resume() {
    let mut agent = Agent::new(config(), Instant::ZERO, 9).unwrap();
    agent.handle_command(Instant::ZERO, Command::Force(Side::Backup)).unwrap();
    assert_eq!(switches(&mut agent), vec![(Side::Backup, 1)]);
    let snap = agent.snapshot();
    let mut agent = Agent::resume(config(), Instant::ZERO, 9, snap).unwrap();
    assert_eq!(
        (agent.active(), agent.forced(), agent.pending()),
        (Side::Primary, Some(Side::Backup), Some((Side::Backup, 2)))
    );
    assert_eq!(switches(&mut agent), vec![(Side::Backup, 2)]);
}
