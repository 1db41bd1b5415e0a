//! `sip-failover run` over TCP and TLS on loopback, against responders written here: a std TCP
//! listener, with a rustls server (certificates from the lab's private CA, `sim::certs`, given to the
//! agent as `--tls-ca-file`) for TLS. The tests wait for the agent's JSON events and check what
//! happened and in which order; the ladder's exact times over streams are asserted on the virtual
//! clock in `stream_flows.rs`.
//!
//! What is checked: probes travel with `Via: SIP/2.0/TCP` and `SIP/2.0/TLS` on one connection per
//! server reused by every cycle; a server that resets connections, or whose certificate does not
//! verify (expired, another name, only a wildcard, an unknown CA), is never counted alive and the
//! phone fails over; `tls_allow_wildcard` accepts the wildcard; a server that accepts and then never
//! answers costs one connection per attempt (three per failed cycle) and the switch comes after the
//! ladder; with mutual TLS the phone presents its certificate, and without one the server is never
//! counted alive; idle flows are pinged (RFC 5626 CRLF) and a server that never answers a ping loses
//! its flow 10 s later, followed by a probe cycle at once.

mod interop_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use interop_common::*;
use serde_json::Value;
use sip_failover::core::frame;
use sip_failover::core::Frame;
use sip_failover::sim::certs::{Authority, Identity, Leaf};
use tokio_rustls::rustls;

/// What a stream responder does on each connection.
#[derive(Clone)]
enum StreamMode {
    /// Answer every OPTIONS with this status (and every CRLF ping with a pong).
    Answer(u16),
    /// Answer every OPTIONS with this status, never a keep-alive ping.
    AnswerNoPong(u16),
    /// Read requests and never answer.
    Hang,
    /// Reset the connection at once (SO_LINGER 0).
    Reset,
}

/// What a responder records for a keep-alive ping among the requests.
const PING: &str = "PING";

/// The requests a responder received: (connection index, request text, or `PING`).
type Requests = Arc<(Mutex<Vec<(usize, String)>>, Condvar)>;

