//! Bad DNS answers (issue 12): SERVFAIL, a CNAME loop, answers that are garbage, and a truncated UDP
//! answer that must be asked again over TCP. A small DNS server in the test, on a loopback port (UDP
//! and TCP), answers its zone normally and gives the bad answer of the moment to every query for a
//! name under one domain. Checked through the library's resolver (the error and its code) and through
//! the running agent: a `resolve_failed` event naming the host and the reason, the other server's
//! probing going on, retries backing off, the agent still running.

mod interop_common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use interop_common::*;
use serde_json::Value;
use sip_failover::config::Endpoint;
use sip_failover::net::dns::{Family, Resolver, ResolverSettings};

/// What the server answers for names under the bad domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    /// The zone's answer, as for any other name.
    Nothing,
    /// RCODE 2, no records.
    ServFail,
    /// `NAME` is a CNAME for `loop.NAME`, and `loop.NAME` one for `NAME`.
    CnameLoop,
    /// For each query, several datagrams that are not a usable answer: random bytes, a header cut
    /// short, the right answer with another ID, a header announcing records that are not there, an A
    /// record whose data is 3 bytes long, an answer to another question.
    Garbage,
    /// Over UDP: TC set and no records. Over TCP: the zone's answer.
    Truncated,
    /// Over UDP: TC set and no records. Over TCP: the connection is closed without an answer.
    TruncatedTcpClosed,
}

#[derive(Debug, Clone)]
enum Rec {
    A(Ipv4Addr),
    Srv { priority: u16, weight: u16, port: u16, target: String },
}

/// A query as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    tcp: bool,
    name: String,
    qtype: u16,
}

