//! A virtual-clock harness: drives the sans-IO agent against scripted servers, jumping straight to the
//! next deadline or delivery, and records what was sent and what happened with exact milliseconds.
#![allow(dead_code)]

use std::net::SocketAddr;

use sip_failover::core::drive::{self, Ack, Io};
use sip_failover::core::{Agent, Command, Config, Event, Instant, Side, Transmit};

pub const PRIMARY: &str = "127.0.0.1:5060";
pub const BACKUP: &str = "127.0.0.2:5060";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn config() -> Config {
    Config::new(addr(PRIMARY), "pbx-a.example").with_backup(addr(BACKUP), "pbx-b.example")
}

/// What a scripted server does with one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// No reply.
    Drop,
    /// Reply with `status` after `delay_ms`.
    Reply { status: u16, delay_ms: u64 },
}

pub const OK: Answer = Answer::Reply { status: 200, delay_ms: 5 };

/// One probe as it left the agent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub t_ms: u64,
    pub server: Side,
    pub attempt: u8,
    pub destination: SocketAddr,
    pub text: String,
}

type Script = Box<dyn FnMut(u64, Side, u8) -> Answer>;

pub struct Lab {
    pub agent: Agent,
    pub now: Instant,
    pub sent: Vec<Sent>,
    pub events: Vec<(u64, Event)>,
    /// Datagrams in flight: (delivery time in µs, from, bytes).
    pub inflight: Vec<(u64, SocketAddr, Vec<u8>)>,
    script: Script,
    /// Whether switches are acknowledged as applied at once.
    pub auto_apply: bool,
    /// Acknowledge switches as failed instead.
    pub fail_apply: bool,
    /// Addresses that never answer, whatever the script says.
    pub dead: Vec<SocketAddr>,
}

/// The lab's side of a drain: answers each probe by the script, records probes and events.
struct Recorder<'a> {
    sent: &'a mut Vec<Sent>,
    events: &'a mut Vec<(u64, Event)>,
    inflight: &'a mut Vec<(u64, SocketAddr, Vec<u8>)>,
    script: &'a mut Script,
    dead: &'a [SocketAddr],
    ack: Ack,
}

impl Io for Recorder<'_> {
    fn transmit(&mut self, now: Instant, t: &Transmit, bytes: &[u8]) -> drive::Sent {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let ms = now.as_millis();
        let answer = (self.script)(ms, t.server, t.attempt);
        if let (Answer::Reply { status, delay_ms }, false) = (answer, self.dead.contains(&t.destination)) {
            let at = now.as_micros() + delay_ms * 1000;
            self.inflight.push((at, t.destination, response_to(&text, status).into_bytes()));
        }
        self.sent.push(Sent { t_ms: ms, server: t.server, attempt: t.attempt, destination: t.destination, text });
        drive::Sent::Sent
    }

    fn event(&mut self, now: Instant, e: &Event) -> Ack {
        self.events.push((now.as_millis(), *e));
        if matches!(e, Event::Switch { .. }) {
            self.ack
        } else {
            Ack::None
        }
    }
}

impl Lab {
    pub fn new(config: Config, script: impl FnMut(u64, Side, u8) -> Answer + 'static) -> Lab {
        Lab::with_agent(Agent::new(config, Instant::ZERO, 7).unwrap(), script)
    }

    /// A lab in which the addresses `dead` never answer, from the first probe on.
    pub fn with_dead(config: Config, dead: &[&str], script: impl FnMut(u64, Side, u8) -> Answer + 'static) -> Lab {
        let mut lab = Lab::with_agent_undrained(Agent::new(config, Instant::ZERO, 7).unwrap(), script);
        lab.dead = dead.iter().map(|a| addr(a)).collect();
        lab.drain();
        lab
    }

    /// A lab around an agent made elsewhere (resumed from a snapshot, say), its clock at zero.
    pub fn with_agent(agent: Agent, script: impl FnMut(u64, Side, u8) -> Answer + 'static) -> Lab {
        let mut lab = Lab::with_agent_undrained(agent, script);
        lab.drain();
        lab
    }

