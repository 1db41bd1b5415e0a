//! `sip-failover run` with and without its sinks: how far after the ladder's deadline (cycle start +
//! 1.6 s) each failover comes, p50 / p99 / max, with every event also sent to a syslog collector over
//! UDP and a Prometheus endpoint scraped every second, against the same run without either.
//!
//! `AGENTS` processes (default 10) with a 2 s interval probe a loopback pair whose primary answers
//! for 4 s and is silent for 4 s, for `RUN_SECONDS` (default 60) per mode; the times come from the
//! agents' own JSON event lines (`t_us`). `cargo bench --bench run_latency` (about 2.5 minutes).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_failover::sim::model::{respond, HeaderForm};

/// A loopback UDP server answering OPTIONS 200 while `answering` says so.
fn responder(answering: impl Fn() -> bool + Send + 'static, stop: Arc<AtomicBool>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            if answering() {
                if let Ok(r) = respond(&buf[..n], 200, None, HeaderForm::Normal, "srv") {
                    let _ = sock.send_to(&r, from);
                }
            }
        }
    });
    addr
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The failovers' lags after the ladder's deadline, in µs, of one run of `agents` processes.
fn run_mode(agents: usize, seconds: u64, sinks: bool) -> (Vec<u64>, u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let primary = responder(move || (t0.elapsed().as_millis() / 4000) % 2 == 0, stop.clone());
    let backup = responder(|| true, stop.clone());
    // The syslog collector: counts what arrives.
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    collector.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let syslog_addr = collector.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    {
        let (stop, received) = (stop.clone(), received.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                if collector.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let ports: Vec<u16> = (0..agents).map(|_| free_port()).collect();
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for port in &ports {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sip-failover"));
        cmd.args(["run", "--events", "json", "--interval", "2", "--bind", "127.0.0.1"]).args([
            "--primary",
            &primary.to_string(),
            "--backup",
            &backup.to_string(),
        ]);
        if sinks {
            cmd.args(["--syslog", &format!("udp://{syslog_addr}"), "--metrics", &format!("127.0.0.1:{port}")]);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let out = child.stdout.take().unwrap();
        readers.push(std::thread::spawn(move || {
            // The latest cycle start of the primary, and the lag of each failover after it.
            let mut start: Option<u64> = None;
            let mut lags = Vec::new();
            for line in BufReader::new(out).lines().take(1_000_000) {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                let t = v["t_us"].as_u64().unwrap_or(0);
                match v["event"].as_str() {
                    Some("probe") if v["server"] == "primary" && v["attempt"] == 1 => start = Some(t),
                    Some("switch") if v["reason"] == "failover" => {
                        if let Some(s) = start {
                            lags.push(t.saturating_sub(s + 1_600_000));
                        }
                    }
                    _ => {}
                }
            }
            lags
        }));
        children.push(child);
    }
    // The scraper: every agent's /metrics once a second.
    let scrapes = Arc::new(AtomicU64::new(0));
    let scraper = sinks.then(|| {
        let (stop, scrapes, ports) = (stop.clone(), scrapes.clone(), ports.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for port in &ports {
                    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", *port)) {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
                        let mut body = Vec::new();
                        if s.read_to_end(&mut body).is_ok() && body.starts_with(b"HTTP/1.1 200") {
                            scrapes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    });
    std::thread::sleep(Duration::from_secs(seconds));
    for c in &mut children {
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
    }
    for c in &mut children {
        let _ = c.wait();
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = scraper {
        let _ = s.join();
    }
    let lags = readers.into_iter().flat_map(|r| r.join().unwrap_or_default()).collect();
    (lags, received.load(Ordering::Relaxed), scrapes.load(Ordering::Relaxed))
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0) as f64 / 1000.0
}

fn main() {
    if !common::should_run(env!("CARGO_CRATE_NAME")) {
        return;
    }
    let agents: usize = std::env::var("AGENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let seconds: u64 = std::env::var("RUN_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    println!("run_latency: {agents} agents, 2 s interval, the primary 4 s up / 4 s down, {seconds} s per mode");
    for sinks in [false, true] {
        let (mut lags, syslog, scrapes) = run_mode(agents, seconds, sinks);
        lags.sort_unstable();
        let label = if sinks { "with syslog (UDP) and metrics (scraped every 1 s)" } else { "without sinks" };
        println!(
            "  {label}: {} failovers, switch after the ladder's deadline p50 {:.3} ms / p99 {:.3} ms / max {:.3} ms",
            lags.len(),
            pct(&lags, 0.5),
            pct(&lags, 0.99),
            pct(&lags, 1.0)
        );
        if sinks {
            println!("    syslog messages received {syslog}, scrapes answered {scrapes}");
        }
    }
}
