//! The tokio driver: one [`Agent`], one connected UDP socket per server, and the loop that feeds it.
//!
//! The loop holds no failover logic. It drains [`Agent::poll_transmit`] (sending each datagram on the
//! server's socket) and [`Agent::poll_event`] (printing each event and acting on switches), saves the
//! state file when the snapshot changed, then waits for whichever comes first: the agent's
//! [`poll_timeout`](Agent::poll_timeout), a datagram or an ICMP refusal from a socket, a control
//! request, a hook's exit, a DNS answer or a TTL running out; feeds it in, and repeats.
//!
//! Time: `tokio::time::Instant` at start is the core's [`Instant::ZERO`]; the core sees microseconds
//! since then.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant as TInstant;

use super::control::{self, ControlMsg, Request};
use super::dns::{DnsError, Family, Resolved, Resolver};
use super::events::EventLog;
use super::hook::{self, HookOptions, HookOutcome, SwitchInfo};
use super::maintenance::Planner;
use super::socket::{self, SocketOptions};
use super::state::StateFile;
use crate::config::{Endpoint, PhoneConfig};
use crate::core::{Agent, Command, Config, ConfigError, CycleResult, Event, Instant, Side, Snapshot};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_507;

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The configuration, with command-line overrides already applied.
    pub config: PhoneConfig,
    /// Re-applied to every configuration loaded live (`apply-config`), so command-line overrides stay.
    pub overrides: Overrides,
    /// Print events as JSON lines on stdout.
    pub events_json: bool,
    /// The switch hook, if any; without one, switches are applied at once.
    pub hook: Option<HookOptions>,
    /// A fixed seed for the agent's random source (tests); from the system's entropy when `None`.
    pub seed: Option<u64>,
}

/// Settings given on the command line that override the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The primary server (its outbound proxy is dropped).
    pub primary: Option<Endpoint>,
    /// The backup server (enables the backup; its outbound proxy is dropped).
    pub backup: Option<Endpoint>,
    /// The keep-alive interval.
    pub interval: Option<crate::core::Duration>,
    /// Fast detection of ICMP port-unreachable.
    pub fast_refused: Option<bool>,
    /// Fast detection of SIP transaction failures.
    pub fast_transaction: Option<bool>,
    /// The bind address.
    pub bind: Option<std::net::IpAddr>,
    /// The DSCP value.
    pub dscp: Option<u8>,
    /// The DNS resolver.
    pub resolver: Option<SocketAddr>,
    /// The control socket.
    pub control: Option<PathBuf>,
    /// The state directory.
    pub state_dir: Option<PathBuf>,
}

impl Overrides {
    /// Writes the overrides into `cfg`.
    pub fn apply(&self, cfg: &mut PhoneConfig) {
        if let Some(p) = &self.primary {
            cfg.primary.server = p.clone();
            cfg.primary.outbound_proxy = None;
        }
        if let Some(b) = &self.backup {
            match cfg.backup.as_mut() {
                Some(side) => {
                    side.server = b.clone();
                    side.outbound_proxy = None;
                }
                None => {
                    // A backup the file did not have: the primary's settings with nothing of its own.
                    let mut side = cfg.primary.clone();
                    side.server = b.clone();
                    side.outbound_proxy = None;
                    side.vpn_endpoint = None;
                    side.cluster = None;
                    cfg.backup = Some(side);
                }
            }
        }
        if let Some(i) = self.interval {
            cfg.interval = i;
        }
        if let Some(f) = self.fast_refused {
            cfg.fast.refused_ends_attempt = f;
        }
        if let Some(f) = self.fast_transaction {
            cfg.fast.transaction_failure_probes = f;
        }
        if let Some(b) = self.bind {
            cfg.network.bind = Some(b);
        }
        if let Some(d) = self.dscp {
            cfg.network.dscp = d;
        }
        if let Some(r) = self.resolver {
            cfg.network.dns_server = Some(r);
        }
        if let Some(c) = &self.control {
            cfg.network.control_socket = Some(c.clone());
        }
        if let Some(s) = &self.state_dir {
            cfg.network.state_dir = Some(s.clone());
        }
    }
}

