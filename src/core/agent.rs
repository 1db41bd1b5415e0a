//! The [`Agent`]: the sans-IO failover state machine.
//!
//! Methods come in four groups, after quinn-proto's connection: getters; inputs (`handle_*`), which
//! take the current time; commands ([`Agent::handle_command`]); and outputs (`poll_*`). After every
//! input, drain [`Agent::poll_transmit`] until it returns `None`, then [`Agent::poll_event`], then
//! sleep until [`Agent::poll_timeout`].

use core::fmt;
use core::net::SocketAddr;
use core::num::NonZeroU64;
use core::ops::{Index, IndexMut};

use super::config::{Config, ConfigError, FailbackMode, ServerConfig, Side, Transport, MAX_ATTEMPTS};
use super::event::{CycleResult, DownReason, Event, EventQueue, HoldReason, IgnoreReason, SwitchReason};
use super::flow::{FlowCommand, FlowError, FlowEvent, PING, PONG_WAIT};
use super::rng::Rng;
use super::time::{Duration, Instant};
use super::wire::{self, BufferTooSmall, OptionsRequest, BRANCH_COOKIE};

const BRANCH_BYTES: usize = 12;
const CALL_ID_BYTES: usize = 16;
const TAG_BYTES: usize = 8;
/// Bytes of the event queue. Events are stored packed, 2 to 18 bytes each with their length (a reply
/// with a Retry-After is the largest, a probe sent takes 8, a timeout 4), so it holds at least 6 and
/// typically 15 to 30 undrained events, far more than one input produces; the size keeps the agent
/// under 1 KiB.
const EVENT_BYTES: usize = 116;
/// How many planned maintenance windows the core holds at once.
pub const MAX_WINDOWS: usize = 4;
/// Upper bound on timers processed in one `handle_timeout`, so a wild clock cannot spin it.
const MAX_STEPS: usize = 64;

/// Bytes to send, written into the caller's buffer by [`Agent::poll_transmit`]: a datagram over UDP,
/// or bytes to write on the server's open flow over TCP and TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The server this probe is for.
    pub server: Side,
    /// Where to send it (the server or its outbound proxy).
    pub destination: SocketAddr,
    /// The attempt number in this cycle, from 1; 0 for a keep-alive ping on a stream flow.
    pub attempt: u8,
    /// The number of bytes written at the start of the buffer.
    pub len: usize,
    /// UDP: send a datagram. TCP or TLS: write on the flow the agent last asked to open for
    /// `server` (it is open: the agent hands out bytes for a stream only once it is connected).
    pub transport: Transport,
}

/// A command from the firmware or an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Move to `side` now and stay there; automatic switching stops until [`Command::Release`].
    Force(Side),
    /// End a [`Command::Force`]; the automatic policy applies again.
    Release,
    /// In manual failback mode (or any mode): return to the primary now, if it answered its last cycle.
    Failback,
    /// Stop probing (no cycles start until [`Command::Resume`]).
    Pause,
    /// Resume probing; a cycle starts at once.
    Resume,
    /// The phone's call state: `true` while a call is in progress. Failback waits for idle.
    InCall(bool),
    /// The firmware applied the bundle of this generation.
    Applied {
        /// The generation from the [`Event::Switch`].
        generation: u32,
    },
    /// The firmware could not apply the bundle of this generation.
    ApplyFailed {
        /// The generation from the [`Event::Switch`].
        generation: u32,
    },
    /// A SIP transaction of the phone failed; with fast detection a probe cycle starts at once.
    TransactionFailed,
    /// The local address probes to `side` leave from, once the driver has bound it.
    LocalAddr {
        /// Which server's socket.
        side: Side,
        /// Its local address.
        addr: SocketAddr,
    },
    /// Adds a planned maintenance window on `side`'s server, on the agent's clock. To replace the
    /// whole set (a refreshed feed), use [`Agent::set_planned_windows`], which decides once on the
    /// new set instead of on each step.
    PlannedWindow {
        /// The affected server.
        side: Side,
        /// When it starts.
        start: Instant,
        /// When it ends.
        end: Instant,
    },
    /// Forget every planned window.
    ClearPlannedWindows,
    /// A SIP transaction of the phone to `side`'s server was answered `503` with `Retry-After`: the
    /// server announced its own maintenance (as a probe answered so does). The phone leaves it at an
    /// idle moment and does not come back before `retry_after_s` seconds have passed. Zero announces
    /// nothing.
    Maintenance {
        /// Which server answered.
        side: Side,
        /// Its Retry-After, in seconds.
        retry_after_s: u32,
    },
}

/// Why a command was not carried out. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The backup is disabled in the configuration.
    BackupDisabled,
    /// The acknowledged generation is not the one being applied.
    StaleGeneration,
    /// Failback asked for, but the primary did not answer its last cycle.
    PrimaryNotAlive,
    /// Failback asked for, but the primary is already in force.
    AlreadyOnPrimary,
    /// A planned window that ends before it starts.
    EmptyWindow,
    /// No room for another planned window.
    TooManyWindows,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommandError::BackupDisabled => "the backup destination is disabled",
            CommandError::StaleGeneration => "that generation is not being applied",
            CommandError::PrimaryNotAlive => "the primary did not answer its last cycle",
            CommandError::AlreadyOnPrimary => "already on the primary",
            CommandError::EmptyWindow => "the window ends before it starts",
            CommandError::TooManyWindows => "no room for another planned window",
        })
    }
}

impl core::error::Error for CommandError {}

/// What must survive a reboot: written by the std side after every change, handed to
/// [`Agent::resume`].
///
/// Generations after a restart: the agent resumes on `active` with `generation`, the bundle that was
/// applied and acknowledged. A switch that was handed out but not acknowledged when the snapshot was
/// taken is not in force: the resumed agent decides again and, if the reason still holds, issues a
/// new switch numbered after `issued`, so a generation is never handed out twice. Generations count
/// up from 1 (0 is the bundle the phone starts with) and wrap from `u32::MAX` to 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The side in force (applied and acknowledged).
    pub active: Side,
    /// The generation in force.
    pub generation: u32,
    /// The last generation handed out, applied or not; at least `generation` unless it wrapped.
    pub issued: u32,
    /// A side pinned by [`Command::Force`], if any.
    pub forced: Option<Side>,
    /// The primary had earned its failback and was waiting (for idle or its spread).
    pub failback_pending: bool,
}

/// Counters kept by the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Probes handed to the caller.
    pub probes_sent: u32,
    /// Matching final replies.
    pub replies: u32,
    /// Datagrams ignored, by [`IgnoreReason::index`].
    pub ignored: [u32; IgnoreReason::COUNT],
    /// Events dropped because the caller did not drain them (traffic first; see [`Agent::poll_event`]).
    pub events_dropped: u32,
    /// Of those, events that carried state: only a caller that does not drain for several probe cycles
    /// loses one.
    pub state_events_dropped: u32,
    /// Probe cycles started.
    pub cycles: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Not probed this cycle (paused, disabled or before the first cycle).
    None,
    Pending,
    Alive,
    /// Failed this cycle (the reason went out in [`Event::ServerDown`]).
    Failed,
}

