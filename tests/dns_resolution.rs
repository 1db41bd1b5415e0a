//! DNS: a tiny authoritative server in the test, on a random loopback port, answers A, AAAA and SRV
//! with TTLs. Checked through the library's resolver (resolution, RFC 3263 SRV priority and weight,
//! fallbacks) and through the running agent (`--resolver`): re-resolution when the TTL runs out and
//! after a server fails, and a resolver that stops answering.

mod interop_common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use interop_common::*;
use sip_failover::config::Endpoint;
use sip_failover::core::rng::Rng;
use sip_failover::net::dns::{order_srv, DnsError, Family, Resolver, Srv};

#[derive(Debug, Clone)]
enum Rec {
    A(Ipv4Addr, u32),
    Aaaa(Ipv6Addr, u32),
    Srv { priority: u16, weight: u16, port: u16, target: String, ttl: u32 },
}

type Zone = HashMap<String, Vec<Rec>>;

/// The test's DNS server: answers from `zone`, counts queries by "name/type", stays silent while
/// `mute` is set.
struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<Mutex<Vec<String>>>,
    mute: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    fn start(zone: Zone) -> DnsServer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = sock.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(zone));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let mute = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (z, q, m, s) = (zone.clone(), queries.clone(), mute.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let Some((name, qtype, qend)) = parse_query(&buf[..n]) else { continue };
                q.lock().unwrap().push(format!("{name}/{qtype}"));
                if m.load(Ordering::Relaxed) {
                    continue;
                }
                let reply = answer(&buf[..n], qend, &name, qtype, &z.lock().unwrap());
                let _ = sock.send_to(&reply, from);
            }
        });
        DnsServer { addr, zone, queries, mute, stop, thread: Some(thread) }
    }

    fn set(&self, name: &str, recs: Vec<Rec>) {
        self.zone.lock().unwrap().insert(name.to_string(), recs);
    }

    fn count(&self, query: &str) -> usize {
        self.queries.lock().unwrap().iter().filter(|q| *q == query).count()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn parse_query(m: &[u8]) -> Option<(String, u16, usize)> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*m.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(m.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*m.get(pos)?, *m.get(pos + 1)?]);
    Some((labels.join("."), qtype, pos + 4))
}

fn encode_name(out: &mut Vec<u8>, name: &str) {
    for l in name.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
}

