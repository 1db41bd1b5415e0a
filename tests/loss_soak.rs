//! The loss soak: 24 hours on virtual time with 10 % and 30 % independent loss in each direction on
//! the link to the primary (the backup's link is lossless), five seeds each, with the core's default
//! failback (after 2 alive cycles, no spread); and at 30 % once more with the 30 s failback spread of
//! `firmware-config/phone.toml`.
//!
//! The model, derived in docs/loss-soak.md: an attempt fails when its request or its reply is lost,
//! `a = 1 - (1 - p)^2`; a cycle of the primary fails when all three attempts fail, `q = a^3`. A
//! failover is a failed primary cycle while on the primary; the phone then stays on the backup until
//! the primary has answered `n` cycles in a row (`n = failback.after_cycles`, plus one when the
//! device's spread reaches past the next cycle's failure deadline). The failovers of a day are counted
//! by a Markov chain over "on the primary" and "on the backup, j alive cycles", whose exact mean and
//! variance over 5760 cycles bound each run at mean ± 4 σ.
//!
//! Every run is also checked event by event: the agent's verdict on each cycle is the one the link
//! dealt it, every switch is the one the policy calls for at that microsecond, generations count up
//! by one, no failback comes before `after_cycles` alive cycles (plus the spread), and no switch is
//! made without a probe result that arrived after the previous switch.
//!
//! `cargo test --test loss_soak -- --nocapture` prints the table.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::thread;

use sip_failover::core::drive::{self, Ack, Io};
use sip_failover::core::{Agent, Config, Duration, Event, Instant, Side, SwitchReason, Transmit};

const PRIMARY: &str = "127.0.0.1:5060";
const BACKUP: &str = "127.0.0.2:5060";

/// The keep-alive interval, in µs.
const INTERVAL_US: u64 = 15_000_000;
/// 24 hours of 15 s cycles.
const CYCLES: usize = 5760;
/// The ladder the model is written for (the and `Ladder::DEFAULT`'s): three attempts, and the
/// cycle fails 1600 ms after it starts. Written out rather than read from the agent's configuration,
/// so an agent that gives up after fewer attempts fails the soak.
const ATTEMPTS: u8 = 3;
const LAST_ATTEMPT_AT_US: u64 = 1_200_000;
const CYCLE_FAILS_AFTER_US: u64 = 1_600_000;
/// From a probe leaving to its reply arriving, when neither is lost: drawn in this range (µs), far
/// below the 400 ms between attempts, so each reply arrives before the next attempt would leave.
const REPLY_DELAY_US: (u64, u64) = (1_000, 20_000);

const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];
const LOSS: [f64; 2] = [0.10, 0.30];
/// The largest failback spread, in seconds: the core's default, and firmware-config/phone.toml's.
const SPREADS_S: [u64; 2] = [0, 30];
/// How many standard deviations a run's count may stray from the model's mean.
const SIGMAS: f64 = 4.0;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config(spread_s: u64) -> Config {
    let mut c = Config::new(addr(PRIMARY), "pbx-a.example").with_backup(addr(BACKUP), "pbx-b.example");
    c.failback.spread = Duration::from_secs(spread_s);
    c
}

// ---- the link ----

/// SplitMix64: the link's loss and delay draws.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// `true` with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < p
    }
    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Builds a 200 to a request by echoing its Via, From, To (with a tag), Call-ID and CSeq lines, as
/// tests/common does: a server written without the crate's own parser.
fn ok_to(request: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.len());
    out.extend_from_slice(b"SIP/2.0 200 OK\r\n");
    for line in request.split_terminator('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (name, _) = line.split_once(':').unwrap_or_default();
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" => out.extend_from_slice(line.as_bytes()),
            "To" => {
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b";tag=srv1");
            }
            _ => continue,
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// What the link did to the primary's probes in one cycle: the ground truth the agent is held to.
#[derive(Debug, Clone, Copy, Default)]
struct CycleTruth {
    attempts: u8,
    requests_lost: u8,
    replies_lost: u8,
    /// When a reply of the primary reached the agent, if one got through.
    answered_at: Option<u64>,
}

