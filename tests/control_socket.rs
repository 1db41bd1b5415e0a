//! The control socket of a running agent, through the CLI clients: status, force, release, pause,
//! resume, call state (failback waits for idle), live configuration (force mode) and refusals. The tests
//! wait for the agent's events (cycles answered, switches applied); how long things take is asserted
//! on the paused clock (`run_on_paused_clock.rs`) and on the core harness.

mod interop_common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use interop_common::*;
use serde_json::Value;

struct Setup {
    dir: TempDir,
    socket: std::path::PathBuf,
    agent: AgentProc,
    p: Responder,
    b: Responder,
}

fn setup(tag: &str) -> Setup {
    let dir = TempDir::new(tag);
    let p = Responder::start(Mode::Answer(200));
    let b = Responder::start(Mode::Answer(200));
    let socket = dir.join("ctl.sock");
    let cfg = write_config(&dir, "phone.toml", p.addr, b.addr, "");
    let mut agent =
        AgentProc::start(&["--config", cfg.to_str().unwrap(), "--control", socket.to_str().unwrap()], dir.path());
    // `started` is printed once the control socket is bound.
    agent.wait_for(Duration::from_secs(5), "started", |e| e["event"] == "started");
    Setup { dir, socket, agent, p, b }
}

fn ok(s: &Setup, args: &[&str]) -> Value {
    let (ok, v, err) = ctl(&s.socket, args);
    assert!(ok, "{args:?} failed: {err}");
    v
}

#[test]
fn status_reports_sides_servers_and_call_state() {
    let mut s = setup("ctl-status");
    s.agent.wait_nth(Duration::from_secs(5), "reply", 2, |_| true);
    let v = ok(&s, &["status"]);
    assert_eq!(v["active"], "primary");
    assert_eq!(v["generation"], 0);
    assert_eq!(v["paused"], false);
    assert_eq!(v["call_state"], "idle");
    assert_eq!(v["forced"], Value::Null);
    assert_eq!(v["primary"]["next_hop"], s.p.addr.to_string());
    assert_eq!(v["backup"]["next_hop"], s.b.addr.to_string());
    assert_eq!(v["primary"]["up"], true);
    assert_eq!(v["interval_ms"], 2000);
}

#[test]
fn force_release_and_automatic_failback() {
    let mut s = setup("ctl-force");
    let v = ok(&s, &["force", "backup"]);
    assert_eq!(v["active"], "backup", "no hook: applied at once: {v}");
    assert_eq!(v["forced"], "backup");
    assert_eq!(v["generation"], 1);
    let sw = s.agent.wait_for(Duration::from_secs(2), "switch", |e| e["event"] == "switch");
    assert_eq!(sw["reason"], "forced");
    // While forced, the healthy primary does not take the bundle back: three cycles it answers (more
    // than the two a failback needs) pass without a switch.
    s.agent.wait_nth(Duration::from_secs(10), "reply", 3, |e| e["server"] == "primary" && t(e) > t(&sw));
    assert_eq!(s.agent.named("switch").len(), 1, "{}", s.agent.dump());
    let v = ok(&s, &["release"]);
    assert_eq!(v["forced"], Value::Null);
    // Released: the primary has been alive for cycles, so the failback follows.
    let fb =
        s.agent.wait_for(Duration::from_secs(6), "failback", |e| e["event"] == "switch" && e["reason"] == "failback");
    assert_eq!(fb["to"], "primary");
    let generation = fb["generation"].as_u64().unwrap();
    s.agent.wait_for(Duration::from_secs(2), "failback applied", |e| {
        e["event"] == "applied" && e["side"] == "primary" && e["generation"] == generation
    });
    let v = ok(&s, &["status"]);
    assert_eq!((v["active"].as_str(), v["generation"].as_u64()), (Some("primary"), Some(generation)), "{v}");
}

#[test]
fn pause_stops_probing_and_resume_starts_a_cycle() {
    let mut s = setup("ctl-pause");
    s.agent.wait_for(Duration::from_secs(5), "reply", |e| e["event"] == "reply");
    let v = ok(&s, &["pause"]);
    assert_eq!(v["paused"], true);
    assert_eq!(v["next_cycle_ms"], Value::Null, "no cycle is planned while paused: {v}");
    let paused = s.agent.wait_for(Duration::from_secs(1), "paused", |e| e["event"] == "paused");
    let v = ok(&s, &["status"]);
    assert_eq!((v["paused"].as_bool(), v["next_cycle_ms"].is_null()), (Some(true), true), "{v}");
    let v = ok(&s, &["resume"]);
    assert_eq!(v["paused"], false);
    let resumed = s.agent.wait_for(Duration::from_secs(1), "resumed", |e| e["event"] == "resumed");
    // The resume starts a cycle to both servers; nothing was probed in between.
    for server in ["primary", "backup"] {
        let probe = s.agent.wait_for(Duration::from_secs(2), "probe after resume", |e| {
            e["event"] == "probe" && e["server"] == server && t(e) >= t(&resumed)
        });
        assert_eq!(probe["attempt"], 1);
    }
    let between = s.agent.events.iter().filter(|e| e["event"] == "probe" && t(e) > t(&paused) && t(e) < t(&resumed));
    assert_eq!(between.count(), 0, "{}", s.agent.dump());
}

