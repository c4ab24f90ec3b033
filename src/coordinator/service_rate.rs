//! The store's service rate: rows per second it writes while it has work, measured over
//! windows in which no worker waited for items, and held while it is idle.

use std::time::Duration;

use tokio::time::Instant;

/// Shortest window a measurement covers: batches land in bursts, and a window of a few of
/// them averages the saw-tooth out.
const WINDOW: Duration = Duration::from_secs(1);
/// Weight of a new window in the estimate (an exponential moving average).
const ALPHA: f64 = 0.3;
/// A window counts as saturated when the workers together waited for items at most this
/// fraction of it.
const MAX_STARVED: f64 = 0.05;

/// The counters a measurement reads, as totals since the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counters {
    /// Items written.
    pub(crate) written: u64,
    /// Time workers spent waiting for items, summed over workers, microseconds.
    pub(crate) starved_us: u64,
    /// Failed batch writes.
    pub(crate) failures: u64,
}

/// Estimates the service rate. Pure: the caller passes the time and the counters.
///
/// Throughput equals capacity only while the store has more work than it can do; at any other
/// time it is the arrival rate. So a window updates the estimate only when every worker was
/// busy throughout (they waited for items at most 5 % of it) and no write failed (a failing
/// sink measures the outage, not the store); otherwise the last estimate holds. A store that
/// has never been saturated has no estimate: it has never needed more capacity than it has.
#[derive(Debug)]
pub(crate) struct ServiceRate {
    workers: usize,
    start: Option<(Instant, Counters)>,
    estimate: Option<f64>,
}

impl ServiceRate {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            start: None,
            estimate: None,
        }
    }

    /// Takes in the counters at `now`; returns the estimate, rows per second.
    pub(crate) fn observe(&mut self, now: Instant, c: Counters) -> Option<f64> {
        let Some((t0, c0)) = self.start else {
            self.start = Some((now, c));
            return self.estimate;
        };
        let dt = now.saturating_duration_since(t0);
        if dt < WINDOW {
            return self.estimate;
        }
        let secs = dt.as_secs_f64();
        let written = c.written.saturating_sub(c0.written);
        let starved = c.starved_us.saturating_sub(c0.starved_us) as f64 / 1e6;
        let failed = c.failures > c0.failures;
        let saturated =
            written > 0 && !failed && starved <= MAX_STARVED * self.workers as f64 * secs;
        if saturated {
            let sample = written as f64 / secs;
            self.estimate = Some(match self.estimate {
                Some(e) => e + ALPHA * (sample - e),
                None => sample,
            });
        }
        self.start = Some((now, c));
        self.estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn only_saturated_windows_measure_and_idle_ones_hold() {
        let t0 = Instant::now();
        let mut r = ServiceRate::new(2);
        let c = |written, starved_us, failures| Counters {
            written,
            starved_us,
            failures,
        };
        assert_eq!(r.observe(t0, c(0, 0, 0)), None);
        // Busy for a second: 2,000 rows written, workers never waited.
        assert_eq!(r.observe(at(t0, 1_000), c(2_000, 0, 0)), Some(2_000.0));
        // Idle: 300 rows trickled in, workers waited most of the time: the estimate holds.
        assert_eq!(
            r.observe(at(t0, 2_000), c(2_300, 1_500_000, 0)),
            Some(2_000.0)
        );
        // A failing sink measures the outage, not the store.
        assert_eq!(
            r.observe(at(t0, 3_000), c(2_300, 1_500_000, 4)),
            Some(2_000.0)
        );
        // Busy again at 3,000 rows/s: the estimate moves towards it.
        let e = r.observe(at(t0, 4_000), c(5_300, 1_500_000, 4)).unwrap();
        assert!((e - 2_300.0).abs() < 1e-9, "{e}");
        // A window shorter than a second changes nothing.
        assert_eq!(r.observe(at(t0, 4_500), c(9_000, 1_500_000, 4)), Some(e));
    }

    #[test]
    fn a_store_never_saturated_has_no_estimate() {
        let t0 = Instant::now();
        let mut r = ServiceRate::new(4);
        for s in 0..10u64 {
            let c = Counters {
                written: s * 100,
                starved_us: s * 3_000_000,
                failures: 0,
            };
            assert_eq!(r.observe(at(t0, s * 1_000), c), None);
        }
    }
}
