//! The agent's provider limits (`rate_coordinator:`) and the rate coordinator they build.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ProviderConfig, RateCoordinator, RateError};
use crate::invalid::InvalidSetting;

/// Provider limits (`rate_coordinator:`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Limits per provider name.
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl RateConfig {
    /// A rate coordinator with every provider registered.
    pub fn build(&self) -> Result<RateCoordinator, RateError> {
        let rate = RateCoordinator::new();
        for (name, config) in &self.providers {
            rate.register_provider(name, config.clone())?;
        }
        Ok(rate)
    }

    /// Checks every provider's limits, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        for (name, p) in &self.providers {
            p.validate()
                .map_err(|e| e.under(&format!("providers.{name}")))?;
        }
        Ok(())
    }
}
