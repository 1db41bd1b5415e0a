//! The virtual-time runner: agents and the pair model in one event queue, on a clock that jumps from
//! one due item to the next. Seeded and exact, so hours of behaviour take seconds and a scenario's
//! outcome can be asserted to the microsecond.
//!
//! The network is ideal but for a fixed one-way latency; replies leave the model when it says
//! (its delay), requests to a closed port come back as a refusal one latency later.
//!
//! A TCP or TLS server is reached over flows the runner opens when the agent asks
//! ([`FlowCommand`]), as a driver would: a TCP connect completes one round trip after the open
//! (SYN, SYN-ACK), a TLS handshake one more round trip later (ClientHello, then the server's
//! certificate, verified on arrival). A refusal comes one round trip after the open; a reset, a bad
//! certificate two; a stalled handshake never. When a server starts resetting or restarts, its open
//! flows fail one latency later. Bytes coming back are appended to the flow's own buffer and cut into
//! messages by [`frame`], as a driver does; a framing error closes the flow.
//!
//! The scenario's phone steps reach every agent at their time (`Command::InCall`); a notice is
//! handed to every agent's planned windows as it is published, as a phone that polls its status page
//! without delay would take it (the real-time runner serves and polls a real page).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::SocketAddr;

use super::model::{Connect, PairModel, Reply};
use super::scenario::Scenario;
use super::summary::Tracker;
use super::timeline::{Record, Timeline, What};
use super::{phone_config, PairStats, RunOutput, SimError};
use crate::core::drive::{self, Ack, Io, Sent};
use crate::core::flow::PING;
use crate::core::{
    Agent, Command, Duration, Event, FlowCommand, FlowError, FlowEvent, Instant, Side, Transmit, Transport,
};

/// How a virtual run is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualOptions {
    /// How many phones (1 for the classic lab run).
    pub phones: usize,
    /// Keys every random source: the agents' and the pair's.
    pub seed: u64,
    /// The one-way network latency.
    pub one_way: Duration,
    /// Extra time after the scenario's end (fleets: to see late failbacks).
    pub extend: Duration,
}

impl Default for VirtualOptions {
    fn default() -> Self {
        VirtualOptions { phones: 1, seed: 1, one_way: Duration::from_micros(100), extend: Duration::ZERO }
    }
}

/// The primary's address in virtual runs (nothing is bound).
pub const VIRTUAL_PRIMARY: &str = "127.0.0.1:5060";
/// The backup's address in virtual runs.
pub const VIRTUAL_BACKUP: &str = "127.0.0.2:5060";

enum Item {
    Step,
    /// The phone's call starts (`true`) or ends: every phone's.
    Call(bool),
    /// Notice `scenario.notices[i]` is published.
    Notice(usize),
    Timer(u32),
    /// A datagram, or bytes on flow `flow`, reaching the server.
    ToPair {
        phone: u32,
        side: Side,
        bytes: Vec<u8>,
        flow: Option<u16>,
    },
    /// A datagram, or bytes on flow `flow`, reaching the phone.
    ToPhone {
        phone: u32,
        side: Side,
        bytes: Vec<u8>,
        flow: Option<u16>,
    },
    Refused {
        phone: u32,
        side: Side,
    },
    /// A connect (SYN) reaching the server.
    Connect {
        phone: u32,
        side: Side,
        id: u16,
    },
    /// What became of a flow, reaching the phone.
    Flow {
        phone: u32,
        side: Side,
        id: u16,
        ev: FlowEvent,
    },
}

/// A flow the phone holds open (or is opening) to one server.
struct SimFlow {
    id: u16,
    transport: Transport,
    /// Connected (for TLS: the handshake done); bytes flow only then.
    up: bool,
    /// The server dropped it: its failure is on the way; nothing more comes through it.
    doomed: bool,
    /// Bytes read, not yet framed.
    buf: Vec<u8>,
}

impl SimFlow {
    /// Whether this is flow `id` and the server has not dropped it.
    fn is_live(&self, id: u16) -> bool {
        self.id == id && !self.doomed
    }
}

/// What the agent asked for during one drain, in order.
enum Out {
    Flow(FlowCommand),
    Send(Side, Transport, Vec<u8>),
}

