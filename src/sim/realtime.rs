//! One phone against the pair on real timers: a thin tokio loop around the core [`Agent`], with one
//! connected UDP socket per UDP server (so an ICMP port-unreachable comes back as `ECONNREFUSED`)
//! and the flows the agent asks for to a TCP or TLS server ([`PhoneFlows`]). Switches are applied at
//! once. The scenario's phone steps reach the agent at their time (`Command::InCall`); its notices are
//! published on the lab's status page ([`LabPage`]), which the phone polls every second with the
//! agent's own poller ([`PageWatch`]), handing the windows of what it finds to the agent.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration as StdDuration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant as TInstant;

use super::scenario::{PlannedSpan, Scenario};
use super::statuspage::{LabPage, PageWatch, Published};
use super::streams::{FlowReport, PhoneFlows};
use super::summary::Tracker;
use super::timeline::{Record, Timeline, What};
use super::udp::{at, bind_udp, since, sleep_until_precise, spawn_pair_thread, PairNote, UdpPair};
use super::{phone_config, Live, RunOutput, SimError};
use crate::core::drive::{self, Ack, Io, Sent};
use crate::core::{Agent, Command, Event, FlowCommand, Instant, Side, Transmit};

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// Runs `scenario` in real time with one phone; `live` sees every record and a tick every 100 ms.
/// The pair runs on a second thread.
pub fn run(scenario: &Scenario, seed: u64, live: &mut dyn FnMut(Live<'_>)) -> Result<RunOutput, SimError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run_async(scenario, seed, live))
}

fn refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionRefused
}

