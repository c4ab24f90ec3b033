//! Synthetic bars: a seeded random walk per symbol, one bar per symbol per interval.

use super::{Bar, BarSource};

struct Walk {
    symbol: String,
    price: f64,
    next_ts: i64,
}

/// Produces bars for `symbols` round-robin. Each symbol's timestamps advance by
/// `interval_ms` from `start_ms`, so keys never repeat within one source; prices follow a
/// random walk with realistic OHLC relationships.
pub struct SyntheticSource {
    source: String,
    interval_ms: i64,
    walks: Vec<Walk>,
    next: usize,
    rng: fastrand::Rng,
}

impl SyntheticSource {
    /// A source named `source` (the bars' `source` field).
    pub fn new(
        source: impl Into<String>,
        symbols: &[String],
        start_ms: i64,
        interval_ms: i64,
        seed: u64,
    ) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let walks = symbols
            .iter()
            .map(|s| Walk {
                symbol: s.clone(),
                price: 20.0 + rng.f64() * 480.0,
                next_ts: start_ms,
            })
            .collect();
        Self {
            source: source.into(),
            interval_ms: interval_ms.max(1),
            walks,
            next: 0,
            rng,
        }
    }
}

impl BarSource for SyntheticSource {
    fn next_bar(&mut self) -> Option<Bar> {
        if self.walks.is_empty() {
            return None;
        }
        let i = self.next;
        self.next = (self.next + 1) % self.walks.len();
        let rng = &mut self.rng;
        let w = &mut self.walks[i];
        let step = |rng: &mut fastrand::Rng| 1.0 + (rng.f64() - 0.5) * 0.004;
        let open = w.price;
        let close = (open * step(rng)).max(0.01);
        let high = open.max(close) * (1.0 + rng.f64() * 0.001);
        let low = open.min(close) * (1.0 - rng.f64() * 0.001);
        let volume = (rng.f64() * 10_000.0).round();
        let bar = Bar {
            source: self.source.clone(),
            symbol: w.symbol.clone(),
            ts_ms: w.next_ts,
            open,
            high,
            low,
            close,
            volume,
        };
        w.price = close;
        w.next_ts += self.interval_ms;
        Some(bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_valid_and_keys_unique() {
        let symbols: Vec<String> = ["AAPL", "MSFT", "ES"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut src = SyntheticSource::new("ibkr:t", &symbols, 1_000, 60_000, 7);
        let bars: Vec<Bar> = (0..300).filter_map(|_| src.next_bar()).collect();
        assert!(bars.iter().all(|b| b.validate().is_ok()));
        let keys: std::collections::HashSet<_> = bars.iter().map(Bar::key).collect();
        assert_eq!(keys.len(), 300);
        assert_eq!(bars[3].symbol, "AAPL");
        assert_eq!(bars[3].ts_ms, 61_000);
    }
}
