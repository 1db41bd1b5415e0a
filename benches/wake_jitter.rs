//! How late this machine wakes a thread that sleeps until deadlines, with nothing else to do: the
//! floor under every real-time figure of the lab. A thread (real-time `SCHED_FIFO` when granted, as
//! the fleet's loop asks; `WAKE_NORMAL=1` for the ordinary scheduler; `WAKE_IDLE_POLL=1` to keep the
//! idle CPUs polling, as `lab --idle-poll` does) sleeps until a deadline every
//! 0.5 ms (`WAKE_PERIOD_US=N` for another period) for 60 s (`WAKE_SECONDS=N` for another length)
//! and records how late it woke: p50, p99, max, how many wake-ups came over 1 ms and over 5 ms late
//! (and when), and the CPU time the hypervisor took from the machine meanwhile (`/proc/stat` steal,
//! 10 ms ticks).
//!
//! `WAKE_THREADS=N` runs N such threads at once, thread k pinned to CPU k (modulo the CPUs), all
//! with the same deadlines; then it also says, for every deadline some thread missed by over 5 ms,
//! how late the other threads were for that same deadline: whether a stall hits one CPU at a time
//! (a second thread could stand in) or the whole machine (nothing inside the process can).
//!
//! `cargo bench --bench wake_jitter`.

mod common;

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sip_failover::sim::usage::{IdlePollGuard, RealTimeGuard};

fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().next()?.split_whitespace().nth(8)?.parse().ok()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Pins the calling thread to `cpu`; false where that is refused or not Linux.
#[allow(unsafe_code)]
fn pin_to(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: all-zero is an empty cpu_set_t; CPU_SET writes inside it; pid 0 is this thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        false
    }
}

/// One thread's lateness for every deadline, in microseconds, and how it was scheduled.
fn sleeper(start: Instant, period: Duration, count: usize, normal: bool) -> (Vec<u32>, String) {
    let guard = if normal { RealTimeGuard::not_asked("WAKE_NORMAL set") } else { RealTimeGuard::ask(1) };
    let mut lags = Vec::with_capacity(count);
    let mut deadline = start;
    // Bounded: `count` wake-ups.
    for _ in 0..count {
        deadline += period;
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        let lag = Instant::now().saturating_duration_since(deadline);
        lags.push(lag.as_micros().min(u32::MAX as u128) as u32);
    }
    (lags, guard.scheduling.to_string())
}

fn main() {
    if !common::should_run(env!("CARGO_CRATE_NAME")) {
        return;
    }
    let seconds = env_u64("WAKE_SECONDS").unwrap_or(60);
    let normal = std::env::var_os("WAKE_NORMAL").is_some();
    let period_us = env_u64("WAKE_PERIOD_US").unwrap_or(500).max(1);
    let threads = env_u64("WAKE_THREADS").unwrap_or(1).clamp(1, 64) as usize;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let period = Duration::from_micros(period_us);
    let count = (seconds * 1_000_000 / period_us) as usize;
    let idle = if std::env::var_os("WAKE_IDLE_POLL").is_some() {
        IdlePollGuard::ask()
    } else {
        IdlePollGuard::not_asked("WAKE_IDLE_POLL not set")
    };
    let steal0 = steal_ticks();
    // Every thread starts from the same instant, a little ahead so that all are asleep by then.
    let start = Instant::now() + Duration::from_millis(20);
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            std::thread::spawn(move || {
                let pinned = threads > 1 && pin_to(k % cpus);
                let (lags, scheduling) = sleeper(start, period, count, normal);
                (lags, scheduling, pinned)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().expect("sleeper thread")).collect();
    let stolen = steal0.zip(steal_ticks()).map(|(a, b)| (b - a) * 10);
    println!(
        "wake-up lateness: {threads} thread(s) sleeping until a deadline every {:.3} ms for {seconds} s, scheduled {}; {}",
        period_us as f64 / 1e3,
        results[0].1,
        idle.state
    );
    for (k, (lags, _, pinned)) in results.iter().enumerate() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for &l in lags {
            h.saturating_record(l as u64);
        }
        let over_1ms = lags.iter().filter(|&&l| l > 1_000).count();
        let over_5ms = lags.iter().filter(|&&l| l > 5_000).count();
        let on = if *pinned { format!(" (CPU {})", k % cpus) } else { String::new() };
        println!(
            "  thread {k}{on}: p50 {:.3} ms / p99 {:.3} ms / max {:.3} ms over {} wake-ups; over 1 ms: {over_1ms}; over 5 ms: {over_5ms}",
            h.value_at_quantile(0.5) as f64 / 1e3,
            h.value_at_quantile(0.99) as f64 / 1e3,
            h.max() as f64 / 1e3,
            h.len(),
        );
    }
    // Every deadline some thread missed by over 5 ms, with every thread's lateness for it.
    let (mut missed, mut covered) = (0usize, 0usize);
    for i in 0..count {
        let row: Vec<u32> = results.iter().map(|r| r.0[i]).collect();
        if row.iter().any(|&l| l > 5_000) {
            missed += 1;
            let best = *row.iter().min().unwrap_or(&0);
            if best <= 1_000 {
                covered += 1;
            }
            let lates: Vec<String> = row.iter().map(|&l| format!("{:.3}", l as f64 / 1e3)).collect();
            println!(
                "  deadline at {:.3} s: late by {} ms (thread by thread)",
                (period * (i as u32 + 1)).as_secs_f64(),
                lates.join(" / ")
            );
        }
    }
    if threads > 1 {
        println!(
            "  deadlines some thread missed by over 5 ms: {missed}; of these another thread woke within 1 ms: {covered}"
        );
    }
    if let Some(ms) = stolen {
        println!("  CPU time the hypervisor took from this machine meanwhile (steal): {ms} ms");
    }
}
