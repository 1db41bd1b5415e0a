//! The lab: a simulated PBX pair, fault scenarios, a timeline picture, fleets, and the runners that
//! put the agent against them, on virtual time or over real loopback UDP.
//!
//! - [`certs`]: a private CA and the good and bad server certificates of the TLS faults.
//! - [`model`]: a sans-IO PBX answering OPTIONS through `rsip`, with scripted faults.
//! - [`scenario`]: scenario files (TOML), validated with file, line and field.
//! - [`virtual`](mod@virtual): agents and the pair model on one virtual clock, seeded and exact.
//! - [`udp`]: the pair over real loopback UDP (`pbx-sim`).
//! - [`streams`]: the pair's TCP and TLS servers, and the lab phone's TCP and TLS client.
//! - [`realtime`]: one phone against the pair, on real timers.
//! - [`fleet`]: N phones in one process sharing one socket per side, against the pair.
//! - [`statuspage`]: the scenario's maintenance notices published on a status page on loopback.
//! - [`timeline`]: live lines, JSON lines and the SVG picture.
//! - [`summary`]: outages, detection latency, failback, distributions.
//!
//! No failover logic lives here: every decision is the core [`Agent`](crate::core::Agent)'s.

use std::fmt;
use std::net::SocketAddr;

use crate::core::{Agent, Config, ConfigError, InlineStr, Instant, PlannedWindow, Side};

pub mod certs;
pub mod fleet;
pub mod fleet_svg;
pub mod mmsg;
pub mod model;
pub mod realtime;
pub mod scenario;
pub mod statuspage;
pub mod streams;
pub mod summary;
pub mod timeline;
pub mod udp;
pub mod usage;
pub mod r#virtual;

use scenario::PhoneSettings;
use summary::Tracker;
use timeline::Timeline;

/// Why a lab run could not go on.
#[derive(Debug)]
#[non_exhaustive]
pub enum SimError {
    /// The phone configuration the scenario asks for is invalid.
    Config(ConfigError),
    /// A socket could not be bound or used.
    Io(std::io::Error),
    /// The lab's certificates or TLS configurations could not be made.
    Tls(String),
    /// Something that cannot happen did.
    Internal(&'static str),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Config(e) => write!(f, "invalid phone configuration: {e}"),
            SimError::Io(e) => write!(f, "network: {e}"),
            SimError::Tls(e) => write!(f, "TLS: {e}"),
            SimError::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

impl std::error::Error for SimError {}

impl From<std::io::Error> for SimError {
    fn from(e: std::io::Error) -> Self {
        SimError::Io(e)
    }
}

/// What the pair saw during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Each server's counters.
    pub servers: [model::ServerStats; 2],
    /// Requests per second of the run (both servers).
    pub per_second: Vec<u32>,
    /// Wall-clock time the pair spent handling requests and steps (real-time runs).
    pub busy: std::time::Duration,
}

impl PairStats {
    /// Adds what another pair saw (a fleet's shards each have one).
    pub fn merge(&mut self, other: &PairStats) {
        for (s, o) in self.servers.iter_mut().zip(&other.servers) {
            *s += *o;
        }
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (s, o) in self.per_second.iter_mut().zip(&other.per_second) {
            *s += o;
        }
        self.busy += other.busy;
    }

