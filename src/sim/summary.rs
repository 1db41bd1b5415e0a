//! What a lab run measured: each outage with its detection latency (from the fault and from the last
//! answered probe), the time from fault to switch, how far after the ladder's deadline the switch
//! came, and the failback; for fleets the distributions (p50, p99, max) and the pair's peak probe
//! rate.
//!
//! A [`Tracker`] is fed online (fault changes of the pair, every phone's events), so a fleet of
//! 10 000 phones or hours of virtual time need no stored event log.

use super::scenario::PlannedSpan;
use std::fmt::Write as _;

use std::sync::Arc;

use hdrhistogram::Histogram;

use super::model::{FaultChange, Health};
use crate::core::{Duration, Event, FlowError, Instant, Side, SwitchReason};

/// One outage of one server as one phone saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// The phone (0 for a single-phone run).
    pub phone: u32,
    /// The server that went down.
    pub server: Side,
    /// What the fault was (shared by every phone's record of the same fault).
    pub label: Arc<str>,
    /// When the fault began.
    pub fault_at: Instant,
    /// When the fault ended, if it did during the run.
    pub fault_end: Option<Instant>,
    /// When the phone declared the server down.
    pub detected_at: Option<Instant>,
    /// When the last probe that got an answer was sent before the detection.
    pub last_answered: Option<Instant>,
    /// When the first probe of the cycle that switched away (else: that detected it) was sent.
    pub cycle_start: Option<Instant>,
    /// When a call held the phone on the server it wanted to leave (announced or planned
    /// maintenance), if one did.
    pub held_at: Option<Instant>,
    /// When the phone switched away from the server, if it was in use.
    pub switch_at: Option<Instant>,
    /// Why it switched away: a failover, or a maintenance the server announced (503 with
    /// Retry-After), left at an idle moment.
    pub switch_reason: Option<SwitchReason>,
    /// Until when the server's last `503` with Retry-After during the outage announced maintenance:
    /// the phone does not return before.
    pub retry_until: Option<Instant>,
    /// When the phone saw the server answer again.
    pub up_at: Option<Instant>,
    /// When the phone returned to it.
    pub failback_at: Option<Instant>,
}

impl Outage {
    fn new(phone: u32, d: &DownSpan) -> Self {
        Outage {
            phone,
            server: d.server,
            label: Arc::clone(&d.label),
            fault_at: d.at,
            fault_end: d.end,
            detected_at: None,
            last_answered: None,
            cycle_start: None,
            held_at: None,
            switch_at: None,
            switch_reason: None,
            retry_until: None,
            up_at: None,
            failback_at: None,
        }
    }

    /// From the fault to the detection.
    pub fn detection_from_fault(&self) -> Option<Duration> {
        self.detected_at.map(|d| d - self.fault_at)
    }
    /// From the last answered probe to the detection.
    pub fn detection_from_last_answer(&self) -> Option<Duration> {
        Some(self.detected_at? - self.last_answered?)
    }
    /// From the fault to the switch away.
    pub fn fault_to_switch(&self) -> Option<Duration> {
        self.switch_at.map(|s| s - self.fault_at)
    }
    /// From the first probe of the cycle that switched away to the switch (failovers only: a
    /// maintenance switch waits for an idle moment, not for a ladder).
    pub fn cycle_to_switch(&self) -> Option<Duration> {
        Some(self.switch_at? - self.cycle_start?)
    }
    /// From the end of the fault to the return.
    pub fn failback_time(&self) -> Option<Duration> {
        Some(self.failback_at? - self.fault_end?)
    }
}

#[derive(Debug, Clone, Default)]
struct PhoneTrack {
    last_answered: [Option<Instant>; 2],
    cycle_start: [Option<Instant>; 2],
    /// Between a cycle's start and its result: on a stream the cycle may start with a flow opening,
    /// before (or without) any probe.
    in_cycle: [bool; 2],
    /// The phone's record of each server's latest outage: (the outage, the record's index among
    /// its records).
    open: [Option<(u32, usize)>; 2],
}

/// A server's down period as the pair reported it.
#[derive(Debug, Clone)]
struct DownSpan {
    server: Side,
    label: Arc<str>,
    at: Instant,
    end: Option<Instant>,
}

