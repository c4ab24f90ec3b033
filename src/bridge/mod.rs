//! The metrics bridge: every coordinator's state, as one fleet view for Prometheus and KEDA.

use serde::Deserialize;

/// Settings of the bridge (`bridge:`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// An instance silent this long is dropped from the fleet view, milliseconds.
    pub expire_after_ms: u64,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            expire_after_ms: 10_000,
        }
    }
}
