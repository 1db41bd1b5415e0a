//! Interop with Kamailio (Debian package `kamailio`) as the PBX pair on loopback. Each instance runs
//! `tests/kamailio/kamailio.cfg` in the foreground with its own port, control socket and runtime
//! directory, and answers OPTIONS with the code in `$shv(code)`: 200, 503, or 0 to drop. The tests
//! change that code while everything runs (`kamcmd pv.shvSet code int N`) and check the agent's
//! switches and attempt timings from its JSON events.
//!
//! Without `kamailio`/`kamcmd` on PATH the tests say so and pass, unless `REQUIRE_PEERS=1` (set in
//! CI), where they fail.

mod interop_common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use interop_common::*;
use sip_failover::sim::certs::{Authority, Identity, Leaf};

struct Kamailio {
    peer: Peer,
    ctl: PathBuf,
}

impl Kamailio {
    fn start(dir: &TempDir, name: &str) -> Kamailio {
        Self::start_on(dir, name, None)
    }

    /// An instance listening over TLS only, presenting `id` (written to its runtime directory).
    fn start_tls(dir: &TempDir, name: &str, id: &Identity) -> Kamailio {
        Self::start_on(dir, name, Some(id))
    }

    fn start_on(dir: &TempDir, name: &str, tls: Option<&Identity>) -> Kamailio {
        let run = dir.join(name);
        std::fs::create_dir_all(&run).unwrap();
        let port = if tls.is_some() { free_tcp_port() } else { free_port() };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let ctl = run.join("ctl");
        let cfg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kamailio/kamailio.cfg");
        let listen = format!("{}:{addr}", if tls.is_some() { "tls" } else { "udp" });
        let peer = match tls {
            None => {
                let args = kamailio_args(&cfg, &run, &listen, &ctl, &[], "sl.so");
                Peer::start(name, "kamailio", &args, addr, &run, true)
            }
            Some(id) => {
                let (cert, key) = (run.join("cert.pem"), run.join("key.pem"));
                std::fs::write(&cert, &id.cert_pem).unwrap();
                std::fs::write(&key, &id.key_pem).unwrap();
                let defines = [
                    "WITH_TLS".to_string(),
                    format!("TLS_CERT=\"{}\"", cert.display()),
                    format!("TLS_KEY=\"{}\"", key.display()),
                ];
                let args = kamailio_args(&cfg, &run, &listen, &ctl, &defines, "sl.so");
                Peer::start_stream(name, "kamailio", &args, addr, &run)
            }
        };
        Kamailio { peer, ctl }
    }

    fn addr(&self) -> SocketAddr {
        self.peer.addr
    }

