//! One OHLCV bar and its wire encoding.

use serde::{Deserialize, Serialize};

/// One bar of market data. `(source, symbol, ts_ms)` identifies it: writing the same key
/// twice stores one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// Who produced it (provider and agent), part of the key.
    pub source: String,
    /// Instrument symbol.
    pub symbol: String,
    /// Start of the bar, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Open price.
    pub open: f64,
    /// High price.
    pub high: f64,
    /// Low price.
    pub low: f64,
    /// Close price.
    pub close: f64,
    /// Traded volume.
    pub volume: f64,
}

/// The identity of a bar.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BarKey {
    /// Source.
    pub source: String,
    /// Symbol.
    pub symbol: String,
    /// Timestamp, ms.
    pub ts_ms: i64,
}

/// A message that is not a valid bar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarError {
    /// Not a MessagePack bar.
    #[error("malformed bar: {0}")]
    Malformed(String),
    /// A field out of range.
    #[error("invalid bar: {0}")]
    Invalid(String),
}

const MAX_TEXT: usize = 64;

/// Most rows accepted in one message.
pub const MAX_BATCH_ROWS: usize = 10_000;

impl Bar {
    /// The key.
    pub fn key(&self) -> BarKey {
        BarKey {
            source: self.source.clone(),
            symbol: self.symbol.clone(),
            ts_ms: self.ts_ms,
        }
    }

    /// A JetStream message id for de-duplication of retried publishes.
    pub fn msg_id(&self) -> String {
        format!("{}|{}|{}", self.source, self.symbol, self.ts_ms)
    }

    /// Checks fields a database would choke on.
    pub fn validate(&self) -> Result<(), BarError> {
        for (name, text) in [("source", &self.source), ("symbol", &self.symbol)] {
            if text.is_empty() || text.len() > MAX_TEXT || text.chars().any(char::is_control) {
                return Err(BarError::Invalid(format!(
                    "{name} must be 1..={MAX_TEXT} printable characters"
                )));
            }
        }
        let prices = [self.open, self.high, self.low, self.close, self.volume];
        if prices.iter().any(|p| !p.is_finite()) {
            return Err(BarError::Invalid("prices and volume must be finite".into()));
        }
        if self.low > self.high {
            return Err(BarError::Invalid(format!(
                "low {} above high {}",
                self.low, self.high
            )));
        }
        Ok(())
    }

    /// MessagePack with named fields.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Decodes and validates.
    pub fn decode(bytes: &[u8]) -> Result<Self, BarError> {
        let bar: Bar =
            rmp_serde::from_slice(bytes).map_err(|e| BarError::Malformed(e.to_string()))?;
        bar.validate()?;
        Ok(bar)
    }

    /// Several bars in one message: a MessagePack array of named-field bars.
    pub fn encode_batch(bars: &[Bar]) -> Vec<u8> {
        rmp_serde::to_vec_named(bars).unwrap_or_default()
    }

    /// Decodes a message holding either an array of bars or a single bar, validating each;
    /// one bad row rejects the message.
    pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Self>, BarError> {
        let bars: Vec<Bar> = match rmp_serde::from_slice(bytes) {
            Ok(bars) => bars,
            Err(_) => vec![Self::decode(bytes)?],
        };
        if bars.is_empty() || bars.len() > MAX_BATCH_ROWS {
            return Err(BarError::Invalid(format!(
                "a message holds 1..={MAX_BATCH_ROWS} rows, not {}",
                bars.len()
            )));
        }
        for b in &bars {
            b.validate()?;
        }
        Ok(bars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar() -> Bar {
        Bar {
            source: "ibkr:a1".into(),
            symbol: "AAPL".into(),
            ts_ms: 1_700_000_000_000,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
            volume: 100.0,
        }
    }

    #[test]
    fn batches_round_trip_and_single_bars_still_decode() {
        let two = vec![bar(), Bar { ts_ms: 1, ..bar() }];
        assert_eq!(Bar::decode_batch(&Bar::encode_batch(&two)), Ok(two));
        assert_eq!(Bar::decode_batch(&bar().encode()), Ok(vec![bar()]));
        assert!(Bar::decode_batch(&Bar::encode_batch(&[])).is_err());
        let mut bad = bar();
        bad.low = 9.0;
        assert!(Bar::decode_batch(&Bar::encode_batch(&[bar(), bad])).is_err());
        assert!(Bar::decode_batch(b"\xc1").is_err());
    }

    #[test]
    fn round_trips_and_rejects_nonsense() {
        assert_eq!(Bar::decode(&bar().encode()), Ok(bar()));
        assert!(matches!(Bar::decode(b"nope"), Err(BarError::Malformed(_))));
        let mut b = bar();
        b.high = f64::NAN;
        assert!(matches!(
            Bar::decode(&b.encode()),
            Err(BarError::Invalid(_))
        ));
        let mut b = bar();
        b.low = 3.0;
        assert!(b.validate().is_err());
        let mut b = bar();
        b.symbol = String::new();
        assert!(b.validate().is_err());
    }
}