/// One server's probing. The cycle's random values (Call-ID, From tag, one branch per attempt) are not
/// stored: only where they were drawn in the keystream, and they are recomputed with
/// [`Rng::fill_at`] to encode a probe or check a reply. This keeps the agent under 1 KiB.
#[derive(Debug, Clone, Copy)]
struct Probe {
    outcome: Outcome,
    /// The current attempt (1-based); 0 when no ladder runs.
    attempt: u8,
    /// When the current attempt's wait ends (meaningful while `attempt > 0`).
    deadline: Instant,
    needs_send: bool,
    sent_at: [Instant; MAX_ATTEMPTS],
    /// The keystream word position of this cycle's Call-ID; the From tag follows it, then attempt 1's
    /// branch.
    draw: u64,
    /// The branch positions of attempts 2 and later, in words after `draw`.
    branch_at: [u32; MAX_ATTEMPTS - 1],
    cseq_first: u32,
    cseq_next: u32,
    up: Option<bool>,
    streak: u8,
    /// The server's latest result was a `503` with `Retry-After`: an announced maintenance, not an
    /// outage (the failover waits for an idle moment).
    maint: bool,
    /// Until when the server announced maintenance (`Retry-After`); in the past when none.
    until: Instant,
    /// The stream flow to this server (always `Closed` over UDP).
    flow: FlowState,
    /// A keep-alive ping is to be written on the flow.
    ping: bool,
    /// The id of the flow last asked for; reports about other ids are stale.
    flow_id: u16,
    /// A close the caller has not been told about yet, and why.
    close: Option<FlowError>,
    /// When the keep-alive timer fires: the next ping, or the end of the wait for a pong
    /// (meaningful while the flow is open and keep-alive is on).
    ka_at: Instant,
    /// Which of the server's addresses ([`ServerConfig::hop`]) this cycle's first attempt went to;
    /// attempt `n` over UDP goes to the address `n - 1` further on.
    first_hop: u8,
    /// The address that answered last: the next cycle starts there.
    answered_hop: u8,
    /// The address the stream flow was opened to.
    flow_hop: u8,
}

/// A stream flow's state, from the agent's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowState {
    /// No flow (or UDP).
    Closed,
    /// Asked to open, not yet connected.
    Opening,
    /// Connected; `pong_wait` while a keep-alive ping waits for its pong.
    Open { pong_wait: bool },
}

/// Keystream words a fill of `bytes` bytes takes.
const fn words(bytes: usize) -> u64 {
    bytes.div_ceil(4) as u64
}

/// Where attempt 1's branch starts, in words after the cycle's Call-ID.
const FIRST_BRANCH_AT: u64 = words(CALL_ID_BYTES) + words(TAG_BYTES);

impl Probe {
    const fn new() -> Self {
        Probe {
            outcome: Outcome::None,
            attempt: 0,
            deadline: Instant::ZERO,
            needs_send: false,
            sent_at: [Instant::ZERO; MAX_ATTEMPTS],
            draw: 0,
            branch_at: [0; MAX_ATTEMPTS - 1],
            cseq_first: 1,
            cseq_next: 1,
            up: None,
            streak: 0,
            maint: false,
            until: Instant::ZERO,
            flow: FlowState::Closed,
            ping: false,
            flow_id: 0,
            close: None,
            ka_at: Instant::ZERO,
            first_hop: 0,
            answered_hop: 0,
            flow_hop: 0,
        }
    }

    /// The address index attempt `attempt` (1-based) of this cycle goes to, before taking it modulo
    /// the server's address count: over a stream, the flow's; over UDP, one further per attempt.
    fn hop_of(&self, attempt: u8, stream: bool) -> usize {
        if stream {
            usize::from(self.flow_hop)
        } else {
            usize::from(self.first_hop).saturating_add(usize::from(attempt.saturating_sub(1)))
        }
    }

    /// The same server's probing reset, keeping the CSeq sequence and what the caller must still
    /// hear about its flow.
    fn reset(&self) -> Self {
        let close = match self.flow {
            FlowState::Closed => self.close,
            _ => Some(FlowError::Reconfigured),
        };
        Probe {
            cseq_next: self.cseq_next,
            flow_id: self.flow_id,
            close,
            answered_hop: self.answered_hop,
            ..Probe::new()
        }
    }

    /// The current attempt (1-based) and when its wait ends; `None` when no ladder runs.
    fn waiting(&self) -> Option<(u8, Instant)> {
        (self.attempt > 0).then_some((self.attempt, self.deadline))
    }

    fn set_waiting(&mut self, w: Option<(u8, Instant)>) {
        match w {
            Some((attempt, deadline)) => {
                self.attempt = attempt;
                self.deadline = deadline;
            }
            None => {
                self.attempt = 0;
                self.deadline = Instant::ZERO;
            }
        }
    }

    /// The cycle's Call-ID, From tag and attempt 1's branch, drawn one after the other: one fill, so
    /// usually one keystream block instead of three.
    fn ids(&self, rng: &Rng) -> ([u8; CALL_ID_BYTES], [u8; TAG_BYTES], [u8; BRANCH_BYTES]) {
        let mut all = [0u8; CALL_ID_BYTES + TAG_BYTES + BRANCH_BYTES];
        rng.fill_at(self.draw, &mut all);
        // The three fill `all` exactly: the fallbacks are never taken.
        let (call_id, rest) = all.split_first_chunk().unwrap_or((&[0; CALL_ID_BYTES], &[]));
        let (tag, rest) = rest.split_first_chunk().unwrap_or((&[0; TAG_BYTES], &[]));
        let branch = rest.first_chunk().unwrap_or(&[0; BRANCH_BYTES]);
        (*call_id, *tag, *branch)
    }

    /// The branch of attempt `i + 1`, or `None` past the ladder.
    fn branch(&self, rng: &Rng, i: usize) -> Option<[u8; BRANCH_BYTES]> {
        let at = match i.checked_sub(1) {
            None => self.draw.wrapping_add(FIRST_BRANCH_AT),
            Some(j) => self.draw.wrapping_add(u64::from(*self.branch_at.get(j)?)),
        };
        let mut b = [0u8; BRANCH_BYTES];
        rng.fill_at(at, &mut b);
        Some(b)
    }
}

/// A planned maintenance window on one server, on the agent's clock; see
/// [`Agent::set_planned_windows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedWindow {
    /// The affected server.
    pub side: Side,
    /// When it starts.
    pub start: Instant,
    /// When it ends.
    pub end: Instant,
}

/// The planned windows, stored as parallel arrays (an array of `Option<Window>` would pad each entry
/// to 24 bytes).
#[derive(Debug, Clone, Copy)]
struct Windows {
    side: [Option<Side>; MAX_WINDOWS],
    start: [Instant; MAX_WINDOWS],
    end: [Instant; MAX_WINDOWS],
}

