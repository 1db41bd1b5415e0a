//! Probing over TCP and TLS on a virtual clock, exact to the millisecond: the agent asks for flows,
//! scripted servers connect, refuse, fail the handshake, answer, hang, close, trickle or go silent on
//! keep-alive, and the bytes they send come back through the crate's own stream framing.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::response_to;
use sip_failover::core::drive::{self, Ack, Io};
use sip_failover::core::flow::PING;
use sip_failover::core::{
    Agent, Config, CycleResult, DownReason, Duration, Event, FlowCommand, FlowError, FlowEvent, Instant, Side,
    TlsError, Transmit, Transport,
};

const PRIMARY: &str = "127.0.0.1:5061";
const BACKUP: &str = "127.0.0.2:5061";

fn config(primary: Transport, backup: Transport) -> Config {
    let mut c =
        Config::new(PRIMARY.parse().unwrap(), "pbx-a.example").with_backup(BACKUP.parse().unwrap(), "pbx-b.example");
    c.primary.transport = primary;
    if let Some(b) = c.backup.as_mut() {
        b.transport = backup;
    }
    c
}

/// What a server does when a flow is opened to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connect {
    /// Connected after this many ms.
    Accept(u64),
    /// Refused (or reset) after this many ms.
    Refuse(u64),
    /// The handshake fails after this many ms.
    Tls(TlsError, u64),
    /// Never completes (SYN dropped, or the handshake stalls).
    Hang,
}

/// What a server does with one probe on a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// A whole response after this many ms, in one read.
    Reply(u16, u64),
    /// The response split into one-byte reads, the third value in ms apart, starting after the second.
    Trickle(u16, u64, u64),
    /// Garbage instead of a response after this many ms.
    Garbage(u64),
    /// The peer closes the flow after this many ms.
    Close(u64),
    /// Nothing.
    Silent,
}

struct Server {
    connect: Box<dyn FnMut(u64, u16) -> Connect>,
    answer: Box<dyn FnMut(u64, u16, u8) -> Answer>,
    /// Whether it answers a keep-alive ping with a pong (after 1 ms).
    pong: Box<dyn FnMut(u64) -> bool>,
}

impl Server {
    fn healthy() -> Server {
        Server {
            connect: Box::new(|_, _| Connect::Accept(2)),
            answer: Box::new(|_, _, _| Answer::Reply(200, 5)),
            pong: Box::new(|_| true),
        }
    }
}

#[derive(Debug, Clone)]
enum Delivery {
    Flow(FlowEvent),
    Bytes(Vec<u8>),
}

struct Lab {
    agent: Agent,
    now: Instant,
    servers: [Server; 2],
    /// Pending deliveries: (time in µs, sequence, side, flow id, what).
    inflight: Vec<(u64, u64, Side, u16, Delivery)>,
    seq: u64,
    /// Bytes read from each open flow, not yet framed.
    buffers: HashMap<(Side, u16), Vec<u8>>,
    /// The flows the caller holds open: side -> id.
    open: HashMap<Side, u16>,
    /// Everything the agent asked for and sent, with the time in ms.
    log: Vec<(u64, String)>,
    events: Vec<(u64, Event)>,
    /// Probes written: (ms, side, attempt, flow id).
    probes: Vec<(u64, Side, u8, u16)>,
    pings: Vec<(u64, Side)>,
}

struct Caller<'a> {
    servers: &'a mut [Server; 2],
    inflight: &'a mut Vec<(u64, u64, Side, u16, Delivery)>,
    seq: &'a mut u64,
    open: &'a mut HashMap<Side, u16>,
    log: &'a mut Vec<(u64, String)>,
    events: &'a mut Vec<(u64, Event)>,
    probes: &'a mut Vec<(u64, Side, u8, u16)>,
    pings: &'a mut Vec<(u64, Side)>,
}

