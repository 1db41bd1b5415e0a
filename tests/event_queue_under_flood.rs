//! Events that carry state are never pushed out of the agent's event queue by traffic: a firmware
//! that drains after a batch of inputs (an RTOS queue, `recvmmsg`) still gets every switch.

mod common;
use common::*;
use sip_failover::core::{CycleResult, DownReason, Event, Instant, Side};

fn primary_down(_: u64, side: Side, _: u8) -> Answer {
    if side == Side::Primary {
        Answer::Drop
    } else {
        OK
    }
}

/// Forged and broken datagrams: a real reply of this cycle with its branch, Call-ID or CSeq changed,
/// from the right or a wrong source, and plain garbage.
fn forgeries(real: &str, n: usize) -> Vec<(std::net::SocketAddr, Vec<u8>)> {
    let variants = [
        with_header(real, "Call-ID", "forged@example"),
        with_header(real, "CSeq", "999 OPTIONS"),
        real.replace("branch=z9hG4bK", "branch=z9hG4bKx"),
        "SIP/2.0 200 OK\r\n\r\n".to_string(),
        "\u{0}\u{1}garbage".to_string(),
    ];
    (0..n)
        .map(|i| {
            let from = if i % 7 == 0 { addr("127.0.0.9:5060") } else { addr(PRIMARY) };
            (from, variants[i % variants.len()].clone().into_bytes())
        })
        .collect()
}

#[test]
fn ten_thousand_forged_datagrams_between_two_drains_do_not_lose_the_switch() {
    let mut lab = Lab::new(config(), primary_down);
    lab.run_until(1_599);
    assert!(lab.switches().is_empty());
    // The primary's third attempt; a real reply to it, to forge from.
    let last = lab.sent.iter().rfind(|s| s.server == Side::Primary).unwrap().text.clone();
    let real = response_to(&last, 200);
    let mut agent = lab.agent;
    // The ladder fails at 1600 ms and the switch is decided; the caller does not drain yet.
    let t = Instant::from_millis(1_600);
    agent.handle_timeout(t);
    assert_eq!(agent.pending(), Some((Side::Backup, 1)));
    for (from, bytes) in forgeries(&real, 10_000) {
        agent.handle_datagram(t, from, &bytes);
    }
    let drained: Vec<Event> = std::iter::from_fn(|| agent.poll_event()).collect();
    let switches: Vec<_> = drained.iter().filter(|e| matches!(e, Event::Switch { .. })).collect();
    assert_eq!(switches.len(), 1, "{drained:?}");
    assert!(matches!(switches[0], Event::Switch { to: Side::Backup, generation: 1, .. }));
    // The state before it is there too, in order: the cycle's result, then the server down.
    let state: Vec<_> =
        drained.iter().filter(|e| !matches!(e, Event::Ignored { .. } | Event::AttemptTimedOut { .. })).collect();
    assert_eq!(
        state,
        [
            &Event::CycleResult { server: Side::Primary, result: CycleResult::Failed(DownReason::Timeout) },
            &Event::ServerDown { server: Side::Primary, reason: DownReason::Timeout },
            switches[0],
        ]
    );
    let stats = agent.stats();
    assert_eq!(stats.state_events_dropped, 0);
    assert!(stats.events_dropped > 9_000, "the forgeries gave way: {stats:?}");
    assert_eq!(stats.ignored.iter().sum::<u32>(), 10_000);
    assert_eq!(stats.replies, lab.events.iter().filter(|(_, e)| matches!(e, Event::Reply { .. })).count() as u32);
}

#[test]
fn a_caller_that_drains_only_once_per_cycle_loses_no_state() {
    // Inputs in batches: the caller drains events only at each cycle start, while forged datagrams
    // arrive all along. Every switch and every cycle's result still reaches it.
    let lab =
        Lab::new(
            config(),
            |ms, side, _| if side == Side::Primary && (20_000..50_000).contains(&ms) { Answer::Drop } else { OK },
        );
    let junk = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKforged\r\n\r\n";
    let mut agent = lab.agent;
    let mut events = Vec::new();
    let mut buf = [0u8; 1500];
    let mut inflight: Vec<(u64, Vec<u8>, std::net::SocketAddr)> = Vec::new();
    let mut now = 0u64;
    for _ in 0..100_000 {
        let next =
            agent.poll_timeout().map(|t| t.as_micros()).into_iter().chain(inflight.iter().map(|d| d.0)).min().unwrap();
        if next > 120_000_000 {
            break;
        }
        now = now.max(next);
        let t = Instant::from_micros(now);
        if let Some(i) = inflight.iter().position(|d| d.0 == next) {
            let (_, bytes, from) = inflight.remove(i);
            agent.handle_datagram(t, from, &bytes);
        } else {
            agent.handle_timeout(t);
        }
        for _ in 0..40 {
            agent.handle_datagram(t, addr(PRIMARY), junk);
        }
        while let Some(tx) = agent.poll_transmit(t, &mut buf).unwrap() {
            let text = String::from_utf8(buf[..tx.len].to_vec()).unwrap();
            let ms = now / 1000;
            let drop = tx.server == Side::Primary && (20_000..50_000).contains(&ms);
            if !drop {
                inflight.push((now + 5_000, response_to(&text, 200).into_bytes(), tx.destination));
            }
        }
        if agent.next_cycle().is_some_and(|c| c.as_micros() > now + 14_000_000) {
            // A cycle just started: the batch ends, drain and acknowledge.
            while let Some(e) = agent.poll_event() {
                if let Event::Switch { generation, .. } = e {
                    agent.handle_command(t, sip_failover::core::Command::Applied { generation }).unwrap();
                }
                events.push(e);
            }
        }
    }
    let switches: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Switch { to, generation, .. } => Some((*to, *generation)),
            _ => None,
        })
        .collect();
    assert_eq!(switches, [(Side::Backup, 1), (Side::Primary, 2)]);
    let results = events.iter().filter(|e| matches!(e, Event::CycleResult { .. })).count();
    assert_eq!(
        u32::try_from(results).unwrap(),
        2 * agent.stats().cycles - 2,
        "every finished cycle's result, both servers"
    );
    assert_eq!(agent.stats().state_events_dropped, 0);
}