    fn with_agent_undrained(agent: Agent, script: impl FnMut(u64, Side, u8) -> Answer + 'static) -> Lab {
        Lab {
            agent,
            now: Instant::ZERO,
            sent: vec![],
            events: vec![],
            inflight: vec![],
            script: Box::new(script),
            auto_apply: true,
            fail_apply: false,
            dead: vec![],
        }
    }

    pub fn ms(&self) -> u64 {
        self.now.as_millis()
    }

    /// Drains transmits (answering each by the script) and events, acknowledging switches.
    pub fn drain(&mut self) {
        let ack = if self.fail_apply {
            Ack::Failed
        } else if self.auto_apply {
            Ack::Applied
        } else {
            Ack::None
        };
        let Lab { agent, now, sent, events, inflight, script, dead, .. } = self;
        let mut io = Recorder { sent, events, inflight, script, dead, ack };
        drive::drain(agent, *now, &mut [0u8; 1500], &mut io);
    }

    /// Injects a datagram now.
    pub fn inject(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.agent.handle_datagram(self.now, from, bytes);
        self.drain();
    }

    pub fn command(&mut self, cmd: Command) {
        self.agent.handle_command(self.now, cmd).unwrap();
        self.drain();
    }

    /// Runs on virtual time until `end_ms` (inclusive), jumping from deadline to deadline.
    pub fn run_until(&mut self, end_ms: u64) {
        let end = end_ms * 1000;
        for _ in 0..10_000_000 {
            let timer = self.agent.poll_timeout().map(|t| t.as_micros());
            let delivery = self.inflight.iter().map(|d| d.0).min();
            let next = match (timer, delivery) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(u64::MAX),
            };
            if next > end {
                self.now = Instant::from_micros(end.max(self.now.as_micros()));
                self.agent.handle_timeout(self.now);
                self.drain();
                return;
            }
            self.now = Instant::from_micros(next.max(self.now.as_micros()));
            if delivery == Some(next) {
                let i = self.inflight.iter().position(|d| d.0 == next).unwrap();
                let (_, from, bytes) = self.inflight.remove(i);
                self.agent.handle_datagram(self.now, from, &bytes);
            } else {
                self.agent.handle_timeout(self.now);
            }
            self.drain();
        }
        panic!("virtual clock did not reach {end_ms} ms");
    }

    /// The (time, server, attempt) of every probe sent.
    pub fn probes(&self) -> Vec<(u64, Side, u8)> {
        self.sent.iter().map(|s| (s.t_ms, s.server, s.attempt)).collect()
    }

    pub fn probes_to(&self, side: Side) -> Vec<(u64, u8)> {
        self.sent.iter().filter(|s| s.server == side).map(|s| (s.t_ms, s.attempt)).collect()
    }

    /// Every switch: (time, from, to, reason name, generation).
    pub fn switches(&self) -> Vec<(u64, Side, Side, &'static str, u32)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Switch { from, to, reason, generation } => Some((*t, *from, *to, reason.as_str(), *generation)),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| pred(e)).count()
    }
}

/// Builds a response to a request by echoing its Via, From, To, Call-ID and CSeq lines: a server's
/// behaviour written without the crate's own parser.
pub fn response_to(request: &str, status: u16) -> String {
    let mut out = format!("SIP/2.0 {status} {}\r\n", reason(status));
    for line in request.split("\r\n") {
        let name = line.split(':').next().unwrap_or("");
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" => out.push_str(&format!("{line}\r\n")),
            "To" => out.push_str(&format!("{line};tag=srv1\r\n")),
            _ => {}
        }
    }
    if status == 503 {
        out.push_str("Retry-After: 300\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        408 => "Request Timeout",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// Replaces the value of header `name` in `msg`.
pub fn with_header(msg: &str, name: &str, value: &str) -> String {
    msg.split("\r\n")
        .map(|l| if l.starts_with(&format!("{name}:")) { format!("{name}: {value}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\r\n")
}
