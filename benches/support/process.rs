//! Process figures the scale benches report: resident memory from `/proc` and the open-file
//! limit, raised as far as the machine allows.

use std::time::Duration;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:`); `None` when the process is gone.
pub fn status_kib(pid: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
}

/// VmRSS of this process, KiB.
pub fn rss_kib() -> u64 {
    status_kib("self", "VmRSS:").unwrap_or(0)
}

/// VmRSS of process `pid`, KiB (0 when it is gone).
pub fn rss_of(pid: u32) -> u64 {
    status_kib(&pid.to_string(), "VmRSS:").unwrap_or(0)
}

/// CPU time (user + system, every thread) process `pid` has used so far; zero when it is gone.
/// `/proc/<pid>/stat` counts it in USER_HZ ticks, which Linux fixes at 100 per second.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces and parentheses: fields are counted after its last ')',
    // where field 3 (state) comes first, so utime (14) and stime (15) are the 12th and 13th.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// The open-file limit before and after raising the soft limit to the hard one.
#[derive(Debug, Clone, Copy)]
pub struct OpenFiles {
    /// Soft limit this process started with.
    pub was: u64,
    /// Soft limit now (children and servers spawned from here inherit it).
    pub soft: u64,
    /// Hard limit: raising it needs CAP_SYS_RESOURCE, which a bench should not ask for.
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard limit: distributions start shells at a soft
/// 1,024 while allowing far more, and 10,000 connections need the difference.
pub fn raise_open_files() -> OpenFiles {
    let limit = getrlimit(Resource::Nofile);
    // `None` means unlimited.
    let was = limit.current.unwrap_or(u64::MAX);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let soft = match setrlimit(Resource::Nofile, raised) {
        Ok(()) => hard,
        Err(_) => was,
    };
    OpenFiles { was, soft, hard }
}