impl Caller<'_> {
    fn deliver(&mut self, at_us: u64, side: Side, id: u16, d: Delivery) {
        *self.seq += 1;
        self.inflight.push((at_us, *self.seq, side, id, d));
    }
}

impl Io for Caller<'_> {
    fn transmit(&mut self, now: Instant, t: &Transmit, bytes: &[u8]) -> drive::Sent {
        let ms = now.as_millis();
        let us = now.as_micros();
        assert!(t.transport.is_stream(), "these servers are reached over streams only");
        let id = *self.open.get(&t.server).expect("bytes for a stream only once its flow is open");
        let server = &mut self.servers[t.server.index()];
        if bytes == PING {
            assert_eq!(t.attempt, 0);
            self.pings.push((ms, t.server));
            if (server.pong)(ms) {
                self.deliver(us + 1000, t.server, id, Delivery::Bytes(b"\r\n".to_vec()));
            }
            return drive::Sent::Sent;
        }
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        self.probes.push((ms, t.server, t.attempt, id));
        self.log.push((ms, format!("probe {} attempt {} on flow {id}", t.server, t.attempt)));
        match (server.answer)(ms, id, t.attempt) {
            Answer::Reply(status, d) => {
                self.deliver(us + d * 1000, t.server, id, Delivery::Bytes(response_to(&text, status).into_bytes()))
            }
            Answer::Trickle(status, d, step) => {
                for (i, b) in response_to(&text, status).bytes().enumerate() {
                    self.deliver(us + (d + i as u64 * step) * 1000, t.server, id, Delivery::Bytes(vec![b]));
                }
            }
            Answer::Garbage(d) => {
                self.deliver(us + d * 1000, t.server, id, Delivery::Bytes(b"HTTP/1.1 400\r\n\r\n".to_vec()))
            }
            Answer::Close(d) => {
                self.deliver(us + d * 1000, t.server, id, Delivery::Flow(FlowEvent::Failed(FlowError::Closed)))
            }
            Answer::Silent => {}
        }
        drive::Sent::Sent
    }

    fn event(&mut self, now: Instant, e: &Event) -> Ack {
        self.events.push((now.as_millis(), *e));
        if matches!(e, Event::Switch { .. }) {
            Ack::Applied
        } else {
            Ack::None
        }
    }

    fn flow(&mut self, now: Instant, cmd: &FlowCommand) {
        let (ms, us) = (now.as_millis(), now.as_micros());
        match *cmd {
            FlowCommand::Open { server, id, destination, transport } => {
                let want: SocketAddr = if server == Side::Primary { PRIMARY } else { BACKUP }.parse().unwrap();
                assert_eq!(destination, want);
                assert!(transport.is_stream());
                self.log.push((ms, format!("open {server} flow {id}")));
                self.open.insert(server, id);
                match (self.servers[server.index()].connect)(ms, id) {
                    Connect::Accept(d) => self.deliver(us + d * 1000, server, id, Delivery::Flow(FlowEvent::Connected)),
                    Connect::Refuse(d) => {
                        self.deliver(us + d * 1000, server, id, Delivery::Flow(FlowEvent::Failed(FlowError::Refused)))
                    }
                    Connect::Tls(e, d) => {
                        self.deliver(us + d * 1000, server, id, Delivery::Flow(FlowEvent::Failed(FlowError::Tls(e))))
                    }
                    Connect::Hang => {}
                }
            }
            FlowCommand::Close { server, id, reason } => {
                self.log.push((ms, format!("close {server} flow {id}: {reason}")));
                // The caller drops the flow: nothing more is read from it.
                self.inflight.retain(|d| !(d.2 == server && d.3 == id));
                if self.open.get(&server) == Some(&id) {
                    self.open.remove(&server);
                }
            }
        }
    }
}

