//! `run --metrics`: a running agent's `/metrics` scraped over HTTP carries the probe, reply,
//! round-trip, timeout, switch, active-side, generation and flow series, and passes `promtool check
//! metrics` (Debian package `prometheus`; without it that check says SKIPPED, unless
//! `REQUIRE_PEERS=1`). A taken or malformed address stops the agent at start with a clear error.

mod interop_common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use interop_common::*;

const WAIT: Duration = Duration::from_secs(30);

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on 127.0.0.1:port with `headers`: (status line, body).
fn get(port: u16, path: &str, headers: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of the sample whose line starts with `series`.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[test]
fn a_running_agent_is_scraped_and_its_exposition_passes_promtool() {
    let dir = TempDir::new("metrics");
    let (p, b) = (Responder::start(Mode::Answer(200)), Responder::start(Mode::Answer(200)));
    let cfg = write_config(&dir, "m.toml", p.addr, b.addr, "");
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut agent = AgentProc::start(&["--config", cfg.to_str().unwrap(), "--metrics", &addr], dir.path());
    agent.wait_for(WAIT, "a reply from the primary", |e| e["event"] == "reply" && e["server"] == "primary");
    p.set(Mode::Drop);
    agent.wait_for(WAIT, "the switch's application", |e| e["event"] == "applied" && e["side"] == "backup");
    // The events on stdout and the counters are fed from the same drain; the scrape comes after.
    let (status, body) = get(port, "/metrics", "");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let count = |name: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        agent.events.iter().filter(|e| e["event"] == name && pred(e)).count() as f64
    };
    let probes = value(&body, "sip_failover_probes_sent_total{server=\"primary\"}").unwrap();
    assert!(probes >= count("probe", &|e| e["server"] == "primary"), "{body}");
    assert!(value(&body, "sip_failover_replies_total{server=\"backup\",class=\"2xx\"}").unwrap() >= 1.0, "{body}");
    assert!(value(&body, "sip_failover_rtt_seconds_count{server=\"primary\"}").unwrap() >= 1.0, "{body}");
    assert!(value(&body, "sip_failover_attempts_timed_out_total{server=\"primary\"}").unwrap() >= 3.0, "{body}");
    assert_eq!(value(&body, "sip_failover_switches_total{reason=\"failover\"}"), Some(1.0), "{body}");
    assert_eq!(value(&body, "sip_failover_active{side=\"backup\"}"), Some(1.0), "{body}");
    assert_eq!(value(&body, "sip_failover_active{side=\"primary\"}"), Some(0.0), "{body}");
    assert_eq!(value(&body, "sip_failover_generation"), Some(1.0), "{body}");
    assert!(body.contains("sip_failover_cycles_total{server=\"primary\",result=\"timeout\"}"), "{body}");
    assert!(!body.contains("# EOF"), "{body}");
    // What Prometheus asks for: OpenMetrics.
    let accept = "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n";
    let (_, om) = get(port, "/metrics", accept);
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
    assert!(om.contains("# TYPE sip_failover_switches counter"), "{om}");
    let (status, _) = get(port, "/other", "");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    promtool_accepts(&body);
}

/// Pipes `body` to `promtool check metrics` when it is installed.
fn promtool_accepts(body: &str) {
    if !peer_available("promtool", "prometheus") {
        return;
    }
    let mut child = Command::new(which("promtool").unwrap())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn flows_are_counted_by_server_transport_and_reason() {
    let dir = TempDir::new("metrics-flows");
    let b = Responder::start(Mode::Answer(200));
    // The primary over TCP on a port nobody listens on: every connect is refused.
    let closed = free_tcp_port();
    let cfg = write_config(&dir, "m.toml", "127.0.0.1:5060".parse().unwrap(), b.addr, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "primary_server = \"127.0.0.1\"\nprimary_port = 5060",
        &format!("primary_server = \"sip:127.0.0.1:{closed};transport=tcp\""),
    );
    std::fs::write(&cfg, text).unwrap();
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut agent = AgentProc::start(&["--config", cfg.to_str().unwrap(), "--metrics", &addr], dir.path());
    agent.wait_for(WAIT, "the failover applied", |e| e["event"] == "applied" && e["side"] == "backup");
    let opened = agent.named("flow_open").len() as f64;
    let refused = agent.named("flow_down").iter().filter(|e| e["reason"] == "refused").count() as f64;
    let (_, body) = get(port, "/metrics", "");
    assert!(opened >= 3.0 && refused >= 3.0, "{}", agent.dump());
    let got = value(&body, "sip_failover_flows_opened_total{server=\"primary\",transport=\"tcp\"}").unwrap();
    assert!(got >= opened, "{body}");
    let got = value(&body, "sip_failover_flows_closed_total{server=\"primary\",reason=\"refused\"}").unwrap();
    assert!(got >= refused, "{body}");
    assert_eq!(value(&body, "sip_failover_flows_up_total{server=\"primary\"}"), None, "never connected: {body}");
    assert_eq!(value(&body, "sip_failover_switches_total{reason=\"failover\"}"), Some(1.0), "{body}");
    promtool_accepts(&body);
}

#[test]
fn a_taken_or_malformed_metrics_address_stops_the_agent_at_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["run", "--primary", "127.0.0.1:5999", "--metrics", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("metrics address {addr}")), "{err}");
    let out = Command::new(BIN)
        .args(["run", "--primary", "127.0.0.1:5999", "--metrics", "localhost"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ADDR:PORT"), "{err}");
}

#[test]
fn a_lab_fleet_is_scraped_while_it_runs() {
    use std::io::BufRead;
    let dir = TempDir::new("metrics-lab");
    let scenario = dir.join("s.toml");
    std::fs::write(
        &scenario,
        "name = \"scrape\"\ndescription = \"The primary black-holed from 1 s.\"\nduration = \"8s\"\ninterval = \"2s\"\n\
         [[at]]\nt = \"1s\"\nserver = \"primary\"\naction = \"blackhole\"\n",
    )
    .unwrap();
    let port = free_tcp_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sip-failover"))
        .args(["lab", scenario.to_str().unwrap(), "--phones", "20", "--lines", "changes", "--metrics"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--out")
        .arg(dir.join("out"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Phone 0's switch is printed once it happened; the fleet's counters are scraped after it.
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().take(500) {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains(">>> SWITCH primary -> backup") {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("metrics on http://127.0.0.1:")), "{seen:#?}");
    assert!(seen.last().is_some_and(|l| l.contains("SWITCH")), "{seen:#?}");
    let (status, body) = get(port, "/metrics", "");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(value(&body, "sip_failover_probes_sent_total{server=\"primary\"}").unwrap() >= 20.0, "{body}");
    assert!(value(&body, "sip_failover_switches_total{reason=\"failover\"}").unwrap() >= 1.0, "{body}");
    let (p, b) = (
        value(&body, "sip_failover_phones{side=\"primary\"}").unwrap(),
        value(&body, "sip_failover_phones{side=\"backup\"}").unwrap(),
    );
    assert_eq!(p + b, 20.0, "{body}");
    assert!(b >= 1.0, "{body}");
    assert!(!body.contains("sip_failover_active{"), "one phone's side is not a fleet's: {body}");
    promtool_accepts(&body);
    // Drain the rest of the run's output; it ends by itself.
    for _ in lines.by_ref().take(10_000) {}
    assert!(child.wait().unwrap().success());
}