struct Entry {
    at: Instant,
    seq: u64,
    item: Item,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and the earliest (then the first queued) must come out first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

struct World<'a> {
    queue: BinaryHeap<Entry>,
    seq: u64,
    agents: Vec<Agent>,
    scheduled: Vec<Option<Instant>>,
    flows: Vec<[Option<SimFlow>; 2]>,
    pair: PairModel,
    tracker: Tracker,
    timeline: Timeline,
    stats: PairStats,
    one_way: Duration,
    addrs: [SocketAddr; 2],
    observer: &'a mut dyn FnMut(&Record),
}

impl World<'_> {
    fn push(&mut self, at: Instant, item: Item) {
        self.seq += 1;
        self.queue.push(Entry { at, seq: self.seq, item });
    }

    fn record(&mut self, phone: u32, t: Instant, what: What) {
        if phone == 0 {
            let r = Record { t, what };
            (self.observer)(&r);
            self.timeline.records.push(r);
        }
    }

    /// Drains phone `p` at `now`: transmits to the pair, events to the tracker, switches applied.
    fn drain(&mut self, p: u32, now: Instant) {
        #[derive(Default)]
        struct Collect {
            out: Vec<Out>,
            events: Vec<Event>,
        }
        impl Io for Collect {
            fn transmit(&mut self, _: Instant, t: &Transmit, bytes: &[u8]) -> Sent {
                self.out.push(Out::Send(t.server, t.transport, bytes.to_vec()));
                Sent::Sent
            }
            fn flow(&mut self, _: Instant, cmd: &FlowCommand) {
                self.out.push(Out::Flow(*cmd));
            }
            fn event(&mut self, _: Instant, e: &Event) -> Ack {
                self.events.push(*e);
                if matches!(e, Event::Switch { .. }) {
                    Ack::Applied
                } else {
                    Ack::None
                }
            }
        }
        let mut out = Collect::default();
        drive::drain(&mut self.agents[p as usize], now, &mut [0u8; 1500], &mut out);
        for o in out.out {
            match o {
                Out::Send(side, Transport::Udp, bytes) => {
                    self.push(now + self.one_way, Item::ToPair { phone: p, side, bytes, flow: None })
                }
                Out::Send(side, _, bytes) => {
                    // Written on the open flow; the agent writes only once it is up.
                    let flow = self.flows[p as usize][side.index()].as_ref().filter(|f| f.up).map(|f| f.id);
                    if let Some(id) = flow {
                        self.push(now + self.one_way, Item::ToPair { phone: p, side, bytes, flow: Some(id) });
                    }
                }
                Out::Flow(FlowCommand::Open { server, id, transport, .. }) => {
                    self.tracker.on_flow_open(p, now, server);
                    self.record(p, now, What::FlowOpen { server, id, transport });
                    self.flows[p as usize][server.index()] =
                        Some(SimFlow { id, transport, up: false, doomed: false, buf: Vec::new() });
                    self.push(now + self.one_way, Item::Connect { phone: p, side: server, id });
                }
                Out::Flow(FlowCommand::Close { server, id, .. }) => {
                    // The caller drops the flow: nothing more is read from it.
                    let slot = &mut self.flows[p as usize][server.index()];
                    if slot.as_ref().is_some_and(|f| f.id == id) {
                        *slot = None;
                    }
                }
            }
        }
        for e in out.events {
            self.tracker.on_event(p, now, &e);
            self.record(p, now, What::Agent(e));
        }
        let next = self.agents[p as usize].poll_timeout();
        if next != self.scheduled[p as usize] {
            self.scheduled[p as usize] = next;
            if let Some(at) = next {
                self.push(at.max(now), Item::Timer(p));
            }
        }
    }
}

