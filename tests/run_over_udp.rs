//! `sip-failover run` over real UDP on loopback, against in-test responders: the JSON event schema,
//! the retry ladder's spacing on the wire, failover, and the ICMP port-unreachable path with fast
//! detection on and off.

mod interop_common;

use std::time::Duration;

use interop_common::*;
use serde_json::Value;

fn args(primary: &str, backup: &str) -> Vec<String> {
    ["--primary", primary, "--backup", backup, "--interval", "2"].iter().map(|s| s.to_string()).collect()
}

fn start(extra: &[String], dir: &TempDir) -> AgentProc {
    let a: Vec<&str> = extra.iter().map(String::as_str).collect();
    AgentProc::start(&a, dir.path())
}

#[test]
fn healthy_pair_emits_schema_conformant_events_and_never_switches() {
    let dir = TempDir::new("udp-ok");
    let p = Responder::start(Mode::Answer(200));
    let b = Responder::start(Mode::Answer(200));
    let mut agent = start(&args(&p.addr.to_string(), &b.addr.to_string()), &dir);
    let started = agent.wait_for(Duration::from_secs(5), "started", |e| e["event"] == "started");
    assert_eq!(started["active"], "primary");
    assert_eq!(started["primary"]["next_hop"], p.addr.to_string());
    // Two full cycles (interval 2 s): replies from both on both.
    agent.wait_nth(Duration::from_secs(8), "reply", 4, |_| true);
    agent.collect_for(Duration::from_millis(300));
    for e in &agent.events {
        assert!(e["event"].is_string(), "{e}");
        assert!(e["t_ms"].is_u64(), "{e}");
        let utc = e["utc"].as_str().unwrap();
        assert!(utc.len() >= 20 && utc.contains('T') && utc.ends_with('Z'), "utc {utc}");
    }
    let probes = agent.named("probe");
    assert!(probes.len() >= 4);
    for pr in &probes {
        assert!(pr["server"] == "primary" || pr["server"] == "backup", "{pr}");
        assert_eq!(pr["attempt"], 1, "healthy servers need one attempt: {pr}");
        assert!(pr["destination"].is_string());
    }
    for r in agent.named("reply") {
        assert_eq!(r["status"], 200);
        assert!(r["rtt_ms"].as_f64().unwrap() < 500.0);
    }
    // Cycles start on a 2 s grid.
    let starts: Vec<u64> = probes.iter().filter(|p| p["server"] == "primary").map(t).collect();
    let gap = starts[1] - starts[0];
    assert!((1950..=2100).contains(&gap), "cycle spacing {gap} ms");
    // The t_ms clock is monotonic.
    let ts: Vec<u64> = agent.events.iter().map(t).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    assert!(agent.named("switch").is_empty(), "{}", agent.dump());
    assert!(agent.terminate(), "the agent stops on SIGTERM");
    agent.collect_for(Duration::from_millis(300));
    assert_eq!(agent.named("stopped").len(), 1, "{}", agent.dump());
}

#[test]
fn silent_primary_runs_the_ladder_then_fails_over() {
    let dir = TempDir::new("udp-silent");
    let p = Responder::start(Mode::Drop);
    let b = Responder::start(Mode::Answer(200));
    let mut agent = start(&args(&p.addr.to_string(), &b.addr.to_string()), &dir);
    let sw = agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    assert_eq!(sw["from"], "primary");
    assert_eq!(sw["to"], "backup");
    assert_eq!(sw["reason"], "failover");
    assert_eq!(sw["generation"], 1);
    let applied = agent.wait_for(Duration::from_secs(2), "applied", |e| e["event"] == "applied");
    assert_eq!(applied["side"], "backup");

    let a = attempts(&agent.events, "primary", 0);
    assert_eq!(a.iter().map(|x| x.1).collect::<Vec<_>>()[..3], [1, 2, 3], "{a:?}");
    let (t1, t2, t3) = (a[0].0, a[1].0, a[2].0);
    assert!((780..=900).contains(&(t2 - t1)), "attempt 2 at +{} ms", t2 - t1);
    assert!((380..=500).contains(&(t3 - t2)), "attempt 3 at +{} ms after attempt 2", t3 - t2);
    let ts = t(&sw);
    assert!((1550..=1800).contains(&(ts - t1)), "switch at +{} ms", ts - t1);
    // The responder saw the three attempts, each a new transaction (new branch, CSeq + 1).
    let got = p.received.lock().unwrap().clone();
    assert!(got.len() >= 3);
    let branch = |r: &str| r.split("branch=").nth(1).unwrap().split([';', '\r']).next().unwrap().to_string();
    assert_ne!(branch(&got[0].1), branch(&got[1].1));
    let timeouts = agent.named("timeout");
    assert!(timeouts.iter().any(|e| e["server"] == "primary" && e["attempt"] == 3));
    let down = agent.wait_for(Duration::from_secs(1), "server_down", |e| e["event"] == "server_down");
    assert_eq!(down["reason"], "timeout");
}