fn cycle_of(t_us: u64) -> usize {
    (t_us / INTERVAL_US) as usize
}

/// The agent on virtual time, its link to the primary losing each request and each reply with
/// probability `p`.
struct Soak {
    agent: Agent,
    now: u64,
    p: f64,
    link: SplitMix64,
    /// Replies in flight: (delivery time in µs, from, bytes).
    inflight: Vec<(u64, SocketAddr, Vec<u8>)>,
    events: Vec<(u64, Event)>,
    truth: Vec<CycleTruth>,
}

/// The lossy link's side of a drain: drops requests and replies to the primary as drawn, records
/// what it did in the cycle's truth, and applies every switch.
struct Link<'a> {
    now: u64,
    p: f64,
    link: &'a mut SplitMix64,
    inflight: &'a mut Vec<(u64, SocketAddr, Vec<u8>)>,
    events: &'a mut Vec<(u64, Event)>,
    truth: &'a mut [CycleTruth],
}

impl Io for Link<'_> {
    fn transmit(&mut self, _: Instant, t: &Transmit, bytes: &[u8]) -> drive::Sent {
        let request = std::str::from_utf8(bytes).expect("a probe is ASCII");
        let lossy = t.server == Side::Primary;
        let truth = &mut self.truth[cycle_of(self.now).min(CYCLES)];
        if lossy {
            truth.attempts += 1;
            if self.link.chance(self.p) {
                truth.requests_lost += 1;
                return drive::Sent::Sent;
            }
            if self.link.chance(self.p) {
                truth.replies_lost += 1;
                return drive::Sent::Sent;
            }
        }
        let at = self.now + self.link.between(REPLY_DELAY_US.0, REPLY_DELAY_US.1);
        if lossy {
            assert!(truth.answered_at.is_none(), "a probe after a reply got through, cycle {}", cycle_of(at));
            truth.answered_at = Some(at);
        }
        self.inflight.push((at, t.destination, ok_to(request)));
        drive::Sent::Sent
    }

    fn event(&mut self, _: Instant, e: &Event) -> Ack {
        self.events.push((self.now, *e));
        if matches!(e, Event::Switch { .. }) {
            Ack::Applied
        } else {
            Ack::None
        }
    }
}

impl Soak {
    fn new(config: Config, p: f64, seed: u64) -> Soak {
        let agent = Agent::new(config, Instant::ZERO, seed).expect("the configuration is valid");
        let mut soak = Soak {
            agent,
            now: 0,
            p,
            link: SplitMix64(seed),
            inflight: vec![],
            events: vec![],
            truth: vec![CycleTruth::default(); CYCLES + 1],
        };
        soak.drain();
        soak
    }

    /// Drains every transmit through the link, then every event, acknowledging each switch as
    /// applied, until the agent has nothing more to say.
    fn drain(&mut self) {
        let Soak { agent, now, p, link, inflight, events, truth } = self;
        let mut io = Link { now: *now, p: *p, link, inflight, events, truth };
        drive::drain(agent, Instant::from_micros(*now), &mut [0u8; 1500], &mut io);
    }

    /// Runs until `end_us`, jumping to the next timer or delivery; a delivery goes first on a tie.
    fn run_until(&mut self, end_us: u64) {
        // A generous bound on the steps (a cycle takes about ten), so a clock that stops moving
        // fails the test instead of hanging it.
        for _ in 0..100 * (end_us / INTERVAL_US + 1) {
            let timer = self.agent.poll_timeout().map(Instant::as_micros);
            let delivery = self.inflight.iter().map(|d| d.0).min();
            let next = timer.into_iter().chain(delivery).min().expect("a probe cycle is always scheduled");
            if next > end_us {
                return;
            }
            self.now = self.now.max(next);
            let now = Instant::from_micros(self.now);
            if delivery == Some(next) {
                let i = self.inflight.iter().position(|d| d.0 == next).unwrap();
                let (_, from, bytes) = self.inflight.swap_remove(i);
                self.agent.handle_datagram(now, from, &bytes);
            } else {
                self.agent.handle_timeout(now);
            }
            self.drain();
        }
        panic!("the virtual clock did not reach {end_us} µs");
    }
}

