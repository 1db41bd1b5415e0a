//! Prints a deterministic trace of the failover core over seeded random scenarios: every datagram
//! sent (time, server, attempt, a hash of its bytes), every event, every acknowledgement's result and
//! the next deadline after each input. Built against two versions of the crate by
//! `scripts/differential.sh`, whose outputs must agree.
//!
//! It uses only the core API both versions have.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use sip_failover::core::{Agent, Command, Config, Event, Instant, Side};

/// A small seeded generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A response echoing the request's Via, From, To, Call-ID and CSeq.
fn response(request: &str, status: u16, forge: u64) -> String {
    let mut out = format!("SIP/2.0 {status} X\r\n");
    for line in request.split("\r\n") {
        match line.split(':').next().unwrap_or("") {
            "Via" if forge == 1 => out.push_str(&format!("{}x\r\n", line)),
            "Call-ID" if forge == 2 => out.push_str("Call-ID: forged\r\n"),
            "Via" | "From" | "Call-ID" | "CSeq" => out.push_str(&format!("{line}\r\n")),
            "To" => out.push_str(&format!("{line};tag=t\r\n")),
            _ => {}
        }
    }
    // No Retry-After on the 503s: with one, a 503 is an announced maintenance (left at an idle moment,
    // no failback before it ends), a policy the base commit does not have.
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

fn scenario(seed: u64, out: &mut String) {
    let mut rng = Rng(seed);
    let (p, b) = (addr("127.0.0.1:5060"), addr("127.0.0.2:5060"));
    let mut config = Config::new(p, "pbx-a.example").with_backup(b, "pbx-b.example");
    config.fast.refused_ends_attempt = rng.below(2) == 0;
    config.fast.transaction_failure_probes = rng.below(2) == 0;
    let mut agent = Agent::new(config.clone(), Instant::ZERO, seed).unwrap();
    let mut now = 0u64;
    // Each server's behaviour changes now and then: answer (status), drop, or refuse.
    let mut behaviour = [0u64, 0u64];
    let mut inflight: Vec<(u64, SocketAddr, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 1500];
    for step in 0..400 {
        // Drain: transmits (answered by the servers' behaviour), then events.
        while let Ok(Some(t)) = agent.poll_transmit(Instant::from_micros(now), &mut buf) {
            let bytes = &buf[..t.len];
            let mut h = DefaultHasher::new();
            bytes.hash(&mut h);
            out.push_str(&format!("{now} send {:?} {} {:016x}\n", t.server, t.attempt, h.finish()));
            let text = String::from_utf8_lossy(bytes).into_owned();
            let from = t.destination;
            match behaviour[t.server.index()] {
                0..=5 => inflight.push((now + 1_000 + rng.below(900_000), from, response(&text, 200, 0).into_bytes())),
                6 => inflight.push((now + 2_000, from, response(&text, 503, 0).into_bytes())),
                7 => inflight.push((now + 3_000, from, response(&text, 200, 1 + rng.below(2)).into_bytes())),
                8 => agent.handle_refused(Instant::from_micros(now), t.server),
                _ => {}
            }
        }
        while let Some(e) = agent.poll_event() {
            if format!("{e:?}").starts_with("CycleResult") {
                continue;
            }
            out.push_str(&format!("{now} event {e:?}\n"));
            if let Event::Switch { generation, .. } = e {
                let cmd = if rng.below(6) == 0 {
                    Command::ApplyFailed { generation }
                } else {
                    Command::Applied { generation }
                };
                out.push_str(&format!("{now} ack {:?}\n", agent.handle_command(Instant::from_micros(now), cmd)));
            }
        }
        out.push_str(&format!("{now} next {:?}\n", agent.poll_timeout()));
        if step == 399 {
            break;
        }
        // The next input: a delivery, a timer, a behaviour change or a command.
        let timer = agent.poll_timeout().map(|t| t.as_micros());
        let delivery = inflight.iter().map(|d| d.0).min();
        match rng.below(20) {
            0 => behaviour[rng.below(2) as usize] = rng.below(10),
            1 => {
                let cmd = match rng.below(9) {
                    0 => Command::Force(if rng.below(2) == 0 { Side::Primary } else { Side::Backup }),
                    1 => Command::Release,
                    2 => Command::Failback,
                    3 => Command::Pause,
                    4 => Command::Resume,
                    5 => Command::InCall(rng.below(2) == 0),
                    6 => Command::TransactionFailed,
                    7 => {
                        let start = now + rng.below(3_600_000_000);
                        Command::PlannedWindow {
                            side: if rng.below(2) == 0 { Side::Primary } else { Side::Backup },
                            start: Instant::from_micros(start),
                            end: Instant::from_micros(start + 1 + rng.below(1_800_000_000)),
                        }
                    }
                    _ => Command::ClearPlannedWindows,
                };
                let r = agent.handle_command(Instant::from_micros(now), cmd);
                out.push_str(&format!("{now} command {cmd:?} {r:?}\n"));
            }
            2 => {
                let mut c = config.clone();
                c.fast.refused_ends_attempt = rng.below(2) == 0;
                let r = agent.update_config(Instant::from_micros(now), c);
                out.push_str(&format!("{now} update {r:?}\n"));
            }
            _ => match (timer, delivery) {
                (Some(t), Some(d)) if d <= t => {
                    let i = inflight.iter().position(|x| x.0 == d).unwrap();
                    let (at, from, bytes) = inflight.remove(i);
                    now = now.max(at);
                    agent.handle_datagram(Instant::from_micros(now), from, &bytes);
                }
                (Some(t), _) => {
                    now = now.max(t);
                    agent.handle_timeout(Instant::from_micros(now));
                }
                (None, Some(d)) => {
                    let i = inflight.iter().position(|x| x.0 == d).unwrap();
                    let (at, from, bytes) = inflight.remove(i);
                    now = now.max(at);
                    agent.handle_datagram(Instant::from_micros(now), from, &bytes);
                }
                (None, None) => {
                    now += 1_000_000;
                    agent.handle_timeout(Instant::from_micros(now));
                }
            },
        }
    }
    let s = agent.stats();
    out.push_str(&format!(
        "end active {:?} generation {} pending {:?} sent {} replies {} cycles {}\n",
        agent.active(),
        agent.generation(),
        agent.pending(),
        s.probes_sent,
        s.replies,
        s.cycles
    ));
}

fn main() {
    let seeds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut out = String::new();
    for seed in 0..seeds {
        out.push_str(&format!("== seed {seed}\n"));
        scenario(seed, &mut out);
    }
    print!("{out}");
}
