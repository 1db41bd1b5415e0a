//! The stream flows: SIP over TCP and TLS to the servers whose URI asks for it, one persistent flow
//! per server, reused by every probe, opened and closed when the agent says so
//! ([`Agent::poll_flow`](crate::core::Agent::poll_flow)).
//!
//! Each flow is one task: it connects (bound and DSCP-marked like the UDP sockets), does the TLS
//! handshake when the server is reached over TLS ([`super::tls`]: the server's SIP domain, RFC 5922),
//! then reads into a buffer of [`MAX_MESSAGE`] bytes, frames it with
//! [`frame`](crate::core::flow::frame) and writes what the agent hands out for it. What becomes of it
//! comes back to the loop as an [`Input::Stream`]: connected, failed (refused or reset, connect
//! timeout, the TLS reason, closed by the peer, a stream that cannot be framed), a whole message,
//! a keep-alive pong. Reports carry the flow's id: a report about a flow that is gone is dropped
//! here, and the agent ignores stale ids as well. Closing a flow (the agent's `Close`, a new `Open`
//! for the same server, a failure) drops it, which aborts its task: at most one task per server.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant as TInstant;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

use super::adapter::{Ctx, Input};
use super::socket::{self, SocketOptions};
use super::tls::{self, TlsSetupError};
use crate::config::PhoneConfig;
use crate::core::flow::{frame, Frame};
use crate::core::wire::MAX_MESSAGE;
use crate::core::{Command, FlowCommand, FlowError, FlowEvent, Side, TlsError, Transport};

/// How long a TCP connect may take before the flow fails with `connect_timeout`. The agent's own
/// attempt timer usually closes a flow that hangs in connect sooner.
pub const CONNECT_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// How long a TLS handshake may take before the flow fails with `handshake_timeout`.
pub const HANDSHAKE_TIMEOUT: StdDuration = StdDuration::from_secs(5);

/// What a flow's task reports.
#[derive(Debug)]
pub struct StreamInput {
    /// Whose flow.
    pub side: Side,
    /// The flow's id, as the agent gave it.
    pub id: u16,
    /// When it happened.
    pub at: TInstant,
    /// What happened.
    pub what: StreamEvent,
}

/// What happened on a flow.
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamEvent {
    /// Connected (and for TLS, the certificate verified), from this local address.
    Connected(SocketAddr),
    /// Failed or closed; the task has ended. The text says what the system or TLS library said.
    Failed(FlowError, String),
    /// A whole SIP message.
    Message(Vec<u8>),
    /// A keep-alive pong (CRLF).
    Pong,
}

/// One open (or opening) flow.
struct Flow {
    id: u16,
    local: Option<SocketAddr>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    task: JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The stream flows to both servers.
pub struct Streams {
    flows: [Option<Flow>; 2],
    opts: SocketOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    unresolved: [bool; 2],
}

impl fmt::Debug for Streams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = self.flows.each_ref().map(|f| f.as_ref().map(|f| f.id));
        f.debug_struct("Streams").field("flows", &ids).field("tls", &self.tls.is_some()).finish()
    }
}

/// The TLS client configuration `cfg` needs: `None` when no side is reached over TLS (then no trust
/// store is read), else built from `network.tls_*`.
pub fn tls_for(cfg: &PhoneConfig) -> Result<Option<Arc<rustls::ClientConfig>>, TlsSetupError> {
    let needs = Side::BOTH.iter().filter_map(|s| cfg.side(*s)).any(|s| s.next_hop().transport == Transport::Tls);
    if needs {
        tls::client_config(&cfg.network.tls).map(Some)
    } else {
        Ok(None)
    }
}

impl Streams {
    /// No flows yet, sockets made with `opts`, TLS as `tls` (see [`tls_for`]).
    pub fn new(opts: SocketOptions, tls: Option<Arc<rustls::ClientConfig>>) -> Streams {
        Streams { flows: [None, None], opts, tls, unresolved: [false; 2] }
    }

    /// Which sides have no address yet: flows to them are not opened.
    pub fn set_unresolved(&mut self, unresolved: [bool; 2]) {
        self.unresolved = unresolved;
    }

    /// Takes new settings for the flows opened from now on.
    pub fn set(&mut self, opts: SocketOptions, tls: Option<Arc<rustls::ClientConfig>>) {
        self.opts = opts;
        self.tls = tls;
    }

