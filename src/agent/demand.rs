//! What an agent's producers offered before throttling and what they were granted, measured
//! from the time they spend waiting on their sources versus on the rate limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// What one producer did, as totals: the agent's producers write it, the estimate reads it.
#[derive(Debug, Default)]
pub struct ProducerCounts {
    /// Rows produced (granted by the rate limit).
    pub rows: AtomicU64,
    /// Time spent waiting for the source to have a row, microseconds.
    pub source_us: AtomicU64,
    /// The source is exhausted (a replay ended, `max_rows` reached): it offers nothing more.
    pub done: AtomicBool,
    /// Rows the source holds ready now, when it can tell (a consumer's lag, a buffer's
    /// length): see [`ProducerCounts::set_backlog`].
    pub backlog: AtomicU64,
    /// Whether `backlog` is known.
    pub backlog_known: AtomicBool,
}

impl ProducerCounts {
    /// Counts one row that took `waited` to come from the source.
    pub fn row(&self, waited: Duration) {
        self.rows.fetch_add(1, Relaxed);
        self.add_source_wait(waited);
    }

    /// Counts `rows` rows at once (a chunk), the source having taken `waited`.
    pub fn rows(&self, rows: u64, waited: Duration) {
        self.rows.fetch_add(rows, Relaxed);
        self.add_source_wait(waited);
    }

    /// Records how many rows the source holds ready now. Once a source reports it, its demand
    /// is measured exactly, throttled or not: the rows it took plus the backlog's growth.
    pub fn set_backlog(&self, rows: u64) {
        self.backlog.store(rows, Relaxed);
        self.backlog_known.store(true, Relaxed);
    }

    /// Counts time spent waiting for the source without a row (nothing to do yet).
    pub fn add_source_wait(&self, waited: Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.source_us.fetch_add(us, Relaxed);
    }
}

/// One producer: its counts and the rate it may never exceed (its provider's base rate).
#[derive(Debug, Clone)]
pub struct Producer {
    /// The counts.
    pub counts: Arc<ProducerCounts>,
    /// The base rate, rows per second.
    pub base_rate: f64,
}

/// One producer's counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Totals {
    rows: u64,
    source_us: u64,
    backlog: Option<u64>,
}

/// Smoothed offered and granted rates, rows per second.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Demand {
    /// Rows per second the sources offered before throttling.
    pub offered: f64,
    /// Rows per second the rate limits granted.
    pub granted: f64,
}

/// Estimates an agent's demand from its producers. Pure apart from the time it is given.
///
/// Over each interval, a producer whose source reports its backlog offered what arrived: the
/// rows it took plus the backlog's growth (at most its base rate). Otherwise a producer that spent at least half of it waiting for its source is
/// limited by the source: it offered the rows it got per second of source time (at most its
/// base rate). A producer that mostly waited on its rate limit (or downstream) has rows
/// waiting: it offered its full base rate. An exhausted source offers nothing. Both rates are
/// smoothed over `window` (an exponential moving average).
#[derive(Debug)]
pub struct DemandEstimate {
    producers: Vec<Producer>,
    window: Duration,
    last: Option<(Instant, Vec<Totals>)>,
    smoothed: Option<Demand>,
}

impl DemandEstimate {
    /// An estimate over `producers`, smoothed over `window`.
    pub fn new(producers: Vec<Producer>, window: Duration) -> Self {
        Self {
            producers,
            window,
            last: None,
            smoothed: None,
        }
    }

    fn totals(&self) -> Vec<Totals> {
        self.producers
            .iter()
            .map(|p| Totals {
                rows: p.counts.rows.load(Relaxed),
                source_us: p.counts.source_us.load(Relaxed),
                backlog: p
                    .counts
                    .backlog_known
                    .load(Relaxed)
                    .then(|| p.counts.backlog.load(Relaxed)),
            })
            .collect()
    }

