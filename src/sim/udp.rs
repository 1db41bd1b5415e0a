//! The pair over real loopback, driven by the [`PairModel`]: one socket per server, replies sent
//! when the model says, scripted steps applied on time. "Refused" closes the server's socket, so the
//! kernel answers ICMP port-unreachable (or refuses TCP connects); "answer" binds it again on the same
//! address. A TCP or TLS server is a listener served by [`streams`](super::streams).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant as TInstant;

use super::mmsg::{RecvBatch, SendBatch};
use super::model::{Action, FaultChange, Mode, PairModel, Reply};
use super::scenario::Scenario;
use super::streams::{bind_tcp, LabPki, StreamReq, StreamServers};
use super::PairStats;
use crate::core::{Duration, Instant, Side, Transport};

/// Something the pair reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairNote {
    /// A server changed health.
    Fault(FaultChange),
    /// A request arrived (only when asked for).
    Request {
        /// When.
        at: Instant,
        /// At which server.
        server: Side,
        /// From where.
        from: SocketAddr,
        /// Whether it was answered at once, later, or not at all.
        outcome: &'static str,
    },
    /// A socket could not be bound again after a restart.
    RebindFailed {
        /// Which server.
        server: Side,
        /// The error.
        error: String,
    },
}

/// `println!` that ignores a closed stdout.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// The run's clock: microseconds since `origin`.
pub fn since(origin: TInstant) -> Instant {
    Instant::from_micros(u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX))
}

/// `t` on tokio's clock.
pub fn at(origin: TInstant, t: Instant) -> TInstant {
    origin + StdDuration::from_micros(t.as_micros())
}

/// Sleeps until `t` to within tens of microseconds: tokio's timer (1 ms granularity, rounding up)
/// until 1.5 ms before, then the thread's own sleep. The last stretch blocks the thread, so use it
/// on a thread that runs nothing else time-critical (the pair runs on its own thread).
pub async fn sleep_until_precise(t: TInstant) {
    if let Some(coarse) = t.checked_sub(StdDuration::from_micros(1500)) {
        if coarse > TInstant::now() {
            tokio::time::sleep_until(coarse).await;
        }
    }
    let now = TInstant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Runs `pair` on a thread of its own with its own runtime, until `stop`.
pub fn spawn_pair_thread(
    pair: UdpPair,
    origin: TInstant,
    notes: Option<mpsc::UnboundedSender<PairNote>>,
    stop: watch::Receiver<bool>,
) -> io::Result<std::thread::JoinHandle<io::Result<PairStats>>> {
    // Move the sockets out as std sockets: a tokio socket is tied to the runtime it was made on.
    let socks = pair.socks.map(|s| s.map(|s| s.into_std()).transpose());
    let [p, b] = socks;
    let (p, b) = (p?, b?);
    let UdpPair { addrs, model, transports, tcp, pki, .. } = pair;
    std::thread::Builder::new().name("pbx-pair".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async move {
            let socks = [p.map(UdpSocket::from_std).transpose()?, b.map(UdpSocket::from_std).transpose()?];
            Ok(UdpPair { socks, addrs, model, transports, tcp, pki }.run(origin, notes, false, stop).await)
        })
    })
}

/// The pair served from another loop on that loop's thread (the fleet's): the loop calls
/// [`InlinePair::pass`] after it sends, waits on [`InlinePair::readable`] beside its own sockets and
/// wakes by [`InlinePair::wake_at`]. The pair answers over its own sockets as on a thread of its own,
/// but with no wake-up and no thread switch of its own per request. UDP servers only.
#[derive(Debug)]
pub struct InlinePair {
    pair: UdpPair,
    sv: Serving,
    notes: Option<mpsc::UnboundedSender<PairNote>>,
    origin: TInstant,
}

