//! The store's service rate: rows per second it writes while it is busy (some worker has a
//! batch), measured over windows that were mostly busy, and held while it is idle.

use std::time::Duration;

use tokio::time::Instant;

/// Shortest window a measurement covers: batches land in bursts, and a window of a few of
/// them averages the saw-tooth out.
const WINDOW: Duration = Duration::from_secs(1);
/// The window of a first, quick measurement: until a store has an estimate its agents
/// cannot be given fair rates, and a rough one beats none. It is only used for fair rates,
/// never published: a new replica's rough reading once pulled the fleet's mean capacity
/// down and scaled it beyond the need.
const FIRST_WINDOW: Duration = Duration::from_millis(100);
/// Weight of a new window in the estimate (an exponential moving average).
const ALPHA: f64 = 0.3;
/// A window measures only when the store was busy at least this fraction of it: in shorter
/// busy stretches the batch in progress at the window's edges weighs too much.
const MIN_BUSY: f64 = 0.5;

/// The counters a measurement reads, as totals since the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counters {
    /// Items written.
    pub(crate) written: u64,
    /// Time every worker waited for items at once (the store idle), microseconds.
    pub(crate) idle_us: u64,
    /// Failed batch writes.
    pub(crate) failures: u64,
}

/// Estimates the service rate. Pure: the caller passes the time and the counters.
///
/// Throughput equals capacity only while the store has work; idle time would count the
/// arrival rate in. So a window's sample is rows written over the time the store was busy,
/// taken when it was busy at least half the window and no write failed (a failing sink
/// measures the outage, not the store); otherwise the last estimate holds. A store that has
/// never been busy that long has no estimate: it has never needed more capacity than it has.
///
/// Earlier versions measured only windows in which the workers never waited. That picks the
/// windows in which writes happened to be slow and under-estimated the capacity by a fifth
/// in the simulator (sink jitter ±50 %), which scaled the fleet beyond the need. Busy time
/// counts from the first worker writing: exact for a sink that serves writes one after
/// another; for one that serves workers in parallel it reads low while only some workers
/// write, which errs towards more replicas.
#[derive(Debug)]
pub(crate) struct ServiceRate {
    start: Option<(Instant, Counters)>,
    estimate: Option<f64>,
    /// The first [`FIRST_WINDOW`]'s reading, until full windows give an estimate.
    quick: Option<f64>,
}

impl ServiceRate {
    pub(crate) fn new() -> Self {
        Self {
            start: None,
            estimate: None,
            quick: None,
        }
    }

    /// The estimate, or before there is one the quick first reading: what the fair rates
    /// divide.
    pub(crate) fn working(&self) -> Option<f64> {
        self.estimate.or(self.quick)
    }

    /// Takes in the counters at `now`; returns the estimate, rows per second.
    pub(crate) fn observe(&mut self, now: Instant, c: Counters) -> Option<f64> {
        let Some((t0, c0)) = self.start else {
            self.start = Some((now, c));
            return self.estimate;
        };
        let dt = now.saturating_duration_since(t0);
        if dt < WINDOW {
            if self.estimate.is_none() && self.quick.is_none() && dt >= FIRST_WINDOW {
                self.quick = sample(dt, c0, c);
            }
            return self.estimate;
        }
        if let Some(sample) = sample(dt, c0, c) {
            self.estimate = Some(match self.estimate {
                Some(e) => e + ALPHA * (sample - e),
                None => sample,
            });
        }
        self.start = Some((now, c));
        self.estimate
    }
}

/// Rows written per busy second between `c0` and `c`, `dt` apart, when the store was busy
/// at least half of it and no write failed.
fn sample(dt: Duration, c0: Counters, c: Counters) -> Option<f64> {
    let secs = dt.as_secs_f64();
    let written = c.written.saturating_sub(c0.written);
    let idle = c.idle_us.saturating_sub(c0.idle_us) as f64 / 1e6;
    let busy = (secs - idle).max(0.0);
    let failed = c.failures > c0.failures;
    (written > 0 && !failed && busy >= MIN_BUSY * secs).then(|| written as f64 / busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn busy_windows_measure_over_their_busy_time_and_idle_ones_hold() {
        let t0 = Instant::now();
        let mut r = ServiceRate::new();
        let c = |written, idle_us, failures| Counters {
            written,
            idle_us,
            failures,
        };
        assert_eq!(r.observe(t0, c(0, 0, 0)), None);
        // Busy for a second: 2,000 rows written, workers never waited.
        assert_eq!(r.observe(at(t0, 1_000), c(2_000, 0, 0)), Some(2_000.0));
        // Idle: 300 rows trickled in, the store idle most of the time: the estimate holds.
        assert_eq!(
            r.observe(at(t0, 2_000), c(2_300, 1_500_000, 0)),
            Some(2_000.0)
        );
        // A failing sink measures the outage, not the store.
        assert_eq!(
            r.observe(at(t0, 3_000), c(2_300, 1_500_000, 4)),
            Some(2_000.0)
        );
        // Busy 60 % of a second, 1,800 rows: 3,000 rows/s while busy; the estimate moves
        // towards it.
        let e = r.observe(at(t0, 4_000), c(4_100, 1_900_000, 4)).unwrap();
        assert!((e - 2_300.0).abs() < 1e-9, "{e}");
        // A window shorter than a second changes nothing.
        assert_eq!(r.observe(at(t0, 4_500), c(9_000, 1_900_000, 4)), Some(e));
    }

    #[test]
    fn a_store_never_saturated_has_no_estimate() {
        let t0 = Instant::now();
        let mut r = ServiceRate::new();
        for s in 0..10u64 {
            let c = Counters {
                written: s * 100,
                idle_us: s * 600_000,
                failures: 0,
            };
            assert_eq!(r.observe(at(t0, s * 1_000), c), None);
        }
    }
}
