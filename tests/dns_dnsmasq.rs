//! Name resolution against a real DNS server: dnsmasq (Debian package `dnsmasq-base`), started by
//! each test on a free loopback port with NAPTR, SRV, A and AAAA records. Checked through the
//! library's resolver (RFC 3263: NAPTR to SRV to A for each transport, SRV priority and weight,
//! records that point nowhere, NXDOMAIN, a server that never answers) and through the running agent
//! (a dead first SRV target, `localhost`, a hosts file, a search domain, a resolver that stops
//! answering while the other server's probing goes on).
//!
//! Without dnsmasq each test prints `SKIPPED: ...` and passes; with `REQUIRE_PEERS=1` it fails.

mod interop_common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use interop_common::*;
use serde_json::{json, Value};
use sip_failover::config::Endpoint;
use sip_failover::net::dns::{DnsError, Family, Resolver, ResolverSettings, Transport};

/// A dnsmasq serving only the records given, for names under `.test` (anything else there is
/// NXDOMAIN), on a free loopback port, until dropped.
struct Dnsmasq {
    addr: SocketAddr,
    child: Child,
    _dir: TempDir,
    stopped: bool,
}

impl Dnsmasq {
    fn start(records: &[String]) -> Dnsmasq {
        Self::start_ttl(records, 3600)
    }

