//! CPU per probe over each transport, side by side: one agent probes a loopback server over UDP, over
//! one persistent TCP flow and over one persistent TLS flow (TLS 1.3, rustls with `ring`, the lab's
//! CA), a cycle per round trip on a virtual clock. What is measured is the CPU time of the phone's
//! thread (`/proc/thread-self/schedstat`, so time spent waiting for the server is not counted) for
//! encoding the probe, sending it (and encrypting it), receiving and decrypting the reply, framing it
//! and matching it; divided by the probes. The server runs on its own thread and is not counted.
//!
//! `cargo bench --bench probe_transport` (about 10 s); `PROBES=N` changes the count (default 20 000
//! per transport). Figures depend on the machine, not on its load, as long as the phone's thread gets
//! a core.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;

use sip_failover::core::flow::{frame, Frame};
use sip_failover::core::{Agent, Config, Duration, Event, FlowCommand, FlowEvent, Instant, Side, Transport};
use sip_failover::sim::certs::{Authority, Leaf};
use sip_failover::sim::model::{respond, HeaderForm};
use tokio_rustls::rustls;

const NAME: &str = "pbx-a.lab.example";

/// Nanoseconds this thread has run on a CPU.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A loopback server answering every OPTIONS 200, over the given transport; returns its address.
fn serve(transport: Transport, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    let answer = |req: &[u8]| respond(req, 200, None, HeaderForm::Normal, "srv").expect("a request");
    match transport {
        Transport::Udp => {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = sock.local_addr().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&answer(&buf[..n]), from);
                }
            });
            addr
        }
        Transport::Tcp | Transport::Tls => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            std::thread::spawn(move || {
                let Ok((tcp, _)) = listener.accept() else { return };
                tcp.set_nodelay(true).unwrap();
                let mut stream: Box<dyn ReadWrite> = match tls {
                    Some(cfg) => Box::new(rustls::StreamOwned::new(rustls::ServerConnection::new(cfg).unwrap(), tcp)),
                    None => Box::new(tcp),
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Ok(Some(Frame::Message(len))) = frame(&buf) {
                        let msg: Vec<u8> = buf.drain(..len).collect();
                        if stream.write_all(&answer(&msg)).and_then(|_| stream.flush()).is_err() {
                            return;
                        }
                    }
                }
            });
            addr
        }
    }
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// Runs `probes` cycles over `transport`; the phone thread's CPU time per probe in µs.
fn measure(transport: Transport, probes: u32, ca: &Authority) -> f64 {
    let identity = ca.issue(Leaf::Good(NAME)).unwrap();
    let server_tls = (transport == Transport::Tls).then(|| identity.server_config().unwrap());
    let addr = serve(transport, server_tls);
    let mut config = Config::new(addr, NAME);
    config.primary.transport = transport;
    config.interval = Duration::from_secs(2);
    let mut agent = Agent::new(config, Instant::ZERO, 1).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject;
        roots.add(rustls::pki_types::CertificateDer::from_pem_slice(ca.ca_pem().as_bytes()).unwrap()).unwrap();
    }
    let client_tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.connect(addr).unwrap();
    let mut stream: Option<Box<dyn ReadWrite>> = None;
    let mut rx = Vec::new();
    let mut buf = [0u8; 1500];
    let mut chunk = [0u8; 4096];
    let mut now = Instant::ZERO;
    let mut replies = 0u32;
    let mut cpu_start = None;
    for cycle in 0..=probes {
        // The first cycle opens the flow (connect and handshake): not counted.
        if cycle == 1 {
            cpu_start = thread_cpu_ns();
        }
        while let Some(cmd) = agent.poll_flow() {
            if let FlowCommand::Open { id, destination, .. } = cmd {
                let tcp = TcpStream::connect(destination).unwrap();
                tcp.set_nodelay(true).unwrap();
                stream = Some(match transport {
                    Transport::Tls => {
                        let name = rustls::pki_types::ServerName::try_from(NAME).unwrap();
                        let mut s = rustls::StreamOwned::new(
                            rustls::ClientConnection::new(client_tls.clone(), name).unwrap(),
                            tcp,
                        );
                        while s.conn.is_handshaking() {
                            s.conn.complete_io(&mut s.sock).unwrap();
                        }
                        Box::new(s)
                    }
                    _ => Box::new(tcp),
                });
                agent.handle_flow(now, Side::Primary, id, FlowEvent::Connected);
            }
        }
        let t = agent.poll_transmit(now, &mut buf).unwrap().expect("a probe each cycle");
        let bytes = &buf[..t.len];
        match (&mut stream, transport) {
            (None, Transport::Udp) => {
                udp.send(bytes).unwrap();
                let n = udp.recv(&mut chunk).unwrap();
                agent.handle_datagram(now, addr, &chunk[..n]);
            }
            (Some(s), _) => {
                s.write_all(bytes).unwrap();
                s.flush().unwrap();
                'read: loop {
                    let n = s.read(&mut chunk).unwrap();
                    rx.extend_from_slice(&chunk[..n]);
                    while let Ok(Some(f)) = frame(&rx) {
                        let unit: Vec<u8> = rx.drain(..f.len()).collect();
                        if let Frame::Message(_) = f {
                            agent.handle_message(now, Side::Primary, &unit);
                            break 'read;
                        }
                    }
                }
            }
            _ => panic!("no flow for a stream transport"),
        }
        while let Some(e) = agent.poll_event() {
            if matches!(e, Event::Reply { status: 200, .. }) {
                replies += 1;
            }
        }
        now = now.saturating_add(Duration::from_secs(2));
        agent.handle_timeout(now);
    }
    let cpu = thread_cpu_ns().zip(cpu_start).map(|(b, a)| b - a).expect("/proc/thread-self/schedstat");
    assert_eq!(replies, probes + 1, "every probe answered and matched");
    cpu as f64 / 1000.0 / f64::from(probes)
}

fn main() {
    if !common::should_run(env!("CARGO_CRATE_NAME")) {
        return;
    }
    if thread_cpu_ns().is_none() {
        println!("probe_transport: SKIPPED: /proc/thread-self/schedstat is not readable (not Linux?)");
        return;
    }
    let probes: u32 = std::env::var("PROBES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let ca = Authority::new("bench CA").unwrap();
    let udp = measure(Transport::Udp, probes, &ca);
    let tcp = measure(Transport::Tcp, probes, &ca);
    let tls = measure(Transport::Tls, probes, &ca);
    println!("probe_transport: {probes} probes each, CPU time of the phone's thread per probe (round trip):");
    println!("  udp  {udp:7.2} µs");
    println!("  tcp  {tcp:7.2} µs  ({:.2}x udp)", tcp / udp);
    println!("  tls  {tls:7.2} µs  ({:.2}x udp, persistent flow, TLS 1.3)", tls / udp);
}
