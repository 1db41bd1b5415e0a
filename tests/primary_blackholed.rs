//! The primary stops answering: the ladder's exact timing, the switch at 1600 ms, the next cycle at
//! 15 000 ms, drift-free cycles.

mod common;
use common::*;
use sip_failover::core::{Agent, Event, Instant, Side};

fn blackholed_primary() -> Lab {
    Lab::new(config(), |_, side, _| if side == Side::Primary { Answer::Drop } else { OK })
}

#[test]
fn three_attempts_at_0_800_1200_and_switch_at_1600() {
    let mut lab = blackholed_primary();
    lab.run_until(14_999);
    assert_eq!(lab.probes_to(Side::Primary), vec![(0, 1), (800, 2), (1200, 3)]);
    assert_eq!(lab.probes_to(Side::Backup), vec![(0, 1)]);
    assert_eq!(lab.switches(), vec![(1600, Side::Primary, Side::Backup, "failover", 1)]);
    assert_eq!(lab.agent.active(), Side::Backup);
    assert_eq!(lab.agent.generation(), 1);
    let timeouts: Vec<_> = lab
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::AttemptTimedOut { server: Side::Primary, attempt } => Some((*t, *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(timeouts, vec![(800, 1), (1200, 2), (1600, 3)]);
}

#[test]
fn each_attempt_is_a_new_transaction() {
    let mut lab = blackholed_primary();
    lab.run_until(1600);
    let header = |text: &str, name: &str| text.lines().find(|l| l.starts_with(name)).unwrap().to_string();
    let p: Vec<_> = lab.sent.iter().filter(|s| s.server == Side::Primary).collect();
    assert_eq!(p.len(), 3);
    let branches: Vec<_> = p.iter().map(|s| header(&s.text, "Via:")).collect();
    assert_ne!(branches[0], branches[1]);
    assert_ne!(branches[1], branches[2]);
    let cseqs: Vec<u32> =
        p.iter().map(|s| header(&s.text, "CSeq:").split_whitespace().nth(1).unwrap().parse().unwrap()).collect();
    assert_eq!(cseqs[1], cseqs[0] + 1);
    assert_eq!(cseqs[2], cseqs[0] + 2);
    // One cycle, one Call-ID.
    assert!(p.iter().all(|s| header(&s.text, "Call-ID:") == header(&p[0].text, "Call-ID:")));
    // Branches carry the magic cookie and at least 64 random bits (24 hex digits here).
    let b = branches[0].split("branch=z9hG4bK").nth(1).unwrap();
    let b = b.split(';').next().unwrap();
    assert!(b.len() >= 16 && b.chars().all(|c| c.is_ascii_hexdigit()), "{b}");
}

#[test]
fn next_cycle_at_15000_to_both_servers() {
    let mut lab = blackholed_primary();
    lab.run_until(15_000);
    let at_15000: Vec<_> = lab.probes().into_iter().filter(|p| p.0 == 15_000).collect();
    assert_eq!(at_15000, vec![(15_000, Side::Primary, 1), (15_000, Side::Backup, 1)]);
}

#[test]
fn cycle_starts_never_drift_even_when_woken_late() {
    // Drive the agent by hand, waking every timer 3 ms late: cycle starts stay on the 15 s grid.
    let mut agent = Agent::new(config(), Instant::ZERO, 1).unwrap();
    let mut buf = [0u8; 1500];
    let mut starts = vec![];
    let mut now = Instant::ZERO;
    for _ in 0..200 {
        while let Some(t) = agent.poll_transmit(now, &mut buf).unwrap() {
            if t.attempt == 1 && t.server == Side::Primary {
                starts.push(now.as_millis());
            }
        }
        while agent.poll_event().is_some() {}
        let next = agent.poll_timeout().unwrap();
        now = Instant::from_millis(next.as_millis() + 3);
        agent.handle_timeout(now);
    }
    assert!(starts.len() > 10);
    for (i, s) in starts.iter().enumerate().skip(1) {
        assert_eq!(*s, i as u64 * 15_000 + 3, "cycle {i} started at {s}");
    }
}

#[test]
fn a_long_sleep_skips_missed_cycles_and_keeps_the_grid() {
    let mut agent = Agent::new(config(), Instant::ZERO, 1).unwrap();
    let mut buf = [0u8; 1500];
    while agent.poll_transmit(Instant::ZERO, &mut buf).unwrap().is_some() {}
    // The device sleeps for 100 s.
    let now = Instant::from_millis(100_000);
    agent.handle_timeout(now);
    let mut sent = 0;
    while agent.poll_transmit(now, &mut buf).unwrap().is_some() {
        sent += 1;
    }
    // One new cycle (to both), not six, and the next start on the 15 s grid.
    assert_eq!(sent, 2);
    assert_eq!(agent.next_cycle(), Some(Instant::from_millis(105_000)));
}

#[test]
fn configured_waits_move_the_ladder() {
    let mut c = config();
    use sip_failover::core::{Duration, Ladder};
    c.ladder =
        Ladder::new(&[Duration::from_millis(500), Duration::from_millis(300), Duration::from_millis(700)]).unwrap();
    let mut lab = Lab::new(c, |_, side, _| if side == Side::Primary { Answer::Drop } else { OK });
    lab.run_until(5_000);
    assert_eq!(lab.probes_to(Side::Primary), vec![(0, 1), (500, 2), (800, 3)]);
    assert_eq!(lab.switches()[0].0, 1500);
}