// ---- the model ----

/// The chance an attempt fails: its request or its reply is lost.
fn attempt_fails(p: f64) -> f64 {
    1.0 - (1.0 - p) * (1.0 - p)
}

/// The chance a cycle of the primary fails: every attempt fails.
fn cycle_fails(p: f64) -> f64 {
    attempt_fails(p).powi(i32::from(ATTEMPTS))
}

/// How many cycles after the one completing the alive streak must also be alive before the
/// failback, for a device whose spread is `spread_us` and whose streak completed `reply_us` after
/// its cycle began: the cycles whose failure deadline comes before the failback is due.
fn extra_cycles(spread_us: u64, reply_us: u64) -> usize {
    (1..).take_while(|j| j * INTERVAL_US + CYCLE_FAILS_AFTER_US <= reply_us + spread_us).count()
}

/// The exact mean and standard deviation of the failovers in `cycles` cycles, starting on the
/// primary, when each cycle of the primary fails with probability `q` and failback takes `need`
/// alive cycles in a row.
///
/// A Markov chain over "on the primary" (state 0) and "on the backup with j alive cycles" (state
/// 1 + j, j < need), carrying the first two moments of the count in each state.
fn failover_moments(q: f64, need: usize, cycles: usize) -> (f64, f64) {
    const MAX_STATES: usize = 8;
    assert!(need < MAX_STATES, "need {need} is beyond the chain's size");
    let states = need + 1;
    let (mut pr, mut m1, mut m2) = ([0.0; MAX_STATES], [0.0; MAX_STATES], [0.0; MAX_STATES]);
    pr[0] = 1.0;
    for _ in 0..cycles {
        let (mut np, mut n1, mut n2) = ([0.0; MAX_STATES], [0.0; MAX_STATES], [0.0; MAX_STATES]);
        let mut step = |from: usize, to: usize, t: f64, inc: f64| {
            np[to] += t * pr[from];
            n1[to] += t * (m1[from] + inc * pr[from]);
            n2[to] += t * (m2[from] + 2.0 * inc * m1[from] + inc * inc * pr[from]);
        };
        // On the primary: a failed cycle is a failover.
        step(0, 0, 1.0 - q, 0.0);
        step(0, 1, q, 1.0);
        // On the backup: an alive cycle adds to the streak (and completes it at `need`), a failed
        // one starts it again.
        for j in 0..need {
            let to = if j + 1 == need { 0 } else { j + 2 };
            step(1 + j, to, 1.0 - q, 0.0);
            step(1 + j, 1, q, 0.0);
        }
        (pr, m1, m2) = (np, n1, n2);
    }
    let mean: f64 = m1[..states].iter().sum();
    let var = m2[..states].iter().sum::<f64>() - mean * mean;
    (mean, var.max(0.0).sqrt())
}

/// The same from the renewal-reward theorem (for a long run): a renewal is one stay on the primary
/// (geometric, mean `1/q`) plus one stay on the backup (the cycles until `need` alive in a row).
/// Returns the mean and standard deviation of the count, and the mean renewal length in cycles.
fn failover_renewal(q: f64, need: usize, cycles: usize) -> (f64, f64, f64) {
    let s = 1.0 - q;
    let n = need as i32;
    let on_primary = (1.0 / q, s / (q * q));
    let on_backup = (
        (1.0 - s.powi(n)) / (q * s.powi(n)),
        (1.0 - (2.0 * f64::from(n) + 1.0) * q * s.powi(n) - s.powi(2 * n + 1)) / (q * q * s.powi(2 * n)),
    );
    let mu = on_primary.0 + on_backup.0;
    let var = on_primary.1 + on_backup.1;
    let t = cycles as f64;
    (t / mu, (t * var / mu.powi(3)).sqrt(), mu)
}

