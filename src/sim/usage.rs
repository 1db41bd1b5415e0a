//! The process's own CPU time (`getrusage(RUSAGE_SELF)`: every thread, user and system) and the
//! machine's load, for figures that say what they cost and on what machine.

use std::time::Duration;

/// CPU time the whole process has used so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cpu {
    /// In user mode.
    pub user: Duration,
    /// In the kernel (system calls).
    pub system: Duration,
}

impl Cpu {
    /// User and system together.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The CPU time from `earlier` to `self`.
    pub fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu { user: self.user.saturating_sub(earlier.user), system: self.system.saturating_sub(earlier.system) }
    }
}

/// The whole process's CPU time so far (all threads, user and system); zero where unknown.
#[allow(unsafe_code)]
pub fn process_cpu() -> Cpu {
    #[cfg(unix)]
    {
        // SAFETY: all-zero is a valid rusage, and getrusage writes only into the one we pass.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } == 0 {
            let d = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
            return Cpu { user: d(u.ru_utime), system: d(u.ru_stime) };
        }
    }
    Cpu::default()
}

/// The 1-minute load average (`/proc/loadavg`), where there is one.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// How the fleet's loop thread was scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduling {
    /// Real-time (`SCHED_FIFO` at this priority): it runs as soon as its timer fires, ahead of
    /// ordinary threads (the kernel's real-time throttling still keeps 5 % of each second for them).
    RealTime {
        /// The `SCHED_FIFO` priority.
        priority: i32,
    },
    /// The ordinary time-sharing scheduler, and why.
    Normal {
        /// Not asked for, or why the kernel refused.
        why: String,
    },
}

impl std::fmt::Display for Scheduling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheduling::RealTime { priority } => write!(f, "SCHED_FIFO priority {priority}"),
            Scheduling::Normal { why } => write!(f, "normal time-sharing ({why})"),
        }
    }
}

/// The calling thread's real-time scheduling while it lives: asked for when made (`SCHED_FIFO` at
/// `priority`, not inherited by threads started meanwhile), given back when dropped.
#[derive(Debug)]
pub struct RealTimeGuard {
    /// What the thread got.
    pub scheduling: Scheduling,
}

impl RealTimeGuard {
    /// Asks for `SCHED_FIFO` at `priority` for the calling thread; the kernel refuses it to a
    /// process without `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` that allows it, and then the thread
    /// stays as it was.
    #[allow(unsafe_code)]
    pub fn ask(priority: i32) -> Self {
        #[cfg(target_os = "linux")]
        {
            let param = libc::sched_param { sched_priority: priority };
            // SAFETY: pid 0 is the calling thread; the parameter lives across the call.
            let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param) };
            if r == 0 {
                return RealTimeGuard { scheduling: Scheduling::RealTime { priority } };
            }
            let e = std::io::Error::last_os_error();
            RealTimeGuard {
                scheduling: Scheduling::Normal {
                    why: format!("SCHED_FIFO refused: {e}; needs root, CAP_SYS_NICE or an rtprio limit"),
                },
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = priority;
            RealTimeGuard {
                scheduling: Scheduling::Normal { why: "real-time scheduling is asked for on Linux only".into() },
            }
        }
    }

    /// The thread as it is, nothing asked.
    pub fn not_asked(why: &str) -> Self {
        RealTimeGuard { scheduling: Scheduling::Normal { why: why.to_string() } }
    }
}

impl Drop for RealTimeGuard {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if matches!(self.scheduling, Scheduling::RealTime { .. }) {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: as in `ask`; going back to SCHED_OTHER is always allowed.
            let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
        }
    }
}

/// The machine's CPUs kept out of deep idle states while it lives (a PM QoS request of 0 µs wake-up
/// latency, `/dev/cpu_dma_latency`, as real-time latency tests make): an idle CPU then polls
/// instead of halting. A halted CPU of a virtual machine is a thread the host must schedule again
/// before the guest's timer is served, which now and then takes milliseconds; a polling one is
/// already running. The price is the CPUs' idle time, spent polling: the machine's, not the
/// process's CPU time. The kernel drops the request when the file is closed, by drop or by the
/// process's end, whichever comes first.
#[derive(Debug)]
pub struct IdlePollGuard {
    /// Held, or why not.
    pub state: IdlePoll,
    #[cfg(target_os = "linux")]
    _file: Option<std::fs::File>,
}