impl Windows {
    const EMPTY: Windows =
        Windows { side: [None; MAX_WINDOWS], start: [Instant::ZERO; MAX_WINDOWS], end: [Instant::ZERO; MAX_WINDOWS] };

    fn iter(&self) -> impl Iterator<Item = PlannedWindow> + '_ {
        self.side
            .iter()
            .zip(self.start.iter().zip(self.end.iter()))
            .filter_map(|(side, (start, end))| side.map(|side| PlannedWindow { side, start: *start, end: *end }))
    }

    /// Adds `w` unless it is already there.
    fn insert(&mut self, w: PlannedWindow) -> Result<(), CommandError> {
        if self.iter().any(|x| x == w) {
            return Ok(());
        }
        let i = self.side.iter().position(|s| s.is_none()).ok_or(CommandError::TooManyWindows)?;
        let slot = (self.side.get_mut(i), self.start.get_mut(i), self.end.get_mut(i));
        if let (Some(side), Some(start), Some(end)) = slot {
            *side = Some(w.side);
            *start = w.start;
            *end = w.end;
        }
        Ok(())
    }

    /// The set of `windows`, duplicates counted once; nothing is built if one is empty or they do
    /// not fit.
    fn from_slice(windows: &[PlannedWindow]) -> Result<Windows, CommandError> {
        let mut set = Windows::EMPTY;
        for w in windows {
            if w.end <= w.start {
                return Err(CommandError::EmptyWindow);
            }
            set.insert(*w)?;
        }
        Ok(set)
    }

    /// Forgets the windows that ended at or before `now`.
    fn expire(&mut self, now: Instant) {
        for (side, end) in self.side.iter_mut().zip(self.end.iter()) {
            if side.is_some() && *end <= now {
                *side = None;
            }
        }
    }
}

/// One value for each side, indexed by [`Side`]: an index that cannot be out of bounds.
#[derive(Debug, Clone, Copy)]
struct BySide<T>([T; 2]);

impl<T> BySide<T> {
    fn iter(&self) -> core::slice::Iter<'_, T> {
        self.0.iter()
    }
    fn iter_mut(&mut self) -> core::slice::IterMut<'_, T> {
        self.0.iter_mut()
    }
}

impl<T> Index<Side> for BySide<T> {
    type Output = T;
    fn index(&self, side: Side) -> &T {
        let [primary, backup] = &self.0;
        match side {
            Side::Primary => primary,
            Side::Backup => backup,
        }
    }
}

impl<T> IndexMut<Side> for BySide<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        let [primary, backup] = &mut self.0;
        match side {
            Side::Primary => primary,
            Side::Backup => backup,
        }
    }
}

/// The failover state machine. See the [module docs](self) for the run loop.
#[derive(Debug, Clone)]
pub struct Agent {
    config: Config,
    rng: Rng,
    now: Instant,
    probes: BySide<Probe>,
    next_cycle: Option<Instant>,
    paused: bool,
    decided: bool,
    hold_after_failed_apply: bool,
    applied: Side,
    applied_generation: u32,
    pending: Option<(Side, u32)>,
    /// The last generation handed out (applied or not): never reused.
    issued: u32,
    forced: Option<Side>,
    in_call: bool,
    failback_due: Option<Instant>,
    spread: Duration,
    held_reported: bool,
    windows: Windows,
    events: EventQueue<EVENT_BYTES>,
    stats: Stats,
}

impl Agent {
    /// A new agent on the primary, its first probe cycle starting at `now`. `seed` keys the random
    /// source of branches and tags; in production take it from the platform's entropy.
    pub fn new(config: Config, now: Instant, seed: u64) -> Result<Self, ConfigError> {
        Self::build(config, now, Rng::from_seed(seed), None)
    }

    /// As [`Agent::new`], keyed with 32 bytes of entropy.
    pub fn with_key(config: Config, now: Instant, key: [u8; 32]) -> Result<Self, ConfigError> {
        Self::build(config, now, Rng::from_key(key), None)
    }

    /// An agent that continues from a [`Snapshot`] taken before a restart.
    pub fn resume(config: Config, now: Instant, seed: u64, snapshot: Snapshot) -> Result<Self, ConfigError> {
        Self::build(config, now, Rng::from_seed(seed), Some(snapshot))
    }

    /// As [`Agent::resume`], keyed with 32 bytes of entropy.
    pub fn resume_with_key(
        config: Config,
        now: Instant,
        key: [u8; 32],
        snapshot: Snapshot,
    ) -> Result<Self, ConfigError> {
        Self::build(config, now, Rng::from_key(key), Some(snapshot))
    }

    fn build(config: Config, now: Instant, mut rng: Rng, snap: Option<Snapshot>) -> Result<Self, ConfigError> {
        config.validate()?;
        let spread = Duration::from_micros(rng.below_or_equal(config.failback.spread.as_micros()));
        let mut agent = Agent {
            config,
            rng,
            now,
            probes: BySide([Probe::new(); 2]),
            next_cycle: None,
            paused: false,
            decided: false,
            hold_after_failed_apply: false,
            applied: Side::Primary,
            applied_generation: 0,
            pending: None,
            issued: 0,
            forced: None,
            in_call: false,
            failback_due: None,
            spread,
            held_reported: false,
            windows: Windows::EMPTY,
            events: EventQueue::new(),
            stats: Stats::default(),
        };
        if let Some(s) = snap {
            let backup_ok = agent.config.backup.is_some();
            agent.applied = if backup_ok { s.active } else { Side::Primary };
            agent.issued = s.issued;
            agent.applied_generation = s.generation;
            agent.forced = s.forced.filter(|f| backup_ok || *f == Side::Primary);
            if s.failback_pending {
                agent.probes[Side::Primary].streak = agent.config.failback.after_cycles.get().saturating_sub(1);
            }
            // A forced switch that was not acknowledged before the snapshot: hand it out again.
            if let Some(f) = agent.forced.filter(|f| *f != agent.applied) {
                agent.switch(f, SwitchReason::Forced);
            }
        }
        if agent.config.keep_alive {
            agent.start_cycle(now);
        }
        Ok(agent)
    }

    // ---- getters ----