// ---- one run ----

#[derive(Debug, Clone)]
struct Run {
    p: f64,
    spread_max_s: u64,
    seed: u64,
    /// The device's spread, drawn by the agent in `0..=spread_max`.
    spread_us: u64,
    /// The alive cycles a failback takes for this device, lowest and highest (they differ only for a
    /// spread whose extra cycle depends on which attempt answered).
    need: (usize, usize),
    attempts: u64,
    requests_lost: u64,
    replies_lost: u64,
    failed_cycles: u64,
    failovers: u64,
    failbacks: u64,
    backup_us: u64,
    violations: Vec<String>,
}

/// One cycle's result for the primary, as the agent reported it: when, and whether it answered.
type Verdict = Option<(u64, bool)>;

fn soak(p: f64, spread_max_s: u64, seed: u64) -> Run {
    let cfg = config(spread_max_s);
    let after = usize::from(cfg.failback.after_cycles.get());
    let end = CYCLES as u64 * INTERVAL_US - 1;
    let mut s = Soak::new(cfg, p, seed);
    s.run_until(end);
    let spread_us = s.agent.failback_spread().as_micros();
    let mut v = vec![];
    macro_rules! violation {
        ($($arg:tt)*) => {
            if v.len() < 20 {
                v.push(format!($($arg)*));
            }
        };
    }

    // The agent's verdict on every cycle of each server, against what the link did.
    let mut primary: Vec<Verdict> = vec![None; CYCLES];
    let mut backup_answered: Vec<Option<u64>> = vec![None; CYCLES];
    for &(t, e) in &s.events {
        let c = cycle_of(t);
        let verdict = match e {
            Event::Reply { server: Side::Primary, status: 200, .. } => Some(true),
            Event::AttemptTimedOut { server: Side::Primary, attempt } if attempt >= ATTEMPTS => Some(false),
            Event::Reply { server: Side::Backup, status: 200, .. } => {
                backup_answered[c] = Some(t);
                None
            }
            Event::Reply { .. } => {
                violation!("{t} µs: a reply that is not a 200: {e:?}");
                None
            }
            Event::AttemptTimedOut { server: Side::Backup, .. } => {
                violation!("{t} µs: the lossless backup timed out");
                None
            }
            Event::Ignored { reason } => {
                violation!("{t} µs: a reply was ignored: {}", reason.as_str());
                None
            }
            Event::NoServerReachable | Event::Held { .. } | Event::ApplyFailed { .. } => {
                violation!("{t} µs: unexpected {}", e.name());
                None
            }
            _ => None,
        };
        if let Some(alive) = verdict {
            if primary[c].is_some() {
                violation!("cycle {c}: a second result for the primary at {t} µs");
            }
            primary[c] = Some((t, alive));
        }
    }
    let truth = &s.truth[..CYCLES];
    for (c, (verdict, truth)) in primary.iter().zip(truth).enumerate() {
        let start = c as u64 * INTERVAL_US;
        let expected = match truth.answered_at {
            Some(at) => Some((at, true)),
            None => Some((start + CYCLE_FAILS_AFTER_US, false)),
        };
        if *verdict != expected {
            violation!("cycle {c}: the agent saw {verdict:?}, the link dealt {expected:?} ({truth:?})");
        }
        let attempts_ok = match truth.answered_at {
            Some(_) => (1..=ATTEMPTS).contains(&truth.attempts),
            None => truth.attempts == ATTEMPTS,
        };
        if !attempts_ok {
            violation!("cycle {c}: {} attempts to the primary ({truth:?})", truth.attempts);
        }
        if backup_answered[c].is_none() {
            violation!("cycle {c}: no reply from the backup");
        }
    }
    let stats = s.agent.stats();
    if stats.cycles as usize != CYCLES {
        violation!("{} cycles started, not {CYCLES}", stats.cycles);
    }
    if stats.events_dropped != 0 {
        violation!("{} events dropped", stats.events_dropped);
    }
    if s.agent.pending().is_some() {
        violation!("a switch still pending at the end: {:?}", s.agent.pending());
    }

    // The switches, one by one: generations, sides, and the evidence for each.
    let results: Vec<(u64, bool)> = primary.iter().flatten().copied().collect();
    let switches: Vec<(u64, Side, Side, SwitchReason, u32)> = s
        .events
        .iter()
        .filter_map(|&(t, e)| match e {
            Event::Switch { from, to, reason, generation } => Some((t, from, to, reason, generation)),
            _ => None,
        })
        .collect();
    let applied: Vec<(Side, u32)> = s
        .events
        .iter()
        .filter_map(|&(_, e)| match e {
            Event::Applied { side, generation } => Some((side, generation)),
            _ => None,
        })
        .collect();
    if applied != switches.iter().map(|w| (w.2, w.4)).collect::<Vec<_>>() {
        violation!("the applied bundles do not follow the switches");
    }
    let mut active = Side::Primary;
    let mut prev: Option<u64> = None;
    let (mut failovers, mut failbacks, mut backup_us) = (0, 0, 0);
    // How many cycle results are known at the switch being checked (switches come in time order).
    let mut known = 0;
    for &(t, from, to, reason, generation) in &switches {
        let c = cycle_of(t);
        if generation != failovers + failbacks + 1 {
            violation!("{t} µs: generation {generation} after {}", failovers + failbacks);
        }
        if from != active || to == from {
            violation!("{t} µs: a switch from {from} to {to} while on {active}");
        }
        if let Some(prev) = prev {
            if t <= prev {
                violation!("{t} µs: a second switch at the same instant");
            }
            if spread_us == 0 && cycle_of(prev) == c {
                violation!("cycle {c}: two switches in one cycle without a spread");
            }
        }
        match (reason, to) {
            (SwitchReason::Failover, Side::Backup) => {
                failovers += 1;
                // The primary failed this very cycle, at this instant, and the backup answered in it.
                if primary[c] != Some((t, false)) {
                    violation!("{t} µs: failover without the primary failing cycle {c} ({:?})", primary[c]);
                }
                if backup_answered[c].is_none_or(|b| b >= t) {
                    violation!("{t} µs: failover in cycle {c} without the backup answering in it");
                }
            }
            (SwitchReason::Failback, Side::Primary) => {
                failbacks += 1;
                backup_us += t - prev.unwrap_or(0);
                // The alive streak standing at `t`: at least `after` cycles, all after the failover,
                // the spread over since the one that completed it.
                known += results[known..].iter().take_while(|r| r.0 <= t).count();
                let streak = results[..known].iter().rev().take_while(|r| r.1).count();
                if streak < after {
                    violation!("{t} µs: failback after {streak} alive cycles, not {after}");
                } else {
                    let first = results[known - streak];
                    let completed = results[known - streak + after - 1];
                    if prev.is_some_and(|prev| first.0 <= prev) {
                        violation!("{t} µs: failback on a streak that began before the failover");
                    }
                    if t < completed.0 + spread_us {
                        violation!("{t} µs: failback {} µs before the spread ran out", completed.0 + spread_us - t);
                    }
                }
            }
            _ => violation!("{t} µs: a {} switch to {to}", reason.as_str()),
        }
        active = to;
        prev = Some(t);
    }
    if active == Side::Backup {
        backup_us += end - prev.unwrap_or(0);
    }

    // And all of them, to the microsecond, against the policy replayed on what the link dealt.
    let expected = replay(truth, after, spread_us, end);
    let observed: Vec<(u64, Side, SwitchReason)> = switches.iter().map(|w| (w.0, w.2, w.3)).collect();
    if observed != expected {
        let i = observed.iter().zip(&expected).take_while(|(a, b)| a == b).count();
        violation!(
            "switch {i} differs from the policy's: observed {:?}, expected {:?} ({} vs {} switches)",
            observed.get(i),
            expected.get(i),
            observed.len(),
            expected.len()
        );
    }

    let sum = |f: fn(&CycleTruth) -> u8| truth.iter().map(|t| u64::from(f(t))).sum::<u64>();
    Run {
        p,
        spread_max_s,
        seed,
        spread_us,
        need: (after + extra_cycles(spread_us, REPLY_DELAY_US.0), after + extra_cycles(spread_us, max_reply_us())),
        attempts: sum(|t| t.attempts),
        requests_lost: sum(|t| t.requests_lost),
        replies_lost: sum(|t| t.replies_lost),
        failed_cycles: truth.iter().filter(|t| t.answered_at.is_none()).count() as u64,
        failovers: failovers.into(),
        failbacks: failbacks.into(),
        backup_us,
        violations: v,
    }
}

