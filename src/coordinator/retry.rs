//! Exponential backoff with jitter for sink retries.

use std::time::Duration;

use crate::invalid::{InvalidSetting, at_least_one};
use serde::Deserialize;

/// How a failed batch write is retried.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all, the first included (1 means no retry).
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Upper bound of any delay, in milliseconds.
    pub max_backoff_ms: u64,
    /// Growth factor between consecutive delays (>= 1).
    pub multiplier: f64,
    /// Fraction of each delay that is randomised (0 = none, 1 = "full jitter").
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_ms: 50,
            max_backoff_ms: 5_000,
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl RetryConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least_one(&[("max_attempts", u64::from(self.max_attempts))])?;
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err(InvalidSetting::new(
                "multiplier",
                format!("must be >= 1, got {}", self.multiplier),
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(InvalidSetting::new(
                "jitter",
                format!("must be in [0, 1], got {}", self.jitter),
            ));
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return Err(InvalidSetting::new(
                "initial_backoff_ms",
                format!("must not exceed max_backoff_ms ({})", self.max_backoff_ms),
            ));
        }
        Ok(())
    }

    /// Delay before retry number `retry` (1 = the first retry). `unit` is a uniform random
    /// number in [0, 1): the delay is the exponential value with up to `jitter` of it removed,
    /// so that workers that failed together do not retry together.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let exp = self.multiplier.powi(retry.saturating_sub(1).min(64) as i32);
        let base = (self.initial_backoff_ms as f64 * exp).min(self.max_backoff_ms as f64);
        let jittered = base * (1.0 - self.jitter * unit.clamp(0.0, 1.0));
        Duration::from_secs_f64(jittered.max(0.0) / 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let r = RetryConfig {
            jitter: 0.0,
            ..RetryConfig::default()
        };
        let ms: Vec<u128> = (1..=9).map(|n| r.delay(n, 0.5).as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn jitter_only_shortens_within_its_fraction() {
        let r = RetryConfig::default();
        assert_eq!(r.delay(2, 0.0), Duration::from_millis(100));
        let low = r.delay(2, 0.999_999);
        assert!(
            low >= Duration::from_millis(80) && low < Duration::from_millis(81),
            "{low:?}"
        );
    }

    #[test]
    fn invalid_values_name_their_key() {
        let bad = RetryConfig {
            multiplier: 0.5,
            ..RetryConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "multiplier");
    }
}