/// The pair's outages and, for each, the phones' records of it. A phone's record of an outage is
/// made when one of its events first concerns it (and, for phones that had none, when the run is
/// finished): the fault itself costs nothing per phone, and each outage's records have room for
/// every phone from the start (reserved, not touched), so no record is ever moved while the run
/// goes and nothing holds up a fleet's loop.
#[derive(Debug, Clone, Default)]
struct DownSpans {
    spans: Vec<DownSpan>,
    /// Each outage's records, in the order they were made.
    records: Vec<Vec<Outage>>,
    /// Each server's latest outage (ended or not).
    latest: [Option<u32>; 2],
    /// Set when the records were handed over ([`Tracker::finished`]): none is made after.
    closed: bool,
}

impl DownSpans {
    /// Phone `phone`'s record of `side`'s latest outage (made now if it has none yet), with the
    /// outage's end.
    fn record<'a>(
        &'a mut self,
        p: &mut PhoneTrack,
        phone: u32,
        side: Side,
    ) -> Option<(&'a mut Outage, Option<Instant>)> {
        let span = self.latest[side.index()]?;
        let d = self.spans.get(span as usize)?;
        let records = self.records.get_mut(span as usize).filter(|_| !self.closed)?;
        let i = match p.open[side.index()] {
            Some((s, i)) if s == span => i,
            _ => {
                records.push(Outage::new(phone, d));
                let i = records.len() - 1;
                p.open[side.index()] = Some((span, i));
                i
            }
        };
        Some((records.get_mut(i)?, d.end))
    }
}

/// One switch of one phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchRecord {
    /// The phone.
    pub phone: u32,
    /// When.
    pub at: Instant,
    /// From which side.
    pub from: Side,
    /// To which side.
    pub to: Side,
    /// Why.
    pub reason: SwitchReason,
}

/// Collects outages and counters from a run, online.
#[derive(Debug, Clone)]
pub struct Tracker {
    phones: Vec<PhoneTrack>,
    down: [bool; 2],
    ladder_total: Duration,
    /// Every outage as each phone saw it, by outage, then by phone: filled by [`Tracker::finished`].
    pub outages: Vec<Outage>,
    down_spans: DownSpans,
    /// The pair's fault changes.
    pub faults: Vec<FaultChange>,
    /// The switches of phone 0 (all of them), and of every phone when there are few.
    pub switches: Vec<SwitchRecord>,
    /// Switches of all phones.
    pub switch_count: u64,
    /// Failovers of all phones.
    pub failovers: u64,
    /// Failbacks of all phones.
    pub failbacks: u64,
    /// Switches away from a server that announced maintenance (503 with Retry-After), all phones.
    pub maintenance_switches: u64,
    /// Switches before a planned window, all phones.
    pub planned_switches: u64,
    /// Switches held by a call, all phones (each hold counted once).
    pub held: u64,
    /// "No server reachable" reports of all phones.
    pub no_server: u64,
    /// Probes sent by all phones.
    pub probes: u64,
    /// Matching replies received by all phones.
    pub replies: u64,
    /// Datagrams the phones ignored.
    pub ignored: u64,
    /// Flows (TCP, TLS) the phones began to open.
    pub flows_opened: u64,
    /// Flows that came up.
    pub flows_up: u64,
    /// Flows closed or failed, by reason, in the order first seen.
    pub flows_closed: Vec<(FlowError, u64)>,
    /// When each phone's first flow to each server came up.
    first_up: Vec<[Option<Instant>; 2]>,
    /// When each phone began opening its first flow to each server.
    first_open: Vec<[Option<Instant>; 2]>,
    /// Which servers the phones reach over flows.
    stream_sides: [bool; 2],
    /// Phones heading to the backup (switched there, not back), and its changes over time, one
    /// point per [`SERIES_STEP`] at most.
    on_backup: u32,
    backup_series: Vec<(Instant, u32)>,
}

/// The resolution of the phones-per-side series: a fleet run keeps one point per step at most.
const SERIES_STEP: Duration = Duration::from_millis(100);

/// How many phones keep every switch record (beyond that only phone 0's are kept).
const KEEP_ALL_SWITCHES: usize = 16;

impl Tracker {
    /// A tracker for `phones` phones whose ladder takes `ladder_total`.
    pub fn new(phones: usize, ladder_total: Duration) -> Self {
        Tracker {
            phones: vec![PhoneTrack::default(); phones],
            down: [false; 2],
            ladder_total,
            outages: Vec::new(),
            down_spans: DownSpans::default(),
            faults: Vec::new(),
            switches: Vec::new(),
            switch_count: 0,
            failovers: 0,
            failbacks: 0,
            maintenance_switches: 0,
            planned_switches: 0,
            held: 0,
            no_server: 0,
            probes: 0,
            replies: 0,
            ignored: 0,
            flows_opened: 0,
            flows_up: 0,
            flows_closed: Vec::new(),
            first_up: Vec::new(),
            first_open: Vec::new(),
            stream_sides: [false; 2],
            on_backup: 0,
            backup_series: Vec::new(),
        }
    }

