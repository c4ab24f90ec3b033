//! Priority classes and the explicit fair rates a store publishes for each of them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A priority class. Classes are served in strict order: `critical` before `standard` before
/// `bulk`, so `bulk` absorbs throttling first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Served first.
    Critical,
    /// The default class.
    #[default]
    Standard,
    /// Served with what the others leave.
    Bulk,
}

impl Class {
    /// Every class, in the order they are served.
    pub const ALL: [Class; 3] = [Self::Critical, Self::Standard, Self::Bulk];

    /// The name on the wire and in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Standard => "standard",
            Self::Bulk => "bulk",
        }
    }

    /// The class a demand event's `class` field names. Absent or unknown names are served
    /// as `standard`, so that a newer agent's class never starves it at an older store.
    pub fn of_wire(name: Option<&str>) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| Some(c.as_str()) == name)
            .unwrap_or_default()
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rows per second each unit of weight may send, per class: an agent of class `c` and
/// weight `w` sends at most `w × rate(c)`. Three numbers whatever the fleet's size.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairRates {
    /// Rate per unit of weight of `critical` agents.
    pub critical: f64,
    /// Rate per unit of weight of `standard` agents.
    pub standard: f64,
    /// Rate per unit of weight of `bulk` agents.
    pub bulk: f64,
}

impl FairRates {
    /// The rate of `class`.
    pub fn get(&self, class: Class) -> f64 {
        match class {
            Class::Critical => self.critical,
            Class::Standard => self.standard,
            Class::Bulk => self.bulk,
        }
    }

    /// Sets the rate of `class`.
    pub fn set(&mut self, class: Class, rate: f64) {
        match class {
            Class::Critical => self.critical = rate,
            Class::Standard => self.standard = rate,
            Class::Bulk => self.bulk = rate,
        }
    }

    /// Class by class sums (`sign` −1 subtracts).
    pub fn add(&mut self, other: &FairRates, sign: f64) {
        for c in Class::ALL {
            self.set(c, self.get(c) + sign * other.get(c));
        }
    }

    /// Every rate is finite and not negative.
    pub fn is_valid(&self) -> bool {
        Class::ALL
            .into_iter()
            .all(|c| self.get(c) >= 0.0 && self.get(c).is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_classes_are_standard() {
        assert_eq!(Class::of_wire(Some("bulk")), Class::Bulk);
        assert_eq!(Class::of_wire(Some("critical")), Class::Critical);
        assert_eq!(Class::of_wire(None), Class::Standard);
        assert_eq!(Class::of_wire(Some("gold")), Class::Standard);
        assert!(Class::Critical < Class::Bulk);
    }
}
