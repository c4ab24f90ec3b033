//! Clocks derived from tokio's clock, so that paused tokio time drives every timer in the crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;
use tokio::time::Instant;

/// A `governor` clock that reads tokio's clock.
///
/// governor's own clocks (and its `until_ready`) ignore paused tokio time; this one measures
/// nanoseconds elapsed since it was created on `tokio::time::Instant`, so rate limiting is
/// deterministic in tests that pause time.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// The duration from `now` until a governor instant (zero if it already passed).
    pub fn until(&self, at: Nanos) -> Duration {
        Duration::from(at.duration_since(self.now()))
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Instant::now().saturating_duration_since(self.origin))
    }
}

/// Wall-clock time that advances with tokio's clock.
///
/// Feedback events carry a wall-clock timestamp so that other hosts can judge their age. The
/// system time is read once, at creation; afterwards time advances with tokio's monotonic clock,
/// so a paused test sees timestamps move exactly as its timers do, and a wall-clock step on the
/// host does not make events jump backwards.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    anchor_unix: Duration,
    anchor: Instant,
}

impl WallClock {
    /// Anchor the wall clock to the system time now.
    pub fn new() -> Self {
        #[allow(clippy::disallowed_methods)] // the single place the system time is read
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::anchored_at(unix)
    }

    /// A wall clock that reads `unix` (time since the Unix epoch) now.
    pub fn anchored_at(unix: Duration) -> Self {
        Self {
            anchor_unix: unix,
            anchor: Instant::now(),
        }
    }

    /// Time since the Unix epoch.
    pub fn now_unix(&self) -> Duration {
        self.anchor_unix + Instant::now().saturating_duration_since(self.anchor)
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.now_unix().as_millis()).unwrap_or(u64::MAX)
    }

    /// Microseconds since the Unix epoch.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.now_unix().as_micros()).unwrap_or(u64::MAX)
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn both_clocks_follow_paused_tokio_time() {
        let gov = TokioClock::new();
        let wall = WallClock::anchored_at(Duration::from_secs(1_000));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(gov.now(), Nanos::from(Duration::from_millis(1_500)));
        assert_eq!(wall.now_ms(), 1_001_500);
    }
}