impl InlinePair {
    /// Serves `pair` from now on, on the run's clock `origin`; fault changes go to `notes`. The pair
    /// and the notes back when a server is reached over TCP or TLS (those are served on a thread of
    /// their own).
    #[allow(clippy::type_complexity)]
    pub fn new(
        pair: UdpPair,
        origin: TInstant,
        notes: Option<mpsc::UnboundedSender<PairNote>>,
    ) -> Result<Self, Box<(UdpPair, Option<mpsc::UnboundedSender<PairNote>>)>> {
        if pair.transports.iter().any(|t| t.is_stream()) {
            return Err(Box::new((pair, notes)));
        }
        Ok(InlinePair { pair, sv: Serving::new(false), notes, origin })
    }

    /// Applies the steps due, sends the delayed replies due and answers every request waiting.
    pub fn pass(&mut self) {
        let busy_from = std::time::Instant::now();
        let InlinePair { pair, sv, notes, origin } = self;
        pair.tick(sv, since(*origin), &mut None, notes);
        for side in Side::BOTH {
            pair.serve(sv, side, *origin, &mut None, notes);
        }
        sv.stats.busy += busy_from.elapsed();
    }

    /// When the pair next has something to do by itself (a scripted step, a delayed reply).
    pub fn wake_at(&self) -> Option<Instant> {
        self.pair.wake_at(&self.sv)
    }

    /// Ready when a request waits on either server's socket.
    pub async fn readable(&self) {
        tokio::select! {
            _ = readable_opt(&self.pair.socks[0]) => {}
            _ = readable_opt(&self.pair.socks[1]) => {}
        }
    }

    /// What the pair saw.
    pub fn finish(self) -> PairStats {
        self.pair.finish(self.sv)
    }
}

