//! Failover latency over real loopback UDP and real timers: how far after the ladder's deadline
//! (cycle start + 1.6 s) the switch happens, p50/p99/max over many outages.
//!
//! 100 phones (in one process, one socket per side) with a 2 s interval probe a pair whose primary
//! flaps 4 s down, 4 s up for 90 s: each down phase makes every phone fail over once, each up phase
//! brings it back (failback after one alive cycle). About 1 100 outages in 90 s.
//! `LATENCY_PHONES=N` changes the number of phones.

mod common;

use std::path::Path;

use sip_failover::core::{Duration, Instant};
use sip_failover::sim::fleet::{run, FleetOptions};
use sip_failover::sim::scenario::Scenario;
use sip_failover::sim::summary::{millis, secs};

const SCENARIO: &str = r#"
name = "latency-bench"
description = "The primary flaps 4 s down, 4 s up."
duration = "90s"
interval = "2s"
[phone]
failback_after = 1
[[at]]
t = "1s"
server = "primary"
action = "flap"
period = "4s"
"#;

fn main() {
    if !common::should_run(env!("CARGO_CRATE_NAME")) {
        return;
    }
    let phones: usize = std::env::var("LATENCY_PHONES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let s = Scenario::parse(SCENARIO, Path::new("latency-bench")).unwrap();
    let out =
        run(&s, &FleetOptions { phones, seed: 1, extend: Duration::ZERO, ..FleetOptions::default() }, &mut |_| {})
            .unwrap();
    let sum = out.tracker.summary(out.pair.peak());
    println!(
        "failover latency: {phones} phones, {} of real time, {} failovers, {} failbacks",
        secs(out.end - Instant::ZERO),
        sum.failovers,
        sum.failbacks
    );
    let l = sum.switch_after_deadline.expect("switches on the ladder's deadline");
    println!(
        "  switch after the ladder's deadline: p50 {} / p99 {} / max {} (min {}, n={})",
        millis(l.p50),
        millis(l.p99),
        millis(l.max),
        millis(l.min),
        l.count
    );
    if let Some(f) = sum.failback {
        println!(
            "  failback after the primary's recovery: p50 {} / p99 {} / max {}",
            secs(f.p50),
            secs(f.p99),
            secs(f.max)
        );
    }
    println!("  goal p99 < 2 ms: {}", if l.p99 < Duration::from_millis(2) { "PASS" } else { "FAIL" });
}
