//! `sip-failover run` over real UDP on loopback, against in-test responders: the JSON event schema,
//! the retry ladder on the wire, failover, and the ICMP port-unreachable path with fast detection on
//! and off. These tests wait for events and check what happened and in which order; the exact times
//! (attempts at 0, 800 and 1200 ms, the switch at 1600 ms, the 2 s grid) are asserted on the paused
//! clock in `run_on_paused_clock.rs` and on the core harness.

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
        assert!(r["rtt_ms"].as_f64().is_some_and(|v| v >= 0.0), "{r}");
    }
    // Two cycles to the primary, the second after the first.
    let starts: Vec<u64> = probes.iter().filter(|p| p["server"] == "primary").map(t).collect();
    assert!(starts.len() >= 2 && starts[1] > starts[0], "{starts:?}");
    // The t_ms clock is monotonic.
    let ts: Vec<u64> = agent.events.iter().map(t).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    assert!(agent.named("switch").is_empty(), "{}", agent.dump());
    assert!(agent.terminate(), "the agent stops on SIGTERM");
    agent.wait_for(Duration::from_secs(5), "stopped", |e| e["event"] == "stopped");
    assert_eq!(agent.named("stopped").len(), 1, "{}", agent.dump());
}

/// The position of the first event matching `pred` in `events`.
fn position(events: &[Value], what: &str, pred: impl Fn(&Value) -> bool) -> usize {
    events.iter().position(pred).unwrap_or_else(|| panic!("no {what} in:\n{events:#?}"))
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

    // Three attempts to the primary, each timed out, and the switch only after the last one.
    let a = attempts(&agent.events, "primary", 0);
    assert_eq!(a.iter().map(|x| x.1).collect::<Vec<_>>()[..3], [1, 2, 3], "{a:?}");
    let ev = &agent.events;
    let timed_out = |n: u64| {
        position(ev, &format!("timeout of attempt {n}"), |e| {
            e["event"] == "timeout" && e["server"] == "primary" && e["attempt"] == n
        })
    };
    let probe = |n: u64| {
        position(ev, &format!("attempt {n}"), |e| {
            e["event"] == "probe" && e["server"] == "primary" && e["attempt"] == n
        })
    };
    let switched = position(ev, "switch", |e| e["event"] == "switch");
    assert!(probe(1) < timed_out(1) && timed_out(1) < probe(2), "attempt 2 follows the timeout of attempt 1");
    assert!(probe(2) < timed_out(2) && timed_out(2) < probe(3), "attempt 3 follows the timeout of attempt 2");
    assert!(probe(3) < timed_out(3) && timed_out(3) < switched, "the switch follows the last timeout");
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

/// Runs the agent with the primary on a closed port until it switches; returns its events.
fn refused_until_switch(fast: bool) -> Vec<Value> {
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
    agent.wait_for(Duration::from_secs(2), "server_down", |e| e["event"] == "server_down");
    agent.events.clone()
}

/// The events about the primary up to the switch, as (name, attempt).
fn primary_until_switch(events: &[Value]) -> Vec<(String, u64)> {
    events
        .iter()
        .take_while(|e| e["event"] != "switch")
        .filter(|e| e["server"] == "primary" && ["probe", "timeout", "refused"].contains(&e["event"].as_str().unwrap()))
        .map(|e| (e["event"].as_str().unwrap().to_string(), e["attempt"].as_u64().unwrap()))
        .collect()
}

#[test]
fn icmp_refused_with_fast_detection_ends_each_attempt_without_waiting() {
    let events = refused_until_switch(true);
    // Each attempt is refused by the kernel and the next one follows; no wait runs out.
    let seen = primary_until_switch(&events);
    let want: Vec<(String, u64)> = (1..=3).flat_map(|n| [("probe".into(), n), ("refused".into(), n)]).collect();
    assert_eq!(seen, want, "{events:#?}");
    let down = events.iter().find(|e| e["event"] == "server_down").unwrap();
    assert_eq!(down["reason"], "refused");
}

#[test]
fn icmp_refused_without_fast_detection_waits_the_full_ladder() {
    let events = refused_until_switch(false);
    let seen = primary_until_switch(&events);
    let want: Vec<(String, u64)> = (1..=3).flat_map(|n| [("probe".into(), n), ("timeout".into(), n)]).collect();
    assert_eq!(seen, want, "{events:#?}");
    let down = events.iter().find(|e| e["event"] == "server_down").unwrap();
    assert_eq!(down["reason"], "timeout");
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
