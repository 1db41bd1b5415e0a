//! The agent driven like a driver drives it, by structured sequences of time steps, datagrams, stream
//! flow reports, bytes read from flows and commands. After every input the outputs are drained in the
//! documented order (`poll_flow`, then `poll_transmit`, then `poll_event`, each until `None`) and the
//! invariants of `tests/core_properties.rs` are checked, with more that the property test does not
//! reach:
//!
//! - no panic, and no event lost by a caller that drains after every input;
//! - the wake-up is never in the past, and after `handle_timeout` it is in the future;
//! - generations only grow: every `Switch` carries a newer one, a pending one is newer than the one in
//!   force, and an `Applied` puts exactly the pending side and generation in force;
//! - a switch never leaves a side for itself, never targets a disabled backup, never happens by policy
//!   while a side is forced, and a planned switch or failback never lands on a server inside a planned
//!   window;
//! - probes and flows go only to one of the server's addresses (its next hop and the alternates the
//!   input gave it);
//! - a datagram counts as a reply only if it came from one of the server's addresses and carries the Call-ID,
//!   branch and CSeq of a probe of the current cycle that is still waiting, and at most once per cycle;
//!   a datagram that does not count changes nothing but the ignored counters and events;
//! - an unmodified final reply to a probe that is still waiting, from the right address, always counts;
//! - a command or a configuration that is refused changes nothing;
//! - streams (each side UDP, TCP or TLS): a flow is asked for only for a stream side, to one of its addresses
//!   over its transport, with the next id, never while the caller still holds one; a close names the
//!   flow the caller holds, for a reason of the agent's own, and comes with a `FlowDown`; no bytes for a
//!   stream side whose flow is not connected, a keep-alive ping only on a connected flow with
//!   keep-alive on; a report on a flow the agent does not wait for (an older id, a UDP side) changes
//!   nothing; a datagram never counts for a stream side, nor a message read from a flow for a UDP
//!   side; a genuine reply read from the side's flow to a waiting probe counts.
//!
//! Datagrams are real replies built from the probes the agent sent (the Via, From, To, Call-ID and
//! CSeq echoed, as a server does), optionally forged (branch, Call-ID, CSeq number or method, source
//! address) or mangled (truncated, bytes flipped, bytes inserted, bare LF line ends). On a flow the
//! same replies, or any bytes, are appended to what was read before, in two reads, and framed with
//! `core::frame` as a caller does: whole messages go to `handle_message`, a pong is reported, and a
//! stream that cannot be framed is dropped and reported as `FlowError::Framing`.
#![no_main]

use std::net::SocketAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sip_failover::core::flow::PING;
use sip_failover::core::wire::parse_response;
use sip_failover::core::{
    frame, Agent, Command, Config, Duration, Event, FailbackMode, FlowCommand, FlowError, FlowEvent, Frame, Instant,
    Ladder, ServerConfig, Side, Snapshot, SwitchReason, TlsError, Transport, MAX_ATTEMPTS,
};

const PRIMARY: &str = "127.0.0.1:5060";
const BACKUP: &str = "127.0.0.2:5060";
const PRIMARY_PROXY: &str = "192.0.2.7:5080";
const BACKUP_PROXY: &str = "[2001:db8::9]:5060";
const STRANGER: &str = "198.51.100.3:5060";
/// Further addresses of each server (its next SRV targets), as many as the input picks.
const ALTERNATES: [[&str; 2]; 2] = [["127.0.0.3:5060", "127.0.0.4:5062"], ["127.0.0.5:5060", "[::1]:5070"]];

