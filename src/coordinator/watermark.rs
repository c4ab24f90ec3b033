//! Watermarks turn queue depth into a backpressure level.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::BackpressureLevel;
use crate::invalid::InvalidSetting;

/// A watermark given either as an item count or as a fraction of capacity.
///
/// In YAML and environment variables a whole number (`8000`) is a count and a number with a
/// decimal point (`0.8`) is a fraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Watermark {
    /// An absolute number of items.
    Absolute(u64),
    /// A fraction of capacity, in (0, 1].
    Fraction(f64),
}

impl Watermark {
    /// The watermark in items for a queue of `capacity`.
    pub fn resolve(self, capacity: u64) -> u64 {
        match self {
            Self::Absolute(n) => n,
            Self::Fraction(f) => (f * capacity as f64).round() as u64,
        }
    }
}

impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absolute(n) => write!(f, "{n}"),
            Self::Fraction(x) => write!(f, "{x}"),
        }
    }
}

/// Resolved watermarks, `low < high <= capacity`.
///
/// The level is the original store's: `Hard` at depth >= high, `Soft` for low < depth < high,
/// `Ok` only at depth <= low. The SOFT band between the marks is the hysteresis: a queue that
/// went HARD reads SOFT, not OK, until it has drained all the way to the low mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    low: u64,
    high: u64,
}

impl Watermarks {
    /// Resolves and checks `low < high <= capacity` (and `high >= 1`).
    pub fn new(low: Watermark, high: Watermark, capacity: u64) -> Result<Self, InvalidSetting> {
        for (name, mark) in [("low", low), ("high", high)] {
            if let Watermark::Fraction(f) = mark {
                if !(f > 0.0 && f <= 1.0) {
                    return Err(InvalidSetting::new(
                        format!("{name}_watermark"),
                        format!("a fraction must be in (0, 1], got {f}"),
                    ));
                }
            }
        }
        let (low, high) = (low.resolve(capacity), high.resolve(capacity));
        if high == 0 || high > capacity {
            return Err(InvalidSetting::new(
                "high_watermark",
                format!("high ({high}) must be in [1, capacity ({capacity})]"),
            ));
        }
        if low >= high {
            return Err(InvalidSetting::new(
                "low_watermark",
                format!("low ({low}) must be below high ({high})"),
            ));
        }
        Ok(Self { low, high })
    }

    /// The low mark in items.
    pub fn low(&self) -> u64 {
        self.low
    }

    /// The high mark in items.
    pub fn high(&self) -> u64 {
        self.high
    }

    /// The level for a queue holding `depth` items.
    pub fn level(&self, depth: u64) -> BackpressureLevel {
        if depth >= self.high {
            BackpressureLevel::Hard
        } else if depth > self.low {
            BackpressureLevel::Soft
        } else {
            BackpressureLevel::Ok
        }
    }
}

/// Remembers the current level and reports changes.
#[derive(Debug, Clone)]
pub struct LevelTracker {
    marks: Watermarks,
    current: BackpressureLevel,
}

impl LevelTracker {
    /// Starts at `Ok` (an empty queue).
    pub fn new(marks: Watermarks) -> Self {
        Self {
            marks,
            current: BackpressureLevel::Ok,
        }
    }

    /// The current level.
    pub fn current(&self) -> BackpressureLevel {
        self.current
    }

    /// The watermarks.
    pub fn marks(&self) -> Watermarks {
        self.marks
    }

    /// Feeds a new depth; returns the new level if it changed.
    pub fn update(&mut self, depth: u64) -> Option<BackpressureLevel> {
        let next = self.marks.level(depth);
        (next != self.current).then(|| {
            self.current = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackpressureLevel::*;

    fn marks() -> Watermarks {
        Watermarks::new(Watermark::Fraction(0.5), Watermark::Fraction(0.8), 1000).unwrap()
    }

    #[test]
    fn edges_follow_the_original_store() {
        let m = marks();
        assert_eq!((m.low(), m.high()), (500, 800));
        assert_eq!(m.level(0), Ok);
        assert_eq!(m.level(500), Ok);
        assert_eq!(m.level(501), Soft);
        assert_eq!(m.level(799), Soft);
        assert_eq!(m.level(800), Hard);
        assert_eq!(m.level(1000), Hard);
    }

    #[test]
    fn falling_from_hard_reads_soft_until_low() {
        let mut t = LevelTracker::new(marks());
        assert_eq!(t.update(850), Some(Hard));
        assert_eq!(t.update(700), Some(Soft));
        assert_eq!(t.update(501), None);
        assert_eq!(t.update(500), Some(Ok));
        assert_eq!(t.update(10), None);
    }

    #[test]
    fn absolute_and_fraction_marks_resolve_and_validate() {
        let m = Watermarks::new(Watermark::Absolute(10), Watermark::Absolute(20), 30).unwrap();
        assert_eq!((m.low(), m.high()), (10, 20));
        assert!(Watermarks::new(Watermark::Absolute(20), Watermark::Absolute(20), 30).is_err());
        assert!(Watermarks::new(Watermark::Absolute(1), Watermark::Absolute(31), 30).is_err());
        assert!(Watermarks::new(Watermark::Fraction(0.0), Watermark::Fraction(0.8), 30).is_err());
        assert!(Watermarks::new(Watermark::Fraction(0.5), Watermark::Fraction(1.5), 30).is_err());
    }
}
