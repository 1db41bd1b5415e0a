//! A fleet: N phones in one process against the pair, in real time.
//!
//! Over UDP, no socket per phone: the fleet has one socket per side, every agent's probes leave
//! through it, and a reply is routed to its phone by the From user the pair echoes (`p<index>`).
//! Over TCP or TLS, each phone has its own flow to each stream server, as a phone does
//! ([`PhoneFlows`]); their reports come back on one channel tagged with the phone. Timers sit in one
//! heap of (deadline, phone), with stale entries skipped when they come up. Phones boot spread over
//! one interval, as a real fleet does, in groups ([`FleetOptions::boot_group`], 8 phones unless asked
//! otherwise): a group's cycles stay in step, so one wake-up of the loop serves the whole group.
//! Phone 0's events feed the live timeline; every phone feeds the [`Tracker`].
//!
//! Over UDP the pair is served from the same loop ([`InlinePair`]): after a pass sends its probes,
//! the pair reads and answers them on its own sockets, and the replies are read in the same pass, so
//! a transaction costs no thread switch. The loop asks for real-time scheduling
//! ([`FleetOptions::realtime`]) so a timer is served when it fires.
//!
//! A fleet can run in several such loops ([`FleetOptions::shards`]), each on a thread of its own
//! with its own sockets, its own pair (every pair plays the scenario on the run's one clock) and the
//! boot groups dealt to it; the shards share the [`Tracker`] (shard 0's pair's faults stand for
//! all), shard 0 keeps the timeline, shows the other shards' events and hands them the windows its
//! poller finds, and no shard's clock starts before every shard is ready.
//!
//! The scenario's phone steps reach every booted phone at their time, and a phone booting during a
//! call starts in it. The scenario's notices are published on the lab's status page
//! ([`LabPage`]); one poller ([`PageWatch`]) serves the whole fleet, as a proxy would (ten thousand
//! phones polling one loopback page every second would measure the page, not the phones), and hands
//! what it finds to every phone, and to each phone that boots later.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration as StdDuration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant as TInstant;

use super::mmsg::{RecvBatch, SendBatch, BATCH};
use super::scenario::{PlannedSpan, Scenario};
use super::statuspage::{LabPage, PageWatch, Published};
use super::streams::{FlowReport, PhoneFlows};
use super::summary::{Hist, Tracker};
use super::timeline::{Record, Timeline, What};
use super::udp::{
    at, bind_udp, recv_batch, since, sleep_until_precise, spawn_pair_thread, InlinePair, PairNote, UdpPair,
};
use super::{phone_config, phone_of, Live, RunOutput, SimError};
use crate::core::drive::{self, Ack, Io, Sent};
use crate::core::{Agent, Command, Duration, Event, FlowCommand, Instant, Side, Transmit};

/// Where the pair is served.
enum Served {
    /// From the fleet's loop (UDP).
    Inline(Box<InlinePair>),
    /// On a thread of its own (a TCP or TLS server).
    Thread(std::thread::JoinHandle<io::Result<super::PairStats>>),
}

impl Served {
    fn inline(&self) -> Option<&InlinePair> {
        match self {
            Served::Inline(p) => Some(p),
            Served::Thread(_) => None,
        }
    }
}

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const NONE: u64 = u64::MAX;

/// How a fleet run is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetOptions {
    /// How many phones.
    pub phones: usize,
    /// Keys the agents' and the pair's random sources.
    pub seed: u64,
    /// Extra time after the scenario's end (so late-booting phones finish their failback).
    pub extend: Duration,
    /// Ask for real-time scheduling (`SCHED_FIFO`) for the phones' loop while it runs, so each
    /// timer is served when it fires rather than when the time-sharing scheduler gets round to it;
    /// the run says what it got.
    pub realtime: bool,
    /// Keep the machine's CPUs out of deep idle while the run goes
    /// ([`IdlePollGuard`](super::usage::IdlePollGuard)): an idle CPU then polls, so a timer that
    /// fires on it is served without first waking the CPU (on a virtual machine, without the host
    /// scheduling it again). Costs the CPUs' idle time, not the process's CPU time; on a shared
    /// host the CPUs, always busy, are taken away more often instead (see the README), so it is
    /// off unless asked for.
    pub idle_poll: bool,
    /// Phones boot in groups of this many (1: each at its own time), the groups spread evenly over
    /// one interval. A group's timers come due together, so one wake-up of the loop serves them
    /// all; each phone's own timing is unchanged.
    pub boot_group: usize,
    /// How many loops run the phones, each on a thread of its own with its own sockets and its own
    /// pair (a pair per shard, all playing the scenario on the run's one clock); the boot groups
    /// are dealt round them. 1: one loop on the calling thread.
    pub shards: usize,
}