/// The generation after `g`: generations count up and wrap from `u32::MAX` to 1.
fn next_generation(g: u32) -> u32 {
    g.checked_add(1).unwrap_or(1)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn side(b: bool) -> Side {
    if b {
        Side::Backup
    } else {
        Side::Primary
    }
}

/// A configuration chosen by the input. Some are invalid on purpose (a zero interval, a ladder longer
/// than the interval, failback after zero cycles): the agent must refuse them whole.
#[derive(Arbitrary, Debug, Clone)]
struct ConfigPick {
    backup: bool,
    proxies: bool,
    keep_alive: bool,
    interval_s: u8,
    ladder_ms: Vec<u16>,
    failback: u8,
    failback_after: u8,
    spread_s: u8,
    fast_refused: bool,
    fast_transaction: bool,
    planned_lead_s: u16,
    /// Each side's transport: UDP, TCP or TLS (modulo 3).
    transports: [u8; 2],
    /// The flow keep-alive interval: 0 off, under 1000 invalid on purpose.
    flow_keepalive_ms: u16,
    /// How many further addresses each server has (modulo 3).
    alternates: [u8; 2],
}

fn transport(pick: u8) -> Transport {
    match pick % 3 {
        0 => Transport::Udp,
        1 => Transport::Tcp,
        _ => Transport::Tls,
    }
}

impl ConfigPick {
    fn build(&self) -> Config {
        let mut c = Config::new(addr(PRIMARY), "pbx-a.example");
        if self.backup {
            c = c.with_backup(addr(BACKUP), "pbx-b.example");
        }
        if self.proxies {
            c.primary.next_hop = addr(PRIMARY_PROXY);
            if let Some(b) = c.backup.as_mut() {
                b.next_hop = addr(BACKUP_PROXY);
            }
        }
        for (i, n) in self.alternates.iter().enumerate() {
            let server = if i == 0 { Some(&mut c.primary) } else { c.backup.as_mut() };
            if let Some(server) = server {
                for (slot, a) in server.alternates.iter_mut().zip(ALTERNATES[i]).take(usize::from(n % 3)) {
                    *slot = Some(addr(a));
                }
            }
        }
        c.keep_alive = self.keep_alive;
        c.interval = Duration::from_secs(u64::from(self.interval_s % 40));
        let waits: Vec<Duration> =
            self.ladder_ms.iter().take(6).map(|ms| Duration::from_millis(u64::from(*ms % 10_000))).collect();
        if let Some(l) = Ladder::new(&waits) {
            c.ladder = l;
        }
        c.failback.mode = match self.failback % 3 {
            0 => FailbackMode::Auto,
            1 => FailbackMode::Manual,
            _ => FailbackMode::Never,
        };
        if let Some(n) = core::num::NonZeroU8::new(self.failback_after % 5) {
            c.failback.after_cycles = n;
        }
        c.failback.spread = Duration::from_secs(u64::from(self.spread_s % 60));
        c.fast.refused_ends_attempt = self.fast_refused;
        c.fast.transaction_failure_probes = self.fast_transaction;
        c.planned_lead = Duration::from_secs(u64::from(self.planned_lead_s % 3600));
        c.primary.transport = transport(self.transports[0]);
        if let Some(b) = c.backup.as_mut() {
            b.transport = transport(self.transports[1]);
        }
        c.flow_keepalive = Duration::from_millis(u64::from(self.flow_keepalive_ms));
        c
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Status {
    Ok,
    Trying,
    Ringing,
    Unavailable,
    RequestTimeout,
    NotFound,
    Other(u16),
}

impl Status {
    fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::Trying => 100,
            Status::Ringing => 180,
            Status::Unavailable => 503,
            Status::RequestTimeout => 408,
            Status::NotFound => 404,
            Status::Other(c) => 100 + c % 600,
        }
    }
}

/// What is done to a real reply before it is delivered.
#[derive(Arbitrary, Debug, Clone)]
enum Forge {
    None,
    /// One character of the branch (after the cookie) replaced.
    Branch {
        at: u8,
        with: u8,
    },
    /// The magic cookie removed.
    BranchCookie,
    /// One character of the Call-ID replaced.
    CallId {
        at: u8,
        with: u8,
    },
    /// Another CSeq number.
    CSeq(u32),
    /// Another CSeq method.
    Method,
    /// Sent from another address.
    Source(u8),
    /// Cut short.
    Truncate(u16),
    /// One byte anywhere changed.
    Flip {
        at: u16,
        xor: u8,
    },
    /// Bytes inserted anywhere.
    Insert {
        at: u16,
        bytes: Vec<u8>,
    },
    /// Bare LF line ends.
    BareLf,
}

#[derive(Arbitrary, Debug, Clone)]
enum Step {
    /// Time passes by up to about a minute.
    Advance(u16),
    /// Time jumps by up to about 50 days.
    Jump(u32),
    /// The next input is handed a time this many ms before the agent's latest.
    Back(u16),
    /// A reply to one of the probes sent to a side (`age` 0 is the latest).
    Reply {
        backup: bool,
        age: u8,
        status: Status,
        forge: Forge,
    },
    /// The same reply twice.
    Duplicate {
        backup: bool,
        status: Status,
    },
    /// Bytes from a server's address.
    Garbage {
        backup: bool,
        bytes: Vec<u8>,
    },
    Refused(bool),
    Force(bool),
    Release,
    Failback,
    Pause,
    Resume,
    InCall(bool),
    /// Acknowledge the pending generation, or any other.
    Applied {
        pending: bool,
        generation: u32,
    },
    ApplyFailed {
        pending: bool,
        generation: u32,
    },
    TransactionFailed,
    LocalAddr {
        backup: bool,
        port: u16,
    },
    /// A window on a side, starting `start_s` seconds from now (negative: already started).
    PlannedWindow {
        backup: bool,
        start_s: i16,
        len_s: u16,
    },
    ClearPlannedWindows,
    UpdateConfig(ConfigPick),
    /// The caller's report on a side's flow: the one it holds, or (`stale`) an id that many before it.
    Flow {
        backup: bool,
        stale: Option<u8>,
        report: Report,
    },
    /// A reply to one of the probes sent to a side, read from its flow in two reads cut at `cut`.
    Message {
        backup: bool,
        age: u8,
        status: Status,
        forge: Forge,
        cut: u16,
    },
    /// Bytes read from a side's flow.
    Read {
        backup: bool,
        bytes: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Report {
    Connected,
    Failed(FlowErrorPick),
    Pong,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FlowErrorPick {
    Refused,
    ConnectTimeout,
    Tls(u8),
    Closed,
    Framing,
    AttemptTimedOut,
    KeepAliveLost,
    Reconfigured,
}

impl FlowErrorPick {
    fn error(self) -> FlowError {
        match self {
            FlowErrorPick::Refused => FlowError::Refused,
            FlowErrorPick::ConnectTimeout => FlowError::ConnectTimeout,
            FlowErrorPick::Tls(t) => FlowError::Tls(match t % 6 {
                0 => TlsError::UnknownIssuer,
                1 => TlsError::Expired,
                2 => TlsError::NameMismatch,
                3 => TlsError::WildcardRefused,
                4 => TlsError::HandshakeTimeout,
                _ => TlsError::Other,
            }),
            FlowErrorPick::Closed => FlowError::Closed,
            FlowErrorPick::Framing => FlowError::Framing,
            FlowErrorPick::AttemptTimedOut => FlowError::AttemptTimedOut,
            FlowErrorPick::KeepAliveLost => FlowError::KeepAliveLost,
            FlowErrorPick::Reconfigured => FlowError::Reconfigured,
        }
    }
}

/// How bytes reached the agent: a datagram from an address, or a message read from a side's flow.
#[derive(Debug, Clone, Copy)]
enum Via {
    Datagram(SocketAddr),
    Flow(Side),
}

/// A stream flow the caller holds, as the agent asked for it.
#[derive(Debug, Clone)]
struct Held {
    id: u16,
    connected: bool,
    /// Bytes read from it, not yet framed.
    rx: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: ConfigPick,
    seed: u64,
    resume: Option<(bool, u32, Option<bool>, bool)>,
    steps: Vec<Step>,
}

/// A probe as it left the agent.
#[derive(Debug, Clone)]
struct Sent {
    /// The agent's cycle count when it left (`Stats::cycles`).
    cycle: u32,
    attempt: u8,
    text: String,
    destination: SocketAddr,
}

/// The fields that make a reply match a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    branch: Vec<u8>,
    call_id: Vec<u8>,
    cseq: u32,
}

fn header<'a>(text: &'a str, name: &str) -> &'a str {
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("probe without {name}: {text}"))
}

