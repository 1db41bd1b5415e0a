//! The datagram flows to the servers: one connected UDP socket per server probed over UDP, following the agent's next hops.
//! Connected sockets make the kernel report an ICMP port-unreachable as `ECONNREFUSED`, which is fed
//! to the agent as a refusal. Each socket has a reader task; a socket replaced by a new one (a new
//! next hop, new socket options) is known by its epoch, so its late datagrams are dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant as TInstant;

use super::adapter::{Ctx, Input};
use super::socket::{self, SocketOptions};
use super::streams::Streams;
use crate::core::{Command, Side};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_507;

/// What a server's socket reports.
#[derive(Debug)]
pub enum FlowInput {
    /// A datagram arrived.
    Datagram {
        /// Whose socket.
        side: Side,
        /// Which socket of that side.
        epoch: u64,
        /// When.
        at: TInstant,
        /// From where.
        from: SocketAddr,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// The network refused a probe (ICMP port unreachable).
    Refused {
        /// Whose socket.
        side: Side,
        /// Which socket of that side.
        epoch: u64,
        /// When.
        at: TInstant,
    },
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

/// The sockets to both servers.
pub struct Flows {
    socks: [Option<SideSocket>; 2],
    last_destination: [Option<SocketAddr>; 2],
    opts: SocketOptions,
    epoch: u64,
    buf: Vec<u8>,
    /// The sides whose server name has no address yet: no socket, nothing sent.
    unresolved: [bool; 2],
}

impl Flows {
    /// No sockets yet; [`Flows::sync`] opens them.
    pub fn new(opts: SocketOptions) -> Flows {
        Flows {
            socks: [None, None],
            last_destination: [None, None],
            opts,
            epoch: 0,
            buf: vec![0u8; 2048],
            unresolved: [false; 2],
        }
    }

    /// Which sides have no address yet: their probes are not sent (their attempts time out) until
    /// [`Flows::sync`] follows a resolved address.
    pub fn set_unresolved(&mut self, unresolved: [bool; 2]) {
        self.unresolved = unresolved;
    }

    /// Takes new socket options; returns whether they differ (the sockets must then be remade).
    pub fn set_options(&mut self, opts: SocketOptions) -> bool {
        let changed = opts != self.opts;
        self.opts = opts;
        changed
    }

    /// Where the latest probe to `side` went.
    pub fn last_destination(&self, side: Side) -> Option<SocketAddr> {
        self.last_destination[side.index()]
    }

    /// The local address of `side`'s socket.
    pub fn local(&self, side: Side) -> Option<SocketAddr> {
        self.socks[side.index()].as_ref().map(|s| s.local)
    }

    /// Makes each configured side's socket match its next hop in the agent's configuration (every
    /// socket anew when `all`), and tells the agent the local addresses. A server probed over TCP or
    /// TLS has no UDP socket (see [`Streams`]).
    pub fn sync(&mut self, ctx: &mut Ctx, all: bool) -> Result<(), (Side, SocketAddr, io::Error)> {
        for side in Side::BOTH {
            let server = ctx.agent.config().server(side).filter(|s| !s.transport.is_stream()).copied();
            let server = server.filter(|_| !self.unresolved[side.index()]);
            let slot = &mut self.socks[side.index()];
            let Some(server) = server else {
                *slot = None;
                continue;
            };
            let hop = server.next_hop;
            // A socket connected to one of the server's addresses is kept: it is connected to the next
            // one when a probe goes there.
            let listed = |s: &SideSocket| (0..server.hop_count()).any(|i| s.peer == socket::canonical(server.hop(i)));
            if !all && slot.as_ref().is_some_and(listed) {
                continue;
            }
            self.epoch += 1;
            let s = open(side, hop, self.opts, self.epoch, ctx.tx.clone()).map_err(|e| (side, hop, e))?;
            let local = s.local;
            *slot = Some(s);
            let now = ctx.now();
            let _ = ctx.agent.handle_command(now, Command::LocalAddr { side, addr: local });
            tracing::debug!("{side} socket {local} -> {hop}");
        }
        Ok(())
    }

    /// Sends everything the agent has to send: datagrams on the UDP sockets, bytes for a TCP or TLS
    /// server on its flow in `streams`; returns whether there was anything.
    pub async fn transmit(&mut self, ctx: &mut Ctx, streams: &mut Streams) -> bool {
        let mut sent = false;
        loop {
            let now = ctx.now();
            let t = match ctx.agent.poll_transmit(now, &mut self.buf) {
                Ok(Some(t)) => t,
                Ok(None) => return sent,
                Err(e) if e.needed > self.buf.len() && e.needed <= MAX_DATAGRAM => {
                    self.buf.resize(e.needed, 0);
                    continue;
                }
                Err(e) => {
                    // The core could not encode the probe with any buffer we can give: report it and go
                    // on; the attempt's wait still runs, so the ladder stays bounded.
                    tracing::error!("a probe could not be encoded ({e}); not sent");
                    return sent;
                }
            };
            sent = true;
            if self.unresolved[t.server.index()] {
                tracing::debug!("{} server's name has no address yet: probe not sent", t.server);
                continue;
            }
            if t.transport.is_stream() {
                if t.attempt > 0 {
                    self.last_destination[t.server.index()] = Some(t.destination);
                }
                streams.write(t.server, &self.buf[..t.len]);
                continue;
            }
            self.send(ctx, t.server, t.destination, t.len).await;
        }
    }

    async fn send(&mut self, ctx: &mut Ctx, side: Side, destination: SocketAddr, len: usize) {
        let peer = socket::canonical(destination);
        if let Some(s) = self.socks[side.index()].as_mut().filter(|s| s.peer != peer) {
            // Another address of the same server (the attempt's turn moved on): the socket is
            // connected there, keeping its local address (the Via's) and its ICMP reports.
            match s.sock.connect(destination).await {
                Ok(()) => s.peer = peer,
                Err(e) => tracing::warn!("{side} socket to {destination}: {e}"),
            }
        }
        let current = self.socks[side.index()].as_ref().is_some_and(|s| s.peer == peer);
        if !current {
            // Cannot normally happen: sockets follow every configuration change. Repair and go on.
            if let Err((s, a, e)) = self.sync(ctx, false) {
                tracing::error!("{s} socket to {a}: {e}");
            }
        }
        self.last_destination[side.index()] = Some(destination);
        let Some(s) = self.socks[side.index()].as_ref() else {
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
                    let now = ctx.now();
                    ctx.agent.handle_refused(now, side);
                }
                Err(e) => {
                    tracing::warn!("send to {side} server {destination}: {e}");
                    return;
                }
            }
        }
    }