fn answer(query: &[u8], qend: usize, name: &str, qtype: u16, zone: &Zone) -> Vec<u8> {
    let recs = zone.get(name);
    let matching: Vec<&Rec> = recs
        .map(|r| {
            r.iter()
                .filter(|r| matches!((r, qtype), (Rec::A(..), 1) | (Rec::Aaaa(..), 28) | (Rec::Srv { .. }, 33)))
                .collect()
        })
        .unwrap_or_default();
    let rcode = if recs.is_none() { 3 } else { 0 };
    let mut out = Vec::new();
    out.extend_from_slice(&query[0..2]);
    out.extend_from_slice(&(0x8180u16 | rcode).to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(matching.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..qend]);
    for r in matching {
        out.extend_from_slice(&[0xc0, 12]);
        let (t, ttl, data) = match r {
            Rec::A(ip, ttl) => (1u16, *ttl, ip.octets().to_vec()),
            Rec::Aaaa(ip, ttl) => (28, *ttl, ip.octets().to_vec()),
            Rec::Srv { priority, weight, port, target, ttl } => {
                let mut d = Vec::new();
                d.extend_from_slice(&priority.to_be_bytes());
                d.extend_from_slice(&weight.to_be_bytes());
                d.extend_from_slice(&port.to_be_bytes());
                encode_name(&mut d, target);
                (33, *ttl, d)
            }
        };
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

fn a(last: u8, ttl: u32) -> Rec {
    Rec::A(Ipv4Addr::new(127, 0, 0, last), ttl)
}

fn srv(priority: u16, weight: u16, port: u16, target: &str, ttl: u32) -> Rec {
    Rec::Srv { priority, weight, port, target: target.into(), ttl }
}

fn ep(host: &str, port: Option<u16>) -> Endpoint {
    Endpoint::new(host, port)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn resolver(dns: &DnsServer) -> Resolver {
    Resolver::new(dns.addr).with_timeout(Duration::from_millis(300), 2)
}

#[test]
fn names_resolve_with_a_aaaa_and_ttls() {
    let dns = DnsServer::start(Zone::new());
    dns.set("pbx.test", vec![a(1, 30), Rec::Aaaa(Ipv6Addr::LOCALHOST, 10)]);
    dns.set("v6only.test", vec![Rec::Aaaa(Ipv6Addr::LOCALHOST, 60)]);
    let r = resolver(&dns);
    rt().block_on(async {
        let got = r.resolve(&ep("pbx.test", Some(5070)), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec!["127.0.0.1:5070".parse().unwrap(), "[::1]:5070".parse().unwrap()]);
        assert_eq!(got.ttl, Some(Duration::from_secs(10)), "the smallest TTL involved");
        assert!(!got.via_srv);
        let got = r.resolve(&ep("PBX.test.", Some(5070)), Family::V4Only).await.unwrap();
        assert_eq!(got.candidates, vec!["127.0.0.1:5070".parse().unwrap()]);
        assert_eq!(got.ttl, Some(Duration::from_secs(30)));
        let got = r.resolve(&ep("v6only.test", Some(5080)), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec!["[::1]:5080".parse().unwrap()]);
        // An IP literal needs no lookup and never expires.
        let got = r.resolve(&ep("127.0.0.9", None), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec!["127.0.0.9:5060".parse().unwrap()]);
        assert_eq!(got.ttl, None);
        assert!(matches!(r.resolve(&ep("nothing.test", Some(1)), Family::V4First).await, Err(DnsError::NxDomain)));
    });
}

#[test]
fn srv_orders_by_priority_then_weight_and_falls_back_to_a_on_5060() {
    let dns = DnsServer::start(Zone::new());
    dns.set("_sip._udp.pbx.test", vec![srv(20, 100, 5002, "b.pbx.test", 300), srv(10, 0, 5001, "a.pbx.test", 300)]);
    dns.set("a.pbx.test", vec![a(1, 60)]);
    dns.set("b.pbx.test", vec![a(2, 5)]);
    dns.set(
        "_sip._udp.weighted.test",
        vec![srv(10, 0, 6001, "a.pbx.test", 300), srv(10, 100, 6002, "a.pbx.test", 300)],
    );
    dns.set("plain.test", vec![a(3, 60)]);
    let r = resolver(&dns);
    rt().block_on(async {
        let got = r.resolve(&ep("pbx.test", None), Family::V4Only).await.unwrap();
        assert!(got.via_srv);
        assert_eq!(got.candidates, vec!["127.0.0.1:5001".parse().unwrap(), "127.0.0.2:5002".parse().unwrap()]);
        assert_eq!(got.ttl, Some(Duration::from_secs(5)));
        // Same priority: both targets, in an order drawn by weight (checked with a seeded draw below).
        let got = r.resolve(&ep("weighted.test", None), Family::V4Only).await.unwrap();
        let mut ports: Vec<u16> = got.candidates.iter().map(|c| c.port()).collect();
        ports.sort();
        assert_eq!(ports, [6001, 6002]);
        // No SRV record: the name's own address on port 5060 (RFC 3263 4.2).
        let got = r.resolve(&ep("plain.test", None), Family::V4Only).await.unwrap();
        assert!(!got.via_srv);
        assert_eq!(got.candidates, vec!["127.0.0.3:5060".parse().unwrap()]);
    });
    assert_eq!(dns.count("_sip._udp.plain.test/33"), 1);
}

#[test]
fn srv_records_of_one_priority_are_ordered_by_weight() {
    // RFC 2782 with weights 100 and 0: the draw is in 0..=100 and only 0 picks the weight-0 record
    // first, so the heavy one leads 100 times in 101. A seeded draw makes the count exact.
    let mut rng = Rng::from_seed(2782);
    let records = || vec![srv_record(10, 0, 6001), srv_record(10, 100, 6002)];
    let mut heavy_first = 0;
    for _ in 0..1010 {
        let order = order_srv(records(), |n| rng.next_u32() % n);
        assert_eq!(order.len(), 2);
        if order[0].port == 6002 {
            heavy_first += 1;
        }
    }
    // Expected 1000 (sd 3.1); the weight-0 record still gets its chance.
    assert!((990..1010).contains(&heavy_first), "weight 100 first {heavy_first} of 1010 times");
    // Priorities come before weights.
    let order = order_srv(vec![srv_record(20, 100, 2), srv_record(10, 0, 1)], |n| rng.next_u32() % n);
    assert_eq!(order.iter().map(|s| s.port).collect::<Vec<_>>(), [1, 2]);
}

fn srv_record(priority: u16, weight: u16, port: u16) -> Srv {
    Srv { priority, weight, port, target: format!("t{port}.example") }
}

#[test]
fn a_silent_resolver_is_a_timeout_after_its_tries_not_a_hang() {
    let dns = DnsServer::start(Zone::new());
    dns.mute.store(true, Ordering::Relaxed);
    let r = resolver(&dns);
    // On the paused clock: the two tries of 300 ms end at exactly 600 ms of virtual time (the muted
    // server never answers, so tokio may jump straight to each deadline).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    let (res, took) = rt.block_on(async {
        let began = tokio::time::Instant::now();
        let res = r.resolve(&ep("pbx.test", Some(5060)), Family::V4Only).await;
        (res, began.elapsed())
    });
    assert!(matches!(res, Err(DnsError::Timeout)), "{res:?}");
    assert_eq!(took, Duration::from_millis(600));
}

#[test]
fn the_agent_uses_the_next_srv_target_and_follows_dns_changes_after_the_ttl() {
    let dir = TempDir::new("dns-agent");
    let dead = Responder::start(Mode::Drop);
    let alive = Responder::start(Mode::Answer(200));
    let backup1 = Responder::start(Mode::Answer(200));
    let backup2 = Responder::start(Mode::Answer(200));
    let dns = DnsServer::start(Zone::new());
    // The primary: SRV with a dead first choice and a live second one, long TTLs.
    dns.set(
        "_sip._udp.pbx-a.test",
        vec![srv(10, 0, dead.addr.port(), "a1.pbx-a.test", 3600), srv(20, 0, alive.addr.port(), "a2.pbx-a.test", 3600)],
    );
    dns.set("a1.pbx-a.test", vec![a(1, 3600)]);
    dns.set("a2.pbx-a.test", vec![a(1, 3600)]);
    // The backup: SRV with a 1 s TTL, to be moved while the agent runs.
    dns.set("_sip._udp.pbx-b.test", vec![srv(10, 0, backup1.addr.port(), "b.pbx-b.test", 1)]);
    dns.set("b.pbx-b.test", vec![a(1, 1)]);
    // Search domains and options from a test resolv.conf: a silent resolver costs one 1 s try.
    let conf = dir.join("resolv.conf");
    std::fs::write(&conf, "options timeout:1 attempts:1\n").unwrap();
    let mut agent = AgentProc::start(
        &[
            "--primary",
            "pbx-a.test",
            "--backup",
            "pbx-b.test",
            "--resolver",
            &dns.addr.to_string(),
            "--resolv-conf",
            conf.to_str().unwrap(),
            "--bind",
            "127.0.0.1",
            "--interval",
            "2",
        ],
        dir.path(),
    );
    let started = agent.wait_for(Duration::from_secs(5), "started", |e| e["event"] == "started");
    assert_eq!(started["primary"]["next_hop"], dead.addr.to_string(), "priority 10 first");
    assert_eq!(started["backup"]["next_hop"], backup1.addr.to_string());

    // The dead target's attempt goes unanswered: the ladder's next attempt goes to the next target,
    // which answers, and the next cycles start there.
    let reply = agent.wait_for(Duration::from_secs(6), "the next target's reply", |e| {
        e["event"] == "reply" && e["server"] == "primary"
    });
    assert_eq!(reply["attempt"], 2, "{}", agent.dump());
    let probe = agent.wait_for(Duration::from_secs(4), "a cycle starting at the next target", |e| {
        e["event"] == "probe"
            && e["server"] == "primary"
            && e["attempt"] == 1
            && e["destination"] == alive.addr.to_string()
    });
    agent.wait_for(Duration::from_secs(2), "reply from the next target", |e| {
        e["event"] == "reply" && e["server"] == "primary" && t(e) >= t(&probe)
    });
    assert!(agent.named("switch").is_empty(), "{}", agent.dump());

    // The backup's record changes; within about a TTL the agent probes the new target.
    dns.set("_sip._udp.pbx-b.test", vec![srv(10, 0, backup2.addr.port(), "b.pbx-b.test", 1)]);
    let ttl = agent.wait_for(Duration::from_secs(4), "re-resolution after the TTL", |e| {
        e["event"] == "resolved"
            && e["server"] == "backup"
            && e["reason"] == "ttl"
            && e["next_hop"] == backup2.addr.to_string()
    });
    agent.wait_for(Duration::from_secs(4), "probe to the moved backup", |e| {
        e["event"] == "probe"
            && e["server"] == "backup"
            && e["destination"] == backup2.addr.to_string()
            && t(e) >= t(&ttl)
    });
    agent.wait_for(Duration::from_secs(3), "reply from the moved backup", |e| {
        e["event"] == "reply" && e["server"] == "backup" && t(e) >= t(&ttl)
    });
    assert!(dns.count("_sip._udp.pbx-b.test/33") >= 2);

    // The resolver goes silent: lookups fail, the agent keeps probing the last known address.
    dns.mute.store(true, Ordering::Relaxed);
    let failed = agent.wait_for(Duration::from_secs(8), "resolve_failed", |e| {
        e["event"] == "resolve_failed" && e["server"] == "backup"
    });
    agent.wait_for(Duration::from_secs(4), "probe after the failed lookup", |e| {
        e["event"] == "probe"
            && e["server"] == "backup"
            && e["destination"] == backup2.addr.to_string()
            && t(e) > t(&failed)
    });
    assert!(agent.child.try_wait().unwrap().is_none(), "the agent is still running");
}

#[test]
fn a_primary_name_that_does_not_resolve_at_start_leaves_the_backup_probed_and_is_taken_once_it_does() {
    let dir = TempDir::new("dns-unresolved");
    let primary = Responder::start(Mode::Answer(200));
    let backup = Responder::start(Mode::Answer(200));
    // The primary's name is not in the zone yet: NXDOMAIN-like (no records) until the test adds it.
    let dns = DnsServer::start(Zone::new());
    let conf = dir.join("resolv.conf");
    std::fs::write(&conf, "options timeout:1 attempts:1\n").unwrap();
    let primary_ep = format!("pbx-a.test:{}", primary.addr.port());
    let mut agent = AgentProc::start(
        &[
            "--primary",
            &primary_ep,
            "--backup",
            &backup.addr.to_string(),
            "--resolver",
            &dns.addr.to_string(),
            "--resolv-conf",
            conf.to_str().unwrap(),
            "--bind",
            "127.0.0.1",
            "--interval",
            "2",
        ],
        dir.path(),
    );
    let failed = agent.wait_for(Duration::from_secs(5), "resolve_failed", |e| {
        e["event"] == "resolve_failed" && e["server"] == "primary" && e["reason"] == "startup"
    });
    let started = agent.wait_for(Duration::from_secs(5), "started", |e| e["event"] == "started");
    assert_eq!(started["primary"]["next_hop"], serde_json::Value::Null, "{started}");
    assert!(t(&started) >= t(&failed));
    // The backup is probed and answers; the primary, without an address, fails its cycle (nothing is
    // sent to it) and the phone moves to the backup.
    agent.wait_for(Duration::from_secs(4), "backup reply", |e| e["event"] == "reply" && e["server"] == "backup");
    let sw = agent.wait_for(Duration::from_secs(6), "failover", |e| e["event"] == "switch");
    assert_eq!((sw["reason"].as_str(), sw["to"].as_str()), (Some("failover"), Some("backup")), "{sw}");
    assert_eq!(primary.count(), 0, "nothing was sent while the name had no address");
    // The name appears: the retry finds it, the primary is probed, answers, and the phone fails back.
    dns.set("pbx-a.test", vec![a(1, 3600)]);
    let resolved = agent.wait_for(Duration::from_secs(10), "resolved", |e| {
        e["event"] == "resolved" && e["server"] == "primary" && e["next_hop"] == primary.addr.to_string()
    });
    agent.wait_for(Duration::from_secs(6), "primary reply", |e| {
        e["event"] == "reply" && e["server"] == "primary" && t(e) > t(&resolved)
    });
    let fb =
        agent.wait_for(Duration::from_secs(10), "failback", |e| e["event"] == "switch" && e["reason"] == "failback");
    assert_eq!(fb["to"], "primary");
}

#[test]
fn ip_literals_never_touch_dns() {
    let dns = DnsServer::start(Zone::new());
    let dir = TempDir::new("dns-literal");
    let p = Responder::start(Mode::Answer(200));
    let mut agent = AgentProc::start(
        &["--primary", &p.addr.to_string(), "--resolver", &dns.addr.to_string(), "--interval", "2"],
        dir.path(),
    );
    agent.wait_for(Duration::from_secs(5), "reply", |e| e["event"] == "reply");
    assert!(dns.queries.lock().unwrap().is_empty());
}