    /// How many phones were heading to the backup over the run: (time, phones) at each change,
    /// at most one point per 100 ms (the latest count of that step).
    pub fn backup_series(&self) -> &[(Instant, u32)] {
        &self.backup_series
    }

    /// Says which servers the phones reach over TCP or TLS flows (for the time until every phone's
    /// flows are up).
    pub fn with_stream_sides(mut self, sides: [bool; 2]) -> Self {
        self.stream_sides = sides;
        if sides.iter().any(|s| *s) {
            self.first_up = vec![[None; 2]; self.phones.len()];
            self.first_open = vec![[None; 2]; self.phones.len()];
        }
        self
    }

    /// Phone `phone` began opening a flow to `server` (the agent opens one only to send a probe, so
    /// outside a cycle this starts one).
    pub fn on_flow_open(&mut self, phone: u32, t: Instant, server: Side) {
        self.flows_opened += 1;
        if let Some(first) = self.first_open.get_mut(phone as usize) {
            first[server.index()].get_or_insert(t);
        }
        if let Some(p) = self.phones.get_mut(phone as usize) {
            let i = server.index();
            if !p.in_cycle[i] {
                p.in_cycle[i] = true;
                p.cycle_start[i] = Some(t);
            }
        }
    }

    /// When the last of the phones' first flows came up, if every phone got one to every server it
    /// reaches over a flow.
    pub fn all_flows_up(&self) -> Option<Instant> {
        if !self.stream_sides.iter().any(|s| *s) {
            return None;
        }
        let mut last = Instant::ZERO;
        for p in &self.first_up {
            for side in Side::BOTH {
                if self.stream_sides[side.index()] {
                    last = last.max(p[side.index()]?);
                }
            }
        }
        Some(last)
    }

    /// The ladder's length, from a cycle's first probe to its deadline.
    pub fn ladder_total(&self) -> Duration {
        self.ladder_total
    }

    /// The pair changed health.
    pub fn on_fault(&mut self, f: &FaultChange) {
        self.faults.push(f.clone());
        let s = f.server.index();
        let now_down = f.health == Health::Down;
        let book = &mut self.down_spans;
        if now_down && !self.down[s] {
            book.latest[s] = Some(book.spans.len() as u32);
            book.spans.push(DownSpan { server: f.server, label: Arc::from(f.label.as_str()), at: f.at, end: None });
            book.records.push(Vec::with_capacity(self.phones.len()));
        } else if !now_down && self.down[s] {
            if let Some(d) = book.latest[s].and_then(|i| book.spans.get_mut(i as usize)) {
                d.end = Some(f.at);
            }
        }
        self.down[s] = now_down;
    }

    /// The tracker with its outage records complete, in [`Tracker::outages`]: every phone has one
    /// for every outage (those whose phone had no event about it are made here), each knows its
    /// outage's end, and they are in order (by outage, then by phone). Events after this make no
    /// outage records.
    pub fn finished(mut self) -> Self {
        let book = &mut self.down_spans;
        let phones = self.phones.len();
        book.closed = true;
        for (d, mut records) in book.spans.iter().zip(std::mem::take(&mut book.records)) {
            let mut seen = vec![false; phones];
            for o in &mut records {
                o.fault_end = d.end;
                if let Some(f) = seen.get_mut(o.phone as usize) {
                    *f = true;
                }
            }
            records
                .extend(seen.iter().enumerate().filter(|(_, f)| !**f).map(|(phone, _)| Outage::new(phone as u32, d)));
            records.sort_unstable_by_key(|o| o.phone);
            self.outages.extend(records);
        }
        for p in &mut self.phones {
            p.open = [None; 2];
        }
        self
    }