    /// Counts one request at `t`.
    pub fn count(&mut self, t: Instant, _side: Side) {
        let s = (t.as_micros() / 1_000_000) as usize;
        if s < 7 * 24 * 3600 {
            if self.per_second.len() <= s {
                self.per_second.resize(s + 1, 0);
            }
            self.per_second[s] += 1;
        }
    }
    /// The busiest second: (second, requests).
    pub fn peak(&self) -> Option<(u64, u32)> {
        self.per_second
            .iter()
            .enumerate()
            .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
            .map(|(i, n)| (i as u64, *n))
    }
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Phone 0's timeline, with the pair's faults.
    pub timeline: Timeline,
    /// Outages and counters of every phone.
    pub tracker: Tracker,
    /// What the pair saw.
    pub pair: PairStats,
    /// When the run ended.
    pub end: Instant,
    /// Wall-clock time the phones' loop spent working, waits excluded (fleets in real time).
    pub phones_busy: std::time::Duration,
    /// The longest single pass of the phones' loop (fleets in real time): a stall shows here.
    pub phones_longest_pass: std::time::Duration,
    /// How late the fleet's timers were handled after their deadlines: the scheduler's delay and
    /// the work of the pass before each (fleets in real time).
    pub phones_timer_lag: Option<summary::Dist>,
    /// How late the fleet's loop woke after the time it slept until: the scheduler's share alone
    /// (fleets in real time).
    pub phones_wake_lag: Option<summary::Dist>,
    /// The whole process's CPU time (every thread, user and system) over the run (fleets in real
    /// time; zero otherwise).
    pub cpu: usage::Cpu,
    /// How the phones' loop thread was scheduled (fleets in real time).
    pub phones_scheduling: Option<usage::Scheduling>,
    /// Whether the CPUs were kept out of deep idle while the fleet ran (fleets in real time).
    pub phones_idle: Option<usage::IdlePoll>,
    /// How many loops ran the phones (a fleet's shards in real time; 1 otherwise). The busy times
    /// are their sum, the longest pass and the lags over all of them.
    pub phones_loops: usize,
}

impl RunOutput {
    /// The output of a run whose phones are not a real-time fleet: no loop figures.
    fn of_phones(timeline: Timeline, tracker: Tracker, pair: PairStats, end: Instant) -> Self {
        RunOutput {
            timeline,
            tracker,
            pair,
            end,
            phones_busy: std::time::Duration::ZERO,
            phones_longest_pass: std::time::Duration::ZERO,
            phones_timer_lag: None,
            phones_wake_lag: None,
            cpu: usage::Cpu::default(),
            phones_scheduling: None,
            phones_idle: None,
            phones_loops: 1,
        }
    }
}

/// What a real-time run shows while it goes.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Live<'a> {
    /// A record of phone 0 or the pair.
    Record(&'a timeline::Record),
    /// Time passes (about every 100 ms): the run's clock now.
    Tick(Instant),
    /// An event of any phone (every phone's, not only phone 0's): for counters such as `--metrics`.
    Event {
        /// The phone.
        phone: u32,
        /// When.
        t: Instant,
        /// What.
        event: &'a crate::core::Event,
    },
}

/// The SIP domains of the lab's primary and backup: the Request-URI host, and for TLS the name the
/// phone verifies the server's certificate against.
pub const DOMAINS: [&str; 2] = ["pbx-a.lab", "pbx-b.lab"];

/// The core configuration of lab phone number `index` under `settings`: user `p<index>`, the pair at
/// `primary` and `backup`.
pub fn phone_config(settings: &PhoneSettings, primary: SocketAddr, backup: SocketAddr, index: usize) -> Config {
    let mut c = Config::new(primary, DOMAINS[0]).with_backup(backup, DOMAINS[1]);
    c.interval = settings.interval;
    c.ladder = settings.ladder;
    c.failback.mode = settings.failback;
    c.failback.after_cycles = settings.failback_after;
    c.fast.refused_ends_attempt = settings.fast_refused;
    c.planned_lead = settings.planned_lead;
    c.primary.transport = settings.transports[0];
    if let Some(b) = c.backup.as_mut() {
        b.transport = settings.transports[1];
    }
    c.user = InlineStr::new(&format!("p{index}")).unwrap_or(c.user);
    c
}

/// When phone `i` of `phones` boots, the fleet booting over one `interval` in groups of `group`
/// phones (1: each at its own time), the groups evenly spread.
pub fn boot_time(interval: crate::core::Duration, phones: usize, i: usize, group: usize) -> Instant {
    let first_of_group = i - i % group.max(1);
    Instant::from_micros(interval.as_micros() * first_of_group as u64 / phones.max(1) as u64)
}

/// Hands an agent whose run started at `run_start` on its clock its planned windows: the scenario's
/// `[maintenance]` windows and `extra` (the windows of the notices it has learnt of), in one step.
/// Returns the windows handed.
pub fn plan_windows(
    agent: &mut Agent,
    scenario: &scenario::Scenario,
    run_start: Instant,
    now: Instant,
    extra: &[scenario::PlannedSpan],
) -> Vec<PlannedWindow> {
    let windows: Vec<PlannedWindow> = scenario
        .windows
        .iter()
        .chain(extra)
        .map(|w| PlannedWindow { side: w.side, start: run_start + w.start, end: run_start + w.end })
        .collect();
    // A scenario holds at most as many windows as the core does; a refusal would be a bug there.
    let _ = agent.set_planned_windows(now, &windows);
    windows
}

/// The phone a response is for, from the `p<index>` user of its From URI.
pub fn phone_of(response: &[u8]) -> Option<usize> {
    let pat = b"sip:p";
    let mut i = 0;
    while i + pat.len() < response.len() {
        if response.get(i..i + pat.len()) == Some(pat) {
            let digits = &response[i + pat.len()..];
            let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            if n > 0 && n <= 9 && digits.get(n) == Some(&b'@') {
                let mut v = 0usize;
                for d in &digits[..n] {
                    v = v * 10 + usize::from(d - b'0');
                }
                return Some(v);
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_route_by_from_user() {
        assert_eq!(phone_of(b"SIP/2.0 200 OK\r\nf: <sip:p9431@127.0.0.1:4000>;tag=x\r\n"), Some(9431));
        assert_eq!(phone_of(b"To: <sip:pbx-a.lab:5060>\r\n"), None);
        assert_eq!(phone_of(b"sip:p12"), None);
    }

    #[test]
    fn two_pairs_stats_add_up_counter_by_counter_and_second_by_second() {
        let stats = |requests, dropped, seconds: &[(u64, usize)]| {
            let mut p = PairStats::default();
            p.servers[1] = model::ServerStats { requests, answered: requests - dropped, dropped, ..Default::default() };
            for &(s, n) in seconds {
                for _ in 0..n {
                    p.count(Instant::from_micros(s * 1_000_000 + 5), Side::Backup);
                }
            }
            p.busy = std::time::Duration::from_millis(requests);
            p
        };
        let mut a = stats(5, 1, &[(0, 2), (1, 3)]);
        a.merge(&stats(7, 3, &[(1, 1), (3, 6)]));
        assert_eq!(a.servers[0], model::ServerStats::default());
        assert_eq!(a.servers[1], model::ServerStats { requests: 12, answered: 8, dropped: 4, ..Default::default() });
        assert_eq!(a.per_second, vec![2, 4, 0, 6]);
        assert_eq!(a.busy, std::time::Duration::from_millis(12));
    }
}
