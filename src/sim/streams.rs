//! The pair's TCP and TLS servers, and the lab phone's TCP and TLS client.
//!
//! The servers: one listener per stream side, on the side's address; each connection asks the
//! [`PairModel`](super::model::PairModel) (through the pair's loop) what becomes of it and how each
//! request is answered, so the real pair and the virtual one follow the same script. TLS presents a
//! certificate from [`LabPki`], made at start: the good one for the server's SIP domain, or the bad
//! one a `bad_certificate` fault asks for. A `reset` resets connections (`SO_LINGER` 0), a restart
//! (`refuse`, `stall_handshake`, `bad_certificate`) closes the open ones, a closed port drops the
//! listener so the kernel refuses connects.
//!
//! The phone: a flow per server as the agent asks ([`PhoneFlows`]), connected with tokio, for TLS
//! verified like a phone verifies (the lab CA the only root, the server's SIP domain as the name,
//! a wildcard refused); failures mapped to [`FlowError`] and [`TlsError`]; the bytes read are framed
//! by the core's [`frame`] over the flow's own buffer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant as TInstant;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::certs::{Authority, Leaf};
use super::model::{CertKind, Connect, PairModel, Reply};
use super::udp::{at, PairNote};
use super::{PairStats, SimError, DOMAINS};
use crate::core::drive;
use crate::core::{frame, Agent, FlowCommand, FlowError, FlowEvent, Frame, Instant, Side, TlsError, Transport};
use crate::net::streams::io_flow_error;
use crate::net::tls::{self, SipVerifier};

// ---- certificates ----

/// The lab's certificates, made at start: a CA, each server's good leaf and its bad ones, a second
/// CA's leaf for `unknown_ca`, and the phone's client configuration trusting only the lab CA.
pub struct LabPki {
    ca_pem: String,
    /// Per side: the good configuration, then one per [`CertKind`] in [`CertKind::ALL`]'s order.
    servers: [[Arc<rustls::ServerConfig>; 5]; 2],
    client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for LabPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabPki").finish_non_exhaustive()
    }
}

fn tls_err(e: impl std::fmt::Display) -> SimError {
    SimError::Tls(e.to_string())
}

impl LabPki {
    /// Makes every certificate (a few milliseconds).
    pub fn new() -> Result<LabPki, SimError> {
        let ca = Authority::new("sip-failover lab CA").map_err(tls_err)?;
        let stranger = Authority::new("sip-failover unknown CA").map_err(tls_err)?;
        let side = |domain: &str| -> Result<[Arc<rustls::ServerConfig>; 5], SimError> {
            let ids = [
                ca.issue(Leaf::Good(domain)),
                ca.issue(Leaf::Expired(domain)),
                ca.issue(Leaf::Good("elsewhere.example")),
                ca.issue(Leaf::Wildcard(domain)),
                stranger.issue(Leaf::Good(domain)),
            ];
            let mut out = Vec::with_capacity(5);
            for id in ids {
                out.push(id.map_err(tls_err)?.server_config().map_err(tls_err)?);
            }
            out.try_into().map_err(|_| SimError::Internal("five server configurations"))
        };
        let servers = [side(DOMAINS[0])?, side(DOMAINS[1])?];
        let mut roots = RootCertStore::empty();
        roots.add(ca.ca_der()).map_err(tls_err)?;
        // The phone checks the pair's certificates as `run` does: webpki against the lab CA, then
        // RFC 5922's rule that a wildcard does not name a SIP domain.
        let verifier = SipVerifier::new(Arc::new(roots), false).map_err(tls_err)?;
        let client = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(LabPki { ca_pem: ca.ca_pem(), servers, client: Arc::new(client) })
    }

    /// The lab CA's certificate, PEM (what a phone run against `pbx-sim` is given as its root).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// What `side`'s server presents: its good certificate, or the bad one of `kind`.
    pub fn server_config(&self, side: Side, kind: Option<CertKind>) -> Arc<rustls::ServerConfig> {
        let i = kind.and_then(|k| CertKind::ALL.iter().position(|c| *c == k)).map_or(0, |i| i + 1);
        Arc::clone(&self.servers[side.index()][i])
    }