fn refused_switch_delay(fast: bool) -> (u64, Vec<Value>) {
    let dir = TempDir::new("udp-refused");
    let closed = closed_port();
    let b = Responder::start(Mode::Answer(200));
    let mut a = args(&closed.to_string(), &b.addr.to_string());
    if fast {
        a.push("--fast-refused".into());
    }
    let mut agent = start(&a, &dir);
    let sw = agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    assert_eq!(sw["to"], "backup");
    let first = attempts(&agent.events, "primary", 0)[0].0;
    (t(&sw) - first, agent.events.clone())
}

#[test]
fn icmp_refused_with_fast_detection_switches_well_before_the_ladder_ends() {
    let (delay, events) = refused_switch_delay(true);
    assert!(delay < 800, "switch {delay} ms after the first probe");
    assert!(events.iter().any(|e| e["event"] == "refused" && e["server"] == "primary"));
    let down = events.iter().find(|e| e["event"] == "server_down").unwrap();
    assert_eq!(down["reason"], "refused");
}

#[test]
fn icmp_refused_without_fast_detection_waits_the_full_ladder() {
    let (delay, events) = refused_switch_delay(false);
    assert!((1550..=1800).contains(&delay), "switch {delay} ms after the first probe");
    assert!(!events.iter().any(|e| e["event"] == "refused"));
}

#[test]
fn ipv6_loopback_servers_work() {
    if !skip::need_ipv6_loopback() {
        return;
    }
    let dir = TempDir::new("udp-v6");
    let p = Responder::start_on("[::1]:0", Mode::Drop);
    let b = Responder::start_on("[::1]:0", Mode::Answer(200));
    let mut agent = start(&args(&p.addr.to_string(), &b.addr.to_string()), &dir);
    let sw = agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    assert_eq!(sw["to"], "backup");
    let req = p.received.lock().unwrap()[0].1.clone();
    assert!(req.contains("SIP/2.0/UDP [::1]:"), "Via carries the bound IPv6 address: {req}");
}

#[test]
fn via_carries_the_real_local_address() {
    let dir = TempDir::new("udp-via");
    let p = Responder::start(Mode::Answer(200));
    let mut agent = start(&["--primary".to_string(), p.addr.to_string(), "--interval".into(), "2".into()], &dir);
    agent.wait_for(Duration::from_secs(5), "reply", |e| e["event"] == "reply");
    let req = p.received.lock().unwrap()[0].1.clone();
    let started = agent.events.iter().find(|e| e["event"] == "started").unwrap().clone();
    let local = started["primary"]["local"].as_str().unwrap().to_string();
    assert!(local.starts_with("127.0.0.1:") && !local.ends_with(":0"), "{local}");
    assert!(req.contains(&format!("SIP/2.0/UDP {local}")), "Via names {local}: {req}");
    assert!(agent.named("switch").is_empty());
}

#[test]
fn a_dual_stack_bind_reaches_ipv4_servers() {
    if !skip::need_ipv6_loopback() {
        return;
    }
    let dir = TempDir::new("udp-dual");
    let p = Responder::start(Mode::Answer(200));
    let b = Responder::start_on("[::1]:0", Mode::Answer(200));
    let mut a = args(&p.addr.to_string(), &b.addr.to_string());
    a.extend(["--bind".to_string(), "::".to_string(), "--dscp".to_string(), "cs3".to_string()]);
    let mut agent = start(&a, &dir);
    agent.wait_for(Duration::from_secs(5), "reply from the IPv4 primary", |e| {
        e["event"] == "reply" && e["server"] == "primary"
    });
    agent.wait_for(Duration::from_secs(5), "reply from the IPv6 backup", |e| {
        e["event"] == "reply" && e["server"] == "backup"
    });
    let req = p.received.lock().unwrap()[0].1.clone();
    assert!(req.contains("SIP/2.0/UDP 127.0.0.1:"), "Via names the IPv4 address, not a mapped one: {req}");
    assert!(agent.named("switch").is_empty());
}
