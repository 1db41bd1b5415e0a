//! The tokio driver: one [`Agent`] and the loop that feeds it, over adapters with one job each.
//!
//! The loop holds no failover logic and knows no transport, feed or sink. It drains
//! [`Agent::poll_flow`] into the [stream flows](super::streams), [`Agent::poll_transmit`] into the
//! [flows](super::flows) and [`Agent::poll_event`] into the
//! [sinks](super::adapter::Sink) and the [adapters](super::adapter::Adapter) (the switch hook, name
//! resolution), saves the [state file](super::state) when the snapshot changed, then waits for
//! whichever comes first: the agent's [`poll_timeout`](Agent::poll_timeout) or an adapter's own
//! wake-up (TTLs, the maintenance planner), a result from an adapter's task (a datagram, a refusal,
//! a hook's exit, a lookup, a loaded configuration), a control request or a signal; feeds it in,
//! and repeats.
//!
//! Time: `tokio::time::Instant` at start is the core's [`Instant::ZERO`]; the core sees microseconds
//! since then.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TInstant;

use super::adapter::{Action, Adapter, ConfigLoaded, Ctx, Input, Sink};
use super::control::{self, ControlMsg, Request};
use super::events::{event_fields, EventLog};
use super::flows::Flows;
use super::hook::{HookOptions, Switcher};
use super::maintenance::{Maintenance, Planner};
use super::metrics::{self, Metrics, MetricsSink};
use super::names::{resolver_for, Names};
use super::socket::SocketOptions;
use super::state::{StateFile, StateSaver};
use super::streams::{self, Streams};
use super::syslog::SyslogSink;
use crate::config::{Endpoint, PhoneConfig};
use crate::core::{Agent, Command, ConfigError, Event, Instant, Side};

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
    /// Another resolv.conf.
    pub resolv_conf: Option<PathBuf>,
    /// Another hosts file.
    pub hosts: Option<PathBuf>,
    /// The control socket.
    pub control: Option<PathBuf>,
    /// The state directory.
    pub state_dir: Option<PathBuf>,
    /// The syslog collector.
    pub syslog: Option<crate::config::telemetry::SyslogTarget>,
    /// The syslog facility.
    pub syslog_facility: Option<u8>,
    /// The CA file a TLS syslog collector must chain to.
    pub syslog_ca_file: Option<PathBuf>,
    /// The syslog queue's bound.
    pub syslog_queue: Option<usize>,
    /// Where Prometheus scrapes `/metrics`.
    pub metrics: Option<SocketAddr>,
    /// The status page to poll.
    pub statuspage: Option<crate::maintenance::statuspage::PageUrl>,
    /// How often to poll it.
    pub statuspage_poll: Option<StdDuration>,
    /// The maintenance calendar (a file or a URL).
    pub calendar: Option<crate::config::CalendarSource>,
    /// How often to poll a calendar URL.
    pub calendar_poll: Option<StdDuration>,
    /// The CA file servers over TLS must chain to.
    pub tls_ca_file: Option<PathBuf>,
    /// The client certificate and its key, for mutual TLS.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Accept wildcard certificates.
    pub tls_allow_wildcard: Option<bool>,
    /// The keep-alive interval of idle stream flows.
    pub flow_keepalive: Option<crate::core::Duration>,
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
        if let Some(p) = &self.resolv_conf {
            cfg.network.resolv_conf = Some(p.clone());
        }
        if let Some(p) = &self.hosts {
            cfg.network.hosts_file = Some(p.clone());
        }
        if let Some(c) = &self.control {
            cfg.network.control_socket = Some(c.clone());
        }
        if let Some(s) = &self.state_dir {
            cfg.network.state_dir = Some(s.clone());
        }
        if let Some(m) = self.metrics {
            cfg.network.metrics = Some(m);
        }
        if let Some(url) = &self.statuspage {
            let keep = cfg.maintenance.statuspage.take();
            cfg.maintenance.statuspage = Some(crate::config::StatusPage {
                url: url.clone(),
                poll: keep.as_ref().map_or(crate::config::StatusPage::DEFAULT_POLL, |k| k.poll),
                ca_file: keep.and_then(|k| k.ca_file),
            });
        }
        if let (Some(p), Some(page)) = (self.statuspage_poll, cfg.maintenance.statuspage.as_mut()) {
            page.poll = p;
        }
        if let Some(source) = &self.calendar {
            let keep = cfg.maintenance.calendar.take();
            cfg.maintenance.calendar = Some(crate::config::CalendarFeed {
                source: source.clone(),
                poll: keep.as_ref().map_or(crate::config::CalendarFeed::DEFAULT_POLL, |k| k.poll),
                ca_file: keep.and_then(|k| k.ca_file),
            });
        }
        if let (Some(p), Some(c)) = (self.calendar_poll, cfg.maintenance.calendar.as_mut()) {
            c.poll = p;
        }
        if let Some(c) = &self.tls_ca_file {
            cfg.network.tls.ca_file = Some(c.clone());
        }
        if let Some((c, k)) = &self.tls_client {
            (cfg.network.tls.client_cert, cfg.network.tls.client_key) = (Some(c.clone()), Some(k.clone()));
        }
        if let Some(w) = self.tls_allow_wildcard {
            cfg.network.tls.allow_wildcard = w;
        }
        if let Some(k) = self.flow_keepalive {
            cfg.flow_keepalive = k;
        }
        if let Some(t) = &self.syslog {
            cfg.network.syslog = Some(crate::config::telemetry::SyslogConfig::new(t.clone()));
        }
        if let Some(s) = cfg.network.syslog.as_mut() {
            if let Some(f) = self.syslog_facility {
                s.facility = f;
            }
            if let Some(c) = &self.syslog_ca_file {
                s.ca_file = Some(c.clone());
            }
            if let Some(q) = self.syslog_queue {
                s.queue = q;
            }
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
    /// The resolver's configuration (resolv.conf, hosts file) cannot be used.
    Resolver(super::dns::DnsError),
    /// A socket could not be made.
    Socket(Side, SocketAddr, io::Error),
    /// The control socket could not be bound.
    Control(PathBuf, io::Error),
    /// Signal handlers could not be installed.
    Signals(io::Error),
    /// The syslog sink cannot start.
    Syslog(super::syslog::SyslogError),
    /// The metrics address cannot be listened on.
    Metrics(SocketAddr, io::Error),
    /// The TLS settings of servers reached over TLS cannot be used.
    Tls(super::tls::TlsSetupError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(e) => write!(f, "configuration: {e}"),
            RunError::NoResolver => f.write_str("a server name needs DNS but no resolver is configured or found"),
            RunError::Resolver(e) => write!(f, "resolver: {e}"),
            RunError::Socket(s, a, e) => write!(f, "{s} socket to {a}: {e}"),
            RunError::Control(p, e) => write!(f, "control socket {}: {e}", p.display()),
            RunError::Signals(e) => write!(f, "signal handlers: {e}"),
            RunError::Syslog(e) => write!(f, "{e}"),
            RunError::Metrics(a, e) => write!(f, "metrics address {a}: {e}"),
            RunError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunError {}

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
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(log)];
    if let Some(s) = &cfg.network.syslog {
        // Without a CA file of its own, the collector is trusted as the SIP servers are.
        let mut s = s.clone();
        s.ca_file = s.ca_file.or_else(|| cfg.network.tls.ca_file.clone());
        sinks.push(Box::new(SyslogSink::start(&s, start).map_err(RunError::Syslog)?));
    }
    if let Some(addr) = cfg.network.metrics {
        let m = Metrics::new();
        metrics::serve(addr, m.clone()).await.map_err(|e| RunError::Metrics(addr, e))?;
        sinks.push(Box::new(MetricsSink(m)));
    }
    let tls = streams::tls_for(&cfg).map_err(RunError::Tls)?;
    let resolver = resolver_for(&cfg).map_err(RunError::Resolver)?;
    if resolver.is_none() && Side::BOTH.iter().any(|s| super::names::needs_dns(&cfg, *s)) {
        return Err(RunError::NoResolver);
    }
    // Both names looked up once; a server whose name does not resolve yet is given a placeholder
    // address that nothing is sent to, so the other server is probed from the start.
    let names = Names::start(&cfg, resolver, &mut sinks, start).await;
    let primary_hop = names.addr(Side::Primary).unwrap_or_else(|| names.placeholder(&cfg, Side::Primary));
    let backup_hop =
        names.addr(Side::Backup).or_else(|| cfg.backup.as_ref().map(|_| names.placeholder(&cfg, Side::Backup)));
    let core_cfg = with_alternates(cfg.core_config(primary_hop, backup_hop), &names);

    let state = cfg.network.state_dir.as_ref().map(StateFile::new);
    let snapshot = match state.as_ref().map(StateFile::load) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            tracing::error!("state file unusable, starting afresh: {e}");
            None
        }
        None => None,
    };
    let now = super::adapter::to_core(start, TInstant::now());
    let agent = match (snapshot, opts.seed) {
        (Some(s), Some(seed)) => Agent::resume(core_cfg, now, seed, s),
        (Some(s), None) => Agent::resume_with_key(core_cfg, now, super::entropy::key(), s),
        (None, Some(seed)) => Agent::new(core_cfg, now, seed),
        (None, None) => Agent::with_key(core_cfg, now, super::entropy::key()),
    }
    .map_err(RunError::Config)?;

    let (tx, rx) = mpsc::unbounded_channel();
    let (ctl_tx, ctl_rx) = mpsc::channel::<ControlMsg>(16);
    let mut d = Driver {
        maintenance: Maintenance::new(&cfg, now),
        flows: Flows::new(socket_options(&cfg)),
        streams: Streams::new(socket_options(&cfg), tls),
        ctx: Ctx::new(agent, start, tx, sinks),
        cfg,
        overrides: opts.overrides,
        names,
        switcher: Switcher::new(opts.hook),
        state: StateSaver::new(state, snapshot),
    };
    let unresolved = d.names.unresolved(&d.cfg);
    d.flows.set_unresolved(unresolved);
    d.streams.set_unresolved(unresolved);
    d.flows.sync(&mut d.ctx, true).map_err(|(side, hop, e)| RunError::Socket(side, hop, e))?;

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

    let fields = d.started_fields(snapshot.is_some());
    d.ctx.report("started", fields);
    d.main_loop(rx, ctl_rx, &mut sigterm, &mut sigint).await;

    d.state.save(d.ctx.agent.snapshot());
    let fields = json!({"active": d.ctx.agent.active().as_str(), "generation": d.ctx.agent.generation()});
    d.ctx.report("stopped", fields);
    if let Some(task) = control_task {
        task.abort();
    }
    if let Some(p) = control_path {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// The server a probe went to.
fn ev_server(ev: &Event) -> Option<Side> {
    match ev {
        Event::ProbeSent { server, .. } => Some(*server),
        _ => None,
    }
}

/// `c` with each named server's further addresses (its next SRV targets) from the lookups.
fn with_alternates(mut c: crate::core::Config, names: &Names) -> crate::core::Config {
    c.primary.alternates = names.alternates(Side::Primary);
    if let Some(b) = c.backup.as_mut() {
        b.alternates = names.alternates(Side::Backup);
    }
    c
}

fn socket_options(cfg: &PhoneConfig) -> SocketOptions {
    SocketOptions { bind: cfg.network.bind, dscp: cfg.network.dscp }
}

struct Driver {
    ctx: Ctx,
    cfg: PhoneConfig,
    overrides: Overrides,
    flows: Flows,
    streams: Streams,
    names: Names,
    switcher: Switcher,
    maintenance: Maintenance,
    state: StateSaver,
}

impl Driver {
    /// The adapters that wake by themselves or act on core events.
    fn adapters(&mut self) -> [&mut dyn Adapter; 3] {
        [&mut self.maintenance, &mut self.names, &mut self.switcher]
    }

    // ---- the loop ----

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
            let agent_wake = self.ctx.agent.poll_timeout().map(|t| self.ctx.to_tokio(t));
            let wake = self.adapters().iter().filter_map(|a| a.wake_at()).chain(agent_wake).min().unwrap_or(far);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => self.on_timers().await,
                Some(input) = rx.recv() => self.on_input(input).await,
                Some(msg) = ctl_rx.recv() => self.on_control(msg).await,
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
    }

    /// Drains the agent's transmits into the flows and its events into the sinks and adapters until
    /// it has nothing more to say, then saves the state file if the snapshot changed.
    async fn flush(&mut self) {
        for _ in 0..32 {
            let mut progressed = self.streams.command(&mut self.ctx, &self.cfg);
            progressed |= self.flows.transmit(&mut self.ctx, &mut self.streams).await;
            while let Some(ev) = self.ctx.agent.poll_event() {
                progressed = true;
                let mut fields = event_fields(&ev);
                if let Some(d) = ev_server(&ev).and_then(|s| self.flows.last_destination(s)) {
                    fields.insert("destination".into(), json!(d.to_string()));
                }
                self.ctx.report_core(&ev, &fields);
                let Driver { ctx, cfg, names, switcher, .. } = self;
                for a in [names as &mut dyn Adapter, switcher] {
                    a.on_event(ctx, cfg, &ev);
                }
            }
            if !progressed {
                break;
            }
        }
        self.state.save(self.ctx.agent.snapshot());
    }

    async fn on_timers(&mut self) {
        let now = TInstant::now();
        if self.ctx.agent.poll_timeout().is_some_and(|t| self.ctx.to_tokio(t) <= now) {
            let t = self.ctx.now();
            self.ctx.agent.handle_timeout(t);
        }
        let mut actions = Vec::new();
        let Driver { ctx, cfg, maintenance, names, .. } = self;
        for a in [maintenance as &mut dyn Adapter, names] {
            if a.wake_at().is_some_and(|w| w <= now) {
                actions.extend(a.on_wake(ctx, cfg));
            }
        }
        for a in actions {
            self.act(a, None).await;
        }
    }

    async fn on_input(&mut self, input: Input) {
        let action = match input {
            Input::Flow(i) => {
                self.flows.on_input(&mut self.ctx, i);
                None
            }
            Input::Stream(i) => {
                self.streams.on_input(&mut self.ctx, i);
                None
            }
            Input::Hook(done) => {
                self.switcher.on_input(&mut self.ctx, done);
                None
            }
            Input::Lookup(l) => self.names.on_input(&mut self.ctx, &self.cfg, l),
            Input::Page(p) => self.maintenance.on_page(&mut self.ctx, &self.cfg, p),
            Input::Calendar(c) => self.maintenance.on_calendar(&mut self.ctx, &self.cfg, c),
            Input::Config(ConfigLoaded { result, reply }) => {
                let answer = match result {
                    Err(e) => json!({"ok": false, "error": e}),
                    Ok((cfg, hops)) => match self.apply_config(*cfg, hops).await {
                        Ok(()) => json!({"ok": true, "status": self.status()}),
                        Err(e) => json!({"ok": false, "error": e}),
                    },
                };
                let _ = reply.send(answer);
                None
            }
        };
        if let Some(a) = action {
            self.act(a, None).await;
        }
    }

    /// Carries out what an adapter asked for.
    async fn act(&mut self, action: Action, reply: Option<oneshot::Sender<Value>>) {
        match action {
            Action::Reconfigure => {
                if let Err(e) = self.reconfigure() {
                    tracing::error!("new next hop not applied: {e}");
                }
            }
            Action::LoadConfig(path) => self.load_config(path, reply.unwrap_or_else(|| oneshot::channel().0)),
        }
    }

    // ---- configuration ----

    /// Hands the agent the configuration with the current next hops, and follows with the flows.
    fn reconfigure(&mut self) -> Result<(), String> {
        let [p, b] = self.names.hops();
        let p = p.unwrap_or_else(|| self.names.placeholder(&self.cfg, Side::Primary));
        let b = match self.cfg.backup {
            Some(_) => b.or_else(|| Some(self.names.placeholder(&self.cfg, Side::Backup))),
            None => None,
        };
        let unresolved = self.names.unresolved(&self.cfg);
        self.flows.set_unresolved(unresolved);
        self.streams.set_unresolved(unresolved);
        let now = self.ctx.now();
        let core_cfg = with_alternates(self.cfg.core_config(p, b), &self.names);
        self.ctx.agent.update_config(now, core_cfg).map_err(|e| e.to_string())?;
        self.flows.sync(&mut self.ctx, false).map_err(|(s, a, e)| format!("{s} socket to {a}: {e}"))
    }

    async fn apply_config(&mut self, cfg: PhoneConfig, hops: [Option<SocketAddr>; 2]) -> Result<(), String> {
        let Some(p) = hops[0] else { return Err("no address for the primary".into()) };
        let core_cfg = cfg.core_config(p, if cfg.backup.is_some() { hops[1] } else { None });
        core_cfg.validate().map_err(|e| e.to_string())?;
        let tls = streams::tls_for(&cfg).map_err(|e| e.to_string())?;
        if cfg.network.control_socket != self.cfg.network.control_socket
            || cfg.network.state_dir != self.cfg.network.state_dir
        {
            tracing::warn!("a new control socket or state directory takes effect at the next start");
        }
        let now = self.ctx.now();
        self.ctx.agent.update_config(now, core_cfg).map_err(|e| e.to_string())?;
        let keep_net = (self.cfg.network.control_socket.clone(), self.cfg.network.state_dir.clone());
        self.cfg = cfg;
        (self.cfg.network.control_socket, self.cfg.network.state_dir) = keep_net;
        self.names.replace(&self.cfg, hops);
        let unresolved = self.names.unresolved(&self.cfg);
        self.flows.set_unresolved(unresolved);
        self.streams.set_unresolved(unresolved);
        self.streams.set(socket_options(&self.cfg), tls);
        let remake = self.flows.set_options(socket_options(&self.cfg));
        self.flows.sync(&mut self.ctx, remake).map_err(|(s, a, e)| format!("{s} socket to {a}: {e}"))?;
        self.ctx.report("config_applied", json!({"path": self.cfg.path.to_string_lossy()}));
        if let Some(a) = self.maintenance.restart(&mut self.ctx, &self.cfg) {
            Box::pin(self.act(a, None)).await;
        }
        Ok(())
    }

    /// Loads, validates and resolves a configuration file in the background; the loop applies it.
    fn load_config(&mut self, path: PathBuf, reply: oneshot::Sender<Value>) {
        let overrides = self.overrides.clone();
        let tx = self.ctx.tx.clone();
        let loaded = PhoneConfig::load(&path).map_err(|e| e.to_string()).map(|mut cfg| {
            overrides.apply(&mut cfg);
            let hops = self.names.resolve_all(&cfg);
            (cfg, hops)
        });
        tokio::spawn(async move {
            let result = match loaded {
                Err(e) => Err(e),
                Ok((cfg, hops)) => hops.await.map(|h| (Box::new(cfg), h)),
            };
            let _ = tx.send(Input::Config(ConfigLoaded { result, reply }));
        });
    }

    // ---- control ----

    async fn on_control(&mut self, msg: ControlMsg) {
        let cmd = match &msg.request {
            Request::Status => None,
            Request::Force(s) => Some(Command::Force(*s)),
            Request::Release => Some(Command::Release),
            Request::Failback => Some(Command::Failback),
            Request::Pause => Some(Command::Pause),
            Request::Resume => Some(Command::Resume),
            Request::Call(c) => Some(Command::InCall(*c)),
            Request::TransactionFailed => Some(Command::TransactionFailed),
            Request::Maintenance(side, retry_after_s) => {
                Some(Command::Maintenance { side: *side, retry_after_s: *retry_after_s })
            }
            Request::ApplyConfig(path) => {
                self.act(Action::LoadConfig(path.clone()), Some(msg.reply)).await;
                return;
            }
        };
        self.ctx.report("control", json!({"request": msg.request.to_json()}));
        let now = self.ctx.now();
        let answer = match cmd.map(|c| self.ctx.agent.handle_command(now, c)) {
            Some(Err(e)) => json!({"ok": false, "error": e.to_string()}),
            _ => {
                // Let the command's consequences (a switch, its application) show in the answer.
                self.flush().await;
                json!({"ok": true, "status": self.status()})
            }
        };
        let _ = msg.reply.send(answer);
    }

    fn server_json(&self, side: Side) -> Value {
        let Some(sc) = self.cfg.side(side) else { return Value::Null };
        json!({
            "server": sc.server.to_string(),
            "transport": sc.next_hop().transport.as_str(),
            "next_hop": self.names.addr(side).map(|a| a.to_string()),
            "local": self.flows.local(side).or_else(|| self.streams.local(side)).map(|a| a.to_string()),
            "up": self.ctx.agent.is_up(side),
        })
    }

    fn status(&self) -> Value {
        let a = &self.ctx.agent;
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
            "uptime_ms": self.ctx.now().as_millis(),
            "next_cycle_ms": a.next_cycle().map(|c| c.as_millis()),
            "interval_ms": a.config().interval.as_millis(),
            "stats": {
                "probes_sent": stats.probes_sent,
                "replies": stats.replies,
                "cycles": stats.cycles,
                "ignored": stats.ignored.iter().sum::<u32>(),
                "events_dropped": stats.events_dropped,
                "state_events_dropped": stats.state_events_dropped,
            },
            "config": self.cfg.path.to_string_lossy(),
            "state_file": self.state.path().map(|p| p.to_string_lossy().into_owned()),
        })
    }

    fn started_fields(&self, resumed: bool) -> Value {
        let a = &self.ctx.agent;
        json!({
            "pid": std::process::id(),
            "active": a.active().as_str(),
            "generation": a.generation(),
            "resumed": resumed,
            "forced": a.forced().map(Side::as_str),
            "primary": self.server_json(Side::Primary),
            "backup": self.server_json(Side::Backup),
            "interval_ms": a.config().interval.as_millis(),
            "control": self.cfg.network.control_socket.as_ref().map(|p| p.to_string_lossy().into_owned()),
        })
    }
}