    /// The local address of `side`'s connected flow.
    pub fn local(&self, side: Side) -> Option<SocketAddr> {
        self.flows[side.index()].as_ref().and_then(|f| f.local)
    }

    /// Carries out every flow command the agent has; returns whether there was any.
    pub fn command(&mut self, ctx: &mut Ctx, cfg: &PhoneConfig) -> bool {
        let mut any = false;
        // Each Open or Close concerns one of two servers; the agent has at most a few at once.
        for _ in 0..16 {
            let Some(cmd) = ctx.agent.poll_flow() else { break };
            any = true;
            match cmd {
                FlowCommand::Close { server, id, reason } => {
                    if self.flows[server.index()].as_ref().is_some_and(|f| f.id == id) {
                        self.flows[server.index()] = None;
                    }
                    tracing::debug!("{server} flow {id} closed: {reason}");
                }
                // A server whose name has no address yet: no connect; the attempt times out.
                FlowCommand::Open { server, .. } if self.unresolved[server.index()] => {
                    self.flows[server.index()] = None;
                }
                FlowCommand::Open { server, id, destination, transport } => {
                    self.open(ctx, cfg, server, id, destination, transport);
                }
            }
        }
        any
    }

    fn open(
        &mut self,
        ctx: &mut Ctx,
        cfg: &PhoneConfig,
        side: Side,
        id: u16,
        destination: SocketAddr,
        transport: Transport,
    ) {
        // One flow per server: a new one replaces the old.
        self.flows[side.index()] = None;
        // RFC 5922: the certificate must name the SIP domain of the URI the flow is for (the next
        // hop as configured), never an SRV target or the address.
        let host = cfg.side(side).map_or_else(|| destination.ip().to_string(), |s| s.next_hop().host.clone());
        let tls = match transport {
            Transport::Tls => Some(match (&self.tls, tls::server_name(&host)) {
                (Some(c), Ok(name)) => Ok((TlsConnector::from(c.clone()), name)),
                (None, _) => Err("no TLS settings".to_string()),
                (_, Err(e)) => Err(e),
            }),
            _ => None,
        };
        ctx.report(
            "flow_open",
            json!({
                "server": side.as_str(),
                "id": id,
                "destination": destination.to_string(),
                "transport": transport.as_str(),
                "tls_name": (transport == Transport::Tls).then_some(host.as_str()),
            }),
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_flow(side, id, destination, self.opts, tls, rx, ctx.tx.clone()));
        self.flows[side.index()] = Some(Flow { id, local: None, tx, task });
    }

    /// Writes `bytes` (a probe or a keep-alive ping) on `side`'s flow.
    pub fn write(&mut self, side: Side, bytes: &[u8]) {
        match &self.flows[side.index()] {
            Some(f) if f.tx.send(bytes.to_vec()).is_ok() => {}
            _ => tracing::warn!("no open flow to the {side} server; {} bytes not written", bytes.len()),
        }
    }

    /// Feeds what a current flow reported to the agent; reports of a flow that is gone are dropped.
    pub fn on_input(&mut self, ctx: &mut Ctx, input: StreamInput) {
        let StreamInput { side, id, at, what } = input;
        let Some(flow) = self.flows[side.index()].as_mut().filter(|f| f.id == id) else { return };
        let at = ctx.core_time(at);
        match what {
            StreamEvent::Connected(local) => {
                flow.local = Some(local);
                let _ = ctx.agent.handle_command(at, Command::LocalAddr { side, addr: local });
                ctx.agent.handle_flow(at, side, id, FlowEvent::Connected);
            }
            StreamEvent::Message(bytes) => ctx.agent.handle_message(at, side, &bytes),
            StreamEvent::Pong => ctx.agent.handle_flow(at, side, id, FlowEvent::Pong),
            StreamEvent::Failed(reason, detail) => {
                self.flows[side.index()] = None;
                tracing::info!("{side} flow {id} failed ({reason}): {detail}");
                ctx.agent.handle_flow(at, side, id, FlowEvent::Failed(reason));
            }
        }
    }
}