impl Lab {
    fn new(config: Config, primary: Server, backup: Server) -> Lab {
        let mut lab = Lab {
            agent: Agent::new(config, Instant::ZERO, 11).unwrap(),
            now: Instant::ZERO,
            servers: [primary, backup],
            inflight: vec![],
            seq: 0,
            buffers: HashMap::new(),
            open: HashMap::new(),
            log: vec![],
            events: vec![],
            probes: vec![],
            pings: vec![],
        };
        lab.drain();
        lab
    }

    fn drain(&mut self) {
        let Lab { agent, now, servers, inflight, seq, open, log, events, probes, pings, .. } = self;
        let mut io = Caller { servers, inflight, seq, open, log, events, probes, pings };
        drive::drain(agent, *now, &mut [0u8; 1500], &mut io);
    }

    /// Hands one delivery to the agent as a driver would: flow reports directly, bytes through the
    /// framing function over this flow's buffer; a framing error closes the flow.
    fn deliver(&mut self, side: Side, id: u16, d: Delivery) {
        match d {
            Delivery::Flow(ev) => {
                if matches!(ev, FlowEvent::Failed(_)) {
                    self.open.remove(&side);
                }
                self.agent.handle_flow(self.now, side, id, ev);
            }
            Delivery::Bytes(bytes) => {
                let buf = self.buffers.entry((side, id)).or_default();
                buf.extend_from_slice(&bytes);
                match drive::feed_stream(&mut self.agent, self.now, side, id, buf) {
                    Ok(used) => {
                        buf.drain(..used);
                    }
                    Err(_) => {
                        self.buffers.remove(&(side, id));
                        self.open.remove(&side);
                        self.inflight.retain(|d| !(d.2 == side && d.3 == id));
                        self.agent.handle_flow(self.now, side, id, FlowEvent::Failed(FlowError::Framing));
                    }
                }
            }
        }
    }

    fn run_until(&mut self, end_ms: u64) {
        let end = end_ms * 1000;
        for _ in 0..1_000_000 {
            let timer = self.agent.poll_timeout().map(|t| t.as_micros());
            let next_delivery = self.inflight.iter().map(|d| (d.0, d.1)).min();
            let next = match (timer, next_delivery) {
                (Some(a), Some((b, _))) => a.min(b),
                (a, b) => a.or(b.map(|b| b.0)).unwrap_or(u64::MAX),
            };
            if next > end {
                self.now = Instant::from_micros(end.max(self.now.as_micros()));
                self.agent.handle_timeout(self.now);
                self.drain();
                return;
            }
            self.now = Instant::from_micros(next.max(self.now.as_micros()));
            match next_delivery {
                Some((t, seq)) if t == next => {
                    let i = self.inflight.iter().position(|d| d.1 == seq).unwrap();
                    let (_, _, side, id, d) = self.inflight.remove(i);
                    self.deliver(side, id, d);
                }
                _ => self.agent.handle_timeout(self.now),
            }
            self.drain();
        }
        panic!("virtual clock did not reach {end_ms} ms");
    }

    fn switches(&self) -> Vec<(u64, Side, &'static str)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Switch { to, reason, .. } => Some((*t, *to, reason.as_str())),
                _ => None,
            })
            .collect()
    }

    fn probes_to(&self, side: Side) -> Vec<(u64, u8, u16)> {
        self.probes.iter().filter(|p| p.1 == side).map(|p| (p.0, p.2, p.3)).collect()
    }

    fn flow_downs(&self, side: Side) -> Vec<(u64, FlowError)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::FlowDown { server, reason } if *server == side => Some((*t, *reason)),
                _ => None,
            })
            .collect()
    }

    fn replies_from(&self, side: Side) -> usize {
        self.events.iter().filter(|(_, e)| matches!(e, Event::Reply { server, .. } if *server == side)).count()
    }

    fn cycle_results(&self, side: Side) -> Vec<(u64, CycleResult)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::CycleResult { server, result } if *server == side => Some((*t, *result)),
                _ => None,
            })
            .collect()
    }
}

fn hung_primary() -> Server {
    Server { answer: Box::new(|_, _, _| Answer::Silent), ..Server::healthy() }
}

