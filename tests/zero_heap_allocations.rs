//! The core allocates nothing: a counting global allocator watches a simulated 24 hours with outages,
//! failovers and failbacks, 503 answers, forged replies and garbage datagrams, refusals, calls, forcing,
//! pausing, live configuration updates, planned windows and failed applies. The harness here is
//! allocation-free too (stack buffers only), and it counts what happened so that each path is known to
//! have run inside the counted window.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use sip_failover::core::drive::{self, Ack, Io, Sent};
use sip_failover::core::{Agent, Command, Config, DownReason, Duration, Event, Instant, Side, SwitchReason, Transmit};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the test's own thread while the day runs: allocations by the test harness's other
    /// threads (its output capture, its timers) are not the core's.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Writes a 200/503 response to `req` into `out` by copying its Via, From, To, Call-ID and CSeq lines.
fn respond(req: &[u8], status: &[u8], out: &mut [u8; 1500]) -> usize {
    let mut n = 0;
    let mut put = |b: &[u8], n: &mut usize| {
        out[*n..*n + b.len()].copy_from_slice(b);
        *n += b.len();
    };
    put(b"SIP/2.0 ", &mut n);
    put(status, &mut n);
    put(b" X\r\n", &mut n);
    for line in req.split(|&b| b == b'\n') {
        if [&b"Via:"[..], b"From:", b"To:", b"Call-ID:", b"CSeq:"].iter().any(|p| line.starts_with(p)) {
            put(line, &mut n);
            put(b"\n", &mut n);
        }
    }
    put(b"Content-Length: 0\r\n\r\n", &mut n);
    n
}

/// Where `needle` starts in `hay`, without allocating.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The day's side of a drain, without allocating: answers each probe as the schedule says, keeps
/// forgeries of some replies for after the drain, counts the events and acknowledges switches (every
/// fourth as failed).
struct Day<'a> {
    p: SocketAddr,
    b: SocketAddr,
    primary_status: Option<&'static [u8]>,
    backup_up: bool,
    inflight: &'a mut [(u64, Side, usize, [u8; 1500]); 4],
    resp: &'a mut [u8; 1500],
    forged: [(SocketAddr, usize, [u8; 1500]); 3],
    forged_n: usize,
    transmits: &'a mut u64,
    switch_events: &'a mut u32,
    seen: &'a mut Seen,
}

impl Io for Day<'_> {
    fn transmit(&mut self, now: Instant, t: &Transmit, bytes: &[u8]) -> Sent {
        *self.transmits += 1;
        let from = if t.server == Side::Primary { self.p } else { self.b };
        let status =
            if t.server == Side::Primary { self.primary_status } else { self.backup_up.then_some(&b"200"[..]) };
        let Some(status) = status else {
            // Every seventh unanswered probe is refused by the network (ICMP port unreachable).
            return if *self.transmits % 7 == 0 { Sent::Refused } else { Sent::Sent };
        };
        let len = respond(bytes, status, self.resp);
        if let Some(slot) = self.inflight.iter_mut().find(|s| s.0 == u64::MAX) {
            slot.3[..len].copy_from_slice(&self.resp[..len]);
            *slot = (now.as_micros() + 7_000, t.server, len, slot.3);
        }
        if *self.transmits % 5 == 0 && self.forged_n + 2 <= self.forged.len() {
            self.forged[self.forged_n] = (STRANGER, len, *self.resp);
            self.forged_n += 1;
            if let Some(i) = find(&self.resp[..len], b"branch=z9hG4bK") {
                let mut forged = *self.resp;
                let at = i + b"branch=z9hG4bK".len();
                forged[at] = if forged[at] == b'x' { b'y' } else { b'x' };
                self.forged[self.forged_n] = (from, len, forged);
                self.forged_n += 1;
            }
        }
        Sent::Sent
    }

    fn event(&mut self, _: Instant, e: &Event) -> Ack {
        count(self.seen, self.switch_events, e)
    }
}