    /// Phone `phone` reported `ev` at `t`.
    pub fn on_event(&mut self, phone: u32, t: Instant, ev: &Event) {
        let few = self.phones.len() <= KEEP_ALL_SWITCHES;
        let Some(p) = self.phones.get_mut(phone as usize) else { return };
        let book = &mut self.down_spans;
        match *ev {
            Event::ProbeSent { server, attempt, .. } => {
                self.probes += 1;
                // The first probe starts the cycle, unless the flow it goes on was opened for it.
                if attempt == 1 && !p.in_cycle[server.index()] {
                    p.cycle_start[server.index()] = Some(t);
                }
                p.in_cycle[server.index()] = true;
            }
            Event::CycleResult { server, .. } => p.in_cycle[server.index()] = false,
            Event::Reply { server, rtt, status, retry_after, .. } => {
                self.replies += 1;
                p.last_answered[server.index()] = Some(t.saturating_sub(rtt));
                if let (503, Some(r @ 1..)) = (status, retry_after) {
                    if let Some((o, end)) = book.record(p, phone, server) {
                        if end.is_none() {
                            let until = t + Duration::from_secs(u64::from(r));
                            o.retry_until = Some(o.retry_until.map_or(until, |u| u.max(until)));
                        }
                    }
                }
            }
            Event::Held { to, .. } => {
                self.held += 1;
                if let Some((o, end)) = book.record(p, phone, to.other()) {
                    if o.held_at.is_none() && o.switch_at.is_none() && end.is_none() {
                        o.held_at = Some(t);
                    }
                }
            }
            Event::ServerDown { server, .. } => {
                if let Some((o, _)) = book.record(p, phone, server) {
                    if o.detected_at.is_none() && t >= o.fault_at {
                        o.detected_at = Some(t);
                        o.last_answered = p.last_answered[server.index()];
                        o.cycle_start = p.cycle_start[server.index()];
                    }
                }
            }
            Event::ServerUp { server } => {
                if let Some((o, end)) = book.record(p, phone, server) {
                    if o.up_at.is_none() && end.is_some_and(|e| t >= e) {
                        o.up_at = Some(t);
                    }
                }
            }
            Event::Switch { from, to, reason, .. } => {
                self.switch_count += 1;
                if from != to {
                    self.on_backup = match to {
                        Side::Backup => self.on_backup.saturating_add(1),
                        Side::Primary => self.on_backup.saturating_sub(1),
                    };
                    match self.backup_series.last_mut() {
                        Some(last) if t.saturating_duration_since(last.0) < SERIES_STEP => last.1 = self.on_backup,
                        _ => self.backup_series.push((t, self.on_backup)),
                    }
                }
                match reason {
                    SwitchReason::Failover => self.failovers += 1,
                    SwitchReason::Failback | SwitchReason::ManualFailback => self.failbacks += 1,
                    SwitchReason::Maintenance => self.maintenance_switches += 1,
                    SwitchReason::Planned => self.planned_switches += 1,
                    _ => {}
                }
                if phone == 0 || few {
                    self.switches.push(SwitchRecord { phone, at: t, from, to, reason });
                }
                if let Some((o, end)) = book.record(p, phone, from) {
                    if o.switch_at.is_none() && o.detected_at.is_some() && end.is_none_or(|e| t <= e) {
                        o.switch_at = Some(t);
                        o.switch_reason = Some(reason);
                        // The cycle that moved the phone (not always the one that first detected it);
                        // a maintenance switch came at an idle moment, not at the end of a cycle.
                        o.cycle_start = match reason {
                            SwitchReason::Failover => p.cycle_start[from.index()],
                            _ => None,
                        };
                    }
                }
                if let Some((o, end)) = book.record(p, phone, to) {
                    if o.failback_at.is_none() && end.is_some_and(|e| t >= e) {
                        o.failback_at = Some(t);
                    }
                }
            }
            Event::NoServerReachable => self.no_server += 1,
            Event::Ignored { .. } => self.ignored += 1,
            Event::FlowUp { server } => {
                self.flows_up += 1;
                if let Some(first) = self.first_up.get_mut(phone as usize) {
                    first[server.index()].get_or_insert(t);
                }
            }
            Event::FlowDown { reason, .. } => match self.flows_closed.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, n)) => *n += 1,
                None => self.flows_closed.push((reason, 1)),
            },
            _ => {}
        }
    }

    /// The outages of one phone.
    pub fn outages_of(&self, phone: u32) -> impl Iterator<Item = &Outage> {
        self.outages.iter().filter(move |o| o.phone == phone)
    }

    /// Summarises the run.
    pub fn summary(&self, peak_probe_rate: Option<(u64, u32)>) -> Summary {
        let mut h = Hists::new();
        for o in &self.outages {
            if let Some(d) = o.detection_from_fault() {
                h.detect_fault.record(d);
            }
            if let Some(d) = o.detection_from_last_answer() {
                h.detect_last.record(d);
            }
            if let Some(d) = o.fault_to_switch() {
                h.fault_switch.record(d);
            }
            if let Some(d) = o.cycle_to_switch() {
                h.cycle_switch.record(d);
                // Only switches that waited out the ladder (not a refusal or a failure status).
                if d >= self.ladder_total {
                    h.lag.record(d.saturating_sub_dur(self.ladder_total));
                }
            }
            if let Some(d) = o.failback_time() {
                h.failback.record(d);
            }
        }
        let mut setup = Hist::new();
        for (open, up) in self.first_open.iter().zip(&self.first_up) {
            for i in 0..2 {
                if let (Some(o), Some(u)) = (open[i], up[i]) {
                    setup.record(u.saturating_duration_since(o));
                }
            }
        }
        Summary {
            phones: self.phones.len(),
            detection_from_fault: h.detect_fault.stats(),
            detection_from_last_answer: h.detect_last.stats(),
            fault_to_switch: h.fault_switch.stats(),
            cycle_to_switch: h.cycle_switch.stats(),
            switch_after_deadline: h.lag.stats(),
            failback: h.failback.stats(),
            switches: self.switch_count,
            failovers: self.failovers,
            failbacks: self.failbacks,
            maintenance_switches: self.maintenance_switches,
            planned_switches: self.planned_switches,
            held: self.held,
            no_server: self.no_server,
            probes: self.probes,
            replies: self.replies,
            peak_probe_rate,
            flows_opened: self.flows_opened,
            flows_up: self.flows_up,
            flows_closed: self.flows_closed.iter().map(|(r, n)| (r.as_str(), *n)).collect(),
            all_flows_up: self.all_flows_up().map(|t| t - Instant::ZERO),
            first_flow_setup: setup.stats(),
        }
    }
}