/// The branch, Call-ID and CSeq number of a probe, read from its text without the crate's parser.
fn probe_key(text: &str) -> Key {
    let via = header(text, "Via");
    let branch = via.split(';').find_map(|p| p.trim().strip_prefix("branch=")).expect("branch");
    let cseq = header(text, "CSeq").split_whitespace().next().unwrap().parse().unwrap();
    Key { branch: branch.as_bytes().to_vec(), call_id: header(text, "Call-ID").as_bytes().to_vec(), cseq }
}

/// A server's reply to `request`: the Via, From, Call-ID and CSeq echoed, a To tag added.
fn response_to(request: &str, status: u16) -> String {
    let mut out = format!("SIP/2.0 {status} Whatever\r\n");
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

/// Replaces the character at `at` (modulo its length) of header `name`'s value segment that starts
/// after `after`.
fn replace_in(resp: &mut Vec<u8>, name: &str, after: &str, at: u8, with: u8) {
    let text = String::from_utf8_lossy(resp).into_owned();
    let Some(line_start) = text.find(&format!("\r\n{name}:")) else { return };
    let Some(rel) = text[line_start..].find(after) else { return };
    let start = line_start + rel + after.len();
    let end = text[start..].find([';', '\r']).map_or(text.len(), |e| start + e);
    if end > start {
        let i = start + usize::from(at) % (end - start);
        resp[i] = with;
    }
}

fn forge(resp: String, f: &Forge) -> (Vec<u8>, bool) {
    let mut b = resp.clone().into_bytes();
    let mut forged_source = false;
    match f {
        Forge::None => {}
        Forge::Branch { at, with } => replace_in(&mut b, "Via", "branch=z9hG4bK", *at, *with),
        Forge::BranchCookie => b = resp.replacen("branch=z9hG4bK", "branch=", 1).into_bytes(),
        Forge::CallId { at, with } => replace_in(&mut b, "Call-ID", ": ", *at, *with),
        Forge::CSeq(n) => {
            let text: Vec<String> = resp
                .split("\r\n")
                .map(|l| if l.starts_with("CSeq:") { format!("CSeq: {n} OPTIONS") } else { l.to_string() })
                .collect();
            b = text.join("\r\n").into_bytes();
        }
        Forge::Method => b = resp.replace(" OPTIONS\r\n", " INVITE\r\n").into_bytes(),
        Forge::Source(_) => forged_source = true,
        Forge::Truncate(n) => b.truncate(usize::from(*n) % (b.len() + 1)),
        Forge::Flip { at, xor } => {
            let i = usize::from(*at) % b.len();
            b[i] ^= xor;
        }
        Forge::Insert { at, bytes } => {
            let i = usize::from(*at) % (b.len() + 1);
            b.splice(i..i, bytes.iter().copied().take(64));
        }
        Forge::BareLf => b = resp.replace("\r\n", "\n").into_bytes(),
    }
    (b, forged_source)
}

/// What the harness knows of one side's probing, from the outputs alone.
#[derive(Debug, Default, Clone)]
struct Track {
    sent: Vec<Sent>,
    /// A probe of the current cycle waits for its answer.
    waiting: bool,
}

struct Harness {
    agent: Agent,
    /// The agent's latest time.
    now: Instant,
    /// The time handed to the next input (earlier than `now` after a `Back` step).
    input_now: Instant,
    track: [Track; 2],
    last_switch_gen: u32,
    /// Planned windows the agent accepted (side, start, end).
    windows: Vec<(Side, Instant, Instant)>,
    /// A switch failed to apply since the last cycle started: the policy waits for the next cycle.
    apply_held: bool,
    buf: [u8; 1500],
    /// The stream flow the caller holds for each side.
    flows: [Option<Held>; 2],
    /// The id of the flow last asked for, per side.
    last_id: [Option<u16>; 2],
    /// The flows the agent closed in the latest drain, and why.
    closed: Vec<(Side, FlowError)>,
    /// The cycle (`Stats::cycles`) in which a configuration was last accepted.
    reconfigured_in: Option<u32>,
}

/// The agent's observable state, compared across inputs that must change nothing.
#[derive(Debug, PartialEq)]
struct Observed {
    snapshot: Snapshot,
    pending: Option<(Side, u32)>,
    generation: u32,
    up: [Option<bool>; 2],
    timeout: Option<Instant>,
    paused: bool,
    in_call: bool,
    next_cycle: Option<Instant>,
    replies: u32,
    probes_sent: u32,
    cycles: u32,
}

impl Harness {
    fn observe(&self) -> Observed {
        let a = &self.agent;
        let s = a.stats();
        Observed {
            snapshot: a.snapshot(),
            pending: a.pending(),
            generation: a.generation(),
            up: [a.is_up(Side::Primary), a.is_up(Side::Backup)],
            timeout: a.poll_timeout(),
            paused: a.is_paused(),
            in_call: a.in_call(),
            next_cycle: a.next_cycle(),
            replies: s.replies,
            probes_sent: s.probes_sent,
            cycles: s.cycles,
        }
    }

    fn in_window(&self, side: Side, at: Instant) -> bool {
        self.windows.iter().any(|(s, start, end)| *s == side && *start <= at && at < *end)
    }

    /// Drains flow commands, transmits and events, checking each; returns the events.
    fn drain(&mut self) -> Vec<Event> {
        let now = self.input_now;
        self.closed.clear();
        while let Some(cmd) = self.agent.poll_flow() {
            match cmd {
                FlowCommand::Open { server, id, destination, transport } => {
                    let config = self.agent.config();
                    let s = config.server(server).expect("a flow to a server that is not configured");
                    assert!(transport.is_stream(), "a flow over {transport}");
                    assert_eq!(transport, s.transport, "a flow over another transport than the server's");
                    assert!(s.hop_index(destination).is_some(), "a flow not to one of the server's addresses");
                    assert!(!self.agent.is_paused(), "a flow asked for while paused");
                    let i = server.index();
                    assert!(self.flows[i].is_none(), "a new flow to {server} while the caller holds one");
                    assert_eq!(id, self.last_id[i].unwrap_or(0).wrapping_add(1), "flow ids are not in sequence");
                    self.last_id[i] = Some(id);
                    self.flows[i] = Some(Held { id, connected: false, rx: Vec::new() });
                }
                FlowCommand::Close { server, id, reason } => {
                    let held = self.flows[server.index()].take();
                    let held = held.unwrap_or_else(|| panic!("close of a flow to {server} the caller does not hold"));
                    assert_eq!(held.id, id, "close of another flow than the one held");
                    assert!(
                        matches!(
                            reason,
                            FlowError::AttemptTimedOut | FlowError::KeepAliveLost | FlowError::Reconfigured
                        ),
                        "the agent closed a flow for {reason:?}"
                    );
                    self.closed.push((server, reason));
                }
            }
        }
        while let Some(t) = self.agent.poll_transmit(now, &mut self.buf).expect("1500 bytes hold a probe") {
            let config = self.agent.config();
            let server = config.server(t.server).expect("a probe to a server that is not configured");
            assert!(server.hop_index(t.destination).is_some(), "probe not sent to one of the server's addresses");
            assert_eq!(t.transport, server.transport, "probe not over the server's transport");
            assert!(!self.agent.is_paused(), "probe sent while paused");
            if server.transport.is_stream() {
                let open = self.flows[t.server.index()].as_ref().is_some_and(|h| h.connected);
                assert!(open, "bytes for {} whose flow is not open", t.server);
            }
            if t.attempt == 0 {
                assert!(server.transport.is_stream(), "a keep-alive ping over UDP");
                assert_eq!(&self.buf[..t.len], PING, "attempt 0 that is not a ping");
                assert_ne!(config.flow_keepalive, Duration::ZERO, "a ping with keep-alive off");
                continue;
            }
            // A ladder that was running when a configuration shortened it goes on with its own numbering:
            // on a stream an attempt may wait for its flow across the update, and is sent after it.
            let reconfigured = self.reconfigured_in == Some(self.agent.stats().cycles);
            assert!(
                t.attempt <= config.ladder.attempts() || (reconfigured && usize::from(t.attempt) <= MAX_ATTEMPTS),
                "attempt {} off the ladder",
                t.attempt
            );
            let text = std::str::from_utf8(&self.buf[..t.len]).expect("probe is text").to_string();
            // `waiting` follows the events, in their order (a timeout of the old cycle comes before
            // the new cycle's probe); the cycle is the agent's count when the probe left.
            let cycle = self.agent.stats().cycles;
            let tr = &mut self.track[t.server.index()];
            tr.sent.push(Sent { cycle, attempt: t.attempt, text, destination: t.destination });
            if tr.sent.len() > 32 {
                tr.sent.remove(0);
            }
        }
        let mut events = Vec::new();
        while let Some(e) = self.agent.poll_event() {
            events.push(e);
        }
        assert_eq!(self.agent.stats().events_dropped, 0, "events lost by a caller that drains after every input");
        events
    }

    /// Applies what the events say to the tracking and checks the invariants tied to them.
    fn check_events(&mut self, events: &[Event], forced_before: Option<Side>, step: &Step) {
        let attempts = self.agent.config().ladder.attempts();
        for e in events {
            match *e {
                Event::Switch { from, to, reason, generation } => {
                    assert_eq!(
                        generation,
                        next_generation(self.last_switch_gen),
                        "switch generation {generation} does not follow {}",
                        self.last_switch_gen
                    );
                    self.last_switch_gen = generation;
                    assert_ne!(from, to, "switch from a side to itself");
                    if to == Side::Backup {
                        assert!(self.agent.config().backup.is_some(), "switch to a disabled backup");
                    }
                    let automatic =
                        matches!(reason, SwitchReason::Failover | SwitchReason::Failback | SwitchReason::Planned);
                    if automatic {
                        assert_eq!(self.agent.forced(), None, "{reason:?} switch while forced");
                        assert!(
                            // Release ends a force; Failback ends a force to the backup; a configuration
                            // without a backup ends a force to it.
                            forced_before.is_none()
                                || matches!(step, Step::Release | Step::Failback | Step::UpdateConfig(_)),
                            "{reason:?} switch while forced to {forced_before:?}"
                        );
                    }
                    if matches!(reason, SwitchReason::Planned | SwitchReason::Failback) {
                        assert!(!self.in_window(to, self.now), "{reason:?} switch onto {to} inside its window");
                    }
                }
                Event::AttemptTimedOut { server, attempt } | Event::AttemptRefused { server, attempt } => {
                    // The ladder goes on, or it is over. On a stream an attempt may end before its
                    // flow connected, so the ladder can run with no probe sent yet this cycle.
                    self.track[server.index()].waiting = attempt < attempts;
                }
                Event::ApplyFailed { .. } => self.apply_held = true,
                Event::ProbeSent { server, attempt, .. } => {
                    if attempt == 1 {
                        self.apply_held = false;
                    }
                    let tr = &mut self.track[server.index()];
                    assert!(attempt == 1 || tr.waiting, "attempt {attempt} sent with no ladder running");
                    tr.waiting = true;
                }
                Event::FlowUp { server } => {
                    assert!(
                        matches!(step, Step::Flow { report: Report::Connected, backup, .. } if side(*backup) == server),
                        "{e:?} without a connect reported"
                    );
                }
                Event::FlowDown { server, reason } => {
                    let reported = match step {
                        Step::Flow { report: Report::Failed(f), backup, .. } => {
                            side(*backup) == server && f.error() == reason
                        }
                        Step::Message { backup, .. } | Step::Read { backup, .. } => {
                            side(*backup) == server && reason == FlowError::Framing
                        }
                        _ => false,
                    };
                    assert!(reported || self.closed.contains(&(server, reason)), "{e:?} neither reported nor closed");
                }
                Event::ProbingPaused => {
                    for t in &mut self.track {
                        t.waiting = false;
                    }
                }
                Event::Reply { .. } => {
                    assert!(matches!(
                        step,
                        Step::Reply { .. }
                            | Step::Duplicate { .. }
                            | Step::Garbage { .. }
                            | Step::Message { .. }
                            | Step::Read { .. }
                    ));
                }
                _ => {}
            }
        }
    }

    fn check_after(&self, after_timeout: bool) {
        if let Some(t) = self.agent.poll_timeout() {
            assert!(t >= self.now, "wake-up {t:?} in the past (now {:?})", self.now);
            if after_timeout {
                assert!(t > self.now, "wake-up {t:?} not after handle_timeout({:?})", self.now);
            }
        }
        if let Some((_, g)) = self.agent.pending() {
            // Generations wrap from u32::MAX to 1: the pending one differs from the one in force.
            assert_ne!(g, self.agent.generation(), "pending generation {g} is the one in force");
        }
        if self.agent.config().backup.is_none() && !self.apply_held {
            assert_eq!(self.agent.target(), Side::Primary, "heading to a disabled backup");
        }
    }

    /// Whether `via` is how replies from `side`'s server arrive now: a datagram from one of its addresses over
    /// UDP, a message on its own flow over TCP or TLS.
    fn reaches(&self, via: Via, side: Side) -> bool {
        let Some(c) = self.agent.config().server(side) else { return false };
        match via {
            Via::Datagram(from) => !c.transport.is_stream() && c.hop_index(from).is_some(),
            Via::Flow(s) => c.transport.is_stream() && s == side,
        }
    }

    /// Delivers a datagram, or a message read from a flow, and checks that it counts exactly when it
    /// should.
    fn deliver(&mut self, via: Via, bytes: &[u8], genuine: Option<(Side, &Sent, u16)>, step: &Step) {
        let before = self.observe();
        let forced = self.agent.forced();
        let ignored_before: u32 = self.agent.stats().ignored.iter().sum();
        let cycle = self.agent.stats().cycles;
        match via {
            Via::Datagram(from) => self.agent.handle_datagram(self.input_now, from, bytes),
            Via::Flow(side) => self.agent.handle_message(self.input_now, side, bytes),
        }
        let events = self.drain();
        let after_replies = self.agent.stats().replies;
        if after_replies == before.replies {
            // Not taken: nothing changes but one ignored count and one event saying why.
            assert_eq!(self.observe(), before, "an ignored datagram changed the agent");
            assert_eq!(self.agent.stats().ignored.iter().sum::<u32>(), ignored_before + 1);
            assert!(
                events.len() == 1 && matches!(events[0], Event::Ignored { .. }),
                "an ignored datagram gave {events:?}"
            );
            if let Some((s, sent, status)) = genuine {
                let tr = &self.track[s.index()];
                let should = status >= 200 && sent.cycle == cycle && tr.waiting && self.reaches(via, s);
                assert!(!should, "a genuine reply to a waiting probe was ignored: {events:?}");
            }
        } else {
            assert_eq!(after_replies, before.replies + 1);
            let Some(&Event::Reply { server, attempt, status, .. }) =
                events.iter().find(|e| matches!(e, Event::Reply { .. }))
            else {
                panic!("a reply counted without a Reply event: {events:?}")
            };
            // A datagram never counts for a stream side, nor a message on a flow for a UDP side.
            assert!(self.reaches(via, server), "reply by {via:?} counted for {server}");
            let tr = &self.track[server.index()];
            assert!(tr.waiting, "a reply counted for {server} with no probe waiting");
            let sent = tr
                .sent
                .iter()
                .rev()
                .find(|p| p.cycle == cycle && p.attempt == attempt)
                .unwrap_or_else(|| panic!("reply counted for attempt {attempt} never sent this cycle"));
            let want = probe_key(&sent.text);
            let got = parse_response(bytes).expect("a counted reply parses");
            assert_eq!(got.status, status);
            assert!(status >= 200, "provisional reply counted");
            assert!(
                got.branch.eq_ignore_ascii_case(&want.branch)
                    && got.call_id.eq_ignore_ascii_case(&want.call_id)
                    && got.cseq == want.cseq
                    && got.cseq_method == b"OPTIONS",
                "counted reply does not match probe {want:?}: {got:?}"
            );
            self.track[server.index()].waiting = false;
            self.check_events(&events, forced, step);
        }
        self.check_after(false);
    }

    fn command(&mut self, cmd: Command, step: &Step) -> bool {
        let before = self.observe();
        let config_before = *self.agent.config();
        let forced = self.agent.forced();
        let pending = self.agent.pending();
        let r = self.agent.handle_command(self.input_now, cmd);
        let events = self.drain();
        match r {
            Err(_) => {
                assert_eq!(self.observe(), before, "refused {cmd:?} changed the agent");
                assert_eq!(*self.agent.config(), config_before);
                assert_eq!(self.agent.forced(), forced);
                assert!(events.is_empty(), "refused {cmd:?} gave {events:?}");
            }
            Ok(()) => {
                if let Command::Applied { generation } = cmd {
                    let (side, g) = pending.expect("Applied accepted with nothing pending");
                    assert_eq!(g, generation);
                    assert_eq!(self.agent.active(), side, "the side applied is not the side that was pending");
                    assert_eq!(self.agent.generation(), g);
                    assert!(events.contains(&Event::Applied { side, generation }));
                }
                if let Command::ApplyFailed { generation } = cmd {
                    assert_eq!(pending.map(|p| p.1), Some(generation));
                    assert_eq!(self.agent.active(), before.snapshot.active, "a failed apply changed the side");
                    assert_eq!(self.agent.generation(), before.generation);
                }
                self.check_events(&events, forced, step);
            }
        }
        self.check_after(false);
        r.is_ok()
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Advance(ms) => self.advance(Duration::from_millis(u64::from(*ms))),
            Step::Jump(ms) => self.advance(Duration::from_millis(u64::from(*ms))),
            Step::Back(ms) => {
                self.input_now = Instant::from_micros(self.now.as_micros().saturating_sub(u64::from(*ms) * 1000));
                return;
            }
            Step::Reply { backup, age, status, forge: f } => {
                let s = side(*backup);
                let tr = &self.track[s.index()];
                if tr.sent.is_empty() {
                    return;
                }
                let i = tr.sent.len() - 1 - usize::from(*age) % tr.sent.len();
                let sent = tr.sent[i].clone();
                let (bytes, forged_source) = forge(response_to(&sent.text, status.code()), f);
                let from = if forged_source {
                    let Forge::Source(k) = f else { unreachable!() };
                    let others: Vec<SocketAddr> = [PRIMARY, BACKUP, PRIMARY_PROXY, BACKUP_PROXY, STRANGER]
                        .iter()
                        .map(|a| addr(a))
                        .filter(|a| *a != sent.destination)
                        .collect();
                    others[usize::from(*k) % others.len()]
                } else {
                    sent.destination
                };
                let genuine = matches!(f, Forge::None).then_some((s, &sent, status.code()));
                self.deliver(Via::Datagram(from), &bytes, genuine, step);
            }
            Step::Duplicate { backup, status } => {
                let s = side(*backup);
                let Some(sent) = self.track[s.index()].sent.last().cloned() else { return };
                let bytes = response_to(&sent.text, status.code()).into_bytes();
                self.deliver(Via::Datagram(sent.destination), &bytes, Some((s, &sent, status.code())), step);
                // The second copy finds the probe answered.
                self.deliver(Via::Datagram(sent.destination), &bytes, None, step);
            }
            Step::Garbage { backup, bytes } => {
                let from = self.agent.config().server(side(*backup)).map_or(addr(STRANGER), |c| c.next_hop);
                self.deliver(Via::Datagram(from), bytes, None, step);
            }
            Step::Refused(b) => {
                let forced = self.agent.forced();
                self.agent.handle_refused(self.input_now, side(*b));
                let events = self.drain();
                self.check_events(&events, forced, step);
                self.check_after(false);
            }
            Step::Force(b) => {
                let ok = self.command(Command::Force(side(*b)), step);
                if ok {
                    assert_eq!(self.agent.forced(), Some(side(*b)));
                    assert_eq!(self.agent.target(), side(*b), "forced side is not the target");
                }
            }
            Step::Release => {
                self.command(Command::Release, step);
            }
            Step::Failback => {
                self.command(Command::Failback, step);
            }
            Step::Pause => {
                self.command(Command::Pause, step);
                assert!(self.agent.is_paused());
            }
            Step::Resume => {
                self.command(Command::Resume, step);
            }
            Step::InCall(c) => {
                self.command(Command::InCall(*c), step);
            }
            Step::Applied { pending, generation } => {
                let g = match (pending, self.agent.pending()) {
                    (true, Some((_, g))) => g,
                    _ => *generation,
                };
                self.command(Command::Applied { generation: g }, step);
            }
            Step::ApplyFailed { pending, generation } => {
                let g = match (pending, self.agent.pending()) {
                    (true, Some((_, g))) => g,
                    _ => *generation,
                };
                self.command(Command::ApplyFailed { generation: g }, step);
            }
            Step::TransactionFailed => {
                self.command(Command::TransactionFailed, step);
            }
            Step::LocalAddr { backup, port } => {
                let a = SocketAddr::new("10.0.0.2".parse().unwrap(), *port);
                self.command(Command::LocalAddr { side: side(*backup), addr: a }, step);
            }
            Step::PlannedWindow { backup, start_s, len_s } => {
                let base = self.input_now.as_micros() as i128;
                let start = (base + i128::from(*start_s) * 1_000_000).max(0) as u64;
                let start = Instant::from_micros(start);
                let end = Instant::from_micros(start.as_micros() + u64::from(*len_s) * 1_000_000);
                let s = side(*backup);
                if self.command(Command::PlannedWindow { side: s, start, end }, step)
                    && !self.windows.contains(&(s, start, end))
                {
                    self.windows.push((s, start, end));
                }
            }
            Step::ClearPlannedWindows => {
                // Forgotten before the command: the policy it runs no longer sees them.
                self.windows.clear();
                self.command(Command::ClearPlannedWindows, step);
            }
            Step::UpdateConfig(pick) => {
                let new = pick.build();
                let before = self.observe();
                let old = *self.agent.config();
                let forced = self.agent.forced();
                let had_backup = old.backup.is_some();
                let r = self.agent.update_config(self.input_now, new);
                if r.is_ok() {
                    self.reconfigured_in = Some(self.agent.stats().cycles);
                }
                let events = self.drain();
                match r {
                    Err(_) => {
                        assert!(new.validate().is_err());
                        assert_eq!(*self.agent.config(), old, "a refused configuration changed the running one");
                        assert_eq!(self.observe(), before, "a refused configuration changed the agent");
                        assert!(events.is_empty());
                    }
                    Ok(()) => {
                        let mut want = new;
                        // The bound local addresses are kept when the new configuration names none.
                        want.primary.local = self.agent.config().primary.local;
                        if let (Some(w), Some(got)) = (want.backup.as_mut(), self.agent.config().backup) {
                            w.local = got.local;
                        }
                        assert_eq!(*self.agent.config(), want);
                        if had_backup && new.backup.is_none() {
                            self.track[Side::Backup.index()].waiting = false;
                        }
                        for s in Side::BOTH {
                            let stream = self.agent.config().server(s).is_some_and(|c| c.transport.is_stream());
                            assert!(stream || self.flows[s.index()].is_none(), "a flow kept to {s}, now over UDP");
                        }
                        self.check_events(&events, forced, step);
                    }
                }
                self.check_after(false);
            }
            Step::Flow { backup, stale, report } => {
                let s = side(*backup);
                let current = self.flows[s.index()].as_ref().map(|h| h.id).or(self.last_id[s.index()]).unwrap_or(0);
                let id = match stale {
                    Some(k) => current.wrapping_sub(1 + u16::from(*k)),
                    None => current,
                };
                let event = match report {
                    Report::Connected => FlowEvent::Connected,
                    Report::Failed(f) => FlowEvent::Failed(f.error()),
                    Report::Pong => FlowEvent::Pong,
                };
                self.report(s, id, event, step);
            }
            Step::Message { backup, age, status, forge: f, cut } => {
                let s = side(*backup);
                let tr = &self.track[s.index()];
                if tr.sent.is_empty() {
                    return;
                }
                let i = tr.sent.len() - 1 - usize::from(*age) % tr.sent.len();
                let sent = tr.sent[i].clone();
                // A forged source means nothing on a flow: the bytes are the genuine reply.
                let (bytes, _) = forge(response_to(&sent.text, status.code()), f);
                let genuine = matches!(f, Forge::None | Forge::Source(_)).then_some((s, &sent, status.code()));
                self.read(s, &bytes, usize::from(*cut), genuine, step);
            }
            Step::Read { backup, bytes } => {
                self.read(side(*backup), bytes, bytes.len() / 2, None, step);
            }
        }
        self.input_now = self.now;
    }

    /// The caller reports `event` on flow `id` of `side`, and drops the flow it holds if it failed.
    fn report(&mut self, side: Side, id: u16, event: FlowEvent, step: &Step) {
        let i = side.index();
        let before = self.observe();
        let forced = self.agent.forced();
        let held = self.flows[i].as_ref().filter(|h| h.id == id).map(|h| h.connected);
        self.agent.handle_flow(self.input_now, side, id, event);
        match (event, held) {
            (FlowEvent::Connected, Some(_)) => self.flows[i].as_mut().unwrap().connected = true,
            (FlowEvent::Failed(_), Some(_)) => self.flows[i] = None,
            _ => {}
        }
        let events = self.drain();
        match (event, held) {
            (_, None) => {
                // Not the flow the agent waits for (an older id, none at all, a UDP side).
                assert_eq!(self.observe(), before, "a report on flow {id} of {side} changed the agent");
                assert!(events.is_empty(), "a report on flow {id} of {side} gave {events:?}");
            }
            (FlowEvent::Connected, Some(false)) => {
                assert!(events.contains(&Event::FlowUp { server: side }), "connected without FlowUp: {events:?}");
            }
            (FlowEvent::Failed(reason), Some(_)) => {
                assert!(
                    events.contains(&Event::FlowDown { server: side, reason }),
                    "failed without FlowDown: {events:?}"
                );
                assert_eq!(self.agent.stats().replies, before.replies, "a flow failure counted as a reply");
                if before.up[i] != Some(true) {
                    assert_ne!(self.agent.is_up(side), Some(true), "a flow failure made {side} alive");
                }
            }
            _ => {}
        }
        self.check_events(&events, forced, step);
        self.check_after(false);
    }

    /// `bytes` read from `side`'s flow in two reads cut at `cut`, framed as a caller does. `genuine`
    /// is checked for a message that is exactly `bytes`, read into an empty buffer.
    fn read(&mut self, side: Side, bytes: &[u8], cut: usize, genuine: Option<(Side, &Sent, u16)>, step: &Step) {
        let i = side.index();
        let stream = self.agent.config().server(side).is_some_and(|c| c.transport.is_stream());
        let Some(held) = self.flows[i].as_mut().filter(|h| h.connected) else {
            if !stream {
                // A caller with no flow to a UDP side cannot read one; handing such a message in
                // anyway must not count.
                self.deliver(Via::Flow(side), bytes, None, step);
            }
            return;
        };
        let id = held.id;
        let was_empty = held.rx.is_empty();
        let mut rx = std::mem::take(&mut held.rx);
        let (a, b) = bytes.split_at(cut % (bytes.len() + 1));
        for chunk in [a, b] {
            rx.extend_from_slice(chunk);
            // Each round consumes a unit of at least two bytes, or stops.
            loop {
                match frame(&rx) {
                    Ok(None) => break,
                    Ok(Some(Frame::Message(n))) => {
                        let msg: Vec<u8> = rx.drain(..n).collect();
                        let g = genuine.filter(|_| was_empty && msg == bytes);
                        self.deliver(Via::Flow(side), &msg, g, step);
                    }
                    Ok(Some(Frame::Pong(n))) => {
                        rx.drain(..n);
                        self.report(side, id, FlowEvent::Pong, step);
                    }
                    Err(_) => {
                        self.report(side, id, FlowEvent::Failed(FlowError::Framing), step);
                        return;
                    }
                }
                if self.flows[i].as_ref().is_none_or(|h| h.id != id) {
                    return;
                }
            }
        }
        if let Some(h) = self.flows[i].as_mut().filter(|h| h.id == id) {
            h.rx = rx;
        }
    }

    fn advance(&mut self, by: Duration) {
        let forced = self.agent.forced();
        self.now = Instant::from_micros(self.now.as_micros().saturating_add(by.as_micros()));
        self.input_now = self.now;
        let generation = self.agent.generation();
        self.agent.handle_timeout(self.now);
        let events = self.drain();
        assert_eq!(self.agent.generation(), generation, "time alone put a generation in force");
        self.check_events(&events, forced, &Step::Advance(0));
        self.check_after(true);
    }
}