/// The latest an alive reply can arrive after its cycle began: a reply to the last attempt.
fn max_reply_us() -> u64 {
    LAST_ATTEMPT_AT_US + REPLY_DELAY_US.1
}

/// The switches the policy calls for, given what the link did to each cycle: failover when the
/// primary fails a cycle while the phone is on it (the backup always answers); failback `spread_us`
/// after the primary's `after`-th alive cycle in a row, unless it fails again first.
fn replay(truth: &[CycleTruth], after: usize, spread_us: u64, end_us: u64) -> Vec<(u64, Side, SwitchReason)> {
    let mut out = vec![];
    let (mut on_backup, mut streak, mut due) = (false, 0, None::<u64>);
    for (c, t) in truth.iter().enumerate() {
        let (at, alive) = match t.answered_at {
            Some(at) => (at, true),
            None => (c as u64 * INTERVAL_US + CYCLE_FAILS_AFTER_US, false),
        };
        // A failback falling due before this result (a reply at the same instant is taken first; a
        // deadline at the same instant fires first).
        if let Some(d) = due.filter(|&d| d < at || (d == at && alive)) {
            out.push((d, Side::Primary, SwitchReason::Failback));
            (on_backup, due) = (false, None);
        }
        if alive {
            streak += 1;
            if on_backup && streak >= after {
                let d = *due.get_or_insert(at + spread_us);
                if d <= at {
                    out.push((at, Side::Primary, SwitchReason::Failback));
                    (on_backup, due) = (false, None);
                }
            }
        } else {
            (streak, due) = (0, None);
            if !on_backup {
                out.push((at, Side::Backup, SwitchReason::Failover));
                on_backup = true;
            }
        }
    }
    if let Some(d) = due.filter(|&d| d <= end_us) {
        out.push((d, Side::Primary, SwitchReason::Failback));
    }
    out
}