#[test]
fn the_ladder_keeps_its_timing_over_tcp_and_tls_and_each_timeout_costs_one_flow() {
    for transport in [Transport::Tcp, Transport::Tls] {
        let mut lab = Lab::new(config(transport, transport), hung_primary(), Server::healthy());
        lab.run_until(2_000);
        // Connected 2 ms after each open; each attempt written on a new flow.
        assert_eq!(lab.probes_to(Side::Primary), [(2, 1, 1), (802, 2, 2), (1202, 3, 3)], "{transport}");
        assert_eq!(
            lab.flow_downs(Side::Primary),
            [(800, FlowError::AttemptTimedOut), (1200, FlowError::AttemptTimedOut), (1600, FlowError::AttemptTimedOut)]
        );
        assert_eq!(lab.switches(), [(1600, Side::Backup, "failover")], "{transport}");
        assert_eq!(lab.cycle_results(Side::Primary), [(1600, CycleResult::Failed(DownReason::Timeout))]);
        // The backup's one flow carries its probes: no reopen.
        assert_eq!(lab.probes_to(Side::Backup), [(2, 1, 1)]);
        lab.run_until(30_100);
        assert_eq!(lab.probes_to(Side::Backup), [(2, 1, 1), (15_000, 1, 1), (30_000, 1, 1)], "one persistent flow");
        assert!(lab.log.iter().filter(|l| l.1.starts_with("open backup")).count() == 1);
    }
}

#[test]
fn a_connect_that_hangs_costs_one_rung_and_the_next_attempt_opens_a_new_flow() {
    let primary = Server {
        connect: Box::new(|_, id| if id == 1 { Connect::Hang } else { Connect::Accept(2) }),
        ..Server::healthy()
    };
    let mut lab = Lab::new(config(Transport::Tls, Transport::Tls), primary, Server::healthy());
    lab.run_until(2_000);
    assert_eq!(lab.flow_downs(Side::Primary), [(800, FlowError::AttemptTimedOut)]);
    assert_eq!(lab.probes_to(Side::Primary), [(802, 2, 2)]);
    assert_eq!(lab.cycle_results(Side::Primary), [(807, CycleResult::Alive)]);
    assert!(lab.switches().is_empty());
}

#[test]
fn a_refused_connect_ends_each_attempt_at_once() {
    let primary = Server { connect: Box::new(|_, _| Connect::Refuse(1)), ..Server::healthy() };
    let mut lab = Lab::new(config(Transport::Tcp, Transport::Tcp), primary, Server::healthy());
    lab.run_until(1_000);
    let opens: Vec<_> = lab.log.iter().filter(|l| l.1.starts_with("open primary")).map(|l| l.0).collect();
    assert_eq!(opens, [0, 1, 2], "each refusal opens the next attempt's flow at once");
    assert!(lab.probes_to(Side::Primary).is_empty());
    let refused = lab.count_refused(Side::Primary);
    assert_eq!(refused, [(1, 1), (2, 2), (3, 3)]);
    assert_eq!(lab.cycle_results(Side::Primary), [(3, CycleResult::Failed(DownReason::Flow(FlowError::Refused)))]);
    // The backup answered at 7 ms (connected at 2, reply 5 ms later): the failover comes then.
    assert_eq!(lab.switches(), [(7, Side::Backup, "failover")]);
}

