//! One shape for a setting that is out of range: the key path and the reason.
//!
//! Every component validates its own settings and names keys relative to its own section;
//! whoever embeds the section prefixes the key once with [`InvalidSetting::under`], so the
//! message a user reads names the full path (`rate_coordinator.providers.ibkr.refill_rate`).

/// A setting out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {key}: {reason}")]
pub struct InvalidSetting {
    /// The dotted key path, relative to whoever reports it.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl InvalidSetting {
    /// `key` is out of range for `reason`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The same error seen from the enclosing section: `key` becomes `<section>.<key>`.
    #[must_use]
    pub fn under(mut self, section: &str) -> Self {
        self.key = if self.key.is_empty() {
            section.to_owned()
        } else {
            format!("{section}.{}", self.key)
        };
        self
    }
}

/// Every `(key, value)` must be at least 1.
pub fn at_least_one(pairs: &[(&str, u64)]) -> Result<(), InvalidSetting> {
    match pairs.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(InvalidSetting::new(*key, "must be at least 1")),
        None => Ok(()),
    }
}

/// Every `(key, value)` must lie within [0, 1].
pub fn fractions(pairs: &[(&str, f64)]) -> Result<(), InvalidSetting> {
    match pairs.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
        Some((key, v)) => Err(InvalidSetting::new(
            *key,
            format!("must be within [0, 1], got {v}"),
        )),
        None => Ok(()),
    }
}

/// Every `(key, value)` must be finite and above 0.
pub fn positive(pairs: &[(&str, f64)]) -> Result<(), InvalidSetting> {
    match pairs.iter().find(|(_, v)| !(*v > 0.0 && v.is_finite())) {
        Some((key, v)) => Err(InvalidSetting::new(*key, format!("must be > 0, got {v}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_once_per_level() {
        let e = InvalidSetting::new("refill_rate", "must be > 0")
            .under("providers.ibkr")
            .under("rate_coordinator");
        assert_eq!(e.key, "rate_coordinator.providers.ibkr.refill_rate");
        assert_eq!(
            e.to_string(),
            "invalid setting rate_coordinator.providers.ibkr.refill_rate: must be > 0"
        );
    }

    #[test]
    fn range_helpers_name_the_first_bad_key() {
        assert_eq!(at_least_one(&[("a", 1), ("b", 0)]).unwrap_err().key, "b");
        assert!(fractions(&[("a", 0.0), ("b", 1.0)]).is_ok());
        assert_eq!(fractions(&[("a", 1.5)]).unwrap_err().key, "a");
        assert_eq!(positive(&[("a", f64::NAN)]).unwrap_err().key, "a");
        assert!(positive(&[("a", 1e-9)]).is_ok());
    }
}