// ---- the tests ----

/// What the model expects of one run.
struct Expected {
    /// Failed primary cycles: mean and standard deviation (binomial, `CYCLES` draws of `q`).
    failed: (f64, f64),
    /// Failovers: the mean for the device's largest and smallest `need` (equal unless its spread
    /// sits where the extra cycle depends on which attempt answered), and the larger deviation.
    mean: (f64, f64),
    sd: f64,
}

impl Expected {
    fn of(run: &Run) -> Expected {
        let q = cycle_fails(run.p);
        let n = CYCLES as f64;
        let (fewest, sd_fewest) = failover_moments(q, run.need.1, CYCLES);
        let (most, sd_most) = failover_moments(q, run.need.0, CYCLES);
        Expected { failed: (n * q, (n * q * (1.0 - q)).sqrt()), mean: (fewest, most), sd: sd_fewest.max(sd_most) }
    }
    fn band(&self) -> (f64, f64) {
        (self.mean.0 - SIGMAS * self.sd, self.mean.1 + SIGMAS * self.sd)
    }
    fn mean_text(&self) -> String {
        if (self.mean.1 - self.mean.0).abs() < 0.05 {
            format!("{:.1} ± {:.1}", self.mean.0, self.sd)
        } else {
            format!("{:.1}..{:.1} ± {:.1}", self.mean.0, self.mean.1, self.sd)
        }
    }
}