    /// The side whose bundle is in force (applied and acknowledged).
    pub fn active(&self) -> Side {
        self.applied
    }
    /// The generation of the bundle in force.
    pub fn generation(&self) -> u32 {
        self.applied_generation
    }
    /// A switch handed out and not yet acknowledged: its side and generation.
    pub fn pending(&self) -> Option<(Side, u32)> {
        self.pending
    }
    /// Where the agent is heading: the pending side if a switch is being applied, else the active one.
    pub fn target(&self) -> Side {
        self.pending.map(|p| p.0).unwrap_or(self.applied)
    }
    /// Whether `side`'s server answered its latest completed cycle (`None` before any result).
    pub fn is_up(&self, side: Side) -> Option<bool> {
        self.probes[side].up
    }
    /// The side pinned by [`Command::Force`], if any.
    pub fn forced(&self) -> Option<Side> {
        self.forced
    }
    /// Whether probing is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }
    /// Whether the phone reported a call in progress.
    pub fn in_call(&self) -> bool {
        self.in_call
    }
    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats { events_dropped: self.events.dropped, state_events_dropped: self.events.state_dropped, ..self.stats }
    }
    /// This device's failback delay, drawn once in `0..=failback.spread`.
    pub fn failback_spread(&self) -> Duration {
        self.spread
    }
    /// When the next probe cycle starts, unless paused.
    pub fn next_cycle(&self) -> Option<Instant> {
        self.next_cycle
    }
    /// Whether `side`'s server is inside a planned maintenance window at the agent's latest time.
    pub fn in_planned_window(&self, side: Side) -> bool {
        self.in_window(side, self.now)
    }
    /// What to save so that [`Agent::resume`] continues from here after a reboot.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            active: self.applied,
            generation: self.applied_generation,
            issued: self.issued,
            forced: self.forced,
            failback_pending: self.failback_due.is_some(),
        }
    }

    // ---- inputs ----

    /// Time has passed: fire every timer due at or before `now`. A call when nothing is due does
    /// nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        for _ in 0..MAX_STEPS {
            let Some((at, timer)) = self.next_timer() else { break };
            if at > now {
                break;
            }
            match timer {
                Timer::Attempt(side) => self.attempt_expired(side, at, now, None),
                Timer::KeepAlive(side) => self.keepalive_fired(side, at, now),
                Timer::Cycle => {
                    let mut next = at.saturating_add(self.config.interval);
                    if next <= now {
                        // Woken more than an interval late: skip the missed cycles, stay on the grid.
                        // A valid interval is at least 1 s, so the division is never by zero and the
                        // count of cycles behind stays far from `u64::MAX`.
                        let interval = NonZeroU64::new(self.config.interval.as_micros()).unwrap_or(NonZeroU64::MIN);
                        let behind = now.saturating_duration_since(at).as_micros() / interval;
                        next = at.saturating_add(self.config.interval.saturating_mul(behind.saturating_add(1)));
                    }
                    self.start_cycle(now);
                    self.next_cycle = Some(next);
                }
                Timer::Policy => {}
            }
            self.decide(now);
        }
        self.expire_windows(now);
        self.decide(now);
    }

    /// A datagram arrived from `from`. It counts only if it matches a probe of this cycle sent over
    /// UDP: a datagram never answers for a server probed over TCP or TLS.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.handle_reply(now, Some(from), bytes, None);
    }

    /// A whole SIP message (see [`frame`](super::flow::frame)) was read from the flow of `server`. It
    /// counts only if that server is probed over a stream and the message matches a probe of this
    /// cycle.
    pub fn handle_message(&mut self, now: Instant, server: Side, bytes: &[u8]) {
        self.handle_reply(now, None, bytes, Some(server));
    }

    fn handle_reply(&mut self, now: Instant, from: Option<SocketAddr>, bytes: &[u8], flow: Option<Side>) {
        let now = self.advance(now);
        match self.match_reply(from, flow, bytes) {
            Err(reason) => {
                if let Some(c) = self.stats.ignored.get_mut(reason.index()) {
                    *c = c.saturating_add(1);
                }
                self.events.push(Event::Ignored { reason });
            }
            Ok((side, attempt, status, retry_after)) => {
                self.stats.replies = self.stats.replies.saturating_add(1);
                let p = &mut self.probes[side];
                // The next cycle starts at the address that answered: the datagram's source, the flow's
                // address.
                let hop = match from {
                    Some(from) => self.config.server(side).and_then(|c| c.hop_index(from)),
                    None => Some(usize::from(p.flow_hop)),
                };
                p.answered_hop = hop.and_then(|h| u8::try_from(h).ok()).unwrap_or(0);
                let sent = p.sent_at.get(usize::from(attempt).saturating_sub(1)).copied().unwrap_or(now);
                p.set_waiting(None);
                p.needs_send = false;
                self.events.push(Event::Reply {
                    server: side,
                    attempt,
                    status,
                    rtt: now.saturating_duration_since(sent),
                    retry_after,
                });
                // An answer on the flow proves it alive: the next keep-alive ping can wait.
                if let FlowState::Open { .. } = self.probes[side].flow {
                    self.probes[side].flow = FlowState::Open { pong_wait: false };
                    self.schedule_ping(side, now);
                }
                if self.config.alive_codes.is_alive(status) {
                    self.server_alive(side, now);
                } else {
                    if let (503, Some(seconds)) = (status, retry_after) {
                        self.announce(side, now, seconds);
                    }
                    self.server_failed(side, DownReason::Status { code: status, retry_after });
                }
                self.decide(now);
            }
        }
    }

    /// Sending the current attempt to `side` was refused by the network (ICMP port unreachable).
    /// With fast detection this ends the attempt at once; otherwise it is ignored and the wait runs.
    pub fn handle_refused(&mut self, now: Instant, side: Side) {
        let now = self.advance(now);
        if !self.config.fast.refused_ends_attempt {
            return;
        }
        if self.config.server(side).is_some_and(|s| s.transport.is_stream()) {
            return;
        }
        if let Some((attempt, _)) = self.probes[side].waiting() {
            self.events.push(Event::AttemptRefused { server: side, attempt });
            self.attempt_expired(side, now, now, Some(DownReason::Refused));
            self.decide(now);
        }
    }

    /// The caller's report on flow `id` of `server` (see [`FlowCommand::Open`]). Reports on a flow
    /// the agent no longer waits for (an older id, or a flow it closed) change nothing.
    ///
    /// A failure while a probe waits ends that attempt at once; the next attempt, if the ladder has
    /// one, opens a new flow at once. A TLS failure never counts as an answer.
    pub fn handle_flow(&mut self, now: Instant, server: Side, id: u16, event: FlowEvent) {
        let now = self.advance(now);
        let stream = self.config.server(server).is_some_and(|s| s.transport.is_stream());
        let p = &mut self.probes[server];
        if !stream || id != p.flow_id || p.flow == FlowState::Closed {
            return;
        }
        match event {
            FlowEvent::Connected => {
                if p.flow == FlowState::Opening {
                    p.flow = FlowState::Open { pong_wait: false };
                    self.events.push(Event::FlowUp { server });
                    self.schedule_ping(server, now);
                }
            }
            FlowEvent::Pong => {
                if p.flow == (FlowState::Open { pong_wait: true }) {
                    p.flow = FlowState::Open { pong_wait: false };
                    self.schedule_ping(server, now);
                }
            }
            FlowEvent::Failed(reason) => {
                p.flow = FlowState::Closed;
                p.ping = false;
                self.events.push(Event::FlowDown { server, reason });
                if let Some((attempt, _)) = self.probes[server].waiting() {
                    self.events.push(Event::AttemptRefused { server, attempt });
                    self.attempt_expired(server, now, now, Some(DownReason::Flow(reason)));
                    self.decide(now);
                }
            }
        }
    }

    /// A command. On error nothing changed.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) -> Result<(), CommandError> {
        let now = self.advance(now);
        let backup = self.config.backup.is_some();
        match cmd {
            Command::Force(side) => {
                if side == Side::Backup && !backup {
                    return Err(CommandError::BackupDisabled);
                }
                self.forced = Some(side);
                if self.target() != side {
                    self.switch(side, SwitchReason::Forced);
                }
            }
            Command::Release => {
                self.forced = None;
            }
            Command::Failback => {
                if !backup {
                    return Err(CommandError::BackupDisabled);
                }
                if self.target() == Side::Primary {
                    return Err(CommandError::AlreadyOnPrimary);
                }
                if self.probes[Side::Primary].up != Some(true) {
                    return Err(CommandError::PrimaryNotAlive);
                }
                if self.forced == Some(Side::Backup) {
                    self.forced = None;
                }
                self.switch(Side::Primary, SwitchReason::ManualFailback);
            }
            Command::Pause => {
                if !self.paused {
                    self.paused = true;
                    self.next_cycle = None;
                    for p in self.probes.iter_mut() {
                        p.set_waiting(None);
                        p.needs_send = false;
                        p.ping = false;
                        if p.outcome == Outcome::Pending {
                            p.outcome = Outcome::None;
                        }
                    }
                    self.events.push(Event::ProbingPaused);
                }
            }
            Command::Resume => {
                if self.paused {
                    self.paused = false;
                    self.events.push(Event::ProbingResumed);
                    // Keep-alive starts afresh on the flows still open.
                    for side in Side::BOTH {
                        if let FlowState::Open { .. } = self.probes[side].flow {
                            self.probes[side].flow = FlowState::Open { pong_wait: false };
                            self.schedule_ping(side, now);
                        }
                    }
                    if self.config.keep_alive {
                        self.start_cycle(now);
                    }
                }
            }
            Command::InCall(c) => {
                self.in_call = c;
                if !c {
                    self.held_reported = false;
                }
            }
            Command::Applied { generation } => match self.pending {
                Some((side, g)) if g == generation => {
                    self.pending = None;
                    self.applied = side;
                    self.applied_generation = g;
                    self.events.push(Event::Applied { side, generation });
                }
                _ => return Err(CommandError::StaleGeneration),
            },
            Command::ApplyFailed { generation } => match self.pending {
                Some((side, g)) if g == generation => {
                    self.pending = None;
                    self.hold_after_failed_apply = true;
                    self.events.push(Event::ApplyFailed { side, generation, kept: self.applied });
                }
                _ => return Err(CommandError::StaleGeneration),
            },
            Command::TransactionFailed => {
                let running = self.probes.iter().any(|p| p.waiting().is_some());
                if self.config.fast.transaction_failure_probes && !running && !self.paused && self.config.keep_alive {
                    self.start_cycle(now);
                    self.next_cycle = Some(now.saturating_add(self.config.interval));
                }
            }
            Command::Maintenance { side, retry_after_s } => {
                if side == Side::Backup && !backup {
                    return Err(CommandError::BackupDisabled);
                }
                self.announce(side, now, retry_after_s);
            }
            Command::LocalAddr { side, addr } => match side {
                Side::Primary => self.config.primary.local = addr,
                Side::Backup => {
                    if let Some(b) = self.config.backup.as_mut() {
                        b.local = addr;
                    }
                }
            },
            Command::PlannedWindow { side, start, end } => {
                if end <= start {
                    return Err(CommandError::EmptyWindow);
                }
                self.windows.insert(PlannedWindow { side, start, end })?;
            }
            Command::ClearPlannedWindows => self.windows = Windows::EMPTY,
        }
        self.decide(now);
        Ok(())
    }

    /// Replaces every planned window with `windows` in one step, then decides once: a refresh that
    /// gives the same windows (or windows that moved a little) changes nothing, where clearing and
    /// re-adding them one by one would fail back in between and leave again. On error (a window that
    /// ends before it starts, more than [`MAX_WINDOWS`] distinct windows) nothing changed.
    pub fn set_planned_windows(&mut self, now: Instant, windows: &[PlannedWindow]) -> Result<(), CommandError> {
        let set = Windows::from_slice(windows)?;
        let now = self.advance(now);
        self.windows = set;
        self.decide(now);
        Ok(())
    }

    /// Applies a new configuration live, without losing the active side, a running cycle or a call.
    /// An invalid configuration is rejected whole and the running one stays.
    pub fn update_config(&mut self, now: Instant, mut config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        let now = self.advance(now);
        // Keep the bound local addresses unless the new configuration names its own.
        if config.primary.local == ServerConfig::UNBOUND {
            config.primary.local = self.config.primary.local;
        }
        if let (Some(new), Some(old)) = (config.backup.as_mut(), self.config.backup.as_ref()) {
            if new.local == ServerConfig::UNBOUND {
                new.local = old.local;
            }
        }
        let interval_changed = config.interval != self.config.interval;
        let keepalive_changed = config.flow_keepalive != self.config.flow_keepalive;
        let old_spread_max = self.config.failback.spread;
        // A flow to a server that moved, changed transport or name (the TLS identity) is closed; the
        // next probe opens one to the new place.
        for side in Side::BOTH {
            let (Some(o), Some(n)) = (self.config.server(side), config.server(side)) else { continue };
            // The server's addresses keep their turns where they are still listed; the others start
            // again from the next hop.
            let p = &mut self.probes[side];
            let place = |i: u8| n.hop_index(o.hop(usize::from(i))).and_then(|j| u8::try_from(j).ok());
            let flow_at = place(p.flow_hop);
            p.first_hop = place(p.first_hop).unwrap_or(0);
            p.answered_hop = place(p.answered_hop).unwrap_or(0);
            p.flow_hop = flow_at.unwrap_or(0);
            let moved = flow_at.is_none() || (o.transport, o.uri_host) != (n.transport, n.uri_host);
            if moved && self.probes[side].flow != FlowState::Closed {
                self.close_flow(side, FlowError::Reconfigured);
                if self.probes[side].waiting().is_some() {
                    self.probes[side].needs_send = true;
                }
            }
        }
        self.config = config;
        if old_spread_max != self.config.failback.spread {
            self.spread = Duration::from_micros(self.rng.below_or_equal(self.config.failback.spread.as_micros()));
        }
        if keepalive_changed {
            // Keep-alive starts afresh on the flows still open, at the new interval.
            for side in Side::BOTH {
                if let FlowState::Open { .. } = self.probes[side].flow {
                    self.probes[side].flow = FlowState::Open { pong_wait: false };
                    self.probes[side].ping = false;
                    self.schedule_ping(side, now);
                }
            }
        }
        if self.config.backup.is_none() {
            self.probes[Side::Backup] = self.probes[Side::Backup].reset();
            if self.forced == Some(Side::Backup) {
                self.forced = None;
            }
            if self.target() == Side::Backup {
                self.switch(Side::Primary, SwitchReason::Reconfigured);
            }
        }
        if !self.config.keep_alive {
            self.next_cycle = None;
        } else if !self.paused {
            match self.next_cycle {
                None => self.start_cycle(now),
                Some(_) if interval_changed => {
                    // Keep the grid anchored at the current cycle's start.
                    let next = self.last_cycle_start().unwrap_or(now).saturating_add(self.config.interval);
                    self.next_cycle = Some(next.max(now));
                }
                Some(_) => {}
            }
        }
        self.decide(now);
        Ok(())
    }

    // ---- outputs ----

    /// The next datagram to send, encoded into `buf`. If `buf` is too small it is left untouched and
    /// the size needed is returned; the probe stays queued.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Result<Option<Transmit>, BufferTooSmall> {
        let now = self.advance(now);
        for side in Side::BOTH {
            let p = &self.probes[side];
            let Some(server) = self.config.server(side) else { continue };
            let open = matches!(p.flow, FlowState::Open { .. });
            if server.transport.is_stream() && !open {
                continue;
            }
            if p.ping && open {
                let dst = buf.get_mut(..PING.len()).ok_or(BufferTooSmall { needed: PING.len() })?;
                dst.copy_from_slice(PING);
                let (destination, transport) = (server.hop(usize::from(p.flow_hop)), server.transport);
                self.probes[side].ping = false;
                return Ok(Some(Transmit { server: side, destination, attempt: 0, len: PING.len(), transport }));
            }
            if !p.needs_send {
                continue;
            }
            let Some((attempt, _)) = p.waiting() else { continue };
            let i = usize::from(attempt).saturating_sub(1).min(MAX_ATTEMPTS - 1);
            let mut branch = [0u8; BRANCH_BYTES * 2];
            let mut call_id = [0u8; CALL_ID_BYTES * 2];
            let mut tag = [0u8; TAG_BYTES * 2];
            let (raw_call_id, raw_tag, first_branch) = p.ids(&self.rng);
            let raw_branch = if i == 0 { first_branch } else { p.branch(&self.rng, i).unwrap_or([0; BRANCH_BYTES]) };
            hex(&raw_branch, &mut branch);
            hex(&raw_call_id, &mut call_id);
            hex(&raw_tag, &mut tag);
            // Attempts count from 1 while a probe waits; CSeq numbers wrap like the cycle's first.
            let cseq = p.cseq_first.wrapping_add(u32::from(attempt.saturating_sub(1)));
            let req = OptionsRequest {
                uri_host: server.uri_host.as_str(),
                uri_port: server.uri_port,
                local: server.local,
                user: self.config.user.as_str(),
                branch: &branch,
                call_id: &call_id,
                from_tag: &tag,
                cseq,
                user_agent: concat!("sip-failover/", env!("CARGO_PKG_VERSION")),
                transport: server.transport,
            };
            let len = wire::encode_options(&req, buf)?;
            let (destination, transport) =
                (server.hop(p.hop_of(attempt, server.transport.is_stream())), server.transport);
            let p = &mut self.probes[side];
            p.needs_send = false;
            if let Some(sent) = p.sent_at.get_mut(i) {
                *sent = now;
            }
            self.stats.probes_sent = self.stats.probes_sent.saturating_add(1);
            self.events.push(Event::ProbeSent { server: side, attempt, cseq });
            return Ok(Some(Transmit { server: side, destination, attempt, len, transport }));
        }
        Ok(None)
    }

    /// The next thing to do with a stream flow: close a flow the agent gave up on, open one a probe
    /// waits for. Drain it before [`Agent::poll_transmit`]; over UDP it is always `None`.
    pub fn poll_flow(&mut self) -> Option<FlowCommand> {
        for side in Side::BOTH {
            let p = &mut self.probes[side];
            if let Some(reason) = p.close.take() {
                return Some(FlowCommand::Close { server: side, id: p.flow_id, reason });
            }
            let Some(server) = self.config.server(side) else { continue };
            if server.transport.is_stream() && p.needs_send && p.flow == FlowState::Closed {
                p.flow_id = p.flow_id.wrapping_add(1);
                p.flow = FlowState::Opening;
                // A new flow goes to the address this attempt's turn falls on (the next one after an
                // attempt that went unanswered), as a datagram would.
                let turn = p.waiting().map_or(1, |(a, _)| a);
                let hop = p.hop_of(turn, false).checked_rem(server.hop_count()).unwrap_or(0);
                p.flow_hop = u8::try_from(hop).unwrap_or(0);
                let (destination, transport) = (server.hop(hop), server.transport);
                return Some(FlowCommand::Open { server: side, id: p.flow_id, destination, transport });
            }
        }
        None
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// When to call [`Agent::handle_timeout`] next; `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(at, _)| at)
    }

    // ---- internals ----

    /// Takes `now` as the latest time, refusing to go backwards.
    fn advance(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn next_timer(&self) -> Option<(Instant, Timer)> {
        let mut best: Option<(Instant, Timer)> = None;
        let mut offer = |at: Instant, t: Timer| {
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, t));
            }
        };
        for side in Side::BOTH {
            let p = &self.probes[side];
            if let Some((_, deadline)) = p.waiting() {
                offer(deadline, Timer::Attempt(side));
            }
            if self.keepalive_on() && matches!(p.flow, FlowState::Open { .. }) {
                offer(p.ka_at, Timer::KeepAlive(side));
            }
        }
        if let Some(c) = self.next_cycle {
            offer(c, Timer::Cycle);
        }
        if let Some(at) = self.policy_wakeup() {
            offer(at, Timer::Policy);
        }
        best
    }

    /// The next instant the policy can change its mind without new input: a failback delay ending,
    /// a planned window's lead, start or end.
    fn policy_wakeup(&self) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut offer = |at: Instant| {
            if at > self.now && best.is_none_or(|b| at < b) {
                best = Some(at);
            }
        };
        if let Some(due) = self.failback_due {
            offer(due);
        }
        for p in self.probes.iter() {
            offer(p.until);
        }
        for w in self.windows.iter() {
            offer(w.start.saturating_sub(self.config.planned_lead));
            offer(w.start);
            offer(w.end);
        }
        best
    }

    fn last_cycle_start(&self) -> Option<Instant> {
        self.probes.iter().filter(|p| p.outcome != Outcome::None).map(|p| p.sent_at[0]).max()
    }

    fn start_cycle(&mut self, now: Instant) {
        self.decided = false;
        self.hold_after_failed_apply = false;
        self.stats.cycles = self.stats.cycles.saturating_add(1);
        if self.next_cycle.is_none() {
            self.next_cycle = Some(now.saturating_add(self.config.interval));
        }
        for side in Side::BOTH {
            if self.config.server(side).is_none() {
                continue;
            }
            // Draw the Call-ID, the tag and the first branch; the probe keeps only where they start and
            // computes them when it needs them.
            let draw = self.rng.position();
            self.rng.skip(CALL_ID_BYTES);
            self.rng.skip(TAG_BYTES);
            self.rng.skip(BRANCH_BYTES);
            let first_wait = self.config.ladder.wait(1);
            let p = &mut self.probes[side];
            p.draw = draw;
            p.cseq_first = p.cseq_next;
            p.cseq_next = next_cseq(p.cseq_next);
            p.outcome = Outcome::Pending;
            p.first_hop = p.answered_hop;
            p.set_waiting(Some((1, now.saturating_add(first_wait))));
            p.needs_send = true;
            p.sent_at = [now; MAX_ATTEMPTS];
        }
    }

    /// The current attempt to `side` ended at `at` (`now` is the real time, later when catching up):
    /// its wait ran out (`ended` is `None`), or it ended early for the reason given. Sends the next
    /// attempt or fails the server. A timed-out attempt closes its stream flow: the next one opens a
    /// new flow instead of waiting on a connection that neither answers nor closes.
    fn attempt_expired(&mut self, side: Side, at: Instant, now: Instant, ended: Option<DownReason>) {
        let attempts = self.config.ladder.attempts();
        let Some((attempt, _)) = self.probes[side].waiting() else { return };
        if ended.is_none() {
            self.events.push(Event::AttemptTimedOut { server: side, attempt });
            if self.probes[side].flow != FlowState::Closed {
                self.close_flow(side, FlowError::AttemptTimedOut);
            }
        }
        if attempt >= attempts {
            self.probes[side].set_waiting(None);
            self.probes[side].needs_send = false;
            self.server_failed(side, ended.unwrap_or(DownReason::Timeout));
            return;
        }
        // Below the ladder's length (at most MAX_ATTEMPTS), so the next attempt number never saturates.
        let next = attempt.saturating_add(1);
        let branch_pos = self.rng.position();
        self.rng.skip(BRANCH_BYTES);
        let wait = self.config.ladder.wait(next);
        let mut deadline = at.saturating_add(wait);
        if deadline <= now {
            deadline = now.saturating_add(wait);
        }
        let p = &mut self.probes[side];
        // Only an absurd number of draws within one cycle (billions of reconfigurations) could overflow
        // the offset; the branch would then not match and the reply would be ignored, never trusted.
        let offset = u32::try_from(branch_pos.wrapping_sub(p.draw)).unwrap_or(u32::MAX);
        if let Some(slot) = p.branch_at.get_mut(usize::from(next).saturating_sub(2)) {
            *slot = offset;
        }
        p.cseq_next = next_cseq(p.cseq_next);
        p.set_waiting(Some((next, deadline)));
        p.needs_send = true;
    }

    /// `side`'s server announced maintenance for `seconds` from `now` (a 503 with Retry-After); a
    /// later announcement replaces it. Zero announces nothing.
    fn announce(&mut self, side: Side, now: Instant, seconds: u32) {
        if seconds > 0 {
            self.probes[side].until = now.saturating_add(Duration::from_secs(u64::from(seconds)));
        }
    }

    /// Whether `side`'s server is inside maintenance it announced.
    fn announced(&self, side: Side, now: Instant) -> bool {
        now < self.probes[side].until
    }

    fn keepalive_on(&self) -> bool {
        self.config.flow_keepalive != Duration::ZERO && !self.paused
    }

    /// Draws when the next keep-alive ping on `side`'s flow is due: 80 to 100 % of the interval from
    /// `now` (RFC 5626 4.4.1), so a fleet's pings do not line up.
    fn schedule_ping(&mut self, side: Side, now: Instant) {
        if self.config.flow_keepalive == Duration::ZERO {
            return;
        }
        let interval = self.config.flow_keepalive.as_micros();
        let fifth = interval / 5;
        let wait = interval.saturating_sub(fifth).saturating_add(self.rng.below_or_equal(fifth));
        self.probes[side].ka_at = now.saturating_add(Duration::from_micros(wait));
    }

    /// The keep-alive timer of `side` fired at `at`: send a ping, or, if the last one's pong never
    /// came, close the flow and probe at once.
    fn keepalive_fired(&mut self, side: Side, at: Instant, now: Instant) {
        let p = &mut self.probes[side];
        match p.flow {
            FlowState::Open { pong_wait: false } => {
                // Idle flows only: a probe waiting on the flow checks it already.
                if p.waiting().is_some() {
                    self.schedule_ping(side, now);
                    return;
                }
                p.ping = true;
                p.flow = FlowState::Open { pong_wait: true };
                p.ka_at = at.max(now).saturating_add(PONG_WAIT);
            }
            FlowState::Open { pong_wait: true } => {
                self.close_flow(side, FlowError::KeepAliveLost);
                let running = self.probes.iter().any(|p| p.waiting().is_some());
                if !running && self.config.keep_alive {
                    self.start_cycle(now);
                    self.next_cycle = Some(now.saturating_add(self.config.interval));
                }
            }
            _ => {}
        }
    }

    /// Closes `side`'s flow from the agent's side: the caller hears of it from [`Agent::poll_flow`].
    fn close_flow(&mut self, side: Side, reason: FlowError) {
        let p = &mut self.probes[side];
        p.flow = FlowState::Closed;
        p.ping = false;
        p.close = Some(reason);
        self.events.push(Event::FlowDown { server: side, reason });
    }

    fn server_alive(&mut self, side: Side, now: Instant) {
        let in_window = self.in_window(side, now);
        let p = &mut self.probes[side];
        p.outcome = Outcome::Alive;
        p.maint = false;
        p.streak = if in_window { 0 } else { p.streak.saturating_add(1) };
        self.events.push(Event::CycleResult { server: side, result: CycleResult::Alive });
        if p.up != Some(true) {
            p.up = Some(true);
            self.events.push(Event::ServerUp { server: side });
        }
    }

    fn server_failed(&mut self, side: Side, reason: DownReason) {
        let p = &mut self.probes[side];
        p.outcome = Outcome::Failed;
        p.streak = 0;
        p.maint = matches!(reason, DownReason::Status { code: 503, retry_after: Some(s) } if s > 0);
        self.events.push(Event::CycleResult { server: side, result: CycleResult::Failed(reason) });
        if p.up != Some(false) {
            p.up = Some(false);
            self.events.push(Event::ServerDown { server: side, reason });
        }
        // A failback waiting for the primary is off. A hold to leave a primary that announced
        // maintenance again stays reported.
        if side == Side::Primary {
            self.failback_due = None;
            if !p.maint {
                self.held_reported = false;
            }
        }
    }

    fn in_window(&self, side: Side, now: Instant) -> bool {
        self.windows.iter().any(|w| w.side == side && w.start <= now && now < w.end)
    }

    /// Whether `side` is inside a planned window or within the lead time before one, or inside
    /// maintenance it announced: the phone does not move onto it.
    fn window_near(&self, side: Side, now: Instant) -> bool {
        let lead = self.config.planned_lead;
        self.announced(side, now)
            || self.windows.iter().any(|w| w.side == side && w.start.saturating_sub(lead) <= now && now < w.end)
    }

    fn expire_windows(&mut self, now: Instant) {
        self.windows.expire(now);
    }

    fn switch(&mut self, to: Side, reason: SwitchReason) {
        let from = self.target();
        self.issued = next_generation(self.issued);
        self.pending = Some((to, self.issued));
        self.failback_due = None;
        self.held_reported = false;
        self.events.push(Event::Switch { from, to, reason, generation: self.issued });
    }

    fn hold(&mut self, to: Side) {
        if !self.held_reported {
            self.held_reported = true;
            self.events.push(Event::Held { to, reason: HoldReason::CallInProgress });
        }
    }

    /// The policy: failover, planned switch, failback. Called after every input.
    fn decide(&mut self, now: Instant) {
        if self.hold_after_failed_apply {
            return;
        }
        if self.config.backup.is_none() {
            // Still on a backup the configuration removed (the move back failed to apply): retry.
            if self.target() == Side::Backup {
                self.switch(Side::Primary, SwitchReason::Reconfigured);
            }
            return;
        }
        if self.forced.is_some() {
            return;
        }
        let target = self.target();
        let other = target.other();
        // Failover: the active side failed this cycle; move only if the other answered in it. A
        // server that answered 503 with Retry-After announced maintenance: it is left below, at an
        // idle moment, unless it stops answering altogether.
        if !self.decided {
            match (self.probes[target].outcome, self.probes[other].outcome) {
                (Outcome::Failed, Outcome::Alive) if !self.probes[target].maint => {
                    self.decided = true;
                    self.switch(other, SwitchReason::Failover);
                    return;
                }
                (Outcome::Failed, Outcome::Failed) => {
                    self.decided = true;
                    self.events.push(Event::NoServerReachable);
                }
                _ => {}
            }
        }
        // Announced maintenance: leave the target at an idle moment for the other side, if it answers
        // and is not itself in or near maintenance.
        if self.announced(target, now) {
            if self.probes[other].up == Some(true) && !self.window_near(other, now) {
                if self.in_call {
                    self.hold(other);
                } else {
                    self.switch(other, SwitchReason::Maintenance);
                }
            }
            return;
        }
        // Planned: leave the target before its window, at an idle moment, at the latest at its start.
        let lead = self.config.planned_lead;
        let planned = self
            .windows
            .iter()
            .filter(|w| w.side == target && w.start.saturating_sub(lead) <= now && now < w.end)
            .map(|w| w.start)
            .min();
        if let Some(start) = planned {
            let other_ok = self.probes[other].up == Some(true) && !self.window_near(other, now);
            if other_ok {
                if !self.in_call || now >= start {
                    self.switch(other, SwitchReason::Planned);
                } else {
                    self.hold(other);
                }
            }
            return;
        }
        // Failback: the primary alive long enough, not in a window, the phone idle, the spread over.
        if target == Side::Backup
            && self.config.failback.mode == FailbackMode::Auto
            && self.probes[Side::Primary].streak >= self.config.failback.after_cycles.get()
            && !self.window_near(Side::Primary, now)
        {
            let due = *self.failback_due.get_or_insert(now.saturating_add(self.spread));
            if now >= due {
                if self.in_call {
                    self.hold(Side::Primary);
                } else {
                    self.switch(Side::Primary, SwitchReason::Failback);
                }
            }
        }
    }

    /// Matches a datagram from `from`, or a message read from the flow of `flow`, against the probes
    /// waiting; returns the side, the attempt answered, the status and the Retry-After.
    fn match_reply(
        &self,
        from: Option<SocketAddr>,
        flow: Option<Side>,
        bytes: &[u8],
    ) -> Result<(Side, u8, u16, Option<u32>), IgnoreReason> {
        let resp = wire::parse_response(bytes).map_err(IgnoreReason::Malformed)?;
        let mut source_known = false;
        for side in Side::BOTH {
            let Some(server) = self.config.server(side) else { continue };
            let source = match (from, flow) {
                (Some(from), _) => !server.transport.is_stream() && server.hop_index(from).is_some(),
                (None, Some(f)) => server.transport.is_stream() && f == side,
                (None, None) => false,
            };
            if !source {
                continue;
            }
            source_known = true;
            let p = &self.probes[side];
            if p.outcome == Outcome::None {
                continue;
            }
            let (call_id, _, first_branch) = p.ids(&self.rng);
            if !hex_eq(&call_id, resp.call_id) {
                continue;
            }
            let Some((attempt_now, _)) = p.waiting() else { return Err(IgnoreReason::NotWaiting) };
            if resp.cseq_method != b"OPTIONS" {
                return Err(IgnoreReason::MethodMismatch);
            }
            // The attempt this CSeq answers, 1 to the current one; anything else is not this cycle's.
            let offset = resp.cseq.wrapping_sub(p.cseq_first);
            let Some(attempt) = u8::try_from(offset).ok().and_then(|o| o.checked_add(1)).filter(|a| *a <= attempt_now)
            else {
                return Err(IgnoreReason::CSeqMismatch);
            };
            let branch = resp.branch.strip_prefix(BRANCH_COOKIE.as_bytes()).ok_or(IgnoreReason::BranchMismatch)?;
            let sent = if offset == 0 {
                first_branch
            } else {
                p.branch(&self.rng, offset as usize).ok_or(IgnoreReason::CSeqMismatch)?
            };
            if !hex_eq(&sent, branch) {
                return Err(IgnoreReason::BranchMismatch);
            }

            if resp.status < 200 {
                return Err(IgnoreReason::Provisional);
            }
            return Ok((side, attempt, resp.status, resp.retry_after));
        }
        Err(if source_known { IgnoreReason::CallIdMismatch } else { IgnoreReason::UnknownSource })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Attempt(Side),
    KeepAlive(Side),
    Cycle,
    Policy,
}