trait SatSub {
    fn saturating_sub_dur(self, other: Duration) -> Duration;
}

impl SatSub for Duration {
    fn saturating_sub_dur(self, other: Duration) -> Duration {
        Duration::from_micros(self.as_micros().saturating_sub(other.as_micros()))
    }
}

/// Percentiles from hdrhistogram (3 significant digits); count, min and max kept exactly, so a
/// bound check on the max is not blurred by the histogram's buckets.
pub(crate) struct Hist {
    h: Option<Histogram<u64>>,
    count: u64,
    min: u64,
    max: u64,
}

impl Hist {
    pub(crate) fn new() -> Self {
        // 1 µs to 1 day.
        Hist { h: Histogram::new_with_bounds(1, 86_400_000_000, 3).ok(), count: 0, min: u64::MAX, max: 0 }
    }
    pub(crate) fn record(&mut self, d: Duration) {
        let v = d.as_micros();
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if let Some(h) = self.h.as_mut() {
            h.saturating_record(v);
        }
    }
    fn quantile(&self, h: &Histogram<u64>, q: f64) -> Duration {
        // The middle of the value's bucket, within the exact range.
        Duration::from_micros(h.median_equivalent(h.value_at_quantile(q)).clamp(self.min, self.max))
    }
    /// Adds every value `other` recorded.
    pub(crate) fn merge(&mut self, other: &Hist) {
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if let (Some(h), Some(o)) = (self.h.as_mut(), other.h.as_ref()) {
            let _ = h.add(o);
        }
    }
    pub(crate) fn stats(&self) -> Option<Dist> {
        let h = self.h.as_ref().filter(|_| self.count > 0)?;
        Some(Dist {
            count: self.count,
            min: Duration::from_micros(self.min),
            p50: self.quantile(h, 0.5),
            p99: self.quantile(h, 0.99),
            max: Duration::from_micros(self.max),
        })
    }
}

struct Hists {
    detect_fault: Hist,
    detect_last: Hist,
    fault_switch: Hist,
    cycle_switch: Hist,
    lag: Hist,
    failback: Hist,
}

impl Hists {
    fn new() -> Self {
        Hists {
            detect_fault: Hist::new(),
            detect_last: Hist::new(),
            fault_switch: Hist::new(),
            cycle_switch: Hist::new(),
            lag: Hist::new(),
            failback: Hist::new(),
        }
    }
}

/// A distribution of durations: exact count, min and max; p50 and p99 from hdrhistogram (3
/// significant digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dist {
    /// How many values.
    pub count: u64,
    /// The smallest.
    pub min: Duration,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
}