/// Why the agent could not start or had to stop.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration cannot run.
    Config(ConfigError),
    /// A name needs DNS but no resolver is configured or found.
    NoResolver,
    /// A socket could not be made.
    Socket(Side, SocketAddr, io::Error),
    /// The control socket could not be bound.
    Control(PathBuf, io::Error),
    /// Signal handlers could not be installed.
    Signals(io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(e) => write!(f, "configuration: {e}"),
            RunError::NoResolver => f.write_str("a server name needs DNS but no resolver is configured or found"),
            RunError::Socket(s, a, e) => write!(f, "{s} socket to {a}: {e}"),
            RunError::Control(p, e) => write!(f, "control socket {}: {e}", p.display()),
            RunError::Signals(e) => write!(f, "signal handlers: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Why a name is being looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    Startup,
    Ttl,
    ServerFailed,
}

impl Refresh {
    fn as_str(self) -> &'static str {
        match self {
            Refresh::Startup => "startup",
            Refresh::Ttl => "ttl",
            Refresh::ServerFailed => "server_failed",
        }
    }
}

/// What the loop is woken by, other than timers and control requests.
#[derive(Debug)]
enum Input {
    Datagram { side: Side, epoch: u64, at: TInstant, from: SocketAddr, bytes: Vec<u8> },
    Refused { side: Side, epoch: u64, at: TInstant },
    HookDone { generation: u32, outcome: HookOutcome, elapsed: StdDuration },
    Resolved { side: Side, reason: Refresh, host: String, result: Result<Resolved, DnsError> },
    ConfigLoaded { result: Result<(Box<PhoneConfig>, [Option<SocketAddr>; 2]), String>, reply: oneshot::Sender<Value> },
}

struct SideSocket {
    sock: Arc<UdpSocket>,
    peer: SocketAddr,
    local: SocketAddr,
    epoch: u64,
    reader: JoinHandle<()>,
}

impl Drop for SideSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[derive(Default)]
struct SideNet {
    /// The resolved next hop.
    addr: Option<SocketAddr>,
    /// When its DNS records run out.
    refresh_at: Option<TInstant>,
    /// A lookup is running.
    resolving: bool,
    sock: Option<SideSocket>,
    /// Where the latest probe went.
    last_destination: Option<SocketAddr>,
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(opts: RunOptions) -> Result<(), RunError> {
    let start = TInstant::now();
    let log = EventLog::new(opts.events_json);
    let mut cfg = opts.config.clone();
    // A restart in the upgrade window takes the pending rebuild.
    let rebuilt = Planner::new(&cfg, jiff::Timestamp::now(), Instant::ZERO).due_rebuild(jiff::Timestamp::now());
    match rebuilt {
        Some(Ok(mut new_cfg)) => {
            opts.overrides.apply(&mut new_cfg);
            log.driver(Instant::ZERO, "rebuild_applied", json!({"at": "start"}));
            cfg = new_cfg;
        }
        Some(Err(e)) => tracing::error!("pending rebuild unusable, keeping the current configuration: {e}"),
        None => {}
    }
    let resolver = make_resolver(&cfg)?;
    let family = Family::for_bind(cfg.network.bind);

    // Resolve both next hops before the agent can start: the core needs an address for each.
    let mut hops: [Option<SocketAddr>; 2] = [None, None];
    let mut refresh_at: [Option<TInstant>; 2] = [None, None];
    for side in Side::BOTH {
        let Some(sc) = cfg.side(side) else { continue };
        let ep = sc.next_hop().clone();
        let mut backoff = StdDuration::from_secs(1);
        loop {
            let t = to_core(start, TInstant::now());
            match resolve(resolver.as_ref(), &ep, family).await {
                Ok(r) => {
                    let chosen = choose(&r, None, Refresh::Startup);
                    log.driver(t, "resolved", resolved_fields(side, &ep.host, chosen, &r, Refresh::Startup));
                    hops[side.index()] = chosen;
                    refresh_at[side.index()] = r.ttl.map(|d| TInstant::now() + d);
                    break;
                }
                Err(e) => {
                    log.driver(
                        t,
                        "resolve_failed",
                        json!({"server": side.as_str(), "host": ep.host, "error": e.to_string(), "reason": "startup"}),
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(StdDuration::from_secs(30));
                }
            }
        }
    }
    let Some(primary_hop) = hops[0] else { return Err(RunError::NoResolver) };
    let core_cfg = cfg.core_config(primary_hop, hops[1]);

    let state = cfg.network.state_dir.as_ref().map(StateFile::new);
    let snapshot = match state.as_ref().map(StateFile::load) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            tracing::error!("state file unusable, starting afresh: {e}");
            None
        }
        None => None,
    };
    let now = to_core(start, TInstant::now());
    let agent = match (snapshot, opts.seed) {
        (Some(s), Some(seed)) => Agent::resume(core_cfg, now, seed, s),
        (Some(s), None) => Agent::resume_with_key(core_cfg, now, super::entropy::key(), s),
        (None, Some(seed)) => Agent::new(core_cfg, now, seed),
        (None, None) => Agent::with_key(core_cfg, now, super::entropy::key()),
    }
    .map_err(RunError::Config)?;

