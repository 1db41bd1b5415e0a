//! Interop with SIPp (Debian package `sip-tester`) as the PBX pair on loopback. Each test starts two
//! SIPp UAS instances with a scenario from `tests/sipp/`, waits until they are up, runs the agent with
//! `--events json`, and checks the switch (or its absence) and the attempts on the wire, in the order
//! the events came. The exact times of the ladder are asserted on the paused clock
//! (`run_on_paused_clock.rs`) and on the core harness; here SIPp's side is real time, so no test
//! asserts a duration.
//!
//! Without `sipp` on PATH the tests say so and pass, unless `REQUIRE_PEERS=1` (set in CI), where they
//! fail.

mod interop_common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use interop_common::*;

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

/// Whether this SIPp was built with TLS (`-t l1` in its help).
fn sipp_has_tls() -> bool {
    std::process::Command::new(which("sipp").expect("sipp"))
        .arg("-h")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).contains("l1:") || String::from_utf8_lossy(&o.stderr).contains("l1:")
        })
        .unwrap_or(false)
}

/// A SIPp UAS answering 200 over a stream: `-t t1` (TCP), or `-t l1` (TLS) presenting `tls`
/// (its certificate and key written to `dir`).
fn sipp_stream(dir: &TempDir, name: &str, tls: Option<&sip_failover::sim::certs::Identity>) -> Peer {
    let port = free_tcp_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut args: Vec<String> = [
        "-sf",
        scenario("uas_200.xml").to_str().unwrap(),
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
    match tls {
        None => args.extend(["-t".into(), "t1".into()]),
        Some(id) => {
            let (cert, key) = (dir.join(&format!("{name}-cert.pem")), dir.join(&format!("{name}-key.pem")));
            std::fs::write(&cert, &id.cert_pem).unwrap();
            std::fs::write(&key, &id.key_pem).unwrap();
            args.extend(["-t".into(), "l1".into(), "-tls_cert".into(), cert.to_string_lossy().into_owned()]);
            args.extend(["-tls_key".into(), key.to_string_lossy().into_owned()]);
        }
    }
    Peer::start_stream(name, "sipp", &args, addr, dir.path())
}

/// The agent against a stream pair, given as URIs, names resolved through a hosts file.
fn run_stream_agent(dir: &TempDir, primary: &str, backup: &str, extra: &[String]) -> AgentProc {
    let mut args: Vec<String> =
        ["--primary", primary, "--backup", backup, "--interval", "2"].iter().map(|s| s.to_string()).collect();
    args.extend(hosts_args(dir, &["pbx-a.lab.example", "pbx-b.lab.example"]));
    args.extend(extra.iter().cloned());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    AgentProc::start(&a, dir.path())
}

/// Replies from both servers on one flow each; then the primary stops and the phone fails over.
fn answers_then_fails_over_when_the_primary_stops(mut agent: AgentProc, p: Peer) {
    agent.wait_nth(Duration::from_secs(8), "reply", 2, |e| e["server"] == "primary" && e["status"] == 200);
    agent.wait_nth(Duration::from_secs(4), "reply", 2, |e| e["server"] == "backup" && e["status"] == 200);
    // The flow that carried a server's first answer carried its next cycle too (SIPp runs in real
    // time, so a first answer slowed by a busy machine may have cost a flow: count from there).
    for server in ["primary", "backup"] {
        let ev = &agent.events;
        let replies: Vec<usize> = ev
            .iter()
            .enumerate()
            .filter(|(_, e)| e["event"] == "reply" && e["server"] == server)
            .map(|(i, _)| i)
            .collect();
        let reopened = ev[replies[0]..replies[1]].iter().any(|e| e["event"] == "flow_open" && e["server"] == server);
        assert!(!reopened, "{server}: one flow reused by the next cycle: {}", agent.dump());
    }
    drop(p);
    fails_over_on_refused_flows(&mut agent);
}

#[test]
fn sipp_pair_over_tcp_answers_on_one_connection_and_a_stopped_primary_fails_over() {
    if !peer_available("sipp", "sip-tester") {
        return;
    }
    let dir = TempDir::new("sipp-tcp");
    let p = sipp_stream(&dir, "primary", None);
    let b = sipp_stream(&dir, "backup", None);
    let uri = |peer: &Peer| format!("sip:{};transport=tcp", peer.addr);
    let agent = run_stream_agent(&dir, &uri(&p), &uri(&b), &[]);
    answers_then_fails_over_when_the_primary_stops(agent, p);
}

#[test]
fn sipp_pair_over_tls_answers_and_a_stopped_primary_fails_over() {
    if !peer_available("sipp", "sip-tester") {
        return;
    }
    if !sipp_has_tls() {
        // Not a missing package: Debian's sip-tester is built without TLS (no `-t l1`), and no
        // package here provides one with it; SIP over TLS is checked against Kamailio's TLS module
        // (interop_kamailio.rs) and rustls servers (run_over_tcp_tls.rs) instead.
        skip::say_skipped("this SIPp is built without TLS (`sipp -h` offers no `-t l1`)");
        return;
    }
    use sip_failover::sim::certs::{Authority, Leaf};
    let dir = TempDir::new("sipp-tls");
    let ca = Authority::new("sipp test CA").unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let p = sipp_stream(&dir, "primary", Some(&ca.issue(Leaf::Good("pbx-a.lab.example")).unwrap()));
    let b = sipp_stream(&dir, "backup", Some(&ca.issue(Leaf::Good("pbx-b.lab.example")).unwrap()));
    let extra = vec!["--tls-ca-file".to_string(), ca_file.to_string_lossy().into_owned()];
    let agent = run_stream_agent(
        &dir,
        &format!("sips:pbx-a.lab.example:{}", p.addr.port()),
        &format!("sips:pbx-b.lab.example:{}", b.addr.port()),
        &extra,
    );
    answers_then_fails_over_when_the_primary_stops(agent, p);
}

fn run_agent(dir: &TempDir, p: &Peer, b: &Peer) -> AgentProc {
    AgentProc::start(
        &["--primary", &p.addr.to_string(), "--backup", &b.addr.to_string(), "--interval", "2"],
        dir.path(),
    )
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
    // Each attempt goes out when the previous one timed out; the switch follows the third timeout.
    let c = &event_cycles(&agent.events, "primary")[0];
    assert_eq!(
        steps(c),
        [("probe", 1), ("timeout", 1), ("probe", 2), ("timeout", 2), ("probe", 3), ("timeout", 3), ("switch", 0)],
        "{c:#?}"
    );
    agent.wait_for(Duration::from_secs(1), "applied", |e| e["event"] == "applied" && e["side"] == "backup");
}

#[test]
fn sipp_primary_answering_503_with_retry_after_moves_the_idle_phone_without_retrying() {
    if !peer_available("sipp", "sip-tester") {
        return;
    }
    let dir = TempDir::new("sipp-503");
    let p = sipp(&dir, "primary", "uas_503.xml", true);
    let b = sipp(&dir, "backup", "uas_200.xml", true);
    let mut agent = run_agent(&dir, &p, &b);
    let sw = agent.wait_for(Duration::from_secs(4), "switch", |e| e["event"] == "switch");
    assert_eq!(
        (sw["to"].as_str(), sw["reason"].as_str()),
        (Some("backup"), Some("maintenance")),
        "Retry-After: announced maintenance, the phone is idle"
    );
    let reply = agent.events.iter().find(|e| e["event"] == "reply" && e["server"] == "primary").unwrap().clone();
    assert_eq!(reply["status"], 503);
    assert_eq!(reply["retry_after"], 60);
    let down = agent.events.iter().find(|e| e["event"] == "server_down").unwrap().clone();
    assert_eq!((down["reason"].as_str(), down["status"].as_u64()), (Some("status"), Some(503)));
    // A 503 is an answer: no retry, no wait running out; the switch follows it.
    let c = &event_cycles(&agent.events, "primary")[0];
    assert_eq!(steps(c), [("probe", 1), ("reply", 1), ("switch", 0)], "{c:#?}");
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
    // The late answer to attempt 1 counts, arriving while attempt 2 waits: no third attempt.
    for c in event_cycles(&agent.events, "primary").iter().take(2) {
        assert_eq!(steps(c), [("probe", 1), ("timeout", 1), ("probe", 2), ("reply", 1)], "{c:#?}");
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
    // Attempt 1's reply is lost; attempt 2 is answered.
    for c in event_cycles(&agent.events, "primary").iter().take(2) {
        assert_eq!(steps(c), [("probe", 1), ("timeout", 1), ("probe", 2), ("reply", 2)], "{c:#?}");
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
    // Five whole cycles (the sixth has begun).
    agent.wait_nth(Duration::from_secs(14), "probe", 6, |e| e["server"] == "primary" && e["attempt"] == 1);
    let mut answered = 0;
    for c in event_cycles(&agent.events, "primary").iter().take(5) {
        let st = steps(c);
        // Each attempt after the first follows the previous one's timeout.
        for (i, step) in st.iter().enumerate() {
            if step.0 == "probe" && step.1 > 1 {
                assert_eq!(st[i - 1], ("timeout", step.1 - 1), "{st:?}");
            }
        }
        let probes = st.iter().filter(|s| s.0 == "probe").count() as u64;
        let failed = st.contains(&("timeout", 3));
        match st.iter().find(|s| s.0 == "reply") {
            Some(reply) => {
                answered += 1;
                assert!(!failed, "a cycle with an answer must not fail: {st:?}");
                // The answer came to the last attempt sent in that cycle (the agent stops on it).
                assert_eq!(reply.1, probes, "{st:?}");
            }
            None => {
                assert_eq!(probes, 3, "no answer: the whole ladder ran: {st:?}");
                assert!(failed, "{st:?}");
            }
        }
        // A failover happens only at the end of a cycle in which every answer was lost; a failback only
        // after the primary answered again (the failback policy, not loss).
        for (i, sw) in c.iter().enumerate().filter(|(_, e)| e["event"] == "switch") {
            if sw["reason"] == "failback" {
                assert_eq!(sw["to"], "primary");
                continue;
            }
            assert_eq!(sw["reason"], "failover");
            assert_eq!(st[i - 1], ("timeout", 3), "switch not at the end of a fully lost ladder: {st:?}");
        }
    }
    // With seven chances in eight per cycle, most cycles are answered.
    assert!(answered >= 2, "only {answered} of 5 cycles answered");
}
