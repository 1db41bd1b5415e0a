//! Interop with SIPp (Debian package `sip-tester`) as the PBX pair on loopback. Each test starts two
//! SIPp UAS instances with a scenario from `tests/sipp/`, waits until they are up, runs the agent with
//! `--events json`, and checks the switch (or its absence) and the attempt timings on the wire.
//!
//! Without `sipp` on PATH the tests say so and pass, unless `REQUIRE_PEERS=1` (set in CI), where they
//! fail.

mod interop_common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use interop_common::*;
use serde_json::Value;

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(name)
}

/// A SIPp UAS on a free loopback port running `scenario_file`.
fn sipp(dir: &TempDir, name: &str, scenario_file: &str, answers: bool) -> Peer {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let args: Vec<String> = [
        "-sf",
        scenario(scenario_file).to_str().unwrap(),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-mp",
        &free_port().to_string(),
        "-cp",
        &free_port().to_string(),
        "-nostdin",
        "-trace_err",
        "-error_file",
        dir.join(&format!("{name}.err")).to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Peer::start(name, "sipp", &args, addr, dir.path(), answers)
}

fn run_agent(dir: &TempDir, p: &Peer, b: &Peer) -> AgentProc {
    AgentProc::start(
        &["--primary", &p.addr.to_string(), "--backup", &b.addr.to_string(), "--interval", "2"],
        dir.path(),
    )
}

fn in_window(v: u64, lo: u64, hi: u64, what: &str) {
    assert!((lo..=hi).contains(&v), "{what}: {v} ms, expected {lo}..={hi}");
}

#[test]
fn sipp_pair_answering_200_keeps_the_primary() {
    if !peer_available("sipp", "sip-tester") {
        return;
    }
    let dir = TempDir::new("sipp-200");
    let p = sipp(&dir, "primary", "uas_200.xml", true);
    let b = sipp(&dir, "backup", "uas_200.xml", true);
    let mut agent = run_agent(&dir, &p, &b);
    agent.wait_nth(Duration::from_secs(8), "reply", 2, |e| e["server"] == "primary");
    agent.collect_for(Duration::from_millis(300));
    for r in agent.named("reply") {
        assert_eq!(r["status"], 200);
        assert_eq!(r["attempt"], 1, "answered at the first attempt: {r}");
    }
    for c in cycles(&agent.events, "primary") {
        assert_eq!(c.len(), 1, "one attempt per cycle: {c:?}");
    }
    assert!(agent.named("switch").is_empty(), "{}", agent.dump());
}

#[test]
fn sipp_primary_never_answering_fails_over_after_the_ladder() {
    if !peer_available("sipp", "sip-tester") {
        return;
    }
    let dir = TempDir::new("sipp-never");
    let p = sipp(&dir, "primary", "uas_never.xml", false);
    let b = sipp(&dir, "backup", "uas_200.xml", true);
    let mut agent = run_agent(&dir, &p, &b);
    let sw = agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    assert_eq!(sw["from"], "primary");
    assert_eq!(sw["to"], "backup");
    assert_eq!(sw["reason"], "failover");
    assert_eq!(sw["generation"], 1);
    let c = &cycles(&agent.events, "primary")[0];
    assert_eq!(c.iter().map(|x| x.1).collect::<Vec<_>>(), [1, 2, 3], "{c:?}");
    in_window(c[1].0 - c[0].0, 780, 900, "attempt 2 after attempt 1");
    in_window(c[2].0 - c[0].0, 1180, 1300, "attempt 3 after attempt 1");
    in_window(t(&sw) - c[0].0, 1580, 1750, "switch after attempt 1");
    agent.wait_for(Duration::from_secs(1), "applied", |e| e["event"] == "applied" && e["side"] == "backup");
}

#[test]
fn sipp_primary_answering_503_fails_over_without_retrying() {
    if !peer_available("sipp", "sip-tester") {
        return;
    }
    let dir = TempDir::new("sipp-503");
    let p = sipp(&dir, "primary", "uas_503.xml", true);
    let b = sipp(&dir, "backup", "uas_200.xml", true);
    let mut agent = run_agent(&dir, &p, &b);
    let sw = agent.wait_for(Duration::from_secs(4), "switch", |e| e["event"] == "switch");
    assert_eq!((sw["to"].as_str(), sw["reason"].as_str()), (Some("backup"), Some("failover")));
    let reply = agent.events.iter().find(|e| e["event"] == "reply" && e["server"] == "primary").unwrap().clone();
    assert_eq!(reply["status"], 503);
    assert_eq!(reply["retry_after"], 60);
    let down = agent.events.iter().find(|e| e["event"] == "server_down").unwrap().clone();
    assert_eq!((down["reason"].as_str(), down["status"].as_u64()), (Some("status"), Some(503)));
    let c = &cycles(&agent.events, "primary")[0];
    assert_eq!(c.len(), 1, "a 503 is an answer: no retry");
    assert!(t(&sw) - c[0].0 < 500, "the switch follows the answers, not the ladder");
}

#[test]
fn sipp_primary_answering_after_1000_ms_stays_in_force() {
    if !peer_available("sipp", "sip-tester") {
        return;
    }
    let dir = TempDir::new("sipp-slow");
    let p = sipp(&dir, "primary", "uas_delay_1000.xml", true);
    let b = sipp(&dir, "backup", "uas_200.xml", true);
    let mut agent = run_agent(&dir, &p, &b);
    agent.wait_nth(Duration::from_secs(8), "reply", 2, |e| e["server"] == "primary");
    agent.collect_for(Duration::from_millis(200));
    let replies: Vec<Value> = agent.named("reply").into_iter().filter(|r| r["server"] == "primary").collect();
    for r in &replies {
        // The late answer to attempt 1 counts, arriving while attempt 2 waits.
        assert_eq!(r["attempt"], 1, "{r}");
        let rtt = r["rtt_ms"].as_f64().unwrap();
        assert!((950.0..=1150.0).contains(&rtt), "rtt {rtt} ms");
    }
    for c in cycles(&agent.events, "primary").iter().take(2) {
        assert_eq!(c.iter().map(|x| x.1).collect::<Vec<_>>(), [1, 2], "no third attempt: {c:?}");
        in_window(c[1].0 - c[0].0, 780, 900, "attempt 2 after attempt 1");
    }
    assert!(agent.named("switch").is_empty(), "{}", agent.dump());
    assert!(agent.named("server_down").is_empty());
}

#[test]
fn sipp_primary_losing_every_other_reply_is_rescued_by_the_second_attempt() {
    if !peer_available("sipp", "sip-tester") {
        return;
    }
    let dir = TempDir::new("sipp-lose2");
    let p = sipp(&dir, "primary", "uas_lose_every_other.xml", false);
    let b = sipp(&dir, "backup", "uas_200.xml", true);
    let mut agent = run_agent(&dir, &p, &b);
    agent.wait_nth(Duration::from_secs(8), "reply", 2, |e| e["server"] == "primary");
    agent.collect_for(Duration::from_millis(200));
    for r in agent.named("reply").iter().filter(|r| r["server"] == "primary") {
        assert_eq!(r["attempt"], 2, "{r}");
        assert!(r["rtt_ms"].as_f64().unwrap() < 200.0);
    }
    for c in cycles(&agent.events, "primary").iter().take(2) {
        assert_eq!(c.iter().map(|x| x.1).collect::<Vec<_>>(), [1, 2], "{c:?}");
        in_window(c[1].0 - c[0].0, 780, 900, "attempt 2 after attempt 1");
    }
    assert!(agent.named("switch").is_empty(), "{}", agent.dump());
    assert!(agent.named("server_down").is_empty());
}

#[test]
fn sipp_primary_losing_half_its_replies_at_random_fails_only_when_the_whole_ladder_is_lost() {
    if !peer_available("sipp", "sip-tester") {
        return;
    }
    let dir = TempDir::new("sipp-lose-rand");
    let p = sipp(&dir, "primary", "uas_lose_half_random.xml", false);
    let b = sipp(&dir, "backup", "uas_200.xml", true);
    let mut agent = run_agent(&dir, &p, &b);
    // Five cycles at 2 s.
    agent.wait_nth(Duration::from_secs(14), "probe", 6, |e| e["server"] == "primary" && e["attempt"] == 1);
    agent.collect_for(Duration::from_millis(100));
    let ev = &agent.events;
    let mut answered = 0;
    for c in cycles(ev, "primary").iter().take(5) {
        let start = c[0].0;
        let end = start + 1700;
        let reply =
            ev.iter().find(|e| e["event"] == "reply" && e["server"] == "primary" && (start..end).contains(&t(e)));
        let failed = ev.iter().any(|e| {
            e["event"] == "timeout" && e["server"] == "primary" && e["attempt"] == 3 && (start..end).contains(&t(e))
        });
        match reply {
            Some(r) => {
                answered += 1;
                assert!(!failed, "a cycle with an answer must not fail: {c:?}");
                // The answer came to the last attempt sent in that cycle (the agent stops on it).
                assert_eq!(r["attempt"].as_u64(), c.last().map(|x| x.1), "{r} in {c:?}");
            }
            None => {
                assert_eq!(c.len(), 3, "no answer: the whole ladder ran: {c:?}");
                assert!(failed);
            }
        }
        for w in c.windows(2) {
            let gap = w[1].0 - w[0].0;
            let want = if w[1].1 == 2 { (780, 900) } else { (380, 500) };
            in_window(gap, want.0, want.1, "attempt spacing");
        }
    }
    // A failover happens only at the end of a cycle in which every answer was lost.
    for sw in agent.named("switch") {
        if sw["reason"] == "failback" {
            // Back to the primary after it answered cycles again: the failback policy, not loss.
            assert_eq!(sw["to"], "primary");
            continue;
        }
        assert_eq!(sw["reason"], "failover");
        let ts = t(&sw);
        assert!(
            ev.iter().any(|e| e["event"] == "timeout"
                && e["server"] == "primary"
                && e["attempt"] == 3
                && ts.abs_diff(t(e)) <= 20),
            "switch at {ts} not at the end of a fully lost ladder"
        );
    }
    // With seven chances in eight per cycle, most cycles are answered.
    assert!(answered >= 2, "only {answered} of 5 cycles answered");
}