impl Lab {
    fn count_refused(&self, side: Side) -> Vec<(u64, u8)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::AttemptRefused { server, attempt } if *server == side => Some((*t, *attempt)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_hung_flow_is_replaced_at_the_next_attempt() {
    // The first flow answers the first cycle, then goes silent without closing; new flows answer.
    let primary = Server {
        answer: Box::new(|ms, id, _| if id == 1 && ms >= 15_000 { Answer::Silent } else { Answer::Reply(200, 5) }),
        ..Server::healthy()
    };
    let mut lab = Lab::new(config(Transport::Tcp, Transport::Tcp), primary, Server::healthy());
    lab.run_until(16_000);
    assert_eq!(lab.probes_to(Side::Primary), [(2, 1, 1), (15_000, 1, 1), (15_802, 2, 2)]);
    assert_eq!(lab.flow_downs(Side::Primary), [(15_800, FlowError::AttemptTimedOut)]);
    assert_eq!(lab.cycle_results(Side::Primary), [(7, CycleResult::Alive), (15_807, CycleResult::Alive)]);
    assert!(lab.switches().is_empty());
}

#[test]
fn a_certificate_that_does_not_verify_is_never_an_answer() {
    for e in [TlsError::UnknownIssuer, TlsError::Expired, TlsError::NameMismatch, TlsError::WildcardRefused] {
        let primary = Server { connect: Box::new(move |_, _| Connect::Tls(e, 3)), ..Server::healthy() };
        let mut lab = Lab::new(config(Transport::Tls, Transport::Tls), primary, Server::healthy());
        // A datagram forged to look like the primary's reply, from its address, counts for nothing.
        let forged = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 0.0.0.0:5060;branch=z9hG4bKx\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        lab.agent.handle_datagram(Instant::from_millis(1), PRIMARY.parse().unwrap(), forged.as_bytes());
        lab.run_until(2_000);
        assert_eq!(lab.replies_from(Side::Primary), 0, "{e:?}");
        assert!(lab.probes_to(Side::Primary).is_empty(), "no probe is written on an unverified flow");
        assert_eq!(lab.cycle_results(Side::Primary), [(9, CycleResult::Failed(DownReason::Flow(FlowError::Tls(e))))]);
        assert_eq!(lab.switches(), [(9, Side::Backup, "failover")], "{e:?}");
    }
}

#[test]
fn without_an_answering_backup_a_bad_certificate_moves_nothing() {
    let primary = Server { connect: Box::new(|_, _| Connect::Tls(TlsError::NameMismatch, 3)), ..Server::healthy() };
    let backup = Server { connect: Box::new(|_, _| Connect::Refuse(1)), ..Server::healthy() };
    let mut lab = Lab::new(config(Transport::Tls, Transport::Tcp), primary, backup);
    lab.run_until(20_000);
    assert!(lab.switches().is_empty());
    assert!(lab.events.iter().any(|(t, e)| *t == 9 && *e == Event::NoServerReachable));
}

#[test]
fn a_peer_that_closes_under_a_probe_ends_the_attempt_at_once() {
    let primary = Server {
        answer: Box::new(|_, id, _| if id == 1 { Answer::Close(10) } else { Answer::Reply(200, 5) }),
        ..Server::healthy()
    };
    let mut lab = Lab::new(config(Transport::Tcp, Transport::Tcp), primary, Server::healthy());
    lab.run_until(1_000);
    assert_eq!(lab.flow_downs(Side::Primary), [(12, FlowError::Closed)]);
    assert_eq!(lab.count_refused(Side::Primary), [(12, 1)]);
    assert_eq!(lab.probes_to(Side::Primary), [(2, 1, 1), (14, 2, 2)]);
    assert_eq!(lab.cycle_results(Side::Primary), [(19, CycleResult::Alive)]);
}

#[test]
fn garbage_on_the_stream_closes_the_flow_and_a_trickling_peer_cannot_hold_the_ladder() {
    let primary = Server { answer: Box::new(|_, _, _| Answer::Garbage(4)), ..Server::healthy() };
    let mut lab = Lab::new(config(Transport::Tcp, Transport::Tcp), primary, Server::healthy());
    lab.run_until(1_000);
    assert_eq!(
        lab.flow_downs(Side::Primary),
        [(6, FlowError::Framing), (12, FlowError::Framing), (18, FlowError::Framing)]
    );
    assert_eq!(lab.cycle_results(Side::Primary), [(18, CycleResult::Failed(DownReason::Flow(FlowError::Framing)))]);

    // One byte every 5 ms: a response of over 300 bytes takes longer than any rung.
    let primary = Server { answer: Box::new(|_, _, _| Answer::Trickle(200, 1, 5)), ..Server::healthy() };
    let mut lab = Lab::new(config(Transport::Tls, Transport::Tls), primary, Server::healthy());
    lab.run_until(2_000);
    assert_eq!(
        lab.flow_downs(Side::Primary),
        [(800, FlowError::AttemptTimedOut), (1200, FlowError::AttemptTimedOut), (1600, FlowError::AttemptTimedOut)]
    );
    assert_eq!(lab.switches(), [(1600, Side::Backup, "failover")]);
}

#[test]
fn a_response_split_at_every_byte_is_framed_and_counted() {
    // One byte per millisecond, starting 1 ms after the probe at 2 ms: the response is shorter than
    // 790 bytes, so it completes inside the first rung, at 2 + 1 + (length - 1) ms.
    let primary = Server { answer: Box::new(|_, _, _| Answer::Trickle(200, 1, 1)), ..Server::healthy() };
    let mut lab = Lab::new(config(Transport::Tcp, Transport::Tcp), primary, Server::healthy());
    lab.run_until(1_000);
    let sent = lab.probes_to(Side::Primary);
    assert_eq!(sent, [(2, 1, 1)]);
    assert_eq!(lab.replies_from(Side::Primary), 1);
    let alive = lab.cycle_results(Side::Primary);
    assert_eq!(alive.len(), 1);
    assert!(alive[0].0 > 200 && alive[0].0 < 800, "{alive:?}");
    assert!(lab.flow_downs(Side::Primary).is_empty());
}

#[test]
fn keep_alive_pings_idle_flows_and_a_missing_pong_closes_the_flow_and_probes_at_once() {
    let mut config = config(Transport::Tls, Transport::Tls);
    config.interval = Duration::from_secs(120);
    config.flow_keepalive = Duration::from_secs(20);
    // The primary's server answers the first two pings, then stops answering them.
    let mut pongs = 0;
    let primary = Server {
        pong: Box::new(move |_| {
            pongs += 1;
            pongs <= 2
        }),
        ..Server::healthy()
    };
    let mut lab = Lab::new(config, primary, Server::healthy());
    lab.run_until(100_000);
    let pings: Vec<u64> = lab.pings.iter().filter(|p| p.1 == Side::Primary).map(|p| p.0).collect();
    assert!(pings.len() >= 3, "{pings:?}");
    // The first ping 80-100 % of 20 s after the reply at 7 ms; each next one 80-100 % of 20 s after the
    // pong (1 ms after its ping).
    assert!((7 + 16_000..=7 + 20_000).contains(&pings[0]), "{pings:?}");
    for w in pings.windows(2).take(2) {
        assert!((w[0] + 1 + 16_000..=w[0] + 1 + 20_000).contains(&w[1]), "{pings:?}");
    }
    // The third ping's pong never comes: 10 s later the flow is closed and a cycle starts at once.
    let lost = pings[2] + 10_000;
    assert_eq!(lab.flow_downs(Side::Primary)[0], (lost, FlowError::KeepAliveLost));
    assert!(lab.log.contains(&(lost, "close primary flow 1: keepalive_lost".into())));
    assert!(lab.log.contains(&(lost, "open primary flow 2".into())), "{:?}", lab.log);
    assert_eq!(lab.probes_to(Side::Primary)[1], (lost + 2, 1, 2));
    assert_eq!(lab.probes_to(Side::Backup)[1].0, lost, "the cycle probes both servers");
    // No ping while flows are busy, none over UDP.
    let mut udp = sip_failover::core::Config::new("127.0.0.1:5060".parse().unwrap(), "a");
    udp.flow_keepalive = Duration::from_secs(5);
    let mut agent = Agent::new(udp, Instant::ZERO, 1).unwrap();
    assert_eq!(agent.poll_flow(), None);
}

#[test]
fn reports_about_a_flow_the_agent_gave_up_on_change_nothing() {
    let primary = Server {
        connect: Box::new(|_, id| if id == 1 { Connect::Hang } else { Connect::Accept(2) }),
        ..Server::healthy()
    };
    let mut lab = Lab::new(config(Transport::Tcp, Transport::Tcp), primary, Server::healthy());
    lab.run_until(801);
    // Flow 1 was closed at 800; flow 2 is opening. A late report on flow 1 is ignored.
    let before = lab.events.len();
    lab.agent.handle_flow(Instant::from_millis(801), Side::Primary, 1, FlowEvent::Connected);
    lab.agent.handle_flow(Instant::from_millis(801), Side::Primary, 1, FlowEvent::Failed(FlowError::Refused));
    lab.drain();
    assert_eq!(lab.events.len(), before);
    lab.run_until(1_000);
    assert_eq!(lab.probes_to(Side::Primary), [(802, 2, 2)]);
    assert_eq!(lab.cycle_results(Side::Primary), [(807, CycleResult::Alive)]);
}

#[test]
fn a_mixed_pair_probes_udp_by_datagram_and_tls_by_flow() {
    let mut c = config(Transport::Tls, Transport::Udp);
    c.backup.as_mut().unwrap().next_hop = "127.0.0.2:5060".parse().unwrap();
    let mut agent = Agent::new(c, Instant::ZERO, 3).unwrap();
    let open = agent.poll_flow();
    assert!(
        matches!(open, Some(FlowCommand::Open { server: Side::Primary, id: 1, transport: Transport::Tls, .. })),
        "{open:?}"
    );
    assert_eq!(agent.poll_flow(), None);
    let mut buf = [0u8; 1500];
    let t = agent.poll_transmit(Instant::ZERO, &mut buf).unwrap().unwrap();
    assert_eq!((t.server, t.transport), (Side::Backup, Transport::Udp));
    assert!(buf.starts_with(b"OPTIONS sip:pbx-b.example:5061 SIP/2.0\r\nVia: SIP/2.0/UDP "));
    assert_eq!(agent.poll_transmit(Instant::ZERO, &mut buf).unwrap(), None, "nothing for the primary until connected");
    agent.handle_flow(Instant::from_millis(4), Side::Primary, 1, FlowEvent::Connected);
    let t = agent.poll_transmit(Instant::from_millis(4), &mut buf).unwrap().unwrap();
    assert_eq!((t.server, t.transport, t.attempt), (Side::Primary, Transport::Tls, 1));
    assert!(buf.starts_with(b"OPTIONS sips:pbx-a.example:5061 SIP/2.0\r\nVia: SIP/2.0/TLS "));
}

#[test]
fn keep_alive_turned_on_live_starts_on_the_open_flows_at_the_new_interval() {
    let mut lab = Lab::new(config(Transport::Tcp, Transport::Tcp), Server::healthy(), Server::healthy());
    lab.run_until(500);
    let mut c = *lab.agent.config();
    c.flow_keepalive = Duration::from_secs(30);
    lab.agent.update_config(Instant::from_millis(500), c).unwrap();
    // The next wake-up is the next cycle or the first ping, 24 to 30 s from the update; never the past.
    let next = lab.agent.poll_timeout().unwrap().as_millis();
    assert!(next > 500, "{next}");
    let mut c = *lab.agent.config();
    c.interval = Duration::from_secs(60);
    lab.agent.update_config(Instant::from_millis(500), c).unwrap();
    let next = lab.agent.poll_timeout().unwrap().as_millis();
    assert!((500 + 24_000..=500 + 30_000).contains(&next), "{next}");
    lab.run_until(40_000);
    let first_ping = lab.pings.iter().find(|p| p.1 == Side::Primary).map(|p| p.0);
    assert_eq!(first_ping, Some(next));
}
