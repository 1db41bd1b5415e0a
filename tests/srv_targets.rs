//! A server at several addresses (its SRV targets, RFC 3263 4.3), on the virtual clock, exact to the
//! millisecond: the ladder's later attempts go to the next addresses in turn, a cycle starts at the
//! address that answered last, an answer counts from any of the server's addresses (never from
//! another), and a server at one address keeps the seed's ladder unchanged.

mod common;

use common::*;
use sip_failover::core::{Agent, Config, ConfigError, Event, IgnoreReason, Instant, Side};

const A: &str = "127.0.0.1:5060";
const B: &str = "127.0.0.3:5060";
const C: &str = "127.0.0.4:5060";

/// The standard pair, the primary at `A` with `alternates` after it.
fn config_with(alternates: &[&str]) -> Config {
    let mut c = config();
    for (slot, a) in c.primary.alternates.iter_mut().zip(alternates) {
        *slot = Some(addr(a));
    }
    c
}

fn primary_probes(lab: &Lab) -> Vec<(u64, u8, String)> {
    lab.sent
        .iter()
        .filter(|s| s.server == Side::Primary)
        .map(|s| (s.t_ms, s.attempt, s.destination.to_string()))
        .collect()
}

#[test]
fn a_dead_first_target_hands_the_second_attempt_to_the_next_one() {
    let mut lab = Lab::with_dead(config_with(&[B]), &[A], |_, _, _| OK);
    lab.run_until(15_900);
    assert_eq!(
        primary_probes(&lab),
        vec![(0, 1, A.into()), (800, 2, B.into()), (15_000, 1, B.into())],
        "attempt 2 to the next target; the next cycle starts where the answer came from"
    );
    assert!(lab.switches().is_empty(), "no failover while a target of the primary answers");
    assert_eq!(
        lab.count(|e| matches!(e, Event::Reply { server: Side::Primary, attempt: 2, .. })),
        1,
        "answered at 805 ms by the second target"
    );
    assert_eq!(lab.count(|e| matches!(e, Event::ServerDown { .. })), 0);
}

#[test]
fn every_target_dead_fails_over_at_the_ladders_end() {
    let mut lab = Lab::with_dead(config_with(&[B, C]), &[A, B, C], |_, _, _| OK);
    lab.run_until(1_700);
    assert_eq!(primary_probes(&lab), vec![(0, 1, A.into()), (800, 2, B.into()), (1_200, 3, C.into())]);
    assert_eq!(lab.switches(), vec![(1_600, Side::Primary, Side::Backup, "failover", 1)]);
}

#[test]
fn two_targets_go_round_the_three_attempts() {
    let mut lab = Lab::with_dead(config_with(&[B]), &[A, B], |_, _, _| OK);
    lab.run_until(1_700);
    assert_eq!(primary_probes(&lab), vec![(0, 1, A.into()), (800, 2, B.into()), (1_200, 3, A.into())]);
    assert_eq!(lab.switches(), vec![(1_600, Side::Primary, Side::Backup, "failover", 1)]);
}

#[test]
fn one_address_keeps_the_seed_ladder() {
    let mut lab = Lab::with_dead(config(), &[A], |_, _, _| OK);
    lab.run_until(1_700);
    assert_eq!(primary_probes(&lab), vec![(0, 1, A.into()), (800, 2, A.into()), (1_200, 3, A.into())]);
    assert_eq!(lab.switches(), vec![(1_600, Side::Primary, Side::Backup, "failover", 1)]);
}

#[test]
fn an_answer_counts_from_any_of_the_servers_addresses_and_the_next_cycle_starts_there() {
    // Nothing answers by itself: the test answers by hand.
    let mut lab = Lab::new(config_with(&[B]), |_, _, _| Answer::Drop);
    lab.run_until(900);
    let first = lab.sent.iter().find(|s| s.server == Side::Primary && s.attempt == 1).unwrap().text.clone();
    // A stranger is a stranger, whatever it carries.
    lab.inject(addr("127.0.0.9:5060"), response_to(&first, 200).as_bytes());
    assert_eq!(lab.events.last().map(|e| e.1), Some(Event::Ignored { reason: IgnoreReason::UnknownSource }));
    // Attempt 1 went to A, attempt 2 to B; the answer to attempt 1 comes from B (a cluster behind one
    // name): it is the server's answer, and the next cycle starts at B.
    lab.inject(addr(B), response_to(&first, 200).as_bytes());
    assert_eq!(lab.count(|e| matches!(e, Event::Reply { server: Side::Primary, attempt: 1, .. })), 1);
    lab.run_until(15_000);
    assert_eq!(primary_probes(&lab), vec![(0, 1, A.into()), (800, 2, B.into()), (15_000, 1, B.into())]);
}

#[test]
fn a_new_address_list_keeps_the_target_that_answered() {
    let mut lab = Lab::with_dead(config_with(&[B]), &[A], |_, _, _| OK);
    lab.run_until(1_000);
    // The lookup comes back in another order, B first: the next cycle still starts at B.
    let mut c = config_with(&[A]);
    c.primary.next_hop = addr(B);
    lab.agent.update_config(lab.now, c).unwrap();
    lab.drain();
    lab.run_until(15_100);
    assert_eq!(primary_probes(&lab).last(), Some(&(15_000, 1, B.to_string())));
    // B gone from the list: back to the list's first address.
    lab.dead = vec![];
    lab.agent.update_config(lab.now, config_with(&[C])).unwrap();
    lab.drain();
    lab.run_until(30_100);
    assert_eq!(primary_probes(&lab).last(), Some(&(30_000, 1, A.to_string())));
}

#[test]
fn an_alternate_with_port_zero_is_refused() {
    let mut c = config_with(&[B]);
    c.primary.alternates[0] = Some(addr("127.0.0.3:0"));
    assert_eq!(c.validate(), Err(ConfigError::ZeroPort(Side::Primary)));
    assert!(Agent::new(c, Instant::ZERO, 1).is_err());
}