    /// Feeds what a current socket reported to the agent; a replaced socket's reports are dropped.
    pub fn on_input(&mut self, ctx: &mut Ctx, input: FlowInput) {
        let current = |side: Side, epoch: u64| self.socks[side.index()].as_ref().is_some_and(|s| s.epoch == epoch);
        match input {
            FlowInput::Datagram { side, epoch, at, from, bytes } if current(side, epoch) => {
                let at = ctx.core_time(at);
                ctx.agent.handle_datagram(at, socket::canonical(from), &bytes);
            }
            FlowInput::Refused { side, epoch, at } if current(side, epoch) => {
                tracing::debug!("{side} server refused (ICMP port unreachable)");
                let at = ctx.core_time(at);
                ctx.agent.handle_refused(at, side);
            }
            _ => {}
        }
    }
}

fn open(
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
                FlowInput::Datagram { side, epoch, at: TInstant::now(), from, bytes: buf[..n].to_vec() }
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                FlowInput::Refused { side, epoch, at: TInstant::now() }
            }
            Err(e) => {
                errors = errors.saturating_add(1);
                tracing::warn!("receive from {side} server: {e}");
                tokio::time::sleep(StdDuration::from_millis(10u64.saturating_mul(u64::from(errors)).min(1000))).await;
                continue;
            }
        };
        if tx.send(Input::Flow(input)).is_err() {
            return;
        }
    }
}
