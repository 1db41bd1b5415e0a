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