async fn run_async(scenario: &Scenario, seed: u64, live: &mut dyn FnMut(Live<'_>)) -> Result<RunOutput, SimError> {
    let transports = scenario.phone.transports;
    let pair = UdpPair::bind_over(LOOPBACK, LOOPBACK, transports, &scenario.expanded(), seed, None)?;
    let addrs = pair.local_addrs();
    let socks = [bind_udp(LOOPBACK)?, bind_udp(LOOPBACK)?];
    for (s, a) in socks.iter().zip(addrs) {
        s.connect(a).await?;
        // tokio's try_send fails with WouldBlock until the reactor has seen the socket writable once.
        s.writable().await?;
    }
    let (flow_tx, mut flow_rx) = mpsc::unbounded_channel::<FlowReport>();
    let mut flows = PhoneFlows::new(0, pair.pki().map(|p| p.client_config()), flow_tx);
    let mut agent = Agent::new(phone_config(&scenario.phone, addrs[0], addrs[1], 0), Instant::ZERO, seed)
        .map_err(SimError::Config)?;
    super::plan_windows(&mut agent, scenario, Instant::ZERO, Instant::ZERO, &[]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let origin = TInstant::now();
    let pair_thread = spawn_pair_thread(pair, origin, Some(tx), stop_rx)?;
    let (pub_tx, mut pub_rx) = mpsc::unbounded_channel::<Published>();
    let page = if scenario.notices.is_empty() { None } else { Some(LabPage::spawn(scenario, origin, pub_tx)?) };
    let mut watch = page.as_ref().map(|p| PageWatch::new(p.url()?, scenario.starts_at)).transpose()?;
    let mut next_call = 0;
    for side in Side::BOTH.into_iter().filter(|s| !transports[s.index()].is_stream()) {
        let addr = socks[side.index()].local_addr()?;
        let _ = agent.handle_command(Instant::ZERO, Command::LocalAddr { side, addr });
    }
    let mut st = State {
        tracker: Tracker::new(1, scenario.phone.ladder.total())
            .with_stream_sides(scenario.phone.transports.map(|t| t.is_stream())),
        timeline: Timeline::new(&scenario.name, scenario.duration),
    };
    let end = Instant::ZERO + scenario.duration;
    let mut tick = tokio::time::interval(StdDuration::from_millis(100));
    let (mut b0, mut b1) = (vec![0u8; 65536], vec![0u8; 65536]);
    // Bounded: the loop ends at the scenario's end; each pass handles one input.
    loop {
        let now = since(origin);
        while let Some(c) = scenario.calls.get(next_call).filter(|c| Instant::ZERO + c.at <= now) {
            next_call += 1;
            st.push(now, What::Call(c.in_call), live);
            // Cannot fail: InCall is always accepted.
            let _ = agent.handle_command(now, Command::InCall(c.in_call));
        }
        drain(&mut agent, now, &socks, &mut flows, &mut st, live);
        if now >= end {
            break;
        }
        let call_at = scenario.calls.get(next_call).map(|c| Instant::ZERO + c.at);
        let wake = [agent.poll_timeout(), call_at].into_iter().flatten().fold(end, Instant::min);
        let poll_due = watch.as_ref().and_then(PageWatch::due);
        tokio::select! {
            _ = tokio::time::sleep_until(poll_due.unwrap_or_else(TInstant::now)), if poll_due.is_some() => {
                if let Some(w) = watch.as_mut() {
                    w.start();
                }
            }
            Some(fetch) = async { watch.as_mut()?.fetched().await }, if watch.is_some() => {
                // A notice published before the page answered is recorded first.
                while let Ok(p) = pub_rx.try_recv() {
                    published(scenario, p, &mut st, live);
                }
                let now = since(origin);
                if let Some(w) = watch.as_mut() {
                    match w.finish(fetch, now) {
                        Ok(Some(spans)) => take_windows(&mut agent, scenario, now, &spans, &mut st, live),
                        Ok(None) => {}
                        Err(e) => st.push(now, What::PageError(e), live),
                    }
                }
            }
            Some(p) = pub_rx.recv() => published(scenario, p, &mut st, live),
            r = socks[0].recv(&mut b0) => input(&mut agent, since(origin), addrs[0], Side::Primary, r.map(|n| &b0[..n])),
            r = socks[1].recv(&mut b1) => input(&mut agent, since(origin), addrs[1], Side::Backup, r.map(|n| &b1[..n])),
            Some((_, side, id, report)) = flow_rx.recv() => flows.input(&mut agent, since(origin), side, id, report),
            Some(note) = rx.recv() => {
                if let PairNote::Fault(f) = note {
                    st.tracker.on_fault(&f);
                    st.push(f.at, What::Fault(f), live);
                }
            }
            _ = sleep_until_precise(at(origin, wake)) => agent.handle_timeout(since(origin)),
            _ = tick.tick() => live(Live::Tick(since(origin))),
        }
    }
    drop(flows);
    if let Some(p) = page {
        p.stop()?;
    }
    let _ = stop_tx.send(true);
    let pair_stats = pair_thread.join().map_err(|_| SimError::Internal("the pair thread failed"))??;
    Ok(RunOutput::of_phones(st.timeline, st.tracker.finished(), pair_stats, end))
}

struct State {
    tracker: Tracker,
    timeline: Timeline,
}

impl State {
    fn push(&mut self, t: Instant, what: What, live: &mut dyn FnMut(Live<'_>)) {
        let r = Record { t, what };
        live(Live::Record(&r));
        self.timeline.records.push(r);
    }
}

/// Records the publication of notice `i` at `at`.
fn published(scenario: &Scenario, (i, at): Published, st: &mut State, live: &mut dyn FnMut(Live<'_>)) {
    if let Some(n) = scenario.notices.get(i) {
        let what = What::NoticePublished {
            id: n.id.clone(),
            server: n.side,
            start: Instant::ZERO + n.start,
            end: Instant::ZERO + n.end,
        };
        st.push(at, what, live);
    }
}

/// Hands the agent the scenario's windows and `spans` (from the notices its poll found).
fn take_windows(
    agent: &mut Agent,
    scenario: &Scenario,
    now: Instant,
    spans: &[PlannedSpan],
    st: &mut State,
    live: &mut dyn FnMut(Live<'_>),
) {
    let handed = super::plan_windows(agent, scenario, Instant::ZERO, now, spans);
    st.push(now, What::Windows(handed), live);
}

fn input(agent: &mut Agent, now: Instant, from: SocketAddr, side: Side, r: io::Result<&[u8]>) {
    match r {
        Ok(bytes) => agent.handle_datagram(now, from, bytes),
        Err(e) if refused(&e) => agent.handle_refused(now, side),
        Err(_) => {}
    }
}

fn drain(
    agent: &mut Agent,
    now: Instant,
    socks: &[UdpSocket; 2],
    flows: &mut PhoneFlows,
    st: &mut State,
    live: &mut dyn FnMut(Live<'_>),
) {
    struct Out<'a> {
        socks: &'a [UdpSocket; 2],
        flows: &'a mut PhoneFlows,
        st: &'a mut State,
        live: &'a mut dyn FnMut(Live<'_>),
    }
    impl Io for Out<'_> {
        fn flow(&mut self, now: Instant, cmd: &FlowCommand) {
            if let FlowCommand::Open { server, id, transport, .. } = *cmd {
                self.st.tracker.on_flow_open(0, now, server);
                self.st.push(now, What::FlowOpen { server, id, transport }, self.live);
            }
            self.flows.command(cmd);
        }
        fn transmit(&mut self, _: Instant, t: &Transmit, bytes: &[u8]) -> Sent {
            if t.transport.is_stream() {
                self.flows.write(t.server, bytes);
                return Sent::Sent;
            }
            match self.socks[t.server.index()].try_send(bytes) {
                Err(e) if refused(&e) => Sent::Refused,
                _ => Sent::Sent,
            }
        }
        fn event(&mut self, now: Instant, e: &Event) -> Ack {
            self.st.tracker.on_event(0, now, e);
            (self.live)(Live::Event { phone: 0, t: now, event: e });
            self.st.push(now, What::Agent(*e), self.live);
            if matches!(e, Event::Switch { .. }) {
                Ack::Applied
            } else {
                Ack::None
            }
        }
    }
    drive::drain(agent, now, &mut [0u8; 1500], &mut Out { socks, flows, st, live });
}
