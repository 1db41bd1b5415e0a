//! Fleet benchmark: N phones (10 000 unless `FLEET_PHONES` says) in one process against the loopback
//! UDP pair, the primary blackholed long enough for every phone to fail over once. Reports:
//! - the whole process's CPU time (getrusage: every thread, user and system) per request at the
//!   pair, which is what a transaction costs the machine, and beside it the busy time of the phones'
//!   loop per probe and of the pair per request (time inside their loops, waits excluded);
//! - the scheduling lag (how late the phones' loop woke after its timer) apart from the timer lag
//!   (how late each phone's timer was handled after its deadline: the lag plus the work before it);
//! - the pair's peak probe rate, the switch's lag after the ladder's deadline, and whether every
//!   switch came within 1.6 s + 5 ms of its cycle's first unanswered probe;
//! - the 1-minute load average before and after, since real-time tails depend on it.
//!
//! `FLEET_PHONES=N cargo bench --bench fleet` changes the fleet size, `FLEET_SHARDS=N` runs it in N
//! loops (`lab --shards`), `FLEET_IDLE_POLL=1` keeps idle CPUs polling (`lab --idle-poll`). Takes
//! about 20 s.

mod common;

use std::path::Path;

use sip_failover::core::Duration;
use sip_failover::sim::fleet::{run, FleetOptions};
use sip_failover::sim::scenario::Scenario;
use sip_failover::sim::summary::{millis, secs, Dist};
use sip_failover::sim::usage::load_average;

const SCENARIO: &str = r#"
name = "fleet-bench"
description = "The primary blackholed from 1 s to the end: every phone fails over once."
duration = "20s"
[[at]]
t = "1s"
server = "primary"
action = "blackhole"
"#;

fn dist(name: &str, d: Option<Dist>) {
    if let Some(d) = d {
        println!("  {name}: p50 {} / p99 {} / max {} (n={})", millis(d.p50), millis(d.p99), millis(d.max), d.count);
    }
}

fn main() {
    if !common::should_run(env!("CARGO_CRATE_NAME")) {
        return;
    }
    let phones: usize = std::env::var("FLEET_PHONES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let shards: usize = std::env::var("FLEET_SHARDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let idle_poll = std::env::var_os("FLEET_IDLE_POLL").is_some();
    let s = Scenario::parse(SCENARIO, Path::new("fleet-bench")).unwrap();
    let load_before = load_average();
    let wall = std::time::Instant::now();
    let out = run(
        &s,
        &FleetOptions { phones, seed: 1, extend: Duration::ZERO, shards, idle_poll, ..FleetOptions::default() },
        &mut |_| {},
    )
    .unwrap();
    let wall = wall.elapsed();
    let load_after = load_average();
    let sum = out.tracker.summary(out.pair.peak());
    let requests: u64 = out.pair.servers.iter().map(|s| s.requests).sum();
    println!(
        "fleet: {phones} phones in {} loop(s), {} of real time (wall {:.2} s), 1-minute load average {} before, {} after",
        out.phones_loops,
        secs(out.end - sip_failover::core::Instant::ZERO),
        wall.as_secs_f64(),
        load_before.map_or("?".into(), |l| format!("{l:.2}")),
        load_after.map_or("?".into(), |l| format!("{l:.2}"))
    );
    println!(
        "  probes sent {}, requests at the pair {requests}, replies {}, failovers {}",
        sum.probes, sum.replies, sum.failovers
    );
    println!(
        "  whole-process CPU (getrusage, every thread): user {:.3} s + system {:.3} s = {:.2} µs per request ({:.1} % of one core)",
        out.cpu.user.as_secs_f64(),
        out.cpu.system.as_secs_f64(),
        out.cpu.total().as_secs_f64() * 1e6 / requests.max(1) as f64,
        100.0 * out.cpu.total().as_secs_f64() / wall.as_secs_f64()
    );
    println!(
        "  phones' loop busy {:.3} s: {:.2} µs per probe ({:.1} % of one core)",
        out.phones_busy.as_secs_f64(),
        out.phones_busy.as_secs_f64() * 1e6 / sum.probes.max(1) as f64,
        100.0 * out.phones_busy.as_secs_f64() / wall.as_secs_f64()
    );
    if let Some(sched) = &out.phones_scheduling {
        println!("  phones' loop scheduled: {sched}");
    }
    if let Some(idle) = &out.phones_idle {
        println!("  the machine's CPUs meanwhile: {idle}");
    }
    println!("  longest single pass of the phones' loop: {:.3} ms", out.phones_longest_pass.as_secs_f64() * 1e3);
    println!(
        "  pair busy {:.3} s: {:.2} µs per request (rsip parse, reply, send)",
        out.pair.busy.as_secs_f64(),
        out.pair.busy.as_secs_f64() * 1e6 / requests.max(1) as f64
    );
    dist("phones' loop woke after its timer (scheduling lag)", out.phones_wake_lag);
    dist("phones' timers handled after their deadline (lag + work)", out.phones_timer_lag);
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
    dist("switch after the ladder's deadline", sum.switch_after_deadline);
    let limit = Duration::from_millis(1605);
    let all = sum.failovers as usize == phones && c.count as usize == phones;
    let verdict = if all && c.max <= limit { "PASS" } else { "FAIL" };
    println!("  every phone switched within 1.6 s + 5 ms of its cycle's first unanswered probe: {verdict}");
}