/// What an I/O error on a TCP or TLS flow (a connect, a handshake, a read or a write) means for the
/// agent.
pub fn io_flow_error(e: &io::Error) -> FlowError {
    if let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return FlowError::Tls(tls::tls_error(t));
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::NotConnected => FlowError::Refused,
        io::ErrorKind::TimedOut => FlowError::ConnectTimeout,
        _ => FlowError::Closed,
    }
}

type TlsTarget = Result<(TlsConnector, rustls::pki_types::ServerName<'static>), String>;

/// One flow, from connect to failure: reports go to the loop, writes come from `rx`.
async fn run_flow(
    side: Side,
    id: u16,
    destination: SocketAddr,
    opts: SocketOptions,
    tls: Option<TlsTarget>,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    tx: mpsc::UnboundedSender<Input>,
) {
    let report = move |what: StreamEvent| {
        let _ = tx.send(Input::Stream(StreamInput { side, id, at: TInstant::now(), what }));
    };
    let tcp = async {
        let (sock, connect_to) = socket::tcp_for(destination, opts)?;
        sock.connect(connect_to).await
    };
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, tcp).await {
        Err(_) => return report(StreamEvent::Failed(FlowError::ConnectTimeout, "connect timed out".into())),
        Ok(Err(e)) => return report(StreamEvent::Failed(io_flow_error(&e), format!("connect: {e}"))),
        Ok(Ok(s)) => s,
    };
    let local = match tcp.local_addr() {
        Ok(a) => socket::canonical(a),
        Err(e) => return report(StreamEvent::Failed(FlowError::Closed, format!("local address: {e}"))),
    };
    match tls {
        None => serve(tcp, local, rx, &report).await,
        Some(Err(e)) => report(StreamEvent::Failed(FlowError::Tls(TlsError::Other), e)),
        Some(Ok((connector, name))) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, tcp)).await {
                Err(_) => report(StreamEvent::Failed(
                    FlowError::Tls(TlsError::HandshakeTimeout),
                    "TLS handshake timed out".into(),
                )),
                Ok(Err(e)) => {
                    // A rustls error is the TLS reason; a reset or a hang-up during the handshake is
                    // the server refusing us, a TLS failure all the same.
                    let reason = match io_flow_error(&e) {
                        r @ FlowError::Tls(_) => r,
                        _ => FlowError::Tls(TlsError::Other),
                    };
                    report(StreamEvent::Failed(reason, format!("TLS handshake: {e}")));
                }
                Ok(Ok(s)) => serve(s, local, rx, &report).await,
            }
        }
    }
}

/// Reads and frames the flow, and writes what comes from `rx`, until either side fails.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    local: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    report: &impl Fn(StreamEvent),
) {
    report(StreamEvent::Connected(local));
    let (mut rd, mut wr) = tokio::io::split(stream);
    // `frame` decides within MAX_MESSAGE bytes, so a full buffer always frames or fails.
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut len = 0usize;
    loop {
        tokio::select! {
            r = rd.read(&mut buf[len..]) => {
                let n = match r {
                    Ok(0) => return report(StreamEvent::Failed(FlowError::Closed, "closed by the server".into())),
                    Ok(n) => n,
                    Err(e) => return report(StreamEvent::Failed(io_flow_error(&e), format!("read: {e}"))),
                };
                len += n;
                // Every unit consumes at least two bytes: bounded by the buffer's length.
                loop {
                    match frame(&buf[..len]) {
                        Ok(Some(unit)) => {
                            let n = unit.len().min(len);
                            report(match unit {
                                Frame::Message(_) => StreamEvent::Message(buf[..n].to_vec()),
                                Frame::Pong(_) => StreamEvent::Pong,
                            });
                            buf.copy_within(n..len, 0);
                            len -= n;
                        }
                        Ok(None) if len < buf.len() => break,
                        Ok(None) => {
                            return report(StreamEvent::Failed(FlowError::Framing, "buffer full".into()));
                        }
                        Err(e) => return report(StreamEvent::Failed(FlowError::Framing, e.to_string())),
                    }
                }
            }
            w = rx.recv() => {
                let Some(bytes) = w else { return };
                let written = async {
                    wr.write_all(&bytes).await?;
                    wr.flush().await
                };
                if let Err(e) = written.await {
                    return report(StreamEvent::Failed(io_flow_error(&e), format!("write: {e}")));
                }
            }
        }
    }
}
