//! A lock-free latency histogram with log-linear buckets (relative error under 12.5%, or
//! 3.2% for a [fine](Histogram::fine) one).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Sub-buckets per power of two, as bits: 8 (12.5% error) by default.
const SUB_BITS: u32 = 3;
/// Sub-bucket bits of a fine histogram: 32 per power of two (3.2% error) for figures that are
/// compared within a few per cent (the store's queue wait), at 4× the memory (15 KiB).
const FINE_SUB_BITS: u32 = 5;

/// Records durations in microseconds; quantiles read the upper bound of the matching bucket.
pub struct Histogram {
    /// Sub-bucket bits: values below `2^(sub_bits + 1)` get a bucket each, and every power of
    /// two above is split into `2^sub_bits` equal buckets.
    sub_bits: u32,
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
        Self::with_sub_bits(SUB_BITS)
    }
}

/// Values below this get a bucket each.
fn linear(sub_bits: u32) -> u64 {
    1 << (sub_bits + 1)
}

fn index(v: u64, sub_bits: u32) -> usize {
    let linear = linear(sub_bits);
    if v < linear {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= sub_bits + 1
    let sub = (v >> (exp - sub_bits)) & ((1 << sub_bits) - 1);
    (linear as usize) + ((exp - sub_bits - 1) as usize) * (1 << sub_bits) + sub as usize
}

fn upper_bound(i: usize, sub_bits: u32) -> u64 {
    let linear = linear(sub_bits) as usize;
    if i < linear {
        return i as u64;
    }
    let k = i - linear;
    let exp = (k >> sub_bits) as u32 + sub_bits + 1;
    let sub = (k & ((1 << sub_bits) - 1)) as u64;
    let width = 1u64 << (exp - sub_bits);
    ((1u64 << exp) + sub * width).saturating_add(width - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty histogram with four times the resolution (error under 3.2%).
    pub fn fine() -> Self {
        Self::with_sub_bits(FINE_SUB_BITS)
    }

    fn with_sub_bits(sub_bits: u32) -> Self {
        let buckets = linear(sub_bits) as usize + ((63 - sub_bits) as usize) * (1 << sub_bits);
        Self {
            sub_bits,
            counts: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[index(us, self.sub_bits)].fetch_add(1, Relaxed);
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
                return Duration::from_micros(upper_bound(i, self.sub_bits).min(max));
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
                (n > 0).then(|| (Duration::from_micros(upper_bound(i, self.sub_bits)), n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_with_bounded_error() {
        for (bits, error) in [(SUB_BITS, 0.125), (FINE_SUB_BITS, 0.032)] {
            let last = Histogram::with_sub_bits(bits).counts.len() - 1;
            assert_eq!(index(u64::MAX, bits), last);
            for v in [
                0u64,
                1,
                15,
                16,
                17,
                63,
                64,
                65,
                100,
                1_000,
                123_456,
                10_000_000_000,
            ] {
                let i = index(v, bits);
                assert!(upper_bound(i, bits) >= v, "{v}");
                assert!(
                    upper_bound(i, bits) as f64 <= v as f64 * (1.0 + error) + 1.0,
                    "{v}"
                );
                if i > 0 {
                    assert!(upper_bound(i - 1, bits) < v, "{v}");
                }
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

    #[test]
    fn a_fine_histogram_reads_quantiles_within_a_few_per_cent() {
        let h = Histogram::fine();
        for ms in 1..=1_000 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).as_millis();
        assert!((500..=516).contains(&p50), "{p50}");
        assert_eq!(h.buckets().iter().map(|(_, n)| n).sum::<u64>(), 1_000);
    }
}
