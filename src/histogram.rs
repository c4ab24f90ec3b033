//! A lock-free latency histogram with log-linear buckets (relative error under 12.5%).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const LINEAR: u64 = 16;
const SUB_BITS: u32 = 3;
const BUCKETS: usize = 16 + (64 - 4) * (1 << SUB_BITS);

/// Records durations in microseconds; quantiles read the upper bound of the matching bucket.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("max_us", &self.max_us.load(Relaxed))
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= 4
    let sub = (v >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    (LINEAR as usize) + ((exp - 4) as usize) * (1 << SUB_BITS) + sub as usize
}

fn upper_bound(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let k = i - LINEAR as usize;
    let exp = (k >> SUB_BITS) as u32 + 4;
    let sub = (k & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    ((1u64 << exp) + sub * width).saturating_add(width - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[index(us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Sum of recorded values.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us.load(Relaxed))
    }

    /// The `q`-quantile (0..=1), or zero when empty. Never above the largest recorded value.
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let max = self.max_us.load(Relaxed);
                return Duration::from_micros(upper_bound(i).min(max));
            }
        }
        Duration::from_micros(self.max_us.load(Relaxed))
    }

    /// Non-empty buckets as (upper bound, count), for exporting.
    pub fn buckets(&self) -> Vec<(Duration, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Relaxed);
                (n > 0).then(|| (Duration::from_micros(upper_bound(i)), n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_with_bounded_error() {
        for v in [0u64, 1, 15, 16, 17, 100, 1_000, 123_456, 10_000_000_000] {
            let i = index(v);
            assert!(upper_bound(i) >= v, "{v}");
            assert!(upper_bound(i) as f64 <= v as f64 * 1.125 + 1.0, "{v}");
            if i > 0 {
                assert!(upper_bound(i - 1) < v, "{v}");
            }
        }
    }

    #[test]
    fn quantiles_read_recorded_distribution() {
        let h = Histogram::new();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).as_millis();
        let p99 = h.quantile(0.99).as_millis();
        assert!((50..=57).contains(&p50), "{p50}");
        assert!((99..=100).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), Duration::from_millis(100));
        assert_eq!(h.count(), 100);
    }
}
