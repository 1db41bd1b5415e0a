//! How late this machine wakes a thread that sleeps until deadlines, with nothing else to do: the
//! floor under every real-time figure of the lab. A thread (real-time `SCHED_FIFO` when granted, as
//! the fleet's loop asks; `WAKE_NORMAL=1` for the ordinary scheduler) sleeps until a deadline every
//! 0.5 ms (`WAKE_PERIOD_US=N` for another period) for 60 s (`WAKE_SECONDS=N` for another length)
//! and records how late it woke: p50, p99,
//! max, how many wake-ups came over 1 ms and over 5 ms late (and when), and the CPU time the
//! hypervisor took from the machine meanwhile (`/proc/stat` steal, 10 ms ticks).
//!
//! `cargo bench --bench wake_jitter`.

mod common;

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sip_failover::sim::usage::RealTimeGuard;

fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().next()?.split_whitespace().nth(8)?.parse().ok()
}

fn main() {
    if !common::should_run(env!("CARGO_CRATE_NAME")) {
        return;
    }
    let seconds: u64 = std::env::var("WAKE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let guard = if std::env::var_os("WAKE_NORMAL").is_some() {
        RealTimeGuard::not_asked("WAKE_NORMAL set")
    } else {
        RealTimeGuard::ask(1)
    };
    let period_us: u64 = std::env::var("WAKE_PERIOD_US").ok().and_then(|v| v.parse().ok()).unwrap_or(500).max(1);
    let period = Duration::from_micros(period_us);
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut over_1ms, mut late) = (0u64, Vec::new());
    let steal0 = steal_ticks();
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut deadline = start;
    // Bounded: one wake-up per period until `end`.
    while deadline < end {
        deadline += period;
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        let lag = Instant::now().saturating_duration_since(deadline);
        h.saturating_record(lag.as_micros() as u64);
        if lag > Duration::from_millis(1) {
            over_1ms += 1;
        }
        if lag > Duration::from_millis(5) {
            late.push((deadline - start, lag));
        }
    }
    let stolen = steal0.zip(steal_ticks()).map(|(a, b)| (b - a) * 10);
    println!(
        "wake-up lateness: a thread sleeping until a deadline every {:.3} ms for {seconds} s, scheduled {}",
        period_us as f64 / 1e3,
        guard.scheduling
    );
    println!(
        "  p50 {:.3} ms / p99 {:.3} ms / max {:.3} ms over {} wake-ups; over 1 ms: {over_1ms}; over 5 ms: {}",
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.max() as f64 / 1e3,
        h.len(),
        late.len()
    );
    for (at, lag) in &late {
        println!("  {:.3} ms late at {:.3} s", lag.as_secs_f64() * 1e3, at.as_secs_f64());
    }
    if let Some(ms) = stolen {
        println!("  CPU time the hypervisor took from this machine meanwhile (steal): {ms} ms");
    }
}