    /// The phone's TLS client configuration.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.client)
    }
}

// ---- the pair's servers ----

/// A connection's question to the pair's loop, which owns the model.
#[derive(Debug)]
pub enum StreamReq {
    /// A new connection: what becomes of it.
    Connect {
        /// Which server.
        side: Side,
        /// TCP or TLS.
        transport: Transport,
        /// The answer.
        reply: oneshot::Sender<Connect>,
    },
    /// A request read from a connection: the response and when it leaves, or nothing.
    Request {
        /// Which server.
        side: Side,
        /// The whole message.
        bytes: Vec<u8>,
        /// The answer.
        reply: oneshot::Sender<Option<(Instant, Vec<u8>)>>,
    },
    /// A keep-alive ping: whether to answer it.
    Ping {
        /// Which server.
        side: Side,
        /// The answer.
        reply: oneshot::Sender<bool>,
    },
}

/// A change the server's open connections must follow: (generation, what happens to them).
type Epoch = (u64, Option<FlowError>);

/// The pair's stream listeners and their connections, run on the pair's runtime.
pub struct StreamServers {
    transports: [Transport; 2],
    addrs: [SocketAddr; 2],
    pki: Option<Arc<LabPki>>,
    hub: mpsc::UnboundedSender<StreamReq>,
    epochs: [watch::Sender<Epoch>; 2],
    listeners: [Option<JoinHandle<()>>; 2],
    origin: TInstant,
}

impl std::fmt::Debug for StreamServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamServers").field("transports", &self.transports).finish_non_exhaustive()
    }
}

/// A TCP listener on `addr` (address reuse on, so a restarted server gets its port back at once).
pub fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

impl StreamServers {
    /// Starts serving on the bound `listeners` (one per stream side); must run inside the pair's
    /// runtime. The requests of the connections come out of the returned receiver.
    pub fn start(
        listeners: [Option<std::net::TcpListener>; 2],
        transports: [Transport; 2],
        addrs: [SocketAddr; 2],
        pki: Option<Arc<LabPki>>,
        origin: TInstant,
    ) -> io::Result<(StreamServers, mpsc::UnboundedReceiver<StreamReq>)> {
        let (hub, rx) = mpsc::unbounded_channel();
        let mut s = StreamServers {
            transports,
            addrs,
            pki,
            hub,
            epochs: [watch::channel((0, None)).0, watch::channel((0, None)).0],
            listeners: [None, None],
            origin,
        };
        for (side, l) in Side::BOTH.into_iter().zip(listeners) {
            if let Some(l) = l {
                s.spawn_listener(side, TcpListener::from_std(l)?);
            }
        }
        Ok((s, rx))
    }

    fn spawn_listener(&mut self, side: Side, listener: TcpListener) {
        let transport = self.transports[side.index()];
        let (pki, hub, epoch, origin) =
            (self.pki.clone(), self.hub.clone(), self.epochs[side.index()].subscribe(), self.origin);
        self.listeners[side.index()] = Some(tokio::spawn(async move {
            // Bounded by the listener: it ends when the task is aborted (the port closes).
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let conn = Conn { side, transport, pki: pki.clone(), hub: hub.clone(), epoch: epoch.clone(), origin };
                tokio::spawn(conn.serve(tcp));
            }
        }));
    }

    /// Server `side` changed: its open connections follow (reset, closed), its port opens or closes.
    pub fn on_change(&mut self, model: &PairModel, side: Side) -> Option<PairNote> {
        let i = side.index();
        if !self.transports[i].is_stream() {
            return None;
        }
        let server = model.server(side);
        if let Some(e) = server.flow_effect() {
            self.epochs[i].send_modify(|(n, effect)| {
                *n += 1;
                *effect = Some(e);
            });
        }
        let closed = server.mode() == super::model::Mode::Refused;
        if closed {
            if let Some(h) = self.listeners[i].take() {
                h.abort();
            }
        } else if self.listeners[i].is_none() {
            match bind_tcp(self.addrs[i]).and_then(TcpListener::from_std) {
                Ok(l) => self.spawn_listener(side, l),
                Err(e) => return Some(PairNote::RebindFailed { server: side, error: e.to_string() }),
            }
        }
        None
    }

    /// Answers one connection's question from the model at `now`.
    pub fn handle(model: &mut PairModel, stats: &mut PairStats, now: Instant, req: StreamReq) {
        match req {
            StreamReq::Connect { side, transport, reply } => {
                let _ = reply.send(model.connect(side, transport));
            }
            StreamReq::Request { side, bytes, reply } => {
                stats.count(now, side);
                let r = match model.on_request(side, now, &bytes) {
                    Reply::Send { at, bytes } => Some((at, bytes)),
                    _ => None,
                };
                let _ = reply.send(r);
            }
            StreamReq::Ping { side, reply } => {
                let _ = reply.send(model.server(side).answers_ping());
            }
        }
    }

    /// Stops accepting (the connections end with the runtime).
    pub fn stop(&mut self) {
        for h in self.listeners.iter_mut().filter_map(Option::take) {
            h.abort();
        }
    }
}