/// Whether the CPUs were kept out of deep idle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdlePoll {
    /// Held: idle CPUs poll.
    Held,
    /// Not held, and why.
    NotHeld {
        /// Not asked for, or why the kernel refused.
        why: String,
    },
}

impl std::fmt::Display for IdlePoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdlePoll::Held => write!(f, "idle CPUs poll (PM QoS 0 us)"),
            IdlePoll::NotHeld { why } => write!(f, "idle CPUs may halt ({why})"),
        }
    }
}

impl IdlePollGuard {
    /// Asks the kernel to keep every CPU out of idle states that take any time to leave; refused
    /// without write access to `/dev/cpu_dma_latency` (root, usually), and then nothing changes.
    pub fn ask() -> Self {
        #[cfg(target_os = "linux")]
        {
            use std::io::Write;
            let held = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/cpu_dma_latency")
                .and_then(|mut f| f.write_all(&0i32.to_ne_bytes()).map(|()| f));
            match held {
                Ok(f) => IdlePollGuard { state: IdlePoll::Held, _file: Some(f) },
                Err(e) => IdlePollGuard {
                    state: IdlePoll::NotHeld { why: format!("/dev/cpu_dma_latency: {e}") },
                    _file: None,
                },
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            IdlePollGuard { state: IdlePoll::NotHeld { why: "asked for on Linux only".into() } }
        }
    }

    /// Nothing asked.
    pub fn not_asked(why: &str) -> Self {
        IdlePollGuard {
            state: IdlePoll::NotHeld { why: why.to_string() },
            #[cfg(target_os = "linux")]
            _file: None,
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// How many times each CPU entered each idle state that takes time to leave (exit latency over
    /// 0 µs), from the kernel's cpuidle counters; None where there are none.
    fn deep_idle_entries() -> Option<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for cpu in std::fs::read_dir("/sys/devices/system/cpu").ok()?.flatten() {
            let name = cpu.file_name().to_string_lossy().into_owned();
            if !name.strip_prefix("cpu").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
                continue;
            }
            let Ok(states) = std::fs::read_dir(cpu.path().join("cpuidle")) else { continue };
            for state in states.flatten() {
                let read = |f: &str| std::fs::read_to_string(state.path().join(f)).ok()?.trim().parse::<u64>().ok();
                if let (Some(latency), Some(usage)) = (read("latency"), read("usage")) {
                    if latency > 0 {
                        out.push((format!("{name}/{}", state.file_name().to_string_lossy()), usage));
                    }
                }
            }
        }
        out.sort();
        (!out.is_empty()).then_some(out)
    }

    #[test]
    fn while_the_guard_is_held_no_cpu_enters_an_idle_state_that_takes_time_to_leave() {
        let Some(_) = deep_idle_entries() else {
            println!("SKIP: this machine has no cpuidle states with an exit latency (no /sys/devices/system/cpu/cpu*/cpuidle)");
            return;
        };
        let guard = IdlePollGuard::ask();
        if let IdlePoll::NotHeld { why } = &guard.state {
            println!("SKIP: the kernel refused the request ({why}); it needs write access to /dev/cpu_dma_latency");
            return;
        }
        // A CPU that was already halted when the request was made counts its entry when it leaves:
        // give every CPU time to come out of the state it was in, then count.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let before = deep_idle_entries();
        // The CPUs are idle most of this time (the test only sleeps); held, they poll instead.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let after = deep_idle_entries();
        assert_eq!(before, after, "a CPU entered a deep idle state while the request was held");
        drop(guard);
    }

    #[test]
    fn a_guard_not_asked_says_why_and_holds_nothing() {
        let g = IdlePollGuard::not_asked("not asked for");
        assert_eq!(g.state, IdlePoll::NotHeld { why: "not asked for".into() });
        assert_eq!(g.state.to_string(), "idle CPUs may halt (not asked for)");
    }
}