    /// `kamcmd pv.shvSet code int N`: what the server answers from now on (0 = drop).
    fn set_code(&self, code: u16) {
        let out = Command::new(which("kamcmd").expect("kamcmd"))
            .arg("-s")
            .arg(format!("unix:{}", self.ctl.display()))
            .args(["pv.shvSet", "code", "int", &code.to_string()])
            .stdin(Stdio::null())
            .output()
            .expect("run kamcmd");
        assert!(
            out.status.success(),
            "kamcmd failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn available() -> bool {
    peer_available("kamailio", "kamailio") && peer_available("kamcmd", "kamailio")
}

/// Kamailio and its TLS module (Debian package `kamailio-tls-modules`).
fn tls_available() -> bool {
    available()
        && skip::need(
            kamailio_module_dir("sl.so").is_some_and(|d| d.join("tls.so").is_file()),
            "Kamailio's TLS module (tls.so)",
            "install the Debian package `kamailio-tls-modules` (scripts/ci-net.sh) to run this test",
        )
}

fn run_agent(dir: &Path, p: &Kamailio, b: &Kamailio) -> AgentProc {
    AgentProc::start(&["--primary", &p.addr().to_string(), "--backup", &b.addr().to_string(), "--interval", "2"], dir)
}

#[test]
fn kamailio_primary_dropping_then_answering_again_fails_over_and_back() {
    if !available() {
        return;
    }
    let dir = TempDir::new("kam-drop");
    let p = Kamailio::start(&dir, "primary");
    let b = Kamailio::start(&dir, "backup");
    let mut agent = run_agent(dir.path(), &p, &b);
    agent.wait_for(Duration::from_secs(5), "first primary reply", |e| {
        e["event"] == "reply" && e["server"] == "primary" && e["status"] == 200
    });

    p.set_code(0);
    let sw = agent.wait_for(Duration::from_secs(8), "failover", |e| e["event"] == "switch");
    assert_eq!((sw["from"].as_str(), sw["to"].as_str()), (Some("primary"), Some("backup")));
    assert_eq!(sw["reason"], "failover");
    assert_eq!(sw["generation"], 1);
    // The cycle that failed: each attempt after the previous one timed out, the switch after the third
    // (the exact times are asserted on the paused clock and the core harness).
    let cycles = event_cycles(&agent.events, "primary");
    let failed = cycles.iter().find(|c| c.iter().any(|e| e["event"] == "switch")).expect("the switch's cycle");
    assert_eq!(
        steps(failed),
        [("probe", 1), ("timeout", 1), ("probe", 2), ("timeout", 2), ("probe", 3), ("timeout", 3), ("switch", 0)],
        "{failed:#?}"
    );
    agent.wait_for(Duration::from_secs(1), "applied", |e| e["event"] == "applied" && e["side"] == "backup");

    p.set_code(200);
    let fb =
        agent.wait_for(Duration::from_secs(10), "failback", |e| e["event"] == "switch" && e["reason"] == "failback");
    assert_eq!(fb["to"], "primary");
    assert_eq!(fb["generation"], 2);
    // Failback waited for two alive cycles of the primary (failback_after = 2): the primary's replies
    // between the switch away and the failback. (A reply carries its arrival time, which can precede
    // the time stamped on the server_up it causes, so count from the switch, not from server_up.)
    let alive_cycles = agent
        .events
        .iter()
        .filter(|e| e["event"] == "reply" && e["server"] == "primary" && t(e) > t(&sw) && t(e) <= t(&fb))
        .count();
    assert_eq!(alive_cycles, 2, "failback on the second alive cycle:\n{}", agent.dump());
    agent.wait_for(Duration::from_secs(1), "applied primary", |e| e["event"] == "applied" && e["side"] == "primary");
}

#[test]
fn kamailio_primary_answering_503_with_retry_after_moves_the_idle_phone_at_once() {
    if !available() {
        return;
    }
    let dir = TempDir::new("kam-503");
    let p = Kamailio::start(&dir, "primary");
    let b = Kamailio::start(&dir, "backup");
    let mut agent = run_agent(dir.path(), &p, &b);
    agent.wait_for(Duration::from_secs(5), "first primary reply", |e| {
        e["event"] == "reply" && e["server"] == "primary" && e["status"] == 200
    });
    p.set_code(503);
    let sw = agent.wait_for(Duration::from_secs(5), "failover", |e| e["event"] == "switch");
    assert_eq!(
        (sw["to"].as_str(), sw["reason"].as_str()),
        (Some("backup"), Some("maintenance")),
        "Retry-After: announced maintenance, the phone is idle"
    );
    let reply = agent
        .events
        .iter()
        .find(|e| e["event"] == "reply" && e["server"] == "primary" && e["status"] == 503)
        .cloned()
        .unwrap();
    assert_eq!(reply["retry_after"], 30);
    assert_eq!(reply["attempt"], 1, "a 503 is an answer: no retry");
    // The switch follows the 503, with no wait of the ladder running out.
    let cycles = event_cycles(&agent.events, "primary");
    let c = cycles.iter().find(|c| c.iter().any(|e| e["event"] == "switch")).expect("the switch's cycle");
    assert_eq!(steps(c), [("probe", 1), ("reply", 1), ("switch", 0)], "{c:#?}");
    let down = agent.events.iter().find(|e| e["event"] == "server_down").cloned().unwrap();
    assert_eq!((down["reason"].as_str(), down["status"].as_u64()), (Some("status"), Some(503)));
}

#[test]
fn kamailio_pair_both_dropping_reports_no_server_and_stays() {
    if !available() {
        return;
    }
    let dir = TempDir::new("kam-none");
    let p = Kamailio::start(&dir, "primary");
    let b = Kamailio::start(&dir, "backup");
    let mut agent = run_agent(dir.path(), &p, &b);
    agent.wait_for(Duration::from_secs(5), "first reply", |e| e["event"] == "reply");
    p.set_code(0);
    b.set_code(0);
    agent.wait_for(Duration::from_secs(8), "no_server_reachable", |e| e["event"] == "no_server_reachable");
    assert!(agent.named("switch").is_empty(), "{}", agent.dump());
}

#[test]
fn kamailio_over_tls_answers_and_a_stopped_primary_fails_over() {
    if !tls_available() {
        return;
    }
    let dir = TempDir::new("kam-tls");
    let ca = Authority::new("kamailio test CA").unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let p = Kamailio::start_tls(&dir, "primary", &ca.issue(Leaf::Good("pbx-a.lab.example")).unwrap());
    let b = Kamailio::start_tls(&dir, "backup", &ca.issue(Leaf::Good("pbx-b.lab.example")).unwrap());
    let mut args: Vec<String> = vec![
        "--primary".into(),
        format!("sips:pbx-a.lab.example:{}", p.addr().port()),
        "--backup".into(),
        format!("sips:pbx-b.lab.example:{}", b.addr().port()),
        "--interval".into(),
        "2".into(),
        "--tls-ca-file".into(),
        ca_file.to_string_lossy().into_owned(),
    ];
    args.extend(hosts_args(&dir, &["pbx-a.lab.example", "pbx-b.lab.example"]));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = AgentProc::start(&a, dir.path());
    // Two cycles answered over TLS by each, on one flow each.
    agent.wait_nth(Duration::from_secs(8), "reply", 2, |e| e["server"] == "primary" && e["status"] == 200);
    agent.wait_nth(Duration::from_secs(4), "reply", 2, |e| e["server"] == "backup" && e["status"] == 200);
    assert_eq!(agent.named("flow_open").len(), 2, "{}", agent.dump());
    assert!(agent.named("flow_down").is_empty(), "{}", agent.dump());

    // Kamailio's TLS answers carry our Via back: SIP over TLS end to end.
    let log = p.peer.log_text();
    assert!(!log.contains("ERROR"), "{log}");

    // The primary stops: its flow closes, the next cycle's connects are refused, the phone fails over.
    drop(p);
    fails_over_on_refused_flows(&mut agent);
    agent.wait_for(Duration::from_secs(1), "applied", |e| e["event"] == "applied" && e["side"] == "backup");
}