impl World<'_> {
    /// The flow `id` of phone `p` to `side`, while it is the phone's and the server has not dropped it.
    fn live_flow(&mut self, p: u32, side: Side, id: u16) -> Option<&mut SimFlow> {
        self.flows[p as usize][side.index()].as_mut().filter(|f| f.is_live(id))
    }

    /// Bytes read from flow `id`: appended to its buffer, each whole message or pong handed to the
    /// agent; a framing error closes the flow.
    fn read_flow(&mut self, p: u32, side: Side, id: u16, bytes: &[u8], now: Instant) {
        let (agent, slot) = (&mut self.agents[p as usize], &mut self.flows[p as usize][side.index()]);
        let Some(f) = slot.as_mut().filter(|f| f.is_live(id) && f.up) else { return };
        f.buf.extend_from_slice(bytes);
        match drive::feed_stream(agent, now, side, id, &f.buf) {
            Ok(used) => {
                f.buf.drain(..used);
            }
            Err(_) => {
                *slot = None;
                agent.handle_flow(now, side, id, FlowEvent::Failed(FlowError::Framing));
            }
        }
    }

    /// Server `side` changed: its open flows fail (reset, or closed by a restart) one latency later.
    fn drop_flows(&mut self, side: Side, now: Instant) {
        let Some(reason) = self.pair.server(side).flow_effect() else { return };
        let mut failed = Vec::new();
        for (p, flows) in self.flows.iter_mut().enumerate() {
            if let Some(f) = flows[side.index()].as_mut().filter(|f| !f.doomed) {
                f.doomed = true;
                failed.push((p as u32, f.id));
            }
        }
        for (phone, id) in failed {
            self.push(now + self.one_way, Item::Flow { phone, side, id, ev: FlowEvent::Failed(reason) });
        }
    }

    /// A connect reached server `side`: the outcome travels back.
    fn connect(&mut self, phone: u32, side: Side, id: u16, now: Instant) {
        let Some(transport) = self.live_flow(phone, side, id).map(|f| f.transport) else { return };
        let ow = self.one_way;
        // After the SYN-ACK (one latency back); for TLS the handshake takes one more round trip.
        let connected = if transport == Transport::Tls { now + ow + ow + ow } else { now + ow };
        let failed = |e| Item::Flow { phone, side, id, ev: FlowEvent::Failed(e) };
        match self.pair.connect(side, transport) {
            Connect::Accept => self.push(connected, Item::Flow { phone, side, id, ev: FlowEvent::Connected }),
            Connect::Refuse => self.push(now + ow, failed(FlowError::Refused)),
            Connect::Reset => {
                if transport == Transport::Tcp {
                    self.push(now + ow, Item::Flow { phone, side, id, ev: FlowEvent::Connected });
                }
                // Accepted once the client's first bytes (ACK, or the ClientHello) arrive, then reset.
                self.push(now + ow + ow + ow, failed(FlowError::Refused));
            }
            Connect::Stall => {}
            Connect::BadCertificate(k) => self.push(connected, failed(FlowError::Tls(k.tls_error()))),
        }
    }
}