/// The soaked configurations: loss on the primary's link and the largest failback spread (s). The
/// core's defaults at both rates; `firmware-config/phone.toml`'s 30 s spread at 30 %, where failbacks
/// are many and a failed cycle often lands inside a device's spread.
const CONFIGS: [(f64, u64); 3] = [(LOSS[0], SPREADS_S[0]), (LOSS[1], SPREADS_S[0]), (LOSS[1], SPREADS_S[1])];

#[test]
fn a_day_of_loss_to_the_primary_fails_over_as_often_as_the_ladder_implies() {
    let started = std::time::Instant::now();
    let jobs: Vec<_> = CONFIGS
        .iter()
        .flat_map(|&(p, spread)| SEEDS.iter().map(move |&seed| (p, spread, seed)))
        .map(|(p, spread, seed)| thread::spawn(move || soak(p, spread, seed)))
        .collect();
    let runs: Vec<(Run, Expected)> = jobs
        .into_iter()
        .map(|j| j.join().expect("a soak run panicked"))
        .map(|run| {
            let e = Expected::of(&run);
            (run, e)
        })
        .collect();

    let mut table = String::new();
    let mut failures = vec![];
    writeln!(
        table,
        "| loss | spread max | seed | drawn spread | n | attempts failed (a) | failed cycles | expected | \
         failovers | expected | {SIGMAS} σ band | failbacks | on backup |"
    )
    .unwrap();
    writeln!(table, "|---|---|---|---|---|---|---|---|---|---|---|---|---|").unwrap();
    for (run, e) in &runs {
        let (lo, hi) = e.band();
        let need =
            if run.need.0 == run.need.1 { format!("{}", run.need.0) } else { format!("{}-{}", run.need.0, run.need.1) };
        writeln!(
            table,
            "| {:.0} % | {} s | {} | {:.3} s | {} | {:.4} ({:.4}) | {} | {:.1} ± {:.1} | {} | {} | {:.0}-{:.0} | {} | {:.2} h |",
            run.p * 100.0,
            run.spread_max_s,
            run.seed,
            run.spread_us as f64 / 1e6,
            need,
            (run.requests_lost + run.replies_lost) as f64 / run.attempts as f64,
            attempt_fails(run.p),
            run.failed_cycles,
            e.failed.0,
            e.failed.1,
            run.failovers,
            e.mean_text(),
            lo.max(0.0).ceil(),
            hi.floor(),
            run.failbacks,
            run.backup_us as f64 / 3.6e9,
        )
        .unwrap();
        let tag = format!("loss {:.0} %, spread {} s, seed {}", run.p * 100.0, run.spread_max_s, run.seed);
        for v in &run.violations {
            failures.push(format!("{tag}: {v}"));
        }
        if (run.failed_cycles as f64 - e.failed.0).abs() > SIGMAS * e.failed.1 {
            failures.push(format!(
                "{tag}: {} failed cycles, the model says {:.1} ± {:.1}",
                run.failed_cycles, e.failed.0, e.failed.1
            ));
        }
        if (run.failovers as f64) < lo || (run.failovers as f64) > hi {
            failures.push(format!("{tag}: {} failovers, outside {lo:.1}..{hi:.1} ({})", run.failovers, e.mean_text()));
        }
        if run.failbacks + 1 < run.failovers || run.failbacks > run.failovers {
            failures.push(format!("{tag}: {} failbacks for {} failovers", run.failbacks, run.failovers));
        }
    }
    // The seeds of one configuration pooled: their mean within 4 σ / √seeds of the model's.
    for &(p, spread) in &CONFIGS {
        let group: Vec<_> = runs.iter().filter(|(r, _)| r.p == p && r.spread_max_s == spread).collect();
        let k = group.len() as f64;
        let observed = group.iter().map(|(r, _)| r.failovers as f64).sum::<f64>() / k;
        let fewest = group.iter().map(|(_, e)| e.mean.0).sum::<f64>() / k;
        let most = group.iter().map(|(_, e)| e.mean.1).sum::<f64>() / k;
        let sd = group.iter().map(|(_, e)| e.sd * e.sd).sum::<f64>().sqrt() / k;
        let model = if (most - fewest).abs() < 0.05 {
            format!("{fewest:.1} ± {sd:.1}")
        } else {
            format!("{fewest:.1}..{most:.1} ± {sd:.1}")
        };
        writeln!(
            table,
            "\nloss {:.0} %, spread {spread} s: mean of {} seeds {observed:.1}, model {model}",
            p * 100.0,
            group.len()
        )
        .unwrap();
        if observed < fewest - SIGMAS * sd || observed > most + SIGMAS * sd {
            failures.push(format!(
                "loss {:.0} %, spread {spread} s: mean of the seeds {observed:.1}, model {model}",
                p * 100.0
            ));
        }
    }
    println!("{table}");
    println!("{} runs of 24 h in {:.2} s", runs.len(), started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_exact_count_agrees_with_the_renewal_formula_and_a_simulation_of_the_chain() {
    for &p in &LOSS {
        let q = cycle_fails(p);
        for need in [2, 3] {
            let (mean, sd) = failover_moments(q, need, CYCLES);
            let (r_mean, r_sd, mu) = failover_renewal(q, need, CYCLES);
            println!(
                "loss {:.0} %: a = {:.4}, q = {q:.6}, n = {need}: renewal every {mu:.2} cycles; \
                 exact {mean:.2} ± {sd:.2}, renewal {r_mean:.2} ± {r_sd:.2} failovers a day",
                p * 100.0,
                attempt_fails(p)
            );
            // The renewal figures are asymptotic: within one failover and a few per cent.
            assert!((mean - r_mean).abs() < 1.0, "mean {mean} vs {r_mean}");
            assert!((sd / r_sd - 1.0).abs() < 0.05, "sd {sd} vs {r_sd}");

            // The chain itself, simulated day by day.
            let days = 400;
            let mut rng = SplitMix64(need as u64 * 1000 + (p * 100.0) as u64);
            let counts: Vec<f64> = (0..days)
                .map(|_| {
                    let (mut on_primary, mut streak, mut count) = (true, 0, 0);
                    for _ in 0..CYCLES {
                        let failed = rng.chance(q);
                        if failed {
                            count += u32::from(on_primary);
                            (on_primary, streak) = (false, 0);
                        } else if !on_primary {
                            streak += 1;
                            on_primary = streak == need;
                        }
                    }
                    f64::from(count)
                })
                .collect();
            let m = counts.iter().sum::<f64>() / days as f64;
            let s = (counts.iter().map(|c| (c - m).powi(2)).sum::<f64>() / (days - 1) as f64).sqrt();
            assert!((m - mean).abs() < SIGMAS * sd / (days as f64).sqrt(), "simulated mean {m} vs {mean}");
            assert!((s / sd - 1.0).abs() < 0.15, "simulated sd {s} vs {sd}");
        }
    }
}

#[test]
fn the_spread_adds_an_alive_cycle_only_past_the_next_cycles_deadline() {
    // The streak completes with attempt 1's reply, 1 ms into its cycle.
    assert_eq!(extra_cycles(0, 1_000), 0);
    assert_eq!(extra_cycles(15_000_000, 1_000), 0);
    assert_eq!(extra_cycles(16_599_000, 1_000), 1);
    assert_eq!(extra_cycles(16_598_999, 1_000), 0);
    assert_eq!(extra_cycles(30_000_000, 1_000), 1);
    // With attempt 3's reply (1220 ms), the next deadline is 15.38 s away.
    assert_eq!(extra_cycles(15_380_000, max_reply_us()), 1);
    assert_eq!(extra_cycles(30_000_000, max_reply_us()), 1);
}
