//! The three backpressure levels, ordered by severity.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How urgently a store asks its producers to slow down.
///
/// Ordered by severity (`Ok < Soft < Hard`), so merging several coordinators is `max`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BackpressureLevel {
    /// The queue is at or below its low watermark.
    #[default]
    Ok,
    /// The queue is between the watermarks.
    Soft,
    /// The queue is at or above its high watermark.
    Hard,
}

impl BackpressureLevel {
    /// All levels, least severe first.
    pub const ALL: [BackpressureLevel; 3] = [Self::Ok, Self::Soft, Self::Hard];

    /// The lowercase wire name (`ok`, `soft`, `hard`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Soft => "soft",
            Self::Hard => "hard",
        }
    }

    /// The level as a number for gauges and arrays: 0 ok, 1 soft, 2 hard.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Soft => 1,
            Self::Hard => 2,
        }
    }
}

impl fmt::Display for BackpressureLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is not `ok`, `soft` or `hard`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backpressure level {0:?} (expected ok, soft or hard)")]
pub struct UnknownLevel(pub String);

impl FromStr for BackpressureLevel {
    type Err = UnknownLevel;

    /// Parses the wire names, ignoring ASCII case (the predecessor's Python enum used `SOFT`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_by_severity_and_parse_any_case() {
        assert!(BackpressureLevel::Ok < BackpressureLevel::Soft);
        assert!(BackpressureLevel::Soft < BackpressureLevel::Hard);
        assert_eq!(
            "SOFT".parse::<BackpressureLevel>(),
            Ok(BackpressureLevel::Soft)
        );
        assert_eq!(
            "medium".parse::<BackpressureLevel>(),
            Err(UnknownLevel("medium".into()))
        );
    }
}