/// Runs `scenario` on virtual time. `observer` sees every record of phone 0 as it happens.
pub fn run(
    scenario: &Scenario,
    opts: &VirtualOptions,
    observer: &mut dyn FnMut(&Record),
) -> Result<RunOutput, SimError> {
    let phones = opts.phones.max(1);
    let addrs: [SocketAddr; 2] = [
        VIRTUAL_PRIMARY.parse().map_err(|_| SimError::Internal("address"))?,
        VIRTUAL_BACKUP.parse().map_err(|_| SimError::Internal("address"))?,
    ];
    let end = Instant::ZERO + scenario.duration + opts.extend;
    let interval = scenario.phone.interval;
    let mut w = World {
        queue: BinaryHeap::new(),
        seq: 0,
        agents: Vec::with_capacity(phones),
        scheduled: vec![None; phones],
        flows: (0..phones).map(|_| [None, None]).collect(),
        pair: PairModel::new(&scenario.expanded(), opts.seed),
        tracker: Tracker::new(phones, scenario.phone.ladder.total())
            .with_stream_sides(scenario.phone.transports.map(|t| t.is_stream())),
        timeline: Timeline::new(&scenario.name, scenario.duration + opts.extend),
        stats: PairStats::default(),
        one_way: opts.one_way,
        addrs,
        observer,
    };
    if let Some(at) = w.pair.next_step_at() {
        w.push(at, Item::Step);
    }
    // Queued before the phones' first timers: a call or a notice at 0 s is in force from the start.
    for c in &scenario.calls {
        w.push(Instant::ZERO + c.at, Item::Call(c.in_call));
    }
    for (i, n) in scenario.notices.iter().enumerate() {
        w.push(Instant::ZERO + n.at, Item::Notice(i));
    }
    for i in 0..phones {
        // A fleet boots spread over one interval, as real phones do; phone 0 starts at 0.
        let start = super::boot_time(interval, phones, i, 1);
        let cfg = phone_config(&scenario.phone, addrs[0], addrs[1], i);
        let mut agent = Agent::new(cfg, start, opts.seed.wrapping_mul(0x9e37_79b9).wrapping_add(i as u64))
            .map_err(SimError::Config)?;
        super::plan_windows(&mut agent, scenario, Instant::ZERO, start, &[]);
        w.agents.push(agent);
        w.scheduled[i] = Some(start);
        w.push(start, Item::Timer(i as u32));
    }
    while let Some(e) = w.queue.pop() {
        if e.at > end {
            break;
        }
        let now = e.at;
        match e.item {
            Item::Step => {
                for f in w.pair.advance(now) {
                    let side = f.server;
                    w.tracker.on_fault(&f);
                    w.record(0, now, What::Fault(f));
                    w.drop_flows(side, now);
                }
                if let Some(at) = w.pair.next_step_at() {
                    w.push(at, Item::Step);
                }
            }
            Item::Call(in_call) => {
                w.record(0, now, What::Call(in_call));
                for p in 0..phones as u32 {
                    // Cannot fail: InCall is always accepted.
                    let _ = w.agents[p as usize].handle_command(now, Command::InCall(in_call));
                    w.drain(p, now);
                }
            }
            Item::Notice(i) => {
                let n = &scenario.notices[i];
                w.record(
                    0,
                    now,
                    What::NoticePublished {
                        id: n.id.clone(),
                        server: n.side,
                        start: Instant::ZERO + n.start,
                        end: Instant::ZERO + n.end,
                    },
                );
                let published: Vec<_> = scenario.notices[..=i].iter().map(|n| n.span()).collect();
                for p in 0..phones as u32 {
                    let handed =
                        super::plan_windows(&mut w.agents[p as usize], scenario, Instant::ZERO, now, &published);
                    if p == 0 {
                        w.record(0, now, What::Windows(handed));
                    }
                    w.drain(p, now);
                }
            }
            Item::Timer(p) => {
                if w.scheduled[p as usize] != Some(now) {
                    continue; // superseded
                }
                w.scheduled[p as usize] = None;
                w.agents[p as usize].handle_timeout(now);
                w.drain(p, now);
            }
            Item::ToPair { phone, side, bytes, flow: Some(id) } => {
                if w.live_flow(phone, side, id).is_none() {
                    continue; // dropped by either end
                }
                if bytes == PING {
                    if w.pair.server(side).answers_ping() {
                        w.push(now + w.one_way, Item::ToPhone { phone, side, bytes: b"\r\n".to_vec(), flow: Some(id) });
                    }
                    continue;
                }
                w.stats.count(now, side);
                if let Reply::Send { at, bytes } = w.pair.on_request(side, now, &bytes) {
                    w.push(at + w.one_way, Item::ToPhone { phone, side, bytes, flow: Some(id) });
                }
            }
            Item::ToPair { phone, side, bytes, flow: None } => {
                w.stats.count(now, side);
                match w.pair.on_request(side, now, &bytes) {
                    Reply::Send { at, bytes } => {
                        w.push(at + w.one_way, Item::ToPhone { phone, side, bytes, flow: None });
                    }
                    Reply::Refused => w.push(now + w.one_way, Item::Refused { phone, side }),
                    _ => {}
                }
            }
            Item::ToPhone { phone, side, bytes, flow: Some(id) } => {
                w.read_flow(phone, side, id, &bytes, now);
                w.drain(phone, now);
            }
            Item::ToPhone { phone, side, bytes, flow: None } => {
                let from = w.addrs[side.index()];
                w.agents[phone as usize].handle_datagram(now, from, &bytes);
                w.drain(phone, now);
            }
            Item::Connect { phone, side, id } => w.connect(phone, side, id, now),
            Item::Flow { phone, side, id, ev } => {
                let slot = &mut w.flows[phone as usize][side.index()];
                let Some(f) = slot.as_mut().filter(|f| f.id == id) else { continue };
                match ev {
                    // A connect that completes after the server dropped the flow is not reported.
                    FlowEvent::Connected if f.doomed => continue,
                    FlowEvent::Connected => f.up = true,
                    _ => *slot = None,
                }
                w.agents[phone as usize].handle_flow(now, side, id, ev);
                w.drain(phone, now);
            }
            Item::Refused { phone, side } => {
                w.agents[phone as usize].handle_refused(now, side);
                w.drain(phone, now);
            }
        }
    }
    w.stats.servers = [w.pair.server(Side::Primary).stats(), w.pair.server(Side::Backup).stats()];
    Ok(RunOutput::of_phones(w.timeline, w.tracker.finished(), w.stats, end))
}
