//! What the demo shows while it runs and when it ends.

use std::fmt;
use std::time::Duration;

use super::DemoConfig;
use crate::coordinator::StatsSnapshot;
use crate::event::BackpressureLevel;

/// One progress sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// The store's level.
    pub level: BackpressureLevel,
    /// The store's queue depth.
    pub depth: u64,
    /// The store's capacity.
    pub capacity: u64,
    /// Mean scale over the agents.
    pub scale: f64,
    /// Rows offered per second since the last sample.
    pub offered_per_sec: f64,
    /// Rows written per second since the last sample.
    pub written_per_sec: f64,
    /// Rows dropped so far.
    pub dropped: u64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>5.1}s  level={:<4}  depth={:>6}/{:<6}  scale={:.2}  offered={:>6.0}/s  written={:>6.0}/s  dropped={}",
            self.elapsed.as_secs_f64(),
            self.level.as_str().to_uppercase(),
            self.depth,
            self.capacity,
            self.scale,
            self.offered_per_sec,
            self.written_per_sec,
            self.dropped
        )
    }
}

/// The demo's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoReport {
    /// Policy name (`none` without feedback).
    pub policy: String,
    /// Time load was offered.
    pub elapsed: Duration,
    /// Rows the agents produced.
    pub offered: u64,
    /// Final store counters.
    pub stats: StatsSnapshot,
    /// Sink capacity used while load was offered: rows written in that time / (sink rate ×
    /// elapsed).
    pub utilization: f64,
    /// 99th percentile of queue wait.
    pub queue_wait_p99: Duration,
    /// Time spent at each level (ok, soft, hard).
    pub level_time: [Duration; 3],
}

impl DemoReport {
    pub(super) fn new(
        config: &DemoConfig,
        elapsed: Duration,
        offered: u64,
        written_in_window: u64,
        stats: StatsSnapshot,
        queue_wait_p99: Duration,
        level_time: [Duration; 3],
    ) -> Self {
        let possible = config.sink_rate * elapsed.as_secs_f64();
        Self {
            policy: config.policy.as_str().to_owned(),
            elapsed,
            offered,
            stats,
            utilization: if possible > 0.0 {
                written_in_window as f64 / possible
            } else {
                0.0
            },
            queue_wait_p99,
            level_time,
        }
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(f, "policy:            {}", self.policy)?;
        writeln!(f, "rows offered:      {}", self.offered)?;
        writeln!(f, "rows accepted:     {}", s.accepted)?;
        writeln!(f, "rows written:      {}", s.written)?;
        writeln!(
            f,
            "rows dropped:      {} (overflow {})",
            s.dropped(),
            s.dropped_overflow
        )?;
        writeln!(f, "rows dead-letter:  {}", s.dead_lettered())?;
        writeln!(f, "level changes:     {}", s.level_changes)?;
        writeln!(
            f,
            "time at level:     ok {:.1}s, soft {:.1}s, hard {:.1}s",
            self.level_time[0].as_secs_f64(),
            self.level_time[1].as_secs_f64(),
            self.level_time[2].as_secs_f64()
        )?;
        writeln!(f, "sink utilization:  {:.1}%", self.utilization * 100.0)?;
        write!(
            f,
            "queue wait p99:    {:.0} ms",
            self.queue_wait_p99.as_secs_f64() * 1_000.0
        )
    }
}