/// The figures of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// How many phones.
    pub phones: usize,
    /// Fault to detection.
    pub detection_from_fault: Option<Dist>,
    /// Last answered probe to detection.
    pub detection_from_last_answer: Option<Dist>,
    /// Fault to switch.
    pub fault_to_switch: Option<Dist>,
    /// The detecting cycle's first probe to the switch.
    pub cycle_to_switch: Option<Dist>,
    /// How far after the ladder's deadline the switch came.
    pub switch_after_deadline: Option<Dist>,
    /// End of fault to failback.
    pub failback: Option<Dist>,
    /// Switches of all phones.
    pub switches: u64,
    /// Failovers of all phones.
    pub failovers: u64,
    /// Failbacks of all phones.
    pub failbacks: u64,
    /// Switches away from a server that announced maintenance, all phones.
    pub maintenance_switches: u64,
    /// Switches before a planned window, all phones.
    pub planned_switches: u64,
    /// Switches held by a call, all phones.
    pub held: u64,
    /// "No server reachable" reports.
    pub no_server: u64,
    /// Probes sent.
    pub probes: u64,
    /// Matching replies.
    pub replies: u64,
    /// The busiest second at the pair: (second from the start, requests in it).
    pub peak_probe_rate: Option<(u64, u32)>,
    /// Flows (TCP, TLS) opened by all phones.
    pub flows_opened: u64,
    /// Flows that came up.
    pub flows_up: u64,
    /// Flows closed or failed, by reason.
    pub flows_closed: Vec<(&'static str, u64)>,
    /// From the start of the run until every phone had its first flow up to every server it reaches
    /// over TCP or TLS.
    pub all_flows_up: Option<Duration>,
    /// Each phone's first flow to each stream server: from asking for it to up (connect and
    /// handshake).
    pub first_flow_setup: Option<Dist>,
}

/// The summary as JSON (durations in microseconds): the counts, the distributions, and phone 0's
/// outages and switches.
pub fn to_json(tracker: &Tracker, summary: &Summary) -> serde_json::Value {
    use serde_json::json;
    let us = |d: Option<Duration>| d.map(|d| d.as_micros());
    let at = |t: Option<Instant>| t.map(|t| t.as_micros());
    let dist = |d: &Option<Dist>| {
        d.map(|d| {
            json!({"count": d.count, "min_us": d.min.as_micros(), "p50_us": d.p50.as_micros(),
                   "p99_us": d.p99.as_micros(), "max_us": d.max.as_micros()})
        })
    };
    let outages: Vec<_> = tracker
        .outages_of(0)
        .map(|o| {
            json!({
                "server": o.server.as_str(), "fault": &*o.label, "fault_at_us": o.fault_at.as_micros(),
                "fault_end_us": at(o.fault_end), "detected_at_us": at(o.detected_at),
                "detection_from_fault_us": us(o.detection_from_fault()),
                "detection_from_last_answer_us": us(o.detection_from_last_answer()),
                "held_at_us": at(o.held_at), "switch_at_us": at(o.switch_at),
                "switch_reason": o.switch_reason.map(|r| r.as_str()), "fault_to_switch_us": us(o.fault_to_switch()),
                "retry_until_us": at(o.retry_until),
                "cycle_to_switch_us": us(o.cycle_to_switch()), "up_at_us": at(o.up_at),
                "failback_at_us": at(o.failback_at), "failback_us": us(o.failback_time()),
            })
        })
        .collect();
    let switches: Vec<_> = tracker
        .switches
        .iter()
        .filter(|s| s.phone == 0)
        .map(|s| json!({"t_us": s.at.as_micros(), "from": s.from.as_str(), "to": s.to.as_str(), "reason": s.reason.as_str()}))
        .collect();
    json!({
        "phones": summary.phones, "probes": summary.probes, "replies": summary.replies,
        "switches": summary.switches, "failovers": summary.failovers, "failbacks": summary.failbacks,
        "maintenance_switches": summary.maintenance_switches, "planned_switches": summary.planned_switches,
        "held": summary.held,
        "no_server_reachable": summary.no_server,
        "peak_probe_rate": summary.peak_probe_rate.map(|(s, n)| json!({"second": s, "requests": n})),
        "flows": {
            "opened": summary.flows_opened, "up": summary.flows_up,
            "closed": summary.flows_closed.iter().map(|(r, n)| (r.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "all_up_us": summary.all_flows_up.map(|d| d.as_micros()),
            "first_setup": dist(&summary.first_flow_setup),
        },
        "detection_from_fault": dist(&summary.detection_from_fault),
        "detection_from_last_answer": dist(&summary.detection_from_last_answer),
        "fault_to_switch": dist(&summary.fault_to_switch),
        "cycle_to_switch": dist(&summary.cycle_to_switch),
        "switch_after_deadline": dist(&summary.switch_after_deadline),
        "failback": dist(&summary.failback),
        "phone0": {"outages": outages, "switches": switches},
    })
}

/// Seconds with millisecond precision, e.g. `16.600 s`.
pub fn secs(d: Duration) -> String {
    format!("{}.{:03} s", d.as_millis() / 1000, d.as_millis() % 1000)
}

/// Milliseconds with microsecond precision, e.g. `0.412 ms`.
pub fn millis(d: Duration) -> String {
    format!("{}.{:03} ms", d.as_micros() / 1000, d.as_micros() % 1000)
}

fn at(t: Instant) -> String {
    secs(t - Instant::ZERO)
}

fn opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), secs)
}