/// Reads a batch of datagrams waiting on `sock` straight from the kernel (whatever tokio's readiness
/// cache says, which only its reactor updates); when that drains the socket, tokio hears so, so its
/// readiness waits park again.
pub fn recv_batch(inbox: &mut RecvBatch, sock: &UdpSocket) -> io::Result<usize> {
    let got = inbox.recv(sock);
    let drained = match &got {
        Ok(n) => *n < super::mmsg::BATCH,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    };
    if drained {
        let _ = sock.try_io(tokio::io::Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
    }
    got
}

/// A UDP socket with 4 MiB buffers (fleets burst), bound to `addr`.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel caps them at its limits.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// A reply waiting for its time: (when, order, server index, destination, bytes).
type Pending = Reverse<(Instant, u64, usize, SocketAddr, Vec<u8>)>;

/// The pair on two sockets: UDP, or a TCP listener for a TCP or TLS server.
#[derive(Debug)]
pub struct UdpPair {
    socks: [Option<UdpSocket>; 2],
    addrs: [SocketAddr; 2],
    model: PairModel,
    transports: [Transport; 2],
    tcp: [Option<std::net::TcpListener>; 2],
    pki: Option<Arc<LabPki>>,
}

async fn next_req(rx: &mut Option<mpsc::UnboundedReceiver<StreamReq>>) -> Option<StreamReq> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn readable_opt(sock: &Option<UdpSocket>) -> io::Result<()> {
    match sock {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

/// What the pair carries from one pass of its loop to the next.
#[derive(Debug)]
struct Serving {
    /// Replies waiting for their time.
    pending: BinaryHeap<Pending>,
    /// Orders replies due at the same time.
    seq: u64,
    inbox: RecvBatch,
    out: [SendBatch; 2],
    stats: PairStats,
    /// Whether every request is reported.
    requests: bool,
}

impl Serving {
    fn new(requests: bool) -> Self {
        Serving {
            pending: BinaryHeap::new(),
            seq: 0,
            inbox: RecvBatch::default(),
            out: [SendBatch::default(), SendBatch::default()],
            stats: PairStats::default(),
            requests,
        }
    }
}

/// Batches of receives a readable socket gets before the loop looks at its timers again.
const RECV_ROUNDS: usize = 16;

impl UdpPair {
    /// Binds the primary and the backup (port 0 picks a free port) with the fault script `steps`.
    pub fn bind(
        primary: SocketAddr,
        backup: SocketAddr,
        steps: &[(Duration, Side, Action)],
        seed: u64,
    ) -> io::Result<Self> {
        UdpPair::bind_over(primary, backup, [Transport::Udp; 2], steps, seed, None)
    }

    /// Binds the primary and the backup over `transports`; a TLS server presents `pki`'s
    /// certificates (made here when none is given).
    pub fn bind_over(
        primary: SocketAddr,
        backup: SocketAddr,
        transports: [Transport; 2],
        steps: &[(Duration, Side, Action)],
        seed: u64,
        pki: Option<Arc<LabPki>>,
    ) -> io::Result<Self> {
        let mut socks = [None, None];
        let mut tcp = [None, None];
        let mut addrs = [primary, backup];
        for (i, addr) in [primary, backup].into_iter().enumerate() {
            if transports[i].is_stream() {
                let l = bind_tcp(addr)?;
                addrs[i] = l.local_addr()?;
                tcp[i] = Some(l);
            } else {
                let s = bind_udp(addr)?;
                addrs[i] = s.local_addr()?;
                socks[i] = Some(s);
            }
        }
        let pki = match pki {
            Some(p) => Some(p),
            None if transports.contains(&Transport::Tls) => {
                Some(Arc::new(LabPki::new().map_err(|e| io::Error::other(e.to_string()))?))
            }
            None => None,
        };
        Ok(UdpPair { socks, addrs, model: PairModel::new(steps, seed), transports, tcp, pki })
    }

    /// The certificates its TLS servers present, if any.
    pub fn pki(&self) -> Option<&Arc<LabPki>> {
        self.pki.as_ref()
    }

    /// Each server's transport.
    pub fn transports(&self) -> [Transport; 2] {
        self.transports
    }

    /// The bound addresses: primary, backup.
    pub fn local_addrs(&self) -> [SocketAddr; 2] {
        self.addrs
    }

    /// Opens or closes each socket as the model's mode says.
    fn sync_sockets(&mut self, notes: &Option<mpsc::UnboundedSender<PairNote>>) {
        for side in Side::BOTH {
            let i = side.index();
            if self.transports[i].is_stream() {
                continue;
            }
            let refused = self.model.server(side).mode() == Mode::Refused;
            if refused && self.socks[i].is_some() {
                self.socks[i] = None;
            } else if !refused && self.socks[i].is_none() {
                match bind_udp(self.addrs[i]) {
                    Ok(s) => self.socks[i] = Some(s),
                    Err(e) => {
                        if let Some(n) = notes {
                            let _ = n.send(PairNote::RebindFailed { server: side, error: e.to_string() });
                        }
                    }
                }
            }
        }
    }

    /// Serves until `stop` turns true (or its sender goes away); `notes` gets fault changes (and
    /// every request when `requests` is set). Returns what the pair saw.
    pub async fn run(
        mut self,
        origin: TInstant,
        notes: Option<mpsc::UnboundedSender<PairNote>>,
        requests: bool,
        mut stop: watch::Receiver<bool>,
    ) -> PairStats {
        let mut sv = Serving::new(requests);
        let listeners = std::mem::take(&mut self.tcp);
        let (mut streams, mut hub) = if self.transports.iter().any(|t| t.is_stream()) {
            match StreamServers::start(listeners, self.transports, self.addrs, self.pki.clone(), origin) {
                Ok((s, rx)) => (Some(s), Some(rx)),
                Err(e) => {
                    for side in Side::BOTH.into_iter().filter(|s| self.transports[s.index()].is_stream()) {
                        if let Some(n) = &notes {
                            let _ = n.send(PairNote::RebindFailed { server: side, error: e.to_string() });
                        }
                    }
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        loop {
            let now = since(origin);
            let busy_from = std::time::Instant::now();
            self.tick(&mut sv, now, &mut streams, &notes);
            sv.stats.busy += busy_from.elapsed();
            let wake = self.wake_at(&sv);
            let sleep_to = at(origin, wake.unwrap_or(now + Duration::from_secs(3600)));
            let got = tokio::select! {
                biased;
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        break;
                    }
                    None
                }
                r = readable_opt(&self.socks[0]) => r.ok().map(|_| Side::Primary),
                r = readable_opt(&self.socks[1]) => r.ok().map(|_| Side::Backup),
                Some(req) = next_req(&mut hub) => {
                    let busy_from = std::time::Instant::now();
                    let now = since(origin);
                    self.advance(now, &mut streams, &notes);
                    StreamServers::handle(&mut self.model, &mut sv.stats, now, req);
                    sv.stats.busy += busy_from.elapsed();
                    None
                }
                _ = tokio::time::sleep_until(sleep_to) => None,
            };
            let Some(side) = got else { continue };
            let busy_from = std::time::Instant::now();
            self.serve(&mut sv, side, origin, &mut streams, &notes);
            sv.stats.busy += busy_from.elapsed();
        }
        if let Some(s) = streams.as_mut() {
            s.stop();
        }
        self.finish(sv)
    }

    /// What the pair saw, its servers' counters included.
    fn finish(&self, mut sv: Serving) -> PairStats {
        sv.stats.servers = [self.model.server(Side::Primary).stats(), self.model.server(Side::Backup).stats()];
        sv.stats
    }

    /// Applies the steps due by `now` and sends the delayed replies whose time has come.
    fn tick(
        &mut self,
        sv: &mut Serving,
        now: Instant,
        streams: &mut Option<StreamServers>,
        notes: &Option<mpsc::UnboundedSender<PairNote>>,
    ) {
        self.advance(now, streams, notes);
        while sv.pending.peek().is_some_and(|Reverse(p)| p.0 <= now) {
            if let Some(Reverse((_, _, i, to, bytes))) = sv.pending.pop() {
                sv.out[i].push(&bytes, Some(to));
            }
        }
        self.flush(&mut sv.out);
    }

    /// When the pair next has something to do by itself: a scripted step or a delayed reply.
    fn wake_at(&self, sv: &Serving) -> Option<Instant> {
        [self.model.next_step_at(), sv.pending.peek().map(|Reverse(p)| p.0)].into_iter().flatten().min()
    }

    /// Reads and answers the requests waiting on `side`'s socket, many per system call, for a few
    /// rounds at most (then the timers again).
    fn serve(
        &mut self,
        sv: &mut Serving,
        side: Side,
        origin: TInstant,
        streams: &mut Option<StreamServers>,
        notes: &Option<mpsc::UnboundedSender<PairNote>>,
    ) {
        for _ in 0..RECV_ROUNDS {
            let Some(sock) = &self.socks[side.index()] else { break };
            let Ok(n) = recv_batch(&mut sv.inbox, sock) else { break };
            let now = since(origin);
            // Steps due by now apply before the requests are answered.
            self.advance(now, streams, notes);
            for (bytes, from) in sv.inbox.iter() {
                let Some(from) = from else { continue };
                sv.stats.count(now, side);
                let outcome = match self.model.on_request(side, now, bytes) {
                    Reply::Send { at, bytes } if at <= now => {
                        sv.out[side.index()].push(&bytes, Some(from));
                        "answered"
                    }
                    Reply::Send { at, bytes } => {
                        sv.seq += 1;
                        sv.pending.push(Reverse((at, sv.seq, side.index(), from, bytes)));
                        "delayed"
                    }
                    _ => "unanswered",
                };
                if sv.requests {
                    if let Some(nt) = notes {
                        let _ = nt.send(PairNote::Request { at: now, server: side, from, outcome });
                    }
                }
            }
            self.flush(&mut sv.out);
            if n < super::mmsg::BATCH {
                break;
            }
        }
    }

    /// Sends each server's queued replies (many per system call); a server whose socket is closed
    /// drops them.
    fn flush(&self, out: &mut [SendBatch; 2]) {
        for (i, o) in out.iter_mut().enumerate() {
            match &self.socks[i] {
                Some(s) if !o.is_empty() => {
                    o.flush(s);
                }
                _ => o.clear(),
            }
        }
    }

    /// Applies the steps due by `now`: sockets, listeners and open connections follow; the changes
    /// go to `notes`.
    fn advance(
        &mut self,
        now: Instant,
        streams: &mut Option<StreamServers>,
        notes: &Option<mpsc::UnboundedSender<PairNote>>,
    ) {
        let changes = self.model.advance(now);
        if !changes.is_empty() {
            self.sync_sockets(notes);
            for f in changes {
                self.sync_streams(streams, f.server, notes);
                if let Some(nt) = notes {
                    let _ = nt.send(PairNote::Fault(f));
                }
            }
        }
    }

    fn sync_streams(
        &mut self,
        streams: &mut Option<StreamServers>,
        side: Side,
        notes: &Option<mpsc::UnboundedSender<PairNote>>,
    ) {
        if let Some(note) = streams.as_mut().and_then(|s| s.on_change(&self.model, side)) {
            if let Some(n) = notes {
                let _ = n.send(note);
            }
        }
    }
}

/// `pbx-sim`: serves on `primary` and `backup` (over the scenario's transports) until Ctrl-C,
/// printing faults (and requests when `verbose`) and a count every 10 s. With a TLS server, the lab
/// CA's certificate is written to `ca_file`.
pub fn serve_until_ctrl_c(
    primary: SocketAddr,
    backup: SocketAddr,
    scenario: Option<&Scenario>,
    seed: u64,
    verbose: bool,
    ca_file: &std::path::Path,
) -> Result<(), super::SimError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let steps = scenario.map(|s| s.expanded()).unwrap_or_default();
        let transports = scenario.map_or([Transport::Udp; 2], |s| s.phone.transports);
        let pair = UdpPair::bind_over(primary, backup, transports, &steps, seed, None)?;
        let [p, b] = pair.local_addrs();
        say!(
            "pbx-sim: primary on {} {p} ({}), backup on {} {b} ({}); Ctrl-C to stop",
            transports[0].as_str(),
            super::DOMAINS[0],
            transports[1].as_str(),
            super::DOMAINS[1]
        );
        if let Some(pki) = pair.pki() {
            if let Some(dir) = ca_file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(ca_file, pki.ca_pem())?;
            say!("the lab CA's certificate (the phone's only trust root) is in {}", ca_file.display());
        }
        if let Some(s) = scenario {
            say!("playing scenario {} ({} steps), clock starts now", s.name, steps.len());
        }
        let origin = TInstant::now();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(pair.run(origin, Some(tx), true, stop_rx));
        let mut tick = tokio::time::interval(StdDuration::from_secs(10));
        tick.tick().await;
        let mut counts = [0u64; 2];
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                n = rx.recv() => match n {
                    Some(PairNote::Fault(f)) => say!(
                        "{:>9.3}s {:<7} {}",
                        f.at.as_micros() as f64 / 1e6,
                        f.server,
                        if f.label.is_empty() { "answering normally".to_string() } else { format!("fault: {}", f.label) }
                    ),
                    Some(PairNote::Request { at, server, from, outcome }) => {
                        counts[server.index()] += 1;
                        if verbose {
                            say!("{:>9.3}s {:<7} OPTIONS from {from}: {outcome}", at.as_micros() as f64 / 1e6, server);
                        }
                    }
                    Some(PairNote::RebindFailed { server, error }) => eprintln!("{server}: cannot reopen the port: {error}"),
                    None => break,
                },
                _ = tick.tick() => {
                    say!(
                        "{:>9.3}s requests so far: primary {}, backup {}",
                        since(origin).as_micros() as f64 / 1e6,
                        counts[0],
                        counts[1]
                    );
                }
            }
        }
        let _ = stop_tx.send(true);
        if let Ok(stats) = task.await {
            say!(
                "stopped: primary {} requests ({} answered), backup {} requests ({} answered)",
                stats.servers[0].requests, stats.servers[0].answered, stats.servers[1].requests, stats.servers[1].answered
            );
        }
        Ok(())
    })
}