    let (tx, rx) = mpsc::unbounded_channel();
    let (ctl_tx, ctl_rx) = mpsc::channel::<ControlMsg>(16);
    let planner = Planner::new(&cfg, jiff::Timestamp::now(), now);
    let mut d = Driver {
        planner,
        next_maintenance: TInstant::now(),
        start,
        log,
        cfg,
        overrides: opts.overrides,
        agent,
        net: [SideNet::default(), SideNet::default()],
        tx,
        hook: opts.hook,
        hook_task: None,
        state,
        saved: snapshot,
        resolver,
        family,
        epoch: 0,
        buf: vec![0u8; 2048],
    };
    for side in Side::BOTH {
        d.net[side.index()].addr = hops[side.index()];
        d.net[side.index()].refresh_at = refresh_at[side.index()];
    }
    d.sync_sockets(true)?;

    let control_path = d.cfg.network.control_socket.clone();
    let control_task = match &control_path {
        Some(p) => {
            let l = control::bind(p).map_err(|e| RunError::Control(p.clone(), e))?;
            Some(tokio::spawn(control::serve(l, ctl_tx)))
        }
        None => None,
    };

    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;

    let t = d.now();
    d.log.driver(t, "started", d.started_fields(snapshot.is_some()));
    d.main_loop(rx, ctl_rx, &mut sigterm, &mut sigint).await;