fn run(input: Input) {
    let config = match input.config.build() {
        c if c.validate().is_ok() => c,
        _ => Config::new(addr(PRIMARY), "pbx-a.example").with_backup(addr(BACKUP), "pbx-b.example"),
    };
    assert_eq!(ServerConfig::UNBOUND, config.primary.local);
    let (agent, last_gen) = match input.resume {
        Some((active, generation, forced, failback_pending)) => {
            // A snapshot taken while a switch was being applied: `issued` runs ahead of `generation`.
            let issued = generation.wrapping_add(u32::from(failback_pending));
            let snap =
                Snapshot { active: side(active), generation, issued, forced: forced.map(side), failback_pending };
            let a = Agent::resume(config, Instant::ZERO, input.seed, snap).expect("valid configuration");
            (a, issued)
        }
        None => (Agent::new(config, Instant::ZERO, input.seed).expect("valid configuration"), 0),
    };
    let mut h = Harness {
        agent,
        now: Instant::ZERO,
        input_now: Instant::ZERO,
        track: Default::default(),
        last_switch_gen: last_gen,
        windows: Vec::new(),
        apply_held: false,
        buf: [0; 1500],
        flows: [None, None],
        last_id: [None, None],
        closed: Vec::new(),
        reconfigured_in: None,
    };
    let events = h.drain();
    h.check_events(&events, None, &Step::Advance(0));
    h.check_after(false);
    for step in input.steps.iter().take(400) {
        h.step(step);
    }
}

fuzz_target!(|input: Input| run(input));