impl Default for FleetOptions {
    /// One phone, seed 1, no extra time, real-time scheduling asked for, idle CPUs left alone,
    /// boot groups of [`DEFAULT_BOOT_GROUP`].
    fn default() -> Self {
        FleetOptions {
            phones: 1,
            seed: 1,
            extend: Duration::ZERO,
            realtime: true,
            idle_poll: false,
            boot_group: DEFAULT_BOOT_GROUP,
            shards: 1,
        }
    }
}

/// Which phones a shard runs: boot group g goes to shard g mod shards, so every shard's groups are
/// spread over the whole interval. Phones are numbered across the fleet (`p<n>`); each shard keeps
/// its own in a dense local numbering.
#[derive(Debug, Clone, Copy)]
struct Deal {
    phones: usize,
    group: usize,
    shards: usize,
    index: usize,
}

impl Deal {
    /// The fleet's number of this shard's phone `local`.
    fn global(&self, local: usize) -> usize {
        ((local / self.group) * self.shards + self.index) * self.group + local % self.group
    }

    /// This shard's number of the fleet's phone `global`, if it is this shard's.
    fn local(&self, global: usize) -> Option<usize> {
        let g = global / self.group;
        (global < self.phones && g % self.shards == self.index)
            .then(|| (g / self.shards) * self.group + global % self.group)
    }

    /// How many phones this shard runs.
    fn count(&self) -> usize {
        let groups = self.phones.div_ceil(self.group);
        if groups <= self.index {
            return 0;
        }
        let mine = (groups - self.index - 1) / self.shards + 1;
        let short = if (groups - 1) % self.shards == self.index { groups * self.group - self.phones } else { 0 };
        mine * self.group - short
    }
}

/// Where the shards wait for each other before the run's clock starts: the clock and the process's
/// CPU time then, or None when a shard could not get ready.
struct StartLine {
    state: Mutex<Arrivals>,
    all: Condvar,
    shards: usize,
    /// Set when a shard fails: the others end their runs.
    abort: AtomicBool,
}

/// Who is at the start line so far.
#[derive(Default)]
struct Arrivals {
    /// Shards arrived (ready or not).
    arrived: usize,
    /// Whether one of them gave up.
    gave_up: bool,
    /// The start, set only when all arrived ready.
    start: Option<Start>,
}

impl StartLine {
    fn new(shards: usize) -> Self {
        StartLine { state: Mutex::default(), all: Condvar::new(), shards, abort: AtomicBool::new(false) }
    }

    /// This shard is ready (`ok`) or gives up; waits for the others.
    fn arrive(&self, ok: bool) -> Option<Start> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.arrived += 1;
        s.gave_up |= !ok;
        if s.arrived == self.shards {
            if !s.gave_up {
                s.start = Some((TInstant::now(), super::usage::process_cpu()));
            }
            self.all.notify_all();
        }
        // Bounded: every shard arrives once, ready or not (a shard that fails arrives as it unwinds).
        while s.arrived < self.shards {
            s = self.all.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.start
    }

    /// `n` shards will not come (they could not be started): the run is off.
    fn give_up(&self, n: usize) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.arrived += n;
        s.gave_up = true;
        self.abort();
        self.all.notify_all();
    }

    /// A shard failed: the others end their runs.
    fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }
}

/// The run's clock and the process's CPU time when it started.
type Start = (TInstant, super::usage::Cpu);

/// A shard's place at the start line: arrives as not ready if dropped before [`Ticket::go`].
struct Ticket<'a> {
    line: &'a StartLine,
    arrived: bool,
}

impl<'a> Ticket<'a> {
    fn new(line: &'a StartLine) -> Self {
        Ticket { line, arrived: false }
    }

    fn go(mut self) -> Option<Start> {
        self.arrived = true;
        self.line.arrive(true)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.arrived {
            self.line.arrive(false);
        }
    }
}

/// What a shard hands the others, and what it takes from them.
struct Links {
    /// The run's tracker, every phone's (by the fleet's numbering).
    tracker: Arc<Mutex<Tracker>>,
    /// Shard 0: sends the windows of the notices its poller finds; the others: receive them.
    spans: Spans,
    /// The other shards' phones' events, for shard 0 to show (`Live::Event`).
    events: Option<mpsc::UnboundedReceiver<Forwarded>>,
}

enum Spans {
    Send(watch::Sender<Vec<PlannedSpan>>),
    Receive(watch::Receiver<Vec<PlannedSpan>>),
}

/// What one shard's run gave.
struct ShardOutput {
    timeline: Timeline,
    pair: super::PairStats,
    busy: StdDuration,
    longest: StdDuration,
    timer_lag: Hist,
    wake_lag: Hist,
    scheduling: super::usage::Scheduling,
    idle: super::usage::IdlePoll,
}

