//! Fleet benchmark: 10 000 phones in one process against the loopback UDP pair, the primary
//! blackholed long enough for every phone to fail over once. Reports the CPU (busy) time per probe of
//! the phones' loop and per request of the pair, the pair's peak probe rate, and checks that every
//! switch came within 1.6 s + 5 ms of its cycle's first unanswered probe.
//!
//! `FLEET_PHONES=N cargo bench --bench fleet` changes the fleet size. Takes about 20 s.

mod common;

use std::path::Path;

use sip_failover::core::Duration;
use sip_failover::sim::fleet::{run, FleetOptions};
use sip_failover::sim::scenario::Scenario;
use sip_failover::sim::summary::{millis, secs};

const SCENARIO: &str = r#"
name = "fleet-bench"
description = "The primary blackholed from 1 s to the end: every phone fails over once."
duration = "20s"
[[at]]
t = "1s"
server = "primary"
action = "blackhole"
"#;

fn main() {
    if !common::should_run(env!("CARGO_CRATE_NAME")) {
        return;
    }
    let phones: usize = std::env::var("FLEET_PHONES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let s = Scenario::parse(SCENARIO, Path::new("fleet-bench")).unwrap();
    let wall = std::time::Instant::now();
    let out = run(&s, &FleetOptions { phones, seed: 1, extend: Duration::ZERO }, &mut |_| {}).unwrap();
    let wall = wall.elapsed();
    let sum = out.tracker.summary(out.pair.peak());
    let requests: u64 = out.pair.servers.iter().map(|s| s.requests).sum();
    println!(
        "fleet: {phones} phones, {} of real time (wall {:.2} s)",
        secs(out.end - sip_failover::core::Instant::ZERO),
        wall.as_secs_f64()
    );
    println!("  probes sent {}, replies {}, failovers {}", sum.probes, sum.replies, sum.failovers);
    println!(
        "  phones' loop busy {:.3} s: {:.2} µs per probe ({:.1} % of one core)",
        out.phones_busy.as_secs_f64(),
        out.phones_busy.as_secs_f64() * 1e6 / sum.probes.max(1) as f64,
        100.0 * out.phones_busy.as_secs_f64() / wall.as_secs_f64()
    );
    println!("  longest single pass of the phones' loop: {:.3} ms", out.phones_longest_pass.as_secs_f64() * 1e3);
    println!(
        "  pair busy {:.3} s: {:.2} µs per request (rsip parse + build + send)",
        out.pair.busy.as_secs_f64(),
        out.pair.busy.as_secs_f64() * 1e6 / requests.max(1) as f64
    );
    if let Some((sec, n)) = sum.peak_probe_rate {
        println!("  peak probe rate at the pair: {n} requests/s (second {sec})");
    }
    let c = sum.cycle_to_switch.expect("switches");
    println!(
        "  cycle's first unanswered probe to switch: p50 {} / p99 {} / max {} (n={})",
        secs(c.p50),
        secs(c.p99),
        secs(c.max),
        c.count
    );
    if let Some(l) = sum.switch_after_deadline {
        println!(
            "  switch after the ladder's deadline: p50 {} / p99 {} / max {}",
            millis(l.p50),
            millis(l.p99),
            millis(l.max)
        );
    }
    let limit = Duration::from_millis(1605);
    let all = sum.failovers as usize == phones && c.count as usize == phones;
    let verdict = if all && c.max <= limit { "PASS" } else { "FAIL" };
    println!("  every phone switched within 1.6 s + 5 ms of its cycle's first unanswered probe: {verdict}");
}
