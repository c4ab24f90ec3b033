//! The bridge's settings (`bridge:`).

use serde::Deserialize;

use crate::event::CoordinatorId;

/// Settings of the bridge (`bridge:`, `BACKFLOW_BRIDGE__<KEY>` in the environment).
///
/// The bridge also reads `nats:` (connection, prefix) and `metrics:` (listen address).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// Coordinators to follow (empty: every coordinator on the bus).
    pub coordinators: Vec<CoordinatorId>,
    /// An instance silent this long is dropped from the fleet view, milliseconds. Until then
    /// it counts with its last state, so a pod that died under pressure keeps asking for
    /// capacity for this long.
    pub expire_after_ms: u64,
    /// Heartbeats an instance may miss before it is reported silent.
    pub missed_heartbeats: u32,
    /// Events older than this (by their timestamp) are ignored, milliseconds; 0 disables the
    /// check (for hosts whose clocks cannot be trusted).
    pub max_event_age_ms: u64,
    /// How often every coordinator's state is republished on
    /// `<prefix>.metrics.<coordinator_id>`, milliseconds (0: only on level changes).
    pub publish_interval_ms: u64,
    /// How often each coordinator's write-consumer lag is read from JetStream, milliseconds
    /// (0: never; `coordinator_backlog` then falls back to the reported depths).
    pub lag_poll_interval_ms: u64,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            coordinators: Vec::new(),
            expire_after_ms: 10_000,
            missed_heartbeats: 3,
            max_event_age_ms: 15_000,
            publish_interval_ms: 1_000,
            lag_poll_interval_ms: 2_000,
        }
    }
}

impl BridgeConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.expire_after_ms == 0 {
            return Err(("expire_after_ms", "must be at least 1".into()));
        }
        if self.missed_heartbeats == 0 {
            return Err(("missed_heartbeats", "must be at least 1".into()));
        }
        Ok(())
    }
}