/// One accepted connection of a server.
struct Conn {
    side: Side,
    transport: Transport,
    pki: Option<Arc<LabPki>>,
    hub: mpsc::UnboundedSender<StreamReq>,
    epoch: watch::Receiver<Epoch>,
    origin: TInstant,
}

/// A stream whose TCP socket can be reset.
trait Tcp: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> &TcpStream;
}

impl Tcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Tcp for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Resets a connection: `SO_LINGER` 0, then close, so the peer gets a RST.
fn reset(tcp: &TcpStream) {
    let _ = tcp.set_zero_linger();
}

impl Conn {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> StreamReq) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.hub.send(make(tx)).ok()?;
        rx.await.ok()
    }

    async fn serve(mut self, tcp: TcpStream) {
        // Only what happens to the server from now on concerns this connection.
        self.epoch.mark_unchanged();
        let (side, transport) = (self.side, self.transport);
        let Some(c) = self.ask(|reply| StreamReq::Connect { side, transport, reply }).await else { return };
        let tls = |kind| self.pki.as_ref().map(|p| TlsAcceptor::from(p.server_config(side, kind)));
        match c {
            Connect::Refuse | Connect::Reset => reset(&tcp),
            Connect::Stall => self.hold(tcp).await,
            Connect::BadCertificate(k) => {
                if let Some(acceptor) = tls(Some(k)) {
                    // The phone refuses the certificate and aborts; nothing more comes.
                    let _ = acceptor.accept(tcp).await;
                }
            }
            Connect::Accept if transport == Transport::Tls => {
                let Some(acceptor) = tls(None) else { return };
                let mut epoch = self.epoch.clone();
                tokio::select! {
                    r = acceptor.accept(tcp) => if let Ok(s) = r { self.requests(s).await },
                    _ = epoch.changed() => {}
                }
            }
            Connect::Accept => self.requests(tcp).await,
        }
    }

    /// A stalled handshake: read and discard until the peer leaves or the server changes.
    async fn hold(&mut self, mut tcp: TcpStream) {
        let mut buf = [0u8; 2048];
        // Bounded by the peer: it gives up (its attempt times out) and closes.
        loop {
            tokio::select! {
                r = tcp.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { return },
                _ = self.epoch.changed() => {
                    if self.epoch.borrow().1 == Some(FlowError::Refused) {
                        reset(&tcp);
                    }
                    return;
                }
            }
        }
    }

    /// Reads requests and pings, answers as the model says, until the peer or the server ends it.
    async fn requests(&mut self, mut s: impl Tcp) {
        let side = self.side;
        let mut buf: Vec<u8> = Vec::new();
        let mut rd = [0u8; 4096];
        let mut crlf = 0u8;
        // Bounded by the peer: each pass reads something, or the connection ends.
        loop {
            let n = tokio::select! {
                r = s.read(&mut rd) => match r {
                    Ok(n) if n > 0 => n,
                    _ => return,
                },
                _ = self.epoch.changed() => {
                    let effect = self.epoch.borrow().1;
                    match effect {
                        // Dropped with SO_LINGER 0: a RST, no close_notify before it.
                        Some(FlowError::Refused) => reset(s.tcp()),
                        Some(_) => {
                            let _ = s.shutdown().await;
                        }
                        None => continue,
                    }
                    return;
                }
            };
            buf.extend_from_slice(&rd[..n]);
            // Bounded: each unit consumes at least two bytes.
            loop {
                match frame(&buf) {
                    Ok(None) => break,
                    Ok(Some(Frame::Pong(n))) => {
                        buf.drain(..n);
                        crlf += 1;
                        if crlf == 2 {
                            crlf = 0;
                            if self.ask(|reply| StreamReq::Ping { side, reply }).await == Some(true)
                                && s.write_all(b"\r\n").await.is_err()
                            {
                                return;
                            }
                        }
                    }
                    Ok(Some(Frame::Message(n))) => {
                        crlf = 0;
                        let bytes: Vec<u8> = buf.drain(..n).collect();
                        if let Some(Some((t, resp))) = self.ask(|reply| StreamReq::Request { side, bytes, reply }).await
                        {
                            tokio::time::sleep_until(at(self.origin, t)).await;
                            if s.write_all(&resp).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

// ---- the phone's flows ----

/// What a phone's flow task reports.
#[derive(Debug)]
pub enum FlowInput {
    /// Connected (for TLS: verified).
    Connected,
    /// Failed or closed by the peer.
    Failed(FlowError),
    /// Bytes read.
    Bytes(Vec<u8>),
}

/// A report of flow `id` of phone `phone` to `side`.
pub type FlowReport = (u32, Side, u16, FlowInput);

struct OpenFlow {
    id: u16,
    writes: mpsc::UnboundedSender<Vec<u8>>,
    task: JoinHandle<()>,
    up: bool,
    buf: Vec<u8>,
}

/// One phone's flows, as the agent asks for them: opened on tokio, verified like a phone, bytes
/// written when the agent sends, reports fed back through [`PhoneFlows::input`].
pub struct PhoneFlows {
    phone: u32,
    /// Where the flows' tasks run (the current runtime when `None`).
    runtime: Option<tokio::runtime::Handle>,
    tls: Option<Arc<rustls::ClientConfig>>,
    reports: mpsc::UnboundedSender<FlowReport>,
    open: [Option<OpenFlow>; 2],
}

impl std::fmt::Debug for PhoneFlows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneFlows").field("phone", &self.phone).finish_non_exhaustive()
    }
}

impl Drop for PhoneFlows {
    fn drop(&mut self) {
        for f in self.open.iter_mut().filter_map(Option::take) {
            f.task.abort();
        }
    }
}

impl PhoneFlows {
    /// The flows of phone `phone`, reporting to `reports`; `tls` is the phone's TLS client.
    pub fn new(
        phone: u32,
        tls: Option<Arc<rustls::ClientConfig>>,
        reports: mpsc::UnboundedSender<FlowReport>,
    ) -> PhoneFlows {
        PhoneFlows { phone, runtime: None, tls, reports, open: [None, None] }
    }

    /// The same, with the flows' tasks (connects, handshakes, reads) on `runtime`: a fleet keeps
    /// that work off the thread that runs the agents' timers.
    pub fn on_runtime(mut self, runtime: tokio::runtime::Handle) -> PhoneFlows {
        self.runtime = Some(runtime);
        self
    }

    /// Opens or closes a flow as the agent asks (inside a tokio runtime).
    pub fn command(&mut self, cmd: &FlowCommand) {
        match *cmd {
            FlowCommand::Open { server, id, destination, transport } => {
                if let Some(old) = self.open[server.index()].take() {
                    old.task.abort();
                }
                let (writes, rx) = mpsc::unbounded_channel();
                let tls = if transport == Transport::Tls { self.tls.clone() } else { None };
                let flow = run_flow(
                    (self.phone, server, id),
                    destination,
                    tls.map(|c| (c, DOMAINS[server.index()])),
                    rx,
                    self.reports.clone(),
                );
                let task = match &self.runtime {
                    Some(rt) => rt.spawn(flow),
                    None => tokio::spawn(flow),
                };
                self.open[server.index()] = Some(OpenFlow { id, writes, task, up: false, buf: Vec::new() });
            }
            FlowCommand::Close { server, id, .. } => {
                if self.open[server.index()].as_ref().is_some_and(|f| f.id == id) {
                    if let Some(f) = self.open[server.index()].take() {
                        f.task.abort();
                    }
                }
            }
        }
    }

    /// Writes `bytes` on `side`'s flow (the agent writes only on a flow that is up).
    pub fn write(&mut self, side: Side, bytes: &[u8]) {
        if let Some(f) = self.open[side.index()].as_ref().filter(|f| f.up) {
            let _ = f.writes.send(bytes.to_vec());
        }
    }

    /// Hands a report of flow `id` to the agent at `now`: connected and failed flows as flow
    /// events, bytes framed over the flow's buffer. A report of a flow already dropped is ignored.
    pub fn input(&mut self, agent: &mut Agent, now: Instant, side: Side, id: u16, input: FlowInput) {
        let slot = &mut self.open[side.index()];
        let Some(f) = slot.as_mut().filter(|f| f.id == id) else { return };
        match input {
            FlowInput::Connected => {
                f.up = true;
                agent.handle_flow(now, side, id, FlowEvent::Connected);
            }
            FlowInput::Failed(e) => {
                *slot = None;
                agent.handle_flow(now, side, id, FlowEvent::Failed(e));
            }
            FlowInput::Bytes(b) => {
                f.buf.extend_from_slice(&b);
                match drive::feed_stream(agent, now, side, id, &f.buf) {
                    Ok(used) => {
                        f.buf.drain(..used);
                    }
                    Err(_) => {
                        if let Some(f) = slot.take() {
                            f.task.abort();
                        }
                        agent.handle_flow(now, side, id, FlowEvent::Failed(FlowError::Framing));
                    }
                }
            }
        }
    }
}

/// One flow: connect, for TLS the handshake, then read and write until it ends or is aborted.
async fn run_flow(
    (phone, side, id): (u32, Side, u16),
    to: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, &'static str)>,
    writes: mpsc::UnboundedReceiver<Vec<u8>>,
    reports: mpsc::UnboundedSender<FlowReport>,
) {
    let report = |i| {
        let _ = reports.send((phone, side, id, i));
    };
    let tcp = match TcpStream::connect(to).await {
        Ok(t) => t,
        Err(e) => return report(FlowInput::Failed(io_flow_error(&e))),
    };
    let _ = tcp.set_nodelay(true);
    match tls {
        None => pump(tcp, writes, &report).await,
        Some((config, domain)) => {
            let Ok(name) = ServerName::try_from(domain) else {
                return report(FlowInput::Failed(FlowError::Tls(TlsError::Other)));
            };
            match TlsConnector::from(config).connect(name, tcp).await {
                Ok(s) => pump(s, writes, &report).await,
                Err(e) => report(FlowInput::Failed(io_flow_error(&e))),
            }
        }
    }
}

async fn pump(
    mut s: impl AsyncRead + AsyncWrite + Unpin,
    mut writes: mpsc::UnboundedReceiver<Vec<u8>>,
    report: &impl Fn(FlowInput),
) {
    report(FlowInput::Connected);
    let mut buf = vec![0u8; 2048];
    // Bounded by the connection: it ends on EOF, an error, or when the phone drops the flow.
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) => return report(FlowInput::Failed(FlowError::Closed)),
                Ok(n) => report(FlowInput::Bytes(buf[..n].to_vec())),
                Err(e) => return report(FlowInput::Failed(io_flow_error(&e))),
            },
            w = writes.recv() => match w {
                Some(bytes) => {
                    if let Err(e) = s.write_all(&bytes).await {
                        return report(FlowInput::Failed(io_flow_error(&e)));
                    }
                }
                None => return,
            },
        }
    }
}