/// Counts `e`; for a switch, says how the firmware applied it (every fourth one failed).
fn count(seen: &mut Seen, switch_events: &mut u32, e: &Event) -> Ack {
    match *e {
        Event::Switch { reason, .. } => {
            *switch_events += 1;
            seen.switches += 1;
            match reason {
                SwitchReason::Failback => seen.failbacks += 1,
                SwitchReason::Forced => seen.forced += 1,
                SwitchReason::Planned => seen.planned += 1,
                _ => {}
            }
            // Every fourth switch cannot be applied by the firmware.
            return if *switch_events % 4 == 0 { Ack::Failed } else { Ack::Applied };
        }
        Event::Applied { .. } => seen.applied += 1,
        Event::ApplyFailed { .. } => seen.apply_failed += 1,
        Event::ServerDown { reason: DownReason::Status { code: 503, .. }, .. } => seen.down_503 += 1,
        Event::Reply { status: 503, .. } => seen.replies_503 += 1,
        Event::Ignored { .. } => seen.ignored += 1,
        Event::AttemptRefused { .. } => seen.refused += 1,
        Event::ProbingPaused => seen.paused += 1,
        Event::ProbingResumed => seen.resumed += 1,
        Event::Held { .. } => seen.held += 1,
        _ => {}
    }
    Ack::None
}

/// The drain after the forgeries: only events.
struct After<'a> {
    seen: &'a mut Seen,
    switch_events: &'a mut u32,
}

impl Io for After<'_> {
    fn transmit(&mut self, _: Instant, _: &Transmit, _: &[u8]) -> Sent {
        Sent::Sent
    }
    fn event(&mut self, _: Instant, e: &Event) -> Ack {
        count(self.seen, self.switch_events, e)
    }
}

fn day_after<'a>(seen: &'a mut Seen, switch_events: &'a mut u32) -> After<'a> {
    After { seen, switch_events }
}

const STRANGER: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(192, 0, 2, 9), 5060));

/// What the day went through, counted without allocating.
#[derive(Debug, Default)]
struct Seen {
    switches: u32,
    failbacks: u32,
    forced: u32,
    planned: u32,
    applied: u32,
    apply_failed: u32,
    down_503: u32,
    replies_503: u32,
    ignored: u32,
    refused: u32,
    paused: u32,
    resumed: u32,
    held: u32,
    reconfigured: u32,
    windows: u32,
}