/// A SIP server on a loopback TCP port, with TLS when given a server configuration.
struct StreamResponder {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    pings: Arc<AtomicUsize>,
    requests: Requests,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StreamResponder {
    fn start(mode: StreamMode, tls: Option<Arc<rustls::ServerConfig>>) -> StreamResponder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let pings = Arc::new(AtomicUsize::new(0));
        let requests: Requests = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, r, s, pg) = (accepts.clone(), requests.clone(), stop.clone(), pings.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let index = a.fetch_add(1, Ordering::SeqCst);
                let (mode, tls, r, pg) = (mode.clone(), tls.clone(), r.clone(), pg.clone());
                std::thread::spawn(move || serve(conn, index, mode, tls, r, pg));
            }
        });
        StreamResponder { addr, accepts, pings, requests, stop, thread: Some(thread) }
    }

    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<(usize, String)> {
        self.requests.0.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` requests have arrived.
    fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<(usize, String)> {
        self.wait_until(timeout, |got| got.len() >= n)
    }

    /// Waits (bounded) until `n` keep-alive pings have arrived.
    fn wait_pings(&self, n: usize, timeout: Duration) {
        self.wait_until(timeout, |got| got.iter().filter(|(_, r)| r == PING).count() >= n);
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&[(usize, String)]) -> bool) -> Vec<(usize, String)> {
        let (lock, cv) = &*self.requests;
        let deadline = Instant::now() + timeout;
        let mut got = lock.lock().unwrap();
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "not yet after {timeout:?}: {got:#?}");
            got = cv.wait_timeout(got, left).unwrap().0;
        }
        got.clone()
    }
}

impl Drop for StreamResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection: TLS if configured, then requests framed by Content-Length, answered per `mode`.
fn serve(
    conn: TcpStream,
    index: usize,
    mode: StreamMode,
    tls: Option<Arc<rustls::ServerConfig>>,
    r: Requests,
    pings: Arc<AtomicUsize>,
) {
    if let StreamMode::Reset = mode {
        let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
        return;
    }
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut stream: Box<dyn ReadWrite> = match tls {
        None => Box::new(conn),
        Some(cfg) => {
            let Ok(session) = rustls::ServerConnection::new(cfg) else { return };
            Box::new(rustls::StreamOwned::new(session, conn))
        }
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(unit)) = frame(&buf) {
            let bytes: Vec<u8> = buf.drain(..unit.len()).collect();
            match unit {
                // A ping (CRLF CRLF) reads as two CRLF units: count the ping once, answer once.
                Frame::Pong(_) if buf.starts_with(b"\r\n") => {
                    pings.fetch_add(1, Ordering::SeqCst);
                    let (lock, cv) = &*r;
                    lock.lock().unwrap().push((index, PING.into()));
                    cv.notify_all();
                    if let StreamMode::Answer(_) = mode {
                        let _ = stream.write_all(b"\r\n");
                        let _ = stream.flush();
                    }
                }
                Frame::Pong(_) => {}
                Frame::Message(_) => {
                    let req = String::from_utf8_lossy(&bytes).into_owned();
                    {
                        let (lock, cv) = &*r;
                        lock.lock().unwrap().push((index, req.clone()));
                        cv.notify_all();
                    }
                    if let StreamMode::Answer(code) | StreamMode::AnswerNoPong(code) = mode {
                        let _ = stream.write_all(sip_response(&req, code).as_bytes());
                        let _ = stream.flush();
                    }
                }
            }
        }
    }
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// The CA, its PEM file in `dir`, and server configurations for leaves of it.
struct Pki {
    ca: Authority,
    ca_file: String,
}

impl Pki {
    fn new(dir: &TempDir) -> Pki {
        let ca = Authority::new("sip-failover test CA").unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca.ca_pem()).unwrap();
        Pki { ca, ca_file: path.to_string_lossy().into_owned() }
    }
    fn server(&self, leaf: Leaf<'_>) -> Arc<rustls::ServerConfig> {
        self.ca.issue(leaf).unwrap().server_config().unwrap()
    }
}

fn issued_elsewhere(leaf: Leaf<'_>) -> Identity {
    Authority::new("a CA the phone does not know").unwrap().issue(leaf).unwrap()
}

fn start_agent(dir: &TempDir, primary: &str, backup: &str, extra: &[&str]) -> AgentProc {
    start_agent_every(dir, primary, backup, "2", extra)
}

/// As [`start_agent`], with a cycle every `interval` seconds.
fn start_agent_every(dir: &TempDir, primary: &str, backup: &str, interval: &str, extra: &[&str]) -> AgentProc {
    let mut args: Vec<String> =
        ["--primary", primary, "--backup", backup, "--interval", interval].iter().map(|s| s.to_string()).collect();
    args.extend(hosts_args(dir, &["pbx-a.lab.example", "pbx-b.lab.example"]));
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    AgentProc::start(&a, dir.path())
}

fn tcp_uri(addr: SocketAddr) -> String {
    format!("sip:{addr};transport=tcp")
}

fn tls_uri(name: &str, addr: SocketAddr) -> String {
    format!("sips:{name}:{}", addr.port())
}

#[test]
fn a_tcp_primary_and_a_tls_backup_are_probed_over_one_connection_each() {
    let dir = TempDir::new("streams-ok");
    let pki = Pki::new(&dir);
    let p = StreamResponder::start(StreamMode::Answer(200), None);
    let b = StreamResponder::start(StreamMode::Answer(200), Some(pki.server(Leaf::Good("pbx-b.lab.example"))));
    let mut agent =
        start_agent(&dir, &tcp_uri(p.addr), &tls_uri("pbx-b.lab.example", b.addr), &["--tls-ca-file", &pki.ca_file]);
    let started = agent.wait_for(Duration::from_secs(5), "started", |e| e["event"] == "started");
    assert_eq!(started["primary"]["transport"], "tcp");
    assert_eq!(started["backup"]["transport"], "tls");
    // Three cycles answered by each server.
    agent.wait_nth(Duration::from_secs(10), "reply", 3, |e| e["server"] == "primary");
    agent.wait_nth(Duration::from_secs(4), "reply", 3, |e| e["server"] == "backup");
    for r in agent.named("reply") {
        assert_eq!((r["status"].as_u64(), r["attempt"].as_u64()), (Some(200), Some(1)), "{r}");
    }
    // One flow each, opened once, never closed: the responders accepted one connection each.
    let opens = agent.named("flow_open");
    assert_eq!(opens.len(), 2, "{opens:#?}");
    let open = |s: &str| opens.iter().find(|e| e["server"] == s).unwrap().clone();
    assert_eq!(
        (open("primary")["transport"].as_str(), open("primary")["destination"].as_str()),
        (Some("tcp"), Some(&*p.addr.to_string()))
    );
    assert_eq!(open("backup")["transport"], "tls");
    assert_eq!(open("backup")["tls_name"], "pbx-b.lab.example");
    assert_eq!(agent.named("flow_up").len(), 2);
    assert!(agent.named("flow_down").is_empty(), "{}", agent.dump());
    let (pr, br) = (p.wait_requests(3, Duration::from_secs(2)), b.wait_requests(3, Duration::from_secs(2)));
    assert_eq!((p.accepts(), b.accepts()), (1, 1));
    assert!(pr.iter().chain(&br).all(|(conn, _)| *conn == 0));
    // The transport in the Via, the Request-URI and the Contact.
    for (_, req) in &pr {
        assert!(req.starts_with(&format!("OPTIONS sip:{};transport=tcp SIP/2.0\r\n", p.addr)), "{req}");
        assert!(req.contains("\r\nVia: SIP/2.0/TCP 127.0.0.1:"), "{req}");
        assert!(req.contains(";transport=tcp>\r\n"), "Contact: {req}");
    }
    for (_, req) in &br {
        assert!(req.starts_with(&format!("OPTIONS sips:pbx-b.lab.example:{} SIP/2.0\r\n", b.addr.port())), "{req}");
        assert!(req.contains("\r\nVia: SIP/2.0/TLS 127.0.0.1:"), "{req}");
    }
    // The Via names the flow's real local port.
    let via_port =
        |req: &str| req.split("Via: SIP/2.0/TCP 127.0.0.1:").nth(1).unwrap().split(';').next().unwrap().to_string();
    assert_ne!(via_port(&pr[0].1), "0", "{}", pr[0].1);
    assert!(agent.named("switch").is_empty(), "{}", agent.dump());
}

#[test]
fn a_primary_that_resets_every_connection_is_failed_over_at_once() {
    let dir = TempDir::new("streams-reset");
    let p = StreamResponder::start(StreamMode::Reset, None);
    let b = StreamResponder::start(StreamMode::Answer(200), None);
    let mut agent = start_agent(&dir, &tcp_uri(p.addr), &tcp_uri(b.addr), &[]);
    let sw = agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    assert_eq!(
        (sw["from"].as_str(), sw["to"].as_str(), sw["reason"].as_str()),
        (Some("primary"), Some("backup"), Some("failover"))
    );
    let down = agent.wait_for(Duration::from_secs(1), "server_down", |e| e["event"] == "server_down");
    assert_eq!(down["server"], "primary");
    assert_eq!(down["reason"], "flow");
    assert!(["refused", "closed"].contains(&down["flow"].as_str().unwrap()), "{down}");
    // No wait ran out: each attempt ended when its connection was reset (`refused`), and the next
    // one opened a new connection.
    let ended: Vec<(String, u64)> = agent
        .events
        .iter()
        .take_while(|e| e["event"] != "switch")
        .filter(|e| e["server"] == "primary" && ["timeout", "refused"].contains(&e["event"].as_str().unwrap()))
        .map(|e| (e["event"].as_str().unwrap().to_string(), e["attempt"].as_u64().unwrap()))
        .collect();
    assert_eq!(ended, [("refused".to_string(), 1), ("refused".into(), 2), ("refused".into(), 3)], "{}", agent.dump());
    assert!(agent.named("reply").iter().all(|e| e["server"] == "backup"));
    let opens = agent
        .events
        .iter()
        .take_while(|e| e["event"] != "switch")
        .filter(|e| e["event"] == "flow_open" && e["server"] == "primary")
        .count();
    assert_eq!(opens, 3, "a new connection per attempt");
    let downs: Vec<Value> = agent.named("flow_down").into_iter().filter(|e| e["server"] == "primary").collect();
    assert!(
        downs.len() >= 3 && downs.iter().all(|d| ["refused", "closed"].contains(&d["reason"].as_str().unwrap())),
        "{downs:#?}"
    );
}

/// A TLS primary presenting the certificate `leaf` makes (its URI names `pbx-a.lab.example`) and a
/// TCP backup that answers: the agent must never count the primary alive, must report the TLS
/// reason on every attempt (one handshake each), and must fail over.
fn bad_certificate_fails_over(tag: &str, leaf: impl Fn(&Pki) -> Identity, reason: &str) {
    let dir = TempDir::new(tag);
    let pki = Pki::new(&dir);
    let p = StreamResponder::start(StreamMode::Answer(200), Some(leaf(&pki).server_config().unwrap()));
    let b = StreamResponder::start(StreamMode::Answer(200), None);
    let mut agent =
        start_agent(&dir, &tls_uri("pbx-a.lab.example", p.addr), &tcp_uri(b.addr), &["--tls-ca-file", &pki.ca_file]);
    let sw = agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    assert_eq!((sw["to"].as_str(), sw["reason"].as_str()), (Some("backup"), Some("failover")));
    let down = agent.wait_for(Duration::from_secs(1), "server_down", |e| e["event"] == "server_down");
    assert_eq!(
        (down["server"].as_str(), down["reason"].as_str(), down["flow"].as_str()),
        (Some("primary"), Some("flow"), Some(reason)),
        "{}",
        agent.dump()
    );
    let downs: Vec<Value> = agent.named("flow_down").into_iter().filter(|e| e["server"] == "primary").collect();
    assert_eq!(downs.len(), 3, "one handshake per attempt: {downs:#?}");
    assert!(downs.iter().all(|d| d["reason"] == reason && d["tls"] == true), "{downs:#?}");
    assert!(agent.named("flow_up").iter().all(|e| e["server"] != "primary"), "never connected: {}", agent.dump());
    assert!(agent.named("reply").iter().all(|e| e["server"] != "primary"), "0 replies trusted");
    assert!(agent.named("probe").iter().all(|e| e["server"] != "primary"), "no probe written to it");
    assert!(p.requests().is_empty(), "no SIP reached the primary: {:?}", p.requests());
}

#[test]
fn an_expired_certificate_is_refused_and_the_phone_fails_over() {
    bad_certificate_fails_over(
        "tls-expired",
        |pki| pki.ca.issue(Leaf::Expired("pbx-a.lab.example")).unwrap(),
        "expired",
    );
}

#[test]
fn a_certificate_for_another_name_is_refused_and_the_phone_fails_over() {
    bad_certificate_fails_over(
        "tls-name",
        |pki| pki.ca.issue(Leaf::Good("pbx-b.lab.example")).unwrap(),
        "name_mismatch",
    );
}

#[test]
fn a_wildcard_certificate_is_refused_and_the_phone_fails_over() {
    let wildcard = |pki: &Pki| pki.ca.issue(Leaf::Wildcard("pbx-a.lab.example")).unwrap();
    bad_certificate_fails_over("tls-wildcard", wildcard, "wildcard_refused");
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused_and_the_phone_fails_over() {
    let stranger = |_: &Pki| issued_elsewhere(Leaf::Good("pbx-a.lab.example"));
    bad_certificate_fails_over("tls-unknown-ca", stranger, "unknown_issuer");
}

#[test]
fn a_wildcard_certificate_is_accepted_when_allowed() {
    let dir = TempDir::new("tls-wildcard-ok");
    let pki = Pki::new(&dir);
    let p = StreamResponder::start(StreamMode::Answer(200), Some(pki.server(Leaf::Wildcard("pbx-a.lab.example"))));
    let b = StreamResponder::start(StreamMode::Answer(200), None);
    let mut agent = start_agent(
        &dir,
        &tls_uri("pbx-a.lab.example", p.addr),
        &tcp_uri(b.addr),
        &["--tls-ca-file", &pki.ca_file, "--tls-allow-wildcard"],
    );
    agent.wait_nth(Duration::from_secs(8), "reply", 2, |e| e["server"] == "primary" && e["status"] == 200);
    assert!(agent.named("flow_down").is_empty(), "{}", agent.dump());
    assert!(agent.named("switch").is_empty());
    assert_eq!(p.accepts(), 1);
}

#[test]
fn a_primary_that_accepts_and_never_answers_costs_one_connection_per_attempt() {
    let dir = TempDir::new("streams-hang");
    let p = StreamResponder::start(StreamMode::Hang, None);
    let b = StreamResponder::start(StreamMode::Answer(200), None);
    let mut agent = start_agent(&dir, &tcp_uri(p.addr), &tcp_uri(b.addr), &[]);
    let sw = agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    assert_eq!((sw["from"].as_str(), sw["to"].as_str()), (Some("primary"), Some("backup")));
    // The failed cycle: each attempt on a new flow; its timeout closes that flow; the switch after
    // the third.
    let ev: Vec<Value> = agent
        .events
        .iter()
        .take_while(|e| e["event"] != "switch")
        .filter(|e| e["server"] == "primary")
        .filter(|e| ["flow_up", "probe", "timeout", "flow_down"].contains(&e["event"].as_str().unwrap()))
        .cloned()
        .collect();
    let steps: Vec<String> = ev
        .iter()
        .map(|e| match e["event"].as_str().unwrap() {
            "flow_down" => format!("flow_down:{}", e["reason"].as_str().unwrap()),
            "probe" | "timeout" => format!("{}{}", e["event"].as_str().unwrap(), e["attempt"]),
            other => other.to_string(),
        })
        .collect();
    let one = |n: u32| {
        vec!["flow_up".to_string(), format!("probe{n}"), format!("timeout{n}"), "flow_down:attempt_timed_out".into()]
    };
    let want: Vec<String> = (1..=3).flat_map(one).collect();
    assert_eq!(steps, want, "{}", agent.dump());
    // A flow opened for each attempt (the next one's open is asked for as the timeout closes the
    // previous), each with a new id.
    let ids: Vec<u64> = agent
        .events
        .iter()
        .take_while(|e| e["event"] != "switch")
        .filter(|e| e["event"] == "flow_open" && e["server"] == "primary")
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3], "a new flow per attempt");
    // The primary saw three connections, each carrying exactly one attempt (CSeq counting up).
    let got = p.wait_requests(3, Duration::from_secs(2));
    let per_conn: Vec<usize> = got.iter().map(|(c, _)| *c).collect();
    assert_eq!(&per_conn[..3], &[0, 1, 2], "{got:#?}");
    let cseq = |r: &str| r.split("CSeq: ").nth(1).unwrap().split(' ').next().unwrap().parse::<u32>().unwrap();
    assert!(cseq(&got[1].1) == cseq(&got[0].1) + 1 && cseq(&got[2].1) == cseq(&got[1].1) + 1);
    assert!(p.accepts() >= 3);
}

/// A rustls server presenting `leaf` and requiring a client certificate issued by `ca`.
fn server_requiring_client_certs(ca: &Authority, leaf: Leaf<'_>) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.ca_pem().as_bytes()).unwrap()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let id = ca.issue(leaf).unwrap();
    let cert = CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert], key)
            .unwrap(),
    )
}

#[test]
fn mutual_tls_presents_the_phones_certificate_and_without_it_the_server_is_never_alive() {
    let dir = TempDir::new("streams-mtls");
    let pki = Pki::new(&dir);
    let phone = pki.ca.issue(Leaf::Good("phone-7.lab.example")).unwrap();
    let (cert, key) = (dir.join("phone.pem"), dir.join("phone.key"));
    std::fs::write(&cert, &phone.cert_pem).unwrap();
    std::fs::write(&key, &phone.key_pem).unwrap();
    let p = StreamResponder::start(
        StreamMode::Answer(200),
        Some(server_requiring_client_certs(&pki.ca, Leaf::Good("pbx-a.lab.example"))),
    );
    let b = StreamResponder::start(StreamMode::Answer(200), None);
    let primary = tls_uri("pbx-a.lab.example", p.addr);
    let with_cert = [
        "--tls-ca-file",
        &pki.ca_file,
        "--tls-client-cert",
        cert.to_str().unwrap(),
        "--tls-client-key",
        key.to_str().unwrap(),
    ];
    let mut agent = start_agent(&dir, &primary, &tcp_uri(b.addr), &with_cert);
    agent.wait_nth(Duration::from_secs(10), "reply", 2, |e| e["server"] == "primary" && e["status"] == 200);
    assert!(agent.named("switch").is_empty(), "{}", agent.dump());
    drop(agent);

    // The same server, the phone without its certificate: the server refuses the handshake, nothing
    // from it counts, and the phone moves to the backup.
    let mut agent = start_agent(&dir, &primary, &tcp_uri(b.addr), &["--tls-ca-file", &pki.ca_file]);
    let sw = agent.wait_for(Duration::from_secs(10), "switch", |e| e["event"] == "switch");
    assert_eq!((sw["to"].as_str(), sw["reason"].as_str()), (Some("backup"), Some("failover")), "{sw}");
    let down = agent.named("flow_down");
    assert!(down.iter().all(|e| e["server"] != "primary" || e["tls"] == true || e["reason"] == "closed"), "{down:#?}");
    assert!(agent.named("reply").iter().all(|e| e["server"] != "primary"), "{}", agent.dump());
}

#[test]
fn idle_flows_are_pinged_and_a_server_that_never_pongs_loses_its_flow() {
    let dir = TempDir::new("streams-keepalive");
    let p = StreamResponder::start(StreamMode::AnswerNoPong(200), None);
    let b = StreamResponder::start(StreamMode::Answer(200), None);
    let mut agent = start_agent_every(&dir, &tcp_uri(p.addr), &tcp_uri(b.addr), "30", &["--flow-keepalive", "1"]);
    // Between cycles (30 s) the flows are idle: a ping every 0.8 to 1 s; the backup answers each.
    agent.wait_nth(Duration::from_secs(5), "reply", 1, |e| e["server"] == "backup");
    b.wait_pings(3, Duration::from_secs(10));
    // The primary answers probes but never a ping: 10 s after its first ping the flow is closed, a
    // cycle starts at once on a new flow, and the primary answers it.
    let lost = agent.wait_for(Duration::from_secs(15), "keep-alive lost", |e| {
        e["event"] == "flow_down" && e["server"] == "primary" && e["reason"] == "keepalive_lost"
    });
    // The driver opens the new flow before it prints the core's events of the same step, so the
    // `flow_open` may come first: it is found by its id, not by its time.
    let reopened = agent.wait_for(Duration::from_secs(2), "new flow", |e| {
        e["event"] == "flow_open" && e["server"] == "primary" && e["id"] == 2
    });
    assert!(t(&reopened).abs_diff(t(&lost)) < 1000, "the new flow comes with the loss: {}", agent.dump());
    agent.wait_for(Duration::from_secs(3), "probe at once", |e| {
        e["event"] == "probe" && e["server"] == "primary" && t(e) >= t(&reopened) && t(e) < t(&lost) + 1000
    });
    // The primary's answer on the new flow: by then the server has accepted its connection.
    agent.wait_for(Duration::from_secs(3), "reply on the new flow", |e| {
        e["event"] == "reply" && e["server"] == "primary" && t(e) >= t(&reopened)
    });
    assert!(p.pings.load(Ordering::SeqCst) >= 1);
    assert_eq!(p.accepts(), 2);
    assert!(agent.named("flow_down").iter().all(|e| e["server"] != "backup"), "{}", agent.dump());
}