/// The test's DNS server, on one loopback port over UDP and TCP, until dropped.
struct BadDns {
    addr: SocketAddr,
    zone: Arc<Mutex<HashMap<String, Vec<Rec>>>>,
    /// The domain whose names get the bad answer, and which one.
    bad: Arc<Mutex<(String, Bad)>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

const TTL: u32 = 1;

impl BadDns {
    fn start(zone: HashMap<String, Vec<Rec>>, domain: &str) -> BadDns {
        // A UDP port whose TCP twin is free too (bounded: a few tries).
        let (udp, tcp) = (0..20)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let tcp = TcpListener::bind(udp.local_addr().ok()?).ok()?;
                Some((udp, tcp))
            })
            .expect("a loopback port free for UDP and TCP");
        udp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = udp.local_addr().unwrap();
        let mut s = BadDns {
            addr,
            zone: Arc::new(Mutex::new(zone)),
            bad: Arc::new(Mutex::new((domain.to_string(), Bad::Nothing))),
            seen: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        let (z, b, q, stop) = (s.zone.clone(), s.bad.clone(), s.seen.clone(), s.stop.clone());
        s.threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = udp.recv_from(&mut buf) else { continue };
                let Some(query) = Query::parse(&buf[..n]) else { continue };
                q.lock().unwrap().push(Seen { tcp: false, name: query.name.clone(), qtype: query.qtype });
                let mode = mode_for(&b, &query.name);
                for reply in udp_replies(&query, mode, &z.lock().unwrap()) {
                    let _ = udp.send_to(&reply, from);
                }
            }
        }));
        let (z, b, q, stop) = (s.zone.clone(), s.bad.clone(), s.seen.clone(), s.stop.clone());
        s.threads.push(std::thread::spawn(move || {
            for conn in tcp.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (z, b, q) = (z.clone(), b.clone(), q.clone());
                std::thread::spawn(move || serve_tcp(conn, &z, &b, &q));
            }
        }));
        s
    }

    fn set_bad(&self, bad: Bad) {
        self.bad.lock().unwrap().1 = bad;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for BadDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop.
        let _ = TcpStream::connect(self.addr);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn mode_for(bad: &Mutex<(String, Bad)>, name: &str) -> Bad {
    let b = bad.lock().unwrap();
    if name == b.0 || name.ends_with(&format!(".{}", b.0)) {
        b.1
    } else {
        Bad::Nothing
    }
}

/// One DNS-over-TCP connection: length-prefixed queries until EOF (bounded by a read timeout).
fn serve_tcp(
    mut conn: TcpStream,
    zone: &Mutex<HashMap<String, Vec<Rec>>>,
    bad: &Mutex<(String, Bad)>,
    seen: &Mutex<Vec<Seen>>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    for _ in 0..100 {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if conn.read_exact(&mut msg).is_err() {
            return;
        }
        let Some(query) = Query::parse(&msg) else { return };
        seen.lock().unwrap().push(Seen { tcp: true, name: query.name.clone(), qtype: query.qtype });
        let reply = match mode_for(bad, &query.name) {
            Bad::TruncatedTcpClosed => return,
            Bad::Truncated | Bad::Nothing => answer(&query, &zone.lock().unwrap(), 0),
            other => match udp_replies(&query, other, &zone.lock().unwrap()).into_iter().next() {
                Some(r) => r,
                None => return,
            },
        };
        let mut out = (reply.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&reply);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

/// The parts of a query the server needs.
struct Query {
    id: u16,
    /// Lower case, no trailing dot.
    name: String,
    qtype: u16,
    /// The question section as received.
    question: Vec<u8>,
}

impl Query {
    fn parse(m: &[u8]) -> Option<Query> {
        let mut pos = 12;
        let mut labels = Vec::new();
        for _ in 0..128 {
            let len = usize::from(*m.get(pos)?);
            pos += 1;
            if len == 0 {
                let qtype = u16::from_be_bytes([*m.get(pos)?, *m.get(pos + 1)?]);
                let id = u16::from_be_bytes([m[0], m[1]]);
                return Some(Query { id, name: labels.join("."), qtype, question: m.get(12..pos + 4)?.to_vec() });
            }
            labels.push(String::from_utf8_lossy(m.get(pos..pos + len)?).to_ascii_lowercase());
            pos += len;
        }
        None
    }
}

fn encode_name(out: &mut Vec<u8>, name: &str) {
    for l in name.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
}

/// A header and the query's question: ID, flags (QR, RD, RA and `extra`), one question, `answers`
/// answer records.
fn header(q: &Query, extra: u16, answers: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&(0x8180u16 | extra).to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q.question);
    out
}

fn record(out: &mut Vec<u8>, name: &str, rtype: u16, data: &[u8]) {
    encode_name(out, name);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&TTL.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// The zone's answer: its records of the asked type, NOERROR with none when the name has only
/// others, NXDOMAIN when it has none. `extra` flags are added (TC).
fn answer(q: &Query, zone: &HashMap<String, Vec<Rec>>, extra: u16) -> Vec<u8> {
    let recs = zone.get(&q.name);
    let matching: Vec<&Rec> = recs
        .map(|r| r.iter().filter(|r| matches!((r, q.qtype), (Rec::A(..), 1) | (Rec::Srv { .. }, 33))).collect())
        .unwrap_or_default();
    let rcode = if recs.is_none() { 3 } else { 0 };
    let mut out = header(q, rcode | extra, matching.len() as u16);
    for r in matching {
        match r {
            Rec::A(ip) => record(&mut out, &q.name, 1, &ip.octets()),
            Rec::Srv { priority, weight, port, target } => {
                let mut d = Vec::new();
                d.extend_from_slice(&priority.to_be_bytes());
                d.extend_from_slice(&weight.to_be_bytes());
                d.extend_from_slice(&port.to_be_bytes());
                encode_name(&mut d, target);
                record(&mut out, &q.name, 33, &d);
            }
        }
    }
    out
}

/// What goes back over UDP for `q` in `mode`.
fn udp_replies(q: &Query, mode: Bad, zone: &HashMap<String, Vec<Rec>>) -> Vec<Vec<u8>> {
    match mode {
        Bad::Nothing => vec![answer(q, zone, 0)],
        Bad::ServFail => vec![header(q, 2, 0)],
        Bad::CnameLoop => {
            let target = match q.name.strip_prefix("loop.") {
                Some(rest) => rest.to_string(),
                None => format!("loop.{}", q.name),
            };
            let mut d = Vec::new();
            encode_name(&mut d, &target);
            let mut out = header(q, 0, 1);
            record(&mut out, &q.name, 5, &d);
            vec![out]
        }
        Bad::Garbage => {
            let good = answer(q, zone, 0);
            // Random bytes (a fixed xorshift stream seeded by the ID).
            let mut x = u32::from(q.id) | 0x1234_0000;
            let random: Vec<u8> = (0..48)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            // The right answer under another ID.
            let mut wrong_id = good.clone();
            wrong_id[0] ^= 0x5a;
            // Two answer records announced, none there.
            let lying = header(q, 0, 2);
            // An A record with 3 bytes of data.
            let mut short_a = header(q, 0, 1);
            record(&mut short_a, &q.name, 1, &[127, 0, 0]);
            // An answer to another question, with the query's ID.
            let other = Query { id: q.id, name: "elsewhere.test".into(), qtype: 1, question: Vec::new() };
            let mut other_q = Vec::new();
            encode_name(&mut other_q, &other.name);
            other_q.extend_from_slice(&[0, 1, 0, 1]);
            let mut forged = header(&Query { question: other_q, ..other }, 0, 1);
            record(&mut forged, "elsewhere.test", 1, &[127, 0, 0, 1]);
            vec![random, good[..6].to_vec(), wrong_id, lying, short_a, forged]
        }
        Bad::Truncated | Bad::TruncatedTcpClosed => vec![header(q, 0x0200, 0)],
    }
}

fn ep(host: &str, port: Option<u16>) -> Endpoint {
    Endpoint::new(host, port)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A resolv.conf (`options timeout:1 attempts:1`, no search domain) and an empty hosts file in `dir`.
fn test_files(dir: &TempDir) -> (PathBuf, PathBuf) {
    let conf = dir.join("resolv.conf");
    let hosts = dir.join("hosts");
    std::fs::write(&conf, "options timeout:1 attempts:1\n").unwrap();
    std::fs::write(&hosts, "").unwrap();
    (conf, hosts)
}

/// A resolver asking only `server`, one 300 ms try per query.
fn resolver(server: SocketAddr, files: &(PathBuf, PathBuf)) -> Resolver {
    Resolver::from_settings(&ResolverSettings {
        server: Some(server),
        resolv_conf: Some(files.0.clone()),
        hosts: Some(files.1.clone()),
    })
    .unwrap()
    .with_timeout(Duration::from_millis(300), 1)
}

/// A zone with `pbx.test` (A 127.0.0.1) and `_sip._udp.pbx.test` (SRV to `a.pbx.test` on `port`, A
/// 127.0.0.1).
fn zone(port: u16) -> HashMap<String, Vec<Rec>> {
    let lo = Ipv4Addr::LOCALHOST;
    HashMap::from([
        ("pbx.test".to_string(), vec![Rec::A(lo)]),
        (
            "_sip._udp.pbx.test".to_string(),
            vec![Rec::Srv { priority: 10, weight: 0, port, target: "a.pbx.test".into() }],
        ),
        ("a.pbx.test".to_string(), vec![Rec::A(lo)]),
        ("ok.test".to_string(), vec![Rec::A(lo)]),
    ])
}

#[test]
fn the_library_names_each_bad_answer() {
    let dir = TempDir::new("dns-bad-lib");
    let files = test_files(&dir);
    let dns = BadDns::start(zone(5071), "pbx.test");
    let rt = rt();
    // Each case with a fresh resolver (nothing cached): the name with a port (A only) and without
    // (NAPTR, SRV, A), and a name outside the bad domain, which resolves whatever the others get.
    let cases: [(Bad, &str, &str); 4] = [
        (Bad::ServFail, "servfail", "resolver answered Server Failure"),
        (Bad::CnameLoop, "cname_loop", "CNAME loop at `pbx.test`"),
        (Bad::Garbage, "timeout", "no usable answer from the resolver"),
        (Bad::TruncatedTcpClosed, "other", "stream closed"),
    ];
    for (bad, code, text) in cases {
        dns.set_bad(bad);
        let r = resolver(dns.addr, &files);
        for port in [Some(5070), None] {
            let e = rt.block_on(r.resolve(&ep("pbx.test", port), Family::V4Only)).unwrap_err();
            assert_eq!((e.code(), e.to_string().as_str()), (code, text), "{bad:?}, port {port:?}: {e:?}");
        }
        let ok = rt.block_on(r.resolve(&ep("ok.test", Some(5070)), Family::V4Only)).unwrap();
        assert_eq!(ok.candidates, vec![SocketAddr::from(([127, 0, 0, 1], 5070))], "{bad:?}");
    }

    // A truncated UDP answer is asked again over TCP, for each step of RFC 3263.
    dns.set_bad(Bad::Truncated);
    let before = dns.seen().len();
    let r = resolver(dns.addr, &files);
    let got = rt.block_on(r.resolve(&ep("pbx.test", None), Family::V4Only)).unwrap();
    assert_eq!(got.candidates, vec![SocketAddr::from(([127, 0, 0, 1], 5071))]);
    assert!(got.via_srv);
    let seen = &dns.seen()[before..];
    for (name, qtype) in [("pbx.test", 35), ("_sip._udp.pbx.test", 33), ("a.pbx.test", 1)] {
        for tcp in [false, true] {
            let q = Seen { tcp, name: name.into(), qtype };
            assert!(seen.contains(&q), "no {q:?} in {seen:?}");
        }
    }
}

/// Starts the agent with the primary `pbx.test` (SRV to `primary`) behind `dns` and the backup at
/// `backup`, probing every 2 s from 127.0.0.1.
fn start_agent(dns: &BadDns, backup: SocketAddr, dir: &TempDir) -> AgentProc {
    let (conf, hosts) = test_files(dir);
    AgentProc::start(
        &[
            "--primary",
            "pbx.test",
            "--backup",
            &backup.to_string(),
            "--resolver",
            &dns.addr.to_string(),
            "--resolv-conf",
            conf.to_str().unwrap(),
            "--hosts",
            hosts.to_str().unwrap(),
            "--bind",
            "127.0.0.1",
            "--interval",
            "2",
        ],
        dir.path(),
    )
}

/// The first three `resolve_failed` events of the primary: each names `pbx.test` and gives `code`
/// and `text`, and each waits longer than the one before.
fn three_failures(agent: &mut AgentProc, code: &str, text: &str) -> Vec<Value> {
    let is_failure = |e: &Value| e["event"] == "resolve_failed" && e["server"] == "primary";
    agent.wait_nth(Duration::from_secs(30), "resolve_failed", 3, is_failure);
    let failures: Vec<Value> = agent.events.iter().filter(|e| is_failure(e)).take(3).cloned().collect();
    for f in &failures {
        assert_eq!(f["host"], "pbx.test", "{f}");
        assert_eq!(f["code"], code, "{f}");
        assert_eq!(f["error"], text, "{f}");
    }
    let retries: Vec<f64> = failures.iter().map(|f| f["retry_s"].as_f64().unwrap()).collect();
    assert!(retries[0] >= 1.0 && retries.windows(2).all(|w| w[1] > w[0]), "retries do not back off: {retries:?}");
    failures
}

/// The agent runs with good answers; then every query for the primary's names gets `bad`. The
/// lookups fail with `code` and `text`, back off, and both servers' probing goes on at the last
/// addresses; the agent keeps running.
fn agent_meets(bad: Bad, code: &str, text: &str) {
    let dir = TempDir::new("dns-bad-agent");
    let primary = Responder::start(Mode::Answer(200));
    let backup = Responder::start(Mode::Answer(200));
    let dns = BadDns::start(zone(primary.addr.port()), "pbx.test");
    let mut agent = start_agent(&dns, backup.addr, &dir);
    let started = agent.wait_for(Duration::from_secs(10), "started", |e| e["event"] == "started");
    assert_eq!(started["primary"]["next_hop"], primary.addr.to_string(), "{started}");
    assert!(agent.named("resolve_failed").is_empty());

    // The 1 s TTL runs out: the next lookups meet the bad answers.
    dns.set_bad(bad);
    let failures = three_failures(&mut agent, code, text);
    let last = t(&failures[2]);
    for server in ["primary", "backup"] {
        agent.wait_for(Duration::from_secs(8), "a reply after the failed lookups", |e| {
            e["event"] == "reply" && e["server"] == server && t(e) > last
        });
    }
    let hop = primary.addr.to_string();
    assert!(
        agent
            .named("probe")
            .iter()
            .filter(|p| p["server"] == "primary" && t(p) > last)
            .all(|p| p["destination"] == hop),
        "the primary's last good address stays in use"
    );
    assert!(agent.child.try_wait().unwrap().is_none(), "the agent is still running");
}

#[test]
fn servfail_is_reported_retried_with_backoff_and_the_probing_goes_on() {
    agent_meets(Bad::ServFail, "servfail", "resolver answered Server Failure");
}

#[test]
fn a_cname_loop_is_reported_as_one() {
    agent_meets(Bad::CnameLoop, "cname_loop", "CNAME loop at `pbx.test`");
}

/// Garbage datagrams are dropped by the library as possible forgeries: the lookup ends when the
/// timeout does, as for a silent resolver.
#[test]
fn garbage_answers_end_as_a_timeout() {
    agent_meets(Bad::Garbage, "timeout", "no usable answer from the resolver");
}

/// At start the agent waits until the primary's name resolves (the core needs an address for each
/// server): SERVFAIL is reported and retried with backoff, and once the resolver answers the agent
/// starts.
#[test]
fn servfail_at_start_is_retried_with_backoff_until_the_name_resolves() {
    let dir = TempDir::new("dns-bad-start");
    let primary = Responder::start(Mode::Answer(200));
    let backup = Responder::start(Mode::Answer(200));
    let dns = BadDns::start(zone(primary.addr.port()), "pbx.test");
    dns.set_bad(Bad::ServFail);
    let mut agent = start_agent(&dns, backup.addr, &dir);
    let failures = three_failures(&mut agent, "servfail", "resolver answered Server Failure");
    let reasons: Vec<&str> = failures.iter().map(|f| f["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["startup", "retry", "retry"], "{failures:?}");
    // The agent did not wait for the name: it started, and probes the backup meanwhile.
    let started = agent.named("started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["primary"]["next_hop"], Value::Null, "{:?}", started[0]);
    agent.wait_for(Duration::from_secs(5), "backup reply", |e| e["event"] == "reply" && e["server"] == "backup");

    dns.set_bad(Bad::Nothing);
    let resolved = agent.wait_for(Duration::from_secs(20), "resolved", |e| {
        e["event"] == "resolved" && e["server"] == "primary" && e["reason"] == "retry"
    });
    assert_eq!(resolved["next_hop"], primary.addr.to_string(), "{resolved}");
    agent.wait_for(Duration::from_secs(6), "primary reply", |e| {
        e["event"] == "reply" && e["server"] == "primary" && t(e) > t(&resolved)
    });
}

/// Every UDP answer is truncated: the agent gets each answer over TCP, starts, probes the primary at
/// the address TCP gave, and keeps resolving it (1 s TTL) without a failure.
#[test]
fn truncated_answers_are_asked_again_over_tcp() {
    let dir = TempDir::new("dns-bad-tc");
    let primary = Responder::start(Mode::Answer(200));
    let backup = Responder::start(Mode::Answer(200));
    let dns = BadDns::start(zone(primary.addr.port()), "pbx.test");
    dns.set_bad(Bad::Truncated);
    let mut agent = start_agent(&dns, backup.addr, &dir);
    let started = agent.wait_for(Duration::from_secs(10), "started", |e| e["event"] == "started");
    assert_eq!(started["primary"]["next_hop"], primary.addr.to_string(), "{started}");
    agent.wait_nth(Duration::from_secs(10), "resolved", 3, |e| e["server"] == "primary" && e["reason"] == "ttl");
    agent.wait_for(Duration::from_secs(5), "primary reply", |e| e["event"] == "reply" && e["server"] == "primary");
    assert!(agent.named("resolve_failed").is_empty(), "{:?}", agent.named("resolve_failed"));
    let seen = dns.seen();
    let tcp_a = seen.iter().filter(|s| s.tcp && s.name == "a.pbx.test" && s.qtype == 1).count();
    assert!(tcp_a >= 2, "the target's address asked over TCP at start and after the TTL: {seen:?}");
}