/// How many phones boot together unless asked otherwise.
pub const DEFAULT_BOOT_GROUP: usize = 8;

struct Fleet {
    /// Each phone's agent, made when the phone boots.
    agents: Vec<Option<Agent>>,
    scheduled: Vec<u64>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    socks: [UdpSocket; 2],
    addrs: [SocketAddr; 2],
    tracker: Arc<Mutex<Tracker>>,
    deal: Deal,
    timeline: Timeline,
    send_errors: u64,
    received: u64,
    unrouted: u64,
    /// The datagrams of this pass for each side, sent together (`sendmmsg`).
    out: [SendBatch; 2],
    /// How late each phone's timer was handled after its deadline (the work of the pass before it
    /// included).
    timer_lag: Hist,
    /// How late the loop woke after the time it slept until (the scheduler's share).
    wake_lag: Hist,
    /// Each phone's flows to its TCP or TLS servers (made when it boots).
    flows: Vec<Option<PhoneFlows>>,
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
    reports: mpsc::UnboundedSender<FlowReport>,
    /// The runtime of the flows' tasks, on a thread of its own.
    flow_rt: Option<tokio::runtime::Handle>,
}

impl Fleet {
    /// Phone 0's record `what` at `t`: on the timeline and live.
    fn record(&mut self, t: Instant, what: What, live: &mut dyn FnMut(Live<'_>)) {
        let r = Record { t, what };
        live(Live::Record(&r));
        self.timeline.records.push(r);
    }

    /// The call starts or ends on every booted phone.
    fn call(&mut self, in_call: bool, now: Instant, live: &mut dyn FnMut(Live<'_>)) {
        self.record(now, What::Call(in_call), live);
        for p in 0..self.agents.len() {
            if let Some(a) = self.agents[p].as_mut() {
                // Cannot fail: InCall is always accepted.
                let _ = a.handle_command(now, Command::InCall(in_call));
                self.drain(p as u32, now, live);
            }
        }
    }

    /// Every booted phone takes the scenario's windows and `extra`.
    fn plan(&mut self, scenario: &Scenario, extra: &[PlannedSpan], now: Instant, live: &mut dyn FnMut(Live<'_>)) {
        for p in 0..self.agents.len() {
            if let Some(a) = self.agents[p].as_mut() {
                let handed = super::plan_windows(a, scenario, Instant::ZERO, now, extra);
                if self.deal.global(p) == 0 {
                    self.record(now, What::Windows(handed), live);
                }
                self.drain(p as u32, now, live);
            }
        }
    }

    fn drain(&mut self, p: u32, now: Instant, live: &mut dyn FnMut(Live<'_>)) {
        struct Out<'a> {
            phone: u32,
            out: &'a mut [SendBatch; 2],
            flows: Option<&'a mut PhoneFlows>,
            tracker: &'a mut Tracker,
            timeline: &'a mut Timeline,
            live: &'a mut dyn FnMut(Live<'_>),
        }
        impl Io for Out<'_> {
            fn flow(&mut self, now: Instant, cmd: &FlowCommand) {
                if let FlowCommand::Open { server, id, transport, .. } = *cmd {
                    self.tracker.on_flow_open(self.phone, now, server);
                    if self.phone == 0 {
                        let r = Record { t: now, what: What::FlowOpen { server, id, transport } };
                        (self.live)(Live::Record(&r));
                        self.timeline.records.push(r);
                    }
                }
                if let Some(f) = self.flows.as_mut() {
                    f.command(cmd);
                }
            }
            fn transmit(&mut self, _: Instant, t: &Transmit, bytes: &[u8]) -> Sent {
                if t.transport.is_stream() {
                    if let Some(f) = self.flows.as_mut() {
                        f.write(t.server, bytes);
                    }
                    return Sent::Sent;
                }
                self.out[t.server.index()].push(bytes, None);
                Sent::Sent
            }
            fn event(&mut self, now: Instant, e: &Event) -> Ack {
                self.tracker.on_event(self.phone, now, e);
                (self.live)(Live::Event { phone: self.phone, t: now, event: e });
                if self.phone == 0 {
                    let r = Record { t: now, what: What::Agent(*e) };
                    (self.live)(Live::Record(&r));
                    self.timeline.records.push(r);
                }
                if matches!(e, Event::Switch { .. }) {
                    Ack::Applied
                } else {
                    Ack::None
                }
            }
        }
        let Fleet { agents, out, tracker, timeline, flows, deal, .. } = self;
        let Some(agent) = agents[p as usize].as_mut() else { return };
        let flows = flows.get_mut(p as usize).and_then(Option::as_mut);
        let mut tracker = tracker.lock().unwrap_or_else(|e| e.into_inner());
        let phone = deal.global(p as usize) as u32;
        let mut io = Out { phone, out, flows, tracker: &mut tracker, timeline, live };
        drive::drain(agent, now, &mut [0u8; 1500], &mut io);
        drop(tracker);
        if self.out.iter().any(|o| o.len() >= BATCH) {
            self.flush();
        }
        let next = self.agents[p as usize].as_ref().and_then(|a| a.poll_timeout()).map_or(NONE, |t| t.as_micros());
        if next != self.scheduled[p as usize] {
            self.scheduled[p as usize] = next;
            if next != NONE {
                self.heap.push(Reverse((next, p)));
            }
        }
    }

    /// Hands one flow report to its phone.
    fn flow_report(&mut self, (p, side, id, input): FlowReport, now: Instant, live: &mut dyn FnMut(Live<'_>)) {
        let (Some(Some(agent)), Some(Some(flows))) = (self.agents.get_mut(p as usize), self.flows.get_mut(p as usize))
        else {
            return;
        };
        flows.input(agent, now, side, id, input);
        self.drain(p, now, live);
    }

    /// Sends the datagrams this pass produced, many per system call.
    fn flush(&mut self) {
        for side in Side::BOTH {
            let o = &mut self.out[side.index()];
            if !o.is_empty() {
                let before = o.errors;
                o.flush(&self.socks[side.index()]);
                self.send_errors += o.errors - before;
            }
        }
    }

    /// Reads every datagram waiting on `side`'s socket (at most `max`), many per system call, and
    /// stops early when a phone's timer comes due (`origin` is the run's clock): a backlog of replies
    /// must not hold a deadline back.
    fn receive(
        &mut self,
        inbox: &mut RecvBatch,
        side: Side,
        (now, origin): (Instant, TInstant),
        max: usize,
        live: &mut dyn FnMut(Live<'_>),
    ) {
        let mut left = max;
        let mut first = true;
        while left > 0 {
            // One batch at least, so replies are never starved by dense timers.
            if !std::mem::take(&mut first)
                && self.heap.peek().is_some_and(|Reverse((due, _))| *due <= since(origin).as_micros())
            {
                return;
            }
            let got = recv_batch(inbox, &self.socks[side.index()]);
            if matches!(&got, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                return;
            }
            match got {
                Ok(n) => {
                    left = left.saturating_sub(n.max(1));
                    for i in 0..n {
                        let bytes = inbox.get(i).0;
                        self.received += 1;
                        let Some(p) =
                            phone_of(bytes).and_then(|p| self.deal.local(p)).filter(|p| *p < self.agents.len())
                        else {
                            self.unrouted += 1;
                            continue;
                        };
                        if let Some(a) = self.agents[p].as_mut() {
                            a.handle_datagram(now, self.addrs[side.index()], bytes);
                            self.drain(p as u32, now, live);
                        }
                    }
                    if n < BATCH {
                        return;
                    }
                }
                // A refusal is not attributable to one phone; fast detection is per phone and off here.
                Err(_) => left -= 1,
            }
        }
    }
}

/// Runs `scenario` with `opts.phones` phones in real time: shard 0's loop on the calling thread,
/// each other shard's on a thread of its own ([`FleetOptions::shards`]).
pub fn run(scenario: &Scenario, opts: &FleetOptions, live: &mut dyn FnMut(Live<'_>)) -> Result<RunOutput, SimError> {
    let phones = opts.phones.max(1);
    let group = opts.boot_group.max(1);
    // No shard without a boot group of its own.
    let shards = opts.shards.clamp(1, phones.div_ceil(group));
    let tracker = Arc::new(Mutex::new(
        Tracker::new(phones, scenario.phone.ladder.total())
            .with_stream_sides(scenario.phone.transports.map(|t| t.is_stream())),
    ));
    let line = Arc::new(StartLine::new(shards));
    let (spans_tx, spans_rx) = watch::channel(Vec::new());
    let (events_tx, events_rx) = mpsc::unbounded_channel::<Forwarded>();
    let deal = |index| Deal { phones, group, shards, index };
    let mut others = Vec::new();
    for index in 1..shards {
        let (scenario, opts, shard_line) = (scenario.clone(), *opts, line.clone());
        let links = Links { tracker: tracker.clone(), spans: Spans::Receive(spans_rx.clone()), events: None };
        let events = events_tx.clone();
        let d = deal(index);
        let spawned = std::thread::Builder::new().name(format!("fleet-shard-{index}")).spawn(move || {
            let mut forward = |l: Live<'_>| {
                if let Live::Event { phone, t, event } = l {
                    let _ = events.send((phone, t, *event));
                }
            };
            run_shard(&scenario, &opts, d, links, &shard_line, &mut forward).map(|(o, _, _)| o)
        });
        match spawned {
            Ok(h) => others.push(h),
            Err(e) => {
                // Shard 0 and the shards not started will not come to the start line.
                line.give_up(shards - index + 1);
                for h in others {
                    let _ = h.join();
                }
                return Err(e.into());
            }
        }
    }
    drop(events_tx);
    let links = Links { tracker: tracker.clone(), spans: Spans::Send(spans_tx), events: Some(events_rx) };
    let first = run_shard(scenario, opts, deal(0), links, &line, live);
    let rest: Vec<Result<ShardOutput, SimError>> = others
        .into_iter()
        .map(|h| h.join().unwrap_or(Err(SimError::Internal("a fleet shard's thread panicked"))))
        .collect();
    // The first error that is not a shard's stopping because another could not start.
    let mut error: Option<SimError> = None;
    let mut note = |e: SimError| {
        if error.as_ref().is_none_or(|x| matches!(x, SimError::Internal(NOT_STARTED))) {
            error = Some(e);
        }
    };
    let first = first.map_err(&mut note).ok();
    let rest: Vec<ShardOutput> = rest.into_iter().filter_map(|r| r.map_err(&mut note).ok()).collect();
    if let Some(e) = error {
        return Err(e);
    }
    let first = first.ok_or(SimError::Internal("a fleet shard failed"))?;
    let (mut out, cpu0, events) = first;
    // The last events the other shards forwarded.
    if let Some(mut events) = events {
        while let Ok((phone, t, event)) = events.try_recv() {
            live(Live::Event { phone, t, event: &event });
        }
    }
    let cpu = super::usage::process_cpu().since(&cpu0);
    for o in &rest {
        out.pair.merge(&o.pair);
        out.busy += o.busy;
        out.longest = out.longest.max(o.longest);
        out.timer_lag.merge(&o.timer_lag);
        out.wake_lag.merge(&o.wake_lag);
    }
    let tracker = Arc::try_unwrap(tracker)
        .map_err(|_| SimError::Internal("a fleet shard kept the tracker"))?
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok(RunOutput {
        timeline: out.timeline,
        tracker: tracker.finished(),
        pair: out.pair,
        end: Instant::ZERO + scenario.duration + opts.extend,
        phones_busy: out.busy,
        phones_longest_pass: out.longest,
        phones_timer_lag: out.timer_lag.stats(),
        phones_wake_lag: out.wake_lag.stats(),
        cpu,
        phones_scheduling: Some(out.scheduling),
        phones_idle: Some(out.idle),
        phones_loops: shards,
    })
}

/// Why a shard stopped when another could not start.
const NOT_STARTED: &str = "another fleet shard could not start";

/// An event of another shard's phone, for shard 0 to show.
type Forwarded = (u32, Instant, Event);

/// A shard's output, the process's CPU time when the run's clock started, and (shard 0) the other
/// shards' events not shown yet.
type ShardRun = (ShardOutput, super::usage::Cpu, Option<mpsc::UnboundedReceiver<Forwarded>>);

/// Runs one shard on a runtime of its own; a shard that fails tells the others to stop.
fn run_shard(
    scenario: &Scenario,
    opts: &FleetOptions,
    deal: Deal,
    links: Links,
    line: &StartLine,
    live: &mut dyn FnMut(Live<'_>),
) -> Result<ShardRun, SimError> {
    let ticket = Ticket::new(line);
    let r = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SimError::from)
        .and_then(|rt| rt.block_on(run_async(scenario, opts, deal, links, ticket, live)));
    if r.is_err() {
        line.abort();
    }
    r
}

async fn run_async(
    scenario: &Scenario,
    opts: &FleetOptions,
    deal: Deal,
    links: Links,
    ticket: Ticket<'_>,
    live: &mut dyn FnMut(Live<'_>),
) -> Result<ShardRun, SimError> {
    let line = ticket.line;
    let all_phones = opts.phones.max(1);
    let phones = deal.count();
    let Links { tracker, spans, events: mut forwarded } = links;
    let lead = matches!(spans, Spans::Send(_));
    let (spans_tx, mut spans_rx) = match spans {
        Spans::Send(tx) => (Some(tx), None),
        Spans::Receive(rx) => (None, Some(rx)),
    };
    let transports = scenario.phone.transports;
    // Each shard's pair draws its own losses.
    let pair_seed = opts.seed ^ (deal.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let pair = UdpPair::bind_over(LOOPBACK, LOOPBACK, transports, &scenario.expanded(), pair_seed, None)?;
    let streams = transports.iter().any(|t| t.is_stream());
    let (reports, mut flow_rx) = mpsc::unbounded_channel::<FlowReport>();
    // The flows' connects, handshakes and reads run on a thread of their own, so TLS work does not
    // delay the agents' timers.
    let (io_stop, io_stopped) = tokio::sync::oneshot::channel::<()>();
    let io_thread = if streams {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("phone-flows".into()).spawn(move || -> io::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let _ = tx.send(rt.handle().clone());
            rt.block_on(async {
                let _ = io_stopped.await;
            });
            Ok(())
        })?;
        Some((thread, rx.recv().map_err(|_| SimError::Internal("the flows' thread did not start"))?))
    } else {
        None
    };
    let addrs = pair.local_addrs();
    let socks = [bind_udp(LOOPBACK)?, bind_udp(LOOPBACK)?];
    for (s, a) in socks.iter().zip(addrs) {
        s.connect(a).await?;
    }
    let locals = [socks[0].local_addr()?, socks[1].local_addr()?];
    let interval = scenario.phone.interval;
    let mut fleet = Fleet {
        agents: Vec::with_capacity(phones),
        scheduled: vec![NONE; phones],
        heap: BinaryHeap::with_capacity(phones * 2),
        socks,
        addrs,
        tracker,
        deal,
        timeline: Timeline::new(&scenario.name, scenario.duration + opts.extend),
        send_errors: 0,
        received: 0,
        unrouted: 0,
        out: [SendBatch::default(), SendBatch::default()],
        timer_lag: Hist::new(),
        wake_lag: Hist::new(),
        flows: Vec::with_capacity(if streams { phones } else { 0 }),
        tls: pair.pki().map(|p| p.client_config()),
        reports,
        flow_rt: io_thread.as_ref().map(|t| t.1.clone()),
    };
    // Phone i's configuration and seed, made again when it boots (not kept for every phone until
    // then: a configuration is most of an agent's size).
    let config_of = |local: usize| {
        let i = deal.global(local);
        let mut cfg = phone_config(&scenario.phone, addrs[0], addrs[1], i);
        if !transports[0].is_stream() {
            cfg.primary.local = locals[0];
        }
        if let Some(b) = cfg.backup.as_mut().filter(|_| !transports[1].is_stream()) {
            b.local = locals[1];
        }
        (cfg, opts.seed.wrapping_mul(0x9e37_79b9).wrapping_add(i as u64))
    };
    for i in 0..phones {
        let start = super::boot_time(interval, all_phones, deal.global(i), opts.boot_group);
        config_of(i).0.validate().map_err(SimError::Config)?;
        fleet.agents.push(None);
        fleet.scheduled[i] = start.as_micros();
        fleet.heap.push(Reverse((start.as_micros(), i as u32)));
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every shard ready: the run's clock starts.
    let (origin, cpu0) = ticket.go().ok_or(SimError::Internal(NOT_STARTED))?;
    // Over UDP the pair is served from this loop (no thread switch per request); a TCP or TLS
    // server is served on a thread of its own.
    let mut served = match InlinePair::new(pair, origin, Some(tx)) {
        Ok(p) => Served::Inline(Box::new(p)),
        Err(back) => {
            let (pair, notes) = *back;
            Served::Thread(spawn_pair_thread(pair, origin, notes, stop_rx)?)
        }
    };
    let (pub_tx, mut pub_rx) = mpsc::unbounded_channel::<Published>();
    // Shard 0 publishes the notices and polls for them, for every shard.
    let page =
        if scenario.notices.is_empty() || !lead { None } else { Some(LabPage::spawn(scenario, origin, pub_tx)?) };
    let mut page_watch = page.as_ref().map(|p| PageWatch::new(p.url()?, scenario.starts_at)).transpose()?;
    // The windows of the notices the fleet's poller found, and the call in progress.
    let mut extra: Vec<PlannedSpan> = Vec::new();
    // Shard 0 handed new windows (the wait that saw them marked them seen).
    let mut new_spans = false;
    let mut in_call = false;
    let mut next_call = 0;
    let mut fetched = None;
    let mut published: Option<Published> = None;
    let end = Instant::ZERO + scenario.duration + opts.extend;
    let mut busy = StdDuration::ZERO;
    let mut longest = StdDuration::ZERO;
    let mut next_tick = Instant::ZERO;
    let mut pending: Option<FlowReport> = None;
    let mut inbox = RecvBatch::default();
    // The time the loop last slept until, when it woke by its timer.
    let mut slept_until: Option<Instant> = None;
    // Threads started from here on (the runtime's helpers) do not inherit it.
    let realtime = if opts.realtime {
        super::usage::RealTimeGuard::ask(1)
    } else {
        super::usage::RealTimeGuard::not_asked("real-time scheduling not asked for")
    };
    let idle = if opts.idle_poll {
        super::usage::IdlePollGuard::ask()
    } else {
        super::usage::IdlePollGuard::not_asked("not asked for")
    };
    // Bounded: the loop ends at the run's end.
    loop {
        let now = since(origin);
        if now >= end || line.aborted() {
            break;
        }
        let t0 = std::time::Instant::now();
        if let Some(w) = slept_until.take() {
            fleet.wake_lag.record(now.saturating_duration_since(w));
        }
        while let Some(c) = scenario.calls.get(next_call).filter(|c| Instant::ZERO + c.at <= now) {
            next_call += 1;
            in_call = c.in_call;
            fleet.call(in_call, now, live);
        }
        for p in published.take().into_iter().chain(std::iter::from_fn(|| pub_rx.try_recv().ok())) {
            if let Some(n) = scenario.notices.get(p.0) {
                let what = What::NoticePublished {
                    id: n.id.clone(),
                    server: n.side,
                    start: Instant::ZERO + n.start,
                    end: Instant::ZERO + n.end,
                };
                fleet.record(p.1, what, live);
            }
        }
        if let Some(w) = page_watch.as_mut() {
            if w.due().is_some_and(|d| d <= TInstant::now()) {
                w.start();
            }
            if let Some(f) = fetched.take().or_else(|| w.try_fetched()) {
                match w.finish(f, now) {
                    Ok(Some(spans)) => {
                        extra = spans;
                        if let Some(tx) = &spans_tx {
                            tx.send_replace(extra.clone());
                        }
                        fleet.plan(scenario, &extra, now, live);
                    }
                    Ok(None) => {}
                    Err(e) => fleet.record(now, What::PageError(e), live),
                }
            }
        }
        if let Some(rx) =
            spans_rx.as_mut().filter(|rx| std::mem::take(&mut new_spans) || rx.has_changed().unwrap_or(false))
        {
            extra = rx.borrow_and_update().clone();
            fleet.plan(scenario, &extra, now, live);
        }
        while let Some(&Reverse((due, p))) = fleet.heap.peek() {
            if due > now.as_micros() {
                break;
            }
            fleet.heap.pop();
            if fleet.scheduled[p as usize] != due {
                continue;
            }
            fleet.scheduled[p as usize] = NONE;
            fleet.timer_lag.record(since(origin).saturating_duration_since(Instant::from_micros(due)));
            match fleet.agents[p as usize].as_mut() {
                Some(a) => a.handle_timeout(now),
                None => {
                    // The phone boots now: its first cycle starts at the real time, not the planned one.
                    let (cfg, seed) = config_of(p as usize);
                    let mut agent = Agent::new(cfg, now, seed).map_err(SimError::Config)?;
                    super::plan_windows(&mut agent, scenario, Instant::ZERO, now, &extra);
                    if in_call {
                        // Cannot fail: InCall is always accepted.
                        let _ = agent.handle_command(now, Command::InCall(true));
                    }
                    fleet.agents[p as usize] = Some(agent);
                    if streams {
                        if fleet.flows.len() <= p as usize {
                            fleet.flows.resize_with(p as usize + 1, || None);
                        }
                        let mut f = PhoneFlows::new(p, fleet.tls.clone(), fleet.reports.clone());
                        if let Some(rt) = &fleet.flow_rt {
                            f = f.on_runtime(rt.clone());
                        }
                        fleet.flows[p as usize] = Some(f);
                    }
                }
            }
            fleet.drain(p, now, live);
        }
        fleet.flush();
        if let Served::Inline(p) = &mut served {
            p.pass();
        }
        for side in Side::BOTH {
            fleet.receive(&mut inbox, side, (now, origin), 4096, live);
        }
        if let Some(r) = pending.take() {
            fleet.flow_report(r, now, live);
        }
        for _ in 0..4096 {
            let Ok(r) = flow_rx.try_recv() else { break };
            fleet.flow_report(r, since(origin), live);
        }
        while let Ok(note) = rx.try_recv() {
            // Every shard's pair plays the same faults; shard 0's stand for them all.
            if let (PairNote::Fault(f), true) = (note, lead) {
                fleet.tracker.lock().unwrap_or_else(|e| e.into_inner()).on_fault(&f);
                let r = Record { t: f.at, what: What::Fault(f) };
                live(Live::Record(&r));
                fleet.timeline.records.push(r);
            }
        }
        fleet.flush();
        if let Some(ev) = forwarded.as_mut() {
            for _ in 0..65_536 {
                let Ok((phone, t, event)) = ev.try_recv() else { break };
                live(Live::Event { phone, t, event: &event });
            }
        }
        let pass = t0.elapsed();
        busy += pass;
        longest = longest.max(pass);
        if now >= next_tick {
            live(Live::Tick(now));
            next_tick = now + Duration::from_millis(100);
        }
        let call_at = scenario.calls.get(next_call).map(|c| Instant::ZERO + c.at);
        let poll_at = page_watch.as_ref().and_then(PageWatch::due).map(|d| {
            Instant::from_micros(u64::try_from(d.saturating_duration_since(origin).as_micros()).unwrap_or(u64::MAX))
        });
        let wake = fleet.heap.peek().map_or(end, |Reverse((t, _))| Instant::from_micros(*t).min(end)).min(next_tick);
        let pair_at = served.inline().and_then(InlinePair::wake_at);
        let wake = [call_at, poll_at, pair_at].into_iter().flatten().fold(wake, Instant::min);
        // A wake-up already due is no sleep: its lateness is the pass's, not the scheduler's.
        let must_sleep = wake > since(origin);
        tokio::select! {
            biased;
            _ = fleet.socks[0].readable() => {}
            _ = fleet.socks[1].readable() => {}
            _ = async { served.inline()?.readable().await; Some(()) }, if served.inline().is_some() => {}
            r = flow_rx.recv(), if streams => pending = r,
            Some(f) = async { page_watch.as_mut()?.fetched().await }, if page_watch.is_some() => fetched = Some(f),
            Some(p) = pub_rx.recv(), if page.is_some() => published = Some(p),
            // Shard 0's poller found new windows (`None`, and no wake-up, once shard 0 is done).
            Some(()) = async { spans_rx.as_mut()?.changed().await.ok() }, if spans_rx.is_some() => new_spans = true,
            _ = sleep_until_precise(at(origin, wake)) => slept_until = must_sleep.then_some(wake),
        }
    }
    let scheduling = realtime.scheduling.clone();
    drop(realtime);
    let idle_state = idle.state.clone();
    drop(idle);
    // The flows end before the pair stops.
    fleet.flows.clear();
    if let Some(p) = page {
        p.stop()?;
    }
    let _ = io_stop.send(());
    if let Some((thread, _)) = io_thread {
        thread.join().map_err(|_| SimError::Internal("the flows' thread failed"))??;
    }
    let _ = stop_tx.send(true);
    let pair_stats = match served {
        Served::Inline(p) => p.finish(),
        Served::Thread(t) => t.join().map_err(|_| SimError::Internal("the pair thread failed"))??,
    };
    let output = ShardOutput {
        timeline: fleet.timeline,
        pair: pair_stats,
        busy,
        longest,
        timer_lag: fleet.timer_lag,
        wake_lag: fleet.wake_lag,
        scheduling,
        idle: idle_state,
    };
    Ok((output, cpu0, forwarded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phone_is_dealt_to_exactly_one_shard_and_numbered_back() {
        for (phones, group, shards) in [(1, 8, 1), (20, 8, 2), (100, 8, 3), (17, 1, 4), (64, 8, 8), (100_000, 8, 2)] {
            let mut seen = vec![None; phones];
            let mut total = 0;
            for index in 0..shards {
                let d = Deal { phones, group, shards, index };
                total += d.count();
                for local in 0..d.count() {
                    let g = d.global(local);
                    assert!(g < phones, "{phones}/{group}/{shards}: shard {index} local {local} -> {g}");
                    assert_eq!(seen[g], None, "{phones}/{group}/{shards}: phone {g} dealt twice");
                    seen[g] = Some(index);
                    assert_eq!(d.local(g), Some(local));
                    // A boot group stays whole in one shard.
                    assert_eq!((g / group) % shards, index);
                }
            }
            assert_eq!(total, phones, "{phones}/{group}/{shards}");
            assert!(seen.iter().all(Option::is_some));
        }
        // Not this shard's phone, or no phone at all.
        let d = Deal { phones: 20, group: 8, shards: 2, index: 1 };
        assert_eq!((d.local(0), d.local(8), d.local(16), d.local(20)), (None, Some(0), None, None));
    }

    #[test]
    fn a_shard_that_cannot_start_stops_the_others_at_the_start_line() {
        let line = Arc::new(StartLine::new(3));
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let l = line.clone();
                std::thread::spawn(move || Ticket::new(&l).go().is_some())
            })
            .collect();
        // The third shard fails before it is ready: its ticket is dropped.
        drop(Ticket::new(&line));
        assert!(waiting.into_iter().all(|h| !h.join().unwrap()));
        assert!(line.state.lock().unwrap().gave_up);
        // All ready: every shard gets the same start.
        let line = Arc::new(StartLine::new(2));
        let l = line.clone();
        let other = std::thread::spawn(move || Ticket::new(&l).go().map(|s| s.0));
        let mine = Ticket::new(&line).go().map(|s| s.0);
        assert!(mine.is_some());
        assert_eq!(mine, other.join().unwrap());
    }
}
