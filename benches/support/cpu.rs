//! CPU seconds spent by the threads of one tokio runtime, read from `/proc` (Linux), so a
//! bench can say what the store cost apart from the agents running in the same process.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::runtime::{Builder, Runtime};

/// The threads one runtime started.
#[derive(Clone, Default)]
pub struct CpuMeter {
    threads: Arc<Mutex<Vec<PathBuf>>>,
}

impl CpuMeter {
    /// A multi-thread runtime of `workers` threads whose every thread (blocking ones too)
    /// this meter counts.
    pub fn runtime(name: &str, workers: usize) -> (Runtime, Self) {
        let meter = Self::default();
        let threads = meter.threads.clone();
        let runtime = Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(name)
            .enable_all()
            .on_thread_start(move || {
                // `/proc/thread-self` names `<pid>/task/<tid>` of the calling thread.
                if let Ok(link) = std::fs::read_link("/proc/thread-self") {
                    let mut threads = threads.lock().unwrap_or_else(|p| p.into_inner());
                    threads.push(PathBuf::from("/proc").join(link).join("stat"));
                }
            })
            .build()
            .expect("runtime");
        (runtime, meter)
    }

    /// User + system seconds of the threads still alive (a blocking thread that exited
    /// idle is lost; the workers, which do the work here, stay).
    pub fn seconds(&self) -> f64 {
        let threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        let ticks: u64 = threads
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .filter_map(|stat| {
                // Fields after the command name (which may hold spaces) in parentheses:
                // state is field 3, utime 14, stime 15.
                let rest = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
            })
            .sum();
        ticks as f64 / clock_ticks()
    }
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s CPU times.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