    /// With this TTL on every record. The port is a free UDP port; dnsmasq also binds it over TCP,
    /// which another test may hold: then it exits at once, and a new port is tried (five at most).
    fn start_ttl(records: &[String], ttl: u32) -> Dnsmasq {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(records, ttl) {
                Ok(d) => return d,
                Err(e) => last = e,
            }
        }
        panic!("dnsmasq did not start on five ports; last: {last}");
    }

    fn try_start(records: &[String], ttl: u32) -> Result<Dnsmasq, String> {
        let bin = which("dnsmasq").expect("dnsmasq");
        let dir = TempDir::new("dnsmasq");
        let port = free_port();
        let log = std::fs::File::create(dir.join("dnsmasq.log")).unwrap();
        let child = Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--local=/test/",
                "--host-record=ready.test,127.0.0.1",
                &format!("--local-ttl={ttl}"),
                &format!("--port={port}"),
            ])
            .args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start dnsmasq");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut d = Dnsmasq { addr, child, _dir: dir, stopped: false };
        d.wait_ready()?;
        Ok(d)
    }

    /// Waits until dnsmasq answers a query (it binds after a short start-up); an error if it exits.
    fn wait_ready(&mut self) -> Result<(), String> {
        let r = resolver(self.addr);
        let rt = rt();
        for _ in 0..200 {
            if rt.block_on(r.lookup_ip("ready.test", Family::V4Only)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("dnsmasq on {} exited: {st}; log:\n{}", self.addr, self.log()));
            }
        }
        panic!("dnsmasq on {} never answered; log:\n{}", self.addr, self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// Stops the process (SIGSTOP): from now on queries are never answered.
    fn freeze(&mut self) {
        signal(self.child.id(), "-STOP");
        self.stopped = true;
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if self.stopped {
            signal(self.child.id(), "-CONT");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(sig).arg(pid.to_string()).status();
}

fn have_dnsmasq() -> bool {
    peer_available("dnsmasq", "dnsmasq-base")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A resolver asking only `server`, with no search domain, a short timeout and an empty hosts file.
fn resolver(server: SocketAddr) -> Resolver {
    let files = test_files("", "");
    Resolver::from_settings(&ResolverSettings {
        server: Some(server),
        resolv_conf: Some(files.0.clone()),
        hosts: Some(files.1.clone()),
    })
    .unwrap()
    .with_timeout(Duration::from_millis(300), 1)
}

/// A resolv.conf (`options timeout:1 attempts:1` plus `extra`) and a hosts file, in a directory that
/// lives as long as the process (the files are small).
fn test_files(extra: &str, hosts: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sf-dnsfiles-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("resolv.conf");
    let hosts_path = dir.join("hosts");
    std::fs::write(&conf, format!("options timeout:1 attempts:1\n{extra}\n")).unwrap();
    std::fs::write(&hosts_path, hosts).unwrap();
    (conf, hosts_path)
}

fn ep(host: &str, port: Option<u16>) -> Endpoint {
    Endpoint::new(host, port)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn rec(s: &str) -> String {
    s.to_string()
}

#[test]
fn naptr_leads_to_srv_and_addresses_for_each_transport() {
    if !have_dnsmasq() {
        return;
    }
    let dns = Dnsmasq::start(&[
        // UDP offered: NAPTR -> _sip._udp SRV -> A.
        rec("--naptr-record=pbx.test,10,50,S,SIP+D2U,,_sip._udp.pbx.test"),
        rec("--srv-host=_sip._udp.pbx.test,a.pbx.test,5071,10,0"),
        rec("--host-record=a.pbx.test,127.0.0.11"),
        // TCP preferred by order, UDP second: the agent takes what it can probe.
        rec("--naptr-record=mixed.test,10,50,S,SIP+D2T,,_sip._tcp.mixed.test"),
        rec("--naptr-record=mixed.test,20,50,S,SIP+D2U,,_sip._udp.mixed.test"),
        rec("--srv-host=_sip._tcp.mixed.test,a.pbx.test,5072,10,0"),
        rec("--srv-host=_sip._udp.mixed.test,a.pbx.test,5073,10,0"),
        // Only TCP and TLS: a clear error listing them for a UDP server; a `sips:` server takes the
        // SIPS+D2T record, a `;transport=tcp` one the SIP+D2T record.
        rec("--naptr-record=streams.test,10,50,S,SIPS+D2T,,_sips._tcp.streams.test"),
        rec("--naptr-record=streams.test,20,50,S,SIP+D2T,,_sip._tcp.streams.test"),
        rec("--srv-host=_sips._tcp.streams.test,a.pbx.test,5061,10,0"),
        rec("--srv-host=_sip._tcp.streams.test,a.pbx.test,5060,10,0"),
        // NAPTR pointing at an SRV name that does not exist; SRV whose target has no address.
        rec("--naptr-record=dangling.test,10,50,S,SIP+D2U,,_sip._udp.nowhere.test"),
        rec("--srv-host=_sip._udp.hollow.test,ghost.hollow.test,5060,10,0"),
        // No NAPTR: SRV directly; no SRV either: A on 5060.
        rec("--srv-host=_sip._udp.srvonly.test,a.pbx.test,5074,10,0"),
        rec("--srv-host=_sips._tcp.srvonly.test,a.pbx.test,5075,10,0"),
        rec("--srv-host=_sip._tcp.srvonly.test,a.pbx.test,5076,10,0"),
        rec("--host-record=plain.test,127.0.0.12"),
    ]);
    let r = resolver(dns.addr);
    rt().block_on(async {
        let got = r.resolve(&ep("pbx.test", None), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.11:5071")]);
        assert!(got.via_naptr && got.via_srv);
        assert_eq!(got.transport, Transport::Udp);
        assert_eq!(got.ttl, Some(Duration::from_secs(3600)));

        let got = r.resolve(&ep("mixed.test", None), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.11:5073")], "the UDP NAPTR, though TCP comes first");
        assert!(got.via_naptr);

        match r.resolve(&ep("streams.test", None), Family::V4First).await {
            Err(e @ DnsError::UnsupportedTransport { .. }) => {
                let DnsError::UnsupportedTransport { offered, wanted } = &e else { unreachable!() };
                assert_eq!(offered, &vec![Transport::Tls, Transport::Tcp]);
                assert_eq!(*wanted, Transport::Udp);
                assert_eq!(e.code(), "unsupported_transport");
                assert_eq!(e.to_string(), "NAPTR offers SIP only over tls, tcp (the server is configured for udp)");
            }
            other => panic!("streams.test: {other:?}"),
        }
        // sips: the SIPS+D2T record and its _sips._tcp SRV; transport=tcp: the SIP+D2T record.
        let got = r.resolve(&ep("streams.test", None).over(Transport::Tls), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.11:5061")]);
        assert!(got.via_naptr && got.via_srv);
        assert_eq!(got.transport, Transport::Tls);
        let got = r.resolve(&ep("streams.test", None).over(Transport::Tcp), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.11:5060")]);
        assert_eq!(got.transport, Transport::Tcp);
        // A UDP-only NAPTR set for a TLS server: the error names both.
        let e = r.resolve(&ep("pbx.test", None).over(Transport::Tls), Family::V4First).await.unwrap_err();
        assert_eq!(e.to_string(), "NAPTR offers SIP only over udp (the server is configured for tls)");

        let e = r.resolve(&ep("dangling.test", None), Family::V4First).await.unwrap_err();
        assert_eq!(e.code(), "targets_point_nowhere", "{e}");
        let e = r.resolve(&ep("hollow.test", None), Family::V4First).await.unwrap_err();
        assert_eq!(e.code(), "targets_point_nowhere", "{e}");

        let got = r.resolve(&ep("srvonly.test", None), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.11:5074")]);
        assert!(got.via_srv && !got.via_naptr);
        // Without NAPTR, the transport's own SRV name: _sips._tcp for sips:, _sip._tcp for TCP.
        let got = r.resolve(&ep("srvonly.test", None).over(Transport::Tls), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.11:5075")]);
        assert!(got.via_srv && !got.via_naptr);
        assert_eq!(got.transport, Transport::Tls);
        let got = r.resolve(&ep("srvonly.test", None).over(Transport::Tcp), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.11:5076")]);

        let got = r.resolve(&ep("plain.test", None), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.12:5060")]);
        assert!(!got.via_srv);
        // No SRV for TLS either: the name's address on 5061.
        let got = r.resolve(&ep("plain.test", None).over(Transport::Tls), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.12:5061")]);
    });
}

#[test]
fn srv_priority_then_weight_and_the_bind_family() {
    if !have_dnsmasq() {
        return;
    }
    let dns = Dnsmasq::start(&[
        rec("--srv-host=_sip._udp.prio.test,b.test,5002,20,100"),
        rec("--srv-host=_sip._udp.prio.test,a.test,5001,10,0"),
        rec("--srv-host=_sip._udp.weighted.test,a.test,6001,10,1"),
        rec("--srv-host=_sip._udp.weighted.test,a.test,6002,10,99"),
        rec("--host-record=a.test,127.0.0.21"),
        rec("--host-record=b.test,127.0.0.22"),
        rec("--host-record=dual.test,127.0.0.23,::1"),
    ]);
    let r = resolver(dns.addr);
    rt().block_on(async {
        let got = r.resolve(&ep("prio.test", None), Family::V4Only).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.21:5001"), sa("127.0.0.22:5002")]);
        // Weights 99 and 1 at one priority: the heavy one first about 99 times in 100.
        let mut heavy_first = 0;
        for _ in 0..60 {
            let got = r.resolve(&ep("weighted.test", None), Family::V4Only).await.unwrap();
            assert_eq!(got.candidates.len(), 2);
            if got.candidates[0].port() == 6002 {
                heavy_first += 1;
            }
        }
        assert!(heavy_first >= 52, "weight 99 first {heavy_first} of 60 times");
        let got = r.resolve(&ep("dual.test", Some(5070)), Family::V4First).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.23:5070"), sa("[::1]:5070")]);
        let got = r.resolve(&ep("dual.test", Some(5070)), Family::V6Only).await.unwrap();
        assert_eq!(got.candidates, vec![sa("[::1]:5070")]);
        let got = r.resolve(&ep("dual.test", Some(5070)), Family::V4Only).await.unwrap();
        assert_eq!(got.candidates, vec![sa("127.0.0.23:5070")]);
    });
}

#[test]
fn nxdomain_and_a_server_that_never_answers_are_clear_errors() {
    if !have_dnsmasq() {
        return;
    }
    let dns = Dnsmasq::start(&[]);
    let r = resolver(dns.addr);
    let rt = rt();
    let e = rt.block_on(r.resolve(&ep("nothing.test", None), Family::V4First)).unwrap_err();
    assert!(matches!(e, DnsError::NxDomain), "{e:?}");
    assert_eq!(e.to_string(), "no such name");
    let e = rt.block_on(r.resolve(&ep("nothing.test", Some(5060)), Family::V4First)).unwrap_err();
    assert!(matches!(e, DnsError::NxDomain), "{e:?}");

    // A socket that reads nothing: every query times out.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = resolver(silent.local_addr().unwrap());
    let e = rt.block_on(r.resolve(&ep("pbx.test", None), Family::V4First)).unwrap_err();
    assert!(matches!(e, DnsError::Timeout), "{e:?}");
    assert_eq!(e.code(), "timeout");
}

/// The agent's `run` arguments for a primary and a backup, with the test's resolver files.
fn agent_args(primary: &str, backup: &str, dns: SocketAddr, files: &(PathBuf, PathBuf)) -> Vec<String> {
    [
        "--primary",
        primary,
        "--backup",
        backup,
        "--resolver",
        &dns.to_string(),
        "--resolv-conf",
        files.0.to_str().unwrap(),
        "--hosts",
        files.1.to_str().unwrap(),
        "--bind",
        "127.0.0.1",
        "--interval",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start_agent(args: &[String], dir: &TempDir) -> AgentProc {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    AgentProc::start(&a, dir.path())
}

/// The primary's probes of one cycle: (attempt, destination), in order, from the cycle whose first
/// attempt is the `n`-th (1-based) first attempt.
fn ladder(events: &[Value], n: usize) -> Vec<(u64, String)> {
    let probes: Vec<&Value> = events.iter().filter(|e| e["event"] == "probe" && e["server"] == "primary").collect();
    let start = probes.iter().enumerate().filter(|(_, e)| e["attempt"] == 1).nth(n - 1).map(|(i, _)| i);
    let Some(start) = start else { return Vec::new() };
    let cycle = probes[start..].iter().enumerate().take_while(|(i, e)| *i == 0 || e["attempt"] != 1);
    cycle.map(|(_, e)| (e["attempt"].as_u64().unwrap(), e["destination"].as_str().unwrap().to_owned())).collect()
}

/// Several SRV targets behind the primary, the first one dead (RFC 3263 4.3): the ladder's second
/// attempt goes to the next target, which answers, so the cycle is alive and the phone stays on the
/// primary; the next cycle starts at the target that answered.
#[test]
fn the_next_srv_target_answers_before_the_backup_is_needed() {
    if !have_dnsmasq() {
        return;
    }
    let dir = TempDir::new("dnsmasq-agent");
    let dead = Responder::start(Mode::Drop);
    let alive = Responder::start(Mode::Answer(200));
    let backup = Responder::start(Mode::Answer(200));
    let dns = Dnsmasq::start(&[
        format!("--srv-host=_sip._udp.pbx-a.test,a1.pbx-a.test,{},10,0", dead.addr.port()),
        format!("--srv-host=_sip._udp.pbx-a.test,a2.pbx-a.test,{},20,0", alive.addr.port()),
        rec("--host-record=a1.pbx-a.test,127.0.0.1"),
        rec("--host-record=a2.pbx-a.test,127.0.0.1"),
    ]);
    let files = test_files("", "");
    let mut agent = start_agent(&agent_args("pbx-a.test", &backup.addr.to_string(), dns.addr, &files), &dir);
    let started = agent.wait_for(Duration::from_secs(10), "started", |e| e["event"] == "started");
    assert_eq!(started["primary"]["next_hop"], dead.addr.to_string(), "priority 10 first");
    let resolved = agent.wait_for(Duration::from_secs(10), "resolved", |e| e["event"] == "resolved");
    assert_eq!(resolved["alternates"], json!([alive.addr.to_string()]), "{resolved}");

    // Attempt 1 to the dead target goes unanswered; attempt 2, 800 ms later, goes to the next one.
    let reply = agent.wait_for(Duration::from_secs(10), "the next target's reply", |e| {
        e["event"] == "reply" && e["server"] == "primary"
    });
    assert_eq!(reply["attempt"], 2, "{}", agent.dump());
    let first = ladder(&agent.events, 1);
    assert_eq!(first, vec![(1, dead.addr.to_string()), (2, alive.addr.to_string())], "{}", agent.dump());
    let cycle = agent
        .wait_for(Duration::from_secs(5), "cycle result", |e| e["event"] == "cycle_result" && e["server"] == "primary");
    assert_eq!(cycle["alive"], true, "{cycle}");
    // The next cycle starts at the target that answered, and is answered at once.
    agent.wait_nth(Duration::from_secs(5), "reply", 2, |e| e["server"] == "primary");
    assert_eq!(ladder(&agent.events, 2), vec![(1, alive.addr.to_string())], "{}", agent.dump());
    assert!(agent.named("switch").is_empty(), "no failover while a target of the primary answers: {}", agent.dump());
    assert_eq!((dead.count(), alive.count()), (1, 2));
}

/// Every target of the primary dead: the ladder goes round them (first, second, first again) and the
/// phone fails over at the cycle's end, 1600 ms after its first probe, as for a single address.
#[test]
fn every_srv_target_dead_fails_over_after_one_ladder() {
    if !have_dnsmasq() {
        return;
    }
    let dir = TempDir::new("dnsmasq-agent-dead");
    let dead1 = Responder::start(Mode::Drop);
    let dead2 = Responder::start(Mode::Drop);
    let backup = Responder::start(Mode::Answer(200));
    let dns = Dnsmasq::start(&[
        format!("--srv-host=_sip._udp.pbx-a.test,a1.pbx-a.test,{},10,0", dead1.addr.port()),
        format!("--srv-host=_sip._udp.pbx-a.test,a2.pbx-a.test,{},20,0", dead2.addr.port()),
        rec("--host-record=a1.pbx-a.test,127.0.0.1"),
        rec("--host-record=a2.pbx-a.test,127.0.0.1"),
    ]);
    let files = test_files("", "");
    let mut agent = start_agent(&agent_args("pbx-a.test", &backup.addr.to_string(), dns.addr, &files), &dir);
    let switch = agent.wait_for(Duration::from_secs(10), "failover", |e| e["event"] == "switch");
    assert_eq!((switch["to"].as_str(), switch["reason"].as_str()), (Some("backup"), Some("failover")));
    let (d1, d2) = (dead1.addr.to_string(), dead2.addr.to_string());
    assert_eq!(ladder(&agent.events, 1), vec![(1, d1.clone()), (2, d2), (3, d1)], "{}", agent.dump());
    let first = attempts(&agent.events, "primary", 0)[0].0;
    assert!(t(&switch) >= first + 1600, "not before the ladder's end: {}", agent.dump());
    // The failed server's name is looked up again, and the list starts at the next candidate.
    let again = agent.wait_for(Duration::from_secs(5), "looked up again", |e| {
        e["event"] == "resolved" && e["server"] == "primary" && e["reason"] == "server_failed"
    });
    assert_eq!(again["next_hop"], dead2.addr.to_string(), "{again}");
    assert_eq!(again["alternates"], json!([dead1.addr.to_string()]), "{again}");
}

#[test]
fn localhost_a_hosts_file_and_a_search_domain() {
    if !have_dnsmasq() {
        return;
    }
    let dir = TempDir::new("dnsmasq-names");
    let p = Responder::start(Mode::Answer(200));
    let b = Responder::start(Mode::Answer(200));
    let dns = Dnsmasq::start(&[rec("--host-record=pbx.lab.test,127.0.0.1")]);
    let files = test_files("search lab.test", "127.0.0.1 pbx-from-hosts.lab\n");
    // `pbx` is completed by the search domain; `pbx-from-hosts.lab` exists only in the hosts file.
    let args = agent_args(
        &format!("pbx:{}", p.addr.port()),
        &format!("pbx-from-hosts.lab:{}", b.addr.port()),
        dns.addr,
        &files,
    );
    let mut agent = start_agent(&args, &dir);
    let started = agent.wait_for(Duration::from_secs(10), "started", |e| e["event"] == "started");
    assert_eq!(started["primary"]["next_hop"], p.addr.to_string(), "{started}");
    assert_eq!(started["backup"]["next_hop"], b.addr.to_string(), "{started}");
    agent.wait_for(Duration::from_secs(5), "primary reply", |e| e["event"] == "reply" && e["server"] == "primary");
    agent.wait_for(Duration::from_secs(5), "backup reply", |e| e["event"] == "reply" && e["server"] == "backup");
    drop(agent);

    // `localhost` with the system's own files.
    let mut agent = AgentProc::start(
        &["--primary", &format!("localhost:{}", p.addr.port()), "--bind", "127.0.0.1", "--interval", "2"],
        dir.path(),
    );
    let started = agent.wait_for(Duration::from_secs(10), "started", |e| e["event"] == "started");
    assert_eq!(started["primary"]["next_hop"], p.addr.to_string(), "{started}");
    agent.wait_for(Duration::from_secs(5), "reply", |e| e["event"] == "reply" && e["server"] == "primary");
}

/// The resolver stops answering while the agent runs: the primary's lookup fails with a clear
/// event, is retried with backoff, and the backup's probing goes on; nothing panics.
#[test]
fn a_resolver_that_stops_answering_leaves_the_other_server_probed() {
    if !have_dnsmasq() {
        return;
    }
    let dir = TempDir::new("dnsmasq-frozen");
    let dead = Responder::start(Mode::Drop);
    let backup = Responder::start(Mode::Answer(200));
    // A 1 s TTL: the records run out of the cache soon after the resolver stops.
    let mut dns = Dnsmasq::start_ttl(
        &[
            format!("--srv-host=_sip._udp.pbx-f.test,a.pbx-f.test,{},10,0", dead.addr.port()),
            rec("--host-record=a.pbx-f.test,127.0.0.1"),
        ],
        1,
    );
    let files = test_files("", "");
    let mut agent = start_agent(&agent_args("pbx-f.test", &backup.addr.to_string(), dns.addr, &files), &dir);
    agent.wait_for(Duration::from_secs(10), "started", |e| e["event"] == "started");
    dns.freeze();
    // The records' TTL runs out (or the primary fails a cycle): the lookup meets a silent resolver.
    let first = agent.wait_for(Duration::from_secs(20), "resolve_failed", |e| {
        e["event"] == "resolve_failed" && e["server"] == "primary"
    });
    assert_eq!(first["host"], "pbx-f.test");
    assert_eq!(first["code"], "timeout", "{first}");
    agent.wait_for(Duration::from_secs(8), "backup reply after the failed lookup", |e| {
        e["event"] == "reply" && e["server"] == "backup" && t(e) > t(&first)
    });
    assert!(agent.child.try_wait().unwrap().is_none(), "the agent is still running");
}
