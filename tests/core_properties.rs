//! Properties over random sequences of time steps, datagrams and commands: the agent never panics,
//! exactly one side is in force, generations only grow, and it never asks to be woken in the past.

mod common;
use common::*;
use proptest::prelude::*;
use sip_failover::core::{Agent, Command, Event, Instant, Side};

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Reply { side: bool, status: u16, mangle: u8 },
    Garbage(Vec<u8>),
    Refused(bool),
    Cmd(u8),
    Ack(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..20_000).prop_map(Op::Advance),
        4 => (any::<bool>(), prop::sample::select(vec![100u16, 180, 200, 302, 404, 408, 486, 500, 503, 603]), 0u8..6)
            .prop_map(|(side, status, mangle)| Op::Reply { side, status, mangle }),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Op::Garbage),
        1 => any::<bool>().prop_map(Op::Refused),
        2 => (0u8..12).prop_map(Op::Cmd),
        2 => any::<bool>().prop_map(Op::Ack),
    ]
}

fn mangle(resp: String, how: u8) -> String {
    match how {
        1 => resp.replacen("z9hG4bK", "z9hG4bKx", 1),
        2 => with_header(&resp, "Call-ID", "nope"),
        3 => resp.replace("OPTIONS", "INVITE"),
        4 => resp[..resp.len() / 2].to_string(),
        5 => resp.replace("\r\n", "\n"),
        _ => resp,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn never_panics_one_side_generation_grows(ops in prop::collection::vec(op(), 1..120), fast in any::<bool>()) {
        let mut c = config();
        c.fast.refused_ends_attempt = fast;
        c.fast.transaction_failure_probes = fast;
        let mut agent = Agent::new(c, Instant::ZERO, 11).unwrap();
        let mut now = Instant::ZERO;
        let mut last = [String::new(), String::new()];
        let mut last_switch_gen = 0u32;
        let mut applied_gen = agent.generation();
        let mut buf = [0u8; 1500];
        for op in ops {
            match op {
                Op::Advance(ms) => { now = Instant::from_micros(now.as_micros() + ms * 1000); agent.handle_timeout(now); }
                Op::Reply { side, status, mangle: m } => {
                    let s = if side { Side::Backup } else { Side::Primary };
                    if !last[s.index()].is_empty() {
                        let r = mangle(response_to(&last[s.index()], status), m);
                        let from = addr(if side { BACKUP } else { PRIMARY });
                        agent.handle_datagram(now, from, r.as_bytes());
                    }
                }
                Op::Garbage(bytes) => agent.handle_datagram(now, addr(PRIMARY), &bytes),
                Op::Refused(side) => agent.handle_refused(now, if side { Side::Backup } else { Side::Primary }),
                Op::Cmd(k) => {
                    let cmd = match k {
                        0 => Command::Force(Side::Primary),
                        1 => Command::Force(Side::Backup),
                        2 => Command::Release,
                        3 => Command::Pause,
                        4 => Command::Resume,
                        5 => Command::InCall(true),
                        6 => Command::InCall(false),
                        7 => Command::Failback,
                        8 => Command::TransactionFailed,
                        9 => Command::PlannedWindow { side: Side::Primary, start: now, end: Instant::from_micros(now.as_micros() + 60_000_000) },
                        10 => Command::ClearPlannedWindows,
                        _ => Command::Applied { generation: 999 },
                    };
                    let _ = agent.handle_command(now, cmd);
                }
                Op::Ack(ok) => {
                    if let Some((_, g)) = agent.pending() {
                        let cmd = if ok { Command::Applied { generation: g } } else { Command::ApplyFailed { generation: g } };
                        agent.handle_command(now, cmd).unwrap();
                    }
                }
            }
            while let Some(t) = agent.poll_transmit(now, &mut buf).unwrap() {
                last[t.server.index()] = String::from_utf8(buf[..t.len].to_vec()).unwrap();
            }
            while let Some(e) = agent.poll_event() {
                if let Event::Switch { generation, from, to, .. } = e {
                    prop_assert!(generation > last_switch_gen);
                    prop_assert_ne!(from, to);
                    last_switch_gen = generation;
                }
            }
            prop_assert!(agent.generation() >= applied_gen);
            applied_gen = agent.generation();
            // A pending switch may lead back to the side in force (it supersedes one in flight), but
            // always under a newer generation.
            if let Some((_, g)) = agent.pending() {
                prop_assert!(g > agent.generation());
            }
            if let Some(t) = agent.poll_timeout() {
                prop_assert!(t > now, "wake-up {t:?} not after now {now:?}");
            }
        }
    }
}