    let t = d.now();
    d.save_state();
    d.log.driver(t, "stopped", json!({"active": d.agent.active().as_str(), "generation": d.agent.generation()}));
    if let Some(task) = control_task {
        task.abort();
    }
    if let Some(p) = control_path {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

fn make_resolver(cfg: &PhoneConfig) -> Result<Option<Resolver>, RunError> {
    let needs_dns = Side::BOTH.iter().filter_map(|s| cfg.side(*s)).any(|s| s.next_hop().ip().is_none());
    match cfg.network.dns_server {
        Some(addr) => Ok(Some(Resolver::new(addr))),
        None if needs_dns => Resolver::from_system().map(Some).map_err(|_| RunError::NoResolver),
        None => Ok(None),
    }
}

async fn resolve(resolver: Option<&Resolver>, ep: &Endpoint, family: Family) -> Result<Resolved, DnsError> {
    if let Some(a) = ep.socket_addr() {
        return Ok(Resolved { candidates: vec![a], ttl: None, via_srv: false });
    }
    resolver.ok_or(DnsError::NoResolver)?.resolve(ep, family).await
}

/// The address to use from a lookup: after a failure, the next candidate; otherwise the current one
/// while it is still listed (no needless moves), else the best.
fn choose(r: &Resolved, current: Option<SocketAddr>, reason: Refresh) -> Option<SocketAddr> {
    match reason {
        Refresh::ServerFailed => r.candidates.iter().copied().find(|c| Some(*c) != current).or(current),
        _ => current.filter(|c| r.candidates.contains(c)).or_else(|| r.candidates.first().copied()),
    }
}

fn resolved_fields(side: Side, host: &str, chosen: Option<SocketAddr>, r: &Resolved, reason: Refresh) -> Value {
    json!({
        "server": side.as_str(),
        "host": host,
        "next_hop": chosen.map(|a| a.to_string()),
        "candidates": r.candidates.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "ttl_s": r.ttl.map(|t| t.as_secs_f64()),
        "via_srv": r.via_srv,
        "reason": reason.as_str(),
    })
}

fn to_core(start: TInstant, t: TInstant) -> Instant {
    Instant::from_micros(u64::try_from(t.saturating_duration_since(start).as_micros()).unwrap_or(u64::MAX))
}

struct Driver {
    planner: Planner,
    next_maintenance: TInstant,
    start: TInstant,
    log: EventLog,
    cfg: PhoneConfig,
    overrides: Overrides,
    agent: Agent,
    net: [SideNet; 2],
    tx: mpsc::UnboundedSender<Input>,
    hook: Option<HookOptions>,
    hook_task: Option<JoinHandle<()>>,
    state: Option<StateFile>,
    saved: Option<Snapshot>,
    resolver: Option<Resolver>,
    family: Family,
    epoch: u64,
    buf: Vec<u8>,
}

impl Driver {
    fn now(&self) -> Instant {
        to_core(self.start, TInstant::now())
    }

    fn to_tokio(&self, i: Instant) -> TInstant {
        let far = self.start + StdDuration::from_secs(365 * 24 * 3600);
        self.start.checked_add(StdDuration::from_micros(i.as_micros())).map(|t| t.min(far)).unwrap_or(far)
    }

    fn socket_options(&self) -> SocketOptions {
        SocketOptions { bind: self.cfg.network.bind, dscp: self.cfg.network.dscp }
    }

    /// Makes each configured side's socket match its next hop (all of them when `all`), and tells the
    /// agent the local addresses.
    fn sync_sockets(&mut self, all: bool) -> Result<(), RunError> {
        for side in Side::BOTH {
            let hop = self.agent.config().server(side).map(|s| s.next_hop);
            let n = &mut self.net[side.index()];
            let Some(hop) = hop else {
                n.sock = None;
                continue;
            };
            if !all && n.sock.as_ref().is_some_and(|s| s.peer == socket::canonical(hop)) {
                continue;
            }
            self.epoch += 1;
            let s = open_socket(side, hop, self.socket_options(), self.epoch, self.tx.clone())
                .map_err(|e| RunError::Socket(side, hop, e))?;
            let local = s.local;
            self.net[side.index()].sock = Some(s);
            let now = self.now();
            let _ = self.agent.handle_command(now, Command::LocalAddr { side, addr: local });
            tracing::debug!("{side} socket {local} -> {hop}");
        }
        Ok(())
    }

    async fn main_loop(
        &mut self,
        mut rx: mpsc::UnboundedReceiver<Input>,
        mut ctl_rx: mpsc::Receiver<ControlMsg>,
        sigterm: &mut tokio::signal::unix::Signal,
        sigint: &mut tokio::signal::unix::Signal,
    ) {
        loop {
            self.flush().await;
            let far = TInstant::now() + StdDuration::from_secs(3600);
            let wake = self.agent.poll_timeout().map(|t| self.to_tokio(t)).unwrap_or(far);
            let dns_wake = self.net.iter().filter(|n| !n.resolving).filter_map(|n| n.refresh_at).min().unwrap_or(far);
            let maintenance_wake = self.next_maintenance;
            tokio::select! {
                _ = tokio::time::sleep_until(maintenance_wake) => {
                    let first = self.planner.bell_unknown();
                    self.refresh_maintenance(first);
                    self.next_maintenance = TInstant::now() + StdDuration::from(super::maintenance::POLL);
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = self.now();
                    self.agent.handle_timeout(now);
                }
                _ = tokio::time::sleep_until(dns_wake) => {
                    let t = TInstant::now();
                    for side in Side::BOTH {
                        let n = &self.net[side.index()];
                        if !n.resolving && n.refresh_at.is_some_and(|r| r <= t) {
                            self.start_resolve(side, Refresh::Ttl);
                        }
                    }
                }
                Some(input) = rx.recv() => self.handle_input(input),
                Some(msg) = ctl_rx.recv() => self.handle_control(msg).await,
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
    }

    /// Drains the agent's transmits and events and acts on them until it has nothing more to say,
    /// then saves the state file if the snapshot changed.
    async fn flush(&mut self) {
        for _ in 0..32 {
            let mut progressed = false;
            loop {
                let now = self.now();
                let t = match self.agent.poll_transmit(now, &mut self.buf) {
                    Ok(Some(t)) => t,
                    Ok(None) => break,
                    Err(e) if e.needed > self.buf.len() && e.needed <= MAX_DATAGRAM => {
                        self.buf.resize(e.needed, 0);
                        continue;
                    }
                    Err(e) => {
                        // The core could not encode the probe with any buffer we can give: report it
                        // and go on; the attempt's wait still runs, so the ladder stays bounded.
                        tracing::error!("a probe could not be encoded ({e}); not sent");
                        break;
                    }
                };
                progressed = true;
                self.send(t.server, t.destination, t.len).await;
            }
            let mut switches = Vec::new();
            let mut failed_sides = Vec::new();
            while let Some(ev) = self.agent.poll_event() {
                progressed = true;
                let now = self.now();
                let dest = match ev {
                    Event::ProbeSent { server, .. } => self.net[server.index()].last_destination,
                    _ => None,
                };
                self.log.core(now, &ev, dest);
                match ev {
                    Event::Switch { from, to, reason, generation } => switches.push((from, to, reason, generation)),
                    Event::CycleResult { server, result: CycleResult::Failed(_) } => failed_sides.push(server),
                    _ => {}
                }
            }
            for (from, to, reason, generation) in switches {
                self.on_switch(from, to, reason, generation);
            }
            for side in failed_sides {
                if !self.net[side.index()].resolving && self.needs_dns(side) {
                    self.start_resolve(side, Refresh::ServerFailed);
                }
            }
            if !progressed {
                break;
            }
        }
        self.save_state();
    }

    async fn send(&mut self, side: Side, destination: SocketAddr, len: usize) {
        let needs_new = self.net[side.index()].sock.as_ref().is_none_or(|s| s.peer != socket::canonical(destination));
        if needs_new {
            // Cannot normally happen: sockets follow every configuration change. Repair and go on.
            if let Err(e) = self.sync_sockets(false) {
                tracing::error!("{e}");
            }
        }
        self.net[side.index()].last_destination = Some(destination);
        let Some(s) = self.net[side.index()].sock.as_ref() else {
            tracing::error!("no socket for the {side} server");
            return;
        };
        let sock = s.sock.clone();
        let bytes = &self.buf[..len];
        for retry in 0..2 {
            match sock.try_send(bytes) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = sock.send(bytes).await {
                        tracing::warn!("send to {side} server {destination}: {e}");
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && retry == 0 => {
                    // An earlier ICMP port-unreachable, reported on this send: feed it in, send again.
                    let now = self.now();
                    self.agent.handle_refused(now, side);
                }
                Err(e) => {
                    tracing::warn!("send to {side} server {destination}: {e}");
                    return;
                }
            }
        }
    }

    fn needs_dns(&self, side: Side) -> bool {
        self.cfg.side(side).is_some_and(|s| s.next_hop().ip().is_none())
    }

    fn start_resolve(&mut self, side: Side, reason: Refresh) {
        let Some(sc) = self.cfg.side(side) else { return };
        let ep = sc.next_hop().clone();
        let n = &mut self.net[side.index()];
        n.resolving = true;
        n.refresh_at = None;
        let resolver = self.resolver.clone();
        let family = self.family;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = resolve(resolver.as_ref(), &ep, family).await;
            let _ = tx.send(Input::Resolved { side, reason, host: ep.host, result });
        });
    }

    fn on_switch(&mut self, from: Side, to: Side, reason: crate::core::SwitchReason, generation: u32) {
        let now = self.now();
        let Some(h) = self.hook.clone() else {
            if let Err(e) = self.agent.handle_command(now, Command::Applied { generation }) {
                tracing::debug!("applying generation {generation}: {e}");
            }
            return;
        };
        if let Some(old) = self.hook_task.take() {
            // A newer switch supersedes a hook still running; its command is killed.
            old.abort();
        }
        let info = SwitchInfo {
            from,
            to,
            reason,
            generation,
            bundle: self.cfg.bundle(to),
            next_hop: self.agent.config().server(to).map(|s| s.next_hop),
        };
        let tx = self.tx.clone();
        self.hook_task = Some(tokio::spawn(async move {
            let began = TInstant::now();
            let outcome = hook::run(&h, &info).await;
            let _ = tx.send(Input::HookDone { generation, outcome, elapsed: began.elapsed() });
        }));
    }

    fn handle_input(&mut self, input: Input) {
        match input {
            Input::Datagram { side, epoch, at, from, bytes } => {
                if self.net[side.index()].sock.as_ref().is_some_and(|s| s.epoch == epoch) {
                    let at = to_core(self.start, at);
                    self.agent.handle_datagram(at, socket::canonical(from), &bytes);
                }
            }
            Input::Refused { side, epoch, at } => {
                if self.net[side.index()].sock.as_ref().is_some_and(|s| s.epoch == epoch) {
                    tracing::debug!("{side} server refused (ICMP port unreachable)");
                    self.agent.handle_refused(to_core(self.start, at), side);
                }
            }
            Input::HookDone { generation, outcome, elapsed } => {
                let now = self.now();
                let ok = outcome.is_success();
                let code = match &outcome {
                    HookOutcome::Exit(c) => Some(*c),
                    HookOutcome::Success => Some(0),
                    _ => None,
                };
                self.log.driver(
                    now,
                    "hook",
                    json!({
                        "generation": generation,
                        "result": outcome.as_str(),
                        "exit_code": code,
                        "detail": outcome.to_string(),
                        "elapsed_ms": elapsed.as_millis() as u64,
                    }),
                );
                let cmd = if ok { Command::Applied { generation } } else { Command::ApplyFailed { generation } };
                if let Err(e) = self.agent.handle_command(now, cmd) {
                    tracing::debug!("hook result for generation {generation}: {e}");
                }
            }
            Input::Resolved { side, reason, host, result } => self.on_resolved(side, reason, &host, result),
            Input::ConfigLoaded { result, reply } => {
                let answer = match result {
                    Err(e) => json!({"ok": false, "error": e}),
                    Ok((cfg, hops)) => match self.apply_config(*cfg, hops) {
                        Ok(()) => json!({"ok": true, "status": self.status()}),
                        Err(e) => json!({"ok": false, "error": e}),
                    },
                };
                let _ = reply.send(answer);
            }
        }
    }

    fn on_resolved(&mut self, side: Side, reason: Refresh, host: &str, result: Result<Resolved, DnsError>) {
        let now = self.now();
        let n = &mut self.net[side.index()];
        n.resolving = false;
        let still_named = self.cfg.side(side).is_some_and(|s| s.next_hop().host == host);
        match result {
            Err(e) => {
                n.refresh_at = Some(TInstant::now() + StdDuration::from_secs(5));
                self.log.driver(
                    now,
                    "resolve_failed",
                    json!({"server": side.as_str(), "host": host, "error": e.to_string(), "reason": reason.as_str()}),
                );
            }
            Ok(r) => {
                n.refresh_at = r.ttl.map(|d| TInstant::now() + d);
                let current = n.addr;
                let chosen = choose(&r, current, reason);
                self.log.driver(now, "resolved", resolved_fields(side, host, chosen, &r, reason));
                if still_named && chosen.is_some() && chosen != current {
                    self.net[side.index()].addr = chosen;
                    if let Err(e) = self.reconfigure() {
                        tracing::error!("new address for the {side} server not applied: {e}");
                    }
                }
            }
        }
    }

    /// Hands the agent the configuration with the current next hops, and follows with the sockets.
    /// Feeds the maintenance schedule to the agent: windows on its clock, the bell count, and a
    /// pending rebuild whose upgrade window has come.
    fn refresh_maintenance(&mut self, first: bool) {
        let wall = jiff::Timestamp::now();
        let now = self.now();
        let update = self.planner.refresh(wall, now, first);
        if let Some(e) = &update.feed_error {
            self.log.driver(now, "notice_feed_error", json!({"error": e}));
        }
        if let Some(windows) = &update.windows {
            // One step: clearing and re-adding would fail back and leave again during a lead time.
            if let Err(e) = self.agent.set_planned_windows(now, windows) {
                tracing::warn!("planned windows not taken: {e}");
            }
            let listed: Vec<_> = windows
                .iter()
                .map(|w| json!({"server": w.side.as_str(), "start_ms": w.start.as_millis(), "end_ms": w.end.as_millis()}))
                .collect();
            self.log.driver(now, "maintenance_windows", json!({"reason": update.reason, "windows": listed}));
        }
        if let Some(count) = update.bell {
            self.log.driver(now, "bell", json!({"count": count, "reason": update.reason}));
        }
        match self.planner.due_rebuild(wall) {
            Some(Ok(_)) => {
                if let Some(store) = self.planner.store() {
                    let path = store.dir().join("active.toml");
                    self.log.driver(
                        now,
                        "rebuild_applied",
                        json!({"at": "upgrade_window", "path": path.to_string_lossy()}),
                    );
                    let (reply, _) = oneshot::channel();
                    self.load_config(path, reply);
                }
            }
            Some(Err(e)) => tracing::error!("pending rebuild unusable: {e}"),
            None => {}
        }
    }

    fn reconfigure(&mut self) -> Result<(), String> {
        let Some(p) = self.net[0].addr else { return Err("no address for the primary".into()) };
        let b = if self.cfg.backup.is_some() { self.net[1].addr } else { None };
        let core_cfg: Config = self.cfg.core_config(p, b);
        let now = self.now();
        self.agent.update_config(now, core_cfg).map_err(|e| e.to_string())?;
        self.sync_sockets(false).map_err(|e| e.to_string())
    }

    fn apply_config(&mut self, cfg: PhoneConfig, hops: [Option<SocketAddr>; 2]) -> Result<(), String> {
        let Some(p) = hops[0] else { return Err("no address for the primary".into()) };
        let core_cfg = cfg.core_config(p, if cfg.backup.is_some() { hops[1] } else { None });
        core_cfg.validate().map_err(|e| e.to_string())?;
        let sockets_changed = cfg.network.bind != self.cfg.network.bind || cfg.network.dscp != self.cfg.network.dscp;
        if cfg.network.control_socket != self.cfg.network.control_socket
            || cfg.network.state_dir != self.cfg.network.state_dir
        {
            tracing::warn!("a new control socket or state directory takes effect at the next start");
        }
        let now = self.now();
        self.agent.update_config(now, core_cfg).map_err(|e| e.to_string())?;
        let keep_net = (self.cfg.network.control_socket.clone(), self.cfg.network.state_dir.clone());
        self.cfg = cfg;
        (self.cfg.network.control_socket, self.cfg.network.state_dir) = keep_net;
        for side in Side::BOTH {
            let n = &mut self.net[side.index()];
            n.addr = hops[side.index()];
            n.refresh_at = None;
            if self.cfg.side(side).is_some_and(|s| s.next_hop().ip().is_none()) && !n.resolving {
                // Look again at once: the lookup for the file had no TTL bookkeeping.
                n.refresh_at = Some(TInstant::now());
            }
        }
        self.sync_sockets(sockets_changed).map_err(|e| e.to_string())?;
        self.log.driver(now, "config_applied", json!({"path": self.cfg.path.to_string_lossy()}));
        self.planner = Planner::new(&self.cfg, jiff::Timestamp::now(), now);
        self.refresh_maintenance(true);
        Ok(())
    }

    async fn handle_control(&mut self, msg: ControlMsg) {
        let now = self.now();
        let cmd = match &msg.request {
            Request::Status => None,
            Request::Force(s) => Some(Command::Force(*s)),
            Request::Release => Some(Command::Release),
            Request::Failback => Some(Command::Failback),
            Request::Pause => Some(Command::Pause),
            Request::Resume => Some(Command::Resume),
            Request::Call(c) => Some(Command::InCall(*c)),
            Request::TransactionFailed => Some(Command::TransactionFailed),
            Request::ApplyConfig(path) => {
                self.load_config(path.clone(), msg.reply);
                return;
            }
        };
        self.log.driver(now, "control", json!({"request": msg.request.to_json()}));
        let answer = match cmd.map(|c| self.agent.handle_command(now, c)) {
            Some(Err(e)) => json!({"ok": false, "error": e.to_string()}),
            _ => {
                // Let the command's consequences (a switch, its application) show in the answer.
                self.flush().await;
                json!({"ok": true, "status": self.status()})
            }
        };
        let _ = msg.reply.send(answer);
    }

    /// Loads, validates and resolves a configuration file in the background; the loop applies it.
    fn load_config(&mut self, path: PathBuf, reply: oneshot::Sender<Value>) {
        let overrides = self.overrides.clone();
        let tx = self.tx.clone();
        let fallback = self.resolver.clone();
        let family = self.family;
        tokio::spawn(async move {
            let result = async {
                let mut cfg = PhoneConfig::load(&path).map_err(|e| e.to_string())?;
                overrides.apply(&mut cfg);
                let resolver = match cfg.network.dns_server {
                    Some(a) => Some(Resolver::new(a)),
                    None => fallback.or_else(|| Resolver::from_system().ok()),
                };
                let mut hops = [None, None];
                for side in Side::BOTH {
                    if let Some(sc) = cfg.side(side) {
                        let ep = sc.next_hop();
                        let r =
                            resolve(resolver.as_ref(), ep, family).await.map_err(|e| format!("{}: {e}", ep.host))?;
                        hops[side.index()] = choose(&r, None, Refresh::Startup);
                    }
                }
                Ok((Box::new(cfg), hops))
            }
            .await;
            let _ = tx.send(Input::ConfigLoaded { result, reply });
        });
    }

    fn save_state(&mut self) {
        let Some(state) = &self.state else { return };
        let snap = self.agent.snapshot();
        if self.saved == Some(snap) {
            return;
        }
        match state.save(&snap) {
            Ok(()) => self.saved = Some(snap),
            Err(e) => tracing::error!("saving state: {e}"),
        }
    }

    fn server_json(&self, side: Side) -> Value {
        let Some(sc) = self.cfg.side(side) else { return Value::Null };
        let n = &self.net[side.index()];
        json!({
            "server": sc.server.to_string(),
            "next_hop": n.addr.map(|a| a.to_string()),
            "local": n.sock.as_ref().map(|s| s.local.to_string()),
            "up": self.agent.is_up(side),
        })
    }

    fn status(&self) -> Value {
        let a = &self.agent;
        let snap = a.snapshot();
        let stats = a.stats();
        json!({
            "active": a.active().as_str(),
            "generation": a.generation(),
            "target": a.target().as_str(),
            "pending": a.pending().map(|(s, g)| json!({"side": s.as_str(), "generation": g})),
            "forced": a.forced().map(Side::as_str),
            "paused": a.is_paused(),
            "in_call": a.in_call(),
            "call_state": if a.in_call() { "in_call" } else { "idle" },
            "failback_pending": snap.failback_pending,
            "primary": self.server_json(Side::Primary),
            "backup": self.server_json(Side::Backup),
            "uptime_ms": self.now().as_millis(),
            "next_cycle_ms": a.next_cycle().map(|c| c.as_millis()),
            "interval_ms": a.config().interval.as_millis(),
            "stats": {
                "probes_sent": stats.probes_sent,
                "replies": stats.replies,
                "cycles": stats.cycles,
                "ignored": stats.ignored.iter().sum::<u32>(),
                "events_dropped": stats.events_dropped,
            },
            "config": self.cfg.path.to_string_lossy(),
            "state_file": self.state.as_ref().map(|s| s.path().to_string_lossy().into_owned()),
        })
    }

    fn started_fields(&self, resumed: bool) -> Value {
        json!({
            "pid": std::process::id(),
            "active": self.agent.active().as_str(),
            "generation": self.agent.generation(),
            "resumed": resumed,
            "forced": self.agent.forced().map(Side::as_str),
            "primary": self.server_json(Side::Primary),
            "backup": self.server_json(Side::Backup),
            "interval_ms": self.agent.config().interval.as_millis(),
            "control": self.cfg.network.control_socket.as_ref().map(|p| p.to_string_lossy().into_owned()),
        })
    }
}

fn open_socket(
    side: Side,
    peer: SocketAddr,
    opts: SocketOptions,
    epoch: u64,
    tx: mpsc::UnboundedSender<Input>,
) -> io::Result<SideSocket> {
    let (std_sock, local) = socket::connected_udp(peer, opts)?;
    let sock = Arc::new(UdpSocket::from_std(std_sock)?);
    let reader = tokio::spawn(read_loop(sock.clone(), side, epoch, tx));
    Ok(SideSocket { sock, peer: socket::canonical(peer), local, epoch, reader })
}

/// Reads one server's socket until the socket is replaced: datagrams and refusals go to the loop.
async fn read_loop(sock: Arc<UdpSocket>, side: Side, epoch: u64, tx: mpsc::UnboundedSender<Input>) {
    let mut buf = vec![0u8; 65_536];
    let mut errors: u32 = 0;
    loop {
        let input = match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                errors = 0;
                Input::Datagram { side, epoch, at: TInstant::now(), from, bytes: buf[..n].to_vec() }
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                Input::Refused { side, epoch, at: TInstant::now() }
            }
            Err(e) => {
                errors = errors.saturating_add(1);
                tracing::warn!("receive from {side} server: {e}");
                tokio::time::sleep(StdDuration::from_millis(10u64.saturating_mul(u64::from(errors)).min(1000))).await;
                continue;
            }
        };
        if tx.send(input).is_err() {
            return;
        }
    }
}