#[test]
fn failback_waits_until_the_call_ends() {
    let mut s = setup("ctl-call");
    ok(&s, &["force", "backup"]);
    let v = ok(&s, &["call", "start"]);
    assert_eq!(v["call_state"], "in_call");
    assert_eq!(v["in_call"], true);
    ok(&s, &["release"]);
    let held = s.agent.wait_for(Duration::from_secs(6), "held", |e| e["event"] == "held");
    assert_eq!(held["to"], "primary");
    assert_eq!(held["reason"], "call_in_progress");
    // Two more cycles answered by the primary while the call goes on: still no failback.
    s.agent.wait_nth(Duration::from_secs(6), "reply", 2, |e| e["server"] == "primary" && t(e) > t(&held));
    assert!(!s.agent.named("switch").iter().any(|e| e["reason"] == "failback"), "no failback during the call");
    let v = ok(&s, &["call", "end"]);
    assert_eq!(v["call_state"], "idle");
    let fb =
        s.agent.wait_for(Duration::from_secs(5), "failback", |e| e["event"] == "switch" && e["reason"] == "failback");
    assert_eq!(fb["to"], "primary");
}

#[test]
fn a_transaction_answered_503_with_retry_after_moves_the_phone_at_an_idle_moment() {
    let mut s = setup("ctl-maint");
    s.agent.wait_nth(Duration::from_secs(5), "reply", 2, |_| true);
    ok(&s, &["call", "start"]);
    ok(&s, &["maintenance", "primary", "--retry-after", "600"]);
    let held = s.agent.wait_for(Duration::from_secs(2), "held", |e| e["event"] == "held");
    assert_eq!(held["to"], "backup");
    assert!(s.agent.named("switch").is_empty(), "not in the middle of a call");
    let v = ok(&s, &["call", "end"]);
    assert_eq!(v["active"], "backup", "{v}");
    let sw = s.agent.wait_for(Duration::from_secs(2), "switch", |e| e["event"] == "switch");
    assert_eq!((sw["reason"].as_str(), sw["to"].as_str()), (Some("maintenance"), Some("backup")));
    // The primary answers every cycle, but the Retry-After (10 min) holds the failback off.
    s.agent.wait_nth(Duration::from_secs(10), "reply", 3, |e| e["server"] == "primary" && t(e) > t(&sw));
    assert_eq!(s.agent.named("switch").len(), 1, "{}", s.agent.dump());
    let (ok_, _, err) = ctl(&s.socket, &["maintenance", "backup", "--retry-after", "x"]);
    assert!(!ok_ && err.contains("retry-after"), "{err}");
}

#[test]
fn a_new_configuration_applies_live_and_keeps_the_active_side() {
    let mut s = setup("ctl-reload");
    ok(&s, &["force", "backup"]);
    ok(&s, &["call", "start"]);
    let cfg2 = write_config(&s.dir, "phone2.toml", s.p.addr, s.b.addr, "");
    let text =
        std::fs::read_to_string(&cfg2).unwrap().replace("sip_keep_alive_interval = 2", "sip_keep_alive_interval = 3");
    std::fs::write(&cfg2, text).unwrap();
    let v = ok(&s, &["reload", cfg2.to_str().unwrap()]);
    assert_eq!(v["interval_ms"], 3000, "{v}");
    assert_eq!(v["active"], "backup");
    assert_eq!(v["forced"], "backup");
    assert_eq!(v["generation"], 1);
    assert_eq!(v["call_state"], "in_call", "the call survives the new configuration");
    s.agent.wait_for(Duration::from_secs(2), "config_applied", |e| e["event"] == "config_applied");
    // A broken file changes nothing and the error names the file, line and field.
    let bad = s.dir.join("bad.toml");
    std::fs::write(&bad, "[redundancy]\nprimary_server = \"127.0.0.1\"\nprimary_port = 99999\n").unwrap();
    let (okay, _, err) = ctl(&s.socket, &["reload", bad.to_str().unwrap()]);
    assert!(!okay);
    assert!(err.contains("bad.toml") && err.contains("primary_port"), "{err}");
    let v = ok(&s, &["status"]);
    assert_eq!(v["interval_ms"], 3000);
    assert_eq!(v["active"], "backup");
}

#[test]
fn refusals_and_bad_requests_are_answered_not_fatal() {
    let s = setup("ctl-bad");
    // Failback while on the primary is refused with a reason.
    let (okay, _, err) = ctl(&s.socket, &["failback"]);
    assert!(!okay);
    assert!(err.contains("already on the primary"), "{err}");
    // Raw garbage on the socket.
    let mut c = UnixStream::connect(&s.socket).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"not json\n{\"cmd\":\"fly\"}\n{\"cmd\":\"force\",\"side\":\"left\"}\n").unwrap();
    let mut r = BufReader::new(c);
    for _ in 0..3 {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], false, "{line}");
        assert!(v["error"].is_string());
    }
    // Still alive and well.
    assert_eq!(ok(&s, &["status"])["active"], "primary");
    // No agent at a path: a clear error and a failing exit status.
    let (okay, _, err) = ctl(&s.dir.join("nothing.sock"), &["status"]);
    assert!(!okay);
    assert!(err.contains("cannot reach the agent"), "{err}");
}