    /// The demand over the interval since the last call (the first call only starts it).
    pub fn sample(&mut self, now: Instant) -> Demand {
        let totals = self.totals();
        let Some((t0, before)) = self.last.replace((now, totals.clone())) else {
            return self.smoothed.unwrap_or_default();
        };
        let dt = now.saturating_duration_since(t0).as_secs_f64();
        if dt <= 0.0 {
            return self.smoothed.unwrap_or_default();
        }
        let mut now_demand = Demand::default();
        for ((p, now), then) in self.producers.iter().zip(&totals).zip(&before) {
            let got = now.rows.saturating_sub(then.rows) as f64;
            let source_s = now.source_us.saturating_sub(then.source_us) as f64 / 1e6;
            now_demand.granted += got / dt;
            now_demand.offered += if p.counts.done.load(Relaxed) {
                0.0
            } else if let (Some(b), Some(b0)) = (now.backlog, then.backlog) {
                ((got + b as f64 - b0 as f64) / dt).clamp(0.0, p.base_rate)
            } else if source_s < 0.5 * dt {
                p.base_rate
            } else {
                (got / source_s).min(p.base_rate)
            };
        }
        let alpha = (dt / self.window.as_secs_f64().max(1e-9)).min(1.0);
        let smoothed = match self.smoothed {
            Some(s) => Demand {
                offered: s.offered + alpha * (now_demand.offered - s.offered),
                granted: s.granted + alpha * (now_demand.granted - s.granted),
            },
            None => now_demand,
        };
        self.smoothed = Some(smoothed);
        smoothed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer(base: f64) -> (Producer, Arc<ProducerCounts>) {
        let counts = Arc::new(ProducerCounts::default());
        (
            Producer {
                counts: counts.clone(),
                base_rate: base,
            },
            counts,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_producer_offers_its_base_rate_and_a_slow_source_its_own() {
        let (throttled, t) = producer(1_000.0);
        let (slow, s) = producer(1_000.0);
        let mut est = DemandEstimate::new(vec![throttled, slow], Duration::from_secs(1));
        let t0 = Instant::now();
        est.sample(t0);
        // One second: the throttled producer got 250 rows (scale 0.25) and never waited for
        // its source; the slow source gave 100 rows over 0.9 s of waiting.
        t.rows(250, Duration::ZERO);
        s.rows(100, Duration::from_millis(900));
        let d = est.sample(t0 + Duration::from_secs(1));
        assert_eq!(d.granted, 350.0);
        assert!((d.offered - (1_000.0 + 100.0 / 0.9)).abs() < 1e-9, "{d:?}");
        // The replay ends: it offers nothing any more.
        s.done.store(true, Relaxed);
        t.rows(250, Duration::ZERO);
        let d = est.sample(t0 + Duration::from_secs(2));
        assert_eq!(d.offered, 1_000.0);
        assert_eq!(d.granted, 250.0);
    }

    #[tokio::test(start_paused = true)]
    async fn rates_are_smoothed_over_the_window() {
        let (p, c) = producer(100.0);
        let mut est = DemandEstimate::new(vec![p], Duration::from_secs(4));
        let t0 = Instant::now();
        est.sample(t0);
        c.rows(100, Duration::ZERO);
        assert_eq!(est.sample(t0 + Duration::from_secs(1)).granted, 100.0);
        // Nothing granted for a second: a quarter of the way down.
        let d = est.sample(t0 + Duration::from_secs(2));
        assert_eq!(d.granted, 75.0);
        assert_eq!(d.offered, 100.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_that_knows_its_backlog_offers_what_arrived_throttled_or_not() {
        let (p, c) = producer(1_000.0);
        let mut est = DemandEstimate::new(vec![p], Duration::from_secs(1));
        let t0 = Instant::now();
        c.set_backlog(0);
        est.sample(t0);
        // Throttled: 200 rows taken, 100 more piled up, never waiting for the source. Without
        // the backlog this would read as the base rate (1,000).
        c.rows(200, Duration::ZERO);
        c.set_backlog(100);
        assert_eq!(est.sample(t0 + Duration::from_secs(1)).offered, 300.0);
        // More capacity: 400 taken, the backlog drained by 100: 300 arrived.
        c.rows(400, Duration::ZERO);
        c.set_backlog(0);
        let d = est.sample(t0 + Duration::from_secs(2));
        assert_eq!((d.offered, d.granted), (300.0, 400.0));
    }
}