#[test]
fn a_simulated_day_allocates_nothing() {
    let p: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let b: SocketAddr = "127.0.0.2:5060".parse().unwrap();
    let mut config = Config::new(p, "pbx-a.example").with_backup(b, "pbx-b.example");
    config.fast.refused_ends_attempt = true;
    let mut slower = config;
    slower.interval = Duration::from_secs(20);
    let mut agent = Agent::new(config, Instant::ZERO, 5).unwrap();
    let mut buf = [0u8; 1500];
    let mut resp = [0u8; 1500];
    let garbage: &[u8] = b"\x00\xffSIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n";
    // At most a few datagrams in flight: (deliver at µs, side, len, bytes).
    let mut inflight: [(u64, Side, usize, [u8; 1500]); 4] = [(u64::MAX, Side::Primary, 0, [0; 1500]); 4];
    let mut seen = Seen::default();
    let mut transmits = 0u64;
    let mut switch_events = 0u32;
    let day = 24 * 3600 * 1_000_000u64;
    let mut now = Instant::ZERO;
    let mut last_minute = u64::MAX;

    COUNTING.with(|c| c.set(true));
    let mut steps = 0u64;
    while now.as_micros() < day && steps < 10_000_000 {
        steps += 1;
        let minute = now.as_micros() / 60_000_000;
        // Every hour the primary answers 503 for 2 minutes and is silent for 3; every 6 hours the
        // backup is silent for 3.
        let primary_status: Option<&[u8]> = match minute % 60 {
            0..=1 => Some(b"503"),
            2..=4 => None,
            _ => Some(b"200"),
        };
        let backup_up = minute % 360 < 200 || minute % 360 >= 203;
        // Once at the start of each minute, the commands the schedule names (a command that fails is
        // part of the test too: nothing may allocate on that path either). A call every 90 minutes,
        // every other one while the primary comes back.
        if minute != last_minute {
            last_minute = minute;
            let call = match minute % 90 {
                4 => Some(Command::InCall(true)),
                8 => Some(Command::InCall(false)),
                _ => None,
            };
            let scheduled = match minute % 360 {
                100 => Some(Command::Force(Side::Backup)),
                110 | 125 => Some(Command::Release),
                120 => Some(Command::Force(Side::Primary)),
                140 => Some(Command::Pause),
                150 => Some(Command::Resume),
                230 => Some(Command::PlannedWindow {
                    side: Side::Primary,
                    start: now + Duration::from_secs(20 * 60),
                    end: now + Duration::from_secs(30 * 60),
                }),
                300 => Some(Command::PlannedWindow {
                    side: Side::Backup,
                    start: now + Duration::from_secs(60),
                    end: now + Duration::from_secs(120),
                }),
                350 => Some(Command::ClearPlannedWindows),
                355 => Some(Command::TransactionFailed),
                _ => None,
            };
            for cmd in [call, scheduled].into_iter().flatten() {
                if matches!(cmd, Command::PlannedWindow { .. }) {
                    seen.windows += 1;
                }
                let _ = agent.handle_command(now, cmd);
            }
            match minute % 360 {
                160 => {
                    agent.update_config(now, slower).unwrap();
                    seen.reconfigured += 1;
                }
                170 => {
                    agent.update_config(now, config).unwrap();
                    seen.reconfigured += 1;
                }
                _ => {}
            }
        }
        let mut day = Day {
            p,
            b,
            primary_status,
            backup_up,
            inflight: &mut inflight,
            resp: &mut resp,
            forged: [(STRANGER, 0, [0; 1500]); 3],
            forged_n: 0,
            transmits: &mut transmits,
            switch_events: &mut switch_events,
            seen: &mut seen,
        };
        drive::drain(&mut agent, now, &mut buf, &mut day);
        // Every few probes: the same reply with a forged branch, the same from a stranger, and garbage;
        // all must be ignored.
        let (forged, n) = (day.forged, day.forged_n);
        for (from, len, bytes) in &forged[..n] {
            agent.handle_datagram(now, *from, &bytes[..*len]);
            agent.handle_datagram(now, p, garbage);
        }
        drive::drain(&mut agent, now, &mut buf, &mut day_after(&mut seen, &mut switch_events));
        // The next delivery, timer or minute boundary (so that the schedule runs while paused too).
        let next_delivery = inflight.iter().map(|s| s.0).min().unwrap_or(u64::MAX);
        let next_timer = agent.poll_timeout().map(|t| t.as_micros()).unwrap_or(u64::MAX);
        let next_minute = (minute + 1) * 60_000_000;
        if next_delivery <= next_timer && next_delivery <= next_minute {
            now = Instant::from_micros(next_delivery);
            let i = inflight.iter().position(|s| s.0 == next_delivery).unwrap();
            let (_, side, len, bytes) = inflight[i];
            inflight[i].0 = u64::MAX;
            agent.handle_datagram(now, if side == Side::Primary { p } else { b }, &bytes[..len]);
        } else {
            now = Instant::from_micros(next_timer.min(next_minute));
            agent.handle_timeout(now);
        }
    }
    COUNTING.with(|c| c.set(false));

    assert!(now.as_micros() >= day, "simulation stopped early at {now:?}");
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0, "the core allocated on the heap; the day went through {seen:?}");
    assert_eq!(agent.stats().events_dropped, 0);
    // Every path ran inside the counted window.
    assert!(seen.switches >= 48 && seen.failbacks >= 20, "{seen:?}");
    assert!(seen.forced >= 4 && seen.planned >= 4, "{seen:?}");
    assert!(seen.applied >= 40 && seen.apply_failed >= 10, "{seen:?}");
    assert!(seen.down_503 >= 20 && seen.replies_503 >= 100, "{seen:?}");
    assert!(seen.ignored >= 1000 && seen.refused >= 10, "{seen:?}");
    assert!(seen.paused == 4 && seen.resumed == 4 && seen.held >= 1, "{seen:?}");
    assert!(seen.reconfigured == 8 && seen.windows == 8, "{seen:?}");
}
