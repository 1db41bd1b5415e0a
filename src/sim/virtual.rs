//! The virtual-time runner: agents and the pair model in one event queue, on a clock that jumps from
//! one due item to the next. Seeded and exact, so hours of behaviour take seconds and a scenario's
//! outcome can be asserted to the microsecond.
//!
//! The network is ideal but for a fixed one-way latency; replies leave the model when it says
//! (its delay), requests to a closed port come back as a refusal one latency later.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::SocketAddr;

use super::model::{PairModel, Reply};
use super::scenario::Scenario;
use super::summary::Tracker;
use super::timeline::{Record, Timeline, What};
use super::{phone_config, PairStats, RunOutput, SimError};
use crate::core::drive::{self, Ack, Io, Sent};
use crate::core::{Agent, Duration, Event, Instant, Side, Transmit};

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
    Timer(u32),
    ToPair { phone: u32, side: Side, bytes: Vec<u8> },
    ToPhone { phone: u32, side: Side, bytes: Vec<u8> },
    Refused { phone: u32, side: Side },
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
            sent: Vec<(Side, Vec<u8>)>,
            events: Vec<Event>,
        }
        impl Io for Collect {
            fn transmit(&mut self, _: Instant, t: &Transmit, bytes: &[u8]) -> Sent {
                self.sent.push((t.server, bytes.to_vec()));
                Sent::Sent
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
        for (side, bytes) in out.sent {
            self.push(now + self.one_way, Item::ToPair { phone: p, side, bytes });
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
        pair: PairModel::new(&scenario.expanded(), opts.seed),
        tracker: Tracker::new(phones, scenario.phone.ladder.total()),
        timeline: Timeline::new(&scenario.name, scenario.duration + opts.extend),
        stats: PairStats::default(),
        one_way: opts.one_way,
        addrs,
        observer,
    };
    if let Some(at) = w.pair.next_step_at() {
        w.push(at, Item::Step);
    }
    for i in 0..phones {
        // A fleet boots spread over one interval, as real phones do; phone 0 starts at 0.
        let start = Instant::from_micros(interval.as_micros() * i as u64 / phones as u64);
        let cfg = phone_config(&scenario.phone, addrs[0], addrs[1], i);
        let mut agent = Agent::new(cfg, start, opts.seed.wrapping_mul(0x9e37_79b9).wrapping_add(i as u64))
            .map_err(SimError::Config)?;
        super::plan_windows(&mut agent, scenario, Instant::ZERO, start);
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
                    w.tracker.on_fault(&f);
                    w.record(0, now, What::Fault(f));
                }
                if let Some(at) = w.pair.next_step_at() {
                    w.push(at, Item::Step);
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
            Item::ToPair { phone, side, bytes } => {
                w.stats.count(now, side);
                match w.pair.on_request(side, now, &bytes) {
                    Reply::Send { at, bytes } => {
                        w.push(at + w.one_way, Item::ToPhone { phone, side, bytes });
                    }
                    Reply::Refused => w.push(now + w.one_way, Item::Refused { phone, side }),
                    _ => {}
                }
            }
            Item::ToPhone { phone, side, bytes } => {
                let from = w.addrs[side.index()];
                w.agents[phone as usize].handle_datagram(now, from, &bytes);
                w.drain(phone, now);
            }
            Item::Refused { phone, side } => {
                w.agents[phone as usize].handle_refused(now, side);
                w.drain(phone, now);
            }
        }
    }
    w.stats.servers = [w.pair.server(Side::Primary).stats(), w.pair.server(Side::Backup).stats()];
    Ok(RunOutput {
        timeline: w.timeline,
        tracker: w.tracker,
        pair: w.stats,
        end,
        phones_busy: std::time::Duration::ZERO,
        phones_longest_pass: std::time::Duration::ZERO,
    })
}