/// The generation after `g`: counts up and wraps from `u32::MAX` to 1 (0 is the phone's starting
/// bundle, never handed out).
fn next_generation(g: u32) -> u32 {
    g.checked_add(1).unwrap_or(1)
}

/// CSeq numbers stay below 2^31 (RFC 3261 8.1.1.5).
fn next_cseq(c: u32) -> u32 {
    c.checked_add(1).filter(|n| *n <= 0x7fff_fff0).unwrap_or(1)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The lower-case hex digit of the low four bits of `n`.
fn hex_digit(n: u8) -> u8 {
    // Never the fallback: four bits index the 16 digits.
    HEX.get(usize::from(n & 0xf)).copied().unwrap_or(b'0')
}

fn hex(src: &[u8], dst: &mut [u8]) {
    for (b, out) in src.iter().zip(dst.chunks_exact_mut(2)) {
        if let [hi, lo] = out {
            *hi = hex_digit(b >> 4);
            *lo = hex_digit(*b);
        }
    }
}

/// Whether `text` is `raw` written in hex (either case).
fn hex_eq(raw: &[u8], text: &[u8]) -> bool {
    raw.len().checked_mul(2) == Some(text.len())
        && raw.iter().zip(text.chunks_exact(2)).all(|(b, t)| {
            matches!(t, [hi, lo] if hi.eq_ignore_ascii_case(&hex_digit(b >> 4)) && lo.eq_ignore_ascii_case(&hex_digit(*b)))
        })
}