/// How long phone 0 had `window`'s server in force inside the window (zero is what a planned switch
/// is for): the side in force starts as the primary and follows phone 0's switches.
pub fn in_force_inside(tracker: &Tracker, window: &PlannedSpan) -> Duration {
    let (start, end) = (Instant::ZERO + window.start, Instant::ZERO + window.end);
    let mut side = Side::Primary;
    let mut since = Instant::ZERO;
    let mut total = Duration::ZERO;
    let mut add = |side: Side, from: Instant, to: Instant| {
        let (a, b) = (from.max(start), to.min(end));
        if side == window.side && b > a {
            total = total + (b - a);
        }
    };
    for sw in tracker.switches.iter().filter(|s| s.phone == 0) {
        add(side, since, sw.at);
        side = sw.to;
        since = sw.at;
    }
    add(side, since, Instant::MAX);
    total
}

/// The summary as text: outages of phone 0, switches, and for fleets the distributions.
pub fn render(tracker: &Tracker, summary: &Summary) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "== summary ==");
    let mut kinds = format!("{} failover, {} failback", summary.failovers, summary.failbacks);
    for (n, what) in [(summary.maintenance_switches, "maintenance"), (summary.planned_switches, "planned")] {
        if n > 0 {
            let _ = write!(kinds, ", {n} {what}");
        }
    }
    if summary.held > 0 {
        let _ = write!(kinds, "; {} held by a call", summary.held);
    }
    let _ = writeln!(
        s,
        "phones {}, probes {}, replies {}, switches {} ({kinds}), \"no server reachable\" {}",
        summary.phones, summary.probes, summary.replies, summary.switches, summary.no_server
    );
    if summary.flows_opened > 0 {
        let closed: Vec<String> = summary.flows_closed.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let _ = writeln!(
            s,
            "flows: {} opened, {} up, {} closed{}{}",
            summary.flows_opened,
            summary.flows_up,
            summary.flows_closed.iter().map(|(_, n)| n).sum::<u64>(),
            if closed.is_empty() { String::new() } else { format!(" ({})", closed.join(", ")) },
            summary.all_flows_up.map_or(String::new(), |d| format!("; every phone's flows up after {}", millis(d)))
        );
    }
    let mine: Vec<&Outage> = tracker.outages_of(0).collect();
    if mine.is_empty() {
        let _ = writeln!(s, "outages: none (no server went down)");
    } else {
        let _ = writeln!(s, "outages{}:", if summary.phones > 1 { " (phone 0)" } else { "" });
        for o in mine {
            let _ = writeln!(
                s,
                "  {} {} at {}{}",
                o.server,
                if o.label.is_empty() { "down" } else { &o.label },
                at(o.fault_at),
                o.fault_end.map_or(" (until the end)".to_string(), |e| format!(" until {}", at(e)))
            );
            match o.detected_at {
                None => {
                    let _ = writeln!(s, "    not detected (no probe cycle met it)");
                }
                Some(d) => {
                    let _ = writeln!(
                        s,
                        "    detected at {}: {} after the fault, {} after the last answered probe",
                        at(d),
                        opt(o.detection_from_fault()),
                        opt(o.detection_from_last_answer())
                    );
                }
            }
            if let Some(h) = o.held_at {
                let _ = writeln!(s, "    held on it from {} by a call in progress", at(h));
            }
            if let Some(sw) = o.switch_at {
                let lag = o.cycle_to_switch().map(|c| c.saturating_sub_dur(tracker.ladder_total));
                let _ = writeln!(
                    s,
                    "    switched away at {}{}: {} after the fault{}",
                    at(sw),
                    match o.switch_reason {
                        Some(r @ (SwitchReason::Maintenance | SwitchReason::Planned)) => format!(" ({})", r.as_str()),
                        _ => String::new(),
                    },
                    secs(sw - o.fault_at),
                    match (o.cycle_to_switch(), lag) {
                        (Some(c), Some(l)) if c >= tracker.ladder_total => format!(
                            ", {} after its cycle's first probe ({} after the ladder's deadline)",
                            secs(c),
                            millis(l)
                        ),
                        (Some(c), _) =>
                            format!(", {} after its cycle's first probe (before the ladder's deadline)", secs(c)),
                        _ => String::new(),
                    }
                );
            }
            if let Some(fb) = o.failback_at {
                let _ = writeln!(
                    s,
                    "    back on it at {}: {} after it recovered{}",
                    at(fb),
                    opt(o.failback_time()),
                    match o.retry_until {
                        Some(u) if fb >= u => format!(", {} after its last Retry-After ran out", secs(fb - u)),
                        Some(u) => format!(", {} before its last Retry-After ran out", secs(u - fb)),
                        None => String::new(),
                    }
                );
            } else if let Some(u) = o.retry_until {
                let _ = writeln!(s, "    its last Retry-After runs out at {}", at(u));
            }
        }
    }
    if !tracker.switches.is_empty() {
        let _ = writeln!(s, "switches{}:", if summary.phones > 1 { " (phone 0)" } else { "" });
        for sw in tracker.switches.iter().filter(|w| w.phone == 0) {
            let _ = writeln!(s, "  {} {} -> {} ({})", at(sw.at), sw.from, sw.to, sw.reason.as_str());
        }
    }
    if summary.phones > 1 {
        let _ = writeln!(s, "distributions over {} phones (p50 / p99 / max, n):", summary.phones);
        let row = |s: &mut String, name: &str, d: &Option<Dist>, f: fn(Duration) -> String| {
            if let Some(d) = d {
                let _ = writeln!(s, "  {name:<38} {} / {} / {}  (n={})", f(d.p50), f(d.p99), f(d.max), d.count);
            }
        };
        row(&mut s, "detection after the fault", &summary.detection_from_fault, secs);
        row(&mut s, "detection after the last answer", &summary.detection_from_last_answer, secs);
        row(&mut s, "fault to switch", &summary.fault_to_switch, secs);
        row(&mut s, "cycle's first probe to switch", &summary.cycle_to_switch, secs);
        row(&mut s, "switch after the ladder's deadline", &summary.switch_after_deadline, millis);
        row(&mut s, "failback after recovery", &summary.failback, secs);
        row(&mut s, "first flow: open to up", &summary.first_flow_setup, millis);
    }
    if let Some((sec, n)) = summary.peak_probe_rate {
        let _ = writeln!(s, "peak probe rate at the pair: {n} requests/s (second {sec})");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::DownReason;

    fn fault(at_ms: u64, server: Side, down: bool) -> FaultChange {
        FaultChange {
            at: Instant::from_millis(at_ms),
            server,
            health: if down { Health::Down } else { Health::Normal },
            label: if down { "blackhole".into() } else { String::new() },
        }
    }

    #[test]
    fn every_phone_has_a_record_of_every_outage_in_order_once_finished() {
        let mut t = Tracker::new(3, Duration::from_millis(1600));
        t.on_fault(&fault(1_000, Side::Primary, true));
        // Only phone 2 sees it go down and leaves; phone 1 never hears of it.
        let down = Event::ServerDown { server: Side::Primary, reason: DownReason::Timeout };
        t.on_event(2, Instant::from_millis(2_600), &down);
        let switch =
            Event::Switch { from: Side::Primary, to: Side::Backup, reason: SwitchReason::Failover, generation: 1 };
        t.on_event(2, Instant::from_millis(2_600), &switch);
        t.on_fault(&fault(5_000, Side::Primary, false));
        t.on_event(0, Instant::from_millis(5_500), &down);
        t.on_fault(&fault(9_000, Side::Primary, true));
        let t = t.finished();
        let seen: Vec<(u32, u64, Option<u64>)> =
            t.outages.iter().map(|o| (o.phone, o.fault_at.as_millis(), o.fault_end.map(|e| e.as_millis()))).collect();
        assert_eq!(
            seen,
            [
                (0, 1_000, Some(5_000)),
                (1, 1_000, Some(5_000)),
                (2, 1_000, Some(5_000)),
                (0, 9_000, None),
                (1, 9_000, None),
                (2, 9_000, None)
            ]
        );
        // The records made by events keep what the events said.
        assert_eq!(t.outages[2].switch_at, Some(Instant::from_millis(2_600)));
        assert_eq!(t.outages[0].detected_at, Some(Instant::from_millis(5_500)));
        assert_eq!(t.outages[1].detected_at, None);
        assert!(t.outages.iter().all(|o| &*o.label == "blackhole"));
    }
}
