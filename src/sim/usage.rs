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
